"""Incremental ingestion: sources -> documents -> PHI guard -> chunks -> embeddings + BM25 -> index.

Unchanged sources are skipped by fingerprint (no parsing, no embedding); changed documents replace their
old chunks; with purge=True documents whose files disappeared are removed. A bad file is reported and
skipped; nothing already stored is touched by it.

Ids of user files are "<source>:<folder>/<path in it>" (the folder given to ingest, then the path below it; a
single file is "<source>:<file name>"), so equal file names in different folders stay distinct. An id already
stored from another ingest unit (folder, file or corpus) is an error for that file, never a silent overwrite.
A stored document of the same file under another id (an older id scheme, or another --source) is replaced by
the new one once that is written. A document cut short by an interruption is resumed: chunks already stored
with the same text are not embedded again.
"""
from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from carecite.models import check_index_embedder, embedder_record
from indexes.base import VectorIndex
from indexes.bm25 import BM25Encoder, sparse_text
from indexes.types import Chunk, Filters
from ingest.chunker import chunk_document
from ingest.documents import OPTIONAL_KEYS, Document, ReaderError, specialties
from ingest.injection import flag_injections
from ingest.phi import guard
from ingest.readers import (CORPORA, READER_VERSION, SUPPORTED_SUFFIXES, corpus_files, read_corpus, read_fhir_export,
                            read_path, reading_units)
from ingest.readers.fhir import read_fhir_file
from ingest.readers.generic import default_source

DEFAULT_CORPUS = ("medquad", "openstax-nursing", "aci-bench")
INDEX_VERSION = 1
ID_SCHEME = "ids-with-paths"  # in the fingerprint: indexes with file-name ids are read once more and migrated

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class SourceSpec:
    """A named corpus in the data mirror, or a file/folder of the institution's own documents."""
    name: str  # corpus name, or the path as given
    path: Path | None = None
    doc_type: str | None = None
    source: str | None = None
    specialty: list[str] | None = None  # for the institution's own files; named corpora carry their own
    limit: int | None = None
    replace: bool = False  # an id stored from another ingest unit is replaced (reported), not an error

    def __post_init__(self):
        self.specialty = specialties(self.specialty)

    @property
    def corpus_key(self) -> str:
        if self.path is not None and self.doc_type == "patient" and not self.path.is_dir():
            # a patient file is often named after the patient: the stored key (in every chunk) is a digest
            return "patient-file:" + hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:16]
        return self.name if self.path is None else str(self.path.resolve())


