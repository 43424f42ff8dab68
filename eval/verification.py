"""How well the answer-time checks work, measured on data built from the shared corpora.

1. Citation verification (`measure_verification`): labelled (sentence, passage) pairs from the clinical-dev
   corpus (MedQuAD answers, OpenStax pharmacology). Supported: the sentence with the chunk-sized window of
   its own passage, verbatim or edited as a generator would (parentheses and discourse words dropped, first
   clause only, two adjacent sentences merged, words reworded). Unsupported: the sentence with a random
   passage, with the most similar passage of another document, with a number or dose changed, with its
   negation flipped, or with its disease name swapped. Precision and recall treat "supported" as positive.
2. Hand labels (`measure_real_labels`): sentences the default model wrote over the test index, labelled by hand
   against the passage they cite or come from and against other retrieved passages
   (eval/data/verifier_labels_qwen.jsonl; passages are read from the data mirror by id, never copied).
3. Abstention (`measure_abstention`): MedQuAD dev questions whose gold passage is indexed (a temporary index
   of the gold passages plus distractors, built by the real ingest pipeline) must be answered; questions we
   wrote about topics absent from that index or fictional drugs must abstain.
   False-abstain rate = answerable questions that abstained; false-answer rate = unanswerable that answered.

    python -m eval.verification verify [--n 150] [--seed 1] [--calibrate]   # --calibrate: threshold from seed 0
    python -m eval.verification real
    python -m eval.verification abstain [--n 60] [--generator extractive]
"""
from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.verify import SEM_WEIGHT, Support, Verifier, has_negation, quantities, split_sentences
from carecite.models import get_embedder, gguf_path
from carecite.settings import Settings
from eval.metrics import iter_corpus, load_qrels, load_queries, stable_hash
from eval.retrieval import CachedEmbedder

DEV = Path("retrieval-dev") / "clinical-dev"
WINDOW_WORDS = 170  # about the 256-token chunks ingest writes
TRUE_KINDS = ("true_verbatim", "true_trimmed", "true_clause", "true_merged", "true_paraphrase")
FALSE_KINDS = ("swap_random", "swap_near", "number", "dose", "negation", "entity")


@dataclass
class Pair:
    claim: str
    passage: str
    supported: bool  # the label
    kind: str  # one of TRUE_KINDS / FALSE_KINDS
    doc_id: str


# ---------------------------------------------------------------- labelled pairs

def _windows(text: str) -> list[list[str]]:
    """Consecutive sentences packed into chunk-sized windows."""
    out, cur, n = [], [], 0
    for s in split_sentences(text):
        w = len(s.split())
        if cur and n + w > WINDOW_WORDS:
            out.append(cur)
            cur, n = [], 0
        cur.append(s)
        n += w
    return out + [cur] if cur else out


def _good_sentence(s: str) -> bool:
    w = len(s.split())
    return 8 <= w <= 45 and s[-1:] in ".!" and not s.startswith(("-", "(")) and "?" not in s


_AUX = re.compile(r"\b(is|are|was|were|can|may|will|should|could|might|must|does|do|has|have)\b")
_NEG_OUT = [(re.compile(r"\bcannot\b"), "can"), (re.compile(r"\b(is|are|was|were|does|do|did|can|will) not\b"), r"\1"),
            (re.compile(r"\bnot\b "), ""), (re.compile(r"\bno longer\b"), "still"), (re.compile(r"\bnever\b"), "always"),
            (re.compile(r"\bwithout\b"), "with"), (re.compile(r"n't\b"), "")]


def flip_negation(s: str) -> str | None:
    if has_negation(s):
        for pat, rep in _NEG_OUT:
            out, n = pat.subn(rep, s, count=1)
            if n and not has_negation(out):
                return out
        return None
    out, n = _AUX.subn(lambda m: f"{m.group(1)} not", s, count=1)
    return out if n else None


