"""`carecite eval mirage | pubmedqa | grounding | liveqa`: the benchmarks that need the generator.

carecite/cli.py calls add_eval_commands(eval_subparsers). Every command:
  * takes --generator local|openai|extractive and --base-url/--model/--api-key for any OpenAI-compatible server;
  * appends predictions to <out>/predictions/<generator>/... one line per question, so an interrupted run resumes
    where it stopped (a run folder remembers its configuration and refuses to mix in another one);
  * says what is done so far when it starts, when it ends and when interrupted (Ctrl-C);
  * writes report.json, report.md and (MIRAGE, PubMedQA) a bar chart into --out
    (default <data_dir>/reports/<command>/).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from carecite.settings import Settings, settings_from_args as cli_settings
from eval import mirage, pubmedqa
from eval.reports import bar_chart, read_jsonl, write_json, write_markdown

INTERRUPTED = 130


# ---------------------------------------------------------------- shared plumbing

def settings_from_args(args) -> Settings:
    """Preset, --data-dir and generator options applied; the audit log is off (benchmark questions are not
    clinical use)."""
    s = cli_settings(args)
    if getattr(args, "mode", None):
        s.retrieval.mode = args.mode
    s.audit.enabled = False
    return s


def slug(text: str) -> str:
    """A folder name for a generator or setting: "openai:qwen@http://h:8080/v1" -> "openai-qwen-h-8080-v1"."""
    text = re.sub(r"^https?://", "", text.replace("@http://", "@").replace("@https://", "@"))
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-")[:120] or "run"


def check_run_config(run_dir: Path, config: dict) -> None:
    """Record a run folder's configuration, or refuse to resume it with a different one."""
    path = run_dir / "run.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = {k: (old.get(k), v) for k, v in config.items() if old.get(k) != v}
        if diff:
            changes = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"{run_dir} holds predictions made with another configuration ({changes}); "
                             "pass another --out, or delete that folder to start over")
        return
    write_json(config, path)


def _qa_generator(settings: Settings):
    """The configured generator, refused early when it cannot answer benchmark questions."""
    from assistant.generators import get_generator
    from eval.qa_runs import require_llm
    generator = get_generator(settings)
    require_llm(generator)
    return generator


def _say(args, text: str) -> None:
    print(text, file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)


def _index_info(index) -> dict:
    return {"chunks": index.count(), "by_source": index.facet("source"),
            "pubmedqa_chunks": index.count(_filters(source=["PubMedQA"])),
            "version": index.get_meta().get("version")}


def _filters(**kw):
    from indexes.types import Filters
    return Filters(**kw)


def _open_searcher(settings: Settings):
    from carecite.runtime import open_searcher
    return open_searcher(settings)


def _retriever(settings: Settings, searcher, k: int):
    from carecite.models import get_embedder
    from eval.qa_runs import Retriever
    g = settings.generator
    return Retriever(searcher, get_embedder(settings).count_tokens, k=k, mode=settings.retrieval.mode,
                     context_tokens=g.n_ctx, answer_tokens=g.max_tokens)


def _out_dir(args, settings: Settings, command: str) -> Path:
    return Path(args.out) if args.out else settings.paths.data_dir / "reports" / command


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def _finish(args, report: dict, out: Path, md_sections: dict, title: str, chart: Path | None) -> int:
    files = {"json": str(write_json(report, out / "report.json")),
             "markdown": str(write_markdown(md_sections, out / "report.md", title, digits=1))}
    if chart is not None:
        files["chart"] = str(chart)
    report["files"] = files
    write_json(report, out / "report.json")
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print((out / "report.md").read_text(encoding="utf-8"))
        print("reports: " + ", ".join(files.values()))
    return 0


def _extracted(paths) -> int:
    """Predictions whose answer came from the second, extraction turn."""
    return sum(bool(r.get("extra", {}).get("extracted")) for p in paths if p.exists() for r in read_jsonl(p))


def _setup_table(rows: dict) -> dict:
    return {k: {"value": v if isinstance(v, (int, float, str)) or v is None else json.dumps(v)}
            for k, v in rows.items()}


# ---------------------------------------------------------------- MIRAGE

def mirage_run_name(retrieval: bool, k: int, mode: str, style: str) -> str:
    return (f"rag_{k}_{mode}" if retrieval else "cot") + ("" if style == "medrag" else f"_{style}")


