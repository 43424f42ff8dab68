"""CSV rows with the same checks as every other reader (size, binary, UTF-8, required columns)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterator

from ingest.documents import ReaderError
from ingest.readers._io import DEFAULT_MAX_BYTES, read_text


def csv_header(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> list[str]:
    first = read_text(path, max_bytes).split("\n", 1)[0]
    return [c.strip() for c in next(csv.reader([first]), [])]


def iter_csv(path: Path, required: tuple[str, ...], max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[tuple[int, dict]]:
    """Yield (row number, row) with stripped column names; a missing column is a ReaderError up front."""
    text = read_text(path, max_bytes)
    csv.field_size_limit(max(csv.field_size_limit(), max_bytes))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    cols = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in required if c not in cols]
    if missing:
        raise ReaderError(f"{path}: CSV lacks column(s) {', '.join(missing)} (has {', '.join(cols) or 'none'})")
    try:
        for n, row in enumerate(reader, 1):
            yield n, {(k or "").strip(): (v or "") for k, v in row.items() if k is not None}
    except csv.Error as e:
        raise ReaderError(f"{path}: malformed CSV near row {reader.line_num}: {e}") from None
