"""Append-only JSONL audit log of answers (and feedback linked to them by answer_id), rotated by size.

One line per record. {"type": "answer", ...} holds the time, question, filters, retrieved chunk ids, the
answer, citations with verification results, model ids and index version; {"type": "feedback", "answer_id",
"rating", "kind", "comment"} is appended later. When the file would pass max_bytes it becomes <name>.1 (older
ones shift to .2 ... .<backups>; the oldest is deleted). Writers take an exclusive file lock.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from assistant.errors import FeedbackError
from assistant.types import Answer
from carecite.settings import Settings

RATINGS = (-1, 0, 1)  # thumbs down, neutral, thumbs up
MAX_KIND_CHARS = 64
MAX_COMMENT_CHARS = 4000


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class AuditLog:
    def __init__(self, path: Path | str, *, max_bytes: int = 20_000_000, backups: int = 5, enabled: bool = True):
        if max_bytes <= 0 or backups < 0:
            raise ValueError(f"audit max_bytes must be > 0 and backups >= 0, got {max_bytes}, {backups}")
        self.path, self.max_bytes, self.backups, self.enabled = Path(path), max_bytes, backups, enabled

    @classmethod
    def from_settings(cls, settings: Settings) -> "AuditLog":
        a = settings.audit
        return cls(settings.audit_path, max_bytes=a.max_bytes, backups=a.backups, enabled=a.enabled)

    def files(self) -> list[Path]:
        """The current file, then its backups, newest first (only those that exist)."""
        cands = [self.path] + [self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.backups + 1)]
        return [p for p in cands if p.exists()]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _rotate(self) -> None:
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as a JSON line (no-op when the log is off)."""
        if not self.enabled:
            return
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._locked():
            size = self.path.stat().st_size if self.path.exists() else 0
            if size and size + len(line) > self.max_bytes:
                self._rotate()
            elif size and not self._ends_with_newline():
                line = b"\n" + line  # a torn last line (crash mid-write) stays alone on its line
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def record_answer(self, answer: Answer, retrieved: Sequence[tuple[str, str, float]]) -> None:
        """retrieved: (chunk_id, doc_id, score) of every hit the retriever returned, in rank order."""
        j = answer.to_json()
        self.append({
            "type": "answer", "time": _now(), "answer_id": answer.answer_id, "question": answer.question,
            "standalone_query": answer.standalone_query, "filters": answer.filters,
            "retrieved": [{"chunk_id": c, "doc_id": d, "score": round(s, 6)} for c, d, s in retrieved],
            "answer": answer.answer, "abstained": answer.abstained, "abstain_reason": answer.abstain_reason,
            "citations": [{k: c[k] for k in ("n", "chunk_id", "doc_id", "source", "title", "cited", "supported")}
                          for c in j["citations"]],
            "sentences": [asdict(s) for s in answer.sentences],
            "models": answer.models, "index_version": answer.index_version, "timings": answer.timings,
        })

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest file first (a torn last line from a crash is skipped)."""
        for p in reversed(self.files()):
            with open(p, encoding="utf-8") as f:
                for line in f:
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue

    def find_answer(self, answer_id: str) -> dict[str, Any] | None:
        needle = f'"answer_id": "{answer_id}"'
        for p in self.files():
            with open(p, encoding="utf-8") as f:
                for line in f:
                    if needle in line:
                        rec = json.loads(line)
                        if rec.get("type") == "answer":
                            return rec
        return None

    def record_feedback(self, answer_id: str, rating: int, kind: str = "", comment: str = "") -> dict[str, Any]:
        """Append feedback linked to an earlier answer; FeedbackError for an unknown id or a bad rating."""
        if not self.enabled:
            raise FeedbackError("the audit log is off (audit.enabled=false), so feedback cannot be linked to answers")
        if not isinstance(answer_id, str) or not answer_id.strip():
            raise FeedbackError("feedback needs the answer_id of an earlier answer")
        if isinstance(rating, bool) or rating not in RATINGS:
            raise FeedbackError(f"rating must be one of {RATINGS} (down, neutral, up), got {rating!r}")
        if not isinstance(kind, str) or len(kind) > MAX_KIND_CHARS:
            raise FeedbackError(f"feedback kind must be a string of at most {MAX_KIND_CHARS} characters")
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
            raise FeedbackError(f"feedback comment must be a string of at most {MAX_COMMENT_CHARS} characters")
        if self.find_answer(answer_id) is None:
            raise FeedbackError(f"no answer with id {answer_id!r} in the audit log at {self.path}")
        rec = {"type": "feedback", "time": _now(), "answer_id": answer_id, "rating": rating, "kind": kind.strip(),
               "comment": comment.strip()}
        self.append(rec)
        return rec
