"""Patient records in the index: the leak test over everything stored and shown, filters that select one
patient's entries, patient-scoped answers citing record and guideline, and the fail-closed patient filter.

One real index per module: the ten Synthea bundles (`--corpus fhir-synthea`) and six MedQuAD topics (fever,
cough, sore throat, immunization), through the real pipeline and embedder; the extractive generator answers."""
from __future__ import annotations

import json
import re

import pytest
from starlette.testclient import TestClient

from indexes.types import Filters
from test_fhir_reader import bundles, patient_phi

GUIDES = ["4_MPlus_Health_Topics_QA/0000359.xml", "4_MPlus_Health_Topics_QA/0000242.xml",
          "4_MPlus_Health_Topics_QA/0000833.xml", "4_MPlus_Health_Topics_QA/0000187.xml",
          "4_MPlus_Health_Topics_QA/0000501.xml", "4_MPlus_Health_Topics_QA/0000885.xml"]


@pytest.fixture(scope="module")
def world(tmp_path_factory, embedder, data_mirror):
    """(settings, report, {original patient id: pseudonym}) of the module's index (closed)."""
    from carecite.runtime import open_index
    from conftest import make_settings
    from ingest.deid import PatientDeid, installation_key
    from ingest.pipeline import Ingestor, SourceSpec

    s = make_settings(tmp_path_factory.mktemp("patients"))
    specs = [SourceSpec("fhir-synthea")] + [SourceSpec(g, path=data_mirror / "medquad" / g) for g in GUIDES]
    with open_index(s, create=True, dim=embedder.dim) as index:
        report = Ingestor.from_settings(index, embedder, s, show_progress=False).run(specs)
    assert not report.errors, report.errors
    key = installation_key(s.paths.data_dir)
    ids = {}
    for f in bundles(data_mirror):
        pid = next(e["resource"]["id"] for e in json.loads(f.read_text())["entry"]
                   if e["resource"]["resourceType"] == "Patient")
        ids[pid] = PatientDeid(key, pid).pseudonym
    return s, report, ids


@pytest.fixture(scope="module")
def assistant(world):
    from assistant.pipeline import Assistant
    with Assistant(world[0]) as a:
        yield a


def _conditions(bundle_file) -> set[str]:
    return {e["resource"]["code"]["text"] for e in json.loads(bundle_file.read_text())["entry"]
            if e["resource"]["resourceType"] == "Condition"}


def test_ingest_stores_ten_records_and_reingest_keeps_their_ids(world, embedder, assistant):
    from assistant.patients import list_patients
    from ingest.pipeline import Ingestor, SourceSpec
    s, report, ids = world
    assert report.docs_new == 10 + len(GUIDES)
    index = assistant.searcher.index
    assert list_patients(index) == sorted(ids.values())
    again = Ingestor.from_settings(index, embedder, s, show_progress=False).run([SourceSpec("fhir-synthea")])
    assert again.skipped_sources == ["fhir-synthea"] and list_patients(index) == sorted(ids.values())


def test_nothing_identifying_is_stored_logged_or_shown(world, assistant, data_mirror, capsys):
    """The leak test: names, address lines, phones and identifier values of every Patient, and each patient's own
    unshifted birth date, appear nowhere in the index payloads, its metadata, the audit log or the output."""
    from assistant.patients import ask_patient, load_record
    from carecite.cli import main
    s, _, ids = world
    index = assistant.searcher.index
    payloads = [c.payload() for c, _ in index.scroll()]
    by_patient: dict[str, str] = {}
    for p in payloads:
        by_patient[p.get("patient_id", "")] = by_patient.get(p.get("patient_id", ""), "") + json.dumps(p)
    pid0 = sorted(ids.values())[0]
    answer = ask_patient(assistant, pid0, "Did this patient have a fever and what was the body temperature?")
    outputs = [json.dumps(index.get_meta()), s.audit_path.read_text(), answer.answer,
               json.dumps(load_record(index, pid0).__dict__, default=str)]
    everything = "\n".join([*by_patient.values(), *outputs]).lower()
    checked = 0
    for f in bundles(data_mirror):
        bundle = json.loads(f.read_text())
        phi, birth = patient_phi(bundle)
        for value in phi:
            assert value.lower() not in everything, f"{value!r} of {f.name} leaked"
            checked += 1
        own = by_patient[ids[bundle["entry"][0]["resource"]["id"]]]
        assert birth not in own, f"birth date of {f.name} in its record"
    assert checked > 100
    # the app's view of a patient (summary, timeline, plot data) holds none of it either
    from app import patient_view
    view = json.dumps(patient_view(index, pid0)[:2], default=str).lower()
    assert not [v for f in bundles(data_mirror) for v in patient_phi(json.loads(f.read_text()))[0]
                if v.lower() in view]
    capsys.readouterr()


