"""`carecite bench`: ingestion throughput against the raw embedder for each embedder backend side by side (torch
and onnx-int8: pipeline, raw sorted and reading-order batches, tokenizing time, padding), index size, re-ingest
time, and hybrid query latency at several sizes against rank-bm25 and a numpy brute-force dense scan, all in one process.

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


def bench_ingest(settings: Settings, n_docs: int, workdir: Path, backend: str | None = None,
                 sort_window: int | None = None, say=print) -> dict:
    """Full pipeline (read, chunk, embed, BM25, upsert, optimize) vs the raw embedder on the same chunks, with one
    embedder backend on a fresh index; where the time goes (tokenizing, the model, BM25 + index writes)."""
    src = workdir / "bench-corpus.jsonl"
    if not src.exists():
        corpus = settings.paths.data_mirror / "retrieval-dev" / "clinical-dev" / "corpus.jsonl"
        with open(corpus) as f, open(src, "w") as out:
            for line, _ in zip(f, range(n_docs)):
                out.write(line)
    embedder = get_embedder(settings, backend)
    name = f"{embedder.backend}" + ("" if sort_window is None else f" sort_window={sort_window}")
    load_before = _load()
    say(f"ingest bench: {name}, {n_docs} passages; load average {load_before}")
    with EdgeIndex(workdir / f"ingest-index-{embedder.backend}-{sort_window}", dim=embedder.dim, create=True) as index:
        extra = {} if sort_window is None else {"sort_window": sort_window}
        ing = Ingestor.from_settings(index, embedder, settings, show_progress=True, **extra)
        t0 = time.perf_counter()
        rep = ing.run([SourceSpec("bench", path=src)])
        full = time.perf_counter() - t0
        texts = [c.text for c, _ in index.scroll(fields=["text"])]
        t0 = time.perf_counter()
        again = ing.run([SourceSpec("bench", path=src)])
        reingest = time.perf_counter() - t0
        size = index.size_bytes()
    t0 = time.perf_counter()
    embedder.embed(texts)  # one call: sorted by length, then batched
    raw = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, len(texts), embedder.batch_size):  # batches in reading order: padded to each batch's longest
        embedder.embed(texts[i:i + embedder.batch_size])
    raw_unsorted = time.perf_counter() - t0
    tok = _tokenize_seconds(embedder, texts)
    pad = padding_share(embedder, texts)
    return {"backend": embedder.backend, "sort_window": ing.sort_window, "docs": n_docs,
            "chunks": rep.chunks_written, "pipeline_chunks_per_s": round(rep.chunks_written / full, 1),
            "embed_index_chunks_per_s": round(rep.chunks_per_s, 1),
            "raw_embedder_chunks_per_s": round(len(texts) / raw, 1),
            "raw_reading_order_chunks_per_s": round(len(texts) / raw_unsorted, 1),
            "pipeline_vs_raw": round((rep.chunks_written / full) / (len(texts) / raw), 3),
            "seconds": {"total": round(full, 2), "read_chunk": round(full - rep.embed_seconds, 2),
                        "embed_bm25_write": round(rep.embed_seconds, 2), "raw_embed": round(raw, 2),
                        "tokenize": tok}, "padding_share": pad,
            "reingest_unchanged_s": round(reingest, 3), "reingest_chunks_written": again.chunks_written,
            "index_bytes": size, "index_bytes_per_chunk": int(size / max(rep.chunks_written, 1)),
            "load_before": load_before, "load_after": _load()}


def _tokenize_seconds(embedder, texts: list[str]) -> float | None:
    """Seconds the embedder's tokenizer alone takes for these texts (model input: truncated to its window)."""
    enc = getattr(embedder, "_encoder", None)
    t0 = time.perf_counter()
    if enc is not None:
        enc.encode_batch(texts)
    elif getattr(embedder, "tokenizer", None) is not None:
        embedder.tokenizer(texts, truncation=True, max_length=embedder.max_seq_length)
    else:
        return None
    return round(time.perf_counter() - t0, 3)


