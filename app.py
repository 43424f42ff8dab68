"""CareCite chat app: `python app.py [--preset demo|fast|default|test] [--host 127.0.0.1] [--port 7860]`.

On first start it indexes a first slice of the default corpus, opens the UI on loopback and loads the rest in a
background thread (the status line shows the progress; answers say they come from what is indexed so far):
  Chat   streamed answers, [n] citations that open (hover: tooltip, click: the passage), a sources panel,
         unsupported sentences marked, abstentions with the closest passages, follow-ups, filters,
         "copy answer with references", feedback stored with the answer's audit record. With a patient chosen
         (next to the filters, or "Ask about this patient in the chat"), answers are about that patient.
  Cases  browse and search case summaries, read one, find similar cases, ask about it (+ guidelines).
  Patients  pick a de-identified FHIR record by pseudonym: summary, timeline, tracked observations plotted, and
         questions about the patient citing the record [P1, date] and the guidelines [n].
  Index  counts by source and type; upload files to ingest, with progress and the PHI-guard report.
Offline: no analytics, no external fonts or CDNs. UI wiring only; answering lives in assistant/, ingestion in ingest/.
The named Gradio API endpoint "ask" (question, scope, sources, specialties, history) returns Answer.to_json().
"""
from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # offline product: no telemetry, no version check
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import html  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

from assistant.errors import AssistantError, FeedbackError  # noqa: E402
from assistant.scope import scoped_assistant  # noqa: E402
from assistant.verify import CITATION, citation_numbers  # noqa: E402
from carecite.settings import Settings  # noqa: E402
from indexes.base import IndexMissingError, VectorIndex  # noqa: E402
from indexes.searcher import QueryError  # noqa: E402
from indexes.types import FilterError, Filters  # noqa: E402

SCOPES = {"All sources": None, "Guidelines & references": ["guideline", "reference"], "Cases": ["case"]}
FEEDBACK_FLAGS = ["wrong citation", "unsafe"]
CASE_SCOPE = ["guideline", "reference"]  # what "this case plus the guidelines" adds to the case
# Events that embed text run one at a time: the embedder's tokenizer is not thread-safe.
ENGINE = {"concurrency_id": "engine", "concurrency_limit": 1}
# Answers run side by side: the Assistant serialises its CPU stages itself (work_lock) and the local model queues
# its requests, so every waiting user gets the quick answer (verified quotes) and their place in the queue at once.
ANSWERS = {"concurrency_id": "answers", "concurrency_limit": 8}
SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]

CSS = """
.cc-answer p { margin: 0 0 .4em 0; }
.cc-cite { font-size: .8em; vertical-align: super; text-decoration: none; font-weight: 600; cursor: pointer;
           color: var(--color-accent); padding: 0 1px; }
.cc-unsupported { background: #fff3cd; border-bottom: 2px dotted #b45309; }
.cc-unsupported::before { content: "⚠ unverified: "; font-size: .75em; font-weight: 600; color: #b45309; }
.cc-abstain { border-left: 4px solid #b91c1c; background: #fef2f2; color: #7f1d1d; padding: .4em .7em;
              margin-bottom: .5em; border-radius: 4px; }
.cc-src { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: .25em .6em; margin: .3em 0; }
.cc-src summary { cursor: pointer; font-weight: 600; font-size: .92em; }
.cc-src blockquote { margin: .4em 0; padding-left: .6em; border-left: 3px solid var(--border-color-primary);
                     white-space: pre-wrap; font-size: .92em; }
.cc-src .cc-badge, .cc-badge { display: inline-block; font-size: .72em; padding: 0 .45em; border-radius: 8px;
                               margin-left: .35em; background: var(--background-fill-secondary); font-weight: 500; }
.cc-badge.ok { background: #dcfce7; color: #166534; } .cc-badge.bad { background: #fef3c7; color: #92400e; }
.cc-foot { font-size: .75em; opacity: .75; margin-top: .4em; }
.cc-panel { max-height: 62vh; overflow-y: auto; }
.cc-case h4 { margin: .8em 0 .2em 0; } .cc-case div { white-space: pre-wrap; }
.cc-empty { border: 1px dashed #b45309; background: #fffbeb; padding: .6em .9em; border-radius: 6px; }
.cc-notice { border-left: 4px solid #b91c1c; background: #fee2e2; color: #7f1d1d; padding: .4em .7em;
             margin-bottom: .5em; border-radius: 4px; font-weight: 600; }
.cc-read, .cc-note, .cc-quotes { font-size: .85em; padding: .2em .5em; margin-bottom: .4em; border-radius: 4px;
                                 background: var(--background-fill-secondary); }
.cc-draft { opacity: .8; border-top: 1px dashed var(--border-color-primary); margin-top: .5em; padding-top: .4em; }
"""

# Click on [n]: open that passage in the message and in the sources panel (hover shows it as a tooltip).
JS = """() => {
  document.addEventListener('click', (e) => {
    const a = e.target.closest && e.target.closest('a.cc-cite');
    if (!a) return;
    e.preventDefault(); e.stopPropagation();
    let first = null;
    const key = (a.getAttribute('href') || '').slice(1);
    if (!/^cc-c-[A-Za-z0-9]+-[0-9]+$/.test(key)) return;
    document.querySelectorAll('details.' + key).forEach((d) => {
      d.open = true; first = first || d;
    });
    if (first) first.scrollIntoView({block: 'nearest'});
  }, true);
}"""


# ---------------------------------------------------------------- formatting an Answer

def _esc(text: str | None) -> str:
    return html.escape(text or "", quote=True)


def _oneline(text: str) -> str:
    """HTML that keeps line breaks without blank lines (a blank line would end the Markdown HTML block)."""
    return "<br>".join(_esc(line) for line in text.strip().splitlines() if line.strip())


