"""What readers produce: a document split into sections, with metadata."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


def specialties(value: str | list[str] | None) -> list[str] | None:
    """Specialty labels as stored and filtered: lower-case, comma-separated strings split, blanks dropped."""
    items = value.split(",") if isinstance(value, str) else (value or [])
    return [x.strip().lower() for x in items if x and x.strip()] or None


@dataclass
class Section:
    title: str  # heading, QA question, note section name ("" if none)
    text: str
    extra: dict[str, Any] = field(default_factory=dict)  # per-section metadata (e.g. qid, qtype, page)


@dataclass
class Document:
    doc_id: str  # stable across runs: source + native id
    doc_type: str  # guideline | case | reference | literature
    source: str  # e.g. "MedQuAD/CancerGov", "OpenStax/pharmacology", "ACI-Bench"
    title: str
    sections: list[Section]
    url: str | None = None
    path: str | None = None  # file it came from
    specialty: list[str] | None = None  # where the publisher makes it known (e.g. NCI -> oncology)
    date: str | None = None  # ISO date where known
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.specialty = specialties(self.specialty)

    @property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        for part in (self.doc_id, self.title, *(f"{s.title}\x1f{s.text}" for s in self.sections)):
            h.update(part.encode("utf-8", "replace"))
            h.update(b"\x1e")
        return h.hexdigest()[:32]

    def _labels(self) -> dict[str, Any]:
        meta = {"doc_type": self.doc_type, "source": self.source, "title": self.title,
                "url": self.url, "path": self.path, "specialty": self.specialty or None, "date": self.date}
        meta.update(self.extra)
        return {k: v for k, v in meta.items() if v is not None}

    @property
    def meta_hash(self) -> str:
        """Changes with the metadata only, so a relabelled document need not be re-embedded."""
        return hashlib.sha256(json.dumps(self._labels(), sort_keys=True, default=str).encode()).hexdigest()[:16]

    def metadata(self) -> dict[str, Any]:
        """Document-level payload of every chunk."""
        return {**self._labels(), "meta_hash": self.meta_hash, "content_hash": self.content_hash}


OPTIONAL_KEYS = ("url", "path", "specialty", "date")  # absent from metadata() when unknown


class ReaderError(ValueError):
    """A file could not be read; the message says which file and why."""
