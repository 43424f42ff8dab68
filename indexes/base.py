"""The small interface both Qdrant backends implement (Edge in-process, qdrant-client for a server)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from indexes.types import Chunk, Filters, Hit

Mode = Literal["hybrid", "dense", "sparse"]
DENSE = "dense"
SPARSE = "bm25"


class IndexLockedError(RuntimeError):
    """Another process holds the embedded index."""


class IndexMissingError(RuntimeError):
    """No index exists yet at the configured location."""


class SparseVec:
    __slots__ = ("indices", "values")

    def __init__(self, indices: list[int], values: list[float]):
        self.indices, self.values = indices, values

    def __repr__(self) -> str:
        return f"SparseVec({len(self.indices)} terms)"


class StoredDoc(NamedTuple):
    content_hash: str  # "" when not all of the document's chunks are stored (an interrupted ingest)
    meta_hash: str  # "" for chunks written before meta_hash existed
    path: str = ""  # the file it was read from, as stored
    partial_hash: str = ""  # when not all chunks are stored: the content_hash of those that are
    chunks: int = 0  # chunks stored
    expected_chunks: int = 0  # chunks the document has (doc_chunks), 0 if unknown


def record_vectors(v: dict | None) -> dict:
    """A stored point's named vectors as {dense: list, bm25: SparseVec} (both backends' records look alike)."""
    v = v or {}
    sv = v.get(SPARSE)
    return {DENSE: list(v.get(DENSE) or []),
            SPARSE: SparseVec(list(sv.indices), list(sv.values)) if sv is not None else SparseVec([], [])}


class VectorIndex(ABC):
    """Dense + BM25-sparse named vectors per chunk; fusion runs inside Qdrant."""

    dim: int

    @abstractmethod
    def upsert(self, chunks: Sequence[Chunk], dense: np.ndarray, sparse: Sequence[SparseVec]) -> None: ...

    @abstractmethod
    def delete_docs(self, doc_ids: Sequence[str], keep_hash: str | None = None) -> None:
        """Remove the chunks of these documents (only those whose content_hash differs from keep_hash, if given)."""

    @abstractmethod
    def search(self, dense: np.ndarray | None, sparse: SparseVec | None, *, mode: Mode = "hybrid",
               filters: Filters | None = None, top_k: int = 10, rrf_k: int = 60,
               weights: tuple[float, float] = (1.0, 1.0), prefetch_limit: int = 100) -> list[Hit]: ...

    @abstractmethod
    def count(self, filters: Filters | None = None) -> int: ...

    @abstractmethod
    def facet(self, key: str, limit: int = 100) -> dict[str, int]:
        """Chunk counts per value of a payload key (source, doc_type, ...)."""

    @abstractmethod
    def scroll(self, filters: Filters | None = None, batch: int = 256, with_vectors: bool = False,
               fields: list[str] | None = None) -> Iterator[tuple[Chunk, dict | None]]:
        """Every chunk matching the filters; with_vectors gives {"dense": [...], "bm25": SparseVec};
        fields limits the payload read."""

    def stored_docs(self, filters: Filters | None = None) -> dict[str, StoredDoc]:
        """doc_id -> (content_hash, meta_hash) of every stored document matching the filters. A document whose
        chunks are not all stored (an interrupted ingest) has content_hash "" so that it is written again."""
        docs: dict[str, StoredDoc] = {}
        seen: dict[str, int] = {}
        expected: dict[str, int] = {}
        hashes: dict[str, set[str]] = {}
        for c, _ in self.scroll(filters, batch=1024,
                                fields=["doc_id", "content_hash", "meta_hash", "doc_chunks", "path"]):
            docs[c.doc_id] = StoredDoc(c.metadata.get("content_hash", ""), c.metadata.get("meta_hash", ""),
                                       c.metadata.get("path") or "")
            seen[c.doc_id] = seen.get(c.doc_id, 0) + 1
            expected[c.doc_id] = int(c.metadata.get("doc_chunks") or 0)
            hashes.setdefault(c.doc_id, set()).add(c.metadata.get("content_hash", ""))
        out = {}
        for d, s in docs.items():
            s = s._replace(chunks=seen[d], expected_chunks=expected[d])
            if seen[d] != expected[d] or len(hashes[d]) > 1:  # interrupted: only a uniform part can be resumed
                s = s._replace(content_hash="", partial_hash=s.content_hash if len(hashes[d]) == 1 else "")
            out[d] = s
        return out

    @abstractmethod
    def set_doc_metadata(self, doc_id: str, metadata: dict[str, Any], unset: Sequence[str] = ()) -> None:
        """Overwrite document-level payload keys, and drop `unset` ones, on all of a document's chunks
        (vectors and text untouched)."""

    @abstractmethod
    def get(self, ids: Sequence[str]) -> list[Chunk]: ...

    @abstractmethod
    def get_meta(self) -> dict:
        """Index-level metadata (BM25 avg_len, embedder, version)."""

    @abstractmethod
    def set_meta(self, meta: dict) -> None: ...

    def optimize(self) -> None:
        """Compact after bulk loads (Edge); a server optimizes by itself."""

    def size_bytes(self) -> int | None:
        return None

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
