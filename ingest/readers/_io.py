"""Safe file access shared by the readers: every bad file becomes a ReaderError naming the file and the problem."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from ingest.documents import ReaderError

DEFAULT_MAX_BYTES = 50_000_000  # Settings().chunking.max_file_mb; the pipeline passes its own
_SNIFF = 8192


class BadLinesError(ReaderError):
    """Some lines of a line-based file were unusable; the good ones were still yielded before this was raised."""

    def __init__(self, path: Path | str, bad_lines: list[tuple[int, str]], unit: str = "line"):
        self.path = str(path)
        self.bad_lines = bad_lines  # (line/row/record number, reason)
        shown = "; ".join(f"{unit} {n}: {why}" for n, why in bad_lines[:5])
        more = f" (and {len(bad_lines) - 5} more)" if len(bad_lines) > 5 else ""
        super().__init__(f"{path}: {len(bad_lines)} bad {unit}(s) skipped: {shown}{more}")


def read_bytes(path: Path, max_bytes: int = DEFAULT_MAX_BYTES, *, allow_binary: bool = False) -> bytes:
    """The file's bytes after the existence, size and binary checks."""
    path = Path(path)
    if not path.is_file():
        raise ReaderError(f"{path}: not a file or does not exist")
    try:
        size = path.stat().st_size
        if size == 0:
            raise ReaderError(f"{path}: file is empty")
        if size > max_bytes:
            raise ReaderError(f"{path}: file is {size:,} bytes, over the {max_bytes:,}-byte limit")
        data = path.read_bytes()
    except OSError as e:  # permission denied, I/O error, ...: this file fails, not the folder
        raise ReaderError(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None
    if not allow_binary and b"\x00" in data[:_SNIFF]:
        raise ReaderError(f"{path}: looks binary (NUL bytes in the first {_SNIFF} bytes), not a text file")
    return data


def read_text(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Strict UTF-8 text (a BOM is dropped); anything else is a ReaderError saying where decoding failed."""
    data = read_bytes(path, max_bytes)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ReaderError(f"{path}: not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); "
                          "re-save the file as UTF-8") from None
    if not text.strip():
        raise ReaderError(f"{path}: file has no text (only whitespace)")
    return text


def read_json(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    text = read_text(path, max_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ReaderError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def iter_jsonl(path: Path, max_bytes: int = DEFAULT_MAX_BYTES,
               required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for every good line, then raise BadLinesError if any line was bad.

    A line is bad when it is not a JSON object or lacks one of the `required` keys. Blank lines are ignored.
    """
    bad: list[tuple[int, str]] = []
    for n, line in enumerate(read_text(path, max_bytes).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            bad.append((n, f"malformed JSON ({e.msg} at column {e.colno})"))
            continue
        if not isinstance(obj, dict):
            bad.append((n, f"expected a JSON object, got {type(obj).__name__}"))
            continue
        missing = [k for k in required if k not in obj]
        if missing:
            bad.append((n, f"missing key(s) {', '.join(missing)}"))
            continue
        yield n, obj
    if bad:
        raise BadLinesError(path, bad)


_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANKS = re.compile(r"\n\s*\n+")


def normalize_ws(text: str) -> str:
    """Collapse runs of spaces, trim every line, keep at most one blank line between paragraphs."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n"))
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()
