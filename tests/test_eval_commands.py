"""`carecite eval mirage | pubmedqa | grounding`: real runs through SmolLM2 (in-process and behind a real
OpenAI-compatible llama.cpp server), resume, reports, the grounding scores and the verifier against hand labels."""
from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from carecite.settings import Settings
from eval import grounding as G
from eval import mirage, pubmedqa
from eval.answer_parsing import authors_choice, parse_answer
from eval.commands import add_eval_commands, check_run_config, export_authors_layout, slug
from eval.qa_runs import (_MIRAGE_ANSWER_FIRST, _PUBMEDQA_ANSWER_FIRST, EXTRACT_MIRAGE, mirage_answer_fn,
                          pubmedqa_answer_fn, restyle)
from ingest.readers.medquad import read_medquad_file


def run_cli(*argv: str) -> int:
    """`carecite ...` as a user runs it (carecite/cli.py registers these commands through add_eval_commands)."""
    from carecite.cli import main
    return main(list(argv))


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------- fast: wiring, configs, prompts

def test_commands_register_on_the_eval_subparsers():
    p = argparse.ArgumentParser()
    add_eval_commands(p.add_subparsers())
    a = p.parse_args(["mirage", "--subset", "bioasq", "--limit", "2", "--both", "--generator", "openai",
                      "--base-url", "http://h:1/v1", "--model", "m", "--k", "4"])
    assert callable(a.fn) and a.both and a.k == 4 and a.base_url == "http://h:1/v1" and a.prompt == "medrag"
    assert p.parse_args(["pubmedqa"]).context == "all"
    assert p.parse_args(["grounding", "--limit", "3"]).limit == 3
    with pytest.raises(SystemExit):
        p.parse_args(["mirage", "--both", "--no-retrieval"])


def test_extractive_generator_is_refused_for_multiple_choice(tmp_path, capsys):
    for command in (["mirage", "--no-retrieval", "--subset", "bioasq"], ["pubmedqa", "--context", "none"]):
        rc = run_cli("--data-dir", str(tmp_path), "eval", *command, "--generator", "extractive", "--limit", "1",
                     "--out", str(tmp_path / command[0]))
        assert rc == 2 and "cannot answer multiple-choice" in capsys.readouterr().err
        assert not (tmp_path / command[0] / "predictions").exists()


def test_openai_generator_without_endpoint_fails_clearly(tmp_path, capsys):
    rc = run_cli("--data-dir", str(tmp_path), "eval", "mirage", "--generator", "openai", "--no-retrieval",
                 "--subset", "bioasq", "--limit", "1", "--out", str(tmp_path / "m"))
    assert rc == 2 and "BASE_URL" in capsys.readouterr().err


def test_unreachable_endpoint_fails_clearly(tmp_path, capsys):
    rc = run_cli("--data-dir", str(tmp_path), "eval", "pubmedqa", "--generator", "openai", "--context", "none",
                 "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--limit", "1", "--no-progress",
                 "--out", str(tmp_path / "p"))
    assert rc == 2 and "cannot reach" in capsys.readouterr().err


class CtrlCAfter:
    """A stand-in generator for a user pressing Ctrl-C: answers `n` questions, then is interrupted."""
    name = "stand-in"

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def generate(self, messages):
        self.calls += 1
        if self.calls > self.n:
            raise KeyboardInterrupt
        return '{"step_by_step_thinking": "-", "answer_choice": "A"}'


def test_an_interrupted_run_says_what_is_done_and_resumes(tmp_path, capsys, monkeypatch):
    import eval.commands
    out = tmp_path / "m"
    argv = ["--data-dir", str(tmp_path), "eval", "mirage", "--no-retrieval", "--subset", "medqa,bioasq",
            "--limit", "3", "--no-progress", "--out", str(out)]
    monkeypatch.setattr(eval.commands, "_qa_generator", lambda s: CtrlCAfter(4))
    assert run_cli(*argv) == 130
    said = capsys.readouterr().out
    assert "interrupted; mirage cot: medqa 3/3, bioasq 1/3 done. Rerun the same command to resume." in said
    assert len(lines(out / "predictions" / "stand-in" / "cot" / "bioasq.jsonl")) == 1
    resumed = CtrlCAfter(99)
    monkeypatch.setattr(eval.commands, "_qa_generator", lambda s: resumed)
    assert run_cli(*argv) == 0 and resumed.calls == 2
    assert "mirage cot: medqa 3/3, bioasq 1/3 done before this run" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text())["results"]["cot"]["done"] == 6


