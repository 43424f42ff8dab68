"""Patients as the library serves them: the de-identified records ingested from FHIR (ingest/readers/fhir.py),
their summary and timeline, and answers scoped to one patient.

    ids = list_patients(index)
    rec = load_record(index, ids[0])            # summary, timeline, tracked observations
    ans = ask_patient(assistant, ids[0], "What was her last temperature?")

A patient-scoped answer searches two scopes and nothing else: this patient's record (patient_id) and the
guidelines and references. Every record passage is cited as [P<k>, <date>], a guideline passage as [<n>].
When no verified sentence rests on the record, the answer says "The record does not say" first. The patient
filter fails closed: an unknown id is an error, and no search runs without the patient_id condition.
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator
from typing import Any

from assistant.errors import AssistantError
from assistant.scope import scoped_assistant
from assistant.verify import CITATION, citation_numbers
from indexes.types import Filters

GUIDE_TYPES = ["guideline", "reference"]
RECORD_KEYS = ("resource_type", "code", "date_from", "date_to")  # filters that narrow the record only
RECORD_SILENT = "The record does not say."
# What a clinician tracks over time: LOINC codes as Synthea and most EHRs write them.
TRACKED = {"39156-5": "BMI", "29463-7": "Body weight", "8302-2": "Body height", "8480-6": "Systolic blood pressure",
           "8462-4": "Diastolic blood pressure", "4548-4": "HbA1c", "8867-4": "Heart rate", "8310-5": "Body temperature",
           "2708-6": "Oxygen saturation", "59408-5": "Oxygen saturation", "9279-1": "Respiratory rate"}
_PID = re.compile(r"P-[0-9a-f]{10}")


class PatientError(AssistantError):
    """A malformed (status 400) or unknown (404) patient id, or filters naming another patient (400)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def list_patients(index) -> list[str]:
    """Pseudonyms of the patients in the index, sorted."""
    ids = {c.metadata.get("patient_id") for c, _ in index.scroll(Filters(doc_type=["patient"]), batch=1024,
                                                                 fields=["patient_id"])}
    return sorted(i for i in ids if i)


def check_patient(index, patient_id: Any) -> str:
    """The id if the index holds that patient; PatientError otherwise (never a search without the filter)."""
    if not isinstance(patient_id, str) or not _PID.fullmatch(patient_id.strip()):
        raise PatientError(f"patient id {patient_id!r} is not a pseudonym like P-0123456789 (see `carecite patients`)")
    pid = patient_id.strip()
    if index.count(Filters(patient_id=[pid])) == 0:
        raise PatientError(f"no patient {pid} in the index", 404)
    return pid


@dataclasses.dataclass
class PatientRecord:
    patient_id: str
    summary: dict
    timeline: list[dict]  # entries in date order: {"date", "type", "display", "code", "system", "value", ...}
    sections: list[dict]  # {"title", "text", "date"} in record order

    def series(self) -> dict[str, list[tuple[str, float, str]]]:
        """Tracked observations over time: {name: [(date, value, unit), ...]} (numbers only)."""
        out: dict[str, list[tuple[str, float, str]]] = {}
        for e in self.timeline:
            if e.get("type") != "Observation":
                continue
            for item in [e, *e.get("components", [])]:
                name = TRACKED.get(item.get("code", ""))
                try:
                    value = float(item.get("value", ""))
                except (TypeError, ValueError):
                    continue
                if name and e.get("date"):
                    out.setdefault(name, []).append((e["date"], value, item.get("unit", "")))
        return {k: sorted(v) for k, v in out.items()}


def load_record(index, patient_id: str) -> PatientRecord:
    pid = check_patient(index, patient_id)
    by_section: dict[int, dict] = {}
    for c, _ in index.scroll(Filters(patient_id=[pid]), batch=512):
        m = c.metadata
        si = int(m.get("section_index", 0))
        sec = by_section.setdefault(si, {"title": m.get("section", ""), "date": m.get("date"), "parts": {},
                                         "entries": m.get("entries") or [], "summary": m.get("summary")})
        body = c.text.split("\n", 1)[1] if "\n" in c.text else c.text
        sec["parts"][int(m.get("chunk_index", 0))] = body
    sections, timeline, summary = [], [], {}
    for si in sorted(by_section):
        s = by_section[si]
        sections.append({"title": s["title"], "date": s["date"],
                         "text": "\n".join(s["parts"][k] for k in sorted(s["parts"]))})
        timeline += s["entries"]
        summary = s["summary"] or summary
    timeline.sort(key=lambda e: (e.get("date") or "", e.get("type", "")))
    return PatientRecord(pid, summary, timeline, sections)


def patient_scopes(patient_id: str, filters: Filters | None = None) -> tuple[list[Filters], Filters]:
    """(scopes, request filters): the record narrowed by the record filters, and the guidelines; every scope
    that can reach a record carries patient_id."""
    flt = filters or Filters()
    if flt.patient_id and flt.patient_id != [patient_id]:
        raise PatientError(f"the filters name patient {flt.patient_id} but the question is about {patient_id}")
    record = Filters(patient_id=[patient_id], doc_type=["patient"],
                     **{k: getattr(flt, k) for k in RECORD_KEYS})
    guides = Filters(doc_type=[t for t in (flt.doc_type or GUIDE_TYPES) if t in GUIDE_TYPES] or ["none"],
                     source=flt.source, specialty=flt.specialty)
    return [record, guides], Filters(doc_type=["patient", *GUIDE_TYPES])


