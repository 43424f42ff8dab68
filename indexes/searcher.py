"""Query side of the hybrid index: text -> dense + BM25 query vectors -> fused hits from Qdrant."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from indexes.base import Mode, VectorIndex
from indexes.bm25 import BM25Encoder
from indexes.types import Filters, Hit

MAX_QUERY_CHARS = 4000


class QueryError(ValueError):
    """An empty, oversized or wrongly typed query."""


class HybridSearcher:
    def __init__(self, index: VectorIndex, embed_query: Callable[[str], np.ndarray], *, rrf_k: int = 60,
                 weights: tuple[float, float] = (1.0, 1.0), prefetch_limit: int = 100):
        self.index = index
        self.embed_query = embed_query
        self.bm25 = BM25Encoder(avg_len=float(index.get_meta().get("bm25_avg_len", 256.0)))
        self.rrf_k, self.weights, self.prefetch_limit = rrf_k, weights, prefetch_limit

    def search(self, query: str, filters: Filters | list[str] | dict | None = None, *,
               mode: Mode = "hybrid", top_k: int = 10) -> list[Hit]:
        if not isinstance(query, str):
            raise QueryError(f"query must be a string, got {type(query).__name__}")
        if not query.strip():
            raise QueryError("query is empty")
        try:
            query.encode("utf-8")
        except UnicodeEncodeError as e:
            raise QueryError(f"query is not valid Unicode text (a lone surrogate at character {e.start}, e.g. bytes "
                             "that were not UTF-8)") from None
        if len(query) > MAX_QUERY_CHARS:
            raise QueryError(f"query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
        if mode not in ("hybrid", "dense", "sparse"):
            raise QueryError(f"unknown mode {mode!r}; choose hybrid, dense or sparse")
        if not isinstance(top_k, int) or not 1 <= top_k <= 1000:
            raise QueryError(f"top_k must be an integer in 1..1000, got {top_k!r}")
        if not isinstance(filters, Filters):
            filters = Filters.parse(filters)
        dense = self.embed_query(query) if mode != "sparse" else None
        sparse = self.bm25.encode_query(query) if mode != "dense" else None
        return self.index.search(dense, sparse, mode=mode, filters=filters, top_k=top_k, rrf_k=self.rrf_k,
                                 weights=self.weights, prefetch_limit=max(self.prefetch_limit, top_k))
