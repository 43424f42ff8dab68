"""Readers turn files into Documents. `read_path` dispatches one file; `read_corpus` reads a named public corpus.

Every reader raises ReaderError("<path>: <reason>") for a bad file. Line-based files (JSONL, CSV, PubMedQA
records) yield all good records first and then raise BadLinesError (a ReaderError) listing the bad ones.
"""
from __future__ import annotations

import functools
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from indexes.types import DOC_TYPES
from ingest.documents import Document, ReaderError
from ingest.readers._csv import csv_header
from ingest.readers._io import DEFAULT_MAX_BYTES, BadLinesError, read_text
from ingest.readers.aci_bench import read_aci_file
from ingest.readers.beir import read_beir_file
from ingest.readers.fhir import KeyArg, read_fhir_file, read_fhir_files
from ingest.readers.generic import read_html, read_markdown, read_pdf, read_plaintext
from ingest.readers.medquad import read_medquad_file
from ingest.readers.mts_dialog import read_mts_file
from ingest.readers.openstax import read_openstax_file
from ingest.readers.pubmedqa import read_pubmedqa_file

__all__ = ["READER_VERSION", "read_path", "read_fhir_export", "reading_units", "read_corpus", "corpus_files", "CORPORA", "SUPPORTED_SUFFIXES", "DataMissingError",
           "BadLinesError", "ReaderError", "DEFAULT_MAX_BYTES"]

# Bump when readers change what they produce: sources whose files are unchanged are then read again
# (unchanged text is not re-embedded; changed metadata is rewritten in place).
READER_VERSION = 3  # 3: a doc type given for a known format is honoured

_GENERIC = {".md": read_markdown, ".markdown": read_markdown, ".html": read_html, ".htm": read_html,
            ".txt": read_plaintext, ".text": read_plaintext, ".pdf": read_pdf}
SUPPORTED_SUFFIXES = (".xml", ".jsonl", ".json", ".ndjson", ".csv", *_GENERIC)


class DataMissingError(FileNotFoundError):
    """A named corpus is not in the data mirror; the message says what to download and where to put it."""


def read_path(path: Path | str, *, doc_type: str | None = None, source: str | None = None,
              doc_id: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
              deid_key: KeyArg | None = None) -> Iterator[Document]:
    """Documents in one file, by suffix and, for .jsonl/.csv, by its columns.

    doc_type (default "guideline"), source (default: the parent folder's name) and doc_id apply to generic files
    (Markdown, HTML, text, PDF); the known corpus formats carry their own source and ids. A doc_type given for a
    known format replaces the format's own, except that case notes (ACI-Bench, MTS-Dialog) cannot be relabelled
    as anything but "case" (that would take them past the PHI guard): ReaderError. A `<split>_metadata.csv`
    yields nothing: it is read together with its `<split>.csv`.

    FHIR (doc_type "patient" for .json, always for .ndjson) is de-identified while it is read, under `deid_key`
    (the installation's secret, or a function returning it); patient records cannot be relabelled.
    """
    path = Path(path)
    if doc_type is not None and doc_type not in DOC_TYPES:
        raise ReaderError(f"{path}: unknown doc_type {doc_type!r}; choose from {', '.join(DOC_TYPES)}")
    suffix = path.suffix.lower()
    if doc_type == "patient" or suffix == ".ndjson":
        _check_patient(path, suffix, doc_type, deid_key)
        return read_fhir_file(path, max_bytes, key=deid_key, source=source)
    if suffix in _GENERIC:
        return _GENERIC[suffix](path, doc_type=doc_type or "guideline", source=source, doc_id=doc_id,
                                max_bytes=max_bytes)
    docs = _read_known_format(path, suffix, max_bytes)
    return docs if doc_type is None else _relabel(docs, doc_type, path)


