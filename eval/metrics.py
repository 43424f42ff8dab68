"""Retrieval metrics, BEIR loading, TREC runs, query splits and an index-independent BM25 baseline.

A run is ``{qid: [(docid, score), ...]}``; qrels are ``{qid: {docid: grade}}``.
Rankings are ordered by score, highest first (ties keep the run's order); repeated docids keep their first place.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Run = dict[str, list[tuple[str, float]]]
Qrels = dict[str, dict[str, int]]

_METRIC = re.compile(r"^(ndcg|recall|mrr)@(\d+)$")
DEFAULT_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


# ---------------------------------------------------------------- per-query metrics

def ranked_docids(hits: Sequence[tuple[str, float]]) -> list[str]:
    """Docids by descending score (stable for ties), duplicates dropped."""
    order = sorted(range(len(hits)), key=lambda i: -float(hits[i][1]))
    seen: set[str] = set()
    out = []
    for i in order:
        docid = hits[i][0]
        if docid not in seen:
            seen.add(docid)
            out.append(docid)
    return out


def recall_at_k(ranking: Sequence[str], rels: Mapping[str, int], k: int, min_rel: int = 1) -> float:
    """Share of the relevant documents (grade >= min_rel) found in the top k."""
    relevant = {d for d, g in rels.items() if g >= min_rel}
    if not relevant:
        raise ValueError("recall is undefined for a query without relevant documents")
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], rels: Mapping[str, int], k: int, min_rel: int = 1) -> float:
    """1/rank of the first relevant document in the top k, else 0."""
    for rank, docid in enumerate(ranking[:k], start=1):
        if rels.get(docid, 0) >= min_rel:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    """nDCG with gain = grade (negative grades count 0), discount 1/log2(rank+1), ideal ranking from the qrels."""
    dcg = sum(max(rels.get(d, 0), 0) / math.log2(r + 1) for r, d in enumerate(ranking[:k], start=1))
    ideal_gains = sorted((g for g in rels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(r + 1) for r, g in enumerate(ideal_gains, start=1))
    if idcg == 0:
        raise ValueError("nDCG is undefined for a query without positive grades")
    return dcg / idcg


def parse_metric(name: str) -> tuple[str, int]:
    m = _METRIC.match(name)
    if not m or int(m.group(2)) < 1:
        raise ValueError(f"unknown metric {name!r}; use ndcg@K, recall@K or mrr@K with K >= 1")
    return m.group(1), int(m.group(2))


@dataclass
class RunScores:
    """Per-query values and their means. Skipped queries have no judgment >= min_rel;
    missing queries are judged but absent from the run (they score 0)."""
    per_query: dict[str, dict[str, float]]
    mean: dict[str, float]
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def n_queries(self) -> int:
        return len(self.per_query)


def evaluate_run(run: Mapping[str, Sequence[tuple[str, float]]], qrels: Mapping[str, Mapping[str, int]],
                 metrics: Sequence[str] = DEFAULT_METRICS, min_rel: int = 1,
                 qids: Iterable[str] | None = None) -> RunScores:
    """Score a run over ``qids`` (default: every judged query)."""
    parsed = [(name, *parse_metric(name)) for name in metrics]
    if min_rel < 1:
        raise ValueError(f"min_rel must be >= 1, got {min_rel}")
    wanted = list(qrels) if qids is None else list(qids)
    per_query: dict[str, dict[str, float]] = {}
    skipped, missing = [], []
    for qid in wanted:
        rels = qrels.get(qid, {})
        if not any(g >= min_rel for g in rels.values()):
            skipped.append(qid)
            continue
        if qid not in run:
            missing.append(qid)
        ranking = ranked_docids(run.get(qid, []))
        values = {}
        for name, kind, k in parsed:
            if kind == "ndcg":
                values[name] = ndcg_at_k(ranking, rels, k)
            elif kind == "recall":
                values[name] = recall_at_k(ranking, rels, k, min_rel)
            else:
                values[name] = mrr_at_k(ranking, rels, k, min_rel)
        per_query[qid] = values
    mean = {name: (float(np.mean([v[name] for v in per_query.values()])) if per_query else 0.0)
            for name, _, _ in parsed}
    return RunScores(per_query, mean, skipped, missing)


def group_means(per_query: Mapping[str, Mapping[str, float]],
                groups: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """Mean of each metric per group (e.g. query set); queries without a group go to '?'."""
    buckets: dict[str, list[Mapping[str, float]]] = {}
    for qid, values in per_query.items():
        buckets.setdefault(groups.get(qid, "?"), []).append(values)
    return {g: {m: float(np.mean([v[m] for v in rows])) for m in rows[0]} | {"n": float(len(rows))}
            for g, rows in sorted(buckets.items())}


# ---------------------------------------------------------------- BEIR files

def _beir_rows(path: Path, what: str) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "_id" not in row or "text" not in row:
                raise ValueError(f"{path}:{n}: {what} row lacks '_id' or 'text'")
            yield row


def iter_corpus(path: Path) -> Iterator[dict]:
    """Rows of a BEIR corpus.jsonl (each with '_id', 'title', 'text', ...)."""
    return _beir_rows(path, "corpus")


def load_queries(path: Path) -> dict[str, dict]:
    """queries.jsonl as {qid: row} (row has 'text' and any extra fields such as 'set')."""
    return {str(row["_id"]): row for row in _beir_rows(path, "query")}


def load_qrels(path: Path) -> Qrels:
    """qrels.tsv with a header row: query-id, corpus-id, score."""
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:3] != ["query-id", "corpus-id", "score"]:
            raise ValueError(f"{path}: expected header 'query-id\\tcorpus-id\\tscore', got {header!r}")
        for n, line in enumerate(f, start=2):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                raise ValueError(f"{path}:{n}: expected 3 tab-separated fields, got {len(parts)}")
            try:
                grade = int(parts[2])
            except ValueError:
                raise ValueError(f"{path}:{n}: score {parts[2]!r} is not an integer") from None
            qrels.setdefault(parts[0], {})[parts[1]] = grade
    return qrels


def load_beir(directory: Path | str) -> tuple[dict[str, dict], dict[str, str], Qrels]:
    """(corpus {docid: row}, queries {qid: text}, qrels) from a BEIR folder."""
    d = Path(directory)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels.tsv"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"BEIR folder {d} lacks {name}")
    corpus = {str(row["_id"]): row for row in iter_corpus(d / "corpus.jsonl")}
    queries = {qid: row["text"] for qid, row in load_queries(d / "queries.jsonl").items()}
    return corpus, queries, load_qrels(d / "qrels.tsv")


# ---------------------------------------------------------------- TREC runs

def write_trec_run(run: Mapping[str, Sequence[tuple[str, float]]], path: Path | str, tag: str) -> None:
    """One line per hit: ``qid Q0 docid rank score tag`` (rank from 1, by descending score)."""
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"run tag must be a non-empty word, got {tag!r}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for qid, hits in run.items():
            scores = {}
            for docid, score in hits:
                scores.setdefault(docid, float(score))
            for rank, docid in enumerate(ranked_docids(hits), start=1):
                if any(c.isspace() for c in qid + docid):
                    raise ValueError(f"TREC ids cannot hold whitespace: {qid!r} {docid!r}")
                f.write(f"{qid} Q0 {docid} {rank} {scores[docid]:.6f} {tag}\n")


def read_trec_run(path: Path | str) -> Run:
    run: Run = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ValueError(f"{path}:{n}: expected 'qid Q0 docid rank score tag', got {line.strip()!r}")
            run.setdefault(parts[0], []).append((parts[2], float(parts[4])))
    return run


# ---------------------------------------------------------------- query split

def stable_hash(text: str, seed: int | str = 0) -> int:
    """A process-independent 64-bit hash (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(f"{seed}\x1f{text}".encode()).digest()[:8], "big")