def change_number(s: str, rng: random.Random) -> str | None:
    nums = [m for m in re.finditer(r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?)(?![\w])", s)]
    if not nums:
        return None
    m = rng.choice(nums)
    raw = m.group(1).replace(",", "")
    if "." in raw:
        new = f"{float(raw) + rng.choice([1.0, 2.5, -0.5]):.{len(raw.split('.')[1])}f}"
    else:
        v = int(raw)
        new = str(v + rng.choice([1, 2, 3]) if v < 20 else v * rng.choice([2, 3]) if v < 1900 else v + 7)
    return s[:m.start(1)] + new + s[m.end(1):]


_UNIT_SWAP = {"mg": "g", "g": "mg", "mcg": "mg", "ml": "L", "l": "mL", "kg": "g", "%": "mg",
              "unit": "mg", "iu": "mg", "mg/dl": "mmol/L", "mmol/l": "mg/dL", "mg/kg": "mg", "mmhg": "%", "meq": "mg"}
_DOSE = re.compile(r"(\d+(?:\.\d+)?)\s*(mg/dL|mg/kg|mmol/L|mcg|mg|mL|units?|IU|kg|g|%)(?![\w/])", re.I)


def change_dose(s: str) -> str | None:
    m = _DOSE.search(s)
    if not m:
        return None
    unit = m.group(2)
    key = unit.lower().rstrip("s") if unit.lower().startswith("unit") else unit.lower()
    return s[:m.start(2)] + _UNIT_SWAP.get(key, "mg") + s[m.end(2):]


def trim(s: str) -> str | None:
    out = re.sub(r"\s*\([^)]*\)", "", s)
    out = re.sub(r"^(?:However|In addition|Also|For example|In some cases|Additionally|Generally|Sometimes|"
                 r"Rarely|Moreover),\s+", "", out)
    out = out[:1].upper() + out[1:]
    return out if out != s and len(out.split()) >= 6 else None


_PARAPHRASE = [(re.compile(p, re.I), r) for p, r in (
    (r"\bindividuals\b", "people"), (r"\bapproximately\b", "about"), (r"\bphysicians\b", "doctors"),
    (r"\bphysician\b", "doctor"), (r"\boccurs\b", "happens"), (r"\bfrequently\b", "often"),
    (r"\bmedications\b", "medicines"), (r"\bmedication\b", "medicine"), (r"\bin order to\b", "to"),
    (r"\bdue to\b", "because of"), (r"\bcharacterized by\b", "marked by"), (r"\bnumerous\b", "many"),
    (r"\brequires\b", "needs"), (r"\brequire\b", "need"), (r"\butilized\b", "used"), (r"\bcommonly\b", "often"),
    (r"\bindicates\b", "shows"), (r"\bresults in\b", "leads to"), (r"\bresult in\b", "lead to"),
    (r"\bprior to\b", "before"), (r"\bthe majority of\b", "most"), (r"\btypically\b", "usually"),
    (r"\bhowever,\s*", ""), (r"\badditionally,\s*", ""), (r"\bsuch as\b", "like"), (r"\bobtain\b", "get"),
    (r"\bsufficient\b", "enough"), (r"\bincreased\b", "higher"), (r"\bdecreased\b", "lower"),
    (r"\bsevere\b", "serious"), (r"\bcan be\b", "may be"), (r"\bmay\b", "can"), (r"\bpersons\b", "people"),
    (r"\bchildren\b", "kids"), (r"\bassociated with\b", "linked to"), (r"\bdevelop\b", "get"))]


def paraphrase(s: str) -> str | None:
    """Word-level rewording as a generator would do it (meaning kept); None when nothing applies."""
    out, n = s, 0
    for pat, rep in _PARAPHRASE:
        out, k = pat.subn(rep, out)
        n += k
    out = out[:1].upper() + out[1:]
    return out if n else None


def _same_sentence(claim: str, passage: str) -> bool:
    """The passage states the claim nearly word for word (boilerplate shared across documents)."""
    a = set(claim.lower().split())
    return any(len(a & (b := set(t.lower().split()))) / len(a | b) >= 0.6 for t in split_sentences(passage))


def first_clause(s: str) -> str | None:
    m = re.search(r";|, (?:and|but|which|while|although|because) ", s)
    if not m or len(s[:m.start()].split()) < 6:
        return None
    return s[:m.start()].rstrip(",") + "."


def load_dev_passages(data_mirror: Path) -> list[dict]:
    """MedQuAD and OpenStax pharmacology passages of the clinical-dev corpus."""
    rows = iter_corpus(Path(data_mirror) / DEV / "corpus.jsonl")
    return [r for r in rows if r["_id"].startswith("mq-") or r.get("source") == "OpenStax pharmacology"]


def build_pairs(data_mirror: Path, n_docs: int = 150, seed: int = 0, embed=None) -> list[Pair]:
    """Labelled pairs from `n_docs` sampled passages (deterministic for a seed); `embed` finds near passages."""
    rng = random.Random(seed)
    rows = load_dev_passages(data_mirror)
    rows.sort(key=lambda r: stable_hash(r["_id"], seed))
    docs = [r for r in rows if len(r["text"].split()) >= 60][:n_docs]
    # OpenStax pharmacology carries the doses; make sure some are in.
    dose_docs = [r for r in rows if r.get("source") == "OpenStax pharmacology" and _DOSE.search(r["text"])]
    docs += [r for r in dose_docs[: max(5, n_docs // 6)] if r not in docs]
    titles = [r["title"] for r in rows if r["_id"].startswith("mq-") and 1 <= len(r["title"].split()) <= 4]

    picked: list[tuple[dict, list[str], str, int]] = []  # (row, window, sentence, index in window)
    for r in docs:
        wins = [w for w in _windows(r["text"]) if any(_good_sentence(s) for s in w)]
        if not wins:
            continue
        win = rng.choice(wins)
        idx = rng.choice([i for i, s in enumerate(win) if _good_sentence(s)])
        dose_idx = [i for i, s in enumerate(win) if _good_sentence(s) and _DOSE.search(s)]
        if dose_idx and r.get("source") == "OpenStax pharmacology":
            idx = rng.choice(dose_idx)
        picked.append((r, win, win[idx], idx))

    window_text = [" ".join(w) for _, w, _, _ in picked]
    near: list[int | None] = [None] * len(picked)
    if embed is not None and picked:
        wv = embed(window_text)
        cv = embed([s for _, _, s, _ in picked])
        sims = cv @ wv.T
        for i, (r, _, s, _) in enumerate(picked):
            for j in np.argsort(-sims[i]):
                other = picked[j][0]
                if (other["_id"] != r["_id"] and other["title"].lower() != r["title"].lower()
                        and not _same_sentence(s, window_text[j])):
                    near[i] = int(j)
                    break

    pairs: list[Pair] = []
    for i, (r, win, s, idx) in enumerate(picked):
        passage, did = window_text[i], r["_id"]
        pairs.append(Pair(s, passage, True, "true_verbatim", did))
        for kind, edited in (("true_trimmed", trim(s)), ("true_clause", first_clause(s)),
                             ("true_paraphrase", paraphrase(s))):
            if edited:
                pairs.append(Pair(edited, passage, True, kind, did))
        if idx + 1 < len(win) and _good_sentence(win[idx + 1]) and len((s + win[idx + 1]).split()) <= 60:
            nxt = win[idx + 1]
            pairs.append(Pair(f"{s.rstrip('.!')}, and {nxt[:1].lower()}{nxt[1:]}", passage, True, "true_merged", did))
        j = rng.choice([k for k in range(len(picked)) if picked[k][0]["title"] != r["title"]])
        if not _same_sentence(s, window_text[j]):
            pairs.append(Pair(s, window_text[j], False, "swap_random", did))
        if near[i] is not None:
            pairs.append(Pair(s, window_text[near[i]], False, "swap_near", did))
        if (changed := change_number(s, rng)) and quantities(changed) != quantities(s):
            pairs.append(Pair(changed, passage, False, "number", did))
        if changed := change_dose(s):
            pairs.append(Pair(changed, passage, False, "dose", did))
        if changed := flip_negation(s):
            pairs.append(Pair(changed, passage, False, "negation", did))
        title = r["title"]
        if r["_id"].startswith("mq-") and title and re.search(re.escape(title), s, re.I):
            other = rng.choice([t for t in titles if t.lower() != title.lower()])
            pairs.append(Pair(re.sub(re.escape(title), other, s, count=1, flags=re.I), passage, False, "entity", did))
    return pairs


# ---------------------------------------------------------------- scoring

def score_pairs(pairs: Sequence[Pair], verifier: Verifier) -> list[Support]:
    return verifier.check_many([(p.claim, [p.passage]) for p in pairs])


def precision_recall(labels: Sequence[bool], preds: Sequence[bool]) -> dict[str, float]:
    tp = sum(1 for y, p in zip(labels, preds) if y and p)
    fp = sum(1 for y, p in zip(labels, preds) if not y and p)
    fn = sum(1 for y, p in zip(labels, preds) if y and not p)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
            "n": len(labels), "n_supported": sum(labels)}


def _decide(s: Support, threshold: float, weight: float) -> bool:
    return not s.veto and weight * max(s.sem, 0.0) + (1 - weight) * s.coverage >= threshold


def calibrate(pairs: Sequence[Pair], supports: Sequence[Support], weight: float = SEM_WEIGHT) -> dict:
    """The threshold with the best F1 at the shipped similarity weight (ties: the higher, precision-first)."""
    labels = [p.supported for p in pairs]
    rows = [{"threshold": round(float(t), 3), **precision_recall(labels, [_decide(s, t, weight) for s in supports])}
            for t in np.arange(0.40, 0.951, 0.025)]
    best = max(rows, key=lambda r: (round(r["f1"], 4), r["threshold"]))
    return {"weight": weight, "best": best, "grid": rows}


def measure_verification(settings: Settings | None = None, n_docs: int = 150, seed: int = 1,
                         threshold: float | None = None) -> dict:
    """Precision/recall of the verifier (threshold from settings.answer.support_threshold) on seed's pairs."""
    settings = settings or Settings()
    t0 = time.perf_counter()
    emb = get_embedder(settings)
    cached = CachedEmbedder(emb, settings.paths.data_dir / "cache")
    pairs = build_pairs(settings.paths.data_mirror, n_docs, seed, embed=cached.embed)
    verifier = Verifier(cached.embed, emb.tokenize,
                        threshold if threshold is not None else settings.answer.support_threshold)
    supports = score_pairs(pairs, verifier)
    cached.save()
    labels, preds = [p.supported for p in pairs], [s.supported for s in supports]
    by_kind = {}
    for kind in (*TRUE_KINDS, *FALSE_KINDS):
        idx = [i for i, p in enumerate(pairs) if p.kind == kind]
        if idx:
            correct = sum(1 for i in idx if preds[i] == labels[i])
            by_kind[kind] = {"n": len(idx), "accuracy": round(correct / len(idx), 4)}
    errors = [{"kind": p.kind, "claim": p.claim, "score": round(s.score, 3), "reason": s.reason}
              for p, s in zip(pairs, supports) if p.supported != s.supported]
    return {"seed": seed, "n_docs": n_docs, "threshold": verifier.threshold, "sem_weight": verifier.sem_weight,
            **precision_recall(labels, preds), "by_kind": by_kind, "errors": errors[:40],
            "seconds": round(time.perf_counter() - t0, 1), "_pairs": pairs, "_supports": supports}


# ---------------------------------------------------------------- real drafts, hand-labelled

REAL_LABELS = Path(__file__).resolve().parent / "data" / "verifier_labels_qwen.jsonl"


def load_real_labels(path: Path | str = REAL_LABELS) -> list[dict]:
    """Hand labels on sentences the default model (Qwen2.5-Coder-1.5B) wrote over the test index: each row
    names the passage by its clinical-dev id (the text is read from the data mirror, never copied here)."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        r = json.loads(line)
        if not isinstance(r.get("supported"), bool) or not r.get("sentence") or not r.get("doc_id"):
            raise ValueError(f"{path}:{n}: needs sentence, doc_id and a true/false 'supported'")
        rows.append(r)
    return rows


def measure_real_labels(settings: Settings | None = None, path: Path | str = REAL_LABELS,
                        threshold: float | None = None) -> dict:
    """The verifier (no citation repair) against the hand labels: precision/recall for "supported"."""
    from assistant.verify import strip_citations
    settings = settings or Settings()
    labels = load_real_labels(path)
    want = {r["doc_id"] for r in labels}
    rows = {r["_id"]: r for r in iter_corpus(Path(settings.paths.data_mirror) / DEV / "corpus.jsonl")
            if r["_id"] in want}
    if missing := want - set(rows):
        raise FileNotFoundError(f"passages {sorted(missing)[:5]} are not in the clinical-dev corpus")
    emb = get_embedder(settings)
    verifier = Verifier.from_embedder(emb, threshold if threshold is not None else settings.answer.support_threshold)
    passages = [f"{rows[r['doc_id']]['title']}\n{rows[r['doc_id']]['text']}" for r in labels]
    supports = verifier.check_many([(strip_citations(r["sentence"]), [p]) for r, p in zip(labels, passages)])
    gold, preds = [r["supported"] for r in labels], [s.supported for s in supports]
    return {"threshold": verifier.threshold, **precision_recall(gold, preds),
            "agreement": sum(g == p for g, p in zip(gold, preds)) / len(gold),
            "errors": [{"sentence": r["sentence"], "doc_id": r["doc_id"], "label": r["supported"],
                        "score": round(s.score, 3), "reason": s.reason}
                       for r, s in zip(labels, supports) if r["supported"] != s.supported],
            "_labels": labels, "_supports": supports}


# ---------------------------------------------------------------- abstention

# Questions the indexed sources cannot answer: fictional drugs and diseases, and topics outside medicine.
UNANSWERABLE = [
    "What is the recommended dose of zorbaxitrine for migraine?",
    "What are the side effects of velocaprine?",
    "Can trelomazid be taken during pregnancy?",
    "How does quinteravir work against hepatitis C?",
    "What is the maximum daily dose of fendoralix in adults?",
    "Does mirabestrol interact with warfarin?",
    "How long should patients take oxavelumab for psoriasis?",
    "What are the contraindications of dexlatrizine?",
    "Is pentaglovir approved for children with influenza?",
    "How is an overdose of lumicorazole treated?",
    "What are the symptoms of Kessler-Vance syndrome?",
    "How is Halvorsen-Tamura disease inherited?",
    "What causes Brindlemoor fever?",
    "How is Oskarsson neuropathy diagnosed?",
    "What is the outlook for people with Valdane-Okafor dystrophy?",
    "How do I replace the brake pads on a bicycle?",
    "What is the capital of Australia?",
    "How do you calculate compound interest on a loan?",
    "What is the best fertilizer for tomato plants?",
    "How do I reset a forgotten Wi-Fi router password?",
    "Who won the 2018 FIFA World Cup?",
    "Which programming language is best for building websites?",
    "How often should I change the oil in my car?",
    "What is the plot of the novel Moby-Dick?",
]


def _settings_for(settings: Settings, workdir: Path) -> Settings:
    s = settings.model_copy(deep=True)
    s.paths.data_dir = workdir
    s.index.backend, s.index.path = "edge", workdir / "index"
    s.audit.enabled = False
    return s


def build_dev_index(settings: Settings, rows: Sequence[dict], workdir: Path, embedder=None) -> Settings:
    """Index `rows` (clinical-dev corpus rows) through the real ingest pipeline into workdir/index;
    returns settings pointing at it (audit off)."""
    from carecite.runtime import open_index
    from ingest.pipeline import Ingestor, SourceSpec
    workdir.mkdir(parents=True, exist_ok=True)
    subset = workdir / "corpus.jsonl"
    with open(subset, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    s = _settings_for(settings, workdir)
    emb = embedder or get_embedder(s)
    with open_index(s, create=True, dim=emb.dim) as index:
        report = Ingestor.from_settings(index, emb, s, show_progress=False).run(
            [SourceSpec("dev-subset", path=subset)])
        if report.errors:
            raise RuntimeError(f"indexing the dev subset failed: {report.errors[:3]}")
    return s


def _topic_absent(question: str, texts_stems: list[set[str]]) -> bool:
    from assistant.condense import subject_of
    from assistant.verify import content_stems
    topic = content_stems(subject_of(question))
    return bool(topic) and not any(topic <= t for t in texts_stems)


def _rates(rows: Sequence[dict], threshold: float) -> dict[str, float]:
    """False-abstain / false-answer rates when retrieval below `threshold` also abstains."""
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]
    abst = lambda r: r["abstained_ungated"] or r["best_cosine"] < threshold  # noqa: E731
    return {"false_abstain_rate": sum(map(abst, ans)) / len(ans) if ans else 0.0,
            "false_answer_rate": sum(1 for r in una if not abst(r)) / len(una) if una else 0.0,
            "n_answerable": len(ans), "n_unanswerable": len(una)}


def measure_abstention(settings: Settings | None = None, n: int = 60, n_absent: int = 30, n_distractors: int = 600,
                       generator: str = "extractive", seed: int = 0) -> dict:
    """Abstention on answerable MedQuAD dev questions (gold passage indexed) vs unanswerable ones (UNANSWERABLE
    plus dev questions whose topic no indexed passage mentions), over a temporary index of the gold passages
    and `n_distractors` random dev passages. Each question runs once with the retrieval gate off; the gate is
    then applied per threshold (a sweep, the threshold picked on one half of the questions and scored on the
    other, and the configured settings.answer.min_retrieval_score)."""
    from assistant.generators import get_generator
    from assistant.pipeline import Assistant
    from assistant.verify import content_stems
    settings = settings or Settings()
    t0 = time.perf_counter()
    dev = Path(settings.paths.data_mirror) / DEV
    corpus = {r["_id"]: r for r in iter_corpus(dev / "corpus.jsonl")}
    queries = load_queries(dev / "queries.jsonl")
    qrels = load_qrels(dev / "qrels.tsv")
    mq = sorted((q for q, r in queries.items() if r.get("set") == "medquad" and q in qrels),
                key=lambda q: stable_hash(q, seed))
    answerable = mq[:n]
    gold = {d for q in answerable for d in qrels[q] if d in corpus}
    others = sorted((d for d in corpus if d not in gold), key=lambda d: stable_hash(d, seed))[:n_distractors]
    rows_idx = [corpus[d] for d in sorted(gold | set(others))]
    stems = [content_stems(f"{r.get('title', '')} {r['text']}") for r in rows_idx]
    absent = [q for q in mq[n:] if _topic_absent(queries[q]["text"], stems)][:n_absent]
    written = [q for q in UNANSWERABLE if _topic_absent(q, stems)]
    cases = ([(queries[q]["text"], True, "medquad-dev", q) for q in answerable]
             + [(queries[q]["text"], False, "absent-topic", q) for q in absent]
             + [(q, False, "written", "") for q in written])
    out_rows = []
    with tempfile.TemporaryDirectory(prefix="carecite-abstain-") as tmp:
        emb = CachedEmbedder(get_embedder(settings), settings.paths.data_dir / "cache")
        s = build_dev_index(settings, rows_idx, Path(tmp), embedder=emb)
        emb.save()
        s.answer.min_retrieval_score = -1.0  # gate applied afterwards, per threshold
        if generator == "local":  # the model cached under the real data dir, not assembled again in tmp
            s.generator.local_model = str(gguf_path(settings))
        with Assistant(s, generator=get_generator(s, generator)) as a:
            for text, ok, kind, qid in cases:
                ans = a.ask(text)
                dense = a.searcher.search(ans.standalone_query, None, mode="dense", top_k=1)
                golds = set(qrels.get(qid, {}))
                out_rows.append({
                    "question": text, "answerable": ok, "kind": kind, "qid": qid,
                    "best_cosine": round(dense[0].score if dense else 0.0, 4),
                    "abstained_ungated": ans.abstained, "reason": ans.abstain_reason,
                    "cites_gold": any(v.supported and ans.sources[n - 1].doc_id in golds
                                      for v in ans.sentences for n in v.citations),
                    "seconds": ans.timings.get("total", 0.0)})
    half = {r["question"]: stable_hash(r["question"], "half") % 2 for r in out_rows}
    tune = [r for r in out_rows if half[r["question"]] == 0]
    test = [r for r in out_rows if half[r["question"]] == 1]
    sweep = []
    for t in np.arange(0.0, 0.701, 0.025):
        m = _rates(tune, float(t))
        sweep.append({"threshold": round(float(t), 3), **m,
                      "balanced_error": (m["false_abstain_rate"] + m["false_answer_rate"]) / 2})
    lowest = min(r["balanced_error"] for r in sweep)
    plateau = [r for r in sweep if r["balanced_error"] == lowest]
    best = plateau[len(plateau) // 2]  # the middle of the best range: least sensitive to the sample
    configured = settings.answer.min_retrieval_score
    ans_rows = [r for r in out_rows if r["answerable"]]
    return {
        "generator": generator, "n_indexed_passages": len(rows_idx),
        "configured_threshold": configured, **_rates(out_rows, configured),
        "answered_with_gold_citation": (sum(1 for r in ans_rows if r["cites_gold"]) / len(ans_rows)
                                        if ans_rows else 0.0),
        "tuned_on_half": best, "test_half_at_tuned": _rates(test, best["threshold"]),
        "by_kind": {k: {"n": len(g), "abstained": sum(1 for r in g if r["abstained_ungated"]
                                                     or r["best_cosine"] < configured)}
                    for k in ("medquad-dev", "absent-topic", "written")
                    if (g := [r for r in out_rows if r["kind"] == k])},
        "sweep_tune_half": sweep, "rows": out_rows, "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.verification", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="verification precision/recall on labelled pairs")
    v.add_argument("--n", type=int, default=150, help="passages sampled (each gives several pairs)")
    v.add_argument("--seed", type=int, default=1)
    v.add_argument("--calibrate", action="store_true", help="also sweep the threshold on seed 0 pairs")
    sub.add_parser("real", help="verifier against hand labels on real model drafts")
    b = sub.add_parser("abstain", help="false-abstain / false-answer rates")
    b.add_argument("--n", type=int, default=60, help="answerable MedQuAD dev questions")
    b.add_argument("--absent", type=int, default=30, help="dev questions whose topic is not indexed")
    b.add_argument("--distractors", type=int, default=600)
    b.add_argument("--generator", choices=("extractive", "local", "openai"), default="extractive")
    b.add_argument("--rows", action="store_true", help="print every question's outcome")
    a = ap.parse_args(argv)
    settings = Settings()
    if a.cmd == "verify":
        out = measure_verification(settings, a.n, a.seed)
        if a.calibrate:
            cal = measure_verification(settings, a.n, 0)
            out["calibration_seed0"] = calibrate(cal["_pairs"], cal["_supports"])
        out = {k: v for k, v in out.items() if not k.startswith("_")}
        print(json.dumps(out, indent=1))
    elif a.cmd == "real":
        out = {k: v for k, v in measure_real_labels(settings).items() if not k.startswith("_")}
        print(json.dumps(out, indent=1))
    elif a.cmd == "abstain":
        out = measure_abstention(settings, a.n, a.absent, a.distractors, a.generator)
        if not a.rows:
            out.pop("rows")
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
