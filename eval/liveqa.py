"""Real consumer questions (TREC 2017 LiveQA medical, ../shared/data/liveqa-train): how often the assistant answers,
how much of what it shows is verified, how close it comes to a reference answer, and whether it abstains where
the default corpus cannot answer (issue 14, section 2).

Reader: both files (200 + 246 questions; different layouts), one LiveQuestion each with its sub-questions (focus,
type, reference answers). What a user typed is the subject line and the message, in their original wording.

Split: by a stable hash of the question id (eval.metrics.stable_hash, even -> tune, odd -> test); the tune half
is for tuning, the test half is reported once. The hand-written unanswerable questions are split the same way.

Answerable: a question is answerable from the default corpus when one of its reference answers is found, nearly
word for word, in one corpus document: that document holds >= MATCH_SHARE of the answer's word 8-gram shingles, or
>= MATCH_RUN of them (see label_answerable for how these were chosen; eval/data/liveqa_labels.jsonl keeps the
labels and matched doc ids, `carecite eval liveqa --relabel` remakes it).

Unanswerable: eval/data/liveqa_unanswerable.jsonl, 50 questions written by hand in consumer style on topics the
corpus lacks; each row's key_terms occur in no corpus document (corpus_mentions; tests/test_liveqa.py checks).

Runner (run_liveqa): each question goes through Assistant.stream; one JSONL row per question id (append-only,
a rerun skips the ids done): the answer text, abstained and its reason, partial/parts/corrections where the
Answer has them, every sentence verdict with whether it is shown (its text is in the final answer), the counts of
shown claim sentences and of those verified, the sources (doc id, doc type, cited), agreement with the reference
answers, and timings (first "sources", "quick" and "token" event, wall).

Metrics (score_rows), per generator: answer rate (answered fully or in part, on answerable questions); share of
shown sentences verified; agreement with a reference answer (embedder cosine >= AGREE_COSINE; token F1 and
ROUGE-L beside it; whether the answer cites the document holding the reference); abstentions right (on
not-answerable liveqa questions and the hand-written ones) and wrong (on answerable ones); abstain reasons;
timing percentiles. build_report writes report.md, report.json, liveqa.png and a CSV of 30 answers per
generator for a hand check.
"""
from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from eval.metrics import stable_hash
from eval.reports import append_jsonl, read_jsonl, resume_jsonl

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "eval" / "data" / "liveqa_labels.jsonl"
UNANSWERABLE = ROOT / "eval" / "data" / "liveqa_unanswerable.jsonl"
FOLDER = "liveqa-train"
FILES = {"train1": "TREC-2017-LiveQA-Medical-Train-1.xml", "train2": "TREC-2017-LiveQA-Medical-Train-2.xml"}
EXPECTED = {"train1": 200, "train2": 246}  # per the data's README
SPLIT_SEED = "liveqa"
HALVES = ("tune", "test", "all")


# ---------------------------------------------------------------- reader

@dataclass(frozen=True)
class ReferenceAnswer:
    answer_id: str
    text: str


@dataclass(frozen=True)
class SubQuestion:
    sub_id: str
    focus: tuple[str, ...]  # a few sub-questions name two foci
    qtype: str  # lower-cased: treatment, information, cause, ...
    answers: tuple[ReferenceAnswer, ...]


@dataclass(frozen=True)
class LiveQuestion:
    qid: str  # "train1:Q1", "train2:1"
    subject: str
    message: str
    sub_questions: tuple[SubQuestion, ...]

    @property
    def question(self) -> str:
        """What the user typed: the subject line, then the message (original wording)."""
        return "\n".join(p for p in (self.subject, self.message) if p)

    @property
    def answers(self) -> list[ReferenceAnswer]:
        return [a for s in self.sub_questions for a in s.answers]


def _text(el: ET.Element | None) -> str:
    return " ".join((el.text or "").split()) if el is not None else ""


def _question_id(file_key: str, el: ET.Element, path: Path) -> str:
    raw = el.get("questionid") or el.get("qid")
    if not raw:
        raise ValueError(f"{path}: <NLM-QUESTION> without questionid/qid (after {el.findtext('SUBJECT')!r})")
    if file_key == "train2" and raw.endswith(".0"):  # the second file numbers questions "1.0", "2.0", ...
        raw = raw[:-2]
    return f"{file_key}:{raw}"


