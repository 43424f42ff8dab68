"""First launch (app.ensure_index + ingest/progressive.py) on a small real corpus: a first slice before the chat,
the rest in a background thread that waits while an answer is made, progress and a note with answers; a load
killed mid-way (SIGKILL) loses nothing and the next launch finishes it, ending with the same index as one ingest."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from carecite.lexicon import lexicon_path
from carecite.runtime import open_index_and_embedder
from ingest.pipeline import Ingestor, SourceSpec
from ingest.progressive import META_KEY, needs_loading
from conftest import make_settings

ROOT = Path(__file__).resolve().parents[1]
FIRST_DOCS = 1
REST = [("medquad", 3), ("aci-bench", 1)]


def _specs():
    return [SourceSpec(n, limit=k) for n, k in REST]


def _settings(tmp: Path):
    s = make_settings(tmp)
    s.phi.policy = "mask"
    return s


def _reference_ids(tmp: Path) -> set[str]:
    """Chunk ids of the same corpus ingested in one go into another index."""
    s = _settings(tmp)
    index, embedder = open_index_and_embedder(s)
    with index:
        Ingestor.from_settings(index, embedder, s, show_progress=False).run(_specs())
        return {c.id for c, _ in index.scroll(fields=["doc_id"])}


def _ids(index) -> list[str]:
    return [c.id for c, _ in index.scroll(fields=["doc_id"])]


def test_first_slice_then_background_load_with_progress_and_pauses(tmp_path):
    from app import CareCiteApp, ensure_index
    s = _settings(tmp_path / "app")
    index, loader = ensure_index(s, first_docs=FIRST_DOCS)
    try:
        first = index.count()
        assert first > 0 and loader is not None and needs_loading(index) and not loader.loading
        loader.specs, loader.ingest_overrides = _specs(), {"batch_size": 8}
        app = CareCiteApp(s, index, loader=loader)
        with loader.hold():  # an answer is being made: the load stops after its first batch
            loader.start()
            deadline = time.time() + 600
            while loader.state.stage != "indexing" and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            assert loader.state.stage == "indexing" and loader.state.written == 8
            line = loader.progress_line()
            assert line == f"indexing {index.count():,} of {loader.state.start_count + loader.state.pending:,} passages"
            assert "indexing" in app.status_md()
            assert "still loading" in app.loading_note() and "passages indexed so far" in app.loading_note()
            hits = app.searcher.search("what are the symptoms of cancer")  # answers from what is indexed
            assert hits
        assert loader.join(timeout=900) and loader.done and not loader.loading
        assert index.get_meta()[META_KEY] == "done" and app.loading_note() == "" and "indexing" not in app.status_md()
        ids = _ids(index)
        assert len(ids) == len(set(ids)) and set(ids) == _reference_ids(tmp_path / "ref")
        assert lexicon_path(s).exists()  # built after the first slice, rebuilt at the end
    finally:
        index.close()
    # the next launch has nothing to load
    index, loader = ensure_index(s)
    index.close()
    assert loader is None


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from app import ensure_index
    from carecite.settings import Settings
    from ingest.pipeline import SourceSpec
    s = Settings.from_name("fast")
    s.paths.data_dir = Path({data!r})
    s.phi.policy = "mask"
    index, loader = ensure_index(s, first_docs={first})
    loader.specs = [SourceSpec(n, limit=k) for n, k in {rest!r}]
    loader.ingest_overrides = {{"batch_size": 8}}
    marker = Path({marker!r})
    def on_batch(done, total):
        marker.write_text(f"{{done}} {{total}}")
        if done >= 16:
            time.sleep(600)  # killed here
    loader.on_batch = on_batch
    loader.start()
    loader.join()
""")


def test_killed_background_load_resumes_on_next_launch(tmp_path):
    from app import ensure_index
    s = _settings(tmp_path / "app")
    marker = tmp_path / "progress"
    code = CHILD.format(root=str(ROOT), data=str(s.paths.data_dir), first=FIRST_DOCS, rest=REST, marker=str(marker))
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 900
        while time.time() < deadline and child.poll() is None:
            if marker.exists() and int((marker.read_text().split() or ["0"])[0]) >= 16:
                break
            time.sleep(0.1)
        assert child.poll() is None, child.stdout.read()[-2000:]
        done, total = map(int, marker.read_text().split())
        assert done == 16 and total > 16
        os.kill(child.pid, signal.SIGKILL)  # no clean-up, no flush: as a crash or a killed terminal
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    index, loader = ensure_index(s)  # the next launch: the index is there, marked as still loading
    try:
        assert loader is not None and needs_loading(index)
        kept = index.count()
        stored = index.stored_docs()
        assert kept >= 16 and any(d.content_hash for d in stored.values())  # nothing indexed before the kill is lost
        loader.specs = _specs()
        report = loader.run_rest()
        assert loader.done and report is not None and not report.errors
        # what was stored whole was not embedded again; the rest was
        assert report.docs_unchanged >= 1 and 0 < report.chunks_written < index.count()
        ids = _ids(index)
        assert len(ids) == len(set(ids)) and set(ids) == _reference_ids(tmp_path / "ref")
    finally:
        index.close()