def test_filters_select_one_patients_entries_since_a_date(world, assistant):
    from assistant.patients import load_record
    _, _, ids = world
    index = assistant.searcher.index
    pid = sorted(ids.values())[1]
    rec = load_record(index, pid)
    obs_dates = sorted(e["date"][:10] for e in rec.timeline if e["type"] == "Observation")
    assert obs_dates, "each Synthea patient here has vital signs"
    since = obs_dates[0]
    flt = Filters(patient_id=[pid], resource_type=["Observation"], date_from=since)
    hits = assistant.searcher.search("body temperature", flt, top_k=20)
    assert hits and all(h.chunk.metadata["patient_id"] == pid and "Observation" in h.chunk.metadata["resource_type"]
                        and h.chunk.metadata["date"] >= since for h in hits)
    later = Filters(patient_id=[pid], resource_type=["Observation"], date_from="2100-01-01")
    assert assistant.searcher.search("body temperature", later) == []
    # a code filter: LOINC 8310-5 is body temperature
    coded = assistant.searcher.search("temperature", Filters(patient_id=[pid], code=["8310-5"]))
    assert coded and all("8310-5" in h.chunk.metadata["code"] for h in coded)
    # the tracked series for the plot
    series = rec.series()
    assert "Body temperature" in series and "Body weight" in series and "Systolic blood pressure" in series


def test_patient_answer_cites_record_and_guideline_differently(world, assistant):
    from assistant.patients import ask_patient, load_record
    _, _, ids = world
    pid = sorted(ids.values())[2]
    answer = ask_patient(assistant, pid, "What was this patient's body temperature, and how is a fever treated?")
    assert not answer.abstained, answer.abstain_reason
    record = {n for n in answer.labels}
    assert any(src.doc_type == "patient" for src in answer.sources)
    assert any(src.doc_type == "guideline" for src in answer.sources)
    assert re.search(r"\[P\d+, \d{4}-\d{2}-\d{2}\]", answer.answer), answer.answer  # a record entry, dated
    assert re.search(r"\[\d+\]", answer.answer), answer.answer  # a guideline passage
    record_sents = [v for v in answer.sentences if any(n in answer.labels for n in v.citations)]
    assert answer.record_cited and any(v.supported for v in record_sents)  # verified like any other citation
    # every number the answer takes from the record is as the record has it
    temps = {e["value"] for e in load_record(assistant.searcher.index, pid).timeline
             if e["type"] == "Observation" and e.get("code") == "8310-5"}
    assert any(t in answer.answer for t in temps), (temps, answer.answer)
    assert all(src.doc_id == f"patient:{pid}" for src in answer.sources if src.doc_type == "patient")
    assert record and all(answer.sources[n - 1].doc_type == "patient" for n in record)


def test_a_question_the_record_cannot_answer_says_so(world, assistant):
    from assistant.patients import RECORD_SILENT, ask_patient
    pid = sorted(world[2].values())[0]
    answer = ask_patient(assistant, pid, "What is this patient's HbA1c?")
    assert answer.answer.startswith(RECORD_SILENT) and not answer.record_cited
    if not answer.abstained:  # the chat says it too (it renders the verdicts, not answer.answer)
        from app import answer_html
        from assistant.patients import answer_json
        assert RECORD_SILENT in answer_html(answer_json(answer))


def test_patient_filter_fails_closed_on_two_patients_with_the_same_conditions(world, assistant, data_mirror):
    from assistant.patients import PatientError, ask_patient
    _, _, ids = world
    files = bundles(data_mirror)
    a, b = files[0], files[1]
    shared = _conditions(a) & _conditions(b)
    assert {"COVID-19", "Fever (finding)"} <= shared  # overlapping conditions: retrieval alone cannot tell them apart
    pa, pb = (ids[json.loads(f.read_text())["entry"][0]["resource"]["id"]] for f in (a, b))
    for me, other in ((pa, pb), (pb, pa)):
        for q in ("fever cough body temperature oxygen saturation", f"What does the record of {other} say about COVID-19?"):
            answer = ask_patient(assistant, me, q)
            docs = {src.doc_id for src in answer.sources if src.doc_type == "patient"}
            assert docs <= {f"patient:{me}"}, (q, docs)
            assert other not in answer.answer
    with pytest.raises(PatientError, match="no patient"):
        ask_patient(assistant, "P-0000000000", "Did this patient have COVID-19?")
    with pytest.raises(PatientError, match="not a pseudonym"):
        ask_patient(assistant, "", "Did this patient have COVID-19?")
    with pytest.raises(PatientError, match="contradicts|name patient"):
        ask_patient(assistant, pa, "fever?", filters=[f"patient_id={pb}"])
    # without a patient, record entries are never evidence for a general question
    general = assistant.ask("How is a fever treated in children with COVID-19?")
    assert not any(src.doc_type == "patient" for src in general.sources)