def _check_patient(path: Path, suffix: str, doc_type: str | None, deid_key: KeyArg | None) -> None:
    if suffix not in (".json", ".ndjson") or doc_type not in (None, "patient"):
        raise ReaderError(f"{path}: doc type 'patient' is for FHIR R4 records (.json Bundle or resource, .ndjson) "
                          f"and FHIR NDJSON is always a patient record; got {suffix or '(none)'} as "
                          f"{doc_type or 'patient'}")
    if deid_key is None:
        raise ReaderError(f"{path}: patient records need the installation's de-identification key")


def reading_units(files: list[Path]) -> list[list[Path]]:
    """The files in the groups they are read in: one by one, except the NDJSON files of one folder, which are one
    FHIR bulk export (a file per resource type) and are read together (`read_fhir_export`)."""
    units: list[list[Path]] = []
    exports: dict[Path, list[Path]] = {}
    for f in sorted(files):
        if f.suffix.lower() != ".ndjson":
            units.append([f])
        elif f.parent not in exports:
            exports[f.parent] = [f]
            units.append(exports[f.parent])
        else:
            exports[f.parent].append(f)
    return units


def read_fhir_export(paths: list[Path], *, doc_type: str | None = None, source: str | None = None,
                     max_bytes: int = DEFAULT_MAX_BYTES, deid_key: KeyArg | None = None) -> Iterator[Document]:
    """Patient records of the NDJSON files of one FHIR bulk export, joined across files (Observation.ndjson's
    entries go to their Patient in Patient.ndjson), de-identified as `read_path` does."""
    for f in paths:
        _check_patient(f, f.suffix.lower(), doc_type, deid_key)
    return read_fhir_files(paths, max_bytes, key=deid_key, source=source)


def _relabel(docs: Iterator[Document], doc_type: str, path: Path) -> Iterator[Document]:
    for doc in docs:
        if doc.doc_type == "case" and doc_type != "case":
            raise ReaderError(f"{path}: holds case notes ({doc.source}); doc type {doc_type!r} would store them "
                              "without the PHI guard. Use doc type 'case' or leave it out.")
        doc.doc_type = doc_type
        yield doc


def _read_known_format(path: Path, suffix: str, max_bytes: int) -> Iterator[Document]:
    if suffix == ".xml":
        return read_medquad_file(path, max_bytes)
    if suffix == ".json":
        return read_pubmedqa_file(path, max_bytes)
    if suffix == ".jsonl":
        return _jsonl_reader(path, max_bytes)(path, max_bytes)
    if suffix == ".csv":
        if path.stem.endswith("_metadata"):
            return iter(())
        cols = set(csv_header(path, max_bytes))
        if {"encounter_id", "note"} <= cols:
            return read_aci_file(path, max_bytes)
        if {"section_header", "section_text"} <= cols:
            return read_mts_file(path, max_bytes)
        raise ReaderError(f"{path}: CSV columns {sorted(cols)} match no known format "
                          "(ACI-Bench: encounter_id,note; MTS-Dialog: section_header,section_text)")
    raise ReaderError(f"{path}: unsupported file type {suffix or '(none)'}; supported: {', '.join(SUPPORTED_SUFFIXES)}")


def _jsonl_reader(path: Path, max_bytes: int) -> Callable[[Path, int], Iterator[Document]]:
    first = next((ln for ln in read_text(path, max_bytes).splitlines() if ln.strip()), "")
    try:
        keys = set(json.loads(first))
    except (json.JSONDecodeError, TypeError):
        raise ReaderError(f"{path}: first line is not a JSON object, cannot tell the format") from None
    if "_id" in keys:
        return read_beir_file
    if {"book", "module"} <= keys:
        return read_openstax_file
    raise ReaderError(f"{path}: JSONL keys {sorted(keys)} match no known format "
                      "(BEIR corpus: _id,title,text; OpenStax: id,book,module,title,section,text)")


@dataclass(frozen=True)
class Corpus:
    folder: str  # under the data mirror
    pattern: str  # glob under the folder
    reader: Callable[[Path, int], Iterator[Document]]
    get: str  # what to download and how to lay it out


