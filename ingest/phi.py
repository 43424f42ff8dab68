"""PHI guard for case documents: find names, full dates, phones, e-mails, ID numbers and street addresses.

Regular expressions for the structured kinds; names from context (titles like "Mr."/"Dr.", "X is a 50-year-old",
"name: X") and from a first-name lexicon (Faker's person-name lists for 12 locales) followed by a capitalised
word. A lone surname is never flagged without such context, so eponyms (Parkinson, Crohn, Graves) stay clean.
Measured on tests/fixtures/phi_synthetic.jsonl by `phi_eval`.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from ingest.documents import Document, Section

KINDS = ("NAME", "DATE", "PHONE", "EMAIL", "ID", "ADDRESS")
_PRIORITY = {"EMAIL": 0, "PHONE": 1, "ID": 2, "ADDRESS": 3, "DATE": 4, "NAME": 5}  # wins an overlap
Policy = Literal["reject", "mask"]


@dataclass(frozen=True)
class PhiFinding:
    kind: str  # one of KINDS
    start: int
    end: int
    text: str


# ---------------------------------------------------------------- structured kinds

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_PHONE = re.compile(
    r"(?<![\w/.-])(?:\+?\d{1,2}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[.-])\d{3}[.-]\d{4}"
    r"(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?![\w/-])")
# Space-separated or short numbers only after a phone word: "phone 415 555 0123", "pager 5550199".
_PHONE_CUE = re.compile(
    r"(?i:\b(?:phone|telephone|tel|cell|mobile|pager|fax|contact number|call|reached at|landline)\b)"
    r"\s*(?:is|number|no\.?)?\s*[:#]?\s*"
    r"((?:\+?\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)\s?)?\d{2,5}(?:[\s.-]?\d{2,4}){1,3})(?![\w/])")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_ID_CUE = re.compile(
    r"(?i:\b(?:MRN|MR|medical record(?: number| no\.?)?|record|chart(?: number| no\.?)?|patient (?:id|number)|"
    r"account(?: number| no\.?)?|acct\.?|member id|insurance (?:id|number)|policy(?: number| no\.?)?|"
    r"medicare(?: number)?|medicaid(?: number)?|ssn|social security(?: number)?|npi|dea(?: number)?|"
    r"(?:driver'?s )?license(?: number| no\.?)?|id)\b)"
    r"\s*(?:#|number|no\.?)?\s*(?:is|:)?\s*#?\s*:?\s*"
    r"([A-Z0-9](?:[A-Z0-9]|[ -](?=[A-Z0-9])){4,24})(?![\w-])")
_LONG_NUMBER = re.compile(r"(?<![\w.,/-])\d{7,}(?![\w.,/-])")

_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
          r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_YEAR = r"(?:19|20)\d{2}"
_DATES = [
    re.compile(rf"(?<![\d/.-])(?:0?[1-9]|1[0-2])([/-]){_DAY}\1(?:{_YEAR}|\d{{2}})(?![\d/-])"),  # 07/29/2008, 5/6/19
    re.compile(rf"(?<![\d/.-]){_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?![\d-])"),  # 2019-11-04
    re.compile(rf"(?<![\d.]){_DAY}\.(?:0?[1-9]|1[0-2])\.{_YEAR}(?![\d.])"),  # 14.02.2010
    re.compile(rf"\b{_MONTH}\s+{_DAY}(?:st|nd|rd|th)?\b(?:,?\s+{_YEAR}\b)?"),  # March 3, 2015 / Nov 28
    re.compile(rf"\b{_DAY}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR}\b)?(?![a-z])"),  # 3rd of November 2022
]

_STATES = ("AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC "
           "ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY").split()
_STREET_TYPES = (r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|"
                 r"Ter|Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Trail|Trl|Crescent|Close")
_CITY_STATE_ZIP = (rf"(?:,\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+){{0,2}})?(?:,?\s*(?:{'|'.join(_STATES)})\b)?"
                   r"(?:\s+\d{5}(?:-\d{4})?)?")
_ADDRESSES = [
    re.compile(rf"\b\d{{1,6}}\s+(?:[NSEW]\.?\s+|(?:North|South|East|West)\s+)?"
               rf"(?:(?:[A-Z][a-z]+|\d+(?:st|nd|rd|th))\s+){{1,3}}(?:{_STREET_TYPES})\b\.?(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?"
               rf"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|#)\.?\s*[\w-]+)?{_CITY_STATE_ZIP}"),
    re.compile(rf"\bP\.?\s?O\.?\s+Box\s+\d+{_CITY_STATE_ZIP}"),
]

# ---------------------------------------------------------------- names

_CAP = r"(?:Mc|Mac|O['’]|D['’])?[A-Z][a-z]+(?:-(?:Mc|O['’])?[A-Z][a-z]+)?"
_NAME_SEQ = rf"{_CAP}(?:\s+(?:[A-Z]\.|{_CAP})){{0,2}}"
_TITLED = re.compile(rf"\b(?:Mr|Mrs|Ms|Mx|Dr|Prof)\.?\s+({_NAME_SEQ})|\bMiss\s+({_NAME_SEQ})")
_NAME_CUE = re.compile(rf"(?:\b[Nn]ame\s*(?:is|:)|\bnamed|\b[Cc]ontact\s*:)\s*({_NAME_SEQ})")
_AGE_CUE = re.compile(rf"\b({_CAP}(?:\s+{_CAP})?),?\s+(?:is|was)\s+an?\s+(?:[a-z]+\s+){{0,2}}"
                      r"\d{1,3}[- ](?:year|month|week|day)[- ]old\b")
_SINGLE = re.compile(rf"\b({_CAP})\b(?!['’]?\s*[A-Z])")
_CAP_BEFORE = re.compile(r"[A-Z][a-z]*\.?[ \t]+$")  # "South Africa", "Tiny Tim", "Dr. X" (handled as titled)
# Words around a lone given name that make it a person in a note.
_NARRATIVE_AFTER = frozenset("""
is was has had reports reported states stated denies denied presents presented returns returned endorses endorsed
complains complained notes noted says said feels felt will would does did can could continues describes admits
agrees understands tolerates tolerated underwent went came comes lives lived works worked takes took uses used
and to who appears seems remains
""".split())
_NARRATIVE_BEFORE = frozenset("""
with for to cause bothering saw see seen examined told asked advised counseled encouraged gave give tell and
patient named daughter son wife husband mother father mom dad sister brother friend partner caregiver
""".split())
_PAIR = re.compile(rf"\b(?=({_CAP})((?:\s+[A-Z]\.)?\s+{_CAP}(?:\s+{_CAP})?)\b)")

# Capitalised words that are not names where a name could stand ("The patient", "Patient Education").
_NOT_NAME = frozenset("""
The A An And Or But If In On At To For With From By Of As Is Was He She They We I You It This That These Those
His Her Their Our My Your Its Patient Patients Client Doctor Nurse Mother Father Son Daughter Wife Husband Sister
Brother Baby Infant Child Grandmother Grandfather Family Case Note Notes History Plan Assessment Exam Review
Medical Hospital Clinic Center Centre University College School Health Healthcare Institute Foundation County
Department Disease Syndrome Test Tests Scale Score Criteria Classification Sign Signs Reflex Maneuver Fracture
Murmur Catheter Tube Monitor Stain Method Technique Procedure Operation Position Protocol Trial Study Group
Society Association City State Street Avenue Road Drive Lane Court Boulevard Way River Lake Valley
Nursing Care Program Project Team Unit Pharmacy Lab Labs Education Counseling Reasoning Treatment Testing
Agreements Instructions Results Vitals Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February
March April May June July August September October November December Today Yesterday Tomorrow Chief Complaint
Physical Social Past Present Current Additional Assessment Impression Diagnosis Medications Allergies Type Stage
Grade Class Phase Level Day Week Month Year Cancer Clinical Tumor Cell Cells North South East West New Old
General Internal Emergency Primary Family Mayo Hopkins Johns Cleveland Kaiser Prevention Control Centers
Disease Diseases Service Services Rapid Blood Heart Lung Kidney Liver Brain Skin Bone Eye Ear Nose Throat
National International Regional Community Military Memorial Police Division Commonwealth Mission Following
Associated Supreme Federal District Circuit Appeals Drugs Drug Children Research Israel Scotia
Mr Mrs Ms Mx Dr Prof Miss
""".split())
# Eponyms of diseases, signs and tests: never part of a lexicon-matched name.
_EPONYMS = frozenset("""
Addison Alzheimer Apgar Asperger Babinski Barrett Bartholin Bell Bennett Bowen Brudzinski Brugada Buerger Burkitt
Chagas Charcot Cheyne Colles Coombs Crohn Cushing Doppler Down Dupuytren Ebstein Epley Erb Ewing Fallot Finkelstein
Flint Foley Gehrig Gilbert Glasgow Gleason Graves Guillain Barre Hashimoto Heimlich Hirschsprung Hodgkin Holter
Horner Huntington Kaposi Kawasaki Kernig Klinefelter Korsakoff Kussmaul Lachman Lyme Mallory Marfan Meckel Meniere
Munchausen Murphy McBurney McMurray Osgood Osler Paget Parkinson Phalen Raynaud Reiter Reye Rinne Romberg Schatzki
Sjogren Spurling Steell Stokes Tinel Tourette Trendelenburg Turner Valsalva Virchow Weber Wells Wenckebach
Wernicke Whipple Wilms Wilson Wolff Zenker Zollinger Kaplan Meier Fisher Student Pearson Spearman Wilcoxon Kruskal
Bonferroni Tukey Snellen Landolt Jaeger Gram Ziehl Papanicolaou Hallpike Dix Likert Wechsler Folstein
Eaton Lambert Robin Gunn Still Unna Angelman Prader Willi Nova Todd Leigh Ullrich Duane Cornelia Salih Parker
""".split())
_EPONYM_NOUNS = frozenset("""
disease syndrome sign signs test tests maneuver manoeuvre reflex fracture murmur score scale criteria
classification procedure operation catheter tube monitor stain phenomenon palsy law curve equation formula method
technique position triad ulcer lymphoma sarcoma tumor tumour cyst node nodes body bodies cell cells disorder
sequence anomaly pupil myasthenic
""".split())
# Given names that are also common words, places or drug brands (Allegra, Camila): they count only before a
# known surname ("Grant Johnson").
_AMBIGUOUS_FIRST = frozenset("""
Amelia Ana Aura Bill Bo Comfort Coral Cord Crystal Dawn Don Edu Else Ester Faith Feline Floor Flora Gene Graham
Grant Harm Harsh Hope India Iris Ivy Jan Job June Kick Lot Mad Man Marine Mark Meta Misty Nadir Nail Nick Osha
Peace Peer Pilar Pili Ray Rose Sad Said Sandy Scot Senna Sole Summer Ties Urban Vera Will May Art Sunny Joy Penny
Ruby Amber Autumn April Holly Heather Jasmine Lily Daisy Violet Pearl Jade Chase Hunter Max Miles Sterling Guy
Pat Sue Bud Bob Frank Rich Young Page Case Wade Dean Lane Chance Royal Prince Major King Rock Stone Bear
Danish German Christian Carolina Virginia Georgia Angeles America Jordan Israel Kenya Paris London Victoria Sydney
Austin Dallas Houston Orlando Phoenix Santiago Francisco Louis Augusta Madison Aurora Florence Chelsea Lincoln
Washington Jackson Marshall Morris Africa Candida Sami Milan Dakota Rico Angel Wolf
Allegra Lyrica Yasmin Ella Camila Errin Jolivette Nora Portia Nikki Ocella Syeda Zarah Gianvi Loryna Lutera Aviane
Levora Kelnor Zovia Lyza Tarina Alesse Evista Tiny
""".split())
# A capitalised word after a name-like pair that makes it an organisation ("Henry Ford Hospital").
_ORG_WORDS = frozenset("""
Hospital Hospitals University College School Institute Foundation Clinic Center Centre Medical Memorial County
Health Healthcare Society Association Trust Fund Award Prize Library Museum Company Corporation Inc Laboratories
""".split())
_FAKER_LOCALES = ("en_US", "en_GB", "en_IE", "en_IN", "en_NG", "en_PK", "es_MX", "es_ES", "it_IT", "fr_FR",
                  "de_DE", "pt_BR", "nl_NL")


def _fold(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


@lru_cache(maxsize=1)
def name_lexicon() -> tuple[frozenset[str], frozenset[str]]:
    """(first names, surnames) from Faker's person providers, accents folded too."""
    first: set[str] = set()
    last: set[str] = set()
    for loc in _FAKER_LOCALES:
        p = importlib.import_module(f"faker.providers.person.{loc}").Provider
        for attr in ("first_names", "first_names_male", "first_names_female"):
            first.update(getattr(p, attr, ()) or ())
        last.update(getattr(p, "last_names", ()) or ())
    first = {n for n in first | {_fold(n) for n in first} if n.isalpha() and n[:1].isupper()}
    last = {n for n in last | {_fold(n) for n in last} if n.replace("-", "").isalpha() and n[:1].isupper()}
    return frozenset(first - _NOT_NAME - _EPONYMS), frozenset(last)


