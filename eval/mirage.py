"""MIRAGE (Xiong et al., ACL Findings 2024): load the benchmark, prompt, run a model, score like the authors.

Rules of the benchmark: zero-shot, one option letter per question, retrieval from the question only
(never the options). Accuracies here are percentages, as in the published table.
"""
from __future__ import annotations

import csv
import json
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from eval.answer_parsing import authors_choice, parse_answer
from eval.metrics import stable_hash
from eval.reports import append_jsonl, read_jsonl

# MedRAG's prompts (github Teddy-XiongGZ/MedRAG src/template.py), used for the published numbers.
SYSTEM_COT = ('You are a helpful medical expert, and your task is to answer a multi-choice medical question. '
              'Please first think step-by-step and then choose the answer from the provided options. '
              'Organize your output in a json formatted as Dict{"step_by_step_thinking": Str(explanation), '
              '"answer_choice": Str{A/B/C/...}}. Your responses will be used for research purposes only, '
              'so please have a definite answer.')
SYSTEM_RAG = ('You are a helpful medical expert, and your task is to answer a multi-choice medical question '
              'using the relevant documents. Please first think step-by-step and then choose the answer from '
              'the provided options. Organize your output in a json formatted as Dict{"step_by_step_thinking": '
              'Str(explanation), "answer_choice": Str{A/B/C/...}}. Your responses will be used for research '
              'purposes only, so please have a definite answer.')
PROMPT_COT = ("\nHere is the question:\n{question}\n\nHere are the potential choices:\n{options}\n\n"
              "Please think step-by-step and generate your output in json:\n")
PROMPT_RAG = ("\nHere are the relevant documents:\n{context}\n\nHere is the question:\n{question}\n\n"
              "Here are the potential choices:\n{options}\n\nPlease think step-by-step and generate your output in json:\n")
SNIPPET = "Document [{n}] (Title: {title}) {text}"

# The authors' dataset order (the average is the plain mean over these five accuracies).
SUBSETS = ("mmlu", "medqa", "medmcqa", "pubmedqa", "bioasq")
SUBSET_LABELS = {"mmlu": "MMLU-Med", "medqa": "MedQA-US", "medmcqa": "MedMCQA", "pubmedqa": "PubMedQA*",
                 "bioasq": "BioASQ-Y/N"}
# The authors name prediction files '<split>_<id>.json'; MedMCQA uses its dev split.
SPLITS = {"mmlu": "test", "medqa": "test", "medmcqa": "dev", "pubmedqa": "test", "bioasq": "test"}

AnswerFn = Callable[[str, dict[str, str]], tuple[str, dict]]


@dataclass(frozen=True)
class MirageQuestion:
    subset: str
    qid: str
    question: str
    options: dict[str, str]
    answer: str


def data_dir() -> Path:
    from carecite.settings import Settings
    return Settings().paths.data_mirror / "mirage"


def _check_subsets(subsets: Iterable[str] | None) -> list[str]:
    chosen = list(SUBSETS if subsets is None else subsets)
    unknown = [s for s in chosen if s not in SUBSETS]
    if unknown:
        raise ValueError(f"unknown MIRAGE subset(s) {unknown}; choose from {list(SUBSETS)}")
    return chosen


