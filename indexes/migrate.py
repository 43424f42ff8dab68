"""Copy every point (vectors, payload) and the index metadata from one backend to another."""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from indexes.base import DENSE, SPARSE, VectorIndex


def migrate(src: VectorIndex, dst: VectorIndex, batch: int = 512, show_progress: bool = False) -> int:
    if src.dim != dst.dim:
        raise ValueError(f"dense dimensions differ: source {src.dim}, destination {dst.dim}")
    n = 0
    buf: list = []
    bar = tqdm(total=src.count(), unit="chunk", desc="migrating", disable=not show_progress)

    def flush():
        nonlocal n
        chunks = [c for c, _ in buf]
        dst.upsert(chunks, np.asarray([v[DENSE] for _, v in buf], dtype=np.float32), [v[SPARSE] for _, v in buf])
        n += len(buf)
        bar.update(len(buf))
        buf.clear()

    for chunk, vec in src.scroll(batch=batch, with_vectors=True):
        buf.append((chunk, vec))
        if len(buf) >= batch:
            flush()
    if buf:
        flush()
    bar.close()
    dst.set_meta({**dst.get_meta(), **src.get_meta()})
    dst.optimize()
    return n
