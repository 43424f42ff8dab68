"""Structure-aware chunking: section boundaries, sentence boundaries, token limits, overlap."""
from __future__ import annotations

import pytest

from carecite.settings import Settings
from indexes.types import chunk_id
from ingest.chunker import chunk_body, chunk_document, split_sentences
from ingest.documents import Document, Section
from ingest.readers import read_corpus


def words(text: str) -> int:
    return len(text.split())


def _doc(*sections: Section, title: str = "Heart failure") -> Document:
    return Document(doc_id="t:1", doc_type="guideline", source="test", title=title, sections=list(sections),
                    url="https://example.org/hf")


SENTENCES = [f"Sentence number {i} says something about diuretics and daily weights." for i in range(40)]


@pytest.mark.parametrize("text,expected", [
    ("Take 2.5 mg twice daily. Dr. Smith agreed.", ["Take 2.5 mg twice daily.", "Dr. Smith agreed."]),
    ("Use e.g. ibuprofen. Then rest.", ["Use e.g. ibuprofen.", "Then rest."]),
    ("Seen by J. Smith at the U.S. site. Next visit in 2 weeks!", ["Seen by J. Smith at the U.S. site.",
                                                                  "Next visit in 2 weeks!"]),
    ("1. Sore throat. Start penicillin.", ["1. Sore throat.", "Start penicillin."]),
    ("Give 20 mg. Recheck potassium.", ["Give 20 mg. Recheck potassium."]),  # "mg." is kept, never cut mid-sentence
    ("BP 132/80. HR 84 (regular). \"Feels fine.\" Done", ["BP 132/80.", "HR 84 (regular).", "\"Feels fine.\"",
                                                          "Done"]),
])
def test_sentence_splitter_handles_clinical_abbreviations(text, expected):
    assert split_sentences(text) == expected


def test_sections_are_never_merged_and_carry_metadata():
    doc = _doc(Section("Diagnosis", "Echo shows EF 35%.", {"qid": "q1"}), Section("Treatment", "Start an ACE inhibitor."))
    chunks = chunk_document(doc, words, max_tokens=64, overlap_tokens=8)
    assert [c.text for c in chunks] == ["Heart failure — Diagnosis\nEcho shows EF 35%.",
                                        "Heart failure — Treatment\nStart an ACE inhibitor."]
    meta = chunks[0].metadata
    assert {k: meta[k] for k in ("doc_type", "source", "title", "url", "content_hash")} == \
        {k: v for k, v in doc.metadata().items() if k in ("doc_type", "source", "title", "url", "content_hash")}
    assert (meta["section"], meta["qid"], meta["chunk_index"], meta["section_index"]) == ("Diagnosis", "q1", 0, 0)
    assert chunks[1].metadata["chunk_index"] == 1 and "qid" not in chunks[1].metadata
    assert [c.id for c in chunks] == [chunk_id("t:1", 0), chunk_id("t:1", 1)]
    assert chunk_body(chunks[1]) == "Start an ACE inhibitor."


def test_long_section_splits_on_sentences_within_limit_with_overlap():
    doc = _doc(Section("Monitoring", " ".join(SENTENCES)))
    chunks = chunk_document(doc, words, max_tokens=60, overlap_tokens=12)
    assert len(chunks) > 5
    bodies = [chunk_body(c) for c in chunks]
    for c, body in zip(chunks, bodies):
        assert words(c.text) <= 60
        assert all(s in SENTENCES for s in split_sentences(body))  # whole sentences only
    for prev, nxt in zip(bodies, bodies[1:]):
        shared = [s for s in split_sentences(nxt) if s in split_sentences(prev)]
        assert shared and split_sentences(nxt)[:len(shared)] == shared  # overlap is at the start of the next chunk
        assert sum(words(s) for s in shared) <= 12
    covered = {s for b in bodies for s in split_sentences(b)}
    assert covered == set(SENTENCES)  # nothing lost


def test_no_overlap_when_disabled():
    chunks = chunk_document(_doc(Section("M", " ".join(SENTENCES))), words, max_tokens=60, overlap_tokens=0)
    sents = [s for c in chunks for s in split_sentences(chunk_body(c))]
    assert sents == SENTENCES


def test_a_sentence_longer_than_the_limit_is_split_at_word_boundaries():
    long = " ".join(f"w{i}" for i in range(130)) + "."
    chunks = chunk_document(_doc(Section("", long), title="T"), words, max_tokens=50, overlap_tokens=5)
    assert all(words(c.text) <= 50 for c in chunks)
    assert " ".join(chunk_body(c) for c in chunks).split() == long.split()  # no overlap repeated, no word lost


def test_line_structure_is_kept_and_empty_sections_skipped():
    doc = _doc(Section("Plan", "Hypertension.\n• Increase lisinopril.\n• Recheck in 2 weeks."), Section("Empty", "  "))
    [chunk] = chunk_document(doc, words)
    assert chunk_body(chunk) == "Hypertension.\n• Increase lisinopril.\n• Recheck in 2 weeks."


def test_heading_is_not_repeated_when_section_title_equals_doc_title():
    [chunk] = chunk_document(_doc(Section("Heart failure", "Text."), title="Heart failure"), words)
    assert chunk.text == "Heart failure\nText." and chunk.metadata["heading"] == "Heart failure"


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="overlap_tokens"):
        chunk_document(_doc(Section("a", "b")), words, max_tokens=64, overlap_tokens=40)


def test_real_tokenizer_limits_hold_on_real_documents():
    from carecite.models import get_embedder

    s = Settings()
    if not (s.paths.data_mirror / "medquad").is_dir():
        pytest.skip("data mirror not present")
    count = get_embedder(s).count_tokens
    docs = list(read_corpus("medquad", s.paths.data_mirror, limit=15)) + \
        list(read_corpus("aci-bench", s.paths.data_mirror, limit=5))
    chunks = [c for d in docs for c in chunk_document(d, count, max_tokens=128, overlap_tokens=16)]
    assert len(chunks) > 50
    assert max(count(c.text) for c in chunks) <= 128
    # Every chunk ends with a whole sentence of its section, unless that sentence alone exceeds the limit.
    for c in chunks:
        section = next(sec for d in docs if d.doc_id == c.doc_id for sec in d.sections
                       if sec.title == c.metadata["section"])
        sentences = {x for line in section.text.split("\n") for x in split_sentences(line)}
        last = split_sentences(chunk_body(c).split("\n")[-1])[-1]
        assert last in sentences or any(last in x and count(x) > 100 for x in sentences)
