"""PubMedQA PQA-L: test-set loading, contexts, answer reading, accuracy / macro-F1, resumable runs."""
import json

import pytest

from eval import pubmedqa as P


@pytest.fixture(scope="module")
def items():
    return P.load_test_set()


def test_load_test_set(items):
    truth = json.loads((P.data_dir() / "test_ground_truth.json").read_text())
    assert len(items) == 500 == len(truth)
    assert [it.pmid for it in items] == list(truth)
    assert all(it.label == truth[it.pmid] for it in items)
    assert all(it.question.strip() and it.contexts and it.long_answer for it in items)
    assert len(P.load_test_set(limit=7)) == 7


def test_load_test_set_reports_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="ori_pqal.json"):
        P.load_test_set(tmp_path)


def test_contexts_and_prompts(items):
    item = items[0]
    assert P.oracle_context(item) == "\n".join(item.contexts)
    assert item.long_answer not in P.oracle_context(item)
    assert P.no_context(item) is None
    assert P.retrieved_context([("T1", "a"), ("T2", "b")]) == "[1] T1\na\n\n[2] T2\nb"
    system, user = P.build_prompt(item.question, P.oracle_context(item))
    assert system == P.SYSTEM and item.contexts[0] in user and item.question in user
    assert "context" not in P.build_prompt(item.question, None)[1]
    assert P.context_fn_for("oracle") is P.oracle_context and P.context_fn_for("retrieved") is None
    with pytest.raises(ValueError, match="context setting"):
        P.context_fn_for("gold")


@pytest.mark.parametrize("text, label", [
    ('{"step_by_step_thinking": "no clear evidence", "answer": "Yes"}', "yes"),
    ('{"step_by_step_thinking": "...", "answer_choice": "C. maybe"}', "maybe"),
    ('{"answer_choice": "B"}', "no"),
    ("maybe", "maybe"),
    ("No.", "no"),
    ("Answer: no", "no"),
    ("Considering the trial, the answer is **yes**.", "yes"),
    ("Yes, endosonography helps.", "yes"),
    ("The data were inconclusive, so maybe.", "maybe"),
    ("I cannot tell.", None),
    ("", None),
])
def test_parse_yes_no_maybe(text, label):
    assert P.parse_yes_no_maybe(text) == label


def test_score_hand_computed():
    golds = ["yes", "yes", "no", "maybe", "no"]
    preds = ["yes", "no", "no", None, "maybe"]
    s = P.score(golds, preds)
    # yes: tp1 fp0 fn1 -> F1 2/3; no: tp1 fp1 fn1 -> 1/2; maybe: tp0 fp1 fn1 -> 0
    assert s["accuracy"] == pytest.approx(2 / 5)
    assert s["per_label"]["yes"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert s["per_label"]["no"]["f1"] == pytest.approx(0.5)
    assert s["per_label"]["maybe"]["f1"] == 0.0
    assert s["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert s["unparsed"] == 1 and s["n"] == 5


def test_score_perfect_and_bad_input():
    assert P.score(["yes", "no", "maybe"], ["yes", "no", "maybe"])["macro_f1"] == 1.0
    with pytest.raises(ValueError, match="labels must be"):
        P.score(["yes"], ["true"])
    with pytest.raises(ValueError, match="gold labels"):
        P.score(["yes"], [])


def test_run_pubmedqa_resumes_and_passes_the_context(tmp_path, items):
    seen = []

    def fake_model(question, context):
        # A stand-in for the model: records what it was given, always answers "yes".
        seen.append((question, context))
        return '{"step_by_step_thinking": "-", "answer": "yes"}', {"k": len(seen)}

    out = tmp_path / "oracle.jsonl"
    first = P.run_pubmedqa(items[:4], fake_model, out, context_fn=P.oracle_context, progress=False)
    assert len(seen) == 4 and seen[0] == (items[0].question, P.oracle_context(items[0]))
    assert first["done"] == 4 and first["total"] == 4
    second = P.run_pubmedqa(items[:6], fake_model, out, context_fn=P.oracle_context, progress=False)
    assert len(seen) == 6 and second["done"] == 6
    golds = [it.label for it in items[:6]]
    assert second["accuracy"] == pytest.approx(golds.count("yes") / 6)
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["pmid"] for r in records] == [it.pmid for it in items[:6]]
    assert records[0]["pred"] == "yes" and records[0]["label"] == items[0].label

    P.run_pubmedqa(items[:2], fake_model, tmp_path / "none.jsonl", context_fn=P.no_context, progress=False)
    assert seen[-1] == (items[1].question, None)
    with pytest.raises(FileExistsError):
        P.run_pubmedqa(items[:6], fake_model, out, resume=False, progress=False)
