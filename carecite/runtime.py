"""Wires settings to the index, the embedder and the searcher: what the CLI, app and API open."""
from __future__ import annotations

from indexes.base import IndexMissingError, VectorIndex
from indexes.searcher import HybridSearcher
from carecite.models import check_index_embedder, get_embedder, resolve_embedder_backend
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


def open_embedder(settings: Settings, index: VectorIndex):
    """The embedder for this index: embedder.backend "auto" becomes the backend that built it (settings are updated,
    so every later get_embedder(settings) agrees); a backend other than the index's is EmbedderMismatchError."""
    meta, n = index.get_meta(), index.count()
    settings.embedder.backend = resolve_embedder_backend(settings, meta, n)
    check_index_embedder(meta, n, settings.embedder.backend, settings.embedder.model)  # before any model loads
    return get_embedder(settings)


def open_index_and_embedder(settings: Settings, *, create: bool = True) -> tuple[VectorIndex, object]:
    """The configured index (created when missing and create=True) with its embedder (open_embedder)."""
    try:
        index = open_index(settings)
    except IndexMissingError:
        if not create:
            raise
        embedder = get_embedder(settings)
        index = open_index(settings, create=True, dim=embedder.dim)
    try:
        return index, open_embedder(settings, index)
    except Exception:
        index.close()
        raise


def open_searcher(settings: Settings, index: VectorIndex | None = None) -> HybridSearcher:
    """A searcher over the configured index (opened here unless given)."""
    owned = index is None
    index = index or open_index(settings)
    try:
        embedder = open_embedder(settings, index)
    except Exception:
        if owned:
            index.close()
        raise
    r = settings.retrieval
    return HybridSearcher(index, embedder.embed_query, rrf_k=r.rrf_k, weights=(r.dense_weight, r.sparse_weight),
                          prefetch_limit=r.prefetch_limit)
