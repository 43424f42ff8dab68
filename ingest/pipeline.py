"""Incremental ingestion: sources -> documents -> PHI guard -> chunks -> embeddings + BM25 -> index.

Unchanged sources are skipped by fingerprint (no parsing, no embedding); changed documents replace their
old chunks; with purge=True documents whose files disappeared are removed. A bad file is reported and
skipped; nothing already stored is touched by it.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from indexes.base import VectorIndex
from indexes.bm25 import BM25Encoder, sparse_text
from indexes.types import Chunk, Filters
from ingest.chunker import chunk_document
from ingest.documents import OPTIONAL_KEYS, Document, ReaderError, specialties
from ingest.injection import flag_injections
from ingest.phi import guard
from ingest.readers import CORPORA, READER_VERSION, corpus_files, read_corpus, read_path

DEFAULT_CORPUS = ("medquad", "openstax-nursing", "aci-bench")
INDEX_VERSION = 1
GENERIC_SUFFIXES = {".md", ".markdown", ".html", ".htm", ".txt", ".pdf", ".xml", ".jsonl", ".json", ".csv"}

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

    def __post_init__(self):
        self.specialty = specialties(self.specialty)

    @property
    def corpus_key(self) -> str:
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
    chunks_written: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, message)
    phi: list[dict] = field(default_factory=list)  # per-document PHI reports (rejected or masked)
    injections: list[dict] = field(default_factory=list)  # documents with instruction-like text (ingest/injection.py)
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def chunks_per_s(self) -> float:
        return self.chunks_written / self.embed_seconds if self.embed_seconds else 0.0

    def summary(self) -> str:
        lines = [f"sources: {', '.join(self.sources) or '-'}"
                 + (f" (unchanged, skipped: {', '.join(self.skipped_sources)})" if self.skipped_sources else ""),
                 f"documents: {self.docs_new} new, {self.docs_changed} changed, {self.docs_unchanged} unchanged, "
                 f"{self.docs_removed} removed" + (f", {self.docs_relabelled} relabelled (metadata only)"
                                                  if self.docs_relabelled else ""),
                 f"chunks written: {self.chunks_written} ({self.chunks_per_s:.1f} chunks/s embedding+indexing); "
                 f"total {self.seconds:.1f} s"]
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
    """sha256 over file names and bytes: equal fingerprints mean nothing to do."""
    h = hashlib.sha256(extra.encode())
    for p in sorted(paths):
        h.update(str(p).encode())
        with open(p, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
    return h.hexdigest()


def _corpus_files(spec: SourceSpec, mirror: Path) -> list[Path]:
    if spec.path is None:
        corpus_files(spec.name, mirror)  # DataMissingError says what to download
    root = spec.path if spec.path is not None else mirror / CORPORA[spec.name].folder
    if root.is_file():
        return [root]
    if not root.exists():
        return []
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]


def _read(spec: SourceSpec, mirror: Path, files: list[Path], max_bytes: int,
          errors: list[tuple[str, str]]) -> Iterable[Document]:
    if spec.path is None:
        yield from read_corpus(spec.name, mirror, limit=spec.limit, max_bytes=max_bytes,
                               on_error=lambda e: errors.append((spec.name, str(e))))
        return
    for f in sorted(files):
        if f.suffix.lower() not in GENERIC_SUFFIXES and spec.path.is_dir():
            continue
        try:
            for doc in read_path(f, doc_type=spec.doc_type, source=spec.source, max_bytes=max_bytes):
                doc.specialty = spec.specialty or doc.specialty
                yield doc
        except ReaderError as e:
            errors.append((str(f), str(e)))
        except Exception as e:  # noqa: BLE001 - an unexpected parser failure is still one bad file
            errors.append((str(f), f"{type(e).__name__}: {e}"))


class Ingestor:
    """Writes sources into an index with an embedder (anything with .embed(list[str]) and .count_tokens)."""

    def __init__(self, index: VectorIndex, embedder, *, max_tokens: int = 256, overlap_tokens: int = 32,
                 phi_policy: str = "reject", data_mirror: Path | None = None, max_file_mb: float = 50.0,
                 batch_size: int = 256, show_progress: bool = True, on_progress: Progress | None = None):
        self.index, self.embedder = index, embedder
        # The embedder's window includes [CLS] and [SEP]: keep chunks inside it.
        window = getattr(embedder, "max_seq_length", max_tokens + 2) - 2
        self.max_tokens, self.overlap_tokens = min(max_tokens, window), overlap_tokens
        self.phi_policy = phi_policy
        self.mirror = Path(data_mirror) if data_mirror else None
        self.max_bytes = int(max_file_mb * 1024 * 1024)
        self.batch_size, self.show_progress, self.on_progress = batch_size, show_progress, on_progress

    @classmethod
    def from_settings(cls, index: VectorIndex, embedder, settings, **overrides) -> "Ingestor":
        """An Ingestor with the chunking, PHI and data-mirror settings; keyword overrides win."""
        s = settings
        return cls(index, embedder, **{"max_tokens": s.chunking.max_tokens, "overlap_tokens": s.chunking.overlap_tokens,
                                       "phi_policy": s.phi.policy, "data_mirror": s.paths.data_mirror,
                                       "max_file_mb": s.chunking.max_file_mb, **overrides})

    def run(self, specs: list[SourceSpec], purge: bool = False) -> IngestReport:
        t0 = time.perf_counter()
        report = IngestReport(sources=[s.name for s in specs])
        meta = self.index.get_meta()
        fingerprints = dict(meta.get("fingerprints", {}))
        known_errors = dict(meta.get("source_errors", {}))  # bad files of unchanged sources, re-reported on skip
        pending: list[tuple[Document, list[Chunk], bool]] = []  # (doc, chunks, replaces a stored version)

        for spec in specs:
            if spec.path is not None and not spec.path.exists():
                report.errors.append((str(spec.path), "no such file or folder"))
                continue
            if spec.path is None and spec.name not in CORPORA:
                report.errors.append((spec.name, f"unknown corpus; known: {', '.join(CORPORA)}"))
                continue
            files = _corpus_files(spec, self.mirror)
            fp = fingerprint(files, extra=f"{spec.doc_type}|{spec.source}|{spec.limit}|{self.phi_policy}|"
                                          f"{self.max_tokens}|{self.overlap_tokens}|{self.max_bytes}|{spec.specialty}|"
                                          f"{READER_VERSION}") if files else ""
            if fp and fingerprints.get(spec.corpus_key) == fp and not purge:
                report.skipped_sources.append(spec.name)
                report.errors += [(f, f"{m} (unchanged since the last ingest)") for f, m in known_errors.get(spec.corpus_key, [])]
                continue
            stored = self.index.stored_docs(Filters(corpus=[spec.corpus_key]))
            seen: set[str] = set()
            n_errors_before = len(report.errors)
            docs = _read(spec, self.mirror, files, self.max_bytes, report.errors)
            for doc in tqdm(docs, desc=f"reading {spec.name}", unit="doc", disable=not self.show_progress):
                if doc.doc_id in seen:
                    report.errors.append((doc.path or spec.name, f"duplicate document id {doc.doc_id}; kept the first"))
                    continue
                seen.add(doc.doc_id)
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
                old = stored.get(doc.doc_id)
                if old and old.content_hash == doc.content_hash:
                    report.docs_unchanged += 1
                    if old.meta_hash != doc.meta_hash:  # same text, new metadata: no re-embedding
                        meta = doc.metadata()
                        self.index.set_doc_metadata(doc.doc_id, meta, unset=[k for k in OPTIONAL_KEYS if k not in meta])
                        report.docs_relabelled += 1
                    continue
                changed = doc.doc_id in stored
                report.docs_changed += changed
                report.docs_new += not changed
                chunks = chunk_document(doc, self.embedder.count_tokens, self.max_tokens, self.overlap_tokens)
                for c in chunks:  # lets a later run see whether an interrupted run stored the whole document
                    c.metadata["doc_chunks"] = len(chunks)
                flagged = flag_injections(doc, chunks)  # instruction-like text: payload flag + report
                if flagged:
                    report.injections.append(flagged)
                pending.append((doc, chunks, changed))
                if self.on_progress:
                    self.on_progress("reading", len(pending), 0)
            if purge:
                gone = [d for d in stored if d not in seen]
                if gone:
                    self.index.delete_docs(gone)
                    report.docs_removed += len(gone)
            # Bad files are content-determined, so an unchanged source can be skipped next time; its errors are kept.
            if fp:
                fingerprints[spec.corpus_key] = fp
                known_errors[spec.corpus_key] = [list(e) for e in report.errors[n_errors_before:]]

        self._write(pending, report, meta)
        meta = {**self.index.get_meta(), "fingerprints": fingerprints,
                "source_errors": {k: v for k, v in known_errors.items() if v}}
        if report.chunks_written or report.docs_removed:
            meta["version"] = f"{INDEX_VERSION}.{int(time.time())}"
            self.index.set_meta(meta)
            self.index.optimize()
        else:
            self.index.set_meta(meta)
        report.seconds = time.perf_counter() - t0
        return report

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
        bm25 = BM25Encoder(avg_len=avg_len)
        t0 = time.perf_counter()
        bar = tqdm(total=len(chunks), desc="embedding+indexing", unit="chunk", disable=not self.show_progress)
        for i in range(0, len(chunks), self.batch_size):
            batch = chunks[i:i + self.batch_size]
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