def load_benchmark(path: Path | str | None = None, subsets: Iterable[str] | None = None,
                   limit: int | None = None) -> dict[str, list[MirageQuestion]]:
    """{subset: questions} in a fixed pseudo-random order, so ``limit`` takes the same sample each time and a
    larger limit extends a smaller one."""
    path = Path(path) if path else data_dir() / "benchmark.json"
    if not path.is_file():
        raise FileNotFoundError(f"MIRAGE benchmark not found at {path}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    raw = json.loads(path.read_text(encoding="utf-8"))
    out = {}
    for subset in _check_subsets(subsets):
        if subset not in raw:
            raise ValueError(f"{path} has no subset {subset!r} (it has {sorted(raw)})")
        qids = sorted(raw[subset], key=lambda q: (stable_hash(q, "mirage"), q))[:limit]
        out[subset] = [MirageQuestion(subset, q, raw[subset][q]["question"], dict(raw[subset][q]["options"]),
                                      raw[subset][q]["answer"]) for q in qids]
    return out


# ---------------------------------------------------------------- prompts

def format_options(options: Mapping[str, str]) -> str:
    return "\n".join(f"{k}. {options[k]}" for k in sorted(options))


def format_snippets(snippets: Sequence[tuple[str, str]]) -> str:
    """(title, text) pairs as MedRAG's numbered documents."""
    return "\n".join(SNIPPET.format(n=i, title=t, text=x) for i, (t, x) in enumerate(snippets))


def build_prompt(question: str, options: Mapping[str, str],
                 snippets: Sequence[tuple[str, str]] | None = None) -> tuple[str, str]:
    """(system, user) messages: chain-of-thought without snippets, MedRAG with them."""
    if snippets is None:
        return SYSTEM_COT, PROMPT_COT.format(question=question, options=format_options(options))
    return SYSTEM_RAG, PROMPT_RAG.format(context=format_snippets(snippets), question=question,
                                         options=format_options(options))


# ---------------------------------------------------------------- scoring

def read_authors_predictions(tar_path: Path | str | None = None, llm: str = "OpenAI/gpt-4-32k",
                             setting: str = "rag_32/medcorp/RRF-4") -> dict[str, dict[str, str]]:
    """The authors' raw outputs from prediction.tar.gz: {subset: {qid: raw}}; None where a file holds no output.

    ``setting`` is 'cot' or 'rag_<k>/<corpus>/<retriever>'; files are prediction/<subset>/<mode>/<llm>/...
    """
    tar_path = Path(tar_path) if tar_path else data_dir() / "prediction.tar.gz"
    mode, _, rest = setting.partition("/")
    out: dict[str, dict[str, str]] = {}
    with tarfile.open(tar_path, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 4 or parts[2] != mode:
                continue
            subset, folder, name = parts[1], "/".join(parts[3:-1]), parts[-1]
            if folder != "/".join(x for x in (llm, rest) if x) or not name.endswith(".json"):
                continue
            prefix = SPLITS.get(subset, "test") + "_"
            outputs = json.loads(tar.extractfile(member).read())
            out.setdefault(subset, {})[name[len(prefix):-len(".json")]] = outputs[0] if outputs else None
    if not out:
        raise ValueError(f"no predictions for llm={llm!r} setting={setting!r} in {tar_path}")
    return out


def score_predictions(benchmark: Mapping[str, Sequence[MirageQuestion]],
                      predictions: Mapping[str, Mapping[str, str | None]]) -> dict:
    """Score raw outputs {subset: {qid: raw}} against the benchmark; a None output (none produced) is wrong.

    accuracy_pct: the authors' reader (unreadable outputs count as "A"), comparable with the paper.
    strict_accuracy_pct: our reader, where an output naming no option is wrong; 'unparsed' counts those.
    Accuracy is over the answered questions; 'complete' says whether all were answered.
    """
    subsets = {}
    for subset, questions in benchmark.items():
        preds = predictions.get(subset, {})
        done = [q for q in questions if q.qid in preds]
        outputs = [preds[q.qid] for q in done]
        correct = sum(o is not None and authors_choice(o) == q.answer for o, q in zip(outputs, done))
        parsed = [None if o is None else parse_answer(o, q.options) for o, q in zip(outputs, done)]
        strict = sum(p == q.answer for p, q in zip(parsed, done))
        subsets[subset] = {
            "accuracy_pct": 100.0 * correct / len(done) if done else None,
            "strict_accuracy_pct": 100.0 * strict / len(done) if done else None,
            "correct": correct, "unparsed": parsed.count(None), "done": len(done), "total": len(questions)}
    scored = [s for s in subsets.values() if s["done"]]
    return {
        "subsets": subsets,
        "average_pct": sum(s["accuracy_pct"] for s in scored) / len(scored) if scored else None,
        "strict_average_pct": sum(s["strict_accuracy_pct"] for s in scored) / len(scored) if scored else None,
        "done": sum(s["done"] for s in subsets.values()),
        "total": sum(s["total"] for s in subsets.values()),
        "complete": all(s["done"] == s["total"] for s in subsets.values()),
    }


# ---------------------------------------------------------------- run loop

def read_predictions(out_dir: Path | str, subsets: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """Raw outputs written by ``run_mirage``: {subset: {qid: raw}}."""
    out = {}
    for subset in _check_subsets(subsets):
        path = Path(out_dir) / f"{subset}.jsonl"
        out[subset] = {r["id"]: r["raw"] for r in read_jsonl(path, repair=True)} if path.exists() else {}
    return out


def run_mirage(benchmark: Mapping[str, Sequence[MirageQuestion]], answer_fn: AnswerFn, out_dir: Path | str,
               subsets: Iterable[str] | None = None, limit: int | None = None, resume: bool = True,
               progress: bool = True) -> dict:
    """Answer every selected question not answered yet, appending to <out_dir>/<subset>.jsonl, then score.

    answer_fn(question, options) -> (raw model output, extra JSON-able details). Retrieval inside it must use
    the question only. Each line: id, raw, choice (authors' reader), parsed (ours), answer, seconds, extra.
    With resume=False an existing prediction file is an error, never overwritten.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in _check_subsets(subsets if subsets is not None else benchmark) if s in benchmark]
    selection = {s: list(benchmark[s])[:limit] for s in chosen}
    done = read_predictions(out_dir, chosen)
    if not resume:
        existing = [s for s in chosen if done[s]]
        if existing:
            raise FileExistsError(f"{out_dir} already holds predictions for {existing}; "
                                  "pass resume=True or use another folder")
    for subset, questions in selection.items():
        pending = [q for q in questions if q.qid not in done[subset]]
        if not pending:
            continue
        bar = tqdm(pending, desc=f"MIRAGE {subset}", unit="q", disable=not progress, dynamic_ncols=True)
        for q in bar:
            t0 = time.perf_counter()
            raw, extra = answer_fn(q.question, dict(q.options))
            if not isinstance(raw, str):
                raise TypeError(f"answer_fn must return (str, dict), got {type(raw).__name__} for {subset}/{q.qid}")
            append_jsonl(out_dir / f"{subset}.jsonl", {
                "id": q.qid, "raw": raw, "choice": authors_choice(raw), "parsed": parse_answer(raw, q.options),
                "answer": q.answer, "seconds": round(time.perf_counter() - t0, 3), "extra": extra})
            done[subset][q.qid] = raw
    return score_predictions(selection, done)


# ---------------------------------------------------------------- published numbers

def published_rows(path: Path | str | None = None, all_systems: bool = False) -> list[dict]:
    """Rows of the MIRAGE leaderboard (percentages per subset and average); by default only the paper's
    own MedRAG and CoT rows (Xiong et al., 2024)."""
    path = Path(path) if path else data_dir() / "leaderboard_from_docs_index.tsv"
    columns = dict(zip(("MMLU-Med (%)", "MedQA-US (%)", "MedMCQA (%)", "PubMedQA* (%)", "BioASQ-Y/N (%)"), SUBSETS))
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for rec in csv.DictReader(f, delimiter="\t"):
            if not all_systems and "Xiong et al., 2024" not in rec["System"]:
                continue
            row = {"system": rec["System"].split("(")[0].strip(), "llm": rec["LLM"].split("(")[0].strip(),
                   "corpus": rec["Corpus"], "retriever": rec["Retriever"],
                   "setting": "MedRAG" if "MedRAG" in rec["System"] else "CoT" if "CoT" in rec["System"] else "other"}
            row.update({key: float(rec[col]) for col, key in columns.items()})
            row["average"] = float(rec["Average"])
            rows.append(row)
    return rows
