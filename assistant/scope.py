"""Search scopes that OR filter sets (Filters AND across keys): "this case, or any guideline".

    scoped = scoped_assistant(assistant, [Filters(doc_id=[case_id]), Filters(doc_type=["guideline"])])
    scoped.ask("What does the plan for this patient's hypertension follow?")
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

from indexes.types import FILTER_KEYS, Filters, Hit


def and_filters(a: Filters, b: Filters) -> Filters | None:
    """Both filters at once (list keys intersect, dates take the narrower bound); None when nothing can match."""
    out = Filters()
    for k in FILTER_KEYS:
        x, y = getattr(a, k), getattr(b, k)
        if k == "date_from":
            v = max(d for d in (x, y) if d) if (x or y) else None
        elif k == "date_to":
            v = min(d for d in (x, y) if d) if (x or y) else None
        elif x and y:
            v = [i for i in x if i in y]
            if not v:
                return None
        else:
            v = x or y
        setattr(out, k, v)
    return out


class UnionSearcher:
    """A searcher whose results are the union of one search per scope, each ANDed with the request's filters.

    Hits merge by score (the same measure in every search: cosine for dense, fused RRF for hybrid), best first,
    one per chunk."""

    def __init__(self, searcher, scopes: Sequence[Filters]):
        if not scopes:
            raise ValueError("UnionSearcher needs at least one scope")
        self.searcher, self.scopes = searcher, list(scopes)
        self.index = searcher.index

    def search(self, query: str, filters: Filters | list[str] | dict | None = None, *, mode="hybrid",
               top_k: int = 10) -> list[Hit]:
        flt = filters if isinstance(filters, Filters) else Filters.parse(filters)
        best: dict[str, Hit] = {}
        for scope in self.scopes:
            both = and_filters(flt, scope)
            if both is None:
                continue
            for h in self.searcher.search(query, both, mode=mode, top_k=top_k):
                if h.chunk.id not in best or h.score > best[h.chunk.id].score:
                    best[h.chunk.id] = h
        ranked = sorted(best.values(), key=lambda h: -h.score)[:top_k]
        return [dataclasses.replace(h, rank=i + 1) for i, h in enumerate(ranked)]


def scoped_assistant(assistant, scopes: Sequence[Filters]):
    """A shallow copy of `assistant` (same models, generator and audit log) that searches the union of scopes."""
    scoped = copy.copy(assistant)
    scoped.searcher = UnionSearcher(assistant.searcher, scopes)
    scoped._owns_index = False
    scoped.include_cases = True  # the scopes decide which case notes are evidence
    return scoped