def mirage_progress(name: str, bench: dict, run_dir: Path) -> str:
    done = mirage.read_predictions(run_dir, list(bench)) if run_dir.exists() else {s: {} for s in bench}
    parts = [f"{s} {sum(q.qid in done[s] for q in qs)}/{len(qs)}" for s, qs in bench.items()]
    return f"mirage {name}: " + ", ".join(parts) + " done"


def export_authors_layout(run_dir: Path, subsets) -> Path:
    """Predictions also in MIRAGE's own layout, <run>/mirage_format/<subset>/<split>_<id>.json holding [raw],
    readable by the authors' scorer (src/evaluate.py)."""
    out = run_dir / "mirage_format"
    for subset, preds in mirage.read_predictions(run_dir, subsets).items():
        folder = out / subset
        folder.mkdir(parents=True, exist_ok=True)
        for qid, raw in preds.items():
            path = folder / f"{mirage.SPLITS[subset]}_{qid}.json"
            if not path.exists():
                path.write_text(json.dumps([raw]), encoding="utf-8")
    return out


def _own_abstract_rate(run_dir: Path) -> dict | None:
    """For PubMedQA*: how often retrieval returned the question's own abstract (only possible when the index
    holds PubMedQA)."""
    path = run_dir / "pubmedqa.jsonl"
    if not path.exists():
        return None
    rows = [r for r in read_jsonl(path) if "doc_ids" in r.get("extra", {})]
    hit = sum(f"pubmed:{r['id']}" in r["extra"]["doc_ids"] for r in rows)
    return {"own_abstract_retrieved": hit, "n": len(rows)} if rows else None


def cmd_mirage(args) -> int:
    from eval.qa_runs import mirage_answer_fn
    t0 = time.perf_counter()
    s = settings_from_args(args)
    subsets = [x.strip() for x in args.subset.split(",") if x.strip()] if args.subset else None
    bench = mirage.load_benchmark(subsets=subsets, limit=args.limit)
    runs = [True, False] if args.both else [not args.no_retrieval]
    generator = _qa_generator(s)
    out = _out_dir(args, s, "mirage")
    results, index_info, run_dirs = {}, None, {}
    searcher = _open_searcher(s) if any(runs) else None
    try:
        if searcher is not None:
            index_info = _index_info(searcher.index)
        for retrieval in runs:
            name = mirage_run_name(retrieval, args.k, s.retrieval.mode, args.prompt)
            run_dir = out / "predictions" / slug(generator.name) / name
            check_run_config(run_dir, {"benchmark": "mirage", "generator": generator.name, "retrieval": retrieval,
                                       "k": args.k if retrieval else None,
                                       "mode": s.retrieval.mode if retrieval else None, "prompt": args.prompt,
                                       "answer_extraction": not args.no_answer_extraction,
                                       "max_tokens": s.generator.max_tokens,
                                       "temperature": s.generator.temperature})
            run_dirs[name] = run_dir
            answer_fn = mirage_answer_fn(generator, _retriever(s, searcher, args.k) if retrieval else None,
                                         args.prompt, extract=not args.no_answer_extraction)
            _say(args, mirage_progress(name, bench, run_dir) + " before this run")
            try:
                results[name] = mirage.run_mirage(bench, answer_fn, run_dir, progress=not args.no_progress)
            except KeyboardInterrupt:
                _say(args, "interrupted; " + "; ".join(mirage_progress(n, bench, d) for n, d in run_dirs.items())
                     + ". Rerun the same command to resume.")
                return INTERRUPTED
            _say(args, mirage_progress(name, bench, run_dir))
    finally:
        if searcher is not None:
            searcher.index.close()
    add_earlier_mirage_runs(out / "predictions" / slug(generator.name), bench, results, run_dirs)
    calibrated = calibrate_letter_runs(generator, bench, run_dirs) if args.prompt == "letter" else {}
    for name, run_dir in run_dirs.items():
        export_authors_layout(run_dir, list(bench))
    report = mirage_report(results, bench, generator.name, s, args, index_info, run_dirs,
                           round(time.perf_counter() - t0, 1), calibrated)
    sections = report.pop("_markdown")
    chart = mirage_chart(report, out / "mirage.png")
    return _finish(args, report, out, sections, f"MIRAGE — {generator.name}", chart)


