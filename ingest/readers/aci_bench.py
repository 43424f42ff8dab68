"""ACI-Bench visit notes: one case Document per encounter, one Section per note heading. The dialogue is not used."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from ingest.documents import Document, Section
from ingest.readers._csv import iter_csv
from ingest.readers._io import DEFAULT_MAX_BYTES, BadLinesError, normalize_ws

COLUMNS = ("encounter_id", "note")
# A heading is a line of capitals alone (optional colon) that names a note part; "GERD." or "MSK: ..." are not.
_HEADING_WORDS = {"COMPLAINT", "HISTORY", "ILLNESS", "REVIEW", "SYSTEMS", "SYMPTOMS", "EXAM", "EXAMINATION",
                  "RESULTS", "ASSESSMENT", "PLAN", "INSTRUCTIONS", "VITALS", "MEDICATIONS", "ALLERGIES",
                  "IMPRESSION", "PROCEDURE", "PROCEDURES", "ORDERS", "SUBJECTIVE", "OBJECTIVE", "CC", "HPI", "ROS"}
_HEADING = re.compile(r"^([A-Z][A-Z &/]*?)\s*:?\s*$")
_ALIASES = {"CC": "CHIEF COMPLAINT", "HPI": "HISTORY OF PRESENT ILLNESS", "ROS": "REVIEW OF SYSTEMS"}


def note_heading(line: str) -> str | None:
    """The canonical heading if this line is one, else None."""
    m = _HEADING.match(line.strip())
    if not m or not _HEADING_WORDS.intersection(m.group(1).replace("/", " ").split()):
        return None
    return _ALIASES.get(m.group(1), m.group(1))


def split_note(note: str) -> list[Section]:
    sections: list[Section] = []
    title, lines = "", []

    def flush():
        text = normalize_ws("\n".join(lines))
        if text:
            sections.append(Section(title=title, text=text))

    for line in note.replace("\r\n", "\n").split("\n"):
        heading = note_heading(line)
        if heading:
            flush()
            title, lines = heading, []
        else:
            lines.append(line)
    flush()
    return sections


def _chief_complaint(meta: dict, sections: list[Section]) -> str:
    cc = (meta.get("cc") or "").strip()
    if not cc:
        cc = next((s.text.split("\n")[0].rstrip(".") for s in sections if s.title == "CHIEF COMPLAINT"), "visit note")
    return cc


def read_aci_file(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document]:
    """One CSV split (train.csv, valid.csv, ...), joined with its <split>_metadata.csv for the chief complaint.

    Patient names and ages from the metadata are never copied into the Document.
    """
    path = Path(path)
    split = path.stem
    meta_path = path.with_name(f"{split}_metadata.csv")
    meta = {}
    if meta_path.is_file():
        meta = {r["encounter_id"].strip(): r for _, r in iter_csv(meta_path, ("encounter_id",), max_bytes)}
    bad: list[tuple[int, str]] = []
    for n, row in iter_csv(path, COLUMNS, max_bytes):
        enc = row["encounter_id"].strip()
        sections = split_note(row["note"])
        if not enc or not sections:
            bad.append((n, "empty encounter_id" if not enc else f"encounter {enc} has an empty note"))
            continue
        m = meta.get(enc, {})
        yield Document(doc_id=f"aci:{split}:{enc}", doc_type="case", source="ACI-Bench",
                       title=f"Case {enc}: {_chief_complaint(m, sections)}", sections=sections, path=str(path),
                       extra={"encounter_id": enc, "split": split})
    if bad:
        raise BadLinesError(path, bad, "row")
