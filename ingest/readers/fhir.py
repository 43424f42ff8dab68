"""FHIR R4 patient records: a Bundle (batch, transaction, collection, searchset), one resource, or NDJSON (one
resource per line, as bulk export writes it; the NDJSON files of one export folder are read together,
`read_fhir_files`) -> one de-identified Document per Patient.

Every resource is validated with the `fhir.resources` R4B models (R4-compatible for these resources) before
anything is read from it; a bad resource fails the whole file, with a message naming the entry, its resource type
and the field. The record keeps only clinical content: conditions, medications, observations (value, unit,
reference range), immunizations, procedures, encounters, care plans, allergies and reports, each with its code
(SNOMED, LOINC, RxNorm, CVX as given) and its date shifted by the patient's offset (`ingest.deid`). Of the
Patient it keeps sex, the state and an age band; names, addresses below the state, telecom, identifiers, the
birth date, people named in references and the resource ids never leave this module. Narratives and notes go
through `PatientDeid.text`.

Sections: "Summary", one per theme (conditions, medications, allergies, immunizations, care plans), one per
encounter (everything recorded at it) and one for entries linked to no encounter. Each section's metadata names
the resource types and codes it holds and, for encounters, the date, so a search can be filtered to one
patient's labs since a date. `entries` (per section) and `summary` (Summary section) carry the same facts
structured, for the app's timeline and plots.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Iterator

from ingest.deid import PatientDeid, age_band, age_years
from ingest.documents import Document, ReaderError, Section
from ingest.readers._io import DEFAULT_MAX_BYTES, read_text

BUNDLE_TYPES = ("batch", "transaction", "collection", "searchset")
CLINICAL = ("Encounter", "Condition", "Observation", "MedicationRequest", "MedicationStatement", "Immunization",
            "Procedure", "CarePlan", "AllergyIntolerance", "DiagnosticReport")
SYSTEMS = {"snomed": "SNOMED", "loinc": "LOINC", "rxnorm": "RxNorm", "cvx": "CVX", "icd-10": "ICD-10",
           "unitsofmeasure": "UCUM"}
MAX_ERRORS = 5
KeyArg = bytes | Callable[[], bytes]


def _parse(raw: dict, where: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class
    rt = raw.get("resourceType")
    if not isinstance(rt, str) or not rt:
        raise ValueError(f"{where}: no resourceType")
    try:
        cls = get_fhir_model_class(rt)
    except ValueError:
        raise ValueError(f"{where}: resourceType {rt!r} is not a FHIR R4 resource") from None
    try:
        return cls.model_validate(raw)
    except Exception as e:  # pydantic ValidationError; its input values may be PHI, so only field and message
        errs = getattr(e, "errors", None)
        if not callable(errs):
            raise ValueError(f"{where} ({rt}): {type(e).__name__}") from None
        parts = [f"field {'.'.join(str(x) for x in err.get('loc', ())) or '(resource)'}: {err.get('msg', '')}"
                 for err in errs()[:3]]
        raise ValueError(f"{where} ({rt}): " + "; ".join(parts)) from None


def load_resources(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> list[tuple[str, str | None, Any]]:
    """[(where, fullUrl or None, validated resource)] of a Bundle, a single resource or an NDJSON file."""
    text = read_text(path, max_bytes)
    raws: list[tuple[str, str | None, Any]] = []
    if path.suffix.lower() == ".ndjson":
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    raws.append((f"line {n}", None, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise ReaderError(f"{path}: line {n}: malformed JSON ({e.msg} at column {e.colno})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ReaderError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        if not isinstance(data, dict) or "resourceType" not in data:
            raise ReaderError(f"{path}: not a FHIR resource (a JSON object with resourceType)")
        if data["resourceType"] == "Bundle":
            if data.get("type") not in BUNDLE_TYPES:
                raise ReaderError(f"{path}: Bundle.type is {data.get('type')!r}; a patient record needs one of "
                                  f"{', '.join(BUNDLE_TYPES)}")
            entries = data.get("entry") or []
            if not isinstance(entries, list):
                raise ReaderError(f"{path}: Bundle.entry is not a list")
            for i, e in enumerate(entries):
                if not isinstance(e, dict) or not isinstance(e.get("resource"), dict):
                    raise ReaderError(f"{path}: Bundle.entry[{i}]: field resource is missing")
                raws.append((f"Bundle.entry[{i}]", e.get("fullUrl"), e["resource"]))
        else:
            raws.append(("resource", None, data))
    out, errors = [], []
    for where, full_url, raw in raws:
        if not isinstance(raw, dict):
            errors.append(f"{where}: not a JSON object")
            continue
        try:
            out.append((where, full_url, _parse(raw, where)))
        except ValueError as e:
            errors.append(str(e))
    if errors:
        more = f" (and {len(errors) - MAX_ERRORS} more)" if len(errors) > MAX_ERRORS else ""
        raise ReaderError(f"{path}: invalid FHIR: " + "; ".join(errors[:MAX_ERRORS]) + more)
    return out


# ---------------------------------------------------------------- small readers of FHIR datatypes

def _coded(cc) -> tuple[str, str, str]:
    """(system label, code, display) of a CodeableConcept (its first coding), or blanks."""
    if cc is None:
        return "", "", ""
    coding = (cc.coding or [None])[0]
    system = code = ""
    if coding is not None:
        code = coding.code or ""
        s = (coding.system or "").lower()
        system = next((v for k, v in SYSTEMS.items() if k in s), coding.system or "")
    return system, code, cc.text or (coding.display if coding is not None else "") or ""


def _num(v) -> str:
    """A decimal exactly as the record wrote it."""
    return "" if v is None else str(v)


def _qty(q) -> tuple[str, str]:
    return (_num(q.value), q.unit or q.code or "") if q is not None else ("", "")


def _code_label(system: str, code: str) -> str:
    return f" [{system} {code}]" if code else ""


def _div_text(div: str | None) -> str:
    if not div:
        return ""
    txt = re.sub(r"<br\s*/?>|</li>|</p>", "\n", div)
    txt = re.sub(r"<[^>]+>", " ", txt)
    return "\n".join(" ".join(ln.split()) for ln in txt.splitlines() if ln.strip())


def _ref_id(ref, full_urls: dict[str, str]) -> str | None:
    """The local key of a Reference ("urn:uuid:X", "Type/X"); None when absent."""
    if ref is None or not ref.reference:
        return None
    r = ref.reference
    return full_urls.get(r, r)


class _Record:
    """One patient's entries, built from validated resources."""

    def __init__(self, patient, deid: PatientDeid):
        self.patient, self.deid = patient, deid
        self.entries: list[dict] = []
        self.encounters: dict[str, dict] = {}

    def add(self, kind: str, res, enc_key: str | None) -> None:
        d = self.deid
        e: dict[str, Any] = {"type": kind, "encounter": enc_key}
        if kind == "Encounter":
            system, code, display = _coded((res.type or [None])[0])
            period = res.period
            e.update(date=d.shift(period.start) if period else None, end=d.shift(period.end) if period else None,
                     system=system, code=code, display=display or "Encounter",
                     status=res.status or "", klass=(res.class_fhir.code if res.class_fhir else "") or "",
                     reason="; ".join(_coded(r)[2] for r in res.reasonCode or [] if _coded(r)[2]))
        elif kind == "Condition":
            system, code, display = _coded(res.code)
            onset = res.onsetDateTime or (res.onsetPeriod.start if res.onsetPeriod else None) or res.recordedDate
            abate = res.abatementDateTime or (res.abatementPeriod.end if res.abatementPeriod else None)
            e.update(date=d.shift(onset), end=d.shift(abate), system=system, code=code, display=display,
                     status=_coded(res.clinicalStatus)[1])
        elif kind == "Observation":
            system, code, display = _coded(res.code)
            when = res.effectiveDateTime or (res.effectivePeriod.start if res.effectivePeriod else None) or res.issued
            e.update(date=d.shift(when), system=system, code=code, display=display,
                     category=_coded((res.category or [None])[0])[1])
            e.update(self._value(res))
            if res.component:
                e["components"] = []
                for c in res.component:
                    cs, cc, cd = _coded(c.code)
                    e["components"].append({"system": cs, "code": cc, "display": cd, **self._value(c)})
        elif kind in ("MedicationRequest", "MedicationStatement"):
            system, code, display = _coded(res.medicationCodeableConcept)
            when = res.authoredOn if kind == "MedicationRequest" else (
                res.effectiveDateTime or (res.effectivePeriod.start if res.effectivePeriod else None))
            dose = "; ".join(x.text for x in (res.dosage if kind == "MedicationStatement" else
                                              res.dosageInstruction) or [] if x.text)
            e.update(date=d.shift(when), system=system, code=code, display=display or "medication",
                     status=res.status or "", dose=d.text(dose) if dose else "")
        elif kind == "Immunization":
            system, code, display = _coded(res.vaccineCode)
            e.update(date=d.shift(res.occurrenceDateTime), system=system, code=code, display=display,
                     status=res.status or "")
        elif kind == "Procedure":
            system, code, display = _coded(res.code)
            when = res.performedDateTime or (res.performedPeriod.start if res.performedPeriod else None)
            e.update(date=d.shift(when), system=system, code=code, display=display, status=res.status or "")
        elif kind == "CarePlan":
            system, code, display = _coded((res.category or [None])[-1] if res.category else None)
            acts = [_coded(a.detail.code)[2] for a in res.activity or [] if a.detail and a.detail.code]
            e.update(date=d.shift(res.period.start if res.period else None),
                     end=d.shift(res.period.end if res.period else None), system=system, code=code,
                     display=display or "care plan", status=res.status or "",
                     activities=list(dict.fromkeys(a for a in acts if a)),
                     narrative=d.text(_div_text(res.text.div)) if res.text and res.text.div else "")
        elif kind == "AllergyIntolerance":
            system, code, display = _coded(res.code)
            when = res.onsetDateTime or res.recordedDate
            e.update(date=d.shift(when), system=system, code=code, display=display,
                     status=_coded(res.clinicalStatus)[1], criticality=res.criticality or "")
        elif kind == "DiagnosticReport":
            system, code, display = _coded(res.code)
            when = res.effectiveDateTime or (res.effectivePeriod.start if res.effectivePeriod else None) or res.issued
            notes = [d.text(res.conclusion)] if res.conclusion else []
            for att in res.presentedForm or []:
                if att.data:  # fhir.resources hands Base64Binary over decoded (bytes)
                    try:
                        raw = att.data if isinstance(att.data, bytes) else base64.b64decode(att.data)
                    except (binascii.Error, ValueError):
                        continue
                    notes.append(d.text(raw.decode("utf-8", "replace")))
            e.update(date=d.shift(when), system=system, code=code, display=display, status=res.status or "",
                     note="\n".join(n for n in notes if n.strip()))
        self.entries.append(e)
        if kind == "Encounter":
            self.encounters[enc_key] = e

    @staticmethod
    def _value(res) -> dict[str, str]:
        out: dict[str, str] = {}
        if getattr(res, "valueQuantity", None) is not None:
            out["value"], out["unit"] = _qty(res.valueQuantity)
        elif getattr(res, "valueCodeableConcept", None) is not None:
            out["value"] = _coded(res.valueCodeableConcept)[2]
        elif getattr(res, "valueString", None):
            out["value"] = res.valueString
        elif getattr(res, "valueBoolean", None) is not None:
            out["value"] = str(res.valueBoolean).lower()
        elif getattr(res, "valueInteger", None) is not None:
            out["value"] = str(res.valueInteger)
        rr = (getattr(res, "referenceRange", None) or [None])[0]
        if rr is not None:
            lo, lo_u = _qty(rr.low)
            hi, hi_u = _qty(rr.high)
            out["range"] = rr.text or (f"{lo}–{hi} {hi_u or lo_u}".strip() if lo or hi else "")
        return out