def test_a_run_folder_refuses_another_configuration(tmp_path):
    check_run_config(tmp_path, {"generator": "local:a", "max_tokens": 64})
    check_run_config(tmp_path, {"generator": "local:a", "max_tokens": 64})
    with pytest.raises(ValueError, match="max_tokens: 64 -> 128"):
        check_run_config(tmp_path, {"generator": "local:a", "max_tokens": 128})


def test_slug_names_folders_safely():
    assert slug("openai:qwen2.5@http://127.0.0.1:8080/v1") == "openai-qwen2.5-127.0.0.1-8080-v1"
    assert slug("local:smollm2") == "local-smollm2" and "/" not in slug("local:/a/b/model.gguf")


def test_answer_first_prompts_keep_the_benchmark_content():
    opts = {"A": "yes", "B": "no", "C": "maybe"}
    for snippets in (None, [("T", "passage text")]):
        system, user = restyle(mirage.build_prompt("Is X safe?", opts, snippets), "answer-first",
                               _MIRAGE_ANSWER_FIRST)
        assert system.index('"answer_choice"') < system.index('"explanation"')
        assert "step-by-step" not in system + user and "Is X safe?" in user and "C. maybe" in user
        assert ("Document [0] (Title: T) passage text" in user) == bool(snippets)
    system, user = restyle(pubmedqa.build_prompt("Is X safe?", "abstract"), "answer-first", _PUBMEDQA_ANSWER_FIRST)
    assert system.index('"answer"') < system.index('"explanation"') and "abstract" in user
    assert restyle(("s", "u"), "medrag", _MIRAGE_ANSWER_FIRST) == ("s", "u")
    with pytest.raises(RuntimeError, match="no longer matches"):
        restyle(("other system", "other user"), "answer-first", _MIRAGE_ANSWER_FIRST)
    with pytest.raises(ValueError, match="prompt style"):
        restyle(("s", "u"), "fancy", _MIRAGE_ANSWER_FIRST)


class Scripted:
    """A stand-in generator replaying fixed outputs and recording the conversations it was sent."""
    name = "scripted"

    def __init__(self, *outputs: str):
        self.outputs, self.sent = list(outputs), []

    def generate(self, messages):
        self.sent.append(list(messages))
        return self.outputs.pop(0)


def test_an_output_naming_no_answer_gets_an_extraction_turn():
    opts = {"A": "yes", "B": "no"}
    cut = "Let's approach this step-by-step:\n\n1. **Identify the key information**: The document"
    gen = Scripted(cut, '{"answer_choice": "B"}')
    raw, extra = mirage_answer_fn(gen)("Is X safe?", opts)
    assert extra["extracted"] and raw == cut + '\n{"answer_choice": "B"}'
    assert authors_choice(raw) == "B" and parse_answer(raw, opts) == "B"
    assert gen.sent[1][-2:] == [{"role": "assistant", "content": cut}, {"role": "user", "content": EXTRACT_MIRAGE}]
    gen = Scripted('{"answer_choice": "A"}')
    assert mirage_answer_fn(gen)("Is X safe?", opts) == ('{"answer_choice": "A"}', {"generator": "scripted",
                                                                                    "style": "medrag"})
    gen = Scripted(cut)
    raw, extra = mirage_answer_fn(gen, extract=False)("Is X safe?", opts)
    assert raw == cut and "extracted" not in extra and len(gen.sent) == 1
    gen = Scripted("The study was small", '{"answer": "maybe"}')
    raw, extra = pubmedqa_answer_fn(gen)("Does Y help?", "context")
    assert extra["extracted"] and pubmedqa.parse_yes_no_maybe(raw) == "maybe"


