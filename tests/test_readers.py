"""Readers on the real shared data and on crafted bad files."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from carecite.settings import Settings
from ingest.documents import ReaderError
from ingest.readers import (CORPORA, BadLinesError, DataMissingError, corpus_files, read_corpus, read_path)

MIRROR = Settings().paths.data_mirror
needs_data = pytest.mark.skipif(not (MIRROR / "medquad").is_dir(), reason=f"data mirror {MIRROR} not present")


# ---------------------------------------------------------------- real corpora

@needs_data
def test_medquad_one_section_per_answered_question():
    path = MIRROR / "medquad" / "1_CancerGov_QA" / "0000001_1.xml"
    [doc] = list(read_path(path))
    assert doc.doc_id == "medquad:CancerGov:0000001_1"
    assert (doc.doc_type, doc.source, doc.title) == ("guideline", "MedQuAD/CancerGov", "Adult Acute Lymphoblastic Leukemia")
    assert doc.url.startswith("https://www.cancer.gov/")
    assert doc.specialty == ["oncology"] and doc.metadata()["specialty"] == ["oncology"]  # NCI's remit
    first = doc.sections[0]
    assert first.title == "What is (are) Adult Acute Lymphoblastic Leukemia ?"
    assert first.extra == {"qid": "0000001_1-1", "qtype": "information"}
    assert "  " not in first.text and "\n- Leukemia may affect" in first.text  # inline bullets on their own lines
    assert all(s.text for s in doc.sections)


@needs_data
@pytest.mark.parametrize("rel,site,focus", [("6_NINDS_QA/0000007.xml", "NINDS", "Holmes-Adie"),
                                            ("9_CDC_QA/0000397.xml", "CDC", "Parasites - Taeniasis")])
def test_medquad_older_schemas_are_read(rel, site, focus):
    """<doc docid corpus> and <DiseaseFile fid source> files in the release carry the same Q&A."""
    [doc] = list(read_path(MIRROR / "medquad" / rel))
    assert (doc.source, doc.title) == (f"MedQuAD/{site}", focus)
    assert len(doc.sections) >= 4 and all(s.title.lower().startswith("what") or s.text for s in doc.sections)
    assert doc.sections[0].extra["qid"].endswith("-1") and doc.url.startswith("http")


@needs_data
def test_medquad_ids_are_unique_across_sites_and_split_files():
    ids = [d.doc_id for d in read_corpus("medquad", MIRROR, limit=400, on_error=lambda e: None)]
    assert len(ids) == 400 and len(set(ids)) == 400


@needs_data
def test_openstax_groups_lines_by_module_in_order():
    rows = [json.loads(x) for x in (MIRROR / "openstax-nursing" / "sections.jsonl").read_text().splitlines()[:20]]
    module = rows[3]["module"]
    expected = [r["section"] or r["title"] for r in rows if r["module"] == module and r["book"] == rows[3]["book"]]
    doc = next(d for d in read_corpus("openstax-nursing", MIRROR) if d.doc_id == f"openstax:{rows[3]['book']}/{module}")
    assert [s.title for s in doc.sections] == expected
    assert (doc.doc_type, doc.source, doc.title) == ("reference", f"OpenStax/{rows[3]['book']}", rows[3]["title"])
    assert doc.specialty  # each nursing book is a specialty (pharmacology, nutrition, public health)


@needs_data
def test_aci_note_split_by_headings_without_patient_names_in_metadata():
    docs = list(read_path(MIRROR / "aci-bench" / "challenge_data" / "train.csv"))
    assert len(docs) == 67
    doc = next(d for d in docs if d.doc_id == "aci:train:D2N001")
    assert doc.title == "Case D2N001: annual exam" and doc.doc_type == "case" and doc.source == "ACI-Bench"
    assert [s.title for s in doc.sections][:3] == ["CHIEF COMPLAINT", "HISTORY OF PRESENT ILLNESS", "REVIEW OF SYSTEMS"]
    assert "ASSESSMENT AND PLAN" in [s.title for s in doc.sections]
    assert not any(s.title.isupper() and s.title in s.text for s in doc.sections)  # headings are not left in bodies
    meta = " ".join(str(v) for v in doc.metadata().values())
    assert "Martha" not in meta and "Collins" not in meta
    assert not any("[doctor]" in s.text for d in docs for s in d.sections)  # the dialogue is not read


@needs_data
def test_aci_abbreviated_headings_are_canonical():
    doc = next(d for d in read_corpus("aci-bench", MIRROR) if d.doc_id.endswith(":D2N092"))
    assert [s.title for s in doc.sections][:2] == ["CHIEF COMPLAINT", "HISTORY OF PRESENT ILLNESS"]


@needs_data
def test_mts_pubmedqa_and_beir_shapes():
    mts = next(iter(read_corpus("mts-dialog", MIRROR)))
    assert mts.doc_id == "mts:test1:0" and mts.sections[0].title == "History of present illness"
    pq = next(iter(read_corpus("pubmedqa", MIRROR)))
    raw = json.loads((MIRROR / "pubmedqa" / "ori_pqal.json").read_text())[pq.extra["pmid"]]
    assert pq.title == raw["QUESTION"] and pq.url == f"https://pubmed.ncbi.nlm.nih.gov/{pq.extra['pmid']}/"
    assert [s.title for s in pq.sections] == [x.capitalize() for x in raw["LABELS"]]
    assert pq.extra["year"] == int(raw["YEAR"])
    beir = list(read_corpus("clinical-dev", MIRROR, limit=3))
    first = json.loads((MIRROR / "retrieval-dev" / "clinical-dev" / "corpus.jsonl").open().readline())
    assert beir[0].doc_id == first["_id"] and beir[0].doc_type == "guideline"
    assert beir[0].source == f"MedQuAD/{first['source']}"


@needs_data
def test_limit_reads_only_the_first_documents():
    assert len(list(read_corpus("pubmedqa", MIRROR, limit=5))) == 5


def test_missing_corpus_says_what_to_download_and_where(tmp_path):
    with pytest.raises(DataMissingError) as e:
        corpus_files("aci-bench", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "aci-bench") in msg and "github.com/wyim/aci-bench" in msg
    assert "CARECITE_PATHS__DATA_MIRROR" in msg
    with pytest.raises(KeyError, match="known: medquad"):
        corpus_files("nope", tmp_path)
    assert set(CORPORA) >= {"medquad", "openstax-nursing", "aci-bench", "mts-dialog", "pubmedqa"}


@needs_data
def test_on_error_reports_a_bad_file_and_reading_goes_on(tmp_path):
    site = tmp_path / "medquad" / "1_CancerGov_QA"
    site.mkdir(parents=True)
    shutil.copy(MIRROR / "medquad" / "1_CancerGov_QA" / "0000001_1.xml", site / "a.xml")
    (site / "b.xml").write_text("<Document id='x'><QAPairs>")
    shutil.copy(MIRROR / "medquad" / "1_CancerGov_QA" / "0000001_2.xml", site / "c.xml")
    errors = []
    docs = list(read_corpus("medquad", tmp_path, on_error=errors.append))
    assert [d.doc_id for d in docs] == ["medquad:CancerGov:a", "medquad:CancerGov:c"]
    assert len(errors) == 1 and "b.xml" in str(errors[0]) and "malformed XML" in str(errors[0])
    with pytest.raises(ReaderError, match="b.xml"):
        list(read_corpus("medquad", tmp_path))


# ---------------------------------------------------------------- bad files

@pytest.mark.parametrize("name,content,reason", [
    ("empty.txt", b"", "file is empty"),
    ("blank.md", b"  \n\n ", "no text"),
    ("bin.txt", b"abc\x00\x01\x02def", "looks binary"),
    ("latin1.md", "Caf\u00e9 au lait".encode("latin-1"), "not valid UTF-8"),
    ("broken.xml", b"<Document id='1'><Focus>x</Focus", "malformed XML"),
    ("other.xml", b"<html><body/></html>", "not a MedQuAD file"),
    ("bad.json", b"{\"1\": {", "malformed JSON"),
    ("list.json", b"[1, 2]", "expected a JSON object keyed by PMID"),
    ("x.docx", b"PK\x03\x04", "unsupported file type .docx"),
    ("cols.csv", b"a,b\n1,2\n", "match no known format"),
    ("fake.pdf", b"hello", "not a PDF"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ReaderError) as e:
        list(read_path(path))
    assert str(path) in str(e.value) and reason in str(e.value)


def test_oversized_file_is_refused(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    with pytest.raises(ReaderError, match="5,000 bytes, over the 1,000-byte limit"):
        list(read_path(path, max_bytes=1000))


def test_bad_jsonl_lines_are_listed_after_the_good_documents(tmp_path):
    path = tmp_path / "sections.jsonl"
    good = {"id": "b/m1#0", "book": "b", "module": "m1", "order": 0, "title": "T", "section": "S", "text": "Text."}
    path.write_text("\n".join([json.dumps(good), "{not json", json.dumps({"id": 1}),
                               json.dumps({**good, "id": "b/m2#0", "module": "m2"})]) + "\n")
    got = []
    with pytest.raises(BadLinesError) as e:
        for doc in read_path(path):
            got.append(doc.doc_id)
    assert got == ["openstax:b/m1", "openstax:b/m2"]
    assert [n for n, _ in e.value.bad_lines] == [2, 3]
    assert "line 2: malformed JSON" in str(e.value) and "line 3: missing key(s)" in str(e.value)


def test_csv_dispatch_and_metadata_join(tmp_path):
    split = tmp_path / "mini.csv"
    with split.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dataset", "encounter_id", "dialogue", "note"])
        w.writerow(["x", "E1", "[doctor] hi", "CHIEF COMPLAINT\n\nCough.\n\nHPI:\n\nJane Roe has a cough.\nGERD.\n"])
        w.writerow(["x", "E2", "", "  "])
    with (tmp_path / "mini_metadata.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["encounter_id", "patient_firstname", "patient_familyname", "cc"])
        w.writerow(["E1", "Jane", "Roe", "persistent cough"])
    assert list(read_path(tmp_path / "mini_metadata.csv")) == []
    docs = []
    with pytest.raises(BadLinesError, match="row 2: encounter E2 has an empty note"):
        for d in read_path(split):
            docs.append(d)
    [doc] = docs
    assert doc.title == "Case E1: persistent cough" and doc.doc_id == "aci:mini:E1"
    assert [(s.title, s.text) for s in doc.sections] == [
        ("CHIEF COMPLAINT", "Cough."), ("HISTORY OF PRESENT ILLNESS", "Jane Roe has a cough.\nGERD.")]
    assert "Jane" not in json.dumps(doc.metadata())


# ---------------------------------------------------------------- generic files

def test_markdown_sections_carry_the_heading_path(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text("Intro line.\n\n# Asthma\n\nOverview [link](http://x).\n\n## Treatment\n\nUse a spacer.\n"
                    "```\n# not a heading\n```\n\n### Empty\n\n## Follow-up\n\nIn 2 weeks.\n")
    [doc] = list(read_path(path, doc_type="reference", source="local"))
    assert (doc.doc_id, doc.doc_type, doc.source, doc.title) == ("local:guide.md", "reference", "local", "Asthma")
    assert [s.title for s in doc.sections] == ["", "Asthma", "Asthma > Treatment", "Asthma > Follow-up"]
    assert doc.sections[1].text == "Overview link."
    assert "# not a heading" in doc.sections[2].text


def test_html_keeps_main_text_only(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("<html><head><title>Sepsis bundle</title><style>p{}</style></head><body>"
                    "<nav>Home | About</nav><header>Site header</header><main><h1>Sepsis</h1><p>Give fluids "
                    "<b>early</b>.</p><script>track()</script><h2>Antibiotics</h2><ul><li>Within 1 hour</li>"
                    "<li>Broad spectrum</li></ul><aside>Related</aside></main><footer>(c) 2024</footer></body></html>")
    [doc] = list(read_path(path))
    assert doc.title == "Sepsis bundle" and doc.source == tmp_path.name
    assert [(s.title, s.text) for s in doc.sections] == [
        ("Sepsis", "Give fluids early."), ("Sepsis > Antibiotics", "- Within 1 hour\n- Broad spectrum")]


def test_plain_text_is_one_section_of_paragraphs(tmp_path):
    path = tmp_path / "note.txt"
    path.write_text("First   paragraph\nline two.\n\n\n\nSecond paragraph.\n")
    [doc] = list(read_path(path))
    assert [s.text for s in doc.sections] == ["First paragraph\nline two.\n\nSecond paragraph."]


def _pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF, one Helvetica text line per page ("" = a page with no text)."""
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET" if text else ""
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                    f"/Contents {len(objs)} 0 R >>")
        kids.append(f"{len(objs)} 0 R")
    objs[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_pdf_one_section_per_page_with_text(tmp_path):
    path = tmp_path / "leaflet.pdf"
    path.write_bytes(_pdf(["Metformin lowers glucose.", "", "Check kidney function yearly."]))
    [doc] = list(read_path(path))
    assert [(s.title, s.text, s.extra) for s in doc.sections] == [
        ("Page 1", "Metformin lowers glucose.", {"page": 1}), ("Page 3", "Check kidney function yearly.", {"page": 3})]


def test_pdf_without_text_layer_is_an_error(tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(_pdf(["", ""]))
    with pytest.raises(ReaderError, match="no text layer"):
        list(read_path(path))


def test_truncated_pdf_is_an_error(tmp_path):
    path = tmp_path / "cut.pdf"
    path.write_bytes(_pdf(["Some text."])[:60])
    with pytest.raises(ReaderError, match="cut.pdf"):
        list(read_path(path))


def test_unknown_doc_type_is_refused(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x")
    with pytest.raises(ReaderError, match="unknown doc_type 'memo'"):
        list(read_path(path, doc_type="memo"))
