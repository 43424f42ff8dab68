"""The last queries' vectors, shared by the embedder backends: one question is searched by several steps."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable


class QueryMemo:
    """embed_query(text) through a bounded, thread-safe memo of the most recent `size` texts (copies returned)."""

    def __init__(self, size: int = 64):
        self.size = size
        self._recent: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str, embed_one: Callable[[str], object]):
        with self._lock:
            hit = self._recent.get(text)
        if hit is None:
            hit = embed_one(text)
            with self._lock:
                self._recent[text] = hit
                while len(self._recent) > self.size:
                    self._recent.popitem(last=False)
        return hit.copy()
