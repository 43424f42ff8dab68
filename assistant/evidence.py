"""Evidence selection: retrieved hits -> numbered sources within a token budget, near-duplicates removed."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import re

from assistant.condense import subject_of
from assistant.types import Source
from assistant.verify import split_sentences
from carecite.textsafety import strip_instructions
from indexes.bm25 import BM25Encoder
from indexes.types import Hit
from ingest.chunker import chunk_body

_bm25 = BM25Encoder()

DUP_JACCARD = 0.6  # word-trigram overlap above which two passages count as the same text


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = text.lower().split()
    return {tuple(words[i:i + 3]) for i in range(max(len(words) - 2, 1))}


def near_duplicate(a: set, b: set) -> bool:
    """Jaccard over word trigrams, or one passage (almost) contained in the other."""
    if not a or not b:
        return False
    inter = len(a & b)
    return inter / len(a | b) >= DUP_JACCARD or inter / min(len(a), len(b)) >= 0.9


def _truncate(text: str, budget: int, count_tokens: Callable[[str], int]) -> str:
    """Whole leading sentences of `text` that fit in `budget` tokens (at least the first words if none does)."""
    out: list[str] = []
    for s in split_sentences(text):
        if count_tokens(" ".join(out + [s])) > budget:
            break
        out.append(s)
    if not out:
        words = text.split()
        while words and count_tokens(" ".join(words)) > budget:
            words = words[: max(len(words) * 3 // 4, 1) if len(words) > 1 else 0]
        return " ".join(words)
    return " ".join(out)


def to_source(n: int, hit: Hit, passage: str) -> Source:
    m = hit.chunk.metadata
    return Source(n=n, chunk_id=hit.chunk.id, doc_id=hit.chunk.doc_id, source=str(m.get("source", "")),
                  title=str(m.get("title", "")), section=str(m.get("section", "")), url=m.get("url") or None,
                  passage=passage, score=float(hit.score), doc_type=str(m.get("doc_type", "")))


MIN_WORDS_LEFT = 4  # a passage with less than this left once instructions are cut is dropped


def passage_text(hit: Hit) -> str:
    """The chunk's body as evidence: sentences that address a model cut (found now by carecite.textsafety, or
    listed in the chunk's payload by ingest, which saw the whole document); "" when nothing usable is left,
    or when ingest flagged the chunk and the flagged text cannot be located in it (fail closed)."""
    meta = hit.chunk.metadata
    known = meta.get("injection_text") or []
    body, flags = strip_instructions(chunk_body(hit.chunk).strip(), known if isinstance(known, list) else [known])
    if meta.get("injection") and not flags:
        return ""
    return "" if flags and len(body.split()) < MIN_WORDS_LEFT else body


def select_evidence(hits: Sequence[Hit], count_tokens: Callable[[str], int], *, budget_tokens: int,
                    max_passages: int, cut_instructions: bool = True) -> list[Source]:
    """Hits in rank order, skipping near-duplicates of passages already taken, until the budget or count is
    reached. Sentences addressing the model ("ignore previous instructions ...") are cut from every passage
    (passage_text; cut_instructions=False only for measuring what the cut prevents). The first passage is
    shortened to fit if it alone exceeds the budget; later ones that do not fit are skipped (a shorter one
    further down may still fit)."""
    if budget_tokens <= 0 or max_passages <= 0:
        raise ValueError(f"evidence budget and passage count must be positive, got {budget_tokens}, {max_passages}")
    out: list[Source] = []
    taken: list[set] = []
    used = 0
    for hit in hits:
        if len(out) >= max_passages:
            break
        body = passage_text(hit) if cut_instructions else chunk_body(hit.chunk).strip()  # data, never orders
        if not body:
            continue
        sh = _shingles(body)
        if any(near_duplicate(sh, t) for t in taken):
            continue
        n_tok = count_tokens(body)
        if used + n_tok > budget_tokens:
            if out:
                continue
            body = _truncate(body, budget_tokens, count_tokens)
            n_tok = count_tokens(body)
        taken.append(sh)
        used += n_tok
        out.append(to_source(len(out) + 1, hit, body))
    return out


def missing_terms(question: str, texts: Sequence[str], tokenize: Callable[[str], list[str]]) -> list[str]:
    """Topic words of the question that look like names (a drug, disease or gene: split into 3+ word pieces by
    the embedder's tokenizer, or capitalised mid-sentence) and that none of `texts` mentions.

    A question about "zorbaxitrine" answered from passages that never name it must abstain, however close
    the passages are otherwise."""
    subject = subject_of(question)
    have = {t for text in texts for t in _bm25.tokens(text)}
    out = []
    for m in re.finditer(r"[A-Za-z][A-Za-z'-]{3,}", subject):
        for w in m.group(0).split("-"):
            stems = _bm25.tokens(w)
            if len(w) < 4 or not stems or stems[0] in have:
                continue
            capitalised = w[0].isupper() and question.find(w) > 0
            if len(tokenize(w)) >= 3 or capitalised:
                out.append(w)
    return out
