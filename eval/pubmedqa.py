"""PubMedQA PQA-L test set (500 expert-labelled questions): context settings, prompt, answer reading,
accuracy and macro-F1 (as the dataset's own evaluation.py), and a resumable run loop.

Context settings: 'none' (question only), 'oracle' (the question's own abstract, the original PubMedQA
reasoning-required setting) and 'retrieved' (passages the caller found for the question).
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from eval.reports import append_jsonl, read_jsonl, resume_jsonl

LABELS = ("yes", "no", "maybe")
CONTEXT_SETTINGS = ("none", "oracle", "retrieved")

SYSTEM = ('You are a helpful medical expert, and your task is to answer a biomedical research question with '
          'yes, no or maybe. Please first think step-by-step and then answer. Organize your output in a json '
          'formatted as Dict{"step_by_step_thinking": Str(explanation), "answer": Str{yes/no/maybe}}.')
PROMPT_WITH_CONTEXT = ("Here is the context:\n{context}\n\nHere is the question:\n{question}\n\n"
                       "Answer yes, no or maybe. Please think step-by-step and generate your output in json:\n")
PROMPT_NO_CONTEXT = ("Here is the question:\n{question}\n\n"
                     "Answer yes, no or maybe. Please think step-by-step and generate your output in json:\n")
PASSAGE = "[{n}] {title}\n{text}"

# answer_fn(question, context or None) -> (raw model output, extra JSON-able details)
AnswerFn = Callable[[str, str | None], tuple[str, dict]]
ContextFn = Callable[["PubMedQAItem"], str | None]


@dataclass(frozen=True)
class PubMedQAItem:
    pmid: str
    question: str
    contexts: tuple[str, ...]
    label: str  # yes / no / maybe
    long_answer: str


def data_dir() -> Path:
    from carecite.settings import Settings
    return Settings().paths.data_mirror / "pubmedqa"


def load_test_set(directory: Path | str | None = None, limit: int | None = None) -> list[PubMedQAItem]:
    """The 500 PQA-L test questions named by test_ground_truth.json, in that file's order."""
    d = Path(directory) if directory else data_dir()
    for name in ("ori_pqal.json", "test_ground_truth.json"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"PubMedQA folder {d} lacks {name}")
    pqal = json.loads((d / "ori_pqal.json").read_text(encoding="utf-8"))
    truth = json.loads((d / "test_ground_truth.json").read_text(encoding="utf-8"))
    items = []
    for pmid, label in list(truth.items())[:limit]:
        if pmid not in pqal:
            raise ValueError(f"test question {pmid} is missing from ori_pqal.json")
        if label not in LABELS:
            raise ValueError(f"test question {pmid} has label {label!r}, expected one of {LABELS}")
        row = pqal[pmid]
        items.append(PubMedQAItem(pmid, row["QUESTION"], tuple(row["CONTEXTS"]), label, row["LONG_ANSWER"]))
    return items


# ---------------------------------------------------------------- contexts and prompt

def no_context(item: PubMedQAItem) -> None:
    return None


def oracle_context(item: PubMedQAItem) -> str:
    """The abstract's context paragraphs (without its conclusion, which is the long answer)."""
    return "\n".join(item.contexts)


def retrieved_context(passages: Sequence[tuple[str, str]]) -> str:
    """(title, text) passages the caller retrieved for the question, numbered from 1."""
    return "\n\n".join(PASSAGE.format(n=i, title=t, text=x) for i, (t, x) in enumerate(passages, start=1))


def build_prompt(question: str, context: str | None) -> tuple[str, str]:
    """(system, user) messages."""
    if context is None:
        return SYSTEM, PROMPT_NO_CONTEXT.format(question=question)
    return SYSTEM, PROMPT_WITH_CONTEXT.format(context=context, question=question)


# ---------------------------------------------------------------- reading answers

_JSON_ANSWER = re.compile(r'"(?:answer|answer_choice|final_decision)"\s*:\s*"\s*(?:\(?[ABC][.):]?\s*)?(yes|no|maybe)\b',
                          re.IGNORECASE)
_JSON_LETTER = re.compile(r'"(?:answer|answer_choice)"\s*:\s*"\s*\(?([ABC])(?:[.):"]|\s*")')
_STATED = re.compile(r"answer\s*(?:is|would be|:|=)?\s*[:\-]?\s*[\"'*(]*\s*(yes|no|maybe)\b", re.IGNORECASE)
_WORD = re.compile(r"\b(yes|no|maybe)\b", re.IGNORECASE)