# ---------------------------------------------------------------- text of the record

def entry_line(e: dict) -> str:
    """One entry as a sentence: its date, what it is, its code, its value (numbers as the record wrote them)."""
    code = _code_label(e.get("system", ""), e.get("code", ""))
    when = (e.get("date") or "date unknown")[:10]
    t = e["type"]
    if t == "Observation":
        parts = []
        if e.get("value"):
            parts.append(f"{e['value']} {e.get('unit', '')}".strip())
        for c in e.get("components", []):
            if c.get("value"):
                parts.append(f"{c['display']}{_code_label(c['system'], c['code'])} {c['value']} "
                             f"{c.get('unit', '')}".strip())
        rng = f" (reference range {e['range']})" if e.get("range") else ""
        return f"Observation {when}: {e['display']}{code}: {'; '.join(parts) or 'no value'}{rng}."
    if t == "Condition":
        end = f", resolved {e['end'][:10]}" if e.get("end") else ""
        return f"Condition {e['display']}{code}: onset {when}{end} (status {e.get('status') or 'unknown'})."
    if t in ("MedicationRequest", "MedicationStatement"):
        dose = f", dose: {e['dose']}" if e.get("dose") else ""
        return f"Medication {when}: {e['display']}{code} (status {e.get('status') or 'unknown'}{dose})."
    if t == "AllergyIntolerance":
        crit = f", criticality {e['criticality']}" if e.get("criticality") else ""
        return f"Allergy {e['display']}{code}: recorded {when} (status {e.get('status') or 'unknown'}{crit})."
    if t == "CarePlan":
        end = f" to {e['end'][:10]}" if e.get("end") else ""
        acts = f"; activities: {', '.join(e['activities'])}" if e.get("activities") else ""
        return f"Care plan {when}{end}: {e['display']}{code} (status {e.get('status') or 'unknown'}){acts}."
    if t == "DiagnosticReport":
        note = f" Note: {e['note']}" if e.get("note") else ""
        return f"Report {when}: {e['display']}{code}.{note}"
    if t == "Encounter":
        reason = f" Reason: {e['reason']}." if e.get("reason") else ""
        return (f"Encounter {when}: {e['display']}{code} ({e.get('klass') or 'class unknown'}, "
                f"{e.get('status') or 'status unknown'}).{reason}")
    return f"{t} {when}: {e.get('display', '')}{code}."