@dataclass
class IngestReport:
    sources: list[str] = field(default_factory=list)
    skipped_sources: list[str] = field(default_factory=list)  # unchanged fingerprint
    docs_new: int = 0
    docs_changed: int = 0
    docs_unchanged: int = 0
    docs_removed: int = 0
    docs_relabelled: int = 0  # text unchanged, metadata rewritten in place
    docs_resumed: int = 0  # of the changed: an interrupted ingest had stored part of their chunks already
    chunks_resumed: int = 0  # chunks of those that were already stored (not embedded again)
    docs_not_found: int = 0  # stored documents of these folders not read this time (file gone or failed); kept
    docs_rekeyed: int = 0  # patient records stored under a previous de-identification key, replaced by this read
    replaced: list[tuple[str, str]] = field(default_factory=list)  # (old id, new id) of one file, old one removed
    taken_over: list[tuple[str, str]] = field(default_factory=list)  # (id, ingest unit it was stored from): replace
    chunks_written: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, message)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)  # (path, why) not read on purpose
    repeats: int = 0  # documents read again verbatim under the same id (kept once)
    phi: list[dict] = field(default_factory=list)  # per-document PHI reports (rejected or masked)
    injections: list[dict] = field(default_factory=list)  # documents with instruction-like text (ingest/injection.py)
    seconds: float = 0.0
    embed_seconds: float = 0.0
    # per file read: {"file", "docs", "chunks" (to embed), "read_s" (parse, de-identify, chunk), "embed_s" (its share
    # of embedding by chunks)}; a patient file is named by its records' pseudonyms, never by its (patient's) name
    files: list[dict] = field(default_factory=list)

    @property
    def chunks_per_s(self) -> float:
        return self.chunks_written / self.embed_seconds if self.embed_seconds else 0.0

    def file_lines(self, most: int = 12) -> list[str]:
        """Time per file read (all of them up to `most`, else the slowest and the median)."""
        if not self.files:
            return []
        total = lambda f: f["read_s"] + f.get("embed_s", 0.0)  # noqa: E731
        rows = sorted(self.files, key=total, reverse=True)
        out = ["time per file (reading, de-identification and chunking + its share of embedding, by chunks):"]
        if len(rows) > most:
            out[0] += (f" {len(rows)} files, median {sorted(map(total, rows))[len(rows) // 2]:.2f} s; the "
                       f"{most} slowest:")
        out += [f"  {f['file']}: {total(f):.2f} s ({f['read_s']:.2f} s + {f.get('embed_s', 0.0):.2f} s), "
                f"{f['docs']} doc(s), {f['chunks']} chunk(s)" for f in (rows if len(rows) <= most else rows[:most])]
        return out

    def summary(self) -> str:
        lines = [f"sources: {', '.join(self.sources) or '-'}"
                 + (f" (unchanged, skipped: {', '.join(self.skipped_sources)})" if self.skipped_sources else ""),
                 f"documents: {self.docs_new} new, {self.docs_changed} changed, {self.docs_unchanged} unchanged, "
                 f"{self.docs_removed} removed" + (f", {self.docs_relabelled} relabelled (metadata only)"
                                                  if self.docs_relabelled else ""),
                 f"chunks written: {self.chunks_written} ({self.chunks_per_s:.1f} chunks/s embedding+indexing); "
                 f"total {self.seconds:.1f} s"]
        lines += self.file_lines()
        if self.repeats:
            lines.append(f"{self.repeats} verbatim repeat(s) of a document under the same id: kept once")
        if self.docs_resumed:
            lines.append(f"resumed {self.docs_resumed} document(s) an interrupted ingest had partly stored "
                         f"({self.chunks_resumed} chunks kept, not embedded again)")
        if self.replaced:
            lines.append(f"replaced {len(self.replaced)} stored document(s) of the same file under a new id "
                         "(older id scheme or another --source):")
            lines += [f"  {old} -> {new}" for old, new in self.replaced[:10]]
            if len(self.replaced) > 10:
                lines.append(f"  ... {len(self.replaced) - 10} more (see --json)")
        if self.taken_over:
            lines.append(f"replaced {len(self.taken_over)} document(s) stored from another folder or file (replace):")
            lines += [f"  {i} (was from {unit})" for i, unit in self.taken_over[:10]]
            if len(self.taken_over) > 10:
                lines.append(f"  ... {len(self.taken_over) - 10} more (see --json)")
        if self.docs_rekeyed:
            lines.append(f"{self.docs_rekeyed} patient record(s) pseudonymised under the previous de-identification "
                         "key (deid.key) removed: the records read now under the new key replace them")
        if self.docs_not_found:
            lines.append(f"{self.docs_not_found} stored document(s) of these folders were not read this time (file "
                         "removed or failed); they stay in the index (--purge removes them)")
        if self.skipped_files:
            lines.append(f"{len(self.skipped_files)} path(s) not read:")
            lines += [f"  {f}: {m}" for f, m in self.skipped_files[:30]]
            if len(self.skipped_files) > 30:
                lines.append(f"  ... {len(self.skipped_files) - 30} more (see --json)")
        rejected = [p for p in self.phi if p.get("action") == "rejected"]
        masked = [p for p in self.phi if p.get("action") == "masked"]
        if rejected or masked:
            lines.append(f"PHI guard: {len(rejected)} case documents rejected, {len(masked)} masked")
            kept = sum(bool(p.get("stored_version_kept")) for p in rejected)
            if kept:
                lines.append(f"  {kept} of the rejected have a version stored by an earlier ingest (masked or clean "
                             "then); it stays in the index (ingest with --phi-policy mask to keep it up to date).")
            for p in rejected[:20]:
                lines.append(f"  rejected {p.get('doc_id')}: {p.get('counts')} {p.get('path') or ''}")
            if len(rejected) > 20:
                lines.append(f"  ... {len(rejected) - 20} more rejected (see --json)")
        if self.injections:
            lines.append(f"instruction-like text (prompt injection?) in {len(self.injections)} document(s); it is "
                         "stored, but never shown or cited as an answer:")
            for d in self.injections[:20]:
                lines.append(f"  {d['doc_id']}: {d['sentences']} sentence(s), {d['chunks']} chunk(s) flagged "
                             f"({'; '.join(d['reasons'])}): {d['text'][0][:120]!r} {d.get('path') or ''}")
            if len(self.injections) > 20:
                lines.append(f"  ... {len(self.injections) - 20} more (see --json)")
        if self.errors:
            lines.append(f"{len(self.errors)} file(s) failed, the rest continued:")
            lines += [f"  {f}: {m}" for f, m in self.errors]
        return "\n".join(lines)