def _strip_title_words(span: str) -> bool:
    return bool(span) and all(w.rstrip(".") not in _NOT_NAME for w in span.split())


def _not_a_person(text: str, end: int) -> bool:
    """The next word makes the span an eponym ("Austin Flint murmur") or an organisation ("Henry Ford Hospital")."""
    m = re.match(r"(?:['’]s)?\s+([a-zA-Z]+)", text[end:end + 30])
    return bool(m and (m.group(1).lower() in _EPONYM_NOUNS or m.group(1) in _ORG_WORDS))


def _names(text: str) -> list[PhiFinding]:
    first, last = name_lexicon()
    out: list[PhiFinding] = []

    def add(start: int, span: str, titled: bool = False):
        span = re.sub(r"['’]s$", "", span.rstrip())
        words = span.split()
        while words and words[-1].rstrip(".") in _NOT_NAME:  # "Dr. Chen Today" -> "Chen"
            words.pop()
        span = " ".join(words)
        eponym = not titled and any(w in _EPONYMS for w in words)  # "Mr. Fisher" is a person, "Fisher test" not
        if span and not eponym and not _not_a_person(text, start + len(span)):
            out.append(PhiFinding("NAME", start, start + len(span), text[start:start + len(span)]))

    for m in _TITLED.finditer(text):
        g = 1 if m.group(1) else 2
        add(m.start(g), m.group(g), titled=True)
    for rx in (_NAME_CUE, _AGE_CUE):
        for m in rx.finditer(text):
            if _strip_title_words(m.group(1)):
                add(m.start(1), m.group(1), titled=True)
    for m in _SINGLE.finditer(text):  # a lone given name in narrative: "Matthew was last seen", "cause Karen to"
        w = m.group(1)
        if (w in first and w not in _AMBIGUOUS_FIRST and w not in _EPONYMS
                and not _CAP_BEFORE.search(text[max(0, m.start() - 30):m.start()])):
            after = re.match(r"(?:['’]s\b|\s+([a-z]+))", text[m.end():m.end() + 20])
            before = re.search(r"\b([a-z]+),?\s+$", text[max(0, m.start() - 20):m.start()])
            if (after and (after.group(1) is None or after.group(1) in _NARRATIVE_AFTER)) or \
                    (before and before.group(1) in _NARRATIVE_BEFORE):
                add(m.start(1), w)
    for m in _PAIR.finditer(text):
        given, rest = m.group(1), m.group(2)
        surnames = re.findall(_CAP, rest)
        if given not in first or given in _EPONYMS or not surnames or surnames[0] in _NOT_NAME:
            continue
        if given in _AMBIGUOUS_FIRST and surnames[0] not in last:
            continue
        if len(surnames) > 1 and (surnames[1] not in last or surnames[1] in _NOT_NAME):
            rest = rest[:rest.rindex(surnames[1])]
        add(m.start(1), given + rest)
    return out


