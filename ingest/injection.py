"""Instruction-like text in documents (prompt injection), flagged at ingest so an operator sees it.

Detection runs on each whole section (an instruction split across two chunks is still seen) with
carecite.textsafety.find_instructions. Every chunk holding a flagged sentence, or a run of its words, gets in its
payload:
    injection: true
    injection_reasons: ["addressed to an AI", ...]
    injection_text: [the flagged sentences as written]
The text itself is stored unchanged (nothing in a document is lost); the assistant cuts the flagged sentences
from any passage it shows or cites (assistant/evidence.py), and drops a flagged chunk whose flagged text it
cannot locate.
"""
from __future__ import annotations

from indexes.types import Chunk
from ingest.chunker import chunk_body
from ingest.documents import Document
from carecite.textsafety import find_instructions, shares_flagged_text

MAX_SHOWN = 3  # flagged sentences quoted per document in the ingest report


def flag_injections(doc: Document, chunks: list[Chunk]) -> dict | None:
    """Mark the chunks of `doc` that hold instruction-like text; the report entry for the document, or None."""
    flags = [f for s in [doc.title, *(sec.title for sec in doc.sections), *(sec.text for sec in doc.sections)]
             for f in find_instructions(s)]
    if not flags:
        return None
    marked = 0
    for c in chunks:
        body = chunk_body(c)
        hits = [f for f in flags if shares_flagged_text(c.text, [f.text]) or shares_flagged_text(body, [f.text])]
        if hits:
            marked += 1
            c.metadata["injection"] = True
            c.metadata["injection_reasons"] = sorted({f.reason for f in hits})
            c.metadata["injection_text"] = list(dict.fromkeys(f.text for f in hits))
    return {"doc_id": doc.doc_id, "path": doc.path, "chunks": marked, "of_chunks": len(chunks),
            "reasons": sorted({f.reason for f in flags}),
            "text": [f.text[:300] for f in flags[:MAX_SHOWN]], "sentences": len(flags)}
