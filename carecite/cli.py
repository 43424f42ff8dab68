"""`carecite` command line: ingest, search, stats, migrate, ask, serve, eval, bench."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from carecite.settings import settings_from_args


_settings = settings_from_args


# ---------------------------------------------------------------- ingest / search / stats / migrate

def cmd_ingest(args) -> int:
    from carecite.lexicon import lexicon_path
    from carecite.runtime import open_index_and_embedder
    from ingest.lexicon_build import rebuild_lexicon
    from ingest.pipeline import DEFAULT_CORPUS, Ingestor, SourceSpec

    if args.doc_type and not args.paths:  # named corpora carry their own types: never ignore it silently
        print(f"error: --doc-type {args.doc_type} applies to your own files (give their paths); the named corpora "
              "carry their own document types", file=sys.stderr)
        return 2
    s = _settings(args)
    if args.phi_policy:
        s.phi.policy = args.phi_policy
    specs: list[SourceSpec] = []
    names = [] if args.paths and not args.corpus else (args.corpus or ",".join(DEFAULT_CORPUS)).split(",")
    from ingest.readers import CORPORA
    unknown = [n.strip() for n in names if n.strip() and n.strip() not in CORPORA]
    missing = [p for p in args.paths if not Path(p).exists()]
    if unknown or missing:  # before any model loads or anything is written
        print("carecite: error: " + "; ".join(
            [f"no such file or folder: {p}" for p in missing]
            + [f"unknown corpus {n!r} (known: {', '.join(CORPORA)})" for n in unknown]), file=sys.stderr)
        return 2
    for n in names:
        if n.strip():
            specs.append(SourceSpec(n.strip(), limit=args.limit))
    for p in args.paths:
        specs.append(SourceSpec(p, path=Path(p), doc_type=args.doc_type, source=args.source,
                                specialty=args.specialty, replace=args.replace))
    index, embedder = open_index_and_embedder(s)  # the embedder that built it; a mismatch is an error
    with index:
        ing = Ingestor.from_settings(index, embedder, s, show_progress=not args.json)
        report = ing.run(specs, purge=args.purge)
        total = index.count()
        lexicon = None  # the query lexicon follows the index: rebuilt when the ingest changed it
        if report.chunks_written or report.docs_removed or not lexicon_path(s).exists():
            lexicon = rebuild_lexicon(index, lexicon_path(s))
    if args.json:
        print(json.dumps({**vars(report), "chunks_per_s": report.chunks_per_s, "index_chunks": total,
                          "lexicon": lexicon}, default=str))
    else:
        print(report.summary())
        print(f"index now holds {total} chunks")
        if lexicon:
            print(_lexicon_line(lexicon))
    if report.errors:  # exit status 1: the run finished, but these files are not (or not all) in the index
        print(f"carecite: {len(report.errors)} file(s) failed: "
              + ", ".join(f for f, _ in report.errors[:10]) + (" ..." if len(report.errors) > 10 else ""),
              file=sys.stderr)
        return 1
    return 0


def _lexicon_line(st: dict) -> str:
    return (f"lexicon: {st['words']} words, {st['drug_pairs']} brand/generic pairs, {st['acronyms']} abbreviations "
            f"from {st['texts']} chunks in {st['seconds']:.1f} s -> {st['path']}")


def cmd_lexicon(args) -> int:
    from carecite.lexicon import LexiconError, lexicon_path, load_lexicon
    from carecite.runtime import open_index
    from ingest.lexicon_build import rebuild_lexicon
    s = _settings(args)
    if args.lexicon_cmd == "build":
        with open_index(s) as index:
            st = rebuild_lexicon(index, lexicon_path(s))
        print(json.dumps(st, indent=1) if args.json else _lexicon_line(st))
        return 0
    lex = load_lexicon(s)
    if lex is None:
        raise LexiconError(f"no lexicon at {lexicon_path(s)}; run `carecite lexicon build` (or `carecite ingest`)")
    reading = lex.read(args.question)
    if args.json:
        print(json.dumps(reading.to_json(), indent=1, ensure_ascii=False))
        return 0
    print(reading.text)
    for c in reading.corrections:
        print(f"  read {c.original!r} as {c.replacement!r} ({c.kind})")
    for term, forms in reading.expansions.items():
        print(f"  {term}: also {', '.join(forms)}")
    return 0


def cmd_search(args) -> int:
    from carecite.runtime import open_searcher
    s = _settings(args)
    searcher = open_searcher(s)
    try:
        hits = searcher.search(args.query, args.filter, mode=args.mode, top_k=args.top_k)
    finally:
        searcher.index.close()
    if args.json:
        print(json.dumps([h.to_json() for h in hits], indent=1))
        return 0
    if not hits:
        print("no passages matched" + (" these filters" if args.filter else ""))
    for h in hits:
        m = h.chunk.metadata
        print(f"[{h.rank}] {h.score:.4f}  {m.get('title', '')} — {m.get('section', '')}")
        print(f"    {m.get('source', '')} · {m.get('doc_type', '')} · {m.get('url') or m.get('path') or ''}")
        text = " ".join(h.chunk.text.split())
        print(f"    {text[:300]}{'…' if len(text) > 300 else ''}\n")
    return 0


def cmd_stats(args) -> int:
    from carecite.models import model_ids
    from carecite.runtime import open_index
    s = _settings(args)
    with open_index(s) as index:
        meta = index.get_meta()
        out = {"index": str(s.index_path) if s.index.backend == "edge" else f"{s.index.url}/{s.index.collection}",
               "backend": s.index.backend, "chunks": index.count(),
               "by_doc_type": index.facet("doc_type"), "by_source": index.facet("source"),
               "by_specialty": index.facet("specialty"),
               "size_bytes": index.size_bytes(), "version": meta.get("version"),
               "bm25_avg_len": meta.get("bm25_avg_len"), "models": model_ids(s)}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"index: {out['index']} ({out['backend']}), version {out['version']}")
    print(f"chunks: {out['chunks']}" + (f", {out['size_bytes'] / 1e6:.1f} MB on disk" if out["size_bytes"] else ""))
    for key in ("by_doc_type", "by_source", "by_specialty"):
        print(f"{key.replace('_', ' ')}:")
        for k, v in sorted(out[key].items(), key=lambda kv: -kv[1]):
            print(f"  {k:<40} {v:>8}")
    print("models: " + ", ".join(f"{k}={v}" for k, v in out["models"].items()))
    return 0


def cmd_migrate(args) -> int:
    from indexes.migrate import migrate
    from carecite.runtime import open_index
    src_s, dst_s = _settings(args), _settings(args)
    src_s.index.backend, dst_s.index.backend = args.src, args.dst
    for st, url, path in ((src_s, args.src_url, args.src_path), (dst_s, args.dst_url, args.dst_path)):
        if url:
            st.index.url = url
        if path:
            st.index.path = Path(path)
        if args.api_key:
            st.index.api_key = args.api_key
    with open_index(src_s) as src:
        with open_index(dst_s, create=True, dim=src.dim) as dst:
            n = migrate(src, dst, show_progress=True)
    print(f"migrated {n} chunks from {args.src} to {args.dst}")
    return 0


# ---------------------------------------------------------------- ask / serve

def cmd_ask(args) -> int:
    from assistant.generators import ExtractiveGenerator
    from assistant.pipeline import Assistant
    s = _settings(args)
    with Assistant(s) as assistant:
        if args.patient:  # this patient's record and the guidelines (assistant/patients.py)
            from assistant.patients import stream_patient
            events = stream_patient(assistant, args.patient, args.question, filters=args.filter)
        else:
            events = assistant.stream(args.question, filters=args.filter)
        answer = None
        show = args.stream and not args.json
        llm = not isinstance(assistant.generator, ExtractiveGenerator)  # else the quick answer is the answer
        for ev in events:
            if ev["type"] == "quick" and show:
                print("Quoted from the sources (verified):\n" + ev["answer"].answer + "\n", flush=True)
                if llm:
                    print("Full answer (being written):", flush=True)
            elif ev["type"] == "queued" and show:
                print(f"(the local model is busy: queued at position {ev['position']})", flush=True)
            elif ev["type"] == "token" and show and llm:
                print(ev["text"], end="", flush=True)
            elif ev["type"] == "answer":
                answer = ev["answer"]
    if args.json:
        from assistant.patients import answer_json
        print(json.dumps(answer_json(answer) if args.patient else answer.to_json(), indent=1))
        return 0
    if args.stream:
        print("\n")
    print(("[abstained] " if answer.abstained else "") + answer.answer)
    if answer.note:
        print(f"({answer.note})")
    for x in (x for x in answer.sentences if not x.supported):  # for review: what verification kept out, and why
        print(f"  ! {'unsupported' if x.text in answer.answer else 'withheld'}: {x.text} ({x.reason})")
    print("\nSources:")
    labels = getattr(answer, "labels", {})  # record entries of a patient answer: [P1, date]
    for src in answer.sources:
        print(f"{labels.get(src.n, f'[{src.n}]')} {src.title} — {src.section} ({src.source}) {src.url or ''}")
    print("\n" + ", ".join(f"{k} {v:.2f}s" for k, v in answer.timings.items()))
    return 0


def cmd_patients(args) -> int:
    from assistant.patients import list_patients, load_record
    from carecite.runtime import open_index
    with open_index(_settings(args)) as index:
        if not args.patient:
            ids = list_patients(index)
            print(json.dumps(ids) if args.json else "\n".join(ids) or "no patient records; ingest FHIR with "
                                                                      "`carecite ingest PATH --doc-type patient`")
            return 0
        rec = load_record(index, args.patient)
    if args.json:
        print(json.dumps({"patient_id": rec.patient_id, "summary": rec.summary, "timeline": rec.timeline,
                          "series": rec.series()}, indent=1))
        return 0
    print("\n\n".join(f"## {s['title']}\n{s['text']}" for s in rec.sections))
    return 0


def cmd_serve(args) -> int:
    from assistant.api import serve
    s = _settings(args)
    serve(s, host=args.host, port=args.port, token=args.token)
    return 0


# ---------------------------------------------------------------- eval / bench

def cmd_eval_retrieval(args) -> int:
    from eval.retrieval import run_retrieval_eval
    s = _settings(args)
    res = run_retrieval_eval(Path(args.beir_dir), s, modes=args.mode.split(","), min_rel=args.min_rel,
                             run_out=Path(args.run_out) if args.run_out else None,
                             report_dir=Path(args.report_dir) if args.report_dir else None,
                             split=args.split, limit=args.limit, tune=args.tune)
    print(json.dumps(res, indent=1) if args.json else res["table"])
    return 0


def cmd_bench(args) -> int:
    from eval.bench import run_benchmark
    s = _settings(args)
    res = run_benchmark(s, sizes=[int(x) for x in args.sizes.split(",")], queries=args.queries,
                        ingest_docs=args.ingest_docs, backends=args.backends.split(","), ingest_only=args.ingest_only)
    print(json.dumps(res, indent=1) if args.json else res["table"])
    return 0


def cmd_bench_answer(args) -> int:
    from eval.bench import run_answer_benchmark, write_answer_report
    s = _settings(args)
    ints = [int(x) for x in args.threads.split(",")] if args.threads else None
    res = run_answer_benchmark(s, args.questions, threads=ints, drafts=args.draft.split(",") if args.draft else None,
                               concurrent=args.concurrent, say=(lambda m: print(m, file=sys.stderr, flush=True))
                               if args.json else (lambda m: print(m, flush=True)))
    if args.report_dir:
        write_answer_report(res, Path(args.report_dir))
    print(json.dumps(res, indent=1, default=str) if args.json else res["table"])
    if args.report_dir and not args.json:
        print("reports: " + ", ".join(res["files"].values()))
    return 0


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="carecite", description="Offline clinical knowledge assistant.")
    p.add_argument("--preset", help="settings preset: default, demo, fast, test, server")
    p.add_argument("--data-dir", help="override CARECITE_PATHS__DATA_DIR")
    sub = p.add_subparsers(dest="cmd", required=True)

    q = sub.add_parser("ingest", help="ingest the default corpus, named corpora or your own files")
    q.add_argument("paths", nargs="*", help="files or folders (Markdown, HTML, text, PDF, MedQuAD XML, JSONL)")
    q.add_argument("--corpus", help="comma-separated named corpora from the data mirror "
                                    "(medquad, openstax-nursing, aci-bench, mts-dialog, pubmedqa); default: "
                                    "medquad,openstax-nursing,aci-bench when no paths are given")
    q.add_argument("--doc-type", choices=["guideline", "case", "reference", "literature", "patient"],
                   help="for your files; patient: FHIR R4 bundles or NDJSON, de-identified as they are read")
    q.add_argument("--source", help="source label for your files")
    q.add_argument("--specialty", help="comma-separated specialties for your files (e.g. cardiology,critical care)")
    q.add_argument("--phi-policy", choices=["reject", "mask"], help="what to do with PHI in case documents")
    q.add_argument("--purge", action="store_true", help="remove documents whose files are gone")
    q.add_argument("--replace", action="store_true",
                   help="a document id already stored from another folder or file (e.g. the folder moved) is "
                        "replaced, and reported; without it that file is an error")
    q.add_argument("--limit", type=int, help="read at most N documents per named corpus")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_ingest)

    q = sub.add_parser("lexicon", help="the query lexicon (spelling, brand/generic names, abbreviations) of the index")
    lx = q.add_subparsers(dest="lexicon_cmd", required=True)
    q = lx.add_parser("build", help="rebuild it from the index (ingest does this when the index changes)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_lexicon)
    q = lx.add_parser("read", help="how a question is read: corrections and accepted forms")
    q.add_argument("question")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_lexicon)

    q = sub.add_parser("search", help="ranked passages for a question")
    q.add_argument("query")
    q.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="doc_type=guideline|case|reference|literature, source=..., specialty=..., "
                        "date_from=YYYY-MM-DD, date_to=...; repeatable")
    q.add_argument("--mode", choices=["hybrid", "dense", "sparse"], default="hybrid")
    q.add_argument("--top-k", type=int, default=10)
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_search)

    q = sub.add_parser("stats", help="counts by source and type, index size, models")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_stats)

    q = sub.add_parser("migrate", help="copy an index between the embedded and the server backend")
    q.add_argument("--src", choices=["edge", "server"], required=True)
    q.add_argument("--dst", choices=["edge", "server"], required=True)
    q.add_argument("--src-url"), q.add_argument("--dst-url"), q.add_argument("--api-key")
    q.add_argument("--src-path"), q.add_argument("--dst-path")
    q.set_defaults(fn=cmd_migrate)

    def generator_args(q):
        q.add_argument("--generator", choices=["local", "openai", "extractive"])
        q.add_argument("--base-url", help="OpenAI-compatible endpoint (vLLM, Azure AI Foundry, llama.cpp server)")
        q.add_argument("--model", help="model name at that endpoint")
        q.add_argument("--api-key")

    q = sub.add_parser("ask", help="a grounded answer with verified citations")
    q.add_argument("question")
    q.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE")
    generator_args(q)
    q.add_argument("--json", action="store_true", help="print the answer object")
    q.add_argument("--stream", action="store_true", help="print tokens as they come")
    q.add_argument("--patient", metavar="ID", help="answer about this patient (pseudonym, see `carecite patients`): "
                                                 "their record, cited [P1, date], and the guidelines")
    q.set_defaults(fn=cmd_ask)

    q = sub.add_parser("patients", help="the de-identified patient records: list them, or one's summary and timeline")
    q.add_argument("patient", nargs="?", help="a pseudonym (P-...); without it, list them")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_patients)

    q = sub.add_parser("serve", help="OpenAI-compatible HTTP API with citations")
    q.add_argument("--host"), q.add_argument("--port", type=int)
    q.add_argument("--token", help="bearer token (required unless bound to loopback)")
    generator_args(q)
    q.set_defaults(fn=cmd_serve)

    ev = sub.add_parser("eval", help="benchmarks").add_subparsers(dest="eval_cmd", required=True)
    q = ev.add_parser("retrieval", help="recall@10/100, nDCG@10, MRR@10 on a BEIR folder")
    q.add_argument("beir_dir")
    q.add_argument("--mode", default="all", help="bm25,dense,sparse,hybrid or all")
    q.add_argument("--min-rel", type=int, default=1)
    q.add_argument("--split", choices=["all", "tune", "test"], default="all",
                   help="evaluate on all queries or one half of the deterministic tune/test split")
    q.add_argument("--limit", type=int, help="first N queries only (quick look)")
    q.add_argument("--run-out", help="write a TREC run file (one per mode: FILE.<mode>)")
    q.add_argument("--report-dir", help="write JSON, Markdown, per-query and PNG reports here")
    q.add_argument("--tune", action="store_true",
                   help="grid-search RRF weights/k on the tune half first, then evaluate with the best")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_eval_retrieval)
    from eval.commands import add_eval_commands
    add_eval_commands(ev)

    from eval import loadtest
    q = sub.add_parser("loadtest", help="bounded load test of the HTTP API (20 clients x 10 questions); "
                                        "--serve starts a server with --preset (default fast: extractive)")
    loadtest.add_arguments(q, with_preset=False)
    q.set_defaults(fn=lambda a: loadtest.run(a, a.preset or "fast", a.data_dir))

    q = sub.add_parser("bench", help="ingest throughput, index size, query latency vs baselines")
    q.add_argument("--sizes", default="10000,100000")
    q.add_argument("--queries", type=int, default=200)
    q.add_argument("--ingest-docs", type=int, default=300, help="clinical-dev passages for the ingest bench")
    q.add_argument("--backends", default="torch,onnx-int8", help="embedder backends to compare, side by side")
    q.add_argument("--ingest-only", action="store_true", help="skip the query-latency part")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_bench)
    from eval.bench import add_answer_arguments
    q = q.add_subparsers(dest="bench_cmd").add_parser(
        "answer", help="answer latency: first cited text, first token, total; tokens and rates; cold vs warm")
    add_answer_arguments(q)
    generator_args(q)
    q.set_defaults(fn=cmd_bench_answer)
    return p


_PATH_ARGS = {"paths", "beir_dir", "data_dir", "run_out", "report_dir", "src_path", "dst_path"}  # any bytes will do


def _not_utf8(args) -> str | None:
    """What is wrong with a text argument that held bytes that are not UTF-8 (Python keeps them as lone surrogates,
    which would fail deep in the tokenizer or the index), or None. File paths may be any bytes."""
    for name, value in vars(args).items():
        if name in _PATH_ARGS:
            continue
        for v in value if isinstance(value, list) else [value]:
            if not isinstance(v, str):
                continue
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as e:
                raw = v.encode("utf-8", "surrogateescape")
                pos = len(v[:e.start].encode("utf-8", "surrogateescape"))
                what = "the " + name if name in ("question", "query") else "--" + name.replace("_", "-")
                return (f"{what} is not valid UTF-8 text (byte 0x{raw[pos]:02x} at byte {pos}); "
                        "give it as UTF-8 (check the terminal's or the script's encoding)")
    return None


def main(argv: list[str] | None = None) -> int:
    from indexes.base import IndexLockedError, IndexMissingError
    from indexes.searcher import QueryError
    from indexes.types import FilterError
    from carecite.models import EmbedderMismatchError, ModelIntegrityError, ModelMissingError

    args = build_parser().parse_args(argv)
    bad = _not_utf8(args)
    if bad:
        print(f"carecite: error: {bad}", file=sys.stderr)
        return 2
    from assistant.errors import AssistantError
    known = (IndexLockedError, IndexMissingError, QueryError, FilterError, ModelMissingError, ModelIntegrityError,
             AssistantError, FileNotFoundError, ValueError, EmbedderMismatchError)
    try:
        from ingest.readers import DataMissingError
        known = (*known, DataMissingError)
    except ImportError:
        pass
    try:
        return args.fn(args) or 0
    except known as e:
        print(f"carecite: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
