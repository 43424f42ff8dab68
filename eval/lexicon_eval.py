"""How well the query lexicon (carecite/lexicon.py) reads real questions (issue 14, section 1).

    python -m eval.lexicon_eval [--index DATA_DIR] [--out reports/lexicon.json]

1. False corrections on clean questions: 500 MedQuAD questions (seeded sample), read by a lexicon of the whole
   corpus and by one built without those questions' documents (so the questions name things the index lacks).
2. Corrections on the 446 real LiveQA messages (subject + message, original wording): every one listed.
3. Brand names in LiveQA: which the brand -> generic map resolves, on the drug questions (a sub-question of a
   drug type, or a drug as focus) and on all messages. The brand mentions are labelled by hand (BRAND_MENTIONS):
   every brand or trade name found by reading the messages' unknown and capitalised words.

The lexicon is built from the corpus documents as the readers produce them ("<title> — <section>\\n<text>", the
chunks' text without the chunk overlap), or with --index from a real index by scrolling its chunks.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from carecite.lexicon import Lexicon
from carecite.settings import Settings

CORPORA = ("medquad", "openstax-nursing", "aci-bench")
DRUG_TYPES = {"side effects", "usage", "indication", "contraindication", "tapering", "storage and disposal",
              "interaction", "dosage", "ingredient", "action", "overdose"}
# Foci that are a drug or vaccine (labelled by hand from the 400 distinct foci of liveqa-train).
DRUG_FOCI = {"advair", "allopurinol", "azithromycin 250mg tabs", "bupropion", "ciprofloxacin ophthalmic", "citalopram",
             "duloxetine", "guanfacine", "letrozole", "lidocaine patch", "linisopril", "melotonin", "mmr vaccine",
             "plaquenil", "plavix", "pregabalin", "pyridoxine", "risperdoine", "simvastatin", "tetracycline",
             "tramadol", "trimethoprim/ sulfamethozle", "tylenol", "using morphine", "wellbutrin", "tetanus vaccine"}
# Brand or trade names written in liveqa-train messages (labelled by hand; misspellings as written).
BRAND_MENTIONS = {"Advair", "Spiriva", "Wellbutrin", "Plavix", "Plaquenil", "plaquenil", "Tylenol", "topamax",
                  "Topamax", "Ritalin", "Solumedrol", "Zostavax", "botox", "taxol", "augmentin", "nexium", "Ocella",
                  "Osella", "Bendectin", "Folitrax", "Omnacortil", "Depin", "Cyra", "HCQS", "clartin", "Antoxid",
                  "antistax", "Biotene"}


def corpus_texts(mirror: Path, exclude_docs: set[str] = frozenset()) -> tuple[list[str], list[tuple[str, str]]]:
    """Section texts of the default corpus, and (doc_id, question) of every MedQuAD QA pair."""
    from ingest.readers import read_corpus
    texts, questions = [], []
    for name in CORPORA:
        for doc in read_corpus(name, mirror, on_error=lambda e: None):
            if name == "medquad":
                questions += [(doc.doc_id, s.title) for s in doc.sections if s.title]
            if doc.doc_id in exclude_docs:
                continue
            texts += [f"{doc.title} — {s.title}\n{s.text}" for s in doc.sections]
    return texts, questions


def index_texts(data_dir: Path) -> list[str]:
    from ingest.lexicon_build import index_chunk_texts
    s = Settings()
    s.paths.data_dir = data_dir
    from carecite.runtime import open_index
    with open_index(s) as index:
        return list(index_chunk_texts(index))


def clean_questions(lex: Lexicon, questions: list[tuple[str, str]]) -> dict:
    fixes = [(q, [c.__dict__ for c in lex.read(q).corrections]) for _, q in questions]
    wrong = [(q, c) for q, c in fixes if c]
    return {"questions": len(questions), "with_corrections": len(wrong),
            "corrections": sum(len(c) for _, c in wrong), "examples": wrong[:40]}


def liveqa(lex: Lexicon, mirror: Path) -> dict:
    from eval.liveqa import load_liveqa
    qs = load_liveqa(mirror)
    rows, by_kind = [], {}
    for q in qs:
        r = lex.read(q.question)
        for c in r.corrections:
            by_kind[c.kind] = by_kind.get(c.kind, 0) + 1
            rows.append({"qid": q.qid, "original": c.original, "replacement": c.replacement, "kind": c.kind})
    drug_qs = [q for q in qs if any(s.qtype in DRUG_TYPES or any(f.lower() in DRUG_FOCI for f in s.focus)
                                    for s in q.sub_questions)]

    def coverage(questions) -> dict:
        found, resolved = [], []
        for q in questions:
            r = lex.read(q.question)
            read_as = {c.original: c.replacement for c in r.corrections}
            for m in sorted({t for t in BRAND_MENTIONS if _has_word(q.question, t)}):
                found.append(m)
                generic = [c.replacement for c in r.corrections if c.kind == "brand"
                           and (c.original == m or c.original == read_as.get(m))]
                if generic:
                    resolved.append(f"{m} -> {', '.join(generic)}")
        return {"questions": len(questions), "brand_mentions": len(found), "resolved": len(resolved),
                "resolved_list": resolved, "unresolved": sorted(set(found) - {x.split(' ->')[0] for x in resolved})}

    return {"messages": len(qs), "corrections": len(rows), "by_kind": by_kind, "list": rows,
            "drug_questions": coverage(drug_qs), "all_questions": coverage(qs)}


def _has_word(text: str, word: str) -> bool:
    import re
    return re.search(rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])", text) is not None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", help="build from the index under this data dir instead of the corpus files")
    p.add_argument("--n-clean", type=int, default=500)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--out", help="write the full results as JSON here")
    args = p.parse_args(argv)
    mirror = Settings().paths.data_mirror

    texts, questions = corpus_texts(mirror)
    if args.index:
        texts = index_texts(Path(args.index))
    t0 = time.perf_counter()
    lex = Lexicon.build(texts)
    build_s = time.perf_counter() - t0
    sample = random.Random(args.seed).sample(questions, args.n_clean)
    held_docs = {d for d, _ in sample}
    held_texts, _ = corpus_texts(mirror, exclude_docs=held_docs)
    held_lex = Lexicon.build(held_texts)
    out = {"lexicon": {**lex.stats(), "build_seconds": round(build_s, 1)},
           "clean_medquad": clean_questions(lex, sample),
           "clean_medquad_docs_not_indexed": {**clean_questions(held_lex, sample),
                                              "texts_indexed": len(held_texts)},
           "liveqa": liveqa(lex, mirror)}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1, ensure_ascii=False))
    lq = out["liveqa"]
    print(f"lexicon: {out['lexicon']}")
    for key in ("clean_medquad", "clean_medquad_docs_not_indexed"):
        c = out[key]
        print(f"{key}: {c['with_corrections']} of {c['questions']} clean questions got a correction "
              f"({c['corrections']} corrections)")
        for q, cs in c["examples"]:
            print(f"    {q!r}: " + "; ".join(f"{x['original']}->{x['replacement']} ({x['kind']})" for x in cs))
    print(f"liveqa: {lq['corrections']} corrections in {lq['messages']} messages, by kind {lq['by_kind']}")
    for r in lq["list"]:
        print(f"    {r['qid']}: {r['original']} -> {r['replacement']} ({r['kind']})")
    for key in ("drug_questions", "all_questions"):
        c = lq[key]
        print(f"brand names, liveqa {key}: {c['resolved']} of {c['brand_mentions']} mentions resolved "
              f"in {c['questions']} questions; unresolved: {', '.join(c['unresolved']) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
