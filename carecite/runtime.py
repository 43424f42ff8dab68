"""Wires settings to the index, the embedder and the searcher: what the CLI, app and API open."""
from __future__ import annotations

from indexes.base import VectorIndex
from indexes.searcher import HybridSearcher
from carecite.models import get_embedder
from carecite.settings import Settings


def open_index(settings: Settings, *, create: bool = False, dim: int | None = None) -> VectorIndex:
    if settings.index.backend == "server":
        from indexes.server import ServerIndex
        if not settings.index.url:
            raise ValueError("backend=server needs CARECITE_INDEX__URL (e.g. http://qdrant:6333 or :memory:)")
        return ServerIndex(settings.index.url, settings.index.collection, settings.index.api_key,
                           dim=dim, create=create)
    from indexes.edge import EdgeIndex
    return EdgeIndex(settings.index_path, dim=dim, create=create)


def open_searcher(settings: Settings, index: VectorIndex | None = None) -> HybridSearcher:
    """A searcher over the configured index (opened here unless given)."""
    index = index or open_index(settings)
    embedder = get_embedder(settings)
    r = settings.retrieval
    return HybridSearcher(index, embedder.embed_query, rrf_k=r.rrf_k, weights=(r.dense_weight, r.sparse_weight),
                          prefetch_limit=r.prefetch_limit)
