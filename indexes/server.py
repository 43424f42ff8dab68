"""Server/cluster backend through qdrant-client; same schema and token ids as the Edge backend.

`QdrantClient(":memory:")` runs this code path in-process for tests (slow at scale; tests only).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from qdrant_client import QdrantClient, models as qm

from indexes.base import DENSE, SPARSE, IndexMissingError, Mode, SparseVec, VectorIndex, record_vectors
from indexes.edge import KEYWORD_FIELDS, _ts
from indexes.types import Chunk, Filters, Hit


class ServerIndex(VectorIndex):
    def __init__(self, url: str, collection: str = "carecite", api_key: str | None = None,
                 dim: int | None = None, create: bool = False, client: QdrantClient | None = None):
        self.client = client or (QdrantClient(location=":memory:") if url == ":memory:"
                                 else QdrantClient(url=url, api_key=api_key, timeout=30))
        self.collection = collection
        if self.client.collection_exists(collection):
            info = self.client.get_collection(collection)
            self.dim = int(info.config.params.vectors[DENSE].size)
        elif create:
            if not dim:
                raise ValueError("creating an index needs the dense dimension")
            self.dim = dim
            self.client.create_collection(
                collection,
                vectors_config={DENSE: qm.VectorParams(size=dim, distance=qm.Distance.COSINE)},
                sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
                metadata={"dim": dim},
            )
            for field in KEYWORD_FIELDS if url != ":memory:" else ():  # local mode has no payload indexes
                self.client.create_payload_index(collection, field, qm.PayloadSchemaType.KEYWORD)
        else:
            raise IndexMissingError(f"no collection {collection!r} at {url}; run `carecite ingest` first")

    def upsert(self, chunks: Sequence[Chunk], dense: np.ndarray, sparse: Sequence[SparseVec]) -> None:
        if not (len(chunks) == len(dense) == len(sparse)):
            raise ValueError("chunks, dense and sparse must have the same length")
        points = [qm.PointStruct(id=c.id, payload=c.payload(), vector={
            DENSE: d.tolist(), SPARSE: qm.SparseVector(indices=s.indices, values=s.values)})
            for c, d, s in zip(chunks, dense, sparse)]
        if points:
            self.client.upsert(self.collection, points, wait=True)

    def delete_docs(self, doc_ids: Sequence[str], keep_hash: str | None = None) -> None:
        if doc_ids:
            flt = qm.Filter(must=[qm.FieldCondition(key="doc_id", match=qm.MatchAny(any=list(doc_ids)))],
                            must_not=[qm.FieldCondition(key="content_hash", match=qm.MatchValue(value=keep_hash))]
                            if keep_hash else None)
            self.client.delete(self.collection, qm.FilterSelector(filter=flt), wait=True)

    def set_doc_metadata(self, doc_id: str, metadata: dict, unset: Sequence[str] = ()) -> None:
        sel = qm.FilterSelector(filter=qm.Filter(must=[qm.FieldCondition(key="doc_id", match=qm.MatchValue(value=doc_id))]))
        self.client.set_payload(self.collection, payload=dict(metadata), points=sel, wait=True)
        if unset:
            self.client.delete_payload(self.collection, keys=list(unset), points=sel, wait=True)

    def search(self, dense, sparse, *, mode: Mode = "hybrid", filters=None, top_k=10, rrf_k=60,
               weights=(1.0, 1.0), prefetch_limit=100) -> list[Hit]:
        flt = to_client_filter(filters)
        dq = np.asarray(dense, dtype=np.float32).tolist() if dense is not None else None
        sq = qm.SparseVector(indices=sparse.indices, values=sparse.values) \
            if sparse is not None and sparse.indices else None
        if mode == "dense":
            res = self.client.query_points(self.collection, query=dq, using=DENSE, query_filter=flt,
                                           limit=top_k, with_payload=True)
        elif mode == "sparse":
            if sq is None:
                return []
            res = self.client.query_points(self.collection, query=sq, using=SPARSE, query_filter=flt,
                                           limit=top_k, with_payload=True)
        else:
            pre = [qm.Prefetch(query=dq, using=DENSE, limit=prefetch_limit, filter=flt)]
            w = [weights[0]]
            if sq is not None:
                pre.append(qm.Prefetch(query=sq, using=SPARSE, limit=prefetch_limit, filter=flt))
                w.append(weights[1])
            res = self.client.query_points(self.collection, prefetch=pre, query_filter=flt, limit=top_k,
                                           query=qm.RrfQuery(rrf=qm.Rrf(k=rrf_k, weights=w)), with_payload=True)
        return [Hit(Chunk.from_payload(p.id, p.payload or {}), float(p.score), i + 1)
                for i, p in enumerate(res.points)]

    def count(self, filters: Filters | None = None) -> int:
        return self.client.count(self.collection, count_filter=to_client_filter(filters), exact=True).count

    def facet(self, key: str, limit: int = 100) -> dict[str, int]:
        if key not in KEYWORD_FIELDS:
            raise ValueError(f"facet needs an indexed keyword field: {KEYWORD_FIELDS}")
        resp = self.client.facet(self.collection, key=key, limit=limit, exact=True)
        return {str(h.value): int(h.count) for h in resp.hits}

    def scroll(self, filters=None, batch=256, with_vectors=False, fields=None) -> Iterator[tuple[Chunk, dict | None]]:
        offset = None
        flt = to_client_filter(filters)
        while True:
            recs, offset = self.client.scroll(self.collection, scroll_filter=flt, limit=batch, offset=offset,
                                              with_payload=fields or True, with_vectors=with_vectors)
            for r in recs:
                yield Chunk.from_payload(r.id, r.payload or {}), record_vectors(r.vector) if with_vectors else None
            if offset is None:
                return

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        recs = self.client.retrieve(self.collection, list(ids), with_payload=True)
        return [Chunk.from_payload(r.id, r.payload or {}) for r in recs]

    def get_meta(self) -> dict:
        return dict(self.client.get_collection(self.collection).config.metadata or {})

    def set_meta(self, meta: dict) -> None:
        self.client.update_collection(self.collection, metadata=meta)

    def close(self) -> None:
        self.client.close()


def to_client_filter(filters: Filters | None) -> qm.Filter | None:
    if filters is None or filters.is_empty():
        return None
    must: list = []
    for key in KEYWORD_FIELDS:
        vals = getattr(filters, key)
        if vals:
            must.append(qm.FieldCondition(key=key, match=qm.MatchAny(any=list(vals))))
    if filters.date_from or filters.date_to:
        must.append(qm.FieldCondition(key="date", range=qm.DatetimeRange(
            gte=_ts(filters.date_from), lte=_ts(filters.date_to, end=True))))
    return qm.Filter(must=must)
