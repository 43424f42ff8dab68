"""PubMedQA ori_pqal.json: one literature Document per abstract, its labelled contexts as Sections.

The LONG_ANSWER (the abstract's conclusion) is left out: it states the answer the benchmark asks for.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ingest.documents import Document, ReaderError, Section
from ingest.readers._io import DEFAULT_MAX_BYTES, BadLinesError, normalize_ws, read_json


def read_pubmedqa_file(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document]:
    path = Path(path)
    data = read_json(path, max_bytes)
    if not isinstance(data, dict):
        raise ReaderError(f"{path}: expected a JSON object keyed by PMID, got {type(data).__name__}")
    bad: list[tuple[int, str]] = []
    for i, (pmid, rec) in enumerate(data.items(), 1):
        if not isinstance(rec, dict) or not isinstance(rec.get("CONTEXTS"), list) or not rec.get("QUESTION"):
            bad.append((i, f"PMID {pmid}: needs QUESTION and a CONTEXTS list"))
            continue
        labels = rec.get("LABELS") or []
        sections = [Section(title=(str(labels[j]).capitalize() if j < len(labels) else ""), text=normalize_ws(c))
                    for j, c in enumerate(rec["CONTEXTS"]) if isinstance(c, str) and c.strip()]
        if not sections:
            bad.append((i, f"PMID {pmid}: no non-empty context"))
            continue
        year = str(rec.get("YEAR") or "").strip()
        yield Document(doc_id=f"pubmed:{pmid}", doc_type="literature", source="PubMedQA",
                       title=normalize_ws(rec["QUESTION"]), sections=sections, path=str(path),
                       url=f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/",
                       extra={"pmid": str(pmid), **({"year": int(year)} if year.isdigit() else {})})
    if bad:
        raise BadLinesError(path, bad, "record")
