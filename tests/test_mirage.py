"""MIRAGE: the authors' predictions score to the published table; answer reading; prompts; resumable runs."""
import json

import pytest

from eval import mirage
from eval.answer_parsing import authors_choice, parse_answer

ABCD = {"A": "Aspirin", "B": "Beta blocker", "C": "Calcium channel blocker", "D": "Diuretic"}


@pytest.fixture(scope="module")
def benchmark():
    return mirage.load_benchmark()


@pytest.fixture(scope="module")
def published():
    return {(r["llm"], r["setting"]): r for r in mirage.published_rows()}


def _rounded(result):
    return {s: round(v["accuracy_pct"], 2) for s, v in result["subsets"].items()}


@pytest.mark.parametrize("llm, setting, row_llm, row_setting, average", [
    ("OpenAI/gpt-4-32k", "rag_32/medcorp/RRF-4", "GPT-4-32k-0613", "MedRAG", 79.97),
    ("OpenAI/gpt-35-turbo-16k", "rag_32/medcorp/RRF-4", "GPT-3.5-16k-0613", "MedRAG", 71.57),
    ("OpenAI/gpt-4-32k", "cot", "GPT-4-32k-0613", "CoT", 73.44),
])
def test_authors_predictions_reproduce_the_paper(benchmark, published, llm, setting, row_llm, row_setting, average):
    result = mirage.score_predictions(benchmark, mirage.read_authors_predictions(llm=llm, setting=setting))
    assert result["complete"] and result["done"] == 7663
    assert round(result["average_pct"], 2) == average
    row = published[(row_llm, row_setting)]
    assert _rounded(result) == {s: row[s] for s in mirage.SUBSETS}
    assert row["average"] == average


def test_empty_outputs_count_as_wrong(benchmark):
    # GPT-3.5 CoT has 34 prediction files holding no output; the current upstream scorer counts them wrong.
    preds = mirage.read_authors_predictions(llm="OpenAI/gpt-35-turbo-16k", setting="cot")
    empty = {s: [q for q, raw in d.items() if raw is None] for s, d in preds.items()}
    assert sum(map(len, empty.values())) > 0
    result = mirage.score_predictions(benchmark, preds)
    qs = {(q.subset, q.qid): q for subset in benchmark.values() for q in subset}
    medqa = result["subsets"]["medqa"]
    readable = sum(authors_choice(raw) == qs[("medqa", q)].answer for q, raw in preds["medqa"].items() if raw)
    assert medqa["correct"] == readable and medqa["done"] == 1273


def test_published_rows_match_readme_numbers(published):
    # /work/shared/data/README.md: GPT-4 73.44 -> 79.97, GPT-3.5 60.69 -> 71.57, Mixtral 61.42 -> 69.48
    for llm, cot, rag in [("GPT-4-32k-0613", 73.44, 79.97), ("GPT-3.5-16k-0613", 60.69, 71.57),
                          ("Mixtral-8x7B", 61.42, 69.48)]:
        assert published[(llm, "CoT")]["average"] == cot and published[(llm, "MedRAG")]["average"] == rag
    for row in published.values():
        assert sum(row[s] for s in mirage.SUBSETS) / 5 == pytest.approx(row["average"], abs=0.01)
    assert len(mirage.published_rows(all_systems=True)) > len(published)


def test_load_benchmark_sizes_and_stable_sample(benchmark):
    assert {s: len(q) for s, q in benchmark.items()} == {
        "mmlu": 1089, "medqa": 1273, "medmcqa": 4183, "pubmedqa": 500, "bioasq": 618}
    small = mirage.load_benchmark(subsets=["mmlu"], limit=20)["mmlu"]
    assert [q.qid for q in small] == [q.qid for q in benchmark["mmlu"][:20]]
    assert len({q.qid.split("-")[0] for q in small}) > 1  # a spread over MMLU topics, not the first one only
    with pytest.raises(ValueError, match="unknown MIRAGE subset"):
        mirage.load_benchmark(subsets=["usmle"])
    with pytest.raises(FileNotFoundError):
        mirage.load_benchmark("/nonexistent/benchmark.json")


