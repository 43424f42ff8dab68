"""BM25 as Qdrant sparse vectors, compatible with fastembed's Qdrant/bm25.

Document side: weight = tf*(k+1) / (tf + k*(1 - b + b*len/avg_len)); token id = abs(mmh3(stem)).
Query side: each distinct stem with weight 1. Qdrant applies IDF (modifier=IDF on the sparse vector).
Negations stay out of the stopwords: "no fever" must not match "fever".
"""
from __future__ import annotations

import re
from collections import Counter

import mmh3
import Stemmer

from indexes.base import SparseVec
from indexes.types import Chunk

NEGATIONS = frozenset({"no", "not", "nor", "without", "never", "none", "neither", "don", "doesn", "didn",
                       "isn", "wasn", "aren", "weren", "won", "wouldn", "shouldn", "couldn", "cannot", "t"})

# NLTK's English list (as fastembed uses), less the negations above.
_NLTK_EN = """i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves
he him his himself she she's her hers herself it it's its itself they them their theirs themselves what which who
whom this that that'll these those am is are was were be been being have has had having do does did doing a an the
and but if or because as until while of at by for with about against between into through during before after above
below to from up down in out on off over under again further then once here there when where why how all any both
each few more most other some such only own same so than too very s can will just should should've now d ll m o re
ve y ain aren't couldn't didn't doesn't hadn hadn't hasn hasn't haven haven't isn't ma mightn mightn't mustn mustn't
needn needn't shan shan't shouldn't wasn't weren't won't wouldn't""".split()
STOPWORDS = frozenset(w for w in _NLTK_EN if w not in NEGATIONS and "'" not in w)

_NON_WORD = re.compile(r"[^\w]+")


class BM25Encoder:
    def __init__(self, avg_len: float = 256.0, k: float = 1.2, b: float = 0.75, max_token_len: int = 40):
        if avg_len <= 0:
            raise ValueError(f"avg_len must be positive, got {avg_len}")
        self.avg_len, self.k, self.b, self.max_token_len = float(avg_len), k, b, max_token_len
        self._stemmer = Stemmer.Stemmer("english")

    def tokens(self, text: str) -> list[str]:
        words = _NON_WORD.sub(" ", text.lower()).split()
        words = [w for w in words if w not in STOPWORDS and len(w) <= self.max_token_len]
        return [s for s in self._stemmer.stemWords(words) if s]

    @staticmethod
    def token_id(stem: str) -> int:
        return abs(mmh3.hash(stem))

    def encode_document(self, text: str) -> SparseVec:
        stems = self.tokens(text)
        n = len(stems)
        norm = self.k * (1 - self.b + self.b * n / self.avg_len)
        weights: dict[int, float] = {}
        for tid, tf in _merge_ids(Counter(stems)).items():  # colliding stems merged into one id
            weights[tid] = tf * (self.k + 1) / (tf + norm)
        return SparseVec(list(weights), list(weights.values()))

    def encode_query(self, text: str) -> SparseVec:
        ids = sorted({self.token_id(s) for s in self.tokens(text)})
        return SparseVec(ids, [1.0] * len(ids))

    def doc_length(self, text: str) -> int:
        return len(self.tokens(text))


def _merge_ids(counts: Counter) -> dict[int, int]:
    out: dict[int, int] = {}
    for stem, tf in counts.items():
        tid = BM25Encoder.token_id(stem)
        out[tid] = out.get(tid, 0) + tf
    return out


def sparse_text(chunk: Chunk) -> str:
    """What BM25 sees for a chunk: title and section once more (a field boost), then the text."""
    m = chunk.metadata
    return f"{m.get('title', '')}\n{m.get('section', '')}\n{chunk.text}"
