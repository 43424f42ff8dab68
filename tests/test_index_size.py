"""`carecite stats` reports the disk space the index takes (allocated blocks), not the sizes of the files Qdrant
preallocates (a 7-chunk index is about 209 MB by file size and well under 1 MB on disk)."""
from __future__ import annotations

import json

import numpy as np

from carecite.cli import main
from indexes.base import SparseVec
from indexes.edge import EdgeIndex
from indexes.types import Chunk, chunk_id


def test_stats_reports_allocated_blocks_not_file_sizes(tmp_settings, capsys):
    s = tmp_settings
    with EdgeIndex(s.index_path, dim=8, create=True) as index:
        chunks = [Chunk(chunk_id(f"doc{i}", 0), f"doc{i}", f"text {i}", {"doc_type": "guideline", "source": "t"})
                  for i in range(7)]
        index.upsert(chunks, np.random.default_rng(0).random((7, 8), dtype=np.float32),
                     [SparseVec([i], [1.0]) for i in range(7)])
        index.optimize()
    files = [f for f in s.index_path.rglob("*") if f.is_file()]
    apparent = sum(f.stat().st_size for f in files)
    allocated = sum(f.stat().st_blocks * 512 for f in files)
    assert allocated < apparent / 10  # Qdrant's preallocated files are sparse

    assert main(["--preset", "fast", "--data-dir", str(s.paths.data_dir), "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["chunks"] == 7
    # opening and closing the shard writes a little (WAL, flush): the figure is the blocks, within that
    after = sum(f.stat().st_blocks * 512 for f in s.index_path.rglob("*") if f.is_file())
    assert min(allocated, after) / 2 <= stats["size_bytes"] <= max(allocated, after) * 2
