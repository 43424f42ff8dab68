"""The Gradio app over the small real index: its named API through gradio_client, and its handlers
(feedback into the audit log, abstentions, cases, uploads with the PHI guard) on the real pipeline."""
from __future__ import annotations

import re
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from carecite.settings import Settings
from live_servers import running_app

QUESTION = "What are the symptoms of breast cancer?"


@pytest.fixture(scope="module")
def app(small_index):
    with running_app(small_index) as (url, cc):
        yield url, cc


@pytest.fixture(scope="module")
def client(app):
    return Client(app[0], verbose=False)


def test_ask_endpoint_answers_with_citations(client):
    ans = client.predict(QUESTION, "All sources", [], [], [], api_name="/ask")
    assert not ans["abstained"] and "breast" in ans["answer"].lower()
    cited = [c for c in ans["citations"] if c["cited"]]
    assert cited and all(c["passage"] and c["title"] for c in cited)
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", ans["answer"])}
    assert numbers == {c["n"] for c in cited}


def test_ask_endpoint_filters_and_follow_ups(client):
    ans = client.predict(QUESTION, "Cases", [], [], [], api_name="/ask")
    assert ans["filters"] == {"doc_type": ["case"]}
    assert ans["citations"] and {c["doc_type"] for c in ans["citations"]} == {"case"}
    ans = client.predict("How is it treated?", "All sources", [], [], [
        {"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Signs include a lump [1]."}],
        api_name="/ask")
    assert "breast cancer" in ans["standalone_query"].lower()
    onc = client.predict(QUESTION, "All sources", [], ["oncology"], [], api_name="/ask")  # NCI pages are oncology
    assert onc["filters"]["specialty"] == ["oncology"] and onc["citations"]
    assert {c["source"] for c in onc["citations"]} == {"MedQuAD/CancerGov"}


def test_ask_endpoint_reports_bad_input(client):
    with pytest.raises(AppError, match="unknown scope"):
        client.predict(QUESTION, "Everything", [], [], [], api_name="/ask")
    with pytest.raises(AppError, match="empty"):
        client.predict("   ", "All sources", [], [], [], api_name="/ask")


def test_chat_endpoint_streams_rendered_citations(client):
    job = client.submit(QUESTION, [], "Guidelines & references", [], [], api_name="/chat")
    final = job.result()
    updates = job.outputs()
    chat, box, panel, copy_text = final
    assert len(updates) >= 3  # placeholder, sources and tokens, then the verified answer
    html = chat[-1]["content"][0]["text"]
    assert 'class="cc-cite"' in html and '<details class="cc-src' in html and "References" in html
    assert box == "" and panel.count("<details") >= 2 and "· case" not in panel
    assert "\nReferences:\n[" in copy_text and "<" not in copy_text


def test_unsupported_sentences_and_abstentions_are_marked(app):
    from app import answer_html, answer_with_references, sources_panel
    cc = app[1]
    ans = cc.ask(QUESTION)
    ans["sentences"][0].update(supported=False, reason="number mismatch: 5 mg vs 50 mg")
    html = answer_html(ans)
    assert html.count('class="cc-unsupported"') == 1 and "number mismatch: 5 mg vs 50 mg" in html

    off = cc.ask("Which football team won the 1998 world cup?")
    assert off["abstained"] and off["citations"]
    html, panel = answer_html(off), sources_panel(off)
    assert "No supported answer" in html and "Closest passages" in html
    assert html.count("<details") == len(off["citations"]) and "Closest passages" in panel
    assert answer_with_references(off).startswith("Not found in the indexed sources")


def test_feedback_is_stored_with_the_answer(app, small_index):
    from assistant.audit import AuditLog
    cc = app[1]
    assert "Ask a question first" in cc.feedback(None, "👍 helpful", [], "")
    ans = cc.ask(QUESTION)
    assert "Choose a rating" in cc.feedback(ans, None, [], " ")
    msg = cc.feedback(ans, "👎 not helpful", ["wrong citation", "unsafe"], "cites the wrong passage")
    assert "saved" in msg
    fb = [r for r in AuditLog.from_settings(small_index).records()
          if r["type"] == "feedback" and r["answer_id"] == ans["answer_id"]]
    assert fb == [{**fb[0], "rating": -1, "kind": "wrong_citation,unsafe", "comment": "cites the wrong passage"}]

    # the thumbs on a chat message: its index maps to the answer shown there
    import gradio as gr
    assert "saved" in cc.like({"3": ans["answer_id"]}, gr.LikeData(None, {"index": 3, "value": "", "liked": True}))
    assert "no answer record" in cc.like({}, gr.LikeData(None, {"index": 1, "value": "", "liked": True}))
    ratings = [r["rating"] for r in AuditLog.from_settings(small_index).records()
               if r["type"] == "feedback" and r["answer_id"] == ans["answer_id"]]
    assert ratings == [-1, 1]


