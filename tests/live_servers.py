"""Helpers (not fixtures) that run the real app and the real API on a free loopback port, in this process."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from carecite.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(settings: Settings) -> Iterator[tuple[str, object]]:
    """(url, CareCiteApp) of the Gradio app over the settings' index; the index is closed afterwards."""
    from app import CareCiteApp, launch
    from carecite.runtime import open_index
    index = open_index(settings)
    demo = None
    try:
        cc = CareCiteApp(settings, index)
        demo = launch(cc, "127.0.0.1", free_port(), block=False)
        yield demo.local_url.rstrip("/"), cc
    finally:
        if demo is not None:
            demo.close()
        index.close()


@contextmanager
def running_api(settings: Settings, token: str | None = None, assistant=None) -> Iterator[str]:
    """Base URL of a uvicorn server running assistant.api in a thread, over `assistant` (which keeps its index
    open for the caller) or over an index opened here and closed at shutdown."""
    import uvicorn
    from assistant.api import create_app
    app = create_app(settings, assistant, token=token)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