def test_api_patient_search_and_answer(world, assistant):
    from assistant.api import create_app
    s, _, ids = world
    pa, pb = sorted(ids.values())[:2]
    with TestClient(create_app(s, assistant), raise_server_exceptions=False) as client:
        r = client.post("/v1/search", json={"query": "COVID-19 fever", "patient": pa, "top_k": 50})
        assert r.status_code == 200 and r.json()["hits"]
        assert {h["doc_id"] for h in r.json()["hits"]} == {f"patient:{pa}"}
        r = client.post("/v1/search", json={"query": "COVID-19 fever", "filters": {"patient_id": [pb]}, "top_k": 50})
        assert {h["doc_id"] for h in r.json()["hits"]} == {f"patient:{pb}"}
        assert client.post("/v1/search", json={"query": "fever", "patient": "P-0000000000"}).status_code == 404
        assert client.post("/v1/search", json={"query": "fever", "patient": "Jane Doe"}).status_code == 400
        r = client.post("/v1/search", json={"query": "fever", "patient": pa, "filters": {"patient_id": [pb]}})
        assert r.status_code == 400
        body = {"messages": [{"role": "user", "content": "What was this patient's body temperature, and how is a "
                                                         "fever treated?"}], "carecite": {"patient": pa}}
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        ext = r.json()["carecite"]
        assert ext["patient_id"] == pa and ext["record_cited"]
        labels = {c["label"] for c in ext["citations"] if c["record"]}
        # an encounter's entries carry its date; the summary and theme sections (conditions, ...) have none
        assert labels and all(re.fullmatch(r"\[P\d+(, \d{4}-\d{2}-\d{2})?\]", x) for x in labels)
        assert any(re.fullmatch(r"\[P\d+, \d{4}-\d{2}-\d{2}\]", x) for x in labels)
        assert any(x in r.json()["choices"][0]["message"]["content"] for x in labels)
        assert all(c["doc_id"] == f"patient:{pa}" for c in ext["citations"] if c["record"])
        stream = client.post("/v1/chat/completions", json={**body, "stream": True})
        assert stream.status_code == 200 and '"record": true' in stream.text
        bad = client.post("/v1/chat/completions", json={**body, "carecite": {"patient": "P-0000000000"}})
        assert bad.status_code == 404 and bad.json()["error"]["param"] == "patient"


def test_app_chat_about_a_patient_and_bad_ids(world, assistant):
    """The main chat with a patient: record citations labelled [P<k>, date] (also in the copied text); an unknown
    or malformed patient is said in the chat, not raised; the tab's box asks for a patient first."""
    from app import CareCiteApp
    s, _, ids = world
    cc = CareCiteApp(s, assistant.searcher.index, assistant=assistant)
    pid = sorted(ids.values())[2]
    *_, (chat, box, panel, turns, ans, _ids, copied) = cc.chat(FEVER_Q, [], [], {}, "All sources", [], [], pid)
    assert ans["patient_id"] == pid and ans["record_cited"] and box == ""
    assert re.search(r">\[P\d+, \d{4}-\d{2}-\d{2}\]</a>", chat[-1]["content"])
    assert re.search(r"^\[P\d+, \d{4}-\d{2}-\d{2}\] Patient " + pid, copied, re.M), copied
    assert {c["doc_id"] for c in ans["citations"] if c["record"]} == {f"patient:{pid}"}
    for bad, said in (("P-0000000000", "no patient P-0000000000"), ("Jane Doe", "is not a pseudonym")):
        *_, (chat, box, *_rest) = cc.chat("fever?", [], [], {}, "All sources", [], [], bad)
        assert "Could not answer" in chat[-1]["content"] and said in chat[-1]["content"] and box == "fever?"
    assert "Choose a patient first" in next(cc.ask_patient(None, "fever?"))[0]
    cleared = cc.scope_chat(None)
    assert cleared[:4] == ([], [], None, {}) and cleared[-1] == ""
    assert f"Answering about patient <b>{pid}</b>" in cc.scope_chat(pid)[-1]


RECORD_LABEL = re.compile(r"^\[P\d+, \d{4}-\d{2}-\d{2}\]$")  # a dated record entry
FEVER_Q = "What was this patient's body temperature, and how is a fever treated?"