def test_cases_browse_read_similar_and_scoped_questions(app):
    cc = app[1]
    choices, info = cc.case_choices()
    assert len(choices) == 12 and "12 cases" in info and all(d.startswith("aci:") for _, d in choices)
    doc_id = choices[0][1]
    page = cc.open_case(doc_id)
    assert "<h4>" in page and re.search(r"Assessment|Plan", page)
    update, html = cc.similar_cases(doc_id)
    similar = [d for _, d in update["choices"]]
    assert 1 <= len(similar) <= 5 and doc_id not in similar and all(d.startswith("aci:") for d in similar)
    found, _ = cc.case_choices("knee pain")
    assert found and all(d.startswith("aci:") for _, d in found)

    *_, (answer, panel) = list(cc.ask_case(doc_id, "What is the plan for this patient?"))
    assert 'class="cc-answer"' in answer
    assert "· case" in panel
    # every passage is from this case or from a guideline/reference
    scoped_types = set(re.findall(r'<div class="cc-foot">[^<·]*· (\w+)', panel))
    assert scoped_types <= {"case", "guideline", "reference"}
    assert set(re.findall(r"(aci:[\w:]+)</div>", panel)) <= {doc_id}


def test_empty_index_message_and_uploads_with_phi_guard(tmp_path, embedder):
    from app import CareCiteApp
    from carecite.runtime import open_index
    s = Settings.from_name("fast")
    s.paths.data_dir = tmp_path / "data"
    s.phi.policy = "reject"
    guideline = tmp_path / "clinic-hypertension.md"
    guideline.write_text("# Clinic protocol: hypertension follow-up\n\n## Home monitoring\n"
                         "Patients measure home blood pressure twice daily for seven days before each visit.\n")
    case = tmp_path / "case-note.txt"
    case.write_text("Mr. John Carter is a 54-year-old man seen on 03/14/2021, phone 415-555-0199, "
                    "with right knee pain after a fall.\n")
    calls = []
    with open_index(s, create=True, dim=embedder.dim) as index:
        cc = CareCiteApp(s, index)
        assert "The index is empty" in cc.status_md() and "The index is empty" in cc.stats_html()
        report, phi, stats, sources, status = cc.ingest([str(guideline)], "guideline", "Clinic",
                                                        progress=lambda *a, **k: calls.append(a))
        assert index.count() > 0 and "Clinic" in stats and "Clinic" in sources["choices"]
        assert "1 new" in report and phi == "" and "empty" not in status and calls
        ans = cc.ask("How often should patients measure home blood pressure?")
        assert not ans["abstained"] and any(c["source"] == "Clinic" and c["cited"] for c in ans["citations"])

        before = index.count()
        report, phi, *_ = cc.ingest([str(case)], "case", "Clinic cases", progress=lambda *a, **k: None)
        assert index.count() == before
        assert "1 case document(s) rejected" in phi and "NAME" in phi and "John" not in phi
        assert "Choose one or more files" in cc.ingest([], "guideline", "", progress=lambda *a, **k: None)[0]


def test_case_sections_rebuild_overlapping_chunks():
    from app import _join_overlap
    a = "First sentence here. Second sentence is longer than that."
    b = "Second sentence is longer than that. Third sentence ends."
    assert _join_overlap(a, b) == "First sentence here. Second sentence is longer than that. Third sentence ends."
    assert _join_overlap("", b) == b
    assert _join_overlap("Alpha beta gamma delta.", "Unrelated text follows.") == \
        "Alpha beta gamma delta.\nUnrelated text follows."


def test_non_loopback_launch_needs_a_token(app, small_index):
    from app import launch
    from assistant.api import BindError
    with pytest.raises(BindError, match="without a bearer token"):
        launch(app[1], "0.0.0.0", 1, block=False)
    assert app[0].startswith("http://127.0.0.1:")