def parse_yes_no_maybe(text: str) -> str | None:
    """yes / no / maybe from a model's output, or None when it commits to none.

    Tried in order: a JSON answer field (its word, or MIRAGE-style letter A=yes, B=no, C=maybe), a bare one-word
    answer, the last "answer is X", a reply opening with the word, and a text that names exactly one label.
    """
    m = _JSON_ANSWER.findall(text)
    if m:
        return m[-1].lower()
    m = _JSON_LETTER.findall(text)
    if m:
        return LABELS["ABC".index(m[-1])]
    bare = re.sub(r"[^a-z]", "", text.lower())
    if bare in LABELS:
        return bare
    m = _STATED.findall(text)
    if m:
        return m[-1].lower()
    opening = re.match(r"\s*[\"'*(]*(yes|no|maybe)\b", text, re.IGNORECASE)
    if opening:
        return opening.group(1).lower()
    named = {w.lower() for w in _WORD.findall(text)}
    return named.pop() if len(named) == 1 else None


# ---------------------------------------------------------------- metrics

def score(golds: Sequence[str], preds: Sequence[str | None]) -> dict:
    """Accuracy and macro-F1 over yes/no/maybe (sklearn's f1_score(average='macro', labels=LABELS)).

    A None prediction is wrong: a false negative for its gold label, a false positive for none. A label with no
    gold and no prediction has F1 0. Also per-label precision/recall/F1 and the confusion counts."""
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold labels but {len(preds)} predictions")
    if not golds:
        raise ValueError("no predictions to score")
    bad = {g for g in golds if g not in LABELS} | {p for p in preds if p is not None and p not in LABELS}
    if bad:
        raise ValueError(f"labels must be one of {LABELS} (or None for a prediction), got {sorted(bad)}")
    per_label = {}
    for label in LABELS:
        tp = sum(g == label and p == label for g, p in zip(golds, preds))
        fp = sum(g != label and p == label for g, p in zip(golds, preds))
        fn = sum(g == label and p != label for g, p in zip(golds, preds))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return {
        "accuracy": sum(g == p for g, p in zip(golds, preds)) / len(golds),
        "macro_f1": sum(v["f1"] for v in per_label.values()) / len(LABELS),
        "per_label": per_label,
        "unparsed": sum(p is None for p in preds),
        "n": len(golds),
    }


# ---------------------------------------------------------------- run loop

def context_fn_for(setting: str) -> ContextFn | None:
    """The context function of a built-in setting; None for 'retrieved' (the caller's answer_fn retrieves)."""
    if setting not in CONTEXT_SETTINGS:
        raise ValueError(f"unknown context setting {setting!r}; choose one of {CONTEXT_SETTINGS}")
    return {"none": no_context, "oracle": oracle_context, "retrieved": None}[setting]


def run_pubmedqa(items: Iterable[PubMedQAItem], answer_fn: AnswerFn, out_path: Path | str,
                 context_fn: ContextFn | None = no_context, resume: bool = True, progress: bool = True) -> dict:
    """Answer each item not yet in out_path (append-only JSONL), then score all items in ``items``.

    ``context_fn(item)`` gives the context passed to answer_fn: no_context, oracle_context, or None to pass no
    context and let answer_fn retrieve from the question itself. Each line: pmid, raw, pred, label, seconds, extra.
    With resume=False an existing file is an error, never overwritten.
    """
    out_path = Path(out_path)
    items = list(items)
    done = resume_jsonl(out_path, "pmid", resume, "predictions")
    pending = [it for it in items if it.pmid not in done]
    for item in tqdm(pending, desc="PubMedQA", unit="q", disable=not progress or not pending, dynamic_ncols=True):
        context = context_fn(item) if context_fn else None
        t0 = time.perf_counter()
        raw, extra = answer_fn(item.question, context)
        if not isinstance(raw, str):
            raise TypeError(f"answer_fn must return (str, dict), got {type(raw).__name__} for {item.pmid}")
        record = {"pmid": item.pmid, "raw": raw, "pred": parse_yes_no_maybe(raw), "label": item.label,
                  "seconds": round(time.perf_counter() - t0, 3), "extra": extra}
        append_jsonl(out_path, record)
        done[item.pmid] = record
    answered = [it for it in items if it.pmid in done]
    result = score([it.label for it in answered], [done[it.pmid]["pred"] for it in answered])
    return result | {"done": len(answered), "total": len(items)}