def _link_citations(text: str, aid: str, sources: dict[int, dict]) -> str:
    """Escaped sentence text with each [n] turned into a link (tooltip: title, section, passage)."""
    out, pos = [], 0
    for m in CITATION.finditer(text):
        out.append(_esc(text[pos:m.start()]))
        for n in sorted(set(citation_numbers(m.group(1)))):
            src = sources.get(n)
            if src is None:
                out.append(f"[{n}]")
                continue
            tip = f"{src['title']} — {src['section']}\n{src['passage'][:500]}"
            label = src.get("label") or f"[{n}]"  # a patient record entry: [P1, date]
            out.append(f'<a class="cc-cite" href="#{_cite_key(aid, n)}" title="{_esc(tip)}">{_esc(label)}</a>')
        pos = m.end()
    out.append(_esc(text[pos:]))
    return "".join(out)


def _cite_key(aid: str, n: int) -> str:
    """Links [n] to its passages (a class: the chat's HTML sanitizer drops ids and data- attributes)."""
    return f"cc-c-{re.sub(r'[^A-Za-z0-9]', '', aid)}-{n}"


def source_details(c: dict, aid: str) -> str:
    """One passage as a <details>: [n] title — section, badges; the exact passage and its source link."""
    badge = ""
    if c.get("cited"):
        badge = '<span class="cc-badge ok">supported</span>' if c.get("supported") else \
            '<span class="cc-badge bad">cited, not verified</span>'
    link = f' · <a href="{_esc(c["url"])}" target="_blank" rel="noopener">source link</a>' if c.get("url") else ""
    where = " · ".join(_esc(x) for x in (c.get("source"), c.get("doc_type")) if x)
    label = c.get("label") or f"[{c['n']}]"  # a patient record entry: [P1, date]
    return (f'<details class="cc-src {_cite_key(aid, c["n"])}">'
            f'<summary>{_esc(label)} {_esc(c["title"])}{" — " + _esc(c["section"]) if c.get("section") else ""}'
            f'{badge}</summary><blockquote>{_oneline(c["passage"])}</blockquote>'
            f'<div class="cc-foot">{where}{link} · {_esc(c["doc_id"])}</div></details>')


def answer_html(ans: dict) -> str:
    """A verified answer (Answer.to_json()) as chat HTML: sentences with linked [n], unsupported marked,
    the cited passages (or, on abstention, the closest ones) as openable <details>."""
    aid = ans["answer_id"] or "a"
    by_n = {c["n"]: c for c in ans["citations"]}
    parts = ['<div class="cc-answer">', *answer_preamble(ans, aid, by_n)]
    if ans["abstained"]:
        reason = ans.get("abstain_reason") or ""
        parts.append(f'<div class="cc-abstain"><b>No supported answer.</b> {_esc(ans["answer"])}'
                     f'{" (" + _esc(reason) + ")" if reason else ""}</div>')
        shown = ans["citations"]
    else:
        if ans.get("patient_id") and ans.get("record_cited") is False:  # patients.label_answer's RECORD_SILENT
            parts.append('<div class="cc-note" id="cc-record-silent"><b>The record does not say.</b> '
                         'What follows comes from the guidelines, not from this patient\'s record.</div>')
        sents = []
        for s in ans["sentences"]:
            if not s["supported"] and s["text"] not in ans["answer"]:
                continue  # withheld (answer.drop_unsupported): the note says how many
            body = _link_citations(s["text"], aid, by_n)
            if s.get("claim", True) and not s["supported"]:
                why = s.get("reason") or "not supported by the cited passages"
                body = f'<span class="cc-unsupported" title="{_esc(why)}">{body}</span>'
            sents.append(body)
        parts.append(f'<p>{" ".join(sents) if sents else _esc(ans["answer"])}</p>')
        uncovered = [p["question"] for p in ans.get("parts", []) if not p.get("covered")]
        if uncovered:
            parts.append('<div class="cc-note" id="cc-uncovered"><b>Not covered by the indexed sources:</b> '
                         + "; ".join(f"“{_esc(q)}”" for q in uncovered) + "</div>")
        shown = [c for c in ans["citations"] if c.get("cited")]
    if shown:
        label = "Closest passages" if ans["abstained"] else "References"
        parts.append(f'<div class="cc-foot"><b>{label}</b> (click to open)</div>')
        parts += [source_details(c, aid) for c in shown]
    gen = ans.get("models", {}).get("generator", "")
    total = ans.get("timings", {}).get("total")
    parts.append(f'<div class="cc-foot">generator: {_esc(gen)}{f" · {total:.1f} s" if total else ""} · '
                 f'answer id {_esc(ans["answer_id"][:12])}</div></div>')
    return "".join(parts)


def answer_preamble(ans: dict, aid: str, by_n: dict[int, dict]) -> list[str]:
    """Urgent-care advice first, then the words read differently, then how the answer was made."""
    out = []
    if ans.get("notice"):
        where = "" if ans.get("notice_from_sources") else \
            ' <span class="cc-badge bad">safety notice, not from the indexed sources</span>'
        out.append(f'<div class="cc-notice" id="cc-notice">⚠ {_link_citations(ans["notice"], aid, by_n)}{where}</div>')
    if ans.get("corrections"):
        read = "; ".join(f"“{_esc(c['original'])}” as “{_esc(c['replacement'])}” ({_esc(c.get('kind', ''))})"
                         for c in ans["corrections"])
        out.append(f'<div class="cc-read" id="cc-read">Read {read}.</div>')
    if ans.get("kind") == "quotes" and not ans["abstained"]:
        out.append('<div class="cc-quotes" id="cc-quotes"><b>Quoted from the sources</b> (each sentence verified '
                   'against its passage)</div>')
    if ans.get("note"):
        out.append(f'<div class="cc-note">{_esc(ans["note"])}</div>')
    return out


def draft_html(text: str, quick: dict | None = None, status: str = "verifying citations…") -> str:
    """The answer being written: the quick answer (verified quotes) on top when there is one, the draft below."""
    if quick is None:
        return f'<div class="cc-answer"><p>{_esc(text)} ▌</p><div class="cc-foot">{_esc(status)}</div></div>'
    draft = f'<div class="cc-draft"><p>{_esc(text)} ▌</p></div>' if text else ""
    return (answer_html(quick).removesuffix("</div>") + draft
            + f'<div class="cc-foot" id="cc-writing">{_esc(status)}</div></div>')


