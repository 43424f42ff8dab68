"""MTS-Dialog: one case Document per row's note section (section_header / section_text). The dialogue is not used."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from ingest.documents import Document, Section
from ingest.readers._csv import iter_csv
from ingest.readers._io import DEFAULT_MAX_BYTES, BadLinesError, normalize_ws

COLUMNS = ("ID", "section_header", "section_text")
# The dataset's normalised headers, spelled out (README of abachaa/MTS-Dialog).
HEADERS = {
    "FAM/SOCHX": "Family history / social history", "GENHX": "History of present illness",
    "PASTMEDICALHX": "Past medical history", "CC": "Chief complaint", "PASTSURGICAL": "Past surgical history",
    "ALLERGY": "Allergies", "ROS": "Review of systems", "MEDICATIONS": "Medications", "ASSESSMENT": "Assessment",
    "EXAM": "Exam", "DIAGNOSIS": "Diagnosis", "DISPOSITION": "Disposition", "PLAN": "Plan",
    "EDCOURSE": "Emergency department course", "IMMUNIZATIONS": "Immunizations", "IMAGING": "Imaging",
    "GYNHX": "Gynecologic history", "PROCEDURES": "Procedures", "OTHER_HISTORY": "Other history", "LABS": "Labs",
}
_SPLITS = (("validation", "valid"), ("training", "train"), ("testset-1", "test1"), ("testset-2", "test2"))


def split_name(path: Path) -> str:
    stem = path.stem.lower()
    return next((short for key, short in _SPLITS if key in stem), re.sub(r"[^a-z0-9]+", "-", stem))


def read_mts_file(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document]:
    path = Path(path)
    split = split_name(path)
    bad: list[tuple[int, str]] = []
    for n, row in iter_csv(path, COLUMNS, max_bytes):
        rid, code, text = row["ID"].strip(), row["section_header"].strip().upper(), normalize_ws(row["section_text"])
        if not rid or not text:
            bad.append((n, "empty ID" if not rid else f"row {rid} has an empty section_text"))
            continue
        header = HEADERS.get(code, code.capitalize() or "Note")
        yield Document(doc_id=f"mts:{split}:{rid}", doc_type="case", source="MTS-Dialog",
                       title=f"MTS-Dialog {split} {rid}: {header}", path=str(path),
                       sections=[Section(title=header, text=text, extra={"section_code": code})],
                       extra={"split": split})
    if bad:
        raise BadLinesError(path, bad, "row")
