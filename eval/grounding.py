"""Grounding of the assistant's answers: citation recall, citation precision and abstention correctness.

Question set (eval/data/grounding_questions.jsonl, one JSON object a line: id, question, answerable, kind,
gold_doc_id, gold_passage_id):
  answerable    40 MedQuAD questions of the clinical-dev set (8 on CancerGov documents that a small test index
                holds, up to 4 per other MedQuAD site, in a fixed hashed order; questions whose file the ingest
                reader cannot read are left out) and 6 questions we wrote on OpenStax pharmacology sections;
                every gold document is part of the default corpus;
  unanswerable  20 questions we wrote: fictional drugs, fictional diseases, and topics outside medicine.
Three of the CancerGov questions come first, then the rest round-robin over sites and kinds, so that --limit N
takes a varied sample.

Metrics, over the answers the assistant delivered (not abstained) and, separately, over every draft it wrote:
  citation recall     share of claim sentences (lead-ins and "not found" sentences excluded) citing a passage;
  citation precision  share of (sentence, cited passage) pairs where that one passage supports the sentence,
                      judged by the verifier (assistant/verify.py) at the configured support threshold;
  abstention          answerable questions must be answered, unanswerable ones abstained on; answerable
                      questions whose gold document is not in the index are left out (counted as skipped).
The verifier's own agreement with hand labels (tests/fixtures/grounding_labels.jsonl: sentence, passage,
supported) says how far its precision judgments can be trusted.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from assistant.types import Answer
from assistant.verify import Verifier, strip_citations
from eval.reports import append_jsonl, read_jsonl, resume_jsonl
from indexes.types import Filters

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "eval" / "data" / "grounding_questions.jsonl"
LABELS = ROOT / "tests" / "fixtures" / "grounding_labels.jsonl"


@dataclass(frozen=True)
class GroundingQuestion:
    qid: str
    question: str
    answerable: bool
    kind: str
    gold_doc_id: str | None = None


def load_questions(path: Path | str | None = None, limit: int | None = None) -> list[GroundingQuestion]:
    """The question set; limit keeps the first N answerable and the first N unanswerable questions."""
    path = Path(path) if path else QUESTIONS
    if not path.is_file():
        raise FileNotFoundError(f"grounding question set not found at {path}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    out, seen, counts = [], set(), {True: 0, False: 0}
    for n, row in enumerate(read_jsonl(path), start=1):
        missing = [k for k in ("id", "question", "answerable") if k not in row]
        if missing or not isinstance(row["answerable"], bool):
            raise ValueError(f"{path}:{n}: needs id, question and a true/false 'answerable' (missing {missing})")
        if row["id"] in seen:
            raise ValueError(f"{path}:{n}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        if row["answerable"] and not row.get("gold_doc_id"):
            raise ValueError(f"{path}:{n}: answerable question {row['id']!r} has no gold_doc_id")
        if limit is not None and counts[row["answerable"]] >= limit:
            continue
        counts[row["answerable"]] += 1
        out.append(GroundingQuestion(row["id"], row["question"], row["answerable"], row.get("kind", ""),
                                     row.get("gold_doc_id")))
    return out


# ---------------------------------------------------------------- one answer

def citation_judgments(answer: Answer, passages: Sequence[str], verifier: Verifier) -> list[dict]:
    """One row per (claim sentence, cited passage): whether that passage alone supports the sentence.
    passages[n-1] is the text verified for source [n] (the chunk with its heading, as the pipeline checks)."""
    todo = [(i, n, strip_citations(v.text)) for i, v in enumerate(answer.sentences) if v.claim
            for n in v.citations if 1 <= n <= len(passages)]
    supports = verifier.check_many([(claim, [passages[n - 1]]) for _, n, claim in todo])
    return [{"sentence": i, "n": n, "doc_id": answer.sources[n - 1].doc_id, "supported": s.supported,
             "score": round(s.score, 4), "reason": s.reason} for (i, n, _), s in zip(todo, supports)]


def record_for(q: GroundingQuestion, answer: Answer, passages: Sequence[str], judgments: list[dict],
               gold_indexed: bool | None, seconds: float) -> dict:
    """The JSON line kept per question (enough to rescore without rerunning)."""
    sentences = [{"text": v.text, "claim": v.claim, "citations": v.citations, "supported": v.supported,
                  "reason": v.reason} for v in answer.sentences]
    cites_gold = bool(q.gold_doc_id) and any(j["supported"] and j["doc_id"] == q.gold_doc_id for j in judgments)
    return {"id": q.qid, "question": q.question, "answerable": q.answerable, "kind": q.kind,
            "gold_doc_id": q.gold_doc_id, "gold_indexed": gold_indexed, "abstained": answer.abstained,
            "abstain_reason": answer.abstain_reason, "answer": answer.answer, "sentences": sentences,
            "citations": judgments, "cites_gold": cites_gold,
            "sources": [{"n": s.n, "doc_id": s.doc_id, "chunk_id": s.chunk_id, "title": s.title, "text": p}
                        for s, p in zip(answer.sources, passages)],
            "generator": answer.models.get("generator", ""), "seconds": round(seconds, 3)}


def gold_indexed(index, doc_id: str | None) -> bool | None:
    return None if not doc_id else index.count(Filters(doc_id=[doc_id])) > 0


def answer_one(assistant, q: GroundingQuestion) -> dict:
    """Ask the assistant one question and judge its citations."""
    t0 = time.perf_counter()
    answer = assistant.ask(q.question)
    seconds = time.perf_counter() - t0
    index = assistant.searcher.index
    chunks = {c.id: c.text for c in index.get([s.chunk_id for s in answer.sources])} if answer.sources else {}
    passages = [chunks.get(s.chunk_id, s.passage) for s in answer.sources]
    judgments = citation_judgments(answer, passages, assistant.verifier)
    return record_for(q, answer, passages, judgments, gold_indexed(index, q.gold_doc_id), seconds)


# ---------------------------------------------------------------- run loop and scores

def run_grounding(questions: Iterable[GroundingQuestion], assistant, out_path: Path | str, resume: bool = True,
                  progress: bool = True) -> dict:
    """Answer each question not yet in out_path (append-only JSONL), then score all given questions."""
    out_path = Path(out_path)
    questions = list(questions)
    done = resume_jsonl(out_path, "id", resume, "answers")
    pending = [q for q in questions if q.qid not in done]
    for q in tqdm(pending, desc="grounding", unit="q", disable=not progress or not pending, dynamic_ncols=True):
        record = answer_one(assistant, q)
        append_jsonl(out_path, record)
        done[q.qid] = record
    records = [done[q.qid] for q in questions if q.qid in done]
    return score_grounding(records) | {"done": len(records), "total": len(questions)}


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _citation_scores(records: Sequence[dict]) -> dict:
    claims = [s for r in records for s in r["sentences"] if s["claim"]]
    cites = [c for r in records for c in r["citations"]]
    return {"answers": len(records), "claim_sentences": len(claims),
            "citation_recall": _ratio(sum(1 for s in claims if s["citations"]), len(claims)),
            "citations": len(cites), "citation_precision": _ratio(sum(c["supported"] for c in cites), len(cites)),
            "sentence_support_rate": _ratio(sum(s["supported"] for s in claims), len(claims))}


def score_grounding(records: Sequence[dict]) -> dict:
    """Citation recall/precision (delivered answers, and all drafts) and abstention correctness."""
    drafts = [r for r in records if r["sentences"]]
    delivered = [r for r in drafts if not r["abstained"]]
    ans = [r for r in records if r["answerable"] and r["gold_indexed"] is not False]
    una = [r for r in records if not r["answerable"]]
    answered = [r for r in ans if not r["abstained"]]
    correct = len(answered) + sum(r["abstained"] for r in una)
    by_kind = {}
    for r in records:
        k = by_kind.setdefault(r["kind"] or ("answerable" if r["answerable"] else "unanswerable"),
                               {"n": 0, "abstained": 0})
        k["n"] += 1
        k["abstained"] += int(r["abstained"])
    return {
        "delivered": _citation_scores(delivered),
        "all_drafts": _citation_scores(drafts),
        "abstention": {
            "correct": _ratio(correct, len(ans) + len(una)),
            "answered_when_answerable": _ratio(len(answered), len(ans)),
            "abstained_when_unanswerable": _ratio(sum(r["abstained"] for r in una), len(una)),
            "answered_citing_gold": _ratio(sum(r["cites_gold"] for r in answered), len(ans)),
            "n_answerable": len(ans), "n_unanswerable": len(una),
            "skipped_gold_not_indexed": sum(1 for r in records if r["answerable"] and r["gold_indexed"] is False)},
        "by_kind": by_kind,
        "mean_seconds": _ratio(sum(r["seconds"] for r in records), len(records)),
    }


# ---------------------------------------------------------------- hand labels

def load_labels(path: Path | str | None = None) -> list[dict]:
    """Hand-labelled (sentence, passage, supported) rows."""
    path = Path(path) if path else LABELS
    if not path.is_file():
        raise FileNotFoundError(f"hand labels not found at {path}")
    rows = read_jsonl(path)
    for n, r in enumerate(rows, start=1):
        if not isinstance(r.get("sentence"), str) or not isinstance(r.get("passage"), str) \
                or not isinstance(r.get("supported"), bool):
            raise ValueError(f"{path}:{n}: needs a 'sentence' and a 'passage' (text) and 'supported' (true/false)")
    return rows


def label_agreement(labels: Sequence[dict], verifier: Verifier) -> dict:
    """How often the verifier agrees with the hand labels: accuracy, Cohen's kappa, and the verifier's
    precision/recall for 'supported' (its precision bounds how far a citation-precision figure can be trusted)."""
    if not labels:
        raise ValueError("no hand labels to compare with")
    preds = [s.supported for s in verifier.check_many([(strip_citations(r["sentence"]), [r["passage"]])
                                                       for r in labels])]
    gold = [r["supported"] for r in labels]
    n = len(gold)
    tp = sum(g and p for g, p in zip(gold, preds))
    tn = sum(not g and not p for g, p in zip(gold, preds))
    fp = sum(not g and p for g, p in zip(gold, preds))
    fn = sum(g and not p for g, p in zip(gold, preds))
    agree = (tp + tn) / n
    chance = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / (n * n)
    return {"n": n, "n_supported": tp + fn, "agreement": agree,
            "kappa": (agree - chance) / (1 - chance) if chance < 1 else 1.0,
            "verifier_precision": _ratio(tp, tp + fp), "verifier_recall": _ratio(tp, tp + fn),
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
            "disagreements": [{"sentence": r["sentence"], "label": r["supported"], "verifier": p}
                              for r, p in zip(labels, preds) if r["supported"] != p]}

