"""LiveQA harness (eval/liveqa.py): reader, split, answerability labels, hand-written unanswerable set, runner,
metrics, report and the `carecite eval liveqa` command."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import make_settings
from eval import liveqa as L
from eval.reports import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
# Answerable questions whose matched MedQuAD page (small MedlinePlus health-topic pages) the tiny index holds.
INDEXED = {"train1:Q157": "medquad:MPlusHealthTopics:0000336", "train1:Q15": "medquad:MPlusHealthTopics:0000270",
           "train2:277": "medquad:MPlusHealthTopics:0000419"}
OTHERS = ["train1:Q1", "hand:12", "hand:47"]  # a liveqa question the corpus lacks, two hand-written ones


@pytest.fixture(scope="module")
def questions(data_mirror):
    return L.load_liveqa(data_mirror)


# ---------------------------------------------------------------- reader

def test_reader_reads_both_layouts(questions):
    by_file = Counter(q.qid.split(":")[0] for q in questions)
    assert dict(by_file) == L.EXPECTED  # 200 + 246, as the data's README says
    assert len({q.qid for q in questions}) == len(questions)
    # README: 388 question-answer pairs in file 1, 246 in file 2.
    pairs = Counter(q.qid.split(":")[0] for q in questions for _ in q.answers)
    assert pairs == {"train1": 388, "train2": 246}
    answer_ids = [a.answer_id for q in questions for a in q.answers]
    assert len(set(answer_ids)) == len(answer_ids) and all(a.text for q in questions for a in q.answers)

    by_id = {q.qid: q for q in questions}
    q1 = by_id["train1:Q1"]  # file 1: empty subject, the question is the message
    assert q1.subject == "" and q1.question == q1.message and q1.message.startswith("Literature on Cardiac amyloidosis")
    assert q1.sub_questions[0].focus == ("cardiac amyloidosis",) and q1.sub_questions[0].qtype == "information"
    assert by_id["train1:Q127"].sub_questions[0].focus == ("hepatitis c", "vitamin E")  # two foci
    lyme = by_id["train2:1"]  # file 2: qid="1.0", no sub-question or answer ids
    assert lyme.subject == "Lyme Disease" and lyme.question.startswith("Lyme Disease\n12 years ago I was bitten")
    assert lyme.sub_questions[0].qtype == "information" and lyme.answers[0].answer_id == "train2:1-S1-A1"
    assert sum(len(q.sub_questions) > 1 for q in questions) > 0  # several questions in one message


def test_reader_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.xml"):
        L.read_liveqa_file(tmp_path / "missing.xml", "train1")
    bad = tmp_path / "bad.xml"
    bad.write_text("<NLM-QUESTIONS><NLM-QUESTION questionid='Q1'>")
    with pytest.raises(ValueError, match=r"bad\.xml: malformed XML"):
        L.read_liveqa_file(bad, "train1")
    other = tmp_path / "other.xml"
    other.write_text("<Document id='1'/>")
    with pytest.raises(ValueError, match="not a LiveQA file"):
        L.read_liveqa_file(other, "train1")
    dup = tmp_path / "dup.xml"
    dup.write_text("<NLM-QUESTIONS>" + "<NLM-QUESTION qid='3.0'><MESSAGE>hi</MESSAGE></NLM-QUESTION>" * 2
                   + "</NLM-QUESTIONS>")
    with pytest.raises(ValueError, match="duplicate question id 'train2:3'"):
        L.read_liveqa_file(dup, "train2")


# ---------------------------------------------------------------- split

def test_split_is_deterministic_disjoint_and_order_free(questions):
    tune, test = L.in_half(questions, "tune"), L.in_half(questions, "test")
    t_ids, s_ids = {q.qid for q in tune}, {q.qid for q in test}
    assert not t_ids & s_ids and t_ids | s_ids == {q.qid for q in questions}
    assert 0.4 < len(tune) / len(questions) < 0.6
    assert L.in_half(questions, "all") == questions
    # Membership depends on the id alone: not on order, not on which other questions are loaded.
    assert {q.qid for q in L.in_half(list(reversed(questions)), "tune")} == t_ids
    assert {q.qid for q in L.in_half(questions[::3], "tune")} == t_ids & {q.qid for q in questions[::3]}
    # ... nor on the process (Python's own hash is salted per process).
    ids = [q.qid for q in questions[:40]]
    code = f"from eval.liveqa import half_of; print(','.join(half_of(i) for i in {ids!r}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.strip().split(",") == [L.half_of(i) for i in ids]
    with pytest.raises(ValueError, match="half must be one of"):
        L.in_half(questions, "train")


# ---------------------------------------------------------------- answerable labels

def _docs(paths):
    from ingest.readers import read_path
    for p in paths:
        for d in read_path(p):
            yield d.doc_id, d.doc_type, [d.title] + [f"{s.title}\n{s.text}" for s in d.sections]


def test_match_answers_finds_the_page_an_answer_was_copied_from(questions, data_mirror):
    by_id = {q.qid: q for q in questions}
    migraine = by_id["train1:Q2"].answers[1]  # copied from the NINDS migraine page
    amyloid = by_id["train1:Q1"].answers[0]  # MedlinePlus encyclopedia text, not in MedQuAD
    page = data_mirror / "medquad" / "6_NINDS_QA" / "0000194.xml"
    m = L.match_answers([migraine, amyloid], _docs([page]))
    doc, share, count = m[migraine.answer_id][0]
    assert doc == "medquad:NINDS:0000194" and share > 0.9 and L.is_match(share, count)
    assert not any(L.is_match(s, c) for _, s, c in m[amyloid.answer_id])


def test_boilerplate_shingles_are_not_evidence():
    text = "These resources address the diagnosis or management of this condition and may include providers."
    answer = L.ReferenceAnswer("a1", text)
    docs = [(f"d{i}", "guideline", [f"Condition {i}", text]) for i in range(12)]
    assert L.match_answers([answer], iter(docs))["a1"] == []  # in 12 documents > BOILERPLATE_DF
    found = L.match_answers([answer], iter(docs), max_df=20)["a1"]
    assert len(found) == 12 and all(share == 1.0 for _, share, _ in found)


def test_words_read_medquad_without_its_lost_characters():
    # MedQuAD lost its non-ASCII characters: "body's" reads "bodys", "relapse-a" (em dash) reads "relapsea".
    assert L.words("the body\u2019s needs, a relapse\u2014a return") == L.words("the bodys needs, a relapsea return")
    assert L.shingles("too short") == set()


def test_label_answerable_rows(questions, data_mirror, monkeypatch):
    pages = [data_mirror / "medquad" / "6_NINDS_QA" / "0000194.xml",
             data_mirror / "medquad" / "4_MPlus_Health_Topics_QA" / "0000336.xml"]
    monkeypatch.setattr(L, "corpus_documents", lambda mirror, corpora: _docs(pages))
    chosen = [q for q in questions if q.qid in ("train1:Q2", "train1:Q157", "train1:Q1")]
    rows = {r["id"]: r for r in L.label_answerable(chosen, data_mirror)}
    assert rows["train1:Q2"]["answerable"] and rows["train1:Q2"]["matched_doc_ids"] == ["medquad:NINDS:0000194"]
    assert rows["train1:Q157"]["matched_doc_ids"] == ["medquad:MPlusHealthTopics:0000336"]
    assert not rows["train1:Q1"]["answerable"] and rows["train1:Q1"]["matched_doc_ids"] == []
    sub = rows["train1:Q2"]["sub_questions"][0]
    assert sub["best"]["doc_id"] == "medquad:NINDS:0000194" and sub["focus"] == ["migraine"]
    assert "medquad:NINDS:0000194" in sub["focus_doc_ids"]  # its title names the focus
    assert all(r["half"] == L.half_of(r["id"]) for r in rows.values())


def test_committed_labels_cover_every_question(questions):
    labels = L.load_labels()
    assert set(labels) == {q.qid for q in questions}
    assert all(r["half"] == L.half_of(i) for i, r in labels.items())
    assert all(r["answerable"] == bool(r["matched_doc_ids"]) for r in labels.values())
    for qid, doc in {"train1:Q2": "medquad:NINDS:0000194", **INDEXED}.items():
        assert doc in labels[qid]["matched_doc_ids"], qid
    counts = L.label_counts(labels)
    assert counts["tune"]["answerable"] + counts["test"]["answerable"] == counts["all"]["answerable"] > 0


def test_unanswerable_file_is_valid(tmp_path):
    rows = L.load_unanswerable()
    assert len(rows) == 50 and len({r["id"] for r in rows}) == 50
    assert {"veterinary", "cosmetic-price", "billing", "new-drug", "non-medical"} <= {r["kind"] for r in rows}
    bad = tmp_path / "u.jsonl"
    bad.write_text(json.dumps({"id": "x", "question": "why?", "key_terms": []}) + "\n")
    with pytest.raises(ValueError, match="non-empty 'key_terms'"):
        L.load_unanswerable(bad)


@pytest.mark.slow
def test_unanswerable_key_terms_are_absent_from_the_corpus(data_mirror):
    rows = L.load_unanswerable()
    terms = sorted({t for r in rows for t in r["key_terms"]})
    found = L.corpus_mentions(terms, data_mirror)
    assert {t: d for t, d in found.items() if d} == {}
    # The search does find what is there (a drug of the OpenStax pharmacology book).
    assert L.corpus_mentions(["semaglutide"], data_mirror, corpora=("openstax-nursing",))["semaglutide"]


# ---------------------------------------------------------------- agreement measures

def test_token_f1_and_rouge_l():
    a, b = "the cat sat on the mat".split(), "the cat lay on the mat".split()
    assert L.token_f1(a, a) == 1.0 and L.rouge_l(a, a) == 1.0
    assert L.token_f1(a, b) == pytest.approx(5 / 6) and L.rouge_l(a, b) == pytest.approx(5 / 6)
    assert L.rouge_l(a, list(reversed(a))) < L.token_f1(a, list(reversed(a))) == 1.0  # order matters to LCS
    assert L.token_f1(a, ["dog"]) == 0.0 and L.rouge_l([], a) == 0.0


# ---------------------------------------------------------------- runner, metrics, report, command

@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory, embedder, data_mirror):
    """A real Edge index of the three MedlinePlus pages that hold INDEXED's reference answers."""
    from carecite.runtime import open_index
    from ingest.pipeline import Ingestor, SourceSpec
    tmp = tmp_path_factory.mktemp("liveqa")
    pages = tmp / "pages"
    pages.mkdir()
    for doc in INDEXED.values():
        shutil.copy(data_mirror / "medquad" / "4_MPlus_Health_Topics_QA" / f"{doc.rsplit(':', 1)[1]}.xml", pages)
    s = make_settings(tmp / "data")
    s.audit.enabled = False
    with open_index(s, create=True, dim=embedder.dim) as index:
        report = Ingestor.from_settings(index, embedder, s, show_progress=False).run([SourceSpec("pages", path=pages)])
        assert not report.errors and report.docs_new == 3
    return s