def test_predictions_exported_in_the_authors_layout(tmp_path):
    bench = mirage.load_benchmark(subsets=["medqa", "bioasq"], limit=2)
    raws = iter(['{"answer_choice": "B"}', 'answer is C', '{"answer_choice": "A. yes"}', "no idea"])
    mirage.run_mirage(bench, lambda q, o: (next(raws), {}), tmp_path, progress=False)
    out = export_authors_layout(tmp_path, list(bench))
    for subset, qs in bench.items():
        for q, rec in zip(qs, lines(tmp_path / f"{subset}.jsonl")):
            stored = json.loads((out / subset / f"{mirage.SPLITS[subset]}_{q.qid}.json").read_text())
            assert stored == [rec["raw"]] and authors_choice(stored[0]) == rec["choice"]


# ---------------------------------------------------------------- fast: grounding question set and scores

def test_grounding_question_set(data_mirror):
    qs = G.load_questions()
    ans = [q for q in qs if q.answerable]
    una = [q for q in qs if not q.answerable]
    assert len(ans) >= 40 and len(una) >= 20 and len({q.qid for q in qs}) == len(qs)
    assert {q.kind for q in una} == {"fictional-drug", "fictional-disease", "out-of-domain"}
    # Every gold document is part of the default corpus (MedQuAD subsets 1-9 or OpenStax nursing).
    openstax = {f"openstax:{r['book']}/{r['module']}"
                for r in map(json.loads, (data_mirror / "openstax-nursing" / "sections.jsonl").open())}
    for q in ans:
        if q.gold_doc_id.startswith("medquad:"):  # the ingest reader turns the question's file into that doc
            _, sub, rest = q.qid.split(":")
            files = list((data_mirror / "medquad").glob(f"{sub}_*/{rest.rsplit('-', 1)[0]}.xml"))
            assert len(files) == 1 and [d.doc_id for d in read_medquad_file(files[0])] == [q.gold_doc_id], q
        else:
            assert q.gold_doc_id in openstax, q
    limited = G.load_questions(limit=3)
    assert [q.answerable for q in limited].count(True) == 3 and len(limited) == 6
    assert [q.qid for q in limited if q.answerable] == [q.qid for q in ans[:3]]