def _key(e: dict) -> tuple:
    return (e.get("date") or "", e["type"], e.get("display", ""))


def _section(title: str, entries: list[dict], date: str | None = None, lead: str = "") -> Section:
    lines = ([lead] if lead else []) + [entry_line(e) for e in sorted(entries, key=_key)]
    codes = sorted({e["code"] for e in entries if e.get("code")}
                   | {c["code"] for e in entries for c in e.get("components", []) if c.get("code")})
    extra: dict[str, Any] = {"resource_type": sorted({e["type"] for e in entries}), "code": codes,
                             "entries": sorted(entries, key=_key)}
    if date:
        extra["date"] = date[:10]
    return Section(title=title, text="\n".join(lines), extra=extra)


def _active(e: dict) -> bool:
    return e.get("status") in ("active", "recurrence", "relapse") or (
        e["type"] == "Condition" and not e.get("end") and e.get("status") in ("", None))


def build_document(rec: _Record, source: str) -> Document:
    d, p = rec.deid, rec.patient
    entries = sorted(rec.entries, key=_key)
    dated = [e["date"] for e in entries if e.get("date")]
    first, last = (min(dated), max(dated)) if dated else (None, None)
    deceased = d.shift(p.deceasedDateTime) if getattr(p, "deceasedDateTime", None) else None
    birth = d.shift(p.birthDate) if p.birthDate else None
    years = age_years(birth, deceased or last)
    band = age_band(years)
    state = next((a.state for a in p.address or [] if a.state), "")
    by = lambda *kinds: [e for e in entries if e["type"] in kinds]  # noqa: E731
    conditions, meds = by("Condition"), by("MedicationRequest", "MedicationStatement")
    allergies, immunizations, plans = by("AllergyIntolerance"), by("Immunization"), by("CarePlan")
    active = [e for e in conditions if _active(e)]
    current = [e for e in meds if e.get("status") in ("active", "on-hold", "intended")]
    summary = {"patient_id": d.pseudonym, "sex": p.gender or "unknown", "age_band": band,
               "age_at_last_record": years if years is not None and years <= 89 else None,
               "state": state, "first_date": first, "last_date": last, "deceased": bool(deceased),
               "active_conditions": [e["display"] for e in active],
               "current_medications": [e["display"] for e in current],
               "allergies": [e["display"] for e in allergies if e.get("status") != "resolved"],
               "counts": {k: sum(e["type"] == k for e in entries) for k in sorted({e["type"] for e in entries})}}
    age = f"age {years}" if years is not None and years <= 89 else f"age band {band}"
    lines = [f"Patient {d.pseudonym}: {summary['sex']}, {age} at the last record ({(last or 'no date')[:10]})"
             + (f", state {state}" if state else "") + (", deceased" if deceased else "") + ".",
             "Active conditions: " + ("; ".join(summary["active_conditions"]) or "none recorded") + ".",
             "Current medications: " + ("; ".join(summary["current_medications"]) or "none recorded") + ".",
             "Allergies: " + ("; ".join(summary["allergies"]) or "none recorded") + ".",
             f"The record spans {(first or '?')[:10]} to {(last or '?')[:10]}: "
             + ", ".join(f"{n} {k}" for k, n in summary["counts"].items()) + "."]
    sections = [Section("Summary", "\n".join(lines), {"resource_type": ["Patient"], "code": [], "summary": summary})]
    for title, group in (("Conditions", conditions), ("Medications", meds), ("Allergies", allergies),
                         ("Immunizations", immunizations), ("Care plans", plans)):
        if group:
            s = _section(title, group)
            s.extra.pop("entries")  # the encounter sections carry them (once each)
            sections.append(s)
    by_enc: dict[str, list[dict]] = {}
    loose: list[dict] = []
    for e in entries:
        if e["type"] == "Encounter":
            continue
        (by_enc.setdefault(e["encounter"], []) if e.get("encounter") in rec.encounters else loose).append(e)
    for key, enc in sorted(rec.encounters.items(), key=lambda kv: _key(kv[1])):
        items = [enc] + by_enc.get(key, [])
        at = age_years(birth, enc.get("date"))
        lead = entry_line(enc) + (f" Age at the visit: {at}." if at is not None and at <= 89 else "")
        title = f"{(enc.get('date') or 'undated')[:10]} {enc['display']}"
        s = _section(title, items, enc.get("date"), lead=lead)
        s.text = "\n".join([lead] + [entry_line(e) for e in sorted(by_enc.get(key, []), key=_key)])
        sections.append(s)
    if loose:
        sections.append(_section("Entries linked to no encounter", loose))
    for s in sections:
        for e in s.extra.get("entries", []):
            e.pop("encounter", None)  # a source resource id: not stored
    return Document(doc_id=f"patient:{d.pseudonym}", doc_type="patient", source=source,
                    title=f"Patient {d.pseudonym}", sections=sections, path=None,
                    extra={"patient_id": d.pseudonym})