def sources_panel(ans: dict | None, sources: list | None = None) -> str:
    """The evidence of the latest answer: every passage shown to the generator, cited ones marked."""
    if ans is None and not sources:
        return '<div class="cc-foot">Sources of the latest answer appear here.</div>'
    if ans is None:  # retrieval finished, the answer is still being written
        cs = [s.to_json() for s in sources]
        return "<div>" + "".join(source_details(c, "draft") for c in cs) + "</div>"
    head = "Closest passages (no supported answer)" if ans["abstained"] else \
        f"Evidence: {sum(1 for c in ans['citations'] if c.get('cited'))} of {len(ans['citations'])} passages cited"
    if not ans["citations"]:
        return '<div class="cc-foot">No passage matched this question and these filters.</div>'
    return (f'<div><div class="cc-foot"><b>{_esc(head)}</b></div>'
            + "".join(source_details(c, ans["answer_id"]) for c in ans["citations"]) + "</div>")


def answer_with_references(ans: dict | None) -> str:
    """Plain text for the clipboard: the answer, then its numbered references."""
    if not ans:
        return ""
    refs = [c for c in ans["citations"] if c.get("cited")] or (ans["citations"] if ans["abstained"] else [])
    lines = [ans["answer"].strip(), "", "References:"] if refs else [ans["answer"].strip()]
    for c in refs:
        where = ", ".join(x for x in (c.get("section"), c.get("source")) if x)
        label = c.get("label") or f"[{c['n']}]"  # a patient record entry: [P1, date]
        lines.append(f"{label} {c['title']}" + (f" — {where}" if where else "") + (f". {c['url']}" if c.get("url")
                                                                                  else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------- cases

def _join_overlap(a: str, b: str) -> str:
    """a + b without the sentences b repeats from a's end (chunks overlap by whole sentences)."""
    for k in range(min(len(a), len(b)), 15, -1):
        if a.endswith(b[:k]):
            return a + b[k:]
    return f"{a}\n{b}" if a else b


def case_sections(index: VectorIndex, doc_id: str) -> tuple[str, list[tuple[str, str]]]:
    """(title, [(section title, text)]) of one case, rebuilt from its (PHI-guarded) chunks in order."""
    from ingest.chunker import chunk_body
    chunks = sorted((c for c, _ in index.scroll(Filters(doc_id=[doc_id]))),
                    key=lambda c: int(c.metadata.get("chunk_index", 0)))
    sections: dict[int, list] = {}
    for c in chunks:
        key = int(c.metadata.get("section_index", 0))
        title, text = sections.get(key, [c.metadata.get("section", ""), ""])
        sections[key] = [title, _join_overlap(text, chunk_body(c).strip())]
    title = chunks[0].metadata.get("title", doc_id) if chunks else doc_id
    return title, [(t, x) for _, (t, x) in sorted(sections.items())]


def _snippet(chunk, chars: int = 200) -> str:
    from ingest.chunker import chunk_body
    text = " ".join(chunk_body(chunk).split())
    return text if len(text) <= chars else text[:chars].rsplit(" ", 1)[0] + "…"


def plan_query(sections: list[tuple[str, str]], limit: int = 3000) -> str:
    """The case's assessment and plan (the whole note when it has none), as a search query."""
    ap = [x for t, x in sections if re.search(r"ASSESSMENT|PLAN|IMPRESSION", t or "", re.I)]
    return " ".join(" ".join(ap or [x for _, x in sections]).split())[:limit]


# ---------------------------------------------------------------- patients

def patient_view(index: VectorIndex, patient_id: str | None):
    """(summary HTML, timeline HTML, matplotlib figure or None) of one de-identified patient record."""
    from assistant.patients import PatientError, load_record
    if not patient_id:
        return '<div class="cc-foot">Pick a patient (pseudonym).</div>', "", None
    try:
        rec = load_record(index, patient_id)
    except PatientError as e:
        return f'<div class="cc-abstain">{_esc(str(e))}</div>', "", None
    s = rec.summary
    items = lambda xs: ", ".join(_esc(x) for x in xs) or "none recorded"  # noqa: E731
    summary = (f'<div id="cc-patient-summary"><h4>Patient {_esc(rec.patient_id)}</h4>'
               f'<div><b>Sex</b> {_esc(s.get("sex"))} · <b>Age band</b> {_esc(s.get("age_band"))} · '
               f'<b>State</b> {_esc(s.get("state") or "-")} · record {_esc((s.get("first_date") or "?")[:10])} to '
               f'{_esc((s.get("last_date") or "?")[:10])}</div>'
               f'<div><b>Active conditions:</b> {items(s.get("active_conditions", []))}</div>'
               f'<div><b>Current medications:</b> {items(s.get("current_medications", []))}</div>'
               f'<div><b>Allergies:</b> {items(s.get("allergies", []))}</div>'
               '<div class="cc-foot">De-identified: pseudonym, dates shifted by one offset per patient, no names, '
               'addresses or identifiers.</div></div>')
    rows = []
    for e in rec.timeline:
        value = " ".join(x for x in (e.get("value", ""), e.get("unit", "")) if x)
        value += "".join(f"; {c.get('display', '')} {c.get('value', '')} {c.get('unit', '')}"
                         for c in e.get("components", []))
        end = f" → {e['end'][:10]}" if e.get("end") else ""
        code = f"{e.get('system', '')} {e.get('code', '')}".strip()
        rows.append(f"<tr><td>{_esc((e.get('date') or '')[:10])}{_esc(end)}</td><td>{_esc(e['type'])}</td>"
                    f"<td>{_esc(e.get('display', ''))}</td><td>{_esc(value.strip())}</td><td>{_esc(code)}</td></tr>")
    timeline = ('<table id="cc-timeline"><thead><tr><th>date</th><th>type</th><th>entry</th><th>value</th>'
                f'<th>code</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    return summary, timeline, observation_plot(rec.series())


def observation_plot(series: dict):
    """Tracked observations over time, one panel each (blood pressure: systolic and diastolic together)."""
    if not series:
        return None
    import datetime as dt

    from matplotlib.figure import Figure  # not pyplot: no global figure list to leak into
    panels: dict[str, list[str]] = {}
    for name in series:
        panels.setdefault("Blood pressure" if "blood pressure" in name else name, []).append(name)
    fig = Figure(figsize=(6, 1.9 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)
    for ax, (title, names) in zip(axes[:, 0], panels.items()):
        unit = ""
        for name in names:
            pts = series[name]
            ax.plot([dt.datetime.fromisoformat(d[:19]) for d, _, _ in pts], [v for _, v, _ in pts], marker="o",
                    label=name.replace(" blood pressure", ""))
            unit = pts[-1][2]
        ax.set_title(f"{title} ({unit})" if unit else title, fontsize=9)
        ax.tick_params(labelsize=7)
        if len(names) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the app

class CareCiteApp:
    """UI handlers over one shared index, searcher and Assistant (the embedded index allows one opener)."""

    def __init__(self, settings: Settings, index: VectorIndex, assistant=None, loader=None):
        from assistant.pipeline import Assistant
        from carecite.runtime import open_searcher
        self.settings, self.index = settings, index
        self.loader = loader  # ingest.progressive.CorpusLoader while the default corpus loads in the background
        self.assistant = assistant or Assistant(settings, searcher=open_searcher(settings, index))
        self.searcher = self.assistant.searcher
        if assistant is None:
            self.assistant.warm()  # the first question does not wait for the lexicon's spelling index

    # -- helpers
    def facet(self, key: str) -> list[str]:
        return sorted(self.index.facet(key)) if self.index.count() else []

    def status_md(self) -> str:
        n = self.index.count()
        gen = getattr(self.assistant.generator, "name", self.settings.generator.kind)
        where = self.settings.index_path if self.settings.index.backend == "edge" else self.settings.index.url
        head = f"**Generator:** `{gen}` · **Embedder:** `{self.settings.embedder.model}` · **Index:** {n:,} passages"
        if self.loader is not None and self.loader.loading:
            head += f" · ⏳ {self.loader.progress_line()}"
        if n == 0:
            head += (f'\n\n<div class="cc-empty"><b>The index is empty</b> ({_esc(str(where))}): answers will be '
                     "“not found”. Upload documents in the <b>Index</b> tab or run <code>carecite ingest</code>."
                     "</div>")
        return head

    @staticmethod
    def filters(scope: str | None, sources: list[str] | None, specialties: list[str] | None) -> Filters:
        if scope and scope not in SCOPES:
            raise FilterError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
        return Filters(doc_type=SCOPES.get(scope or "All sources"), source=list(sources or []) or None,
                       specialty=list(specialties or []) or None)

    # -- chat
    def chat(self, message: str, chat: list, turns: list, ids: dict, scope: str, sources: list, specialties: list,
             patient: str | None = None):
        """Stream one answer into the chat; yields (chat, box, panel, turns, last answer, ids, copy text). With a
        patient (pseudonym), the answer is about that patient: their record [P1, date] and the guidelines [n]."""
        q = (message or "").strip()
        if not q:
            yield chat, "", gr.skip(), turns, gr.skip(), ids, gr.skip()
            return
        chat = [*chat, {"role": "user", "content": q}, {"role": "assistant", "content": draft_html("")}]
        yield chat, "", sources_panel(None), turns, None, ids, ""
        with self._answering():
            yield from self._chat(q, chat, turns, ids, scope, sources, specialties, patient)

    def _answering(self):
        """While an answer is made, the background corpus load (if any) waits between batches."""
        import contextlib
        return self.loader.hold() if self.loader is not None and self.loader.loading else contextlib.nullcontext()

    def loading_note(self) -> str:
        """Said with every answer while the default corpus is still loading."""
        if self.loader is None or not self.loader.loading:
            return ""
        return (f'<div class="cc-note" id="cc-loading">The index is still loading ({_esc(self.loader.progress_line())}'
                "): this answer comes from the passages indexed so far.</div>")

    def _chat(self, q: str, chat: list, turns: list, ids: dict, scope: str, sources: list, specialties: list,
              patient: str | None = None):
        try:
            events, as_json = self._answer_events(q, turns, self.filters(scope, sources, specialties), patient)
            draft, quick, status = "", None, "verifying citations…"
            for ev in events:
                if ev["type"] == "sources":
                    yield chat, "", self.loading_note() + sources_panel(None, ev["sources"]), turns, None, ids, ""
                elif ev["type"] in ("quick", "queued"):
                    if ev["type"] == "quick":
                        quick, status = as_json(ev["answer"]), "the full answer is being written…"
                    else:
                        status = f"the full answer is queued (position {ev['position']})…"
                    chat[-1] = {"role": "assistant", "content": draft_html(draft, quick, status)}
                    yield chat, "", gr.skip(), turns, None, ids, ""
                elif ev["type"] == "token":
                    draft += ev["text"]
                    chat[-1] = {"role": "assistant", "content": draft_html(draft, quick, status)}
                    yield chat, "", gr.skip(), turns, None, ids, ""
                elif ev["type"] == "answer":
                    ans = as_json(ev["answer"])
                    chat[-1] = {"role": "assistant", "content": answer_html(ans)}
                    turns = [*turns, {"role": "user", "content": q}, {"role": "assistant", "content": ans["answer"]}]
                    ids = {**ids, str(len(chat) - 1): ans["answer_id"]}
                    yield chat, "", self.loading_note() + sources_panel(ans), turns, ans, ids, answer_with_references(ans)
        except (AssistantError, FilterError, QueryError) as e:
            chat[-1] = {"role": "assistant", "content": f'<div class="cc-abstain">Could not answer: {_esc(str(e))}</div>'}
            yield chat, q, sources_panel(None), turns, None, ids, ""

    def _answer_events(self, q: str, history: list | None, filters: Filters, patient: str | None = None):
        """(Assistant.stream events, answer -> JSON): about one patient (assistant/patients.py) when one is given."""
        if not patient:
            return self.assistant.stream(q, history=history, filters=filters), lambda a: a.to_json()
        from assistant.patients import answer_json, stream_patient
        return stream_patient(self.assistant, patient, q, history=history, filters=filters), answer_json

    def ask(self, question: str, scope: str = "All sources", sources: list[str] | None = None,
            specialties: list[str] | None = None, history: list[dict] | None = None) -> dict:
        """Answer one question; returns the answer JSON (answer, sentences, citations, abstained, ...)."""
        try:
            with self._answering():
                return self.assistant.ask(question, history=history or None,
                                          filters=self.filters(scope, sources, specialties)).to_json()
        except (AssistantError, FilterError, QueryError) as e:
            raise gr.Error(str(e)) from None

    def feedback(self, ans: dict | None, rating: str | None, flags: list[str], comment: str) -> str:
        if not ans:
            return "Ask a question first: feedback is attached to the latest answer."
        value = {"👍 helpful": 1, "👎 not helpful": -1}.get(rating or "", 0)
        kind = ",".join(f.replace(" ", "_") for f in flags or [])
        if value == 0 and not kind and not (comment or "").strip():
            return "Choose a rating or a flag, or write a comment."
        try:
            self.assistant.record_feedback(ans["answer_id"], value, kind, (comment or "").strip())
        except FeedbackError as e:
            return f"Feedback not saved: {_esc(str(e))}"
        return f"Thank you: feedback saved with answer `{ans['answer_id'][:12]}`."

    def like(self, ids: dict, data: gr.LikeData) -> str:
        idx = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        aid = ids.get(str(idx))
        if not aid:
            return "That message has no answer record."
        value = 1 if data.liked is True else -1 if data.liked is False else 0
        try:
            self.assistant.record_feedback(aid, value, "", "")
        except FeedbackError as e:
            return f"Feedback not saved: {_esc(str(e))}"
        return f"Feedback saved with answer `{aid[:12]}`."

    # -- cases
    def case_choices(self, query: str = "") -> tuple[list[tuple[str, str]], str]:
        """(dropdown choices, results HTML): every case, or the best matches of a search."""
        if not (query or "").strip():
            titles: dict[str, str] = {}
            for c, _ in self.index.scroll(Filters(doc_type=["case"]), fields=["doc_id", "title"]):
                titles.setdefault(c.doc_id, c.metadata.get("title") or c.doc_id)
            if not titles:
                return [], '<div class="cc-empty">No case summaries in the index.</div>'
            return sorted(((t, d) for d, t in titles.items()), key=lambda x: x[1]), \
                f'<div class="cc-foot">{len(titles)} cases</div>'
        hits = self.searcher.search(query, Filters(doc_type=["case"]), top_k=50)
        best: dict[str, object] = {}
        for h in hits:
            best.setdefault(h.chunk.doc_id, h)
        if not best:
            return [], f'<div class="cc-foot">No case matches “{_esc(query)}”.</div>'
        rows = [f'<li><b>{_esc(h.chunk.metadata.get("title"))}</b> — {_esc(h.chunk.metadata.get("section"))}: '
                f'{_esc(_snippet(h.chunk))}</li>' for h in best.values()]
        return [(h.chunk.metadata.get("title") or d, d) for d, h in best.items()], \
            f'<div class="cc-foot">{len(best)} matching cases</div><ol>{"".join(rows[:10])}</ol>'

    def search_cases(self, query: str | None):
        query = query or ""
        try:
            choices, info = self.case_choices(query)
        except (QueryError, FilterError) as e:
            return gr.update(), f'<div class="cc-abstain">{_esc(str(e))}</div>'
        return gr.update(choices=choices, value=choices[0][1] if choices and query.strip() else None), info

    def open_case(self, doc_id: str | None) -> str:
        if not doc_id:
            return '<div class="cc-foot">Choose a case to read it.</div>'
        title, sections = case_sections(self.index, doc_id)
        if not sections:
            return f'<div class="cc-abstain">Case {_esc(doc_id)} is not in the index.</div>'
        body = "".join(f"<h4>{_esc(t.title() if t.isupper() else t) or 'Note'}</h4><div>{_oneline(x)}</div>"
                       for t, x in sections)
        return f'<div class="cc-case"><h3>{_esc(title)}</h3><div class="cc-foot">{_esc(doc_id)}</div>{body}</div>'

    def similar_cases(self, doc_id: str | None):
        if not doc_id:
            return gr.update(choices=[], value=None), '<div class="cc-foot">Open a case first.</div>'
        _, sections = case_sections(self.index, doc_id)
        query = plan_query(sections)
        if not query:
            return gr.update(choices=[], value=None), '<div class="cc-foot">This case has no text to compare.</div>'
        hits = self.searcher.search(query, Filters(doc_type=["case"]), top_k=40)
        best: dict[str, object] = {}
        for h in hits:
            if h.chunk.doc_id != doc_id:
                best.setdefault(h.chunk.doc_id, h)
        top = list(best.values())[:5]
        if not top:
            return gr.update(choices=[], value=None), '<div class="cc-foot">No other case is similar.</div>'
        rows = "".join(f'<li><b>{_esc(h.chunk.metadata.get("title"))}</b> — {_esc(h.chunk.metadata.get("section"))}'
                       f'<br>{_esc(_snippet(h.chunk))}</li>' for h in top)
        return (gr.update(choices=[(h.chunk.metadata.get("title") or h.chunk.doc_id, h.chunk.doc_id) for h in top],
                          value=None),
                f'<div class="cc-foot">Similar by assessment and plan:</div><ol>{rows}</ol>')

    def ask_case(self, doc_id: str | None, question: str):
        """Stream an answer scoped to this case plus the guidelines; yields (answer HTML, sources HTML)."""
        def start():
            scoped = scoped_assistant(self.assistant, [Filters(doc_id=[doc_id]), Filters(doc_type=CASE_SCOPE)])
            return scoped.stream(question.strip()), lambda a: a.to_json()
        yield from self._answer_box(doc_id, question, "case", start)

    def _answer_box(self, target: str | None, question: str, what: str, start):
        """A tab's answer about one case or patient (`what`), streamed; yields (answer HTML, sources HTML).
        start() gives (events, answer -> JSON); it runs inside the error handling (an unknown id is shown)."""
        if not target:
            yield f'<div class="cc-foot">Choose a {what} first.</div>', ""
            return
        if not (question or "").strip():
            yield f'<div class="cc-foot">Type a question about this {what}.</div>', gr.skip()
            return
        draft = ""
        try:
            events, as_json = start()
            for ev in events:
                if ev["type"] == "sources":
                    yield draft_html(""), sources_panel(None, ev["sources"])
                elif ev["type"] == "token":
                    draft += ev["text"]
                    yield draft_html(draft), gr.skip()
                elif ev["type"] == "answer":
                    ans = as_json(ev["answer"])
                    yield answer_html(ans), sources_panel(ans)
        except (AssistantError, FilterError, QueryError) as e:
            yield f'<div class="cc-abstain">Could not answer: {_esc(str(e))}</div>', ""

    # -- patients
    def patient_choices(self):
        """The pseudonyms, for the Patients tab and for the chat's patient."""
        from assistant.patients import list_patients
        ids = list_patients(self.index) if self.index.count() else []
        return gr.update(choices=ids), gr.update(choices=ids, interactive=bool(ids),
                                                 info=None if ids else "no patient records in this index")

    @staticmethod
    def scope_chat(patient_id: str | None):
        """The chat's patient changed: a new conversation (nothing said about one patient carries over to another
        or to general questions) and the line saying whom the chat answers about.
        Returns (chat, turns, last answer, ids, panel, copy text, scope row, scope line)."""
        line = (f'<div class="cc-note">Answering about patient <b>{_esc(patient_id)}</b>: their record '
                '[P1, date] and the guidelines [n]. Clear it to ask general questions.</div>') if patient_id else ""
        return [], [], None, {}, sources_panel(None), "", gr.update(visible=bool(patient_id)), line

    def open_patient(self, patient_id: str | None):
        return patient_view(self.index, patient_id)

    def ask_patient(self, patient_id: str | None, question: str):
        """Stream an answer about this patient (record [P1, date] and guidelines [n]); yields (answer, sources)."""
        yield from self._answer_box(patient_id, question, "patient",
                                    lambda: self._answer_events(question.strip(), None, Filters(), patient_id))

    def _patients_tab(self) -> tuple[gr.Dropdown, gr.Button]:
        """The Patients tab; returns (its patient list, the button that asks about the patient in the chat)."""
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                patient = gr.Dropdown([], label="Patient (pseudonym)", value=None, elem_id="cc-patient")
                to_chat = gr.Button("Ask about this patient in the chat", size="sm", elem_id="cc-patient-to-chat")
                summary = gr.HTML(patient_view(self.index, None)[0])
                with gr.Accordion("Timeline", open=True):
                    timeline = gr.HTML(elem_classes=["cc-panel"])
            with gr.Column(scale=3, min_width=420):
                plot = gr.Plot(label="Tracked observations", elem_id="cc-patient-plot")
                with gr.Row():
                    pq = gr.Textbox(placeholder="Ask about this patient (answers cite the record [P1, date] and the "
                                                "guidelines [n])", show_label=False, scale=5, elem_id="cc-patient-q")
                    pgo = gr.Button("Ask", variant="primary", scale=1, min_width=70, elem_id="cc-patient-ask")
                panswer = gr.HTML(elem_id="cc-patient-answer")
                with gr.Accordion("Sources", open=False):
                    psources = gr.HTML()
        patient.change(self.open_patient, patient, [summary, timeline, plot], api_visibility="private")
        pgo.click(self.ask_patient, [patient, pq], [panswer, psources], api_visibility="private", **ANSWERS)
        pq.submit(self.ask_patient, [patient, pq], [panswer, psources], api_visibility="private", **ANSWERS)
        return patient, to_chat

    # -- index
    def stats_html(self) -> str:
        n = self.index.count()
        if n == 0:
            return self.status_md()
        def table(title: str, counts: dict[str, int]) -> str:
            rows = "".join(f"<tr><td>{_esc(k)}</td><td style='text-align:right'>{v:,}</td></tr>"
                           for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
            return f"<table><thead><tr><th>{title}</th><th>passages</th></tr></thead><tbody>{rows}</tbody></table>"
        meta = self.index.get_meta()
        return (f"<div><b>{n:,}</b> passages · index version {_esc(str(meta.get('version', '-')))}</div>"
                f"<div style='display:flex;gap:2em;flex-wrap:wrap'>{table('Type', self.index.facet('doc_type'))}"
                f"{table('Source', self.index.facet('source'))}</div>")

    def ingest(self, files: list | None, doc_type: str, source: str, progress=gr.Progress()):
        """Ingest uploaded files; returns (report markdown, PHI report HTML, stats HTML, source choices, status)."""
        from carecite.models import get_embedder
        from ingest.pipeline import Ingestor, SourceSpec
        paths = [Path(f if isinstance(f, str) else f.name) for f in files or []]
        if not paths:
            return "Choose one or more files first.", "", gr.skip(), gr.skip(), gr.skip()
        if self.loader is not None and self.loader.loading:  # one writer at a time
            return (f"The default corpus is still loading ({self.loader.progress_line()}); upload again when it "
                    "has finished.", "", gr.skip(), gr.skip(), self.status_md())
        s = self.settings
        label = (source or "").strip() or "Uploads"

        def on_progress(stage: str, done: int, total: int) -> None:
            progress((done, total or None), desc=f"{stage}", unit="chunks" if stage == "embedding" else "documents")

        progress(0, desc="reading files")  # the UI runs this one at a time with answers (ENGINE)
        # A new upload of a file replaces the one stored under its name and label (each upload is in a new temp folder).
        report = Ingestor.from_settings(self.index, get_embedder(s), s, show_progress=False,
                                        on_progress=on_progress).run(
            [SourceSpec(p.name, path=p, doc_type=doc_type, source=label, replace=True) for p in paths])
        return (f"```\n{report.summary()}\n```", phi_table(report.phi, s.phi.policy), self.stats_html(),
                gr.update(choices=self.facet("source")), self.status_md())

    # -- layout
    def build(self) -> gr.Blocks:
        with gr.Blocks(title="CareCite", analytics_enabled=False, fill_width=True) as demo:
            with gr.Row(equal_height=True):
                gr.Markdown("## CareCite · clinical answers with verified citations")
                status = gr.Markdown(self.status_md(), elem_id="cc-status")
            with gr.Tabs() as tabs:
                with gr.Tab("Chat", id="chat"):
                    source_filter, chat_patient = self._chat_tab()
                with gr.Tab("Cases", id="cases"):
                    case_list = self._cases_tab()
                with gr.Tab("Patients", id="patients"):
                    patient_list, to_chat = self._patients_tab()
                with gr.Tab("Index", id="index"):
                    self._index_tab(status, source_filter)
            gr.api(self.ask, api_name="ask", **ANSWERS)
            demo.load(self.status_md, None, status, api_visibility="private")  # fresh counts on every visit
            if self.loader is not None and self.loader.loading:  # first launch: the progress, every 5 s
                gr.Timer(5).tick(self.status_md, None, status, api_visibility="private")
            demo.load(self.search_cases, case_list[0], case_list[1:], api_visibility="private")  # cases ingested since
            demo.load(self.patient_choices, None, [patient_list, chat_patient], api_visibility="private")
            to_chat.click(lambda p: (p, gr.Tabs(selected="chat")) if p else (gr.skip(), gr.skip()), patient_list,
                          [chat_patient, tabs], api_visibility="private")
        return demo

    def _chat_tab(self) -> tuple[gr.Dropdown, gr.Dropdown]:
        """The chat; returns its source filter (an ingest adds sources to it) and its patient."""
        turns, last, ids = gr.State([]), gr.State(None), gr.State({})
        with gr.Row():
            with gr.Column(scale=3, min_width=420):
                with gr.Row(visible=False, equal_height=True) as scope_row:
                    scope_line = gr.HTML(elem_id="cc-chat-scope")
                    unscope = gr.Button("✕ clear", size="sm", scale=0, min_width=80, elem_id="cc-chat-unscope")
                chat = gr.Chatbot(label="Conversation", height="58vh", elem_id="cc-chat", latex_delimiters=[],
                                  buttons=[], feedback_options=("Like", "Dislike"),  # no "share" to HF
                                  placeholder="Ask a clinical question. Every sentence cites its passage [n].")
                with gr.Row():
                    box = gr.Textbox(placeholder="e.g. What are the symptoms of breast cancer?", show_label=False,
                                     scale=5, elem_id="cc-question", submit_btn=False)
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="cc-ask")
                with gr.Row():
                    clear = gr.Button("New conversation", size="sm")
                    copy_btn = gr.Button("Copy answer with references", size="sm", elem_id="cc-copy-btn")
                with gr.Accordion("Answer with references (text)", open=False):
                    copy_box = gr.Textbox(show_label=False, lines=6, buttons=["copy"], interactive=False,
                                          elem_id="cc-copy")
                with gr.Accordion("Feedback on the latest answer", open=False):
                    with gr.Row():
                        rating = gr.Radio(["👍 helpful", "👎 not helpful"], label="Rating", scale=2)
                        flags = gr.CheckboxGroup(FEEDBACK_FLAGS, label="Flags", scale=2)
                    comment = gr.Textbox(label="Comment (optional)", lines=2, max_length=4000)
                    fb_send = gr.Button("Send feedback", size="sm")
                    fb_status = gr.Markdown()
            with gr.Column(scale=2, min_width=320):
                with gr.Group():
                    scope = gr.Radio(list(SCOPES), value="All sources", label="Search in", elem_id="cc-scope")
                    sources = gr.Dropdown(self.facet("source"), multiselect=True, label="Sources (any)",
                                          elem_id="cc-sources")
                    specs = self.facet("specialty")
                    specialty = gr.Dropdown(specs, multiselect=True, label="Specialty (any)",
                                            info=None if specs else "no specialty metadata in this index",
                                            interactive=bool(specs))
                    patient = gr.Dropdown([], value=None, label="Patient (answers about one de-identified record)",
                                          elem_id="cc-chat-patient", info="changing it starts a new conversation")
                gr.Markdown("**Sources**")
                panel = gr.HTML(sources_panel(None), elem_id="cc-sources-panel", elem_classes=["cc-panel"])

        ins = [box, chat, turns, ids, scope, sources, specialty, patient]
        outs = [chat, box, panel, turns, last, ids, copy_box]
        send.click(self.chat, ins, outs, api_name="chat", **ANSWERS)
        box.submit(self.chat, ins, outs, api_visibility="private", **ANSWERS)
        clear.click(lambda: ([], [], None, {}, sources_panel(None), ""), None,
                    [chat, turns, last, ids, panel, copy_box], api_visibility="private")
        copy_btn.click(None, copy_box, None, api_visibility="private",
                       js="(text) => { if (text && navigator.clipboard) navigator.clipboard.writeText(text); }")
        fb_send.click(self.feedback, [last, rating, flags, comment], fb_status, api_visibility="private")
        chat.like(self.like, [ids], fb_status, api_visibility="private")
        patient.change(self.scope_chat, patient, [chat, turns, last, ids, panel, copy_box, scope_row, scope_line],
                       api_visibility="private")
        unscope.click(lambda: None, None, patient, api_visibility="private")
        return sources, patient

    def _cases_tab(self) -> tuple[gr.Textbox, gr.Dropdown, gr.HTML]:
        """The cases tab; returns (search box, case list, results line), filled on each page load."""
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                with gr.Row():
                    q = gr.Textbox(placeholder="search cases, e.g. knee pain", show_label=False, scale=4)
                    go = gr.Button("Search", scale=1, min_width=70)
                case = gr.Dropdown([], label="Case", value=None, elem_id="cc-case")
                results = gr.HTML()
                similar_btn = gr.Button("Find similar cases", size="sm")
                similar = gr.Radio([], label="Similar cases (click to open)")
                similar_info = gr.HTML()
            with gr.Column(scale=3, min_width=420):
                viewer = gr.HTML(self.open_case(None), elem_classes=["cc-panel"])
                with gr.Row():
                    cq = gr.Textbox(placeholder="Ask about this case (answers use the case and the guidelines)",
                                    show_label=False, scale=5)
                    cgo = gr.Button("Ask", variant="primary", scale=1, min_width=70)
                canswer = gr.HTML()
                with gr.Accordion("Sources", open=False):
                    csources = gr.HTML()
        go.click(self.search_cases, q, [case, results], api_visibility="private", **ENGINE)
        q.submit(self.search_cases, q, [case, results], api_visibility="private", **ENGINE)
        case.change(self.open_case, case, viewer, api_visibility="private")
        similar_btn.click(self.similar_cases, case, [similar, similar_info], api_visibility="private", **ENGINE)
        similar.select(lambda d: d, similar, case, api_visibility="private")
        cgo.click(self.ask_case, [case, cq], [canswer, csources], api_visibility="private", **ANSWERS)
        cq.submit(self.ask_case, [case, cq], [canswer, csources], api_visibility="private", **ANSWERS)
        return q, case, results

    def _index_tab(self, status: gr.Markdown, source_filter: gr.Dropdown) -> None:
        with gr.Row():
            with gr.Column(scale=3):
                stats = gr.HTML(self.stats_html())
                refresh = gr.Button("Refresh counts", size="sm")
            with gr.Column(scale=2):
                files = gr.File(label="Upload documents: Markdown, HTML, text, PDF, XML, JSONL, CSV",
                                file_count="multiple", type="filepath")
                doc_type = gr.Dropdown(["guideline", "reference", "case", "literature", "patient"], value="guideline",
                                       label="Document type")
                source = gr.Textbox(value="Uploads", label="Source label")
                go = gr.Button("Ingest", variant="primary")
                gr.Markdown(f"Case documents pass the PHI guard (policy: **{self.settings.phi.policy}**).")
        report = gr.Markdown()
        phi = gr.HTML()
        refresh.click(lambda: (self.stats_html(), self.status_md()), None, [stats, status], api_visibility="private")
        go.click(self.ingest, [files, doc_type, source], [report, phi, stats, source_filter, status],
                 api_visibility="private", **ENGINE)


def phi_table(phi: list[dict], policy: str) -> str:
    """The PHI guard's per-document report: rejected case files first (never the PHI itself, only examples)."""
    if not phi:
        return ""
    rows = "".join(f"<tr><td>{_esc(p.get('action'))}</td><td>{_esc(p.get('doc_id'))}</td>"
                   f"<td>{_esc(', '.join(f'{k}: {v}' for k, v in (p.get('counts') or {}).items()))}</td>"
                   f"<td>{_esc('; '.join(p.get('examples') or []))}</td></tr>"
                   for p in sorted(phi, key=lambda p: p.get("action") != "rejected"))
    rejected = sum(p.get("action") == "rejected" for p in phi)
    return (f"<div><b>PHI guard</b> (policy {_esc(policy)}): {rejected} case document(s) rejected, "
            f"{len(phi) - rejected} masked.</div><table><thead><tr><th>action</th><th>document</th>"
            f"<th>findings</th><th>examples</th></tr></thead><tbody>{rows}</tbody></table>")


# ---------------------------------------------------------------- start-up

def ensure_index(settings: Settings, first_docs: int | None = None):
    """(index, loader). The configured index; when there is none it is created, a first slice of the default corpus
    is indexed now (the first MedQuAD documents, about a minute) and the loader (ingest.progressive.CorpusLoader)
    is returned unstarted to load the rest while the chat is open. A first launch that was stopped mid-way is
    continued the same way (nothing indexed is lost or embedded twice). loader is None when there is nothing to load.
    """
    from carecite.lexicon import lexicon_path
    from carecite.runtime import open_index_and_embedder
    from ingest.pipeline import DEFAULT_CORPUS
    from ingest.progressive import FIRST_SLICE_DOCS, CorpusLoader, first_slice_specs, needs_loading
    try:
        index, embedder = open_index_and_embedder(settings, create=False)
        new = False
    except IndexMissingError:
        index, embedder = open_index_and_embedder(settings, create=True)
        new = True
    if not new and not needs_loading(index):
        return index, None
    loader = CorpusLoader(index, embedder, settings, first=first_slice_specs(first_docs or FIRST_SLICE_DOCS),
                          lexicon_file=lexicon_path(settings))
    if new:
        print(f"No index yet: indexing a first slice of the default corpus ({', '.join(DEFAULT_CORPUS)}) from "
              f"{settings.paths.data_mirror}; the chat opens after it and the rest loads in the background.",
              flush=True)
        try:
            print(loader.run_first_slice().summary(), flush=True)
        except Exception as e:  # noqa: BLE001 - the app still starts, and says the index is empty
            print(f"could not ingest the default corpus: {e}", file=sys.stderr, flush=True)
            return index, None
    else:
        print(f"Continuing to load the default corpus in the background ({index.count():,} passages indexed so far).",
              flush=True)
    return index, loader


def theme() -> gr.themes.Theme:
    """System fonts only: nothing is fetched from a font CDN."""
    return gr.themes.Default(primary_hue="teal", font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def launch(app: CareCiteApp, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True) -> gr.Blocks:
    """Serve the UI; block=False returns at once (tests), with demo.local_url set.

    Beyond loopback the UI needs a password: user "carecite", password settings.server.api_token."""
    from assistant.api import check_bind, is_loopback
    token = app.settings.server.api_token
    check_bind(host, token)
    demo = app.build()
    demo.queue(default_concurrency_limit=4)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, theme=theme(), css=CSS, js=JS,
                ssr_mode=False, share=False, footer_links=["api"], show_error=True, quiet=not block,
                auth=None if is_loopback(host) else ("carecite", token),
                max_file_size=f"{int(app.settings.chunking.max_file_mb)}mb")
    return demo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python app.py", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="demo", help="settings preset (default demo: bundled corpus, PHI masked)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=7860)
    args = p.parse_args(argv)
    from assistant.api import BindError, check_bind
    from carecite.models import EmbedderMismatchError
    from indexes.base import IndexLockedError
    settings = Settings.from_name(args.preset)
    try:
        check_bind(args.host, settings.server.api_token)
        index, loader = ensure_index(settings)
    except (BindError, IndexLockedError, EmbedderMismatchError) as e:
        print(f"carecite: error: {e}", file=sys.stderr)
        return 2
    try:
        app = CareCiteApp(settings, index, loader=loader)
        if loader is not None:
            loader.on_done = lambda: print(f"The default corpus is loaded: {index.count():,} passages.", flush=True)
            loader.start()
        launch(app, args.host, args.port)
    finally:
        index.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