def fingerprint(paths: Iterable[Path], extra: str = "") -> str:
    """sha256 over file names and bytes: equal fingerprints mean nothing to do. A file that cannot be read counts
    by its error (reading it reports it), so it becomes part of the fingerprint once it can be read."""
    h = hashlib.sha256(extra.encode())
    for p in sorted(paths):
        h.update(str(p).encode("utf-8", "surrogateescape"))
        try:
            if not stat.S_ISREG(os.stat(p).st_mode):  # never open a FIFO or device: that can block for ever
                raise OSError(errno.EINVAL, "not a regular file")
            with open(p, "rb") as f:
                while block := f.read(1 << 22):
                    h.update(block)
        except OSError as e:
            h.update(f"\0unreadable:{e.errno}".encode())
    return h.hexdigest()


def shown(path: Path | str) -> str:
    """A path as text that can always be printed and stored (bytes that are not UTF-8 as \\xNN escapes)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def walk(root: Path) -> tuple[list[Path], list[tuple[str, str]], list[tuple[str, str]]]:
    """(files to read, [(path, why not read)], [(path, error)]) under a folder given to ingest (or that one file).

    Symlinked files are read; symlinked folders are not followed (a link can point anywhere, loops included),
    and neither are symlink loops, broken links, FIFOs, sockets, devices or files of unsupported types: each is
    reported as not read. Hidden files and folders (".name") are left out. A folder that cannot be listed and a
    path that is not valid UTF-8 are errors."""
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    errors: list[tuple[str, str]] = []
    if not root.is_dir():
        return [root], skipped, errors  # one file given: its reader says what is wrong with it
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            errors.append((shown(folder), f"folder cannot be listed ({e.strerror or type(e).__name__})"))
            continue
        for entry in entries:
            p = Path(entry.path)
            if entry.name.startswith("."):
                continue
            try:
                st = p.stat()  # follows links
            except OSError as e:
                why = ("a symlink loop" if e.errno == errno.ELOOP else "a broken symlink" if p.is_symlink()
                       else f"unreadable ({e.strerror})")
                skipped.append((shown(p), f"{why}; not read"))
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.is_symlink():
                    skipped.append((shown(p), f"a symlinked folder (-> {shown(os.readlink(p))}); not followed, "
                                              "ingest its target itself"))
                else:
                    stack.append(p)
                continue
            kind = next((name for test, name in _KINDS if test(st.st_mode)), None)
            if kind:
                skipped.append((shown(p), f"{kind}, not a regular file; not read"))
            elif p.suffix.lower() not in SUPPORTED_SUFFIXES:
                skipped.append((shown(p), f"unsupported file type {p.suffix or '(none)'}; not read"))
            elif shown(p) != str(p):
                errors.append((shown(p), "the path is not valid UTF-8; rename the file or folder"))
            else:
                files.append(p)
    return sorted(files), sorted(skipped), errors


def _corpus_files(spec: SourceSpec, mirror: Path) -> tuple[list[Path], list[tuple[str, str]], list[tuple[str, str]]]:
    """(files, not read, errors) of a source; see walk."""
    if spec.path is not None:
        return walk(spec.path)
    corpus_files(spec.name, mirror)  # DataMissingError says what to download
    root = mirror / CORPORA[spec.name].folder
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")], [], []


def _canon(path: str | Path | None) -> str:
    try:
        return str(Path(path).resolve()) if path else ""
    except (OSError, RuntimeError, ValueError):
        return str(path)


class _FileTimes:
    """Times each file of a source as it is read: from its start to the next file's, which includes the chunking of
    its documents (reading is lazy). Appends IngestReport.files rows."""

    def __init__(self, rows: list[dict]):
        self.rows, self.row, self.records, self.t0 = rows, None, [], 0.0

    def start(self, path: Path) -> None:
        self.stop()
        self.row = {"file": shown(path), "docs": 0, "chunks": 0, "read_s": 0.0}
        self.records, self.t0 = [], time.perf_counter()

    def doc(self, doc: Document) -> None:
        if self.row is not None:
            self.row["docs"] += 1
            if doc.doc_type == "patient":
                self.records.append(doc.doc_id)

    def chunks(self, n: int) -> None:
        if self.row is not None:
            self.row["chunks"] += n

    def stop(self) -> None:
        if self.row is not None:
            self.row["read_s"] = round(time.perf_counter() - self.t0, 3)
            if self.records:  # a patient file may be named after the patient: named by the pseudonyms instead
                self.row["file"] = ", ".join(self.records)
            self.rows.append(self.row)
            self.row = None


def _holds_patients(spec: SourceSpec, files: list[Path]) -> bool:
    """Whether a source is read as patient records (de-identified under the installation's key)."""
    if spec.path is None:
        return CORPORA[spec.name].reader is read_fhir_file
    return spec.doc_type == "patient" or any(f.suffix.lower() == ".ndjson" for f in files)


def path_doc_id(f: Path, root: Path, source: str | None) -> str:
    """The id of a user file: "<source>:<folder given>/<path below it>", or "<source>:<file name>" for one file."""
    if root.is_dir():
        name = f"{root.resolve().name or 'files'}/{f.relative_to(root).as_posix()}"
    else:
        name = f.name
    return f"{default_source(f, source)}:{name}"


def _read(spec: SourceSpec, mirror: Path, files: list[Path], max_bytes: int,
          errors: list[tuple[str, str]], path_ids: dict[str, str], deid_key=None,
          on_file: Callable[[Path], None] = lambda f: None) -> Iterable[Document]:
    """Documents of a source; path_ids gets {doc id: file} for each document whose id comes from its file path;
    on_file(path) is called as each file (or bulk-export folder) begins."""
    if spec.path is None:
        yield from read_corpus(spec.name, mirror, limit=spec.limit, max_bytes=max_bytes,
                               on_error=lambda e: errors.append((spec.name, str(e))), deid_key=deid_key,
                               on_file=on_file)
        return
    for unit in reading_units(files):
        f = unit[0] if len(unit) == 1 else unit[0].parent  # the NDJSON files of one folder: a FHIR bulk export
        on_file(f)
        try:
            if len(unit) == 1:
                doc_id = path_doc_id(f, spec.path, spec.source)
                docs = read_path(f, doc_type=spec.doc_type, source=spec.source, doc_id=doc_id, max_bytes=max_bytes,
                                 deid_key=deid_key)
            else:
                doc_id, docs = None, read_fhir_export(unit, doc_type=spec.doc_type, source=spec.source,
                                                      max_bytes=max_bytes, deid_key=deid_key)
            for doc in docs:
                doc.specialty = spec.specialty or doc.specialty
                if doc.doc_id == doc_id:  # Markdown, HTML, text, PDF; other formats carry their own ids
                    path_ids[doc_id] = _canon(f)
                yield doc
        except ReaderError as e:
            errors.append((str(f), str(e)))
        except Exception as e:  # noqa: BLE001 - an unexpected parser failure is still one bad file
            errors.append((str(f), f"{type(e).__name__}: {e}"))


class Ingestor:
    """Writes sources into an index with an embedder (anything with .embed(list[str]) and .count_tokens)."""

    def __init__(self, index: VectorIndex, embedder, *, max_tokens: int = 256, overlap_tokens: int = 32,
                 phi_policy: str = "reject", data_mirror: Path | None = None, max_file_mb: float = 50.0,
                 batch_size: int = 256, sort_window: int = 2048, show_progress: bool = True,
                 on_progress: Progress | None = None):
        self.index, self.embedder = index, embedder
        # The embedder's window includes [CLS] and [SEP]: keep chunks inside it.
        window = getattr(embedder, "max_seq_length", max_tokens + 2) - 2
        self.max_tokens, self.overlap_tokens = min(max_tokens, window), overlap_tokens
        self.phi_policy = phi_policy
        self.mirror = Path(data_mirror) if data_mirror else None
        self.max_bytes = int(max_file_mb * 1024 * 1024)
        self.batch_size, self.show_progress, self.on_progress = batch_size, show_progress, on_progress
        # Chunks are embedded in windows of this many, sorted by length, so that a batch pads to about its own
        # texts' length (README, "The embedder"); 1 keeps the reading order.
        self.sort_window = max(1, sort_window)

    @classmethod
    def from_settings(cls, index: VectorIndex, embedder, settings, **overrides) -> "Ingestor":
        """An Ingestor with the chunking, PHI and data-mirror settings; keyword overrides win."""
        s = settings
        ing = cls(index, embedder, **{"max_tokens": s.chunking.max_tokens, "overlap_tokens": s.chunking.overlap_tokens,
                                      "phi_policy": s.phi.policy, "data_mirror": s.paths.data_mirror,
                                      "max_file_mb": s.chunking.max_file_mb, **overrides})
        ing.key_dir = s.paths.data_dir  # where the de-identification key of patient records lives
        return ing

    key_dir: Path | None = None

    def _deid_key(self) -> bytes:
        """The installation's de-identification secret (<data_dir>/deid.key); without a data dir, this index's."""
        from ingest.deid import installation_key
        return installation_key(self.key_dir) if self.key_dir else self._phi_key()

    def _deid_digest(self) -> str:
        """Names the de-identification key in fingerprints and index metadata (a digest, never the key)."""
        return hashlib.sha256(b"carecite deid.key:" + self._deid_key()).hexdigest()[:16]

    def run(self, specs: list[SourceSpec], purge: bool = False) -> IngestReport:
        t0 = time.perf_counter()
        report = IngestReport(sources=[s.name for s in specs])
        meta = self.index.get_meta()
        # Never mix vectors of two embedders in one index: checked before anything is read or written (an embedder
        # that names no backend, such as a test double, is neither checked nor recorded).
        if getattr(self.embedder, "backend", None):
            check_index_embedder(meta, self.index.count(), self.embedder.backend,
                                 getattr(self.embedder, "name", None))
        fingerprints = dict(meta.get("fingerprints", {}))
        known_errors = dict(meta.get("source_errors", {}))  # bad files of unchanged sources, re-reported on skip
        deid_keys = dict(meta.get("deid_keys", {}))  # patient sources: the key their stored records were made with
        pending: list[tuple[Document, list[Chunk], bool]] = []  # (doc, chunks, replaces a stored version)
        owners: dict[str, str] = {}  # doc id -> ingest unit, for the documents this run keeps
        superseded: list[str] = []  # old ids of files now stored under a new id: removed once those are written
        empty = self.index.count() == 0

        for spec in specs:
            if spec.path is not None and not spec.path.exists():
                report.errors.append((str(spec.path), "no such file or folder"))
                continue
            if spec.path is None and spec.name not in CORPORA:
                report.errors.append((spec.name, f"unknown corpus; known: {', '.join(CORPORA)}"))
                continue
            files, not_read, walk_errors = _corpus_files(spec, self.mirror)
            report.skipped_files += not_read
            report.errors += walk_errors
            # Patient records are pseudonymised under deid.key: another key makes other records of the same files.
            deid = self._deid_digest() if files and _holds_patients(spec, files) else ""
            fp = fingerprint(files, extra=f"{spec.doc_type}|{spec.source}|{spec.limit}|{self.phi_policy}|"
                                          f"{self.max_tokens}|{self.overlap_tokens}|{self.max_bytes}|{spec.specialty}|"
                                          f"{READER_VERSION}|{ID_SCHEME}" + (f"|deid:{deid}" if deid else "")
                             ) if files else ""
            if fp and fingerprints.get(spec.corpus_key) == fp and not purge:
                report.skipped_sources.append(spec.name)
                report.errors += [(f, f"{m} (unchanged since the last ingest)") for f, m in known_errors.get(spec.corpus_key, [])]
                continue
            stored = self.index.stored_docs(Filters(corpus=[spec.corpus_key]))
            seen: dict[str, str] = {}  # ids as read -> content hash
            current: dict[str, str] = {}  # ids as stored (after the PHI guard) -> file
            path_ids: dict[str, str] = {}
            fresh: list[tuple[Document, list[Chunk], bool]] = []
            n_errors_before = len(report.errors)
            timer = _FileTimes(report.files)
            docs = _read(spec, self.mirror, files, self.max_bytes, report.errors, path_ids, self._deid_key,
                         on_file=timer.start)
            for doc in tqdm(docs, desc=f"reading {spec.name}", unit="doc", disable=not self.show_progress):
                timer.doc(doc)
                if doc.doc_id in seen:
                    if seen[doc.doc_id] == doc.content_hash:  # e.g. a corpus.jsonl row repeated verbatim
                        report.repeats += 1
                    else:
                        report.errors.append((doc.path or spec.name, f"duplicate document id {doc.doc_id} with "
                                                                     "other content; kept the first"))
                    continue
                seen[doc.doc_id] = doc.content_hash
                from_path = path_ids.get(doc.doc_id)
                if doc.doc_type == "case":
                    doc_id = doc.doc_id
                    doc, phi = self._guard(doc)
                    if phi is not None:
                        if doc is None and doc_id in stored:  # e.g. masked by an earlier run under policy "mask"
                            phi["stored_version_kept"] = True
                        report.phi.append(phi)
                    if doc is None:
                        continue
                doc.extra["corpus"] = spec.corpus_key
                current[doc.doc_id] = from_path or ""
                old = stored.get(doc.doc_id)
                if old and old.content_hash == doc.content_hash:
                    report.docs_unchanged += 1
                    if old.meta_hash != doc.meta_hash:  # same text, new metadata: no re-embedding
                        labels = doc.metadata()  # (not `meta`: that is the index's, which _write needs)
                        self.index.set_doc_metadata(doc.doc_id, labels,
                                                    unset=[k for k in OPTIONAL_KEYS if k not in labels])
                        report.docs_relabelled += 1
                    continue
                changed = doc.doc_id in stored
                report.docs_changed += changed
                report.docs_new += not changed
                chunks = chunk_document(doc, self.embedder.count_tokens, self.max_tokens, self.overlap_tokens)
                for c in chunks:  # lets a later run see whether an interrupted run stored the whole document
                    c.metadata["doc_chunks"] = len(chunks)
                todo = self._not_stored(doc, chunks, old, report)
                timer.chunks(len(todo))
                flagged = flag_injections(doc, chunks)  # instruction-like text: payload flag + report
                if flagged:
                    report.injections.append(flagged)
                fresh.append((doc, todo, changed))
                if self.on_progress:
                    self.on_progress("reading", len(pending) + len(fresh), 0)
            timer.stop()
            # An id stored from another ingest unit is a collision: this file is an error, the stored one stays.
            new_ids = [d.doc_id for d, _, changed in fresh if not changed]
            taken = {i: owners[i] for i in new_ids if i in owners}
            if not empty:
                taken.update(self._stored_elsewhere([i for i in new_ids if i not in taken], spec.corpus_key))
            for doc, chunks, changed in fresh:
                if doc.doc_id in taken and spec.replace:  # explicit: the stored one goes once this is written
                    report.taken_over.append((doc.doc_id, taken[doc.doc_id]))
                    fingerprints.pop(taken[doc.doc_id], None)  # that unit is read again next time it is ingested
                    pending.append((doc, chunks, True))
                elif doc.doc_id in taken:
                    report.docs_new -= 1
                    current.pop(doc.doc_id, None)
                    report.errors.append((doc.path or spec.name, (
                        f"document id {doc.doc_id!r} is already stored from {taken[doc.doc_id]}; not stored, the "
                        "stored document is kept. Give one of them another --source to keep both, or --replace "
                        "to replace the stored one.")))
                else:
                    pending.append((doc, chunks, changed))
            owners.update((i, spec.corpus_key) for i in current)
            # The same file stored under another id (an older id scheme, or another --source): replace it.
            by_file = {f: i for i, f in current.items() if f}
            legacy = {f"{default_source(f, None)}:{Path(f).name}": i for f, i in by_file.items()}
            legacy.update({f"{spec.source}:{Path(f).name}": i for f, i in by_file.items() if spec.source})
            for old_id, s in stored.items():
                new_id = None if old_id in current else by_file.get(_canon(s.path)) or legacy.get(old_id)
                if new_id and spec.path is not None:
                    report.replaced.append((old_id, new_id))
                    superseded.append(old_id)
            left = [d for d in stored if d not in current and d not in seen and d not in superseded]
            # Re-keying deletes the old pseudonyms' records: only after a whole, clean read of the source (no file
            # left unlisted, unread or beyond --limit), else a patient could lose their record.
            clean = len(report.errors) == n_errors_before and not walk_errors and not not_read and spec.limit is None
            if deid and clean and deid_keys.get(spec.corpus_key) not in (None, deid) and left:
                # the same patients under the previous key's pseudonyms: removed once this read's records are written
                superseded += left
                report.docs_rekeyed += len(left)
                left = []
            if deid and (clean or spec.corpus_key not in deid_keys):
                deid_keys[spec.corpus_key] = deid
            if purge and left:
                self.index.delete_docs(left)
                report.docs_removed += len(left)
            elif spec.path is not None:
                report.docs_not_found += len(left)
            # Bad files are content-determined, so an unchanged source can be skipped next time; its errors are kept.
            # A collision depends on other sources: the next run checks again.
            rekey_pending = bool(deid) and deid_keys.get(spec.corpus_key) not in (None, deid)
            if fp and not (taken and not spec.replace) and not rekey_pending:  # else the next run tries again
                fingerprints[spec.corpus_key] = fp
                known_errors[spec.corpus_key] = [list(e) for e in report.errors[n_errors_before:]]

        self._write(pending, report, meta)
        for row in report.files:  # embedding runs in batches across files: each file's share, by its chunks
            row["embed_s"] = round(report.embed_seconds * row["chunks"] / report.chunks_written, 3) \
                if report.chunks_written else 0.0
        if superseded:  # only now that their replacements are stored
            self.index.delete_docs(superseded)
        meta = {**self.index.get_meta(), "fingerprints": fingerprints, "deid_keys": deid_keys,
                "source_errors": {k: v for k, v in known_errors.items() if v}}
        if report.chunks_written or report.docs_removed or superseded:
            meta["version"] = f"{INDEX_VERSION}.{int(time.time())}"
            self.index.set_meta(meta)
            self.index.optimize()
        else:
            self.index.set_meta(meta)
        report.seconds = time.perf_counter() - t0
        return report

    def _stored_elsewhere(self, ids: list[str], corpus: str) -> dict[str, str]:
        """{doc id: the ingest unit storing it} for those of `ids` stored from an ingest unit other than `corpus`."""
        out: dict[str, str] = {}
        for i in range(0, len(ids), 512):
            for c, _ in self.index.scroll(Filters(doc_id=ids[i:i + 512]), batch=1024, fields=["doc_id", "corpus"]):
                if c.metadata.get("corpus") != corpus:
                    out[c.doc_id] = c.metadata.get("corpus") or "an earlier ingest"
        return out

    def _not_stored(self, doc: Document, chunks: list[Chunk], old, report: IngestReport) -> list[Chunk]:
        """The chunks still to write. All of them, except for a document an interrupted ingest stored in part
        (same text, same chunking, same metadata): then the ones already stored with the same text are kept."""
        if (old is None or old.content_hash or old.partial_hash != doc.content_hash
                or old.expected_chunks != len(chunks) or old.meta_hash != doc.meta_hash):
            return chunks
        have = {c.id: c.text for c, _ in self.index.scroll(Filters(doc_id=[doc.doc_id]), fields=["text"])}
        todo = [c for c in chunks if have.get(c.id) != c.text]
        if len(todo) < len(chunks):
            report.docs_resumed += 1
            report.chunks_resumed += len(chunks) - len(todo)
        return todo

    def _guard(self, doc: Document) -> tuple[Document | None, dict | None]:
        res = guard(doc, self.phi_policy, key=self._phi_key())
        return res.doc, (None if res.action == "clean" else res.to_dict())

    def _phi_key(self) -> bytes:
        """This index's secret for the tags of masked document ids (made once, kept in the index metadata), so
        that a tag cannot be matched against a guessed file name without the index itself."""
        meta = self.index.get_meta()
        if not meta.get("phi_key"):
            meta = {**meta, "phi_key": secrets.token_hex(16)}
            self.index.set_meta(meta)
        return bytes.fromhex(meta["phi_key"])

    def _write(self, pending: list[tuple[Document, list[Chunk], bool]], report: IngestReport, meta: dict) -> None:
        chunks = [c for _, cs, _ in pending for c in cs]
        if not chunks:
            return
        avg_len = meta.get("bm25_avg_len")
        bm25_probe = BM25Encoder()
        if not avg_len:  # first load: BM25 length normalisation from this corpus
            avg_len = float(np.mean([bm25_probe.doc_length(sparse_text(c)) for c in chunks])) or 1.0
            self.index.set_meta({**self.index.get_meta(), "bm25_avg_len": avg_len, "embedder_dim": self.embedder.dim})
        # Which embedder built the vectors: checked whenever the index is opened for search or ingest.
        if getattr(self.embedder, "backend", None) and not self.index.get_meta().get("embedder"):
            self.index.set_meta({**self.index.get_meta(), "embedder": embedder_record(self.embedder)})
        bm25 = BM25Encoder(avg_len=avg_len)
        t0 = time.perf_counter()
        bar = tqdm(total=len(chunks), desc="embedding+indexing", unit="chunk", disable=not self.show_progress)
        for w in range(0, len(chunks), self.sort_window):
            window = chunks[w:w + self.sort_window]
            if self.sort_window > 1:  # similar lengths together: less padding (resume does not need the order)
                window = sorted(window, key=lambda c: len(c.text))
            for i in range(0, len(window), self.batch_size):
                batch = window[i:i + self.batch_size]
                dense = self.embedder.embed([c.text for c in batch])
                sparse = [bm25.encode_document(sparse_text(c)) for c in batch]
                self.index.upsert(batch, dense, sparse)
                bar.update(len(batch))
                report.chunks_written += len(batch)
                if self.on_progress:
                    self.on_progress("embedding", report.chunks_written, len(chunks))
        bar.close()
        # Changed documents: the new chunks are in; now drop their stale ones (other content hash).
        for doc, _, changed in pending:
            if changed:
                self.index.delete_docs([doc.doc_id], keep_hash=doc.content_hash)
        report.embed_seconds = time.perf_counter() - t0