def _known_identifiers(p) -> list[str]:
    """The Patient's identifying strings, removed from any free text of the record."""
    out: list[str] = [p.id or ""]
    for n in p.name or []:
        parts = [*(n.prefix or []), *(n.given or []), n.family or "", *(n.suffix or [])]
        out += [x for x in parts if x] + [" ".join(x for x in parts if x), n.text or ""]
        out += [" ".join([*(n.given or []), n.family or ""])]
    for a in p.address or []:
        out += [*(a.line or []), a.city or "", a.postalCode or "", a.district or "", a.text or ""]
    out += [t.value or "" for t in p.telecom or []]
    out += [i.value or "" for i in p.identifier or []]
    if p.birthDate:
        out.append(str(p.birthDate))
    for ext in p.extension or []:
        if ext.valueString:
            out.append(ext.valueString)
        if ext.valueAddress is not None:
            out += [*(ext.valueAddress.line or []), ext.valueAddress.city or "", ext.valueAddress.postalCode or ""]
    return [x for x in out if x]


def read_fhir_file(path: Path | str, max_bytes: int = DEFAULT_MAX_BYTES, *, key: KeyArg,
                   source: str | None = None) -> Iterator[Document]:
    """One de-identified patient Document per Patient in the file (see the module docstring)."""
    return read_fhir_files([Path(path)], max_bytes, key=key, source=source)