def split_queries(qids: Iterable[str], seed: int | str = 0) -> tuple[list[str], list[str]]:
    """Deterministic half/half split (tune, test); independent of input order. Odd counts give test one more."""
    ordered = sorted(set(qids), key=lambda q: (stable_hash(q, seed), q))
    half = len(ordered) // 2
    return sorted(ordered[:half]), sorted(ordered[half:])


# ---------------------------------------------------------------- BM25 reference baseline

# A short English stopword list; negations are kept on purpose ("no fever" must not match "fever").
BASELINE_STOPWORDS = frozenset(
    "a an the and or of to in on at by for with from as is are was were be been being it its this that these those "
    "what which who whom how when where why do does did i you he she we they them their there here than then so "
    "such can could would should may might will shall about into over under also".split())
_WORD = re.compile(r"\w+")


class BaselineTokenizer:
    """Lowercase, \\w+ words, stopwords out, Snowball English stems (PyStemmer)."""

    def __init__(self) -> None:
        import Stemmer
        self._stemmer = Stemmer.Stemmer("english")

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in BASELINE_STOPWORDS]
        return self._stemmer.stemWords(words)


def rank_bm25_baseline(corpus: Mapping[str, Mapping[str, str]], queries: Mapping[str, str],
                       top_k: int = 100, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25) -> Run:
    """BM25Okapi (rank-bm25 package) over 'title\\ntext'; per query the top_k documents with a score > 0,
    by descending score (ties in corpus order)."""
    from rank_bm25 import BM25Okapi

    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    tok = BaselineTokenizer()
    doc_ids = list(corpus)
    bm25 = BM25Okapi([tok(f"{corpus[d].get('title', '')}\n{corpus[d]['text']}") for d in doc_ids],
                     k1=k1, b=b, epsilon=epsilon)
    k = min(top_k, len(doc_ids))
    run: Run = {}
    for qid, text in queries.items():
        scores = bm25.get_scores(tok(text))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]
        run[qid] = [(doc_ids[j], float(scores[j])) for j in top if scores[j] > 0]
    return run