def scan(text: str) -> list[PhiFinding]:
    """Non-overlapping findings in text order; on overlap the more specific kind (then the longer span) wins."""
    found: list[PhiFinding] = []

    def grab(kind: str, rx: re.Pattern, group: int = 0):
        for m in rx.finditer(text):
            found.append(PhiFinding(kind, m.start(group), m.end(group), m.group(group)))

    grab("EMAIL", _EMAIL)
    grab("PHONE", _PHONE)
    grab("PHONE", _PHONE_CUE, 1)
    grab("ID", _SSN)
    grab("ID", _LONG_NUMBER)
    for m in _ID_CUE.finditer(text):
        if sum(c.isdigit() for c in m.group(1)) >= 4:
            found.append(PhiFinding("ID", m.start(1), m.end(1), m.group(1)))
    for rx in _DATES:
        grab("DATE", rx)
    for rx in _ADDRESSES:
        grab("ADDRESS", rx)
    found += _names(text)
    kept: list[PhiFinding] = []
    for f in sorted(found, key=lambda f: (_PRIORITY[f.kind], f.start - f.end)):
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def mask(text: str, findings: list[PhiFinding] | None = None) -> str:
    """Text with every finding replaced by its placeholder, e.g. "[NAME]"."""
    findings = scan(text) if findings is None else findings
    out, pos = [], 0
    for f in findings:
        out += [text[pos:f.start], f"[{f.kind}]"]
        pos = f.end
    return "".join(out) + text[pos:]