def _open_record_citation(answer, pid: str) -> str:
    """Click an answer's first dated record citation; checks that it opens that entry of this patient's record
    (its label, the patient, the entry's date in the passage) and that a guideline [n] is cited too."""
    assert answer.locator("a.cc-cite", has_text=re.compile(r"^\[\d+\]$")).count() >= 1  # a guideline
    cite = answer.locator("a.cc-cite", has_text=RECORD_LABEL).first
    label, key = cite.inner_text(), cite.get_attribute("href").lstrip("#")
    entry = answer.locator(f"details.{key}")
    assert not entry.locator("blockquote").is_visible()
    cite.click()
    entry.locator("blockquote").wait_for(state="visible")
    head, date = entry.locator("summary").inner_text(), label[-11:-1]
    assert head.startswith(label) and f"Patient {pid}" in head and date in head, (label, head)
    assert date in entry.locator("blockquote").inner_text()  # the encounter of that date
    return key


@pytest.mark.browser
def test_patients_tab_and_patient_chat_in_a_browser(world, assistant):
    """The Patients tab: open a patient, see the summary and the plot, ask, open a record citation. Then the same
    patient in the main chat: the scope is shown, the answer cites record and guideline, a record citation opens
    its entry (in the answer and the sources panel); clearing the patient starts a general conversation."""
    from playwright.sync_api import sync_playwright

    from app import CareCiteApp, launch
    from live_servers import free_port
    from test_browser import ARTIFACTS, CHROMIUM_ARGS, TIMEOUT_MS, ask, chromium_path
    s, _, ids = world
    pid = sorted(ids.values())[2]
    demo = launch(CareCiteApp(s, assistant.searcher.index, assistant=assistant), "127.0.0.1", free_port(),
                  block=False)
    try:
        url = demo.local_url.rstrip("/")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            pg = browser.new_page(viewport={"width": 1366, "height": 900})
            pg.set_default_timeout(TIMEOUT_MS)
            outside: list[str] = []
            pg.on("request", lambda r: outside.append(r.url)
                  if not r.url.startswith((url, "data:", "blob:")) else None)
            pg.goto(url)
            pg.get_by_role("tab", name="Patients").click()
            pg.locator("#cc-patient input").click()
            pg.get_by_role("option", name=pid).click()
            summary = pg.locator("#cc-patient-summary")
            summary.filter(has_text=f"Patient {pid}").wait_for()
            assert "Age band" in summary.inner_text() and "COVID-19" in pg.locator("#cc-timeline").inner_text()
            pg.locator("#cc-patient-plot img, #cc-patient-plot canvas, #cc-patient-plot svg").first.wait_for()
            pg.locator("#cc-patient-q textarea").fill(FEVER_Q)
            pg.locator("#cc-patient-ask").click()
            answer = pg.locator("#cc-patient-answer .cc-answer")
            answer.locator(".cc-foot:has-text('answer id')").wait_for()
            _open_record_citation(answer, pid)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(ARTIFACTS / "patients.png"), full_page=True)

            # the same patient in the main chat
            pg.locator("#cc-patient-to-chat").click()
            scope = pg.locator("#cc-chat-scope")
            scope.filter(has_text=f"Answering about patient {pid}").wait_for()
            assert pg.locator("#cc-chat-patient input").input_value() == pid
            ask(pg, FEVER_Q)
            answer = pg.locator("#cc-chat .cc-answer").last
            key = _open_record_citation(answer, pid)
            assert pg.locator(f"#cc-sources-panel details.{key}[open] blockquote").is_visible()
            assert all(f"patient:{pid}" in t for t in pg.locator("#cc-sources-panel details .cc-foot")
                       .all_text_contents() if "patient" in t)  # no other patient's entry among the evidence
            pg.screenshot(path=str(ARTIFACTS / "patient_chat.png"), full_page=True)

            # clearing the patient: a new, general conversation
            pg.locator("#cc-chat-unscope").click()
            scope.wait_for(state="hidden")
            assert pg.locator("#cc-chat .cc-answer").count() == 0
            assert pg.locator("#cc-chat-patient input").input_value() == ""
            browser.close()
        assert outside == [], outside[:5]
    finally:
        demo.close()


def test_cli_ask_patient_and_patients(world, assistant, capsys):
    from carecite.cli import main
    s, _, ids = world
    pid = sorted(ids.values())[3]
    assistant.searcher.index.close()  # one holder per index: the CLI opens it itself
    try:
        args = ["--preset", "fast", "--data-dir", str(s.paths.data_dir)]
        assert main([*args, "patients"]) == 0
        assert capsys.readouterr().out.split() == sorted(ids.values())
        assert main([*args, "patients", pid]) == 0
        assert "## Summary" in capsys.readouterr().out
        assert main([*args, "ask", "What was this patient's body temperature?", "--patient", pid]) == 0
        out = capsys.readouterr().out
        assert re.search(r"\[P\d+, \d{4}-\d{2}-\d{2}\]", out), out
        assert main([*args, "ask", "fever?", "--patient", "P-0000000000"]) != 0
    finally:
        from carecite.runtime import open_searcher
        assistant.searcher = open_searcher(s)
