"""FHIR R4 patient records: reading, de-identification and bad input (no model weights needed).

The real bundles are the ten Synthea patients of the data mirror (fhir-synthea/original)."""
from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re

import pytest

from ingest.deid import PatientDeid, age_band, installation_key
from ingest.documents import ReaderError
from ingest.readers import read_path
from ingest.readers.fhir import read_fhir_file

KEY = bytes(range(32))


def bundles(data_mirror):
    files = sorted((data_mirror / "fhir-synthea" / "original").glob("*_*.json"))
    assert len(files) == 10
    return files


def patient_phi(bundle: dict) -> tuple[list[str], str]:
    """(identifying strings of the bundle's Patient, its birth date) as the source wrote them."""
    p = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    out = [p["id"]]
    for n in p.get("name", []):
        out += n.get("given", []) + [n.get("family", "")] + n.get("prefix", [])
        out.append(" ".join(n.get("given", []) + [n.get("family", "")]))
    for a in p.get("address", []):
        out += a.get("line", []) + [a.get("city", ""), a.get("postalCode", "")]
    out += [t["value"] for t in p.get("telecom", [])] + [i["value"] for i in p.get("identifier", [])]
    out += [x["valueString"] for x in p.get("extension", []) if "valueString" in x]
    return [x for x in out if x and len(x) > 3 and x != "Dr."], p["birthDate"]


def doc_json(doc) -> str:
    return json.dumps([doc.doc_id, doc.title, doc.source, doc.path, doc.extra,
                       [(s.title, s.text, s.extra) for s in doc.sections]], default=str)


def test_every_bundle_reads_into_a_deidentified_record(data_mirror):
    for f in bundles(data_mirror):
        bundle = json.loads(f.read_text())
        phi, birth = patient_phi(bundle)
        docs = list(read_fhir_file(f, key=KEY))
        assert len(docs) == 1
        doc, text = docs[0], doc_json(docs[0])
        assert doc.doc_type == "patient" and re.fullmatch(r"patient:P-[0-9a-f]{10}", doc.doc_id)
        assert doc.path is None  # the file is named after the patient
        for value in phi:
            assert value.lower() not in text.lower(), f"{f.name}: {value!r} leaked"
        assert birth not in text
        assert "Massachusetts" in doc.sections[0].text  # the state is kept
        # every clinical resource of the bundle is in the record
        n_imm = sum(e["resource"]["resourceType"] == "Immunization" for e in bundle["entry"])
        assert doc.sections[0].extra["summary"]["counts"].get("Immunization", 0) == n_imm


def test_dates_move_by_one_offset_per_patient_and_keep_their_order(data_mirror):
    f = bundles(data_mirror)[0]
    bundle = json.loads(f.read_text())
    pid = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    deid = PatientDeid(KEY, pid)
    assert 30 <= deid.shift_days <= 730
    starts = sorted(e["resource"]["period"]["start"] for e in bundle["entry"]
                    if e["resource"]["resourceType"] == "Encounter")
    doc = next(read_fhir_file(f, key=KEY))
    shown = sorted(s.extra["date"] for s in doc.sections if s.extra.get("date"))
    assert len(shown) == len(starts)
    for orig, new in zip(starts, shown):  # same order, same offset (dates as the patient's local calendar)
        assert (dt.date.fromisoformat(new) - dt.date.fromisoformat(orig[:10])).days == deid.shift_days
    # the pseudonym and offset are keyed: stable for a key, different under another
    assert next(read_fhir_file(f, key=KEY)).doc_id == doc.doc_id
    other = next(read_fhir_file(f, key=bytes(32)))
    assert other.doc_id != doc.doc_id and PatientDeid(bytes(32), pid).pseudonym in other.doc_id


def test_partial_dates_and_age_groups():
    d = PatientDeid(KEY, "x")
    assert re.fullmatch(r"\d{4}", d.shift("1990")) and re.fullmatch(r"\d{4}-\d{2}", d.shift("1990-05"))
    assert d.shift("2020-03-06T20:20:23-08:00").startswith(
        (dt.date(2020, 3, 6) + dt.timedelta(days=d.shift_days)).isoformat())
    assert age_band(95) == "90+" and age_band(89) == "85-89" and age_band(0) == "0-4"


def _minimal(birth="1921-02-03", extra_entries=()):
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p1", "resource": {
            "resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": birth,
            "name": [{"family": "Quenby", "given": ["Albrecht"]}], "telecom": [{"system": "phone", "value": "617-555-0199"}],
            "address": [{"line": ["12 Orchard Lane"], "city": "Springfield", "postalCode": "01105", "state": "MA"}],
            "identifier": [{"system": "http://hospital.example/mrn", "value": "MRN-77812"}]}},
        {"fullUrl": "urn:uuid:e1", "resource": {
            "resourceType": "Encounter", "id": "e1", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "urn:uuid:p1"}, "period": {"start": "2019-05-01T10:00:00Z"}}},
        {"fullUrl": "urn:uuid:o1", "resource": {
            "resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4", "display": "Hemoglobin A1c"}],
                     "text": "Hemoglobin A1c"},
            "subject": {"reference": "urn:uuid:p1"}, "encounter": {"reference": "urn:uuid:e1"},
            "effectiveDateTime": "2019-05-01T10:00:00Z",
            "valueQuantity": {"value": 7.25, "unit": "%"},
            "referenceRange": [{"low": {"value": 4.0, "unit": "%"}, "high": {"value": 5.6, "unit": "%"}}]}},
        *extra_entries]}


