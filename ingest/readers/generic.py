"""User files: Markdown, HTML, plain text and PDF. doc_type and source are parameters; doc_id is "<source>:<file name>"
unless given (the ingest pipeline gives "<source>:<path from the ingest root's parent>", see ingest.pipeline)."""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Iterator

from ingest.documents import Document, ReaderError, Section
from ingest.readers._io import DEFAULT_MAX_BYTES, normalize_ws, read_bytes, read_text

_ATX = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_DROP_TAGS = ("script", "style", "nav", "header", "footer", "aside", "noscript", "form", "template", "svg")
_BLOCK_TAGS = ("p", "div", "li", "tr", "br", "pre", "blockquote", "dd", "dt", "h4", "h5", "h6", "table",
               "ul", "ol", "section", "figcaption", "caption")


def default_source(path: Path, source: str | None = None) -> str:
    """The source label of a user file: the one given, else its folder's name."""
    return source or Path(path).parent.name or "files"


def _doc(path: Path, title: str, sections: list[Section], doc_type: str, source: str | None,
         doc_id: str | None) -> Document:
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise ReaderError(f"{path}: no text content found")
    source = default_source(path, source)
    return Document(doc_id=doc_id or f"{source}:{path.name}", doc_type=doc_type, source=source,
                    title=title or path.stem, sections=sections, path=str(path))


def _path_title(stack: list[tuple[int, str]]) -> str:
    return " > ".join(t for _, t in stack)


def read_markdown(path: Path, *, doc_type: str = "guideline", source: str | None = None,
                  doc_id: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document]:
    """Sections at every ATX heading (outside code fences); a section's title is its heading path "A > B"."""
    path = Path(path)
    stack: list[tuple[int, str]] = []
    sections: list[Section] = []
    lines: list[str] = []
    in_fence = False

    def flush():
        text = normalize_ws(_LINK.sub(r"\1", _IMAGE.sub(r"\1", "\n".join(lines))))
        sections.append(Section(title=_path_title(stack), text=text))

    for line in read_text(path, max_bytes).split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _ATX.match(line)
        if m:
            flush()
            lines = []
            level = len(m.group(1))
            stack = [(lv, t) for lv, t in stack if lv < level] + [(level, m.group(2).strip())]
        else:
            lines.append(line)
    flush()
    h1 = next((s.title.split(" > ")[0] for s in sections if s.title), "")
    yield _doc(path, h1, sections, doc_type, source, doc_id)


def read_html(path: Path, *, doc_type: str = "guideline", source: str | None = None,
              doc_id: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document]:
    """Main text only (boilerplate tags dropped; <main>/<article> preferred), split at h1-h3."""
    from bs4 import BeautifulSoup

    path = Path(path)
    soup = BeautifulSoup(read_text(path, max_bytes), "lxml")
    page_title = normalize_ws(soup.title.get_text(" ")) if soup.title else ""
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    marker = "\x00"
    for h in root.find_all(["h1", "h2", "h3"]):
        h.replace_with(f"\n{marker}{h.name[1]}{marker}{normalize_ws(h.get_text(' '))}{marker}\n")
    for tag in root.find_all(_BLOCK_TAGS):
        if tag.name == "li":
            tag.insert(0, "- ")
        tag.append("\n")
    parts = root.get_text("").split(marker)
    # parts: [text, level, heading, text, level, heading, text, ...]
    stack: list[tuple[int, str]] = []
    sections = [Section(title="", text=normalize_ws(parts[0]))]
    for i in range(1, len(parts) - 2, 3):
        level, heading, text = int(parts[i]), parts[i + 1], parts[i + 2]
        stack = [(lv, t) for lv, t in stack if lv < level] + [(level, heading)]
        sections.append(Section(title=_path_title(stack), text=normalize_ws(text)))
    h1 = next((t for lv, t in stack if lv == 1), "")
    yield _doc(path, page_title or h1, sections, doc_type, source, doc_id)


def read_plaintext(path: Path, *, doc_type: str = "guideline", source: str | None = None,
                   doc_id: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document]:
    """One section; paragraphs kept apart by blank lines."""
    path = Path(path)
    yield _doc(path, path.stem, [Section(title="", text=normalize_ws(read_text(path, max_bytes)))],
               doc_type, source, doc_id)


def read_pdf(path: Path, *, doc_type: str = "guideline", source: str | None = None,
             doc_id: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document]:
    """One Section per page with text, extra={"page": n} (1-based). No text layer at all is a ReaderError."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    path = Path(path)
    data = read_bytes(path, max_bytes, allow_binary=True)
    if not data.startswith(b"%PDF"):
        raise ReaderError(f"{path}: not a PDF (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted and not reader.decrypt("")
        if not encrypted:
            pages = [normalize_ws(p.extract_text() or "") for p in reader.pages]
            title = normalize_ws(str((reader.metadata or {}).get("/Title") or ""))
    except (PdfReadError, ValueError, KeyError, TypeError) as e:
        raise ReaderError(f"{path}: unreadable PDF ({type(e).__name__}: {e})") from None
    if encrypted:
        raise ReaderError(f"{path}: PDF is encrypted with a password")
    if not any(pages):
        raise ReaderError(f"{path}: PDF has no text layer ({len(pages)} page(s) of images?); OCR it first")
    sections = [Section(title=f"Page {n}", text=t, extra={"page": n}) for n, t in enumerate(pages, 1) if t]
    yield _doc(path, title, sections, doc_type, source, doc_id)
