"""The benchmark's latency part on a tiny index: every retriever is measured and the report says how loaded the box was."""
from __future__ import annotations

import json

import pytest

from carecite.settings import Settings
from eval import bench


def test_bench_latency_measures_every_retriever(tmp_path, embedder, data_mirror):
    corpus = data_mirror / "retrieval-dev" / "clinical-dev" / "corpus.jsonl"
    with open(corpus) as f:
        texts = [f"{d.get('title', '')}\n{d['text']}" for d in (json.loads(next(f)) for _ in range(40))]
    vecs = embedder.embed(texts)
    rows = bench.bench_latency(Settings(), [120], 6, texts, vecs, tmp_path)
    (row,) = rows
    assert row["chunks"] == 120
    assert 0 < row["indexed_vectors"] <= 2 * 120
    assert row["load_avg_1m"] >= 0
    for key in ("qdrant_hybrid", "qdrant_dense", "qdrant_sparse", "numpy_dense_scan", "rank_bm25"):
        assert 0 < row[key]["p50_ms"] <= row[key]["p95_ms"], key
    assert row["numpy_scan_over_hybrid_p50"] == round(row["numpy_dense_scan"]["p50_ms"] / row["qdrant_hybrid"]["p50_ms"], 2)


# ---------------------------------------------------------------- carecite bench answer

from assistant.generators import ExtractiveGenerator  # noqa: E402
from carecite.cli import main  # noqa: E402


def test_answer_benchmark_times_every_question_and_concurrent_users(small_index, tmp_path):
    """The fast preset (extractive generator) on the small real index: figures are consistent and loaded-box aware."""
    rep = bench.run_answer_benchmark(small_index, n_questions=3, threads=[1, 2], concurrent=2, say=lambda m: None)
    assert list(rep["configs"]) == ["threads=1 draft=none", "threads=2 draft=none"]
    # n_threads means nothing to the extractive generator: the second configuration streams the same text
    assert rep["configs"]["threads=2 draft=none"]["same_text_as_first"] == 3
    name, summ = next(iter(rep["configs"].items()))
    rows = rep["per_question"][name]
    assert [r["id"] for r in rows] == [q["id"] for q in bench.load_answer_questions(3)]
    for r in rows:
        assert 0 < r["first_text_s"] <= r["total_s"] and r["first_text_from"] in ("quick", "token")
        assert r["load_1m"] >= 0
        # no LLM: what the user ends with is the verified quotes, or an abstention
        assert r["final"] == ("abstained" if r["abstained"] else "quotes-only")
        assert r["claims_verified"] <= r["claims"]
    assert summ["model_answers_used"] == 0
    if any(r["claims"] for r in rows):
        assert summ["shown_claims_verified_pct"] == pytest.approx(
            100 * sum(r["claims_verified"] for r in rows) / sum(r["claims"] for r in rows), abs=0.05)
    assert summ["cold_total_s"] == rows[0]["total_s"]
    assert min(r["total_s"] for r in rows[1:]) <= summ["warm_total_p50_s"] <= summ["warm_total_p95_s"] \
        <= max(r["total_s"] for r in rows[1:])
    assert summ["prompt_tokens_p50"] is None  # the extractive generator has no LLM token counts
    assert summ["load_before"] >= 0 and summ["load_after"] >= 0
    c = rep["concurrent"]
    assert c["users"] == 2 and not c["errors"] and c["first_text_p50_s"] <= c["first_text_p95_s"]
    assert c["total_p50_s"] <= c["total_p95_s"]
    files = bench.write_answer_report(rep, tmp_path / "rep")
    md = open(files["markdown"]).read()
    assert "load before → after" in md and name in md and "2 users at once" in md
    assert json.loads(open(files["json"]).read())["configs"][name]["cold_total_s"] == summ["cold_total_s"]
    assert open(files["chart"], "rb").read(4) == b"\x89PNG"


class CountingExtractive(ExtractiveGenerator):
    """The extractive generator reporting llama.cpp-style token counts, as LocalGenerator.last_stats does."""

    def last_stats(self):
        return {"prompt_tokens": 900, "cached_tokens": 120, "prompt_eval_tokens": 780, "prompt_tok_s": 60.0,
                "generated_tokens": 40, "gen_tok_s": 8.0}


def test_answer_benchmark_reports_the_generators_token_counts(small_index, embedder):
    from assistant.pipeline import Assistant
    from carecite.runtime import open_searcher
    searcher = open_searcher(small_index)
    try:
        a = Assistant(small_index, searcher=searcher, generator=CountingExtractive(embedder))
        row = bench.time_answer(a, "How is type 2 diabetes diagnosed?")
    finally:
        searcher.index.close()
    assert row["prompt_tokens"] == 900 and row["cached_tokens"] == 120 and row["gen_tok_s"] == 8.0
    summ = bench._summary([row, dict(row, total_s=row["total_s"] + 1)])
    assert summ["prompt_tokens_p50"] == 900 and summ["warm_gen_tok_s_p50"] == 8.0


def test_bench_answer_command(small_index, tmp_path, capsys):
    args = ["--preset", "fast", "--data-dir", str(small_index.paths.data_dir), "bench", "answer", "--questions", "2",
            "--report-dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Answer latency (2 questions" in out and (tmp_path / "answer_bench.json").exists()
    assert main(args[:-4] + ["--questions", "99"]) == 2
    assert "--questions must be between 1 and 20" in capsys.readouterr().err
