"""Records the index stores and returns. Storage knows nothing of file formats or answers."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

CHUNK_NAMESPACE = uuid.UUID("5b0e6a4e-7f2c-4c1e-9a43-9f1c2d7e8a10")

DOC_TYPES = ("guideline", "case", "reference", "literature", "patient")  # patient: de-identified FHIR records
# Payload keys a filter may name; anything else is an error, never ignored.
FILTER_KEYS = ("doc_type", "source", "specialty", "doc_id", "corpus", "patient_id", "resource_type", "code",
               "date_from", "date_to")


def chunk_id(doc_id: str, ordinal: int) -> str:
    """Stable chunk id: a UUID5 of the document id and the chunk's position (Qdrant wants int or UUID ids)."""
    return str(uuid.uuid5(CHUNK_NAMESPACE, f"{doc_id}#{ordinal}"))


@dataclass
class Chunk:
    id: str
    doc_id: str
    text: str
    # doc_type, source, title, section, url, path, specialty, date (ISO), content_hash, chunk_index, ...
    metadata: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {**self.metadata, "doc_id": self.doc_id, "text": self.text}

    @classmethod
    def from_payload(cls, pid: Any, payload: dict[str, Any]) -> "Chunk":
        meta = {k: v for k, v in payload.items() if k not in ("doc_id", "text")}
        return cls(id=str(pid), doc_id=payload.get("doc_id", ""), text=payload.get("text", ""), metadata=meta)


@dataclass
class Hit:
    chunk: Chunk
    score: float
    rank: int

    def to_json(self) -> dict[str, Any]:
        """The search result shape of `carecite search --json` and POST /v1/search."""
        m = self.chunk.metadata
        return {"rank": self.rank, "score": self.score, "chunk_id": self.chunk.id, "doc_id": self.chunk.doc_id,
                **{k: m.get(k) for k in ("source", "doc_type", "title", "section", "url", "specialty")},
                "text": self.chunk.text}


class FilterError(ValueError):
    """A filter names an unknown key or a malformed value; `key` is the filter at fault (None: the whole value)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclass
class Filters:
    """Payload filters; every given field must match (fail closed: no match means no hits)."""
    doc_type: list[str] | None = None
    source: list[str] | None = None
    specialty: list[str] | None = None
    doc_id: list[str] | None = None
    corpus: list[str] | None = None  # the ingest unit: a named corpus or a folder
    patient_id: list[str] | None = None  # a patient record's pseudonym (ingest/deid.py)
    resource_type: list[str] | None = None  # FHIR resource types a record chunk holds (Observation, Condition, ...)
    code: list[str] | None = None  # SNOMED / LOINC / RxNorm / CVX codes a record chunk holds
    date_from: str | None = None  # ISO date, inclusive
    date_to: str | None = None

    def is_empty(self) -> bool:
        return not any(getattr(self, k) for k in FILTER_KEYS)

    def to_dict(self) -> dict[str, Any]:
        """The filters in force (unset ones left out)."""
        return {k: getattr(self, k) for k in FILTER_KEYS if getattr(self, k)}

    @classmethod
    def parse(cls, items: list[str] | dict[str, Any] | None) -> "Filters":
        """From CLI-style ["doc_type=guideline", "source=MedQuAD,CDC"] or a dict."""
        if not items:
            return cls()
        pairs: dict[str, Any] = {}
        if isinstance(items, dict):
            pairs = dict(items)
        elif isinstance(items, list):
            for item in items:
                if not isinstance(item, str) or "=" not in item:
                    raise FilterError(f"filter {item!r} is not KEY=VALUE; keys: {', '.join(FILTER_KEYS)}")
                k, v = item.split("=", 1)
                pairs.setdefault(k.strip(), []).extend(x.strip() for x in v.split(",") if x.strip())
        else:
            raise FilterError(f"filters must be a list of KEY=VALUE strings or an object, got {type(items).__name__}")
        out = cls()
        for k, v in pairs.items():
            if k not in FILTER_KEYS:
                raise FilterError(f"unknown filter {k!r}; known filters: {', '.join(FILTER_KEYS)}", k)
            if k in ("date_from", "date_to"):
                if isinstance(v, list) and len(v) == 1:  # KEY=VALUE items arrive as one-element lists
                    v = v[0]
                date = _iso_date(v) if isinstance(v, str) else None
                if date is None:
                    raise FilterError(f"filter {k} needs one ISO date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS), "
                                      f"got {v!r}", k)
                setattr(out, k, date)
                continue
            vals = [v] if isinstance(v, str) else v if isinstance(v, list) else None
            if not vals or not all(isinstance(x, str) and x.strip() for x in vals):
                raise FilterError(f"filter {k} needs one or more non-empty strings, got {v!r}", k)
            if k == "specialty":  # stored lower-case (ingest.documents.specialties)
                vals = [x.lower() for x in vals]
            if k == "doc_type":
                bad = [x for x in vals if x not in DOC_TYPES]
                if bad:
                    raise FilterError(f"unknown doc_type {bad}; choose from {', '.join(DOC_TYPES)}", k)
            setattr(out, k, vals)
        return out


def _iso_date(v: str) -> str | None:
    """"YYYY-MM-DD" as given, a date-time as RFC 3339 UTC ("YYYY-MM-DDTHH:MM:SSZ"), or None if it is neither."""
    import datetime as dt
    v = v.strip()
    try:
        if len(v) == 10:
            return dt.date.fromisoformat(v).isoformat()
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00") if v.endswith("Z") else v)
    except ValueError:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