CORPORA: dict[str, Corpus] = {
    "medquad": Corpus("medquad", "*_QA*/*.xml", read_medquad_file,
                      "https://github.com/abachaa/MedQuAD subsets 1-9 (folders 1_CancerGov_QA ... 9_CDC_QA; "
                      "10-12 carry no answers)"),
    "openstax-nursing": Corpus("openstax-nursing", "sections.jsonl", read_openstax_file,
                               "sections.jsonl flattened from https://github.com/openstax/osbooks-nursing-external-bundle "
                               "(one JSON object per section: id, book, module, order, title, section, text)"),
    "aci-bench": Corpus("aci-bench", "challenge_data/*.csv", read_aci_file,
                        "the data/challenge_data folder of https://github.com/wyim/aci-bench (CSV splits with "
                        "their *_metadata.csv)"),
    "mts-dialog": Corpus("mts-dialog", "Main-Dataset/*.csv", read_mts_file,
                         "the Main-Dataset folder of https://github.com/abachaa/MTS-Dialog"),
    "pubmedqa": Corpus("pubmedqa", "ori_pqal.json", read_pubmedqa_file,
                       "data/ori_pqal.json of https://github.com/pubmedqa/pubmedqa"),
    "fhir-synthea": Corpus("fhir-synthea/original", "*_*.json", read_fhir_file,
                            "the original/ patient bundles of sample_covid_fhir_juvenile_patients in "
                            "https://github.com/NimbusInformatics/bdcat-fhir-azure-prototype (one FHIR R4 Bundle per "
                            "patient, named <Given>_<Family>_<id>.json)"),
    "clinical-dev": Corpus("retrieval-dev/clinical-dev", "corpus.jsonl", read_beir_file,
                           "the BEIR-format clinical-dev set (corpus.jsonl, queries.jsonl, qrels.tsv) built from "
                           "the corpora above, as described in the data mirror's README.md"),
}


def corpus_files(name: str, data_mirror: Path | str) -> list[Path]:
    """The files `read_corpus` reads, in order (metadata CSVs excluded); DataMissingError if there are none."""
    if name not in CORPORA:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    c = CORPORA[name]
    folder = Path(data_mirror) / c.folder
    files = sorted(p for p in folder.glob(c.pattern) if not p.stem.endswith("_metadata")) if folder.is_dir() else []
    if not files:
        where = "is missing" if not folder.is_dir() else f"has no files matching {c.pattern}"
        raise DataMissingError(
            f"corpus {name!r} not found: {folder} {where}. Download {c.get} and put it in {folder} "
            f"(matching {c.pattern}). The data mirror is {Path(data_mirror)}; set CARECITE_PATHS__DATA_MIRROR "
            "to use another folder.")
    return files


def read_corpus(name: str, data_mirror: Path | str, *, limit: int | None = None,
                max_bytes: int = DEFAULT_MAX_BYTES,
                on_error: Callable[[ReaderError], None] | None = None,
                deid_key: KeyArg | None = None,
                on_file: Callable[[Path], None] | None = None) -> Iterator[Document]:
    """Documents of a named corpus (see CORPORA), at most `limit` of them.

    Without `on_error` the first bad file raises; with it, each ReaderError is handed over and reading goes on.
    Patient corpora (FHIR) need `deid_key`. `on_file(path)` is called as each file begins.
    """
    reader = CORPORA[name].reader if name in CORPORA else None
    if reader is read_fhir_file:
        if deid_key is None:
            raise ReaderError(f"corpus {name!r} holds patient records: reading it needs the de-identification key")
        reader = functools.partial(read_fhir_file, key=deid_key, source="Synthea (FHIR)")
    files = corpus_files(name, data_mirror)

    def docs() -> Iterator[Document]:
        for f in files:
            if on_file is not None:
                on_file(f)
            try:
                yield from reader(f, max_bytes)
            except ReaderError as e:
                if on_error is None:
                    raise
                on_error(e)

    return itertools.islice(docs(), limit)
