"""First launch: a first slice of the default corpus is indexed before the chat opens, the rest in a background
thread of the same process (the embedded index serves one process), while the chat answers from what is indexed.

The index meta key "first_launch" is "loading" until the whole corpus is in, then "done": a launch that finds
"loading" (the app was stopped mid-way) starts the background load again, and the Ingestor's resume keeps every
document and chunk already stored (nothing is embedded twice, nothing is lost). An index without the key was not
made by a first launch (an older index, or `carecite ingest`): nothing is loaded into it.
"""
from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from indexes.base import VectorIndex
from ingest.lexicon_build import rebuild_lexicon
from ingest.pipeline import DEFAULT_CORPUS, Ingestor, IngestReport, SourceSpec

META_KEY = "first_launch"
# The first slice: the first MedQuAD documents (NCI's cancer and GARD's disease question-answer pairs). Measured
# (scripts/first_launch_timing.py, idle 2-core machine): 400 documents = 4,110 passages, indexed in 367 s at
# 11.7 chunks/s, so the chat opens after about 6.5 minutes; NCI's documents are long (up to 61 passages each).
FIRST_SLICE_DOCS = 400


def default_specs() -> list[SourceSpec]:
    return [SourceSpec(n) for n in DEFAULT_CORPUS]


def first_slice_specs(docs: int = FIRST_SLICE_DOCS) -> list[SourceSpec]:
    return [SourceSpec(DEFAULT_CORPUS[0], limit=docs)]


def needs_loading(index: VectorIndex) -> bool:
    """True when a first launch began loading the default corpus into this index and did not finish."""
    return index.get_meta().get(META_KEY) == "loading"


@dataclass
class LoadState:
    stage: str = "idle"  # idle, first-slice, ready (first slice in), reading, indexing, done, failed
    written: int = 0  # chunks written by the current run
    pending: int = 0  # chunks the current run has to write (known once reading ends)
    start_count: int = 0  # chunks in the index when the current run began
    docs_read: int = 0
    error: str = ""
    reports: list[IngestReport] = field(default_factory=list)


class CorpusLoader:
    """Loads `specs` into an open index: run_first_slice() blocks, start() continues in a daemon thread.
    While a caller holds hold() (an answer is being made), the background load waits between batches."""

    def __init__(self, index: VectorIndex, embedder, settings, specs: list[SourceSpec] | None = None,
                 first: list[SourceSpec] | None = None, max_pause_s: float = 120.0, lexicon_file=None,
                 **ingest_overrides):
        self.index, self.embedder, self.settings = index, embedder, settings
        self.specs = specs if specs is not None else default_specs()
        self.first = first if first is not None else first_slice_specs()
        self.ingest_overrides = ingest_overrides
        self.state = LoadState()
        self.max_pause_s = max_pause_s
        self.on_batch: Callable[[int, int], None] | None = None  # after each written batch (tests, logs)
        self.on_done: Callable[[], None] | None = None  # after the whole corpus is in (and its lexicon built)
        self.lexicon_file = lexicon_file  # the query lexicon, rebuilt after the first slice and at the end
        self._busy = 0
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    # -- running
    def _ingestor(self) -> Ingestor:
        return Ingestor.from_settings(self.index, self.embedder, self.settings, show_progress=False,
                                      on_progress=self._progress, **self.ingest_overrides)

    def _run(self, specs: list[SourceSpec], stage: str) -> IngestReport:
        st = self.state
        st.stage, st.written, st.pending, st.docs_read = stage, 0, 0, 0
        st.start_count = self.index.count()
        report = self._ingestor().run(specs)
        st.reports.append(report)
        return report

    def run_first_slice(self) -> IngestReport:
        """Mark the index as loading, then index the first slice (blocking)."""
        self.index.set_meta({**self.index.get_meta(), META_KEY: "loading"})
        report = self._run(self.first, "first-slice")
        self._lexicon()
        self.state.stage = "ready"  # the rest waits for start()
        return report

    def run_rest(self) -> IngestReport | None:
        """The whole corpus (what is stored already is skipped or resumed), then the index is marked done."""
        try:
            report = self._run(self.specs, "reading")
            self.index.set_meta({**self.index.get_meta(), META_KEY: "done"})
            self._lexicon()
            self.state.stage = "done"
            if self.on_done:
                self.on_done()
            return report
        except Exception as e:  # noqa: BLE001 - the chat stays up with what is indexed; the next launch resumes
            self.state.stage, self.state.error = "failed", f"{type(e).__name__}: {e}"
            traceback.print_exc()
            return None

    def _lexicon(self) -> None:
        if self.lexicon_file is not None and self.index.count():
            rebuild_lexicon(self.index, self.lexicon_file)

    def start(self) -> threading.Thread:
        self.state.stage = "reading"  # loading from now on (the UI built next shows the progress)
        self._thread = threading.Thread(target=self.run_rest, name="carecite-corpus-loader", daemon=True)
        self._thread.start()
        return self._thread

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.done

    def _progress(self, stage: str, done: int, total: int) -> None:
        st = self.state
        if stage == "reading":
            st.docs_read = done
            return
        if st.stage == "reading":
            st.stage = "indexing"
        st.written, st.pending = done, total
        if self.on_batch:
            self.on_batch(done, total)
        with self._cv:  # answers first: wait (bounded) while one is being made
            deadline = time.monotonic() + self.max_pause_s
            while self._busy and time.monotonic() < deadline:
                self._cv.wait(min(1.0, max(0.0, deadline - time.monotonic())))

    # -- the app's side
    def hold(self):
        """Context manager: the background load pauses between batches while this is held."""
        loader = self

        class _Hold:
            def __enter__(self):
                with loader._cv:
                    loader._busy += 1

            def __exit__(self, *exc):
                with loader._cv:
                    loader._busy -= 1
                    loader._cv.notify_all()
        return _Hold()

    @property
    def done(self) -> bool:
        return self.state.stage == "done"

    @property
    def loading(self) -> bool:
        return self.state.stage in ("first-slice", "reading", "indexing")

    def progress_line(self) -> str:
        """One line for the chat: "indexing 14,200 of 40,823 passages", or what is happening before that."""
        st = self.state
        if st.stage == "indexing":
            return f"indexing {st.start_count + st.written:,} of {st.start_count + st.pending:,} passages"
        if st.stage == "reading":
            return (f"{self.index.count():,} passages indexed; reading the rest of the corpus "
                    f"({st.docs_read:,} documents to index so far)")
        if st.stage == "first-slice":
            return f"indexing a first slice: {st.written:,} of {st.pending or '?'} passages"
        if st.stage == "failed":
            return f"loading the corpus stopped ({st.error}); {self.index.count():,} passages indexed, the next " \
                   "launch continues"
        return f"{self.index.count():,} passages indexed"
