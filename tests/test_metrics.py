"""Retrieval metrics against hand-computed values, BEIR/TREC files, the query split, the BM25 baseline, reports."""
import json
import math
from pathlib import Path

import pytest

from carecite.settings import Settings
from eval import metrics as M
from eval import reports

DEV = Settings().paths.data_mirror / "retrieval-dev" / "clinical-dev"

# One query, three judged docs (d1 grade 2, d2 and d4 grade 1), ranked d3, d1, d2 by score.
RUN = {"q1": [("d2", 1.0), ("d3", 3.0), ("d1", 2.0)]}
QRELS = {"q1": {"d1": 2, "d2": 1, "d4": 1}}


def test_ranking_sorts_by_score_and_drops_repeats():
    assert M.ranked_docids([("a", 1.0), ("b", 5.0), ("a", 9.0), ("c", 5.0)]) == ["a", "b", "c"]


def test_recall_hand_computed():
    ranking = M.ranked_docids(RUN["q1"])
    assert ranking == ["d3", "d1", "d2"]
    assert M.recall_at_k(ranking, QRELS["q1"], 1) == 0.0
    assert M.recall_at_k(ranking, QRELS["q1"], 2) == pytest.approx(1 / 3)
    assert M.recall_at_k(ranking, QRELS["q1"], 10) == pytest.approx(2 / 3)
    assert M.recall_at_k(ranking, QRELS["q1"], 2, min_rel=2) == 1.0  # only d1 counts


def test_mrr_hand_computed():
    ranking = ["d3", "d1", "d2"]
    assert M.mrr_at_k(ranking, QRELS["q1"], 10) == 0.5
    assert M.mrr_at_k(ranking, QRELS["q1"], 1) == 0.0
    assert M.mrr_at_k(["d3", "d2", "d1"], QRELS["q1"], 10, min_rel=2) == pytest.approx(1 / 3)


def test_ndcg_graded_hand_computed():
    ranking = ["d3", "d1", "d2"]
    # DCG@3 = 0/log2(2) + 2/log2(3) + 1/log2(4); ideal gains 2,1,1 -> 2/1 + 1/log2(3) + 1/log2(4)
    expected = (2 / math.log2(3) + 1 / 2) / (2 + 1 / math.log2(3) + 1 / 2)
    assert M.ndcg_at_k(ranking, QRELS["q1"], 3) == pytest.approx(expected)
    # @1: nothing relevant at rank 1; ideal is d1 alone
    assert M.ndcg_at_k(ranking, QRELS["q1"], 1) == 0.0
    assert M.ndcg_at_k(["d1", "d2", "d4"], QRELS["q1"], 3) == pytest.approx(1.0)