@pytest.mark.parametrize("raw, letter", [
    ('{"step_by_step_thinking": "...", "answer_choice": "D. always 1:1."}', "D"),
    ('{"answer_choice": "B"}', "B"),
    ('{"answer_choice": "Option C is right"}', "C"),
    ('{"answer_choice": "None of the above"}', "A"),   # unreadable: the authors count it as "A"
    ("no json at all", "A"),
])
def test_authors_choice_rules(raw, letter):
    assert authors_choice(raw) == letter


@pytest.mark.parametrize("text, letter", [
    ('{"step_by_step_thinking": "thiazides first", "answer_choice": "D"}', "D"),
    ('```json\n{"step_by_step_thinking": "x", "answer_choice": "C. Calcium channel blocker"}\n```', "C"),
    ('{"step_by_step_thinking": "x", "answer_choice": "b"}', "B"),
    ('{"step_by_step_thinking": "cut off mid-sentence", "answer_choice": "A', "A"),
    ('{"answer": "Diuretic"}', "D"),
    ("Answer: B", "B"),
    ("After weighing the options, the answer is (c).", "C"),
    ("(B)", "B"),
    ("B.", "B"),
    ("d", "D"),
    ("beta blocker", "B"),
    ("The best choice here is a diuretic.", "D"),
    ("A patient like this needs no drug.", None),
    ('{"answer_choice": "The documents do not say"}', None),
    ("Either aspirin or a diuretic.", None),
    ("Answer: E", None),
    ("", None),
])
def test_parse_answer(text, letter):
    assert parse_answer(text, ABCD) == letter


def test_parse_answer_respects_the_option_set():
    assert parse_answer("Answer: C", {"A": "yes", "B": "no"}) is None
    assert parse_answer('{"answer_choice": "yes"}', {"A": "yes", "B": "no", "C": "maybe"}) == "A"
    with pytest.raises(ValueError):
        parse_answer("A", {})


def test_prompts_follow_medrag():
    system, user = mirage.build_prompt("Which drug?", ABCD)
    assert system == mirage.SYSTEM_COT and "A. Aspirin\nB. Beta blocker" in user and "documents" not in user
    system, user = mirage.build_prompt("Which drug?", ABCD, snippets=[("JNC 8", "Start a thiazide."), ("T2", "x")])
    assert system == mirage.SYSTEM_RAG
    assert "Document [0] (Title: JNC 8) Start a thiazide.\nDocument [1] (Title: T2) x" in user
    assert user.index("Here are the relevant documents") < user.index("Which drug?") < user.index("D. Diuretic")


