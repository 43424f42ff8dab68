"""Patient sources through the ingest pipeline (real embedder, Qdrant Edge): a FHIR bulk-export folder (one NDJSON
file per resource type) is joined into one record per patient, equal to the record from the same patient's
Bundle; a new de-identification key re-ingests every patient source."""
from __future__ import annotations

import json
import shutil

import pytest

from test_fhir_reader import bundles


def bulk_export(bundle: dict, folder) -> list[str]:
    """Write a Bundle as FHIR bulk export does: <ResourceType>.ndjson, one resource a line, references as Type/id
    (the bundle's urn:uuid fullUrls rewritten). Returns the file names."""
    text = json.dumps([e["resource"] for e in bundle["entry"]])
    for e in bundle["entry"]:
        r = e["resource"]
        text = text.replace(f'"{e["fullUrl"]}"', f'"{r["resourceType"]}/{r["id"]}"')
    by_type: dict[str, list[dict]] = {}
    for r in json.loads(text):
        by_type.setdefault(r["resourceType"], []).append(r)
    folder.mkdir(parents=True, exist_ok=True)
    for rt, resources in by_type.items():
        (folder / f"{rt}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in resources))
    return sorted(f"{rt}.ndjson" for rt in by_type)


def ingest(data_dir, embedder, *specs):
    """(report, {chunk id: payload without the ingest unit}) of a fresh index under data_dir (the unit, a file or
    a folder, is in `corpus` and in the hash of the labels, `meta_hash`)."""
    from carecite.runtime import open_index
    from conftest import make_settings
    from ingest.pipeline import Ingestor

    s = make_settings(data_dir)
    with open_index(s, create=True, dim=embedder.dim) as index:
        report = Ingestor.from_settings(index, embedder, s, show_progress=False).run(list(specs))
        chunks = {c.id: {k: v for k, v in c.payload().items() if k not in ("corpus", "meta_hash")} for c, _ in index.scroll()}
    return report, chunks


def test_a_bulk_export_folder_is_joined_into_the_bundles_record(tmp_path, embedder, data_mirror):
    from ingest.pipeline import SourceSpec

    f = bundles(data_mirror)[1]
    bundle = json.loads(f.read_text())
    names = bulk_export(bundle, tmp_path / "export")
    assert {"Patient.ndjson", "Observation.ndjson", "Encounter.ndjson"} <= set(names)
    (tmp_path / "a").mkdir()
    shutil.copy(f, tmp_path / "a" / f.name)  # named after the patient, as Synthea names them
    a_report, a = ingest(tmp_path / "a", embedder, SourceSpec("bundle", path=tmp_path / "a" / f.name,
                                                              doc_type="patient", source="S"))
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "deid.key", tmp_path / "b" / "deid.key")  # one installation: the same pseudonym
    b_report, b = ingest(tmp_path / "b", embedder, SourceSpec("export", path=tmp_path / "export",
                                                              doc_type="patient", source="S"))
    assert not a_report.errors and not b_report.errors, (a_report.errors, b_report.errors)
    assert a_report.docs_new == b_report.docs_new == 1
    assert a and a == b  # same chunks, ids, texts, metadata (pseudonym, dates, codes, entries)
    (doc_id,) = {p["doc_id"] for p in b.values()}
    assert any(p["section"] == "Summary" for p in b.values())
    assert any("Observation" in p["resource_type"] for p in b.values())  # the observations found their patient
    # the time per file: the bundle and the export each one row, named by the pseudonym, never by the file name
    for report in (a_report, b_report):
        (row,) = report.files
        assert row["file"] == doc_id
        assert row["docs"] == 1 and row["chunks"] == len(b) and row["read_s"] > 0 and row["embed_s"] > 0
        assert abs(row["embed_s"] - report.embed_seconds) < 0.01  # the only file: all of the embedding
        assert f.name.split("_")[0] not in report.summary() and row["file"] in report.summary()

    # a bad file of the export fails the whole export, naming file, line and field; nothing is half-stored
    obs = (tmp_path / "export" / "Observation.ndjson").read_text().splitlines()
    broken = json.loads(obs[3])
    broken["subject"]["reference"] = "Patient/nobody"
    (tmp_path / "export" / "Observation.ndjson").write_text("\n".join([*obs[:3], json.dumps(broken), *obs[4:]]))
    report, chunks = ingest(tmp_path / "c", embedder, SourceSpec("export", path=tmp_path / "export",
                                                                 doc_type="patient"))
    assert chunks == {} and len(report.errors) == 1
    where, message = report.errors[0]
    assert where == str(tmp_path / "export") and "Observation.ndjson line 4 (Observation).subject" in message


def test_a_new_deid_key_reingests_patient_sources(tmp_path, embedder, data_mirror):
    """deid.key is part of a patient source's fingerprint: under a new key the same files are read again, the
    records get the new key's pseudonyms, and those made under the old key are removed (never left as
    'unchanged'). Other sources do not depend on the key."""
    from assistant.patients import list_patients
    from carecite.runtime import open_index
    from conftest import make_settings
    from indexes.types import Filters
    from ingest.deid import PatientDeid, installation_key
    from ingest.pipeline import Ingestor, SourceSpec, _holds_patients

    folder = tmp_path / "records"
    folder.mkdir()
    ids = []
    for f in bundles(data_mirror)[:2]:
        shutil.copy(f, folder / f.name)
        ids += [e["resource"]["id"] for e in json.loads(f.read_text())["entry"]
                if e["resource"]["resourceType"] == "Patient"]
    s = make_settings(tmp_path / "data")
    with open_index(s, create=True, dim=embedder.dim) as index:
        def ingest_records():
            return Ingestor.from_settings(index, embedder, s, show_progress=False).run(
                [SourceSpec("records", path=folder, doc_type="patient")])

        def expected():
            key = installation_key(s.paths.data_dir)
            return sorted(PatientDeid(key, i).pseudonym for i in ids)

        first = ingest_records()
        old = list_patients(index)
        assert first.docs_new == 2 and old == expected()
        assert ingest_records().skipped_sources == ["records"]  # same files, same key: nothing to do
        (s.paths.data_dir / "deid.key").unlink()  # a new key: lost, or replaced on purpose
        again = ingest_records()
        assert again.skipped_sources == [] and not again.errors
        assert again.docs_new == 2 and again.docs_rekeyed == 2 and "previous de-identification key" in again.summary()
        new = list_patients(index)
        assert new == expected() and not set(new) & set(old)
        assert index.count(Filters(patient_id=old)) == 0  # no record left under the old key's pseudonyms
        assert ingest_records().skipped_sources == ["records"]  # unchanged again under the new key
    assert _holds_patients(SourceSpec("fhir-synthea"), []) and not _holds_patients(SourceSpec("medquad"), [])
