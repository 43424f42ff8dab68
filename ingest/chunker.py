"""Structure-aware chunking: sections are never merged, long sections split on sentence boundaries.

Each chunk's text is "<doc title> — <section title>\\n<body>" (the heading gives the embedder context);
metadata["heading"] holds that first line, so `chunk_body(chunk)` recovers the body.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from indexes.types import Chunk, chunk_id
from ingest.documents import Document

# Words that end in "." without ending a sentence (lower-cased, without the final dot).
ABBREVIATIONS = frozenset("""
dr mr mrs ms prof sr jr st vs etc e.g i.e al approx appt dept fig figs no nos vol inc ltd co cf ca est avg
mg mcg ml kg lb lbs oz cm mm min max hr hrs wk wks mo mos yr yrs pt pts dx hx tx rx sx fx
q qd bid tid qid qhs prn po iv im sc sq subq cap caps tab tabs ref refs ed eds temp resp gen univ
jan feb mar apr jun jul aug sep sept oct nov dec
""".split())
# A candidate boundary: terminal punctuation (plus closing quotes/brackets), whitespace, then a capital,
# digit, opening quote/bracket or bullet.
_BOUNDARY = re.compile(r"[.!?]+[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9•\-])")


def split_sentences(text: str) -> list[str]:
    """Sentences of one line of text; abbreviations, initials, decimals and list numbers do not end one."""
    out, start = [], 0
    for m in _BOUNDARY.finditer(text):
        head = text[start:m.start()]
        word = head.rsplit(None, 1)[-1] if head.strip() else ""
        if text[m.start()] == "." and _not_an_end(word, head):
            continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    tail = text[start:].strip()
    return out + [tail] if tail else out


def _not_an_end(word: str, head: str) -> bool:
    w = word.lstrip("(\"'“‘").lower()
    return (w in ABBREVIATIONS
            or bool(re.fullmatch(r"[a-z]", w))  # an initial: "J. Smith"
            or bool(re.fullmatch(r"(?:[a-z]\.)+[a-z]", w))  # "e.g", "b.i.d", "U.S"
            or (w.isdigit() and len(w) <= 2 and head.strip() == word))  # "1." opening a numbered item


@dataclass
class _Unit:
    text: str
    tokens: int
    new_line: bool  # starts a line in the source (joined with "\n", else " ")
    whole: bool  # a whole sentence (only those are repeated as overlap)


def _units(text: str, count: Callable[[str], int], budget: int) -> list[_Unit]:
    units: list[_Unit] = []
    for line in text.split("\n"):
        for i, sent in enumerate(split_sentences(line)):
            n = count(sent)
            if n <= budget:
                units.append(_Unit(sent, n, i == 0, True))
                continue
            for j, piece in enumerate(_split_words(sent, count, budget)):
                units.append(_Unit(piece, count(piece), i == 0 and j == 0, False))
    return units


def _split_words(sentence: str, count: Callable[[str], int], budget: int) -> list[str]:
    """Last resort for a sentence over budget: greedy word-boundary pieces (a single huge word stands alone)."""
    pieces, cur, cur_n = [], [], 0
    for word in sentence.split():
        n = count(word)
        if cur and cur_n + n > budget:
            pieces.append(" ".join(cur))
            cur, cur_n = [], 0
        cur.append(word)
        cur_n += n
    if cur:
        pieces.append(" ".join(cur))
    return pieces


def _join(units: list[_Unit]) -> str:
    return "".join((("\n" if u.new_line else " ") if k else "") + u.text for k, u in enumerate(units))


def heading_for(doc: Document, section_title: str) -> str:
    parts = [doc.title.strip(), section_title.strip()]
    if parts[0] == parts[1]:
        parts = parts[:1]
    return " — ".join(p for p in parts if p)


def chunk_document(doc: Document, count_tokens: Callable[[str], int], max_tokens: int = 256,
                   overlap_tokens: int = 32) -> list[Chunk]:
    """Chunks of at most max_tokens (heading included, by `count_tokens`), ids chunk_id(doc_id, ordinal)."""
    if max_tokens < 16 or not 0 <= overlap_tokens < max_tokens // 2:
        raise ValueError(f"need max_tokens >= 16 and 0 <= overlap_tokens < max_tokens/2, "
                         f"got {max_tokens} and {overlap_tokens}")
    base = doc.metadata()
    chunks: list[Chunk] = []
    for si, section in enumerate(doc.sections):
        if not section.text.strip():
            continue
        heading = _fit_heading(heading_for(doc, section.title), count_tokens, max_tokens // 4)
        prefix = f"{heading}\n" if heading else ""
        budget = max_tokens - (count_tokens(heading) if heading else 0)
        units = _units(section.text, count_tokens, budget)
        for body in _pack(units, budget, overlap_tokens, lambda t: count_tokens(prefix + t) <= max_tokens):
            meta = {**base, **section.extra, "section": section.title, "section_index": si,
                    "chunk_index": len(chunks), "heading": heading}
            chunks.append(Chunk(id=chunk_id(doc.doc_id, len(chunks)), doc_id=doc.doc_id, text=prefix + body,
                                metadata=meta))
    return chunks


def chunk_body(chunk: Chunk) -> str:
    """The chunk's text without its heading line."""
    heading = chunk.metadata.get("heading") or ""
    return chunk.text[len(heading) + 1:] if heading and chunk.text.startswith(heading + "\n") else chunk.text


def _fit_heading(heading: str, count: Callable[[str], int], limit: int) -> str:
    words = heading.split()
    while words and count(" ".join(words)) > limit:
        words.pop()
    return " ".join(words)


def _pack(units: list[_Unit], budget: int, overlap: int, fits: Callable[[str], bool]) -> list[str]:
    """Greedy packing of units into bodies; each next body repeats up to `overlap` tokens of whole sentences."""
    bodies, start, n = [], 0, len(units)
    while start < n:
        end, tok = start, 0
        while end < n and (end == start or tok + units[end].tokens <= budget):
            tok += units[end].tokens
            end += 1
        while end - start > 1 and not fits(_join(units[start:end])):  # a counter that is not additive
            end -= 1
        bodies.append(_join(units[start:end]))
        if end >= n:
            break
        nxt, otok = end, 0
        while (nxt - 1 > start and units[nxt - 1].whole and otok + units[nxt - 1].tokens <= overlap
               and otok + units[nxt - 1].tokens + units[end].tokens <= budget):
            nxt -= 1
            otok += units[nxt].tokens
        start = nxt
    return bodies
