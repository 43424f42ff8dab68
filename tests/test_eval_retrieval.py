"""`carecite eval retrieval` on a small BEIR folder cut from the real clinical-dev set."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.metrics import load_beir, read_trec_run
from eval.retrieval import run_retrieval_eval


@pytest.fixture(scope="module")
def mini_beir(tmp_path_factory, data_mirror) -> Path:
    src = data_mirror / "retrieval-dev" / "clinical-dev"
    corpus, queries, qrels = load_beir(src)
    qids = [q for q in sorted(queries) if q.startswith("mq:")][:30] + [q for q in sorted(queries) if q.startswith("pq")][:10]
    gold = {d for q in qids for d in qrels[q]}
    keep = sorted(gold) + [d for d in sorted(corpus) if d not in gold][:150]
    out = tmp_path_factory.mktemp("mini-beir")
    with open(out / "corpus.jsonl", "w") as f:
        for d in keep:
            f.write(json.dumps({"_id": d, **{k: v for k, v in corpus[d].items() if k != "_id"}}) + "\n")
    with open(out / "queries.jsonl", "w") as f:
        for q in qids:
            f.write(json.dumps({"_id": q, "text": queries[q]}) + "\n")
    with open(out / "qrels.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q in qids:
            for d, g in qrels[q].items():
                f.write(f"{q}\t{d}\t{g}\n")
    return out


def test_all_modes_reports_and_run_files(mini_beir, tmp_settings, tmp_path):
    res = run_retrieval_eval(mini_beir, tmp_settings, modes=["all"], run_out=tmp_path / "run",
                             report_dir=tmp_path / "reports")
    assert set(res["modes"]) == {"bm25", "dense", "sparse", "hybrid"} and res["n_queries"] == 40
    for mode, m in res["modes"].items():
        assert 0.5 < m["recall@10"] <= 1.0 and 0 < m["ndcg@10"] <= m["recall@10"] + 1e-9, (mode, m)
    assert res["modes"]["hybrid"]["recall@100"] >= max(res["modes"]["dense"]["recall@100"],
                                                       res["modes"]["sparse"]["recall@100"]) - 0.05
    run = read_trec_run(tmp_path / "run.hybrid")
    assert len(run) == 40 and all(len(v) <= 100 for v in run.values())
    line = (tmp_path / "run.hybrid").read_text().splitlines()[0].split()
    assert len(line) == 6 and line[1] == "Q0" and line[3] == "1" and line[5] == "carecite-hybrid"
    for f in ("retrieval.json", "retrieval.md", "retrieval_per_query.tsv", "retrieval.png"):
        assert (tmp_path / "reports" / f).stat().st_size > 0
    # The embedding cache makes a second evaluation skip the model for the corpus.
    cache = list((tmp_settings.paths.data_dir / "cache").glob("emb-*.npz"))
    assert cache and cache[0].stat().st_size > 0


def test_unknown_mode_is_rejected(mini_beir, tmp_settings):
    with pytest.raises(ValueError, match="unknown mode"):
        run_retrieval_eval(mini_beir, tmp_settings, modes=["bm42"])
