"""Build the query lexicon (carecite/lexicon.py) from what an index holds: every chunk's text, titles included,
scrolled from either backend. Called at the end of an ingest that changed the index, and by
`carecite lexicon build`."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from carecite.lexicon import Lexicon
from indexes.base import VectorIndex


def index_chunk_texts(index: VectorIndex, batch: int = 1024) -> Iterator[str]:
    """The text of every chunk in the index ("<doc title> — <section title>\\n<body>")."""
    for chunk, _ in index.scroll(batch=batch, fields=["text"]):
        if chunk.text:
            yield chunk.text


def rebuild_lexicon(index: VectorIndex, path: Path | str) -> dict:
    """Build the lexicon from every chunk of `index`, save it at `path`; returns its stats and the build time."""
    t0, c0 = time.perf_counter(), time.process_time()
    lex = Lexicon.build(index_chunk_texts(index))
    lex.save(path)
    return {**lex.stats(), "path": str(path), "seconds": round(time.perf_counter() - t0, 2),
            "cpu_seconds": round(time.process_time() - c0, 2)}