def _items(data_mirror):
    items = {it.qid: it for it in L.build_items(data_mirror, "all", unanswerable=True)}
    return [items[i] for i in [*INDEXED, *OTHERS]]


class CountingAssistant:
    """The real assistant, counting the questions asked (or refusing any, to prove a resume asks none)."""

    def __init__(self, assistant, refuse: bool = False):
        self.inner, self.refuse, self.asked = assistant, refuse, []
        self.embedder = assistant.embedder

    def stream(self, question, *a, **kw):
        if self.refuse:
            raise AssertionError(f"asked again: {question[:40]}")
        self.asked.append(question)
        return self.inner.stream(question, *a, **kw)


def test_runner_metrics_resume_and_report(tiny_index, data_mirror, tmp_path):
    from assistant.generators import get_generator
    from assistant.pipeline import Assistant
    items = _items(data_mirror)
    path = tmp_path / "answers.jsonl"
    with Assistant(tiny_index, generator=get_generator(tiny_index, "extractive")) as assistant:
        rows = L.run_liveqa(items, CountingAssistant(assistant), path, progress=False)
        assert [r["id"] for r in rows] == [it.qid for it in items]
        assert [r["id"] for r in read_jsonl(path)] == [it.qid for it in items]

        for r in rows:
            assert 0 <= r["sentences_verified"] <= r["sentences_shown"] <= len(r["sentences"])
            assert r["sentences_shown"] == sum(s["shown"] for s in r["sentences"])
            if r["abstained"]:
                assert r["sentences_shown"] == 0 and r["abstain_reason"]
            assert 0 < r["timings"]["first_sources"] <= r["timings"]["wall"]
            assert all(s["doc_id"] and s["doc_type"] for s in r["sources"])
        answered = [r for r in rows if r["id"] in INDEXED and not r["abstained"]]
        assert answered, "the extractive generator answered none of the questions whose answer is indexed"
        for r in answered:
            assert r["agreement"] is not None and -1 <= r["agreement"]["cosine"] <= 1
            assert r["cites_matched_doc"] == (INDEXED[r["id"]] in {s["doc_id"] for s in r["sources"] if s["cited"]})
        assert all(r["agreement"] is None for r in rows if r["set"] == "handwritten")

        sc = L.score_rows(rows)
        ans = [r for r in rows if r["set"] == "liveqa" and r["answerable"]]
        unans = [r for r in rows if not r["answerable"]]
        assert sc["answerable"]["n"] == 3 and sc["answerable"]["answered"] == sum(not r["abstained"] for r in ans)
        assert sc["answerable"]["answer_rate"] == sc["answerable"]["answered"] / 3
        assert sc["abstention"]["right"] == sum(r["abstained"] for r in unans)
        assert sc["abstention"]["wrong"] == sum(r["abstained"] for r in ans)
        assert sc["abstention"]["hand_written"]["n"] == 2 and sc["abstention"]["liveqa_not_answerable"]["n"] == 1
        assert sum(sc["abstain_reasons"].values()) == sum(r["abstained"] for r in rows)
        delivered = [r for r in rows if not r["abstained"]]
        assert sc["sentences"]["shown"] == sum(r["sentences_shown"] for r in delivered) > 0
        assert sc["sentences"]["verified"] == sum(r["sentences_verified"] for r in delivered)
        assert sc["agreement"]["n"] == len(answered)

        # Resume: nothing is asked again; a row lost to a crash (cut last line) is asked again, alone.
        again = L.run_liveqa(items, CountingAssistant(assistant, refuse=True), path, progress=False)
        assert again == rows
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:-1]) + lines[-1][:25])
        counting = CountingAssistant(assistant)
        redo = L.run_liveqa(items, counting, path, progress=False)
        assert counting.asked == [items[-1].question]
        assert [r["id"] for r in read_jsonl(path)] == [it.qid for it in items]
        assert [r["id"] for r in redo] == [it.qid for it in items]

    report = L.build_report({"extractive": rows}, items, L.load_labels(), {"half": "all"}, tmp_path / "report")
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["summary"]["extractive"]["answered"] == sc["answerable"]["answered"]
    assert saved["summary"]["extractive"]["abstentions right"] == sc["abstention"]["right"]
    assert Path(report["files"]["chart"]).stat().st_size > 0
    assert "| extractive |" in (tmp_path / "report" / "report.md").read_text()
    with open(report["files"]["hand check extractive"], newline="") as f:
        sample = list(csv.DictReader(f))
    assert [r["id"] for r in sample] and {r["id"] for r in sample} <= {r["id"] for r in answered}
    assert all(r["reference"] and r["answer"] and r["hand_agrees"] == "" for r in sample)