def calibrate_letter_runs(generator, bench: dict, run_dirs: dict) -> dict:
    """Contextual calibration of 'letter' runs, as a second scoring of the same predictions: each question's
    recorded letter log-probabilities minus the model's log-probabilities for a content-free question in the same
    prompt (one model call per option set and setting). {run: {"accuracy": {subset: pct}, "prior": ..., ...}}"""
    from eval.qa_runs import calibrated_letter, letter_prior
    out = {}
    for name, run_dir in run_dirs.items():
        retrieval = not name.startswith("cot")
        priors: dict[tuple, dict] = {}
        acc, moved, n_cal = {}, 0, 0
        for subset, questions in bench.items():
            path = run_dir / f"{subset}.jsonl"
            rows = {r["id"]: r for r in read_jsonl(path, repair=True)} if path.exists() else {}
            done = [q for q in questions if q.qid in rows]
            correct = 0
            for q in done:
                key = tuple(sorted(q.options.items()))
                if key not in priors:
                    priors[key] = letter_prior(generator, q.options, retrieval)
                r = rows[q.qid]
                choice = calibrated_letter(r.get("extra", {}).get("letter_logprobs") or {}, priors[key], list(q.options))
                n_cal += choice is not None
                final = choice or r["choice"]
                moved += final != r["choice"]
                correct += final == q.answer
            acc[subset] = 100.0 * correct / len(done) if done else None
        out[name] = {"accuracy": acc, "changed_choices": moved, "calibrated": n_cal,
                     "priors": {"/".join(v for _, v in k): p for k, p in priors.items()}}
    return out


def add_earlier_mirage_runs(gen_dir: Path, bench: dict, results: dict, run_dirs: dict) -> None:
    """Score the other settings already run for this generator in the same folder (e.g. the CoT baseline run
    by an earlier command) on the same questions, so the report sets them side by side."""
    for run_dir in sorted(gen_dir.iterdir()) if gen_dir.is_dir() else []:
        if run_dir.name in results or not (run_dir / "run.json").is_file():
            continue
        preds = mirage.read_predictions(run_dir, list(bench))
        if any(preds.values()):
            results[run_dir.name] = mirage.score_predictions(bench, preds)
            run_dirs[run_dir.name] = run_dir


def _published(subsets: list[str]) -> dict:
    rows = {}
    for r in mirage.published_rows():
        row = {mirage.SUBSET_LABELS[x]: r[x] for x in subsets}
        row["Average (these subsets)"] = sum(r[x] for x in subsets) / len(subsets)
        row["Average (all five)"] = r["average"]
        rows[f"{r['llm']} {r['setting']}"] = row
    return rows


