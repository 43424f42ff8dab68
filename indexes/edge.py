"""Embedded backend: Qdrant's own engine in-process (qdrant-edge-py), persisted in a folder."""
from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from indexes.base import (DENSE, SPARSE, IndexLockedError, IndexMissingError, Mode, SparseVec, VectorIndex,
                          record_vectors)
from indexes.types import Chunk, Filters, Hit

META_FILE = "carecite_meta.json"
LOCK_FILE = "carecite.lock"
KEYWORD_FIELDS = ("doc_type", "source", "specialty", "doc_id", "corpus", "patient_id", "resource_type", "code")


class EdgeIndex(VectorIndex):
    def __init__(self, path: str | Path, dim: int | None = None, create: bool = False):
        """Open the shard at `path`; with create=True make it (needs dim) if absent."""
        self.path = Path(path)
        self._lock_fd = None
        shard_dir = self.path / "shard"
        exists = shard_dir.exists() and any(shard_dir.iterdir())
        if not exists and not create:
            raise IndexMissingError(f"no index at {self.path}; run `carecite ingest` first")
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            if exists:
                self.shard = qe.EdgeShard.load(str(shard_dir))
                self.dim = int(self.get_meta().get("dim") or self._config_dim())
            else:
                if not dim:
                    raise ValueError("creating an index needs the dense dimension")
                self.dim = dim
                self.shard = qe.EdgeShard.create(str(shard_dir), self._config(dim))
                for field in KEYWORD_FIELDS:
                    self.shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
                self.set_meta({**self.get_meta(), "dim": dim})
        except Exception:
            self._unlock()
            raise

    @staticmethod
    def _config(dim: int) -> qe.EdgeConfig:
        return qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )

    def _config_dim(self) -> int:
        cfg = json.loads((self.path / "shard" / "edge_config.json").read_text())
        return cfg["vectors"][DENSE]["size"]

    # -- locking: one process at a time, with a clear error
    def _lock(self) -> None:
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = (self.path / LOCK_FILE).read_text().strip() or "another process"
            raise IndexLockedError(
                f"the index at {self.path} is open in {holder}; the embedded index serves one process at a time "
                "(stop the other process, or run a Qdrant server and set CARECITE_INDEX__BACKEND=server)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- writes
    def upsert(self, chunks: Sequence[Chunk], dense: np.ndarray, sparse: Sequence[SparseVec]) -> None:
        if not (len(chunks) == len(dense) == len(sparse)):
            raise ValueError("chunks, dense and sparse must have the same length")
        points = [qe.Point(c.id, {DENSE: d.tolist(), SPARSE: qe.SparseVector(s.indices, s.values)}, c.payload())
                  for c, d, s in zip(chunks, dense, sparse)]
        if points:
            self.shard.update(qe.UpdateOperation.upsert_points(points))

    def delete_docs(self, doc_ids: Sequence[str], keep_hash: str | None = None) -> None:
        if doc_ids:
            flt = qe.Filter(must=[qe.FieldCondition("doc_id", match=qe.MatchAny(list(doc_ids)))],
                            must_not=[qe.FieldCondition("content_hash", match=qe.MatchValue(keep_hash))]
                            if keep_hash else None)
            self.shard.update(qe.UpdateOperation.delete_points_by_filter(flt))

    def set_doc_metadata(self, doc_id: str, metadata: dict, unset: Sequence[str] = ()) -> None:
        flt = qe.Filter(must=[qe.FieldCondition("doc_id", match=qe.MatchValue(doc_id))])
        self.shard.update(qe.UpdateOperation.set_payload_by_filter(flt, dict(metadata)))
        if unset:
            self.shard.update(qe.UpdateOperation.delete_payload_by_filter(flt, list(unset)))

    def optimize(self) -> None:
        self.shard.optimize()
        self.shard.flush()

    # -- reads
    def search(self, dense, sparse, *, mode: Mode = "hybrid", filters=None, top_k=10, rrf_k=60,
               weights=(1.0, 1.0), prefetch_limit=100) -> list[Hit]:
        flt = to_edge_filter(filters)
        dq = qe.Query.Nearest(np.asarray(dense, dtype=np.float32).tolist(), using=DENSE) if dense is not None else None
        sq = qe.Query.Nearest(qe.SparseVector(sparse.indices, sparse.values), using=SPARSE) \
            if sparse is not None and sparse.indices else None
        if mode == "dense":
            req = qe.QueryRequest(limit=top_k, query=dq, filter=flt, with_payload=True)
        elif mode == "sparse":
            if sq is None:
                return []
            req = qe.QueryRequest(limit=top_k, query=sq, filter=flt, with_payload=True)
        else:
            pre = [qe.Prefetch(limit=prefetch_limit, query=dq, filter=flt)]
            w = [weights[0]]
            if sq is not None:
                pre.append(qe.Prefetch(limit=prefetch_limit, query=sq, filter=flt))
                w.append(weights[1])
            req = qe.QueryRequest(limit=top_k, prefetches=pre, query=qe.Fusion.Rrf(k=rrf_k, weights=w),
                                  filter=flt, with_payload=True)
        pts = self.shard.query(req)
        return [Hit(Chunk.from_payload(p.id, p.payload or {}), float(p.score), i + 1) for i, p in enumerate(pts)]

    def count(self, filters: Filters | None = None) -> int:
        return self.shard.count(qe.CountRequest(exact=True, filter=to_edge_filter(filters)))

    def facet(self, key: str, limit: int = 100) -> dict[str, int]:
        if key not in KEYWORD_FIELDS:
            raise ValueError(f"facet needs an indexed keyword field: {KEYWORD_FIELDS}")
        resp = self.shard.facet(qe.FacetRequest(key, limit=limit, exact=True))
        return {str(h.value): int(h.count) for h in resp.hits}

    def scroll(self, filters=None, batch=256, with_vectors=False, fields=None) -> Iterator[tuple[Chunk, dict | None]]:
        offset = None
        flt = to_edge_filter(filters)
        while True:
            recs, offset = self.shard.scroll(qe.ScrollRequest(offset=offset, limit=batch, filter=flt,
                                                              with_payload=fields or True, with_vector=with_vectors))
            for r in recs:
                yield Chunk.from_payload(r.id, r.payload or {}), record_vectors(r.vector) if with_vectors else None
            if offset is None:
                return

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        recs = self.shard.retrieve(list(ids), with_payload=True, with_vector=False)
        return [Chunk.from_payload(r.id, r.payload or {}) for r in recs]

    def get_meta(self) -> dict:
        p = self.path / META_FILE
        return json.loads(p.read_text()) if p.exists() else {}

    def set_meta(self, meta: dict) -> None:
        p = self.path / META_FILE
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
        os.replace(tmp, p)

    def size_bytes(self) -> int:
        """Disk space the index takes: allocated blocks, not file sizes (Qdrant preallocates sparse files, so a
        7-chunk index is 209 MB by size and 0.3 MB on disk)."""
        return sum(f.stat().st_blocks * 512 for f in self.path.rglob("*") if f.is_file() and not f.is_symlink())

    def close(self) -> None:
        if getattr(self, "shard", None) is not None:
            try:
                self.shard.flush()
                self.shard.close()
            finally:
                self.shard = None
        self._unlock()


def to_edge_filter(filters: Filters | None) -> qe.Filter | None:
    if filters is None or filters.is_empty():
        return None
    must = []
    for key in KEYWORD_FIELDS:
        vals = getattr(filters, key)
        if vals:
            must.append(qe.FieldCondition(key, match=qe.MatchAny(list(vals))))
    if filters.date_from or filters.date_to:
        must.append(qe.FieldCondition("date", range=qe.RangeDateTime(
            gte=_ts(filters.date_from), lte=_ts(filters.date_to, end=True))))
    return qe.Filter(must=must)


def _ts(d: str | None, end: bool = False) -> str | None:
    if not d:
        return None
    return d if "T" in d else f"{d[:10]}T{'23:59:59' if end else '00:00:00'}Z"
