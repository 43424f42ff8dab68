"""Retrieval evaluation on a BEIR folder: the corpus goes into a temporary index through the real pipeline,
then each mode is scored (recall@10/100, nDCG@10, MRR@10). bm25 is rank-bm25, independent of the index."""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from carecite.models import get_embedder
from carecite.settings import Settings
from eval.metrics import evaluate_run, load_beir, rank_bm25_baseline, split_queries, write_trec_run
from indexes.bm25 import BM25Encoder
from indexes.edge import EdgeIndex
from ingest.pipeline import Ingestor, SourceSpec

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
INDEX_MODES = ("dense", "sparse", "hybrid")
log = logging.getLogger("carecite.eval")


def check_corpus(path: Path) -> list[str]:
    """Check a BEIR corpus.jsonl before anything is embedded: rows repeated verbatim are kept once (a warning,
    returned); the same _id with another title or text is a ValueError naming the ids and lines."""
    first: dict[str, tuple[int, str]] = {}  # _id -> (line, row as canonical JSON)
    repeats: dict[str, int] = {}
    conflicts: list[str] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                pid = str(row["_id"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # the reader reports bad lines itself
            canon = json.dumps(row, sort_keys=True, ensure_ascii=False)
            if pid not in first:
                first[pid] = (n, canon)
            elif first[pid][1] == canon:
                repeats[pid] = repeats.get(pid, 0) + 1
            else:
                conflicts.append(f"{pid!r} (lines {first[pid][0]} and {n})")
    if conflicts:
        raise ValueError(f"{path}: {len(conflicts)} passage id(s) repeated with a different title or text: "
                         f"{', '.join(conflicts[:5])}{' ...' if len(conflicts) > 5 else ''}. Each _id must name one "
                         "passage (qrels point at ids); fix the corpus before evaluating. Nothing was embedded.")
    if not repeats:
        return []
    shown = ", ".join(repr(p) for p in list(repeats)[:5]) + (" ..." if len(repeats) > 5 else "")
    return [f"{path}: {sum(repeats.values())} row(s) repeat an earlier row verbatim ({len(repeats)} passage id(s): "
            f"{shown}); each passage is indexed once"]


class CachedEmbedder:
    """Embedder wrapper that remembers vectors by text hash on disk, so repeated evaluations skip the model."""

    def __init__(self, embedder, cache_dir: Path):
        self.inner = embedder
        self.path = Path(cache_dir) / f"emb-{hashlib.sha1(str(embedder.path).encode()).hexdigest()[:10]}.npz"
        self.vecs: dict[str, np.ndarray] = {}
        if self.path.exists():
            z = np.load(self.path)
            self.vecs = dict(zip(z["keys"].tolist(), z["vecs"]))
        self.dirty = False

    def __getattr__(self, name: str):  # dim, count_tokens, tokenize, max_seq_length, ... come from the model
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def embed(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
        todo = [i for i, k in enumerate(keys) if k not in self.vecs]
        if todo:
            new = self.inner.embed([texts[i] for i in todo])
            for i, v in zip(todo, new):
                self.vecs[keys[i]] = v
            self.dirty = True
        return np.stack([self.vecs[k] for k in keys]) if keys else np.zeros((0, self.dim), np.float32)

    def save(self) -> None:
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(self.vecs)
            tmp = self.path.with_name(self.path.stem + ".tmp.npz")
            np.savez(tmp, keys=np.array(keys), vecs=np.stack([self.vecs[k] for k in keys]))
            tmp.replace(self.path)
            self.dirty = False


def build_index(beir_dir: Path, settings: Settings, index_dir: Path, embedder) -> EdgeIndex:
    index = EdgeIndex(index_dir, dim=embedder.dim, create=True)
    ing = Ingestor.from_settings(index, embedder, settings)
    report = ing.run([SourceSpec("beir", path=Path(beir_dir) / "corpus.jsonl")])
    if report.errors:
        raise ValueError(f"BEIR corpus did not ingest cleanly: {report.errors[:3]}")
    return index


def search_runs(index: EdgeIndex, queries: dict[str, str], embedder, modes, *, top_docs: int = 100,
                rrf_k: int = 60, weights=(1.0, 1.0), prefetch_limit: int = 300, qvecs=None) -> dict[str, dict]:
    """{mode: {qid: [(doc_id, score)]}}; chunk hits are folded into documents by their best rank."""
    qids = list(queries)
    if qvecs is None and any(m != "sparse" for m in modes):
        qvecs = dict(zip(qids, embedder.embed([queries[q] for q in qids])))
    bm25 = BM25Encoder(avg_len=float(index.get_meta().get("bm25_avg_len", 256.0)))
    runs: dict[str, dict] = {}
    for mode in modes:
        run = {}
        for qid in qids:
            hits = index.search(qvecs[qid] if mode != "sparse" else None,
                                bm25.encode_query(queries[qid]) if mode != "dense" else None,
                                mode=mode, top_k=top_docs * 2, rrf_k=rrf_k, weights=weights,
                                prefetch_limit=prefetch_limit)
            seen: dict[str, float] = {}
            for h in hits:
                if h.chunk.doc_id not in seen:
                    seen[h.chunk.doc_id] = h.score
            run[qid] = list(itertools.islice(seen.items(), top_docs))
        runs[mode] = run
    return runs


def tune_fusion(index: EdgeIndex, queries: dict[str, str], qrels, embedder, qvecs,
                grid_weights=((1.0, 1.0), (1.0, 0.7), (1.0, 0.5), (1.0, 0.35), (1.0, 0.25)),
                grid_k=(10, 30, 60), grid_prefetch=(20, 50, 100)) -> tuple[dict, list[dict]]:
    """Grid search of RRF weights, k and branch depth on the given (tuning) queries; best by nDCG@10."""
    rows = []
    for w, k, pf in tqdm(list(itertools.product(grid_weights, grid_k, grid_prefetch)), desc="tuning fusion"):
        run = search_runs(index, queries, embedder, ["hybrid"], rrf_k=k, weights=w, prefetch_limit=pf,
                          qvecs=qvecs)["hybrid"]
        m = evaluate_run(run, qrels, METRICS, qids=list(queries)).mean
        rows.append({"dense_weight": w[0], "sparse_weight": w[1], "rrf_k": k, "prefetch_limit": pf, **m})
    best = max(rows, key=lambda r: r["ndcg@10"])
    return best, rows


def run_retrieval_eval(beir_dir: Path, settings: Settings, modes=("all",), min_rel: int = 1,
                       run_out: Path | None = None, report_dir: Path | None = None, split: str = "all",
                       limit: int | None = None, tune: bool = False) -> dict:
    t0 = time.perf_counter()
    warnings = check_corpus(Path(beir_dir) / "corpus.jsonl") if (Path(beir_dir) / "corpus.jsonl").is_file() else []
    for w in warnings:
        log.warning(w)
    corpus, queries, qrels = load_beir(beir_dir)
    modes = ["bm25", *INDEX_MODES] if "all" in modes else list(modes)
    bad = [m for m in modes if m not in ("bm25", *INDEX_MODES)]
    if bad:
        raise ValueError(f"unknown mode(s) {bad}; choose from bm25, dense, sparse, hybrid, all")
    tune_q, test_q = split_queries(sorted(queries))
    qids = {"all": sorted(queries), "tune": tune_q, "test": test_q}[split]
    if limit:
        qids = qids[:limit]
    sel = {q: queries[q] for q in qids}
    embedder = CachedEmbedder(get_embedder(settings), settings.paths.data_dir / "cache")
    out: dict = {"beir_dir": str(beir_dir), "warnings": warnings, "split": split, "n_queries": len(sel),
                 "n_docs": len(corpus),
                 "min_rel": min_rel, "modes": {}, "fusion": {"rrf_k": settings.retrieval.rrf_k,
                 "weights": [settings.retrieval.dense_weight, settings.retrieval.sparse_weight],
                 "prefetch_limit": settings.retrieval.prefetch_limit}}
    runs: dict[str, dict] = {}
    if "bm25" in modes:
        runs["bm25"] = rank_bm25_baseline(corpus, sel, top_k=100)
    with tempfile.TemporaryDirectory(prefix="carecite-beir-") as tmp:
        index = build_index(Path(beir_dir), settings, Path(tmp) / "index", embedder)
        embedder.save()
        out["n_chunks"] = index.count()
        try:
            qvecs = dict(zip(qids, embedder.inner.embed([sel[q] for q in qids])))
            if tune:
                tq = {q: queries[q] for q in tune_q if q in queries}
                tvecs = dict(zip(tq, embedder.inner.embed(list(tq.values()))))
                best, rows = tune_fusion(index, tq, qrels, embedder, tvecs)
                out["tuning"] = {"best_on_tune_half": best, "grid": rows}
                weights, rrf_k, pf = (best["dense_weight"], best["sparse_weight"]), best["rrf_k"], best["prefetch_limit"]
            else:
                r = settings.retrieval
                weights, rrf_k, pf = (r.dense_weight, r.sparse_weight), r.rrf_k, r.prefetch_limit
            out["fusion_used"] = {"rrf_k": rrf_k, "weights": list(weights), "prefetch_limit": pf}
            index_modes = [m for m in modes if m in INDEX_MODES]
            runs.update(search_runs(index, sel, embedder, index_modes, rrf_k=rrf_k, weights=weights,
                                    prefetch_limit=pf, qvecs=qvecs))
        finally:
            index.close()
    per_query = {}
    halves = {"tune": set(tune_q), "test": set(test_q)}
    out["by_half"] = {h: {} for h in halves}
    for mode in modes:
        scores = evaluate_run(runs[mode], qrels, METRICS, min_rel=min_rel, qids=qids)
        out["modes"][mode] = scores.mean
        per_query[mode] = scores.per_query
        for h, members in halves.items():  # tuning sees only the tune half: the test half is the honest number
            vals = [v for q, v in scores.per_query.items() if q in members]
            if vals:
                out["by_half"][h][mode] = {m: float(np.mean([v[m] for v in vals])) for m in METRICS}
        if run_out:
            write_trec_run(runs[mode], f"{run_out}.{mode}" if len(modes) > 1 else run_out, f"carecite-{mode}")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["table"] = markdown_table(out)
    if report_dir:
        write_reports(out, per_query, Path(report_dir))
    return out


def markdown_table(out: dict) -> str:
    lines = [f"Retrieval on {out['beir_dir']} ({out['split']} split, {out['n_queries']} queries, "
             f"{out['n_docs']} docs, {out.get('n_chunks', '?')} chunks)", *[f"Warning: {w}" for w in
                                                                            out.get("warnings", [])], "",
             "| mode | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for mode, m in out["modes"].items():
        lines.append(f"| {mode} | " + " | ".join(f"{m[k]:.3f}" for k in METRICS) + " |")
    test = out.get("by_half", {}).get("test")
    if test and out["split"] == "all":
        lines += ["", f"Held-out test half (fusion {out['fusion_used']}):", "",
                  "| mode | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
        lines += [f"| {mode} | " + " | ".join(f"{m[k]:.3f}" for k in METRICS) + " |" for mode, m in test.items()]
    return "\n".join(lines)


def write_reports(out: dict, per_query: dict, report_dir: Path) -> None:
    import json
    from eval.reports import bar_chart
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "retrieval.json").write_text(json.dumps({k: v for k, v in out.items() if k != "table"}, indent=1))
    (report_dir / "retrieval.md").write_text(out["table"] + "\n")
    with open(report_dir / "retrieval_per_query.tsv", "w") as f:
        f.write("mode\tqid\t" + "\t".join(METRICS) + "\n")
        for mode, pq in per_query.items():
            for qid, vals in pq.items():
                f.write(f"{mode}\t{qid}\t" + "\t".join(f"{vals[k]:.4f}" for k in METRICS) + "\n")
    bar_chart(out["modes"], list(METRICS), report_dir / "retrieval.png", title="Retrieval by mode")