def test_question_set_errors(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": "a", "question": "Q?", "answerable": true}\n')
    with pytest.raises(ValueError, match="no gold_doc_id"):
        G.load_questions(bad)
    bad.write_text('{"id": "a", "question": "Q?", "answerable": "yes"}\n')
    with pytest.raises(ValueError, match="true/false"):
        G.load_questions(bad)
    with pytest.raises(FileNotFoundError):
        G.load_questions(tmp_path / "missing.jsonl")


def _record(answerable, abstained, sentences, citations, gold_indexed=True, cites_gold=False, kind="k"):
    return {"id": str(id(sentences)), "answerable": answerable, "abstained": abstained, "kind": kind,
            "gold_indexed": gold_indexed if answerable else None, "cites_gold": cites_gold, "seconds": 1.0,
            "sentences": [{"text": t, "claim": c, "citations": n, "supported": True} for t, c, n in sentences],
            "citations": [{"sentence": i, "n": n, "supported": ok} for i, n, ok in citations]}


def test_grounding_scores_by_hand():
    records = [
        # answered: 3 claims (2 cited), 1 lead-in; citations: 3, of which 2 support their sentence
        _record(True, False, [("Intro:", False, []), ("A [1].", True, [1]), ("B [1][2].", True, [1, 2]),
                              ("C.", True, [])], [(1, 1, True), (2, 1, True), (2, 2, False)], cites_gold=True),
        # answerable but abstained after verification: its draft counts only in 'all drafts'
        _record(True, True, [("D [1].", True, [1])], [(0, 1, False)]),
        # answerable, gold not in the index: left out of abstention
        _record(True, True, [], [], gold_indexed=False),
        # unanswerable: one abstained (correct), one answered (wrong)
        _record(False, True, [], []),
        _record(False, False, [("E [2].", True, [2])], [(0, 2, True)]),
    ]
    r = G.score_grounding(records)
    assert r["delivered"]["citation_recall"] == pytest.approx(3 / 4)
    assert r["delivered"]["citation_precision"] == pytest.approx(3 / 4)
    assert r["all_drafts"]["citation_recall"] == pytest.approx(4 / 5)
    assert r["all_drafts"]["citation_precision"] == pytest.approx(3 / 5)
    a = r["abstention"]
    assert a["n_answerable"] == 2 and a["n_unanswerable"] == 2 and a["skipped_gold_not_indexed"] == 1
    assert a["correct"] == pytest.approx(2 / 4) and a["answered_when_answerable"] == pytest.approx(1 / 2)
    assert a["abstained_when_unanswerable"] == pytest.approx(1 / 2) and a["answered_citing_gold"] == 0.5


# ---------------------------------------------------------------- the verifier against hand labels

@pytest.fixture(scope="module")
def verifier(embedder):
    from assistant.verify import Verifier
    return Verifier.from_embedder(embedder, Settings().answer.support_threshold)


def test_hand_labels_are_a_real_sample():
    labels = G.load_labels()
    assert len(labels) >= 40
    supported = sum(r["supported"] for r in labels)
    assert 0.3 <= supported / len(labels) <= 0.7  # both classes well represented
    assert len({(r["sentence"], r["passage"]) for r in labels}) == len(labels)


def test_verifier_agrees_with_hand_labels(verifier):
    agreement = G.label_agreement(G.load_labels(), verifier)
    # Floors below what the verifier reached when the labels were written (see the report): a drop means a
    # verifier change made citation-precision figures less trustworthy.
    assert agreement["agreement"] >= 0.85 and agreement["kappa"] >= 0.7
    assert agreement["verifier_precision"] >= 0.85
    c = agreement["confusion"]
    assert c["tp"] + c["fp"] + c["fn"] + c["tn"] == agreement["n"] == len(G.load_labels())
    assert len(agreement["disagreements"]) == c["fp"] + c["fn"]


def test_label_file_errors(tmp_path):
    bad = tmp_path / "l.jsonl"
    bad.write_text('{"sentence": "s", "passage": "p", "supported": "yes"}\n')
    with pytest.raises(ValueError, match="supported"):
        G.load_labels(bad)


# ---------------------------------------------------------------- slow: real model runs

@pytest.fixture(scope="module")
def smollm2_gguf() -> Path:
    from carecite.models import gguf_path
    return gguf_path(Settings.from_name("test"))


@pytest.mark.slow
def test_mirage_local_model_with_and_without_retrieval_resumes(small_index, smollm2_gguf, tmp_path, monkeypatch,
                                                              capsys):
    import carecite.runtime
    out = tmp_path / "mirage"
    queries = []
    real_open = carecite.runtime.open_searcher

    def recording_searcher(settings):  # the real searcher, recording what it is asked
        searcher = real_open(settings)
        real_search = searcher.search
        searcher.search = lambda q, *a, **kw: queries.append(q) or real_search(q, *a, **kw)
        return searcher

    monkeypatch.setattr(carecite.runtime, "open_searcher", recording_searcher)
    def mirage_cli(limit="2", retrieval="--both", max_tokens="24"):
        return run_cli("--preset", "test", "--data-dir", str(small_index.paths.data_dir), "eval", "mirage",
                       "--subset", "medqa,bioasq", "--limit", limit, retrieval, "--k", "3", "--max-tokens", max_tokens,
                       "--no-progress", "--out", str(out), "--json")

    assert mirage_cli() == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["accuracy_pct"]) == {"ours: rag_3_hybrid", "ours: cot"}
    bench = mirage.load_benchmark(subsets=["medqa", "bioasq"], limit=2)
    # Retrieval saw each question alone, never its options.
    assert queries == [q.question for s in ("medqa", "bioasq") for q in bench[s]]
    run = only(out / "predictions", "local-*")
    for subset in ("medqa", "bioasq"):
        rag, cot = lines(run / "rag_3_hybrid" / f"{subset}.jsonl"), lines(run / "cot" / f"{subset}.jsonl")
        assert [r["id"] for r in rag] == [r["id"] for r in cot] == [q.qid for q in bench[subset]]
        assert all(1 <= len(r["extra"]["doc_ids"]) <= 3 for r in rag) and all("doc_ids" not in r["extra"] for r in cot)
        assert all(isinstance(r["raw"], str) and r["choice"] in "ABCD" for r in rag + cot)
        assert (run / "cot" / "mirage_format" / subset).is_dir()
        res = report["results"]["cot"]["subsets"][subset]
        assert res["done"] == 2 and res["accuracy_pct"] == 100 * sum(r["choice"] == r["answer"] for r in cot) / 2
    assert report["published"]["GPT-4-32k-0613 MedRAG"]["Average (all five)"] == 79.97
    assert (out / "report.md").read_text().count("GPT-3.5-16k-0613 MedRAG") == 1 and (out / "mirage.png").stat().st_size

    # Resume: the same command answers nothing again; a larger limit answers only the new questions.
    before = {p: p.read_text() for p in run.rglob("*.jsonl")}
    assert mirage_cli() == 0
    assert {p: p.read_text() for p in run.rglob("*.jsonl")} == before
    assert mirage_cli(limit="3", retrieval="--no-retrieval") == 0
    assert len(lines(run / "cot" / "medqa.jsonl")) == 3 and lines(run / "cot" / "medqa.jsonl")[:2] == \
        [json.loads(x) for x in before[run / "cot" / "medqa.jsonl"].splitlines()]
    assert len(lines(run / "rag_3_hybrid" / "medqa.jsonl")) == 2
    # Another generator setting may not be mixed into the same run folder.
    assert mirage_cli(max_tokens="32") == 2 and "another configuration" in capsys.readouterr().err