def test_ages_over_89_are_grouped_and_notes_are_masked(tmp_path):
    note = ("Albrecht Quenby was seen today by Dr. Miriam Holloway. Call 617-555-0199 or write to "
            "12 Orchard Lane, Springfield. DOB 1921-02-03, MRN-77812. HbA1c is rising.")
    report = {"fullUrl": "urn:uuid:r1", "resource": {
        "resourceType": "DiagnosticReport", "id": "r1", "status": "final",
        "code": {"text": "History and physical note"}, "subject": {"reference": "urn:uuid:p1"},
        "encounter": {"reference": "urn:uuid:e1"}, "effectiveDateTime": "2019-05-01T10:00:00Z",
        "presentedForm": [{"contentType": "text/plain", "data": base64.b64encode(note.encode()).decode()}]}}
    f = tmp_path / "b.json"
    f.write_text(json.dumps(_minimal(extra_entries=[report])))
    doc = next(read_fhir_file(f, key=KEY))
    text = doc_json(doc)
    for value in ("Albrecht", "Quenby", "Holloway", "617-555-0199", "Orchard", "Springfield", "01105", "MRN-77812",
                  "1921-02-03", "1921"):
        assert value not in text, value
    summary = doc.sections[0].extra["summary"]
    assert summary["age_band"] == "90+" and summary["age_at_last_record"] is None
    assert "age band 90+" in doc.sections[0].text and "Age at the visit" not in text
    assert "HbA1c is rising" in text  # the clinical content of the note stays
    # the lab value exactly as written, with unit and reference range
    assert "Hemoglobin A1c [LOINC 4548-4]: 7.25 % (reference range 4.0–5.6 %)" in doc.sections[-1].text


def test_ndjson_gives_the_same_record_as_the_bundle(tmp_path):
    bundle = _minimal(birth="2010-01-01")
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    # bulk export: one resource a line, references as Type/id
    lines = json.dumps([e["resource"] for e in bundle["entry"]])
    lines = lines.replace("urn:uuid:p1", "Patient/p1").replace("urn:uuid:e1", "Encounter/e1")
    (tmp_path / "b.ndjson").write_text("\n".join(json.dumps(r) for r in json.loads(lines)) + "\n")
    a = next(read_path(tmp_path / "b.json", doc_type="patient", deid_key=KEY))
    b = next(read_path(tmp_path / "b.ndjson", deid_key=KEY))
    assert a.doc_id == b.doc_id and [s.text for s in a.sections] == [s.text for s in b.sections]
    assert "7.25 %" in b.sections[-1].text


@pytest.mark.parametrize("mutate, expected", [
    (lambda b: b["entry"][2]["resource"].update(resourceType="Observashun"),
     r"Bundle.entry\[2\]: resourceType 'Observashun' is not a FHIR R4 resource"),
    (lambda b: b["entry"][2]["resource"]["valueQuantity"].update(value="seven"),
     r"Bundle.entry\[2\] \(Observation\): field valueQuantity.value"),
    (lambda b: b["entry"][2]["resource"]["subject"].update(reference="urn:uuid:nobody"),
     r"Bundle.entry\[2\] \(Observation\).subject: refers to no Patient"),
    (lambda b: b["entry"][2]["resource"]["encounter"].update(reference="urn:uuid:gone"),
     r"Bundle.entry\[2\] \(Observation\).encounter: refers to no Encounter"),
    (lambda b: b["entry"].pop(0), r"no Patient resource"),
    (lambda b: b.update(type="document"), r"Bundle.type is 'document'"),
])
def test_bad_fhir_is_one_clear_error_per_file(tmp_path, mutate, expected):
    bundle = copy.deepcopy(_minimal())
    mutate(bundle)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bundle))
    with pytest.raises(ReaderError, match=expected) as e:
        list(read_path(f, doc_type="patient", deid_key=KEY))
    assert "Quenby" not in str(e.value) and "617-555" not in str(e.value)  # the message holds no PHI


def test_malformed_json_and_wrong_types(tmp_path):
    f = tmp_path / "broken.json"
    f.write_text('{"resourceType": "Bundle", "type": "batch", "entry": [')
    with pytest.raises(ReaderError, match="malformed JSON at line 1"):
        list(read_path(f, doc_type="patient", deid_key=KEY))
    nd = tmp_path / "x.ndjson"
    nd.write_text('{"resourceType": "Patient", "id": "a"}\nnot json\n')
    with pytest.raises(ReaderError, match="line 2: malformed JSON"):
        list(read_path(nd, deid_key=KEY))
    md = tmp_path / "notes.md"
    md.write_text("# a note\n\ntext\n")
    with pytest.raises(ReaderError, match="doc type 'patient' is for FHIR"):
        list(read_path(md, doc_type="patient", deid_key=KEY))
    with pytest.raises(ReaderError, match="FHIR NDJSON is always a patient record"):
        list(read_path(nd, doc_type="guideline", deid_key=KEY))  # never relabelled past de-identification
    with pytest.raises(ReaderError, match="de-identification key"):
        list(read_path(nd))


def test_installation_key_is_made_once_and_kept(tmp_path):
    k = installation_key(tmp_path)
    assert len(k) == 32 and installation_key(tmp_path) == k
    assert oct((tmp_path / "deid.key").stat().st_mode & 0o777) == "0o600"
    (tmp_path / "deid.key").write_text("garbage")
    with pytest.raises(ValueError, match="not a de-identification key"):
        installation_key(tmp_path)