def test_command_runs_resumes_and_refuses_bad_input(tiny_index, tmp_path, capsys):
    from carecite.cli import main
    base = ["--preset", "fast", "--data-dir", str(tiny_index.paths.data_dir), "eval", "liveqa", "--half", "tune",
            "--report-dir", str(tmp_path), "--no-progress"]
    assert main(base + ["--limit", "1", "--unanswerable"]) == 0
    out = capsys.readouterr().out
    assert "liveqa tune: 0/2 questions done before this run" in out and "liveqa tune: 2/2 questions done" in out
    rows = read_jsonl(tmp_path / "predictions" / "extractive" / "answers.jsonl")
    assert [r["set"] for r in rows] == ["liveqa", "handwritten"] and all(r["half"] == "tune" for r in rows)
    assert (tmp_path / "report.md").is_file() and (tmp_path / "liveqa.png").is_file()
    assert main(base + ["--limit", "1", "--unanswerable", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["setup"]["liveqa questions"] == 1 and report["setup"]["hand-written unanswerable"] == 1
    assert main(base + ["--limit", "0"]) == 2
    assert "limit must be >= 1" in capsys.readouterr().err


def test_answerable_only_keeps_the_questions_the_corpus_answers(data_mirror):
    from eval.liveqa import build_items
    every = build_items(data_mirror, "tune")
    only = build_items(data_mirror, "tune", answerable_only=True)
    assert only and all(it.answerable for it in only)
    assert {it.qid for it in only} == {it.qid for it in every if it.answerable}
    with_hand = build_items(data_mirror, "tune", answerable_only=True, unanswerable=True)
    assert {it.set for it in with_hand} == {"liveqa", "handwritten"}