def padding_share(embedder, texts: list[str]) -> dict:
    """Share of the model's token positions that are padding: batches in the order given vs sorted by length."""
    n = [min(embedder.count_tokens(t) + 2, embedder.max_seq_length) for t in texts]
    size = embedder.batch_size

    def share(lengths: list[int]) -> float:
        slots = sum(max(lengths[i:i + size]) * len(lengths[i:i + size]) for i in range(0, len(lengths), size))
        return round(1 - sum(lengths) / slots, 3) if slots else 0.0
    return {"batch": size, "reading_order": share(n), "sorted": share(sorted(n, reverse=True))}


def bench_embedders(settings: Settings, n_docs: int, workdir: Path, backends: list[str], say=print) -> dict:
    """The ingest bench for each backend, in one process on the same passages."""
    rows = {b: bench_ingest(settings, n_docs, workdir, b, say=say) for b in backends}
    first = next(iter(rows.values()))
    for r in rows.values():
        r["pipeline_speedup"] = round(r["pipeline_chunks_per_s"] / first["pipeline_chunks_per_s"], 2)
    return rows


def ingest_table(rows: dict) -> list[str]:
    lines = ["| embedder | chunks | pipeline chunks/s | embed+index chunks/s | raw embedder chunks/s (sorted) | "
             "raw, reading order | pipeline/raw | vs first | tokenize s | padding share (order → sorted) | "
             "re-ingest s | load before → after |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        p = r["padding_share"]
        lines.append(f"| {name} | {r['chunks']} | {r['pipeline_chunks_per_s']} | {r['embed_index_chunks_per_s']} | "
                     f"{r['raw_embedder_chunks_per_s']} | {r['raw_reading_order_chunks_per_s']} | {r['pipeline_vs_raw']} | {r['pipeline_speedup']}x | "
                     f"{r['seconds']['tokenize']} | {p['reading_order']} → {p['sorted']} | "
                     f"{r['reingest_unchanged_s']} | {r['load_before']} → {r['load_after']} |")
    return lines


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


def run_benchmark(settings: Settings, sizes=(10_000, 100_000), queries: int = 200, ingest_docs: int = 300,
                  backends: list[str] | None = None, ingest_only: bool = False) -> dict:
    backends = backends or ["torch", "onnx-int8"]
    with tempfile.TemporaryDirectory(prefix="carecite-bench-") as tmp:
        tmp = Path(tmp)
        ing = bench_embedders(settings, ingest_docs, tmp, backends)
        lat = []
        if not ingest_only:
            texts, vecs = _base_points(settings, min(max(sizes), 2000))
            lat = bench_latency(settings, list(sizes), queries, texts, vecs, tmp)
    out = {"ingest": ing, "latency": lat, "cpus": os.cpu_count()}
    first = next(iter(ing.values()))
    lines = [f"## Ingestion ({first['chunks']} chunks from {first['docs']} clinical-dev passages, {os.cpu_count()} CPUs)",
             "", *ingest_table(ing), "",
             f"- index on disk: {first['index_bytes'] / 1e6:.1f} MB ({first['index_bytes_per_chunk']} B/chunk)"]
    if lat:
        lines += ["", "## Query latency (ms, query embedding excluded)",
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


# ---------------------------------------------------------------- `carecite bench answer`

ANSWER_QUESTIONS = Path(__file__).parent / "data" / "answer_bench_questions.jsonl"
ANSWER_STATS = ("prompt_tokens", "cached_tokens", "prompt_eval_tokens", "prompt_tok_s", "generated_tokens", "gen_tok_s",
                "draft_tokens", "draft_accepted")


def load_answer_questions(n: int | None = None, path: Path = ANSWER_QUESTIONS) -> list[dict]:
    """The fixed benchmark questions: real consumer questions from liveqa-train (original wording, a few
    trimmed) whose focus the default corpus covers, then five clean ones."""
    with open(path, encoding="utf-8") as f:
        qs = [json.loads(line) for line in f if line.strip()]
    if n is not None and not 1 <= n <= len(qs):
        raise ValueError(f"--questions must be between 1 and {len(qs)} (the questions in {path})")
    return qs[:n]


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def time_answer(assistant, question: str) -> dict:
    """One question through Assistant.stream: seconds to the first cited text shown (the "quick" event, else
    the first LLM token), to the first LLM token and to the verified answer, with the LLM's token counts."""
    from assistant.generators import ExtractiveGenerator
    load = _load()
    last_stats = getattr(assistant.generator, "last_stats", lambda: None)
    before = last_stats()  # a new dict per LLM request: the same one after means no request was made
    t0 = time.perf_counter()
    first_quick = first_token = queued = None
    answer, streamed = None, []
    for ev in assistant.stream(question):
        now = time.perf_counter() - t0
        if ev["type"] == "quick" and first_quick is None:
            first_quick = now
        elif ev["type"] == "queued" and queued is None:
            queued = ev.get("position")
        elif ev["type"] == "token":
            first_token = now if first_token is None else first_token
            streamed.append(ev["text"])
        elif ev["type"] == "answer":
            answer = ev["answer"]
    total = time.perf_counter() - t0
    first_text = first_quick if first_quick is not None else first_token
    stats = last_stats()
    stats = {} if stats is None or stats is before else stats
    return {"first_text_s": _r(first_text), "first_text_from": "quick" if first_quick is not None else "token",
            "first_token_s": _r(first_token), "total_s": _r(total), "queued_position": queued,
            "abstained": bool(answer.abstained), "abstain_reason": answer.abstain_reason or "",
            "final": _final_from(answer, not isinstance(assistant.generator, ExtractiveGenerator)),
            "claims": sum(v.claim for v in answer.sentences),
            "claims_verified": sum(v.claim and v.supported for v in answer.sentences),
            "streamed_text": "".join(streamed), **{k: stats.get(k) for k in ANSWER_STATS}, "load_1m": load}


def _final_from(answer, llm: bool) -> str:
    """What the user ends with: "model" (its verified synthesis), "quotes" (the quick answer kept because the
    model's answer was not used or failed), "quotes-only" (no LLM) or "abstained"."""
    if answer.abstained:
        return "abstained"
    if answer.note.startswith("The model's answer"):
        return "quotes"
    return "model" if llm else "quotes-only"


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _p(xs: list, q: float) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(float(np.percentile(xs, q)), 3) if xs else None


def _summary(rows: list[dict]) -> dict:
    """Cold (the first question, with the model load) and warm (the rest) figures of one configuration."""
    cold, warm = rows[0], rows[1:] or rows[:1]
    out = {"cold_first_text_s": cold["first_text_s"], "cold_first_token_s": cold["first_token_s"],
           "cold_total_s": cold["total_s"]}
    for key in ("first_text_s", "first_token_s", "total_s"):
        out[f"warm_{key[:-2]}_p50_s"] = _p([r[key] for r in warm], 50)
        out[f"warm_{key[:-2]}_p95_s"] = _p([r[key] for r in warm], 95)
    for key in ("prompt_tokens", "cached_tokens", "prompt_eval_tokens", "generated_tokens"):
        out[f"{key}_p50"] = _p([r[key] for r in rows], 50)
    for key in ("prompt_tok_s", "gen_tok_s"):
        out[f"warm_{key}_p50"] = _p([r[key] for r in warm], 50)
    drafted = [r for r in rows if r.get("draft_tokens")]
    if drafted:
        out["draft_acceptance"] = round(sum(r["draft_accepted"] for r in drafted) / sum(r["draft_tokens"] for r in drafted), 3)
    out["abstained"] = sum(r["abstained"] for r in rows)
    out["model_answers_used"] = sum(r.get("final") == "model" for r in rows)
    claims = sum(r.get("claims", 0) for r in rows)
    out["shown_claims_verified_pct"] = round(100 * sum(r.get("claims_verified", 0) for r in rows) / claims, 1) \
        if claims else None
    return out


def _configs(settings: Settings, threads: list[int] | None, drafts: list[str] | None) -> list[tuple[str, Settings]]:
    out = []
    for t in threads or [settings.generator.n_threads]:
        for d in drafts or [settings.generator.draft_model or "none"]:
            s = settings.model_copy(deep=True)
            s.generator.n_threads = t
            s.generator.draft_model = None if d in ("none", "") else d
            out.append((f"threads={t} draft={d}", s))
    return out


def run_concurrent(assistant, questions: list[dict], users: int) -> dict:
    """`users` threads ask at the same moment through one Assistant (user i asks question i)."""
    import threading
    barrier = threading.Barrier(users)
    rows: list[dict | None] = [None] * users

    def user(i: int) -> None:
        barrier.wait()
        try:
            rows[i] = time_answer(assistant, questions[i % len(questions)]["question"])
        except Exception as e:  # noqa: BLE001 - reported per user
            rows[i] = {"error": f"{type(e).__name__}: {e}"}

    load_before = _load()
    threads = [threading.Thread(target=user, args=(i,), name=f"bench-user-{i}") for i in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [r for r in rows if r and "error" not in r]
    return {"users": users, "errors": [r["error"] for r in rows if r and "error" in r],
            "first_text_p50_s": _p([r["first_text_s"] for r in ok], 50),
            "first_text_p95_s": _p([r["first_text_s"] for r in ok], 95),
            "total_p50_s": _p([r["total_s"] for r in ok], 50), "total_p95_s": _p([r["total_s"] for r in ok], 95),
            "first_text_from": sorted({r["first_text_from"] for r in ok}),
            "queued_positions": [r.get("queued_position") for r in ok],
            "load_before": load_before, "load_after": _load(), "per_user": rows}


def run_answer_benchmark(settings: Settings, n_questions: int | None = None, threads: list[int] | None = None,
                         drafts: list[str] | None = None, concurrent: int = 0, say=print) -> dict:
    """Every configuration (n_threads x draft model) answers the same questions, one at a time, in one process
    on one index; then `concurrent` users ask at once with the first configuration. Load average with every row."""
    from assistant.pipeline import Assistant
    from carecite.runtime import open_searcher

    questions = load_answer_questions(n_questions)
    settings = settings.model_copy(deep=True)
    settings.audit.enabled = False  # benchmark questions are not clinical use
    report: dict = {"questions": len(questions), "cpus": os.cpu_count(), "index": str(settings.index_path),
                    "configs": {}, "per_question": {}}
    searcher = open_searcher(settings)
    try:
        report["index_chunks"] = searcher.index.count()
        first_assistant = None
        for name, s in _configs(settings, threads, drafts):
            assistant = Assistant(s, searcher=searcher)
            gen = assistant.generator
            say(f"{name}: generator {gen.name}" + (f", draft {gen.draft}" if getattr(gen, "draft", None) else "")
                + f"; load average {_load()}")
            load_before = _load()
            rows = []
            for i, q in enumerate(questions):
                row = {"id": q["id"], **time_answer(assistant, q["question"])}
                rows.append(row)
                say(f"  {q['id']:<9} first text {row['first_text_s']} s ({row['first_text_from']}), first token "
                    f"{row['first_token_s']} s, total {row['total_s']} s, prompt {row['prompt_tokens']} tok "
                    f"({row['cached_tokens']} cached), generated {row['generated_tokens']} tok at {row['gen_tok_s']} "
                    f"tok/s{' [cold]' if i == 0 else ''}{' [abstained]' if row['abstained'] else ''}; "
                    f"load {row['load_1m']}")
            summ = {"generator": gen.name, "draft_in_use": getattr(gen, "draft", None), **_summary(rows),
                    "load_before": load_before, "load_after": _load()}
            if report["configs"]:  # does this configuration stream the same text as the first one?
                base = report["per_question"][next(iter(report["configs"]))]
                summ["same_text_as_first"] = sum(a["streamed_text"] == b["streamed_text"] for a, b in zip(rows, base))
            report["configs"][name] = summ
            report["per_question"][name] = rows
            first_assistant = first_assistant or assistant
        if concurrent:
            say(f"{concurrent} users at once ({next(iter(report['configs']))}); load average {_load()}")
            report["concurrent"] = run_concurrent(first_assistant, questions, concurrent)
    finally:
        searcher.index.close()
    report["table"] = answer_table(report)
    return report


def answer_table(report: dict) -> str:
    """Markdown: one row per configuration (cold, warm p50/p95, tokens, rates, load), then concurrency."""
    cols = [("cold_first_text_s", "cold first text s"), ("cold_first_token_s", "cold first token s"),
            ("cold_total_s", "cold total s"), ("warm_first_text_p50_s", "first text p50"),
            ("warm_first_text_p95_s", "p95"), ("warm_first_token_p50_s", "first token p50"),
            ("warm_first_token_p95_s", "p95"), ("warm_total_p50_s", "total p50"), ("warm_total_p95_s", "p95"),
            ("prompt_tokens_p50", "prompt tok"), ("cached_tokens_p50", "cached tok"),
            ("warm_prompt_tok_s_p50", "prompt tok/s"), ("generated_tokens_p50", "gen tok"),
            ("warm_gen_tok_s_p50", "gen tok/s"), ("draft_acceptance", "draft accepted"),
            ("same_text_as_first", "same text"), ("abstained", "abstained"),
            ("model_answers_used", "model answer used"), ("shown_claims_verified_pct", "shown claims verified %")]
    lines = [f"## Answer latency ({report['questions']} questions, {report.get('index_chunks')} chunks, "
             f"{report['cpus']} CPUs; warm = questions 2..n; seconds)", "",
             "| config | " + " | ".join(c for _, c in cols) + " | load before → after |",
             "|---" * (len(cols) + 2) + "|"]
    for name, r in report["configs"].items():
        cells = ["–" if r.get(k) is None else str(r[k]) for k, _ in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['load_before']} → {r['load_after']} |")
    c = report.get("concurrent")
    if c:
        lines += ["", f"## {c['users']} users at once (one Assistant, seconds)", "",
                  "| first text p50 | p95 | full answer p50 | p95 | first text from | queued positions | errors | load before → after |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| {c['first_text_p50_s']} | {c['first_text_p95_s']} | {c['total_p50_s']} | {c['total_p95_s']} | "
                  f"{', '.join(c['first_text_from'])} | {c['queued_positions']} | {len(c['errors'])} | "
                  f"{c['load_before']} → {c['load_after']} |"]
    lines.append(f"\nFirst text is the quick (extractive, verified) answer when the pipeline sends one, else the first "
                 f"LLM token. A load average above the CPU count ({report['cpus']}) means other processes shared "
                 "the CPUs; compare figures only within one run.")
    return "\n".join(lines)


def write_answer_report(report: dict, out: Path) -> dict:
    from eval.reports import bar_chart, write_json
    out.mkdir(parents=True, exist_ok=True)
    (out / "answer_bench.md").write_text("# carecite bench answer\n\n" + report["table"] + "\n", encoding="utf-8")
    rows = {name: {"first text p50": r["warm_first_text_p50_s"], "first token p50": r["warm_first_token_p50_s"],
                   "total p50": r["warm_total_p50_s"], "cold total": r["cold_total_s"]}
            for name, r in report["configs"].items()}
    if report.get("concurrent"):
        c = report["concurrent"]
        rows[f"{c['users']} users at once"] = {"first text p50": c["first_text_p50_s"], "total p50": c["total_p50_s"]}
    files = {"markdown": str(out / "answer_bench.md"),
             "chart": str(bar_chart(rows, ["first text p50", "first token p50", "total p50", "cold total"],
                                    out / "answer_bench.png", "carecite bench answer", "seconds"))}
    report["files"] = {**files, "json": str(out / "answer_bench.json")}
    write_json(report, out / "answer_bench.json")
    return report["files"]


def add_answer_arguments(q) -> None:
    q.add_argument("--questions", type=int, help="the first N of the 20 fixed questions (default all)")
    q.add_argument("--threads", help="comma-separated llama.cpp n_threads to compare, e.g. 1,2 "
                                     "(default generator.n_threads)")
    q.add_argument("--draft", help="comma-separated draft models to compare, e.g. none,qwen2.5-coder-0.5b "
                                   "(default generator.draft_model)")
    q.add_argument("--concurrent", type=int, default=0, metavar="USERS",
                   help="then USERS questions at once through one Assistant (first configuration)")
    q.add_argument("--report-dir", help="write answer_bench.md, .json and .png here")
    q.add_argument("--json", action="store_true")