def test_run_mirage_resumes_without_redoing_questions(tmp_path, benchmark):
    asked = []

    def fake_model(question, options):
        # A stand-in for the model (retrieval + generator): always picks the first option, and counts calls.
        asked.append(question)
        return json.dumps({"step_by_step_thinking": "-", "answer_choice": "A"}), {"n": len(asked)}

    bench = {s: benchmark[s] for s in ("pubmedqa", "bioasq")}
    first = mirage.run_mirage(bench, fake_model, tmp_path, limit=3, progress=False)
    assert len(asked) == 6 and first["done"] == 6 and first["total"] == 6
    second = mirage.run_mirage(bench, fake_model, tmp_path, limit=5, progress=False)
    assert len(asked) == 10 and second["done"] == 10
    third = mirage.run_mirage(bench, fake_model, tmp_path, limit=5, progress=False)
    assert len(asked) == 10 and third == second

    lines = [json.loads(x) for x in (tmp_path / "bioasq.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lines] == [q.qid for q in bench["bioasq"][:5]]
    assert lines[0]["choice"] == "A" and lines[0]["parsed"] == "A" and lines[-1]["extra"] == {"n": 10}
    gold = [q.answer for q in bench["bioasq"][:5]]
    assert second["subsets"]["bioasq"]["accuracy_pct"] == pytest.approx(100 * gold.count("A") / 5)
    assert second["average_pct"] == pytest.approx(
        (second["subsets"]["bioasq"]["accuracy_pct"] + second["subsets"]["pubmedqa"]["accuracy_pct"]) / 2)

    # A crash mid-write leaves half a line: it is dropped and that question is asked again.
    path = tmp_path / "pubmedqa.jsonl"
    path.write_text(path.read_text() + '{"id": "123", "raw": "{\\"answ')
    mirage.run_mirage(bench, fake_model, tmp_path, subsets=["pubmedqa"], limit=6, progress=False)
    assert len(asked) == 11 and len(path.read_text().splitlines()) == 6

    with pytest.raises(FileExistsError):
        mirage.run_mirage(bench, fake_model, tmp_path, limit=1, resume=False, progress=False)


def test_run_mirage_rejects_a_non_text_answer(tmp_path, benchmark):
    with pytest.raises(TypeError, match="answer_fn must return"):
        mirage.run_mirage({"bioasq": benchmark["bioasq"]}, lambda q, o: (None, {}), tmp_path, limit=1, progress=False)


def test_letter_prompt_asks_for_the_letter_and_records_the_models_choice():
    """The 'letter' style: MedRAG's prompt without the reasoning request; the generator's choose() (a grammar or
    log-probabilities, tested against the real model in test_generators.py) picks among the option labels."""
    from eval.answer_parsing import authors_choice
    from eval.qa_runs import mirage_answer_fn

    class Chooser:  # records what the benchmark asks of the model
        name = "recorder"

        def __init__(self):
            self.calls = []

        def choose(self, messages, options):
            self.calls.append((messages, list(options)))
            return "C", {"A": -3.0, "C": -0.1}

    gen = Chooser()
    raw, extra = mirage_answer_fn(gen, style="letter")("Which drug?", ABCD)
    (messages, options), = gen.calls
    assert options == ["A", "B", "C", "D"]
    system, user = messages[0]["content"], messages[1]["content"]
    assert "step-by-step" not in system + user and "letter of the answer only" in system
    assert user.rstrip().endswith("Answer (the letter only):") and "A. Aspirin" in user
    assert authors_choice(raw) == "C" and extra["letter_logprobs"] == {"A": -3.0, "C": -0.1}

    class Writer:  # a generator without choose() cannot run the letter style
        name = "writer"

        def generate(self, messages):
            return ""

        def stream(self, messages):
            yield ""

    with pytest.raises(ValueError, match="cannot rank option letters"):
        mirage_answer_fn(Writer(), style="letter")


def test_calibration_removes_the_models_letter_bias_and_scores_the_same_predictions(tmp_path, benchmark):
    """A model that favours "A" whatever it reads: its recorded log-probabilities minus those of a content-free
    question pick the letter the question itself moved up (contextual calibration)."""
    from eval.commands import calibrate_letter_runs
    from eval.qa_runs import CONTENT_FREE, calibrated_letter

    assert calibrated_letter({"A": -0.5, "B": -1.0}, {"A": -0.2, "B": -2.0}, ["A", "B"]) == "B"
    assert calibrated_letter({"A": -0.5}, {"A": -0.2, "B": -2.0}, ["A", "B"]) is None  # a letter missing

    class Biased:
        name = "biased"
        asked = []

        def choose(self, messages, options):
            self.asked.append(messages[1]["content"])
            return "A", {"A": -0.1, "B": -3.0, "C": -4.0}  # the content-free answer: strongly "A"

    qs = benchmark["bioasq"][:4]
    run = tmp_path / "rag_3_hybrid_letter"
    run.mkdir()
    # Recorded: always "A" first, but B gained 2.5 nats over its content-free value on the "no" questions.
    rows = [{"id": q.qid, "raw": '{"answer_choice": "A"}', "choice": "A", "parsed": "A", "answer": q.answer,
             "extra": {"letter_logprobs": {"A": -0.1, "B": -0.5 if q.answer == "B" else -3.0}}} for q in qs]
    (run / "bioasq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    gen = Biased()
    out = calibrate_letter_runs(gen, {"bioasq": qs}, {"rag_3_hybrid_letter": run})["rag_3_hybrid_letter"]
    assert out["accuracy"]["bioasq"] == 100.0 and out["calibrated"] == 4
    assert out["changed_choices"] == sum(q.answer == "B" for q in qs)
    assert len(gen.asked) == 1 and CONTENT_FREE in gen.asked[0] and "relevant documents" in gen.asked[0]