# ---------------------------------------------------------------- guard


@dataclass
class PhiReport:
    doc_id: str
    path: str | None
    action: Literal["clean", "rejected", "masked"]
    counts: dict[str, int] = field(default_factory=dict)  # findings by kind
    examples: list[str] = field(default_factory=list)  # "NAME: M***", never the full value
    doc: Document | None = field(default=None, repr=False)  # what to index: original, masked copy, or None

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "path": self.path, "action": self.action, "counts": self.counts,
                "examples": self.examples}


def guard(doc: Document, policy: Policy = "reject", max_examples: int = 5) -> PhiReport:
    """Scan title and sections. Clean: the doc as is. "reject": no doc. "mask": a copy with placeholders."""
    if policy not in ("reject", "mask"):
        raise ValueError(f"unknown PHI policy {policy!r}; choose 'reject' or 'mask'")
    parts = [doc.title] + [s.title for s in doc.sections] + [s.text for s in doc.sections]
    findings = [scan(p) for p in parts]
    flat = [f for fs in findings for f in fs]
    if not flat:
        return PhiReport(doc.doc_id, doc.path, "clean", doc=doc)
    counts = dict(Counter(f.kind for f in flat))
    examples = [f"{f.kind}: {f.text[:1]}***" for f in flat[:max_examples]]
    if policy == "reject":
        return PhiReport(doc.doc_id, doc.path, "rejected", counts, examples)
    n = len(doc.sections)
    masked_titles = [mask(p, fs) for p, fs in zip(parts[1:n + 1], findings[1:n + 1])]
    masked_texts = [mask(p, fs) for p, fs in zip(parts[n + 1:], findings[n + 1:])]
    sections = [Section(t, x, dict(s.extra)) for s, t, x in zip(doc.sections, masked_titles, masked_texts)]
    masked = dataclasses.replace(doc, title=mask(doc.title, findings[0]), sections=sections,
                                 extra={**doc.extra, "phi_masked": sum(counts.values())})
    return PhiReport(doc.doc_id, doc.path, "masked", counts, examples, doc=masked)