@pytest.mark.slow
def test_pubmedqa_oracle_and_none_with_the_local_model(tmp_path, smollm2_gguf, capsys):
    out = tmp_path / "pq"
    for context in ("oracle", "none"):
        assert run_cli("--preset", "test", "--data-dir", str(tmp_path), "eval", "pubmedqa", "--context", context,
                       "--limit", "2", "--max-tokens", "24", "--no-progress", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "pubmedqa: oracle 2/2 done" in printed and "pubmedqa: none 2/2 done" in printed
    report = json.loads((out / "report.json").read_text())
    # The second command's report also scores the setting the first one ran in the same folder.
    assert set(report["results"]) == {"none", "oracle"} and report["setup"]["index"] == "not used in this run"
    items = pubmedqa.load_test_set(limit=2)
    folder = only(out / "predictions", "local-*") / "medrag"
    for context in ("oracle", "none"):
        recs = lines(folder / f"{context}.jsonl")
        assert [r["pmid"] for r in recs] == [it.pmid for it in items]
        assert all(r["pred"] in (*pubmedqa.LABELS, None) and r["label"] == it.label for r, it in zip(recs, items))
    recs = lines(folder / "none.jsonl")
    assert report["results"]["none"]["accuracy"] == sum(r["pred"] == r["label"] for r in recs) / 2


@pytest.mark.slow
def test_grounding_with_the_extractive_generator(small_index, tmp_path):
    out = tmp_path / "g"
    assert run_cli("--data-dir", str(small_index.paths.data_dir), "eval", "grounding", "--generator", "extractive",
                   "--limit", "3", "--no-progress", "--out", str(out), "--json") == 0
    report = json.loads((out / "report.json").read_text())
    recs = lines(only(out / "predictions", "extractive") / "answers.jsonl")
    assert len(recs) == 6 and sum(r["answerable"] for r in recs) == 3
    # The first answerable questions are about CancerGov documents the small index holds.
    assert all(r["gold_indexed"] for r in recs if r["answerable"])
    assert all(r["abstained"] for r in recs if not r["answerable"])  # fictional drugs: nothing to quote
    answered = [r for r in recs if not r["abstained"]]
    assert answered, "the extractive generator answered none of the indexed questions"
    # Extractive answers cite after every sentence; every citation row points at a cited sentence.
    res = report["results"]
    assert res["delivered"]["citation_recall"] == 1.0
    for r in answered:
        for c in r["citations"]:
            assert c["n"] in r["sentences"][c["sentence"]]["citations"]
            assert c["doc_id"] == r["sources"][c["n"] - 1]["doc_id"]
    cites = [c for r in answered for c in r["citations"]]
    assert res["delivered"]["citation_precision"] == pytest.approx(sum(c["supported"] for c in cites) / len(cites))
    assert report["label_agreement"]["n"] == len(G.load_labels())
    assert (out / "report.md").read_text().count("citation precision") >= 1


@contextmanager
def llama_server(gguf: Path, n_ctx: int = 2048):
    """A real OpenAI-compatible llama.cpp server (xllamacpp) in its own process: yields (base_url, api_key).
    The server process exits when its stdin closes."""
    key = secrets.token_hex(8)
    code = ("import sys, xllamacpp as x\n"
            "p = x.CommonParams(); p.model.path = sys.argv[1]; p.n_ctx = int(sys.argv[3]); p.n_parallel = 1\n"
            "p.cpuparams.n_threads = p.cpuparams_batch.n_threads = 2; p.verbosity = -1; p.warmup = False\n"
            "p.ui = False; p.api_keys = [sys.argv[2]]; p.model_alias = {'smollm2'}\n"
            "s = x.Server(p); print(s.listening_address, flush=True); sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(gguf), key, str(n_ctx)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), f"llama.cpp server did not start (exit {proc.poll()})"
        yield f"{url}/v1", key
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_every_command_runs_against_a_real_openai_compatible_server(small_index, smollm2_gguf, tmp_path):
    data = str(small_index.paths.data_dir)
    with llama_server(smollm2_gguf, n_ctx=4096) as (base_url, key):
        endpoint = ["--generator", "openai", "--base-url", base_url, "--model", "smollm2", "--api-key", key,
                    "--max-tokens", "24", "--n-ctx", "4096", "--no-progress"]
        assert run_cli("--data-dir", data, "eval", "mirage", "--subset", "bioasq", "--limit", "1", "--k", "2",
                       *endpoint, "--out", str(tmp_path / "m")) == 0
        assert run_cli("--data-dir", data, "eval", "pubmedqa", "--context", "retrieved", "--limit", "1", "--k", "2",
                       *endpoint, "--out", str(tmp_path / "p")) == 0
        assert run_cli("--data-dir", data, "eval", "grounding", "--limit", "1", *endpoint,
                       "--out", str(tmp_path / "g")) == 0
        wrong_key = [x if x != key else "wrong" for x in endpoint]
        assert run_cli("--data-dir", data, "eval", "pubmedqa", "--context", "none", "--limit", "1", *wrong_key,
                       "--out", str(tmp_path / "p2")) == 2
    run = only(tmp_path / "m" / "predictions", "openai-smollm2-127.0.0.1-*") / "rag_2_hybrid"
    rec = lines(run / "bioasq.jsonl")[0]
    assert rec["extra"]["generator"].startswith("openai:smollm2@") and rec["raw"].strip() and rec["extra"]["doc_ids"]
    rec = lines(only(tmp_path / "p" / "predictions", "openai-smollm2-*") / "medrag" / "retrieved_k2_hybrid.jsonl")[0]
    assert rec["raw"].strip() and rec["extra"]["own_doc_retrieved"] is False  # the small index holds no PubMedQA
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    assert report["setup"]["index holds PubMedQA abstracts"] is False
    g = json.loads((tmp_path / "g" / "report.json").read_text())
    assert g["results"]["done"] == 2 and g["setup"]["generator"].startswith("openai:smollm2@")
