"""OpenStax nursing sections.jsonl: one Document per (book, module), one Section per line."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ingest.documents import Document, Section
from ingest.readers._io import DEFAULT_MAX_BYTES, BadLinesError, iter_jsonl, normalize_ws

REQUIRED = ("id", "book", "module", "title", "text")
SPECIALTY_BY_BOOK = {"pharmacology": ["pharmacology"], "nutrition": ["nutrition"],
                     "population-health": ["public health"]}


def read_openstax_file(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document]:
    """Yields every module built from the good lines, then re-raises BadLinesError if any line was bad."""
    path = Path(path)
    modules: dict[tuple[str, str], list[dict]] = {}
    bad: BadLinesError | None = None
    try:
        for n, row in iter_jsonl(path, max_bytes, REQUIRED):
            modules.setdefault((str(row["book"]), str(row["module"])), []).append({**row, "_line": n})
    except BadLinesError as e:
        bad = e
    for (book, module), rows in modules.items():
        rows.sort(key=lambda r: (r.get("order", 0), r["_line"]))
        sections = [Section(title=normalize_ws(r.get("section") or r["title"]), text=normalize_ws(r["text"]),
                            extra={"section_id": r["id"]})
                    for r in rows if str(r["text"]).strip()]
        if sections:
            yield Document(doc_id=f"openstax:{book}/{module}", doc_type="reference", source=f"OpenStax/{book}",
                           title=normalize_ws(rows[0]["title"]), sections=sections,
                           url=f"https://openstax.org/details/books/{book}", path=str(path),
                           specialty=SPECIALTY_BY_BOOK.get(book))
    if bad:
        raise bad
