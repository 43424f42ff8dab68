"""BEIR corpus.jsonl: one Document per passage; doc_id is the passage `_id` exactly, so qrels map onto hits."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ingest.documents import Document, Section
from ingest.readers._io import DEFAULT_MAX_BYTES, iter_jsonl, normalize_ws

MEDQUAD_SITES = {"CancerGov", "GARD", "GHR", "MPlusHealthTopics", "NIDDK", "NINDS", "NIHSeniorHealth", "NHLBI", "CDC"}


def classify(pid: str, source: str) -> tuple[str, str]:
    """(doc_type, source) in the same vocabulary the native corpus readers use."""
    s = source.strip()
    if s.lower().startswith("openstax") or pid.startswith("os-"):
        book = s.split(None, 1)[1] if " " in s else "unknown"
        return "reference", f"OpenStax/{book}"
    if s.lower() in ("pubmed", "pubmedqa") or pid.startswith("pmid-"):
        return "literature", "PubMedQA"
    if s in MEDQUAD_SITES or s.lower() == "medquad" or pid.startswith("mq-"):
        return "guideline", f"MedQuAD/{s}" if s in MEDQUAD_SITES else "MedQuAD"
    return "reference", s or "BEIR"


def read_beir_file(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document]:
    """Yields every good passage, then raises BadLinesError if any line was bad."""
    path = Path(path)
    for _, row in iter_jsonl(path, max_bytes, ("_id", "text")):
        pid, text = str(row["_id"]), normalize_ws(str(row["text"] or ""))
        if not text:
            continue
        doc_type, source = classify(pid, str(row.get("source") or ""))
        title = normalize_ws(str(row.get("title") or ""))
        year = str(row.get("year") or "")
        yield Document(doc_id=pid, doc_type=doc_type, source=source, title=title,
                       sections=[Section(title=title, text=text)], url=row.get("url") or None, path=str(path),
                       extra={"year": int(year)} if year.isdigit() else {})
