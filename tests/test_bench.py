"""The benchmark's latency part on a tiny index: every retriever is measured and the report says how loaded the box was."""
from __future__ import annotations

import json

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