def mirage_report(results: dict, bench: dict, gen_name: str, s: Settings, args, index_info, run_dirs: dict,
                  seconds: float, calibrated: dict | None = None) -> dict:
    subsets = list(bench)
    ours, strict = {}, {}
    for name, res in results.items():
        label = f"ours: {name}"
        ours[label] = {mirage.SUBSET_LABELS[x]: res["subsets"][x]["accuracy_pct"] for x in subsets}
        ours[label]["Average (these subsets)"] = res["average_pct"]
        ours[label]["n"] = res["done"]
        strict[label] = {**{mirage.SUBSET_LABELS[x]: res["subsets"][x]["strict_accuracy_pct"] for x in subsets},
                         "Average": res["strict_average_pct"],
                         "unparsed": sum(v["unparsed"] for v in res["subsets"].values()),
                         "answer extracted": _extracted(run_dirs[name] / f"{x}.jsonl" for x in subsets)}
    leak = {name: r for name, d in run_dirs.items() if (r := _own_abstract_rate(d))}
    setup = {"generator": gen_name, "prompt": args.prompt, "max_tokens": s.generator.max_tokens,
             "n per subset": {x: len(q) for x, q in bench.items()}, "k (passages)": args.k,
             "retrieval mode": s.retrieval.mode, "retrieval query": "the question only (never the options)",
             "index": str(s.index_path) if index_info else "not used",
             "index chunks": index_info["chunks"] if index_info else None,
             "index holds PubMedQA abstracts": (index_info["pubmedqa_chunks"] > 0) if index_info else None,
             "wall seconds": seconds, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    published = _published(subsets)
    notes = ("Accuracy uses the MIRAGE authors' answer reader (an unreadable output counts as option A), so it is "
             "comparable with the paper; 'strict' counts an output naming no option as wrong. 'answer extracted': "
             "outputs naming no option got a second turn asking for the letter alone (see eval/qa_runs.py). "
             "Published rows are "
             "Xiong et al. (2024) on the full sets with MedCorp and 32 snippets; ours run on the first n questions "
             "of a fixed shuffled order (n above) over this project's index."
             + {"medrag": "", "answer-first": " Prompt 'answer-first' asks for the letter before a one-sentence "
                "explanation (not the paper's chain-of-thought order).",
                "letter": " Prompt 'letter' asks for the letter alone and restricts the model's single output token "
                "to the option letters (a grammar for the local model, first-token log-probabilities for an "
                "OpenAI-compatible endpoint): the option the model ranks highest, with no reasoning (not the "
                "paper's chain-of-thought setting)."}.get(args.prompt, ""))
    md = {"Setup": _setup_table(setup), "Accuracy (%), ours": ours, "Strict accuracy (%), ours": strict,
          "Published MedRAG / CoT rows (%)": published, "Notes": notes}
    if leak:
        md["PubMedQA* own abstract retrieved"] = {k: v for k, v in leak.items()}
    if calibrated:
        md["Calibrated accuracy (%), ours (contextual calibration of the letter log-probabilities)"] = {
            f"ours: {name} calibrated": {**{mirage.SUBSET_LABELS[x]: c["accuracy"].get(x) for x in subsets},
                                         "changed choices": c["changed_choices"], "calibrated": c["calibrated"]}
            for name, c in calibrated.items()}
        md["Notes"] = md.pop("Notes") + (
            " Calibrated: each question's letter log-probabilities minus those the model gives a content-free "
            "question ('N/A') in the same prompt (Zhao et al., 2021); it removes the model's bias towards a letter, "
            "the same scoring for every setting; nothing is tuned.")
    return {"benchmark": "mirage", "setup": setup, "results": results, "accuracy_pct": ours,
            "calibrated": calibrated or {},
            "strict_accuracy_pct": strict, "published": published, "own_abstract_retrieved": leak,
            "predictions": {n: str(d) for n, d in run_dirs.items()}, "_markdown": md}


def mirage_chart(report: dict, path: Path) -> Path | None:
    if not report["accuracy_pct"]:
        return None
    rows = dict(report["accuracy_pct"])
    for key in ("GPT-3.5-16k-0613 CoT", "GPT-3.5-16k-0613 MedRAG", "GPT-4-32k-0613 CoT", "GPT-4-32k-0613 MedRAG"):
        if key in report["published"]:
            rows[key] = report["published"][key]
    metrics = [m for m in next(iter(rows.values())) if m != "n"]
    return bar_chart(rows, metrics, path, "MIRAGE accuracy: ours (sample) vs published (full sets)", "accuracy %")


# ---------------------------------------------------------------- PubMedQA

def _score_file(path: Path, items: list) -> dict | None:
    """PubMedQA scores of a prediction file on the given items (None when it answers none of them)."""
    done = {r["pmid"]: r for r in read_jsonl(path, repair=True)}
    answered = [it for it in items if it.pmid in done]
    if not answered:
        return None
    golds, preds = [it.label for it in answered], [done[it.pmid]["pred"] for it in answered]
    return pubmedqa.score(golds, preds) | {"done": len(answered), "total": len(items)}


def cmd_pubmedqa(args) -> int:
    from eval.qa_runs import pubmedqa_answer_fn
    if args.prompt == "letter":
        raise ValueError("--prompt letter is for MIRAGE's option letters; PubMedQA answers yes/no/maybe "
                         "(use medrag or answer-first, or `carecite eval mirage --subset pubmedqa --prompt letter`)")
    t0 = time.perf_counter()
    s = settings_from_args(args)
    items = pubmedqa.load_test_set(limit=args.limit)
    chosen = list(pubmedqa.CONTEXT_SETTINGS) if args.context == "all" else [args.context]
    generator = _qa_generator(s)
    out = _out_dir(args, s, "pubmedqa")
    run_dir = out / "predictions" / slug(generator.name) / args.prompt
    check_run_config(run_dir, {"benchmark": "pubmedqa", "generator": generator.name, "prompt": args.prompt,
                               "answer_extraction": not args.no_answer_extraction,
                               "max_tokens": s.generator.max_tokens, "temperature": s.generator.temperature})
    # One file per setting; the file name (e.g. retrieved_k8_hybrid) names the setting in the report.
    files = {c: run_dir / (f"retrieved_k{args.k}_{s.retrieval.mode}.jsonl" if c == "retrieved" else f"{c}.jsonl")
             for c in chosen}

    def progress() -> str:
        parts = [f"{c} {len(read_jsonl(p, repair=True)) if p.exists() else 0}/{len(items)}" for c, p in files.items()]
        return "pubmedqa: " + ", ".join(parts) + " done"

    extract, index_info = not args.no_answer_extraction, None
    searcher = _open_searcher(s) if "retrieved" in chosen else None
    try:
        if searcher is not None:
            index_info = _index_info(searcher.index)
        _say(args, progress() + " before this run")
        for c in chosen:
            if c == "retrieved":
                own = {it.question: f"pubmed:{it.pmid}" for it in items}
                fn = pubmedqa_answer_fn(generator, _retriever(s, searcher, args.k), args.prompt, own, extract)
            else:
                fn = pubmedqa_answer_fn(generator, None, args.prompt, extract=extract)
            try:
                pubmedqa.run_pubmedqa(items, fn, files[c], context_fn=pubmedqa.context_fn_for(c),
                                      progress=not args.no_progress)
            except KeyboardInterrupt:
                _say(args, f"interrupted; {progress()}. Rerun the same command to resume.")
                return INTERRUPTED
        _say(args, progress())
    finally:
        if searcher is not None:
            searcher.index.close()
    # Every setting in this folder (also those run by earlier commands), scored on the same questions.
    paths = {p.stem: p for p in sorted(run_dir.glob("*.jsonl"))}
    results = {name: r for name, p in paths.items() if (r := _score_file(p, items))}
    report = pubmedqa_report(results, paths, generator.name, s, args, index_info, len(items),
                             round(time.perf_counter() - t0, 1))
    sections = report.pop("_markdown")
    rows = {f"ours: {c}": {"accuracy %": v["accuracy %"], "macro-F1 %": v["macro-F1 %"]}
            for c, v in report["table"].items()}
    chart = bar_chart(rows, ["accuracy %", "macro-F1 %"], out / "pubmedqa.png",
                      f"PubMedQA test (n={len(items)})", "%")
    return _finish(args, report, out, sections, f"PubMedQA — {generator.name}", chart)


def pubmedqa_report(results: dict, files: dict, gen_name: str, s: Settings, args, index_info, n: int,
                    seconds: float) -> dict:
    table = {c: {"accuracy %": _pct(r["accuracy"]), "macro-F1 %": _pct(r["macro_f1"]), "unparsed": r["unparsed"],
                 "answer extracted": _extracted([files[c]]), "n": r["done"]} for c, r in results.items()}
    own = {}
    for c in results:
        if c.startswith("retrieved"):
            rows = read_jsonl(files[c])
            own[c] = f"{sum(bool(r['extra'].get('own_doc_retrieved')) for r in rows)}/{len(rows)}"
    setup = {"generator": gen_name, "prompt": args.prompt, "max_tokens": s.generator.max_tokens, "n": n,
             "settings": list(results), "retrieval mode": s.retrieval.mode,
             "index": str(s.index_path) if index_info else "not used in this run",
             "index holds PubMedQA abstracts": (index_info["pubmedqa_chunks"] > 0) if index_info else None,
             "own abstract retrieved": own or None,
             "wall seconds": seconds, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    reference = {f"{r['llm']} {r['setting']}": {"PubMedQA* accuracy %": r["pubmedqa"]}
                 for r in mirage.published_rows()}
    notes = ("Settings: none = the question alone; oracle = the question's own abstract without its conclusion "
             "(PubMedQA's reasoning-required setting); retrieved_k<k>_<mode> = k passages the index returns for the "
             "question, as a user would get them. When the index holds no PubMedQA abstracts (the default corpus "
             "does not), 'retrieved' cannot see the question's own abstract. Reference: MIRAGE's PubMedQA* is these "
             "500 test questions without the abstract, so its CoT rows compare with 'none' and its MedRAG rows with "
             "'retrieved' (Xiong et al. 2024, accuracy on all 500).")
    md = {"Setup": _setup_table(setup), "Results": table, "Per-label F1": {
        c: {lab: r["per_label"][lab]["f1"] for lab in pubmedqa.LABELS} for c, r in results.items()},
        "Reference: MIRAGE PubMedQA* (published)": reference, "Notes": notes}
    return {"benchmark": "pubmedqa", "setup": setup, "results": results, "table": table,
            "reference_mirage_pubmedqa_star": reference, "predictions": {c: str(p) for c, p in files.items()},
            "_markdown": md}


# ---------------------------------------------------------------- grounding

def cmd_grounding(args) -> int:
    from assistant.generators import get_generator
    from assistant.pipeline import Assistant
    from eval import grounding as G
    t0 = time.perf_counter()
    s = settings_from_args(args)
    questions = G.load_questions(args.questions, limit=args.limit)
    labels = G.load_labels(args.labels)
    out = _out_dir(args, s, "grounding")
    with Assistant(s, generator=get_generator(s)) as assistant:
        gen_name = assistant.generator.name
        run_dir = out / "predictions" / slug(gen_name)
        check_run_config(run_dir, {"benchmark": "grounding", "generator": gen_name,
                                   "max_tokens": s.generator.max_tokens, "index": str(s.index_path),
                                   "retrieval": s.retrieval.model_dump(), "answer": s.answer.model_dump()})
        path = run_dir / "answers.jsonl"

        def progress() -> str:
            n = len(read_jsonl(path, repair=True)) if path.exists() else 0
            return f"grounding: {n}/{len(questions)} questions done"

        _say(args, progress() + " before this run")
        try:
            result = G.run_grounding(questions, assistant, path, progress=not args.no_progress)
        except KeyboardInterrupt:
            _say(args, f"interrupted; {progress()}. Rerun the same command to resume.")
            return INTERRUPTED
        _say(args, progress())
        agreement = G.label_agreement(labels, assistant.verifier)
        index_chunks = assistant.searcher.index.count()
    setup = {"generator": gen_name, "questions": str(args.questions or G.QUESTIONS),
             "n answerable": sum(q.answerable for q in questions),
             "n unanswerable": sum(not q.answerable for q in questions), "index": str(s.index_path),
             "index chunks": index_chunks, "support threshold": s.answer.support_threshold,
             "hand labels": str(args.labels or G.LABELS), "wall seconds": round(time.perf_counter() - t0, 1),
             "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    figures = {name: {"citation recall": _pct(v["citation_recall"]),
                      "citation precision": _pct(v["citation_precision"]),
                      "sentences supported": _pct(v["sentence_support_rate"]),
                      "answers": v["answers"], "claim sentences": v["claim_sentences"], "citations": v["citations"]}
               for name, v in (("delivered answers", result["delivered"]), ("all drafts", result["all_drafts"]))}
    a = result["abstention"]
    abstention = {"abstention": {
        "correct %": _pct(a["correct"]), "answered when answerable %": _pct(a["answered_when_answerable"]),
        "abstained when unanswerable %": _pct(a["abstained_when_unanswerable"]),
        "answered citing gold %": _pct(a["answered_citing_gold"]), "n answerable": a["n_answerable"],
        "n unanswerable": a["n_unanswerable"], "skipped (gold not indexed)": a["skipped_gold_not_indexed"]}}
    verifier = {"verifier vs hand labels": {
        "agreement %": _pct(agreement["agreement"]), "kappa": agreement["kappa"],
        "verifier precision %": _pct(agreement["verifier_precision"]),
        "verifier recall %": _pct(agreement["verifier_recall"]), "n pairs": agreement["n"],
        "n supported": agreement["n_supported"]}}
    notes = ("Citation recall: share of claim sentences (lead-ins and 'not found' sentences excluded) that cite a "
             "passage. Citation precision: share of (sentence, cited passage) pairs where that passage alone supports "
             "the sentence, judged by the verifier (assistant/verify.py). 'Delivered answers' are those the "
             "assistant did not abstain on; 'all drafts' also counts drafts it withdrew after verification. "
             "The verifier's agreement with hand-labelled pairs bounds how far its precision judgments can be "
             "trusted.")
    md = {"Setup": _setup_table(setup), "Citations": figures, "Abstention": abstention,
          "Verifier agreement with hand labels": verifier, "By question kind": result["by_kind"], "Notes": notes}
    report = {"benchmark": "grounding", "setup": setup, "results": result, "label_agreement": agreement,
              "predictions": str(path)}
    return _finish(args, report, out, md, f"Grounding — {gen_name}", None)


# ---------------------------------------------------------------- parser hook

def _common(q: argparse.ArgumentParser, qa: bool) -> None:
    g = q.add_argument_group("generator")
    g.add_argument("--generator", choices=["local", "openai", "extractive"],
                   help="default: settings (generator.kind)" + ("; extractive cannot answer these benchmarks"
                                                                 if qa else ""))
    g.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 (vLLM, Azure AI "
                                      "Foundry, llama.cpp server)")
    g.add_argument("--model", help="model name at that endpoint")
    g.add_argument("--api-key", help="API key of that endpoint (or CARECITE_GENERATOR__API_KEY)")
    g.add_argument("--max-tokens", type=int, help="answer length limit (generator.max_tokens)")
    g.add_argument("--n-ctx", type=int, help="model context window: the local model's allocation and the "
                                             "passage budget for both kinds (generator.n_ctx)")
    if qa:
        g.add_argument("--prompt", choices=["medrag", "answer-first", "letter"], default="medrag",
                       help="medrag: the published prompt (reason, then answer); answer-first: the answer before "
                            "a one-sentence explanation, for small --max-tokens on a CPU; letter (MIRAGE): one "
                            "token restricted to the option letters, the model's own top-ranked option")
        g.add_argument("--no-answer-extraction", action="store_true",
                       help="do not ask again for the answer when an output names none (it then counts as wrong)")
        q.add_argument("--k", type=int, default=8, help="passages retrieved per question (default 8)")
        q.add_argument("--mode", choices=["hybrid", "dense", "sparse"], help="retrieval mode (default: settings)")
    q.add_argument("--limit", type=int, help="first N questions" + (" of each subset" if qa else
                                                                   " of each kind (answerable, unanswerable)"))
    q.add_argument("--out", help="report and predictions folder (default <data_dir>/reports/<command>)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.add_argument("--json", action="store_true", help="print the report as JSON")


def add_eval_commands(eval_subparsers) -> None:
    """Register `mirage`, `pubmedqa` and `grounding` on the `carecite eval` subparsers."""
    q = eval_subparsers.add_parser("mirage", help="MIRAGE accuracy per subset, with and without retrieval")
    q.add_argument("--subset", help=f"comma-separated, from {','.join(mirage.SUBSETS)} (default all)")
    ret = q.add_mutually_exclusive_group()
    ret.add_argument("--no-retrieval", action="store_true", help="chain-of-thought baseline without passages")
    ret.add_argument("--both", action="store_true", help="run with retrieval and without")
    _common(q, qa=True)
    q.set_defaults(fn=cmd_mirage)

    q = eval_subparsers.add_parser("pubmedqa", help="PubMedQA test set: accuracy and macro-F1 over yes/no/maybe")
    q.add_argument("--context", choices=[*pubmedqa.CONTEXT_SETTINGS, "all"], default="all",
                   help="none, oracle (the question's abstract), retrieved (from the index), or all (default)")
    _common(q, qa=True)
    q.set_defaults(fn=cmd_pubmedqa)

    q = eval_subparsers.add_parser("grounding", help="citation recall/precision and abstention of the assistant")
    q.add_argument("--questions", help="question set JSONL (default eval/data/grounding_questions.jsonl)")
    q.add_argument("--labels", help="hand-labelled pairs (default tests/fixtures/grounding_labels.jsonl)")
    _common(q, qa=False)
    q.set_defaults(fn=cmd_grounding)

    from eval import phi
    q = eval_subparsers.add_parser("phi", help="PHI guard recall on the synthetic set; false positives on guideline text")
    phi.add_arguments(q)
    q.set_defaults(fn=lambda a: phi.run(a, Settings().paths.data_mirror))

    from eval import liveqa
    q = eval_subparsers.add_parser("liveqa", help="real consumer questions (LiveQA): answer rate, verified "
                                                  "sentences, agreement with references, abstention")
    liveqa.add_arguments(q)
    q.set_defaults(fn=liveqa.cmd_liveqa)

    from eval import injection
    q = eval_subparsers.add_parser("injection", help="poisoned passages (prompt injection): answers that repeat "
                                                     "the instruction, false flags on clean text")
    injection.add_arguments(q)
    q.set_defaults(fn=injection.cmd_injection)