def patient_assistant(assistant, patient_id: str, filters: Filters | None = None):
    """(scoped assistant, request filters) for questions about one patient (checked to be in the index)."""
    pid = check_patient(assistant.searcher.index, patient_id)
    scopes, request = patient_scopes(pid, filters)
    scoped = scoped_assistant(assistant, scopes)
    scoped.searcher = _RecordNotingSearcher(scoped.searcher)
    scoped.quoter = _BothKindsQuoter(assistant.quoter, scoped.searcher.record_bodies)
    return scoped, request


class _RecordNotingSearcher:
    """The scoped searcher, noting the text of the record chunks it returns (to tell record passages apart)."""

    def __init__(self, inner):
        self.inner, self.index, self.record_bodies = inner, inner.index, []

    def search(self, query, filters=None, **kw):
        hits = self.inner.search(query, filters, **kw)
        self.record_bodies += [h.chunk.text for h in hits if h.chunk.metadata.get("doc_type") == "patient"]
        return hits


class _BothKindsQuoter:
    """The quick answer's sentence picker, taking the best sentences of the record and of the guidelines in turn:
    the closest sentences overall are often a guideline's wording of the question, and the record would then
    never be quoted although it holds the answer."""

    def __init__(self, inner, record_bodies: list[str]):
        self.inner, self.record_bodies = inner, record_bodies

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _is_record(self, passage: str) -> bool:
        first = next((s.strip(" …") for s in passage.split("\n") if s.strip(" …")), "")
        return bool(first) and any(first in body for body in self.record_bodies)

    def select(self, question: str, passages):
        rec = [i for i, p in enumerate(passages) if self._is_record(p)]
        rest = [i for i in range(len(passages)) if i not in rec]
        if not rec or not rest:
            return self.inner.select(question, passages)

        def pick(idx):
            return [(s, idx[n - 1] + 1, sc) for s, n, sc in self.inner.select(question, [passages[i] for i in idx])]
        out = []
        for pair in itertools.zip_longest(pick(rec), pick(rest)):
            out += [x for x in pair if x is not None]
        return out[:self.inner.max_sentences]


def label_answer(answer, patient_id: str):
    """The answer with record citations as [P<k>, date] (guideline ones stay [n]), each source's `label`, and
    "The record does not say." first when no verified sentence cites the record."""
    labels: dict[int, str] = {}
    k = 0
    for src in answer.sources:
        if src.doc_type == "patient":
            k += 1
            date = _date_of(src)
            labels[src.n] = f"P{k}, {date}" if date else f"P{k}"

    def relabel(m: re.Match) -> str:
        nums = citation_numbers(m.group(1))
        if not any(n in labels for n in nums):
            return m.group(0)
        return "".join(f"[{labels.get(n, n)}]" for n in nums)

    out = dataclasses.replace(answer)
    out.answer = CITATION.sub(relabel, answer.answer)
    out.labels = {n: f"[{lab}]" for n, lab in labels.items()}
    out.patient_id = patient_id
    cited = any(n in labels for v in answer.sentences if v.supported and v.claim for n in v.citations)
    out.record_cited = cited
    if not cited:
        out.answer = f"{RECORD_SILENT} {out.answer}".strip()
    return out


def _date_of(src) -> str:
    m = re.match(r"(\d{4}-\d{2}-\d{2})", src.section or "")
    return m.group(1) if m else ""


def answer_json(answer) -> dict:
    """Answer.to_json plus the record labels: each citation gets `label` ("[P2, 2020-03-06]" or "[4]")."""
    d = answer.to_json()
    labels = getattr(answer, "labels", {})
    for c in d["citations"]:
        c["label"] = labels.get(c["n"], f"[{c['n']}]")
        c["record"] = c["n"] in labels
    d["patient_id"] = getattr(answer, "patient_id", None)
    d["record_cited"] = getattr(answer, "record_cited", None)
    return d


def stream_patient(assistant, patient_id: str, question: str, history=None,
                   filters: Filters | list[str] | dict | None = None) -> Iterator[dict]:
    """Assistant.stream for one patient; "quick" and "answer" events carry labelled answers (label_answer)."""
    flt = filters if isinstance(filters, Filters) else Filters.parse(filters)
    scoped, request = patient_assistant(assistant, patient_id, flt)
    pid = patient_id.strip()
    events = scoped.stream(question, history, request)

    def run() -> Iterator[dict]:
        for ev in events:
            if ev["type"] in ("quick", "answer"):
                ev = {**ev, "answer": label_answer(ev["answer"], pid)}
            yield ev
    return run()


def ask_patient(assistant, patient_id: str, question: str, history=None, filters=None):
    """The verified, labelled answer about one patient."""
    answer = None
    for ev in stream_patient(assistant, patient_id, question, history, filters):
        if ev["type"] == "answer":
            answer = ev["answer"]
    return answer