# ---------------------------------------------------------------- evaluation


def phi_eval(path: Path | str) -> dict:
    """Recall and precision per kind on a labelled JSONL set: {"text", "phi": [{"kind", "text"}]} per line.

    A gold span is found when findings of its kind cover all of it; a finding is correct when it overlaps a gold
    span of its kind. Lines with "phi": [] are negatives: any finding there is a false positive.
    """
    gold_n, hit_n, pred_n, correct_n = Counter(), Counter(), Counter(), Counter()
    any_kind_hits, negatives, neg_fp, fp_examples = 0, 0, 0, []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        text, found = rec["text"], scan(rec["text"])
        gold, pos = [], {}
        for g in rec["phi"]:
            start = text.index(g["text"], pos.get(g["text"], 0))
            pos[g["text"]] = start + 1
            gold.append((g["kind"], start, start + len(g["text"])))
        if not gold:
            negatives += 1
            neg_fp += bool(found)
            fp_examples += [f"{f.kind}: {f.text!r} in {text[:60]!r}" for f in found]
        for kind, s, e in gold:
            gold_n[kind] += 1
            same = [f for f in found if f.kind == kind]
            covered = set().union(*(range(f.start, f.end) for f in same)) if same else set()
            hit_n[kind] += all(i in covered or text[i].isspace() for i in range(s, e))
            any_kind_hits += any(f.start < e and s < f.end for f in found)
        for f in found:
            pred_n[f.kind] += 1
            correct_n[f.kind] += any(k == f.kind and f.start < e and s < f.end for k, s, e in gold)
    per_kind = {k: {"gold": gold_n[k], "found": hit_n[k], "recall": _ratio(hit_n[k], gold_n[k]),
                    "predicted": pred_n[k], "precision": _ratio(correct_n[k], pred_n[k])} for k in KINDS}
    total_gold = sum(gold_n.values())
    return {"per_kind": per_kind,
            "recall": _ratio(sum(hit_n.values()), total_gold),
            "precision": _ratio(sum(correct_n.values()), sum(pred_n.values())),
            "recall_any_kind": _ratio(any_kind_hits, total_gold),
            "negatives": negatives, "negatives_with_findings": neg_fp, "false_positive_examples": fp_examples}


def _ratio(a: int, b: int) -> float:
    return round(a / b, 3) if b else 1.0