def test_evaluate_run_means_skips_and_missing():
    run = {"q1": RUN["q1"], "q2": [("x", 1.0)], "q_unjudged": [("d1", 1.0)]}
    qrels = {"q1": QRELS["q1"], "q2": {"x": 1}, "q3": {"y": 1}, "q0": {"z": 0}}
    res = M.evaluate_run(run, qrels, metrics=["recall@2", "mrr@10", "ndcg@1"])
    assert res.skipped == ["q0"]          # judged, but nothing relevant
    assert res.missing == ["q3"]          # judged, absent from the run: scores 0
    assert set(res.per_query) == {"q1", "q2", "q3"}
    assert res.per_query["q2"] == {"recall@2": 1.0, "mrr@10": 1.0, "ndcg@1": 1.0}
    assert res.per_query["q3"] == {"recall@2": 0.0, "mrr@10": 0.0, "ndcg@1": 0.0}
    assert res.mean["recall@2"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert res.mean["mrr@10"] == pytest.approx((0.5 + 1 + 0) / 3)
    only = M.evaluate_run(run, qrels, metrics=["mrr@10"], qids=["q1"])
    assert only.n_queries == 1 and only.mean["mrr@10"] == 0.5


def test_evaluate_run_min_rel_skips_queries_without_high_grades():
    res = M.evaluate_run(RUN, {"q1": QRELS["q1"], "q2": {"a": 1}}, metrics=["recall@3"], min_rel=2)
    assert res.skipped == ["q2"] and res.per_query["q1"]["recall@3"] == 1.0


@pytest.mark.parametrize("bad", ["ndcg", "map@10", "recall@0", "mrr@x"])
def test_unknown_metric_is_rejected(bad):
    with pytest.raises(ValueError, match="unknown metric"):
        M.evaluate_run(RUN, QRELS, metrics=[bad])


def test_group_means():
    per_query = {"a": {"m": 1.0}, "b": {"m": 0.0}, "c": {"m": 0.5}}
    assert M.group_means(per_query, {"a": "x", "b": "x", "c": "y"}) == {
        "x": {"m": 0.5, "n": 2.0}, "y": {"m": 0.5, "n": 1.0}}


def test_trec_run_round_trip(tmp_path):
    path = tmp_path / "runs" / "r.trec"
    M.write_trec_run(RUN, path, "bm25")
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["q1", "Q0", "d3", "1", "3.000000", "bm25"]
    assert [ln.split()[2] for ln in lines] == ["d3", "d1", "d2"]
    assert M.read_trec_run(path) == {"q1": [("d3", 3.0), ("d1", 2.0), ("d2", 1.0)]}
    with pytest.raises(ValueError, match="tag"):
        M.write_trec_run(RUN, path, "two words")


def test_read_trec_run_rejects_malformed_lines(tmp_path):
    path = tmp_path / "bad.trec"
    path.write_text("q1 Q0 d1 1 2.0\n")
    with pytest.raises(ValueError, match="bad.trec:1"):
        M.read_trec_run(path)


def test_split_queries_is_deterministic_disjoint_and_order_free():
    qids = [f"q{i}" for i in range(101)]
    tune, test = M.split_queries(qids, seed=7)
    assert (len(tune), len(test)) == (50, 51)
    assert set(tune).isdisjoint(test) and set(tune) | set(test) == set(qids)
    assert M.split_queries(list(reversed(qids)), seed=7) == (tune, test)
    assert M.split_queries(qids, seed=8) != (tune, test)


def test_load_beir_on_the_dev_set():
    corpus, queries, qrels = M.load_beir(DEV)
    assert (len(corpus), len(queries), len(qrels)) == (19006, 1500, 1500)
    assert set(qrels) == set(queries)
    assert all(d in corpus for rels in qrels.values() for d in rels)
    sets = {row["set"] for row in M.load_queries(DEV / "queries.jsonl").values()}
    assert sets == {"medquad", "pubmedqa"}


def test_load_beir_reports_missing_files_and_bad_qrels(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus.jsonl"):
        M.load_beir(tmp_path)
    (tmp_path / "qrels.tsv").write_text("qid\tdocid\trel\nq\td\t1\n")
    with pytest.raises(ValueError, match="expected header"):
        M.load_qrels(tmp_path / "qrels.tsv")


def test_baseline_tokenizer_keeps_negations_and_stems():
    tok = M.BaselineTokenizer()
    assert tok("The patient has NO fevers, and is not vomiting") == ["patient", "has", "no", "fever", "not", "vomit"]


def test_rank_bm25_baseline_toy_corpus():
    corpus = {
        "flu": {"title": "Influenza", "text": "Influenza causes fever, cough and muscle aches."},
        "dm": {"title": "Diabetes", "text": "Diabetes raises blood glucose; insulin lowers glucose."},
        "htn": {"title": "Hypertension", "text": "High blood pressure is treated with diet and drugs."},
    }
    run = M.rank_bm25_baseline(corpus, {"q": "what lowers blood glucose?", "none": "zebra"}, top_k=2)
    assert [d for d, _ in run["q"]] == ["dm", "htn"]   # glucose+blood beats blood alone
    assert run["q"][0][1] > run["q"][1][1] > 0
    assert run["none"] == []                           # no term matches: no zero-score filler


def test_rank_bm25_baseline_finds_pubmedqa_abstracts_on_dev():
    corpus, queries, qrels = M.load_beir(DEV)
    rows = M.load_queries(DEV / "queries.jsonl")
    sample = {q: queries[q] for q in sorted(queries) if rows[q]["set"] == "pubmedqa"}
    sample = dict(list(sample.items())[:20])
    res = M.evaluate_run(M.rank_bm25_baseline(corpus, sample, top_k=10), qrels, ["recall@10"], qids=sample)
    # Each PubMedQA question is the title-like question of its own abstract: BM25 finds nearly all of them.
    assert res.mean["recall@10"] >= 0.8


def test_reports_tables_per_query_and_chart(tmp_path):
    res = M.evaluate_run(RUN, QRELS, metrics=["ndcg@10", "mrr@10"])
    table = {"bm25": res.mean, "dense": {"ndcg@10": 0.7, "mrr@10": None}}
    md = reports.write_markdown({"Retrieval": table, "Notes": "toy run"}, tmp_path / "r.md", "Report", digits=2)
    text = md.read_text()
    assert "|  | ndcg@10 | mrr@10 |" in text and "| bm25 | 0.56 | 0.50 |" in text and "| dense | 0.70 | – |" in text and "toy run" in text
    assert json.loads(reports.write_json(table, tmp_path / "r.json").read_text())["dense"]["ndcg@10"] == 0.7
    tsv = reports.write_per_query(res.per_query, tmp_path / "pq.tsv", extra={"q1": {"set": "toy"}})
    assert tsv.read_text().splitlines() == ["qid\tset\tndcg@10\tmrr@10",
                                            f"q1\ttoy\t{res.per_query['q1']['ndcg@10']:.6g}\t0.5"]
    jl = reports.write_per_query(res.per_query, tmp_path / "pq.jsonl")
    assert json.loads(jl.read_text())["mrr@10"] == 0.5
    png = reports.bar_chart(table, ["ndcg@10", "mrr@10"], tmp_path / "c.png", "toy")
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        reports.bar_chart({}, ["m"], tmp_path / "x.png", "empty")
