"""The answer object and its parts: what the CLI, the app and the HTTP API all show."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Source:
    n: int  # citation number shown as [n]
    chunk_id: str
    doc_id: str
    source: str
    title: str
    section: str
    url: str | None
    passage: str
    score: float
    doc_type: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SentenceVerdict:
    text: str
    citations: list[int]  # [n] numbers cited by this sentence (only ones that exist)
    supported: bool
    score: float  # support score in [0, 1]
    reason: str = ""  # e.g. "no citation", "number mismatch: 5 mg vs 50 mg"
    claim: bool = True  # False for lead-ins and "not found" statements: never counted as unsupported


@dataclass
class Answer:
    question: str
    answer: str
    sentences: list[SentenceVerdict]
    sources: list[Source]  # evidence shown to the model, numbered
    abstained: bool
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    models: dict[str, str] = field(default_factory=dict)
    index_version: str = ""
    filters: dict[str, Any] = field(default_factory=dict)
    standalone_query: str = ""
    answer_id: str = ""
    abstain_reason: str = ""  # why it abstained: weak retrieval, the model said so, or failed verification
    # How the question was read: words read differently (spelling, brand -> generic, acronyms), never silently.
    corrections: list[dict[str, str]] = field(default_factory=list)  # {"original", "replacement", "kind"}
    # The questions of the message and whether the sources cover each ({"question", "covered", "reason"}).
    parts: list[dict[str, Any]] = field(default_factory=list)
    notice: str = ""  # urgent-care advice shown first (emergency questions)
    notice_from_sources: bool = False  # the notice quotes a cited source (else a fixed line, not from the sources)
    kind: str = "synthesis"  # "synthesis" (the generator's verified text) or "quotes" (verified source sentences)
    note: str = ""  # why the answer is what it is, when that needs saying (e.g. the model's draft failed)

    @property
    def partial(self) -> bool:
        """Some, not all, of the message's questions are answered."""
        return not self.abstained and any(not p.get("covered") for p in self.parts)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape (carecite ask --json, API extension field)."""
        supported_by_n: dict[int, bool] = {}
        for s in self.sentences:
            for n in s.citations:
                supported_by_n[n] = supported_by_n.get(n, False) or s.supported
        return {
            "answer_id": self.answer_id,
            "question": self.question,
            "answer": self.answer,
            "sentences": [asdict(s) for s in self.sentences],
            "citations": [{**s.to_json(), "cited": s.n in supported_by_n, "supported": supported_by_n.get(s.n, False)}
                          for s in self.sources],
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
            "timings": self.timings,
            "models": self.models,
            "index_version": self.index_version,
            "filters": self.filters,
            "standalone_query": self.standalone_query,
            "corrections": self.corrections,
            "parts": self.parts,
            "partial": self.partial,
            "notice": self.notice,
            "notice_from_sources": self.notice_from_sources,
            "kind": self.kind,
            "note": self.note,
        }
