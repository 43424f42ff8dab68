"""`carecite bench`: ingestion throughput against the raw embedder, index size, re-ingest time, and hybrid
query latency at several sizes against rank-bm25 and a numpy brute-force dense scan, all in one process.

Latency sizes above what the cached embeddings cover are filled with real passages' BM25 vectors and
their real dense vectors plus small noise (embedding 100k chunks takes most of an hour on 2 cores).
Query embedding is excluded from the latencies (vectors are computed first).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from carecite.models import get_embedder
from carecite.settings import Settings
from eval.metrics import BaselineTokenizer, load_queries
from indexes.bm25 import BM25Encoder, sparse_text
from indexes.edge import EdgeIndex
from indexes.types import Chunk, chunk_id
from ingest.pipeline import Ingestor, SourceSpec


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def bench_ingest(settings: Settings, n_docs: int, workdir: Path) -> dict:
    """Full pipeline (read, chunk, embed, BM25, upsert, optimize) vs the raw embedder on the same chunks."""
    src = workdir / "bench-corpus.jsonl"
    corpus = settings.paths.data_mirror / "retrieval-dev" / "clinical-dev" / "corpus.jsonl"
    with open(corpus) as f, open(src, "w") as out:
        for line, _ in zip(f, range(n_docs)):
            out.write(line)
    embedder = get_embedder(settings)
    with EdgeIndex(workdir / "ingest-index", dim=embedder.dim, create=True) as index:
        ing = Ingestor.from_settings(index, embedder, settings, show_progress=True)
        t0 = time.perf_counter()
        rep = ing.run([SourceSpec("bench", path=src)])
        full = time.perf_counter() - t0
        texts = [c.text for c, _ in index.scroll(fields=["text"])]
        t0 = time.perf_counter()
        again = ing.run([SourceSpec("bench", path=src)])
        reingest = time.perf_counter() - t0
        size = index.size_bytes()
    t0 = time.perf_counter()
    embedder.embed(texts)
    raw = time.perf_counter() - t0
    return {"docs": n_docs, "chunks": rep.chunks_written, "pipeline_chunks_per_s": round(rep.chunks_written / full, 1),
            "raw_embedder_chunks_per_s": round(len(texts) / raw, 1),
            "pipeline_vs_raw": round((rep.chunks_written / full) / (len(texts) / raw), 3),
            "reingest_unchanged_s": round(reingest, 3), "reingest_chunks_written": again.chunks_written,
            "index_bytes": size, "index_bytes_per_chunk": int(size / max(rep.chunks_written, 1))}


def _base_points(settings: Settings, limit: int) -> tuple[list[str], np.ndarray]:
    """Real passage texts with real embeddings (from the eval cache where present, else embedded now)."""
    corpus = settings.paths.data_mirror / "retrieval-dev" / "clinical-dev" / "corpus.jsonl"
    texts = []
    with open(corpus) as f:
        for line, _ in zip(f, range(limit)):
            d = json.loads(line)
            texts.append(f"{d.get('title', '')}\n{d['text']}")
    embedder = get_embedder(settings)
    print(f"embedding {len(texts)} base passages for the latency index ...")
    return texts, embedder.embed(texts, show_progress=True)


def bench_latency(settings: Settings, sizes: list[int], n_queries: int, base_texts, base_vecs, workdir: Path) -> list[dict]:
    from rank_bm25 import BM25Okapi
    rng = np.random.default_rng(0)
    qfile = settings.paths.data_mirror / "retrieval-dev" / "clinical-dev" / "queries.jsonl"
    queries = [q["text"] if isinstance(q, dict) else q for q in list(load_queries(qfile).values())[:n_queries]]
    embedder = get_embedder(settings)
    qvecs = embedder.embed(queries)
    tok = BaselineTokenizer()
    rows = []
    for size in sizes:
        idx = np.arange(size) % len(base_texts)
        vecs = base_vecs[idx] + rng.normal(0, 0.01, (size, base_vecs.shape[1])).astype(np.float32) * (idx != np.arange(size))[:, None]
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        texts = [base_texts[i] for i in idx]
        bm25 = BM25Encoder(avg_len=float(np.mean([BM25Encoder().doc_length(t) for t in base_texts])))
        path = workdir / f"lat-{size}"
        with EdgeIndex(path, dim=vecs.shape[1], create=True) as ix:
            for s in tqdm(range(0, size, 2000), desc=f"loading {size}", unit="batch"):
                chunks = [Chunk(chunk_id("bench", i), f"b{i}", texts[i], {"doc_type": "reference", "source": "bench"})
                          for i in range(s, min(size, s + 2000))]
                ix.upsert(chunks, vecs[s:s + len(chunks)], [bm25.encode_document(sparse_text(c)) for c in chunks])
            ix.set_meta({"bm25_avg_len": bm25.avg_len})
            ix.optimize()
            indexed = ix.shard.info().indexed_vectors_count  # dense + sparse; 2*size once HNSW is built
            qs = [bm25.encode_query(q) for q in queries]
            for qv, qsp in zip(qvecs[:5], qs[:5]):  # warm-up
                ix.search(qv, qsp, mode="hybrid", top_k=10)
            lat = {"hybrid": [], "dense": [], "sparse": []}
            for mode in lat:
                for qv, qsp in zip(qvecs, qs):
                    t0 = time.perf_counter()
                    ix.search(qv, qsp, mode=mode, top_k=10)
                    lat[mode].append(time.perf_counter() - t0)
        np_lat = []
        for qv in qvecs:
            t0 = time.perf_counter()
            sc = vecs @ qv
            top = np.argpartition(-sc, 10)[:10]
            top[np.argsort(-sc[top])]
            np_lat.append(time.perf_counter() - t0)
        bm = BM25Okapi([tok(t) for t in texts])
        bm_lat = []
        for q in queries[: max(5, n_queries // 10)]:  # rank-bm25 scores every document in Python
            t0 = time.perf_counter()
            s = bm.get_scores(tok(q))
            np.argpartition(-s, 10)[:10]
            bm_lat.append(time.perf_counter() - t0)
        hy = _pct(lat["hybrid"])
        row = {"chunks": size, "indexed_vectors": indexed, "load_avg_1m": round(os.getloadavg()[0], 2),
               "qdrant_hybrid": hy, "qdrant_dense": _pct(lat["dense"]),
               "qdrant_sparse": _pct(lat["sparse"]), "numpy_dense_scan": _pct(np_lat), "rank_bm25": _pct(bm_lat),
               "rank_bm25_queries": len(bm_lat)}
        row["numpy_scan_over_hybrid_p50"] = round(row["numpy_dense_scan"]["p50_ms"] / hy["p50_ms"], 2)
        row["rank_bm25_over_hybrid_p50"] = round(row["rank_bm25"]["p50_ms"] / hy["p50_ms"], 1)
        rows.append(row)
    return rows


def run_benchmark(settings: Settings, sizes=(10_000, 100_000), queries: int = 200, ingest_docs: int = 300) -> dict:
    with tempfile.TemporaryDirectory(prefix="carecite-bench-") as tmp:
        tmp = Path(tmp)
        ing = bench_ingest(settings, ingest_docs, tmp)
        texts, vecs = _base_points(settings, min(max(sizes), 2000))
        lat = bench_latency(settings, list(sizes), queries, texts, vecs, tmp)
    out = {"ingest": ing, "latency": lat}
    lines = ["## Ingestion", f"- {ing['chunks']} chunks from {ing['docs']} passages: pipeline {ing['pipeline_chunks_per_s']} "
             f"chunks/s vs raw embedder {ing['raw_embedder_chunks_per_s']} chunks/s (ratio {ing['pipeline_vs_raw']})",
             f"- re-ingest unchanged: {ing['reingest_unchanged_s']} s, {ing['reingest_chunks_written']} chunks written",
             f"- index on disk: {ing['index_bytes'] / 1e6:.1f} MB ({ing['index_bytes_per_chunk']} B/chunk)", "",
             "## Query latency (ms, query embedding excluded)",
             "| chunks | hybrid p50 | hybrid p95 | dense p50 | sparse p50 | numpy scan p50 | rank-bm25 p50 | scan/hybrid | bm25/hybrid | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in lat:
        lines.append(f"| {r['chunks']} | {r['qdrant_hybrid']['p50_ms']} | {r['qdrant_hybrid']['p95_ms']} | "
                     f"{r['qdrant_dense']['p50_ms']} | {r['qdrant_sparse']['p50_ms']} | {r['numpy_dense_scan']['p50_ms']} | "
                     f"{r['rank_bm25']['p50_ms']} | {r['numpy_scan_over_hybrid_p50']}x | {r['rank_bm25_over_hybrid_p50']}x | {r['load_avg_1m']} |")
    lines.append("\nTimings are only comparable within one run; a load average above the core count "
                 f"({os.cpu_count()}) means other processes shared the CPUs.")
    out["table"] = "\n".join(lines)
    return out
