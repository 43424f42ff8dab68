"""MedQuAD XML: one Document per file, one Section per answered question (stands in for guidelines)."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

from ingest.documents import Document, ReaderError, Section
from ingest.readers._io import DEFAULT_MAX_BYTES, normalize_ws, read_bytes

# Specialty where the publishing site makes it known (an NIH institute's remit); MedlinePlus is general.
SPECIALTY_BY_SITE = {
    "CancerGov": ["oncology"], "GARD": ["rare diseases", "genetics"], "GHR": ["genetics"],
    "NIDDK": ["endocrinology", "gastroenterology", "nephrology"], "NINDS": ["neurology"],
    "NIHSeniorHealth": ["geriatrics"], "NHLBI": ["cardiology", "pulmonology", "hematology"],
    "CDC": ["public health"],
}

# MedQuAD flattens bullet lists into "text    - item    - item"; put each item on its own line.
_INLINE_BULLET = re.compile(r"\s{2,}-\s+")


_SCHEMAS = {
    "Document": {"id": "id", "site": "source", "focus": "Focus", "pair": "QAPair", "q": "Question", "a": "Answer"},
    "DiseaseFile": {"id": "fid", "site": "source", "focus": "Focus", "pair": "QAPair", "q": "Question", "a": "Answer"},
    "doc": {"id": "docid", "site": "corpus", "focus": "doctitle-focus", "pair": "pair", "q": "question", "a": "answer"},
}


def clean_answer(text: str) -> str:
    return normalize_ws(_INLINE_BULLET.sub("\n- ", text))


def read_medquad_file(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document]:
    path = Path(path)
    data = read_bytes(path, max_bytes)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ReaderError(f"{path}: malformed XML ({e})") from None
    # Three schemas occur in the release: <Document id source>, and older <DiseaseFile fid source> and
    # <doc docid corpus> (lower-case <pair>/<question>/<answer>, <doctitle-focus>).
    schema = _SCHEMAS.get(root.tag)
    if schema is None or not root.get(schema["id"]):
        raise ReaderError(f"{path}: not a MedQuAD file (root element <{root.tag}> without an id attribute)")
    sections = []
    for pair in root.iter(schema["pair"]):
        q, a = pair.find(schema["q"]), pair.find(schema["a"])
        answer = clean_answer(a.text or "") if a is not None else ""
        if q is None or not answer:
            continue
        sections.append(Section(title=normalize_ws(q.text or ""), text=answer,
                                extra={"qid": q.get("qid", ""), "qtype": q.get("qtype", "")}))
    if not sections:  # a well-formed file whose answers were withheld upstream: nothing to index
        return
    focus = normalize_ws(root.findtext(schema["focus"]) or "") or sections[0].title
    site = root.get(schema["site"]) or "unknown"
    # <Document id> repeats across sites and across split files (0000013_2.xml, 0000013_2_1.xml): use site + file stem.
    yield Document(doc_id=f"medquad:{site}:{path.stem}", doc_type="guideline", source=f"MedQuAD/{site}",
                   title=focus, sections=sections, url=root.get("url") or None, path=str(path),
                   specialty=SPECIALTY_BY_SITE.get(site))