def read_fhir_files(paths: list[Path], max_bytes: int = DEFAULT_MAX_BYTES, *, key: KeyArg,
                    source: str | None = None) -> Iterator[Document]:
    """One de-identified patient Document per Patient in these files read as one set: a FHIR bulk export writes
    one NDJSON file per resource type (Patient.ndjson, Observation.ndjson, ...), joined by their references.
    A bad file or a broken reference fails the whole set (a record without some of its entries is not stored)."""
    paths = [Path(p) for p in paths]
    resources: list[tuple[str, str | None, Any]] = []
    for f in paths:
        own = load_resources(f, max_bytes)
        resources += own if len(paths) == 1 else [(f"{f.name} {where}", url, res) for where, url, res in own]
    what = str(paths[0]) if len(paths) == 1 else f"{paths[0].parent} (bulk export of {len(paths)} NDJSON files)"
    here = "this file" if len(paths) == 1 else "this export"
    secret = key() if callable(key) else key
    # Local keys: fullUrl ("urn:uuid:X") and "Type/id" both name a resource.
    full_urls: dict[str, str] = {}
    for where, full_url, res in resources:
        rt = res.get_resource_type()
        own = f"{rt}/{res.id}" if res.id else where
        if full_url:
            full_urls[full_url] = own
        full_urls.setdefault(own, own)
    patients = {f"Patient/{res.id}" if res.id else where: res for where, _, res in resources
                if res.get_resource_type() == "Patient"}
    if not patients:
        raise ReaderError(f"{what}: no Patient resource; a patient record needs one (Bundle.entry with "
                          "resourceType Patient, or Patient.ndjson in a bulk export)")
    records = {k: _Record(p, PatientDeid(secret, p.id or k, _known_identifiers(p))) for k, p in patients.items()}
    errors: list[str] = []
    for where, _, res in resources:
        rt = res.get_resource_type()
        if rt not in CLINICAL:
            continue
        field = "patient" if rt in ("Immunization", "AllergyIntolerance") else "subject"
        target = _ref_id(getattr(res, field, None), full_urls)
        if target not in records:
            errors.append(f"{where} ({rt}).{field}: " + ("missing" if target is None else
                                                          f"refers to no Patient in {here}"))
            continue
        enc = None
        if rt == "Encounter":
            enc = full_urls.get(f"Encounter/{res.id}", where)
        elif getattr(res, "encounter", None) is not None:
            enc = _ref_id(res.encounter, full_urls)
            if enc not in full_urls.values() or not enc.startswith("Encounter/"):
                errors.append(f"{where} ({rt}).encounter: refers to no Encounter in {here}")
                continue
        records[target].add(rt, res, enc)
    if errors:
        more = f" (and {len(errors) - MAX_ERRORS} more)" if len(errors) > MAX_ERRORS else ""
        raise ReaderError(f"{what}: broken reference: " + "; ".join(errors[:MAX_ERRORS]) + more)
    for rec in records.values():
        yield build_document(rec, source or "FHIR record")