def read_liveqa_file(path: Path | str, file_key: str) -> list[LiveQuestion]:
    """The questions of one LiveQA file. File 1: <NLM-QUESTION questionid fRef>, <SUB-QUESTION subqid>,
    <ANSWER answerid pairid>; file 2: <NLM-QUESTION qid="1.0">, sub-questions and answers without ids (ids are
    made from the position: <qid>-S1-A1)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LiveQA file not found: {path} (the data mirror's {FOLDER}/ folder)")
    try:
        root = ET.fromstring(path.read_bytes())
    except ET.ParseError as e:
        raise ValueError(f"{path}: malformed XML ({e})") from None
    if root.tag != "NLM-QUESTIONS":
        raise ValueError(f"{path}: not a LiveQA file (root element <{root.tag}>, expected <NLM-QUESTIONS>)")
    out, seen = [], set()
    for q in root.findall("NLM-QUESTION"):
        qid = _question_id(file_key, q, path)
        if qid in seen:
            raise ValueError(f"{path}: duplicate question id {qid!r}")
        seen.add(qid)
        subs = []
        for i, sq in enumerate(q.iter("SUB-QUESTION"), start=1):
            sub_id = f"{qid}-S{i}"
            ann = sq.find("ANNOTATIONS")
            focus = tuple(f for f in (_text(x) for x in (ann.findall("FOCUS") if ann is not None else [])) if f)
            qtype = _text(ann.find("TYPE") if ann is not None else None).lower()
            answers = tuple(ReferenceAnswer(f"{sub_id}-A{j}", t)
                            for j, t in enumerate((_text(a) for a in sq.iter("ANSWER")), start=1) if t)
            subs.append(SubQuestion(sub_id, focus, qtype, answers))
        lq = LiveQuestion(qid, _text(q.find("SUBJECT")), _text(q.find("MESSAGE")), tuple(subs))
        if not lq.question:
            raise ValueError(f"{path}: question {qid} has neither a subject nor a message")
        out.append(lq)
    return out


def load_liveqa(data_mirror: Path | str) -> list[LiveQuestion]:
    """All 446 questions of both files, file 1 first."""
    folder = Path(data_mirror) / FOLDER
    questions = []
    for key, name in FILES.items():
        questions += read_liveqa_file(folder / name, key)
    return questions


# ---------------------------------------------------------------- split

def half_of(qid: str) -> str:
    """"tune" or "test": a stable hash of the id alone, so a question's half never depends on which other
    questions are loaded (the halves come out near, not exactly, equal)."""
    return "tune" if stable_hash(qid, SPLIT_SEED) % 2 == 0 else "test"


def in_half(items: Sequence, half: str, key=lambda x: x.qid) -> list:
    """The items of one half ("all": every item), in their given order."""
    if half not in HALVES:
        raise ValueError(f"half must be one of {', '.join(HALVES)}, got {half!r}")
    return [x for x in items if half == "all" or half_of(key(x)) == half]


# ---------------------------------------------------------------- answerable from the default corpus

DEFAULT_CORPUS = ("medquad", "openstax-nursing", "aci-bench")
SHINGLE = 8  # words per shingle
MIN_WORDS = 5  # shorter reference answers are too generic to match
# A reference answer is found in a document when the document holds >= MATCH_SHARE of its shingles, or >= MATCH_RUN
# of them (a verbatim passage of ~50 words inside a longer answer). See label_answerable for how these were chosen.
MATCH_SHARE = 0.2
MATCH_RUN = 40
BOILERPLATE_DF = 10  # a shingle in more documents than this is a site's boilerplate, not evidence
MAX_DOC_IDS = 10  # matched doc ids kept per sub-question (best first)
_WORD = re.compile(r"[a-z0-9]+")
_APOSTROPHE = re.compile(r"['\u2018\u2019`]")


def words(text: str) -> list[str]:
    """Lower-cased ASCII words. Apostrophes and other non-ASCII characters are deleted, not split on: the MedQuAD
    release lost its non-ASCII characters ("the body’s needs" reads "the bodys needs", "relapse—a return"
    reads "relapsea return"), and the reference answers keep theirs."""
    return _WORD.findall(_APOSTROPHE.sub("", text).encode("ascii", "ignore").decode().lower())


def shingles(text: str, n: int = SHINGLE) -> set[str]:
    """Word n-gram shingles (see words); a text shorter than n words is one shingle, under MIN_WORDS none."""
    words_ = words(text)
    if len(words_) < MIN_WORDS:
        return set()
    if len(words_) < n:
        return {" ".join(words_)}
    return {" ".join(words_[i:i + n]) for i in range(len(words_) - n + 1)}
    if len(words) < MIN_WORDS:
        return set()
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def corpus_documents(data_mirror: Path | str, corpora: Sequence[str] = DEFAULT_CORPUS):
    """(doc_id, doc_type, [section texts]) for every document of the corpora, as the ingest readers produce
    them (same doc ids as the index). Files a reader rejects are skipped, as the ingest skips them."""
    from ingest.readers import read_corpus
    for name in corpora:
        for doc in read_corpus(name, data_mirror, on_error=lambda e: None):
            yield doc.doc_id, doc.doc_type, [doc.title] + [f"{s.title}\n{s.text}" for s in doc.sections]


def match_answers(answers: Sequence[ReferenceAnswer], documents,
                  max_df: int = BOILERPLATE_DF) -> dict[str, list[tuple[str, float, int]]]:
    """{answer_id: [(doc_id, share, count), ...] best first}: for each reference answer, the documents holding
    its shingles, with the share and the number of its shingles each holds (a shingle never spans two
    sections). Boilerplate shingles, found in more than max_df documents ("The Human Phenotype Ontology provides
    the following list of signs and symptoms for ..."), count neither as found nor in the answer's total."""
    wanted: dict[str, list[str]] = {}
    for a in answers:
        for s in shingles(a.text):
            wanted.setdefault(s, []).append(a.answer_id)
    where: dict[str, set[str]] = {}  # shingle -> documents holding it
    lengths = sorted({len(s.split()) for s in wanted})
    for doc_id, _, texts in documents:
        for text in texts:
            ws = words(text)
            for n in lengths:
                for i in range(len(ws) - n + 1):
                    s = " ".join(ws[i:i + n])
                    if s in wanted:
                        where.setdefault(s, set()).add(doc_id)
    out = {}
    for a in answers:
        own = [s for s in shingles(a.text) if len(where.get(s, ())) <= max_df]
        found: dict[str, int] = {}
        for s in own:
            for d in where.get(s, ()):
                found[d] = found.get(d, 0) + 1
        out[a.answer_id] = sorted(((d, c / len(own), c) for d, c in found.items()), key=lambda x: (-x[1], x[0]))
    return out


def is_match(share: float, count: int) -> bool:
    return share >= MATCH_SHARE or count >= MATCH_RUN


def label_answerable(questions: Sequence[LiveQuestion], data_mirror: Path | str,
                     corpora: Sequence[str] = DEFAULT_CORPUS) -> list[dict]:
    """One label row per question: answerable when one of its reference answers is found in one corpus document
    (is_match), with the matched doc ids and, per sub-question, the best document, share and shingle count.

    How the thresholds were chosen (all 634 reference answers against MedQuAD, OpenStax and ACI-Bench, by this
    function, then the 33 answers between 0.05 and 0.9 read beside their best document): the best-document share
    is bimodal. 217 answers reach >= 0.9 (the page the answer
    was copied from), 384 stay < 0.05; of the 33 in between, every one at >= 0.25 is an edited copy of the
    document's text (a sentence reworded, an added clause, a newer version of the same NIH page), every one
    <= 0.13 shares only a boilerplate phrase ("occurs sporadically in people with no family history of the
    condition") or is another wording of the same topic, except one long answer (Cri-du-chat, 571 shingles)
    whose first 96 shingles are the GHR page verbatim and the rest is text MedQuAD does not hold. Hence a
    share >= 0.2, or >= 40 shingles (a verbatim passage of about 50 words).

    focus_doc_ids: guideline/reference documents (not case notes) whose title contains a sub-question's focus
    word for word (at most 5): the corpus covers the
    topic even when the reference answer's text is not in it; such "not answerable" questions may still be
    answered in part, so an abstention on them is less clearly right."""
    answers = [a for q in questions for a in q.answers]
    titles: dict[str, str] = {}

    def docs():
        for doc_id, doc_type, texts in corpus_documents(data_mirror, corpora):
            if doc_type != "case":
                titles[doc_id] = " " + " ".join(words(texts[0])) + " "
            yield doc_id, doc_type, texts

    matches = match_answers(answers, docs())
    rows = []
    for q in questions:
        subs, matched = [], []
        for sq in q.sub_questions:
            best = max(((a.answer_id, *m[0]) for a in sq.answers if (m := matches.get(a.answer_id))),
                       key=lambda x: (x[2], x[3]), default=None)
            ranked = sorted(((share, d) for a in sq.answers for d, share, count in matches.get(a.answer_id, [])
                             if is_match(share, count)), reverse=True)
            docs_ok = list(dict.fromkeys(d for _, d in ranked))[:MAX_DOC_IDS]
            matched += [d for d in docs_ok if d not in matched]
            focus = [" " + " ".join(words(f)) + " " for f in sq.focus if words(f)]
            subs.append({"sub_id": sq.sub_id, "focus": list(sq.focus), "type": sq.qtype, "answerable": bool(docs_ok),
                         "matched_doc_ids": docs_ok,
                         "best": None if best is None else {"answer_id": best[0], "doc_id": best[1],
                                                           "share": round(best[2], 3), "shingles": best[3]},
                         "focus_doc_ids": sorted(d for d, t in titles.items() if any(f in t for f in focus))[:5]})
        rows.append({"id": q.qid, "half": half_of(q.qid), "answerable": bool(matched),
                     "all_parts_answerable": all(s["answerable"] for s in subs), "matched_doc_ids": matched,
                     "focus_in_corpus": any(s["focus_doc_ids"] for s in subs), "sub_questions": subs})
    return rows


def corpus_mentions(terms: Sequence[str], data_mirror: Path | str, corpora: Sequence[str] = DEFAULT_CORPUS,
                    keep: int = 5) -> dict[str, list[str]]:
    """{term: up to `keep` doc ids whose text holds the term word for word (see words)}: the check that a
    hand-written unanswerable question's key terms are absent from the corpus."""
    wanted = {t: " " + " ".join(words(t)) + " " for t in terms}
    empty = [t for t, w in wanted.items() if not w.strip()]
    if empty:
        raise ValueError(f"terms without a word: {empty}")
    found: dict[str, list[str]] = {t: [] for t in terms}
    for doc_id, _, texts in corpus_documents(data_mirror, corpora):
        text = " " + " ".join(" ".join(words(t)) for t in texts) + " "
        for t, w in wanted.items():
            if len(found[t]) < keep and w in text:
                found[t].append(doc_id)
    return found


def write_labels(data_mirror: Path | str, path: Path | str = LABELS) -> list[dict]:
    """Label every question (label_answerable) and write the label file (ids and doc ids only, no data text)."""
    import json
    rows = label_answerable(load_liveqa(data_mirror), data_mirror)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return rows


def load_labels(path: Path | str = LABELS) -> dict[str, dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LiveQA answerability labels not found at {path}; make them with "
                                "`carecite eval liveqa --relabel` (reads the corpus, about a minute)")
    rows = read_jsonl(path)
    for n, r in enumerate(rows, start=1):
        if not isinstance(r.get("id"), str) or not isinstance(r.get("answerable"), bool):
            raise ValueError(f"{path}:{n}: a label needs an 'id' and a true/false 'answerable'")
    return {r["id"]: r for r in rows}


def load_unanswerable(path: Path | str = UNANSWERABLE) -> list[dict]:
    """The hand-written unanswerable questions: id, question, kind, key_terms (absent from the corpus)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hand-written unanswerable questions not found at {path}")
    rows, seen = read_jsonl(path), set()
    for n, r in enumerate(rows, start=1):
        if not (isinstance(r.get("id"), str) and isinstance(r.get("question"), str) and r["question"].strip()
                and isinstance(r.get("key_terms"), list) and r["key_terms"]):
            raise ValueError(f"{path}:{n}: needs an 'id', a 'question' and a non-empty 'key_terms' list")
        if r["id"] in seen:
            raise ValueError(f"{path}:{n}: duplicate id {r['id']!r}")
        seen.add(r["id"])
    return rows


# ---------------------------------------------------------------- the questions of a run

@dataclass(frozen=True)
class EvalItem:
    qid: str
    question: str
    set: str  # "liveqa" or "handwritten"
    answerable: bool
    half: str
    kind: str  # liveqa: the sub-question types; handwritten: its topic kind
    references: tuple[str, ...] = ()
    matched_doc_ids: tuple[str, ...] = ()
    focus_in_corpus: bool | None = None


def _ordered(items: list, limit: int | None) -> list:
    """A fixed shuffled order (stable hash), so that --limit takes a mix of both files and both labels."""
    items = sorted(items, key=lambda x: (stable_hash(x.qid, "order"), x.qid))
    return items if limit is None else items[:limit]


def build_items(data_mirror: Path | str, half: str = "tune", limit: int | None = None,
                unanswerable: bool = False, labels_path: Path | str = LABELS,
                unanswerable_path: Path | str = UNANSWERABLE, answerable_only: bool = False) -> list[EvalItem]:
    """The liveqa questions of a half (limit: the first N in a fixed shuffled order; answerable_only: only those
    the corpus answers) and, with unanswerable=True, the hand-written unanswerable questions of the same half
    (limit applies to them separately)."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    labels = load_labels(labels_path)
    questions = load_liveqa(data_mirror)
    unlabelled = [q.qid for q in questions if q.qid not in labels]
    if unlabelled:
        raise ValueError(f"{len(unlabelled)} questions have no answerability label (e.g. {unlabelled[0]}); "
                         "run `carecite eval liveqa --relabel`")
    items = [EvalItem(q.qid, q.question, "liveqa", labels[q.qid]["answerable"], half_of(q.qid),
                      ",".join(sorted({s.qtype for s in q.sub_questions if s.qtype})),
                      tuple(a.text for a in q.answers), tuple(labels[q.qid].get("matched_doc_ids", [])),
                      labels[q.qid].get("focus_in_corpus"))
             for q in in_half(questions, half)]
    if answerable_only:
        items = [it for it in items if it.answerable]
    items = _ordered(items, limit)
    if unanswerable:
        hand = [EvalItem(r["id"], r["question"], "handwritten", False, half_of(r["id"]), r.get("kind", ""))
                for r in load_unanswerable(unanswerable_path)]
        items += _ordered(in_half(hand, half), limit)
    return items


# ---------------------------------------------------------------- agreement with a reference answer

def token_f1(pred: Sequence[str], ref: Sequence[str]) -> float:
    """SQuAD-style bag-of-words F1."""
    from collections import Counter
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    p, r = common / len(pred), common / len(ref)
    return 2 * p * r / (p + r)


def rouge_l(pred: Sequence[str], ref: Sequence[str]) -> float:
    """ROUGE-L F1 (longest common subsequence of words)."""
    if not pred or not ref:
        return 0.0
    prev = [0] * (len(ref) + 1)
    for w in pred:
        cur = [0]
        for j, r in enumerate(ref, start=1):
            cur.append(prev[j - 1] + 1 if w == r else max(prev[j], cur[j - 1]))
        prev = cur
    lcs = prev[-1]
    if not lcs:
        return 0.0
    p, r = lcs / len(pred), lcs / len(ref)
    return 2 * p * r / (p + r)


def agreement(answer_text: str, references: Sequence[str], embedder) -> dict | None:
    """Best agreement of an answer with any of the question's reference answers: embedder cosine (the
    reference is cut at the embedder's sequence length), token F1 and ROUGE-L, each its own maximum; `ref`
    is the index of the reference with the best cosine. None without an answer or references."""
    if not answer_text.strip() or not references:
        return None
    vecs = embedder.embed([answer_text, *references])
    cos = [float(vecs[0] @ v) for v in vecs[1:]]
    aw = words(answer_text)
    best = max(range(len(references)), key=lambda i: cos[i])
    return {"cosine": round(cos[best], 4), "ref": best,
            "f1": round(max(token_f1(aw, words(r)) for r in references), 4),
            "rouge_l": round(max(rouge_l(aw, words(r)) for r in references), 4)}


# Cosine at or above which an answer "agrees" with a reference answer. Calibrated with the embedder on the
# references themselves: two reference answers to the same sub-question (252 pairs, both judged right by NLM)
# reach >= 0.5 in 82% of pairs; two answers to different questions (2,000 random pairs) in 0.4%. Token F1 and
# ROUGE-L are reported beside it but do not separate the two (median F1 0.26 for same-question pairs vs 0.14
# for unrelated ones, with 24% of unrelated pairs above 0.2): medical prose shares many words.
AGREE_COSINE = 0.5


# ---------------------------------------------------------------- runner

def _git_commit() -> str:
    import subprocess
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _plain(value):
    """A JSON-safe copy of a field the pipeline may add (dataclasses, lists of them, plain values)."""
    import dataclasses
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def shown_claims(answer) -> list:
    """The claim sentences the user sees: verdicts whose text is in the final answer text (dropped or
    withdrawn sentences are not; an abstention shows none)."""
    text = answer.answer or ""
    return [v for v in answer.sentences if getattr(v, "claim", True) and v.text and v.text in text]


def answer_row(assistant, item: EvalItem, embedder=None, commit: str = "") -> dict:
    """Ask one question through Assistant.stream and keep what the report needs (one JSONL row)."""
    from assistant.errors import QuestionError
    from assistant.verify import strip_citations
    t0 = time.perf_counter()
    first: dict[str, float] = {}
    answer, quick = None, None
    row = {"id": item.qid, "set": item.set, "half": item.half, "answerable": item.answerable, "kind": item.kind,
           "question": item.question, "commit": commit}
    try:
        for event in assistant.stream(item.question):
            kind = event.get("type", "")
            first.setdefault(kind, round(time.perf_counter() - t0, 4))
            if kind == "quick" and quick is None:
                quick = event
            elif kind == "answer":
                answer = event["answer"]
    except QuestionError as e:  # deterministic: the same question fails the same way on a rerun
        return row | {"error": str(e), "abstained": True, "abstain_reason": f"question refused: {e}",
                      "answer": "", "sentences_shown": 0, "sentences_verified": 0, "sources": [],
                      "timings": {"wall": round(time.perf_counter() - t0, 4)}}
    if answer is None:
        raise RuntimeError(f"{item.qid}: the assistant's stream ended without an answer event")
    wall = round(time.perf_counter() - t0, 4)
    shown = shown_claims(answer)
    quick_answer = quick.get("answer") if quick else None
    quick_shown = shown_claims(quick_answer) if hasattr(quick_answer, "sentences") else []
    cited = sorted({n for v in shown for n in v.citations})
    sources = [{"n": s.n, "doc_id": s.doc_id, "doc_type": getattr(s, "doc_type", ""), "source": s.source,
                "title": s.title, "cited": s.n in cited} for s in answer.sources]
    cited_docs = {s["doc_id"] for s in sources if s["cited"]}
    text = strip_citations(answer.answer) if shown else ""
    agree = agreement(text, item.references, embedder) if (embedder is not None and item.references) else None
    return row | {
        "answer": answer.answer, "abstained": bool(answer.abstained), "abstain_reason": answer.abstain_reason,
        "partial": _plain(getattr(answer, "partial", None)), "parts": _plain(getattr(answer, "parts", None)),
        "corrections": _plain(getattr(answer, "corrections", None)), "answer_kind": getattr(answer, "kind", None),
        "notice": getattr(answer, "notice", None) or None,
        "sentences": [{"text": v.text, "claim": v.claim, "supported": v.supported, "citations": v.citations,
                       "shown": v in shown, "reason": v.reason} for v in answer.sentences],
        "sentences_shown": len(shown), "sentences_verified": sum(bool(v.supported) for v in shown),
        "sources": sources, "cites_matched_doc": bool(cited_docs & set(item.matched_doc_ids)) if item.answerable
        and item.set == "liveqa" else None,
        "quick": None if quick is None else {
            "at": first.get("quick"), "text": getattr(quick_answer, "answer", _plain(quick_answer)),
            "sentences_shown": len(quick_shown), "sentences_verified": sum(bool(v.supported) for v in quick_shown)},
        "agreement": agree, "generator": answer.models.get("generator", ""),
        "timings": {**answer.timings, "first_sources": first.get("sources"), "first_quick": first.get("quick"),
                    "first_token": first.get("token"), "wall": wall},
    }


def run_liveqa(items: Sequence[EvalItem], assistant, out_path: Path | str, progress: bool = True,
               embedder=None) -> list[dict]:
    """Answer each item not yet in out_path (append-only JSONL, one row per question id; rerun to resume);
    returns the rows of the given items, in their order."""
    out_path = Path(out_path)
    done = resume_jsonl(out_path, "id", True, "answers")
    pending = [it for it in items if it.qid not in done]
    commit = _git_commit()
    embedder = embedder if embedder is not None else getattr(assistant, "embedder", None)
    for it in tqdm(pending, desc="liveqa", unit="q", disable=not progress or not pending, dynamic_ncols=True):
        row = answer_row(assistant, it, embedder, commit)
        append_jsonl(out_path, row)
        done[it.qid] = row
    return [done[it.qid] for it in items if it.qid in done]


# ---------------------------------------------------------------- metrics

def _share(num: int, den: int) -> float | None:
    return num / den if den else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    import numpy as np
    vals = [v for v in values if v is not None]
    return float(np.percentile(vals, q)) if vals else None


def reason_kind(reason: str) -> str:
    """An abstain reason without its specifics: "the passages never mention Lipitor" -> "the passages never
    mention ...", "2 of 3 sentences failed verification" -> "N of N sentences failed verification"."""
    reason = re.sub(r"\d+(\.\d+)?", "N", reason or "").strip()
    m = re.match(r"(.*?\bmention)\b", reason)
    if m:
        return m.group(1) + " ..."
    return reason.split(":")[0] or "(none)"


def score_rows(rows: Sequence[dict], agree_cosine: float = AGREE_COSINE) -> dict:
    """The section 2 figures for one generator's rows (see the module docstring)."""
    from collections import Counter
    live = [r for r in rows if r["set"] == "liveqa"]
    ans = [r for r in live if r["answerable"]]
    not_ans = [r for r in live if not r["answerable"]]
    hand = [r for r in rows if r["set"] == "handwritten"]
    answered = [r for r in ans if not r["abstained"]]
    partial = [r for r in answered if r.get("partial")]
    delivered = [r for r in rows if not r["abstained"]]
    shown = sum(r["sentences_shown"] for r in delivered)
    verified = sum(r["sentences_verified"] for r in delivered)
    agreed = [r for r in answered if r.get("agreement")]
    unans = not_ans + hand
    right = sum(r["abstained"] for r in unans)
    wrong = sum(r["abstained"] for r in ans)

    def timing(key: str) -> dict:
        vals = [r["timings"].get(key) for r in rows]
        return {"p50": _percentile(vals, 50), "p95": _percentile(vals, 95),
                "n": sum(v is not None for v in vals)}

    return {
        "n": {"liveqa answerable": len(ans), "liveqa not answerable": len(not_ans), "hand-written": len(hand),
              "errors": sum(bool(r.get("error")) for r in rows)},
        "answerable": {"n": len(ans), "answered": len(answered), "partial": len(partial),
                       "answer_rate": _share(len(answered), len(ans)),
                       "cites_matched_doc": _share(sum(bool(r.get("cites_matched_doc")) for r in answered),
                                                   len(answered))},
        "sentences": {"answers_delivered": len(delivered), "shown": shown, "verified": verified,
                      "verified_share": _share(verified, shown)},
        "agreement": {"n": len(agreed), "cosine_threshold": agree_cosine,
                      "agree": sum(r["agreement"]["cosine"] >= agree_cosine for r in agreed),
                      "agree_share": _share(sum(r["agreement"]["cosine"] >= agree_cosine for r in agreed),
                                            len(agreed)),
                      "mean_cosine": _share(sum(r["agreement"]["cosine"] for r in agreed), len(agreed)),
                      "mean_f1": _share(sum(r["agreement"]["f1"] for r in agreed), len(agreed)),
                      "mean_rouge_l": _share(sum(r["agreement"]["rouge_l"] for r in agreed), len(agreed))},
        "abstention": {"right": right, "wrong": wrong, "n_unanswerable": len(unans), "n_answerable": len(ans),
                       "abstained_unanswerable_share": _share(right, len(unans)),
                       "abstained_answerable_share": _share(wrong, len(ans)),
                       "hand_written": {"n": len(hand), "abstained": sum(r["abstained"] for r in hand),
                                        "share": _share(sum(r["abstained"] for r in hand), len(hand))},
                       "liveqa_not_answerable": {
                           "n": len(not_ans), "abstained": sum(r["abstained"] for r in not_ans),
                           "share": _share(sum(r["abstained"] for r in not_ans), len(not_ans))}},
        "abstain_reasons": dict(Counter(reason_kind(r["abstain_reason"]) for r in rows if r["abstained"])
                                .most_common()),
        "timings_s": {k: timing(k) for k in ("first_sources", "first_quick", "first_token", "wall")},
    }


# ---------------------------------------------------------------- report

TARGETS = {"answer rate %": 80.0, "shown sentences verified %": 95.0, "abstained, hand-written %": 90.0}


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def label_counts(labels: dict[str, dict]) -> dict:
    """Answerable / not per half, from the label file (all 446 questions)."""
    table = {}
    for half in ("tune", "test", "all"):
        rows = [r for r in labels.values() if half == "all" or r["half"] == half]
        table[half] = {"questions": len(rows), "answerable": sum(r["answerable"] for r in rows),
                       "all parts answerable": sum(bool(r.get("all_parts_answerable")) for r in rows),
                       "not answerable": sum(not r["answerable"] for r in rows),
                       "not answerable, focus has a corpus page": sum(not r["answerable"] and bool(r.get(
                           "focus_in_corpus")) for r in rows)}
    return table


def summary_row(score: dict) -> dict:
    a, ab = score["answerable"], score["abstention"]
    return {"answer rate %": _pct(a["answer_rate"]), "answered": a["answered"], "partial": a["partial"],
            "of answerable": a["n"], "shown sentences verified %": _pct(score["sentences"]["verified_share"]),
            "shown sentences": score["sentences"]["shown"],
            "agrees with reference (proxy) %": _pct(score["agreement"]["agree_share"]),
            "cites the matched doc %": _pct(a["cites_matched_doc"]),
            "abstained, hand-written %": _pct(ab["hand_written"]["share"]),
            "abstained, liveqa not in corpus %": _pct(ab["liveqa_not_answerable"]["share"]),
            "abstentions right": ab["right"], "abstentions wrong": ab["wrong"]}


def hand_check_rows(rows: Sequence[dict], items: dict[str, EvalItem], n: int = 30) -> list[dict]:
    """n answered answerable liveqa rows in a fixed hashed order, with the question, the closest reference
    answer and the answer, for a person to judge (columns hand_agrees / hand_note left empty)."""
    pick = sorted((r for r in rows if r["set"] == "liveqa" and r["answerable"] and not r["abstained"]
                   and r.get("agreement")), key=lambda r: (stable_hash(r["id"], "hand"), r["id"]))[:n]
    out = []
    for r in pick:
        ag = r["agreement"]
        out.append({"id": r["id"], "cosine": ag["cosine"], "f1": ag["f1"], "rouge_l": ag["rouge_l"],
                    "proxy_agrees": ag["cosine"] >= AGREE_COSINE, "cites_matched_doc": r.get("cites_matched_doc"),
                    "question": r["question"], "reference": items[r["id"]].references[ag["ref"]],
                    "answer": r["answer"], "hand_agrees": "", "hand_note": ""})
    return out


def write_csv(rows: Sequence[dict], path: Path) -> Path:
    import csv
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return path


def build_report(results: dict[str, list[dict]], items: Sequence[EvalItem], labels: dict[str, dict],
                 setup: dict, out: Path) -> dict:
    """report.json, report.md, liveqa.png and hand_check_<generator>.csv in out, for every generator's rows."""
    from eval.reports import bar_chart, write_json, write_markdown
    by_id = {it.qid: it for it in items}
    scores = {g: score_rows(rows) for g, rows in results.items()}
    summary = {g: summary_row(sc) for g, sc in scores.items()}
    files = {}
    for g, rows in results.items():
        name = re.sub(r"[^A-Za-z0-9._]+", "-", g).strip("-") or "generator"
        files[f"hand check {g}"] = str(write_csv(hand_check_rows(rows, by_id), out / f"hand_check_{name}.csv"))
    timings = {f"{g}: {k}": {"p50 s": v["p50"], "p95 s": v["p95"], "n": v["n"]}
               for g, sc in scores.items() for k, v in sc["timings_s"].items()}
    reasons = {}
    for g, sc in scores.items():
        for reason, count in sc["abstain_reasons"].items():
            reasons[f"{g}: {reason}"] = {"count": count}
    agree = {g: {"n answered": sc["agreement"]["n"], "agree (cosine >= %.2f)" % AGREE_COSINE:
                 sc["agreement"]["agree"], "agree %": _pct(sc["agreement"]["agree_share"]),
                 "mean cosine": sc["agreement"]["mean_cosine"], "mean token F1": sc["agreement"]["mean_f1"],
                 "mean ROUGE-L": sc["agreement"]["mean_rouge_l"]} for g, sc in scores.items()}
    notes = (
        "Questions: TREC 2017 LiveQA medical training questions as the users typed them (subject line, then the "
        "message), plus hand-written unanswerable questions (eval/data/liveqa_unanswerable.jsonl: veterinary, "
        "cosmetic prices, insurance and billing, drugs newer than the corpus, devices, non-medical; each "
        "question's key terms are absent from the corpus text). Half: stable hash of the question id. "
        f"Answerable: a reference answer is found in one corpus document (>= {MATCH_SHARE:.0%} of its word "
        f"8-gram shingles, or >= {MATCH_RUN} of them; shingles in more than {BOILERPLATE_DF} documents are "
        "boilerplate and ignored); 'not answerable' therefore means the reference text is not in the corpus, "
        "although the corpus may cover the topic ('focus has a corpus page' counts those). "
        "Answer rate: answerable questions answered fully or in part (not abstained). Shown sentences verified: "
        "claim sentences in the final answer text whose verdict is 'supported', over all delivered answers. "
        f"Agreement (automatic proxy): best embedder cosine between the answer (citations stripped) and the "
        f"question's reference answers, agreeing at >= {AGREE_COSINE} (two reference answers to the same "
        "sub-question reach it in 82% of pairs, answers to different questions in 0.4%); token F1 and ROUGE-L "
        "are shown but do not separate related from unrelated text. 'Cites the matched doc': the answer cites a "
        "document that holds the reference answer. Abstentions right: abstained on a not-answerable liveqa "
        "question or a hand-written one; wrong: abstained on an answerable one. The hand_check CSVs hold 30 "
        "answered answerable questions per generator for a person to judge (hand_agrees, hand_note).")
    md = {"Setup": {k: {"value": v if isinstance(v, (int, float, str)) or v is None else str(v)}
                    for k, v in setup.items()},
          "Answerable from the default corpus (all questions, by half)": label_counts(labels),
          "Summary (this run's questions)": summary,
          "Targets (issue 14, test half)": {k: {"target": v, **{g: s[k] for g, s in summary.items()}}
                                            for k, v in TARGETS.items()},
          "Agreement with a reference answer (answered answerable questions)": agree,
          "Abstain reasons": reasons or "no abstentions",
          "Timings": timings, "Notes": notes}
    report = {"benchmark": "liveqa", "setup": setup, "labels": label_counts(labels), "summary": summary,
              "scores": scores}
    files["json"] = str(write_json(report, out / "report.json"))
    files["markdown"] = str(write_markdown(md, out / "report.md", "LiveQA real questions", digits=2))
    if summary:
        metrics = ["answer rate %", "shown sentences verified %", "agrees with reference (proxy) %",
                   "abstained, hand-written %", "abstained, liveqa not in corpus %"]
        files["chart"] = str(bar_chart(summary, metrics, out / "liveqa.png",
                                       f"LiveQA ({setup.get('half')} half)", "%"))
    report["files"] = files
    write_json(report, out / "report.json")
    return report


# ---------------------------------------------------------------- command: carecite eval liveqa

def add_arguments(q) -> None:
    q.add_argument("--half", choices=HALVES, default="tune",
                   help="tune (default), test (report once, at the end) or all")
    q.add_argument("--generator", choices=["local", "openai", "extractive"], help="default: settings")
    q.add_argument("--base-url", help="OpenAI-compatible endpoint")
    q.add_argument("--model", help="model name at that endpoint")
    q.add_argument("--api-key", help="API key of that endpoint")
    q.add_argument("--max-tokens", type=int, help="answer length limit (generator.max_tokens)")
    q.add_argument("--n-ctx", type=int, help="model context window (generator.n_ctx)")
    q.add_argument("--limit", type=int, help="first N liveqa questions of the half (fixed shuffled order), and "
                                             "first N hand-written ones with --unanswerable")
    q.add_argument("--answerable-only", action="store_true",
                   help="only the liveqa questions the corpus answers (with --unanswerable: plus the hand-written "
                        "unanswerable ones): the answer-rate and abstention targets at a third of the cost")
    q.add_argument("--unanswerable", action="store_true",
                   help="also ask the hand-written unanswerable questions of the half")
    q.add_argument("--report-dir", help="report and answers folder (default <data_dir>/reports/liveqa); "
                                        "every generator run into it is reported side by side")
    q.add_argument("--relabel", action="store_true",
                   help="recompute which questions the corpus answers (eval/data/liveqa_labels.jsonl) and stop")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.add_argument("--json", action="store_true", help="print the report as JSON")


def cmd_liveqa(args) -> int:
    import json
    import sys
    from datetime import datetime, timezone

    from eval.commands import INTERRUPTED, check_run_config, settings_from_args, slug
    t0 = time.perf_counter()
    s = settings_from_args(args)
    say = (lambda text: print(text, file=sys.stderr if args.json else sys.stdout, flush=True))
    if args.relabel:
        rows = write_labels(s.paths.data_mirror)
        say(f"wrote {LABELS}: {sum(r['answerable'] for r in rows)} of {len(rows)} questions answerable")
        print(json.dumps(label_counts({r["id"]: r for r in rows}), indent=1))
        return 0
    items = build_items(s.paths.data_mirror, args.half, args.limit, args.unanswerable,
                        answerable_only=args.answerable_only)
    out = Path(args.report_dir) if args.report_dir else s.paths.data_dir / "reports" / "liveqa"
    from assistant.generators import get_generator
    from assistant.pipeline import Assistant
    with Assistant(s, generator=get_generator(s)) as assistant:
        gen_name = assistant.generator.name
        run_dir = out / "predictions" / slug(gen_name)
        check_run_config(run_dir, {"benchmark": "liveqa", "generator": gen_name, "index": str(s.index_path),
                                   "max_tokens": s.generator.max_tokens, "retrieval": s.retrieval.model_dump(),
                                   "answer": s.answer.model_dump()})
        path = run_dir / "answers.jsonl"

        def progress() -> str:
            done = {r["id"] for r in read_jsonl(path, repair=True)} if path.exists() else set()
            return f"liveqa {args.half}: {sum(it.qid in done for it in items)}/{len(items)} questions done"

        say(progress() + " before this run")
        try:
            run_liveqa(items, assistant, path, progress=not args.no_progress)
        except KeyboardInterrupt:
            say(f"interrupted; {progress()}. Rerun the same command to resume.")
            return INTERRUPTED
        say(progress())
        index_chunks = assistant.searcher.index.count()
    # Every generator run into this folder, on the same questions.
    ids = {it.qid for it in items}
    results = {}
    for d in sorted((out / "predictions").iterdir()):
        if (d / "answers.jsonl").is_file():
            rows = [r for r in read_jsonl(d / "answers.jsonl", repair=True) if r["id"] in ids]
            if rows:
                name = json.loads((d / "run.json").read_text(encoding="utf-8")).get("generator", d.name) \
                    if (d / "run.json").is_file() else d.name
                results[name] = rows
    commits = sorted({r.get("commit", "") for rows in results.values() for r in rows} - {""})
    setup = {"half": args.half, "liveqa questions": sum(it.set == "liveqa" for it in items),
             "of which answerable": sum(it.answerable for it in items if it.set == "liveqa"),
             "hand-written unanswerable": sum(it.set == "handwritten" for it in items),
             "generator (this run)": gen_name, "index": str(s.index_path), "index chunks": index_chunks,
             "labels": str(LABELS), "agreement cosine threshold": AGREE_COSINE,
             "code commits": ", ".join(commits), "wall seconds": round(time.perf_counter() - t0, 1),
             "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    report = build_report(results, items, load_labels(), setup, out)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print((out / "report.md").read_text(encoding="utf-8"))
        print("reports: " + ", ".join(report["files"].values()))
    return 0
