"""The JSONL audit log: answer records, feedback linked by answer_id, size rotation, the off switch."""
from __future__ import annotations

import json

import pytest

from assistant.audit import AuditLog
from assistant.errors import FeedbackError
from assistant.types import Answer, SentenceVerdict, Source


def answer(i: int, text: str = "A1C measures average blood glucose [1].") -> Answer:
    src = Source(n=1, chunk_id=f"chunk-{i}", doc_id="mq-74cccdb33ecc", source="MedQuAD/MPlusHealthTopics",
                 title="A1C", section="A1C", url=None, passage="It measures your average blood glucose.", score=0.03)
    return Answer(question=f"question {i}?", answer=text, sentences=[SentenceVerdict(text, [1], True, 0.9)],
                  sources=[src], abstained=False, timings={"total": 0.1}, models={"generator": "extractive"},
                  index_version="1.123", filters={"doc_type": ["guideline"]}, standalone_query=f"question {i}?",
                  answer_id=f"id{i:04d}")


def test_answer_record_holds_what_an_auditor_needs(tmp_path):
    log = AuditLog(tmp_path / "audit" / "answers.jsonl")
    log.record_answer(answer(1), [("chunk-1", "mq-74cccdb33ecc", 0.03), ("chunk-9", "mq-other", 0.01)])
    (rec,) = list(log.records())
    assert rec["type"] == "answer" and rec["answer_id"] == "id0001" and rec["question"] == "question 1?"
    assert rec["filters"] == {"doc_type": ["guideline"]} and rec["index_version"] == "1.123"
    assert [r["chunk_id"] for r in rec["retrieved"]] == ["chunk-1", "chunk-9"]
    assert rec["citations"][0]["chunk_id"] == "chunk-1" and rec["citations"][0]["supported"] is True
    assert rec["sentences"][0]["supported"] is True and rec["models"] == {"generator": "extractive"}
    assert rec["time"].endswith("+00:00")


def test_feedback_links_to_an_answer(tmp_path):
    log = AuditLog(tmp_path / "answers.jsonl")
    log.record_answer(answer(7), [])
    fb = log.record_feedback("id0007", -1, "unsupported", "citation [1] does not say this")
    records = list(log.records())
    assert records[-1] == fb and fb["answer_id"] == "id0007" and fb["rating"] == -1
    with pytest.raises(FeedbackError, match="no answer with id"):
        log.record_feedback("id9999", 1)
    with pytest.raises(FeedbackError, match="rating"):
        log.record_feedback("id0007", 5)
    with pytest.raises(FeedbackError, match="rating"):
        log.record_feedback("id0007", True)


def test_rotation_keeps_at_most_backups_files(tmp_path):
    path = tmp_path / "answers.jsonl"
    one_record = len(json.dumps(json.loads(_first_line(tmp_path, answer(0))))) + 1
    log = AuditLog(path, max_bytes=one_record * 3 + 10, backups=2)
    for i in range(12):
        log.record_answer(answer(i), [])
    files = log.files()
    assert [f.name for f in files] == ["answers.jsonl", "answers.jsonl.1", "answers.jsonl.2"]
    assert all(f.stat().st_size <= log.max_bytes for f in files)
    ids = [r["answer_id"] for r in log.records()]
    assert ids == sorted(ids) and ids[-1] == "id0011" and "id0000" not in ids  # oldest rotated away, order kept
    oldest_kept = AuditLog(files[-1], max_bytes=log.max_bytes).records()
    assert log.find_answer(next(oldest_kept)["answer_id"]) is not None  # found in the oldest backup too


def test_disabled_log_writes_nothing_and_refuses_feedback(tmp_path):
    log = AuditLog(tmp_path / "answers.jsonl", enabled=False)
    log.record_answer(answer(1), [])
    assert not (tmp_path / "answers.jsonl").exists()
    with pytest.raises(FeedbackError, match="audit log is off"):
        log.record_feedback("id0001", 1)


def test_torn_last_line_is_skipped(tmp_path):
    log = AuditLog(tmp_path / "answers.jsonl")
    log.record_answer(answer(1), [])
    with open(log.path, "a") as f:
        f.write('{"type": "answer", "answer_id": "id00')  # a crash mid-write
    log.record_answer(answer(2), [])
    assert [r["answer_id"] for r in log.records()] == ["id0001", "id0002"]


def _first_line(tmp_path, a: Answer) -> str:
    probe = AuditLog(tmp_path / "probe.jsonl")
    probe.record_answer(a, [])
    return probe.path.read_text().splitlines()[0]
