"""PHI guard for case documents: names, dates, phones, e-mails, ID numbers, addresses, ages over 89, IP addresses
and URLs that carry identifiers.

Structured kinds are regular expressions, several of them anchored on a cue word ("DOB", "MRN", "call", "lives
at"), so that obfuscated or unusual forms are caught there ("dob 14-Mar-1962", "john dot smith at example dot com").
Names come from context, not from capital letters alone: titles (Mr./dr/MRS.), cues ("Patient:", "my name is",
"signed by", "wife,"), credentials ("Jane Doe, MD"), the "SMITH, JOHN" layout, placeholders left by an earlier
masking ("Smith, [NAME]"), a narrative verb after a name-like pair ("Chidi Okonkwo presented"), and Faker's
first- and last-name lists for every Latin-script locale (any case: "john smith", "JOHN SMITH"). A name found once
is masked wherever else it occurs in the same text or document. Lone capitalised words are never names without
such evidence, and eponyms (Parkinson, Hodgkin, Crohn, Down syndrome) and drug brands are kept.

`guard` also masks identifiers in a case document's id, path, title, source and URL (a file named
"John Smith discharge.txt"), keeping ids distinct with a keyed tag. Measured by `carecite eval phi` (eval/phi.py).
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import importlib
import pkgutil
import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Literal

from ingest.documents import Document, Section

KINDS = ("NAME", "DATE", "PHONE", "EMAIL", "ID", "ADDRESS", "AGE", "IP", "URL")
_PRIORITY = {"URL": 0, "EMAIL": 1, "IP": 2, "PHONE": 3, "ID": 4, "ADDRESS": 5, "DATE": 6, "AGE": 7, "NAME": 8}
Policy = Literal["reject", "mask"]


@dataclass(frozen=True)
class PhiFinding:
    kind: str  # one of KINDS
    start: int
    end: int
    text: str


# ---------------------------------------------------------------- web, e-mail, network

_TLD = r"(?:com|org|net|edu|gov|mil|int|info|biz|io|co|us|uk|ca|au|de|fr|nl|in|ng|za|ie|me|health|mail|email)"
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# "john dot smith at example dot com", "jdoe [at] example [dot] net", "jane.doe(at)example.org"
_AT = r"(?:\s*[\[({<]\s*(?i:at)\s*[\])}>]\s*|\s+(?i:at)\s+)"
_DOT = r"(?:\.|\s*[\[({<]\s*(?i:dot)\s*[\])}>]\s*|\s+(?i:dot)\s+)"
_OBF_EMAIL = re.compile(rf"(?<![\w.])([A-Za-z0-9_%+-]+(?:{_DOT}[A-Za-z0-9_%+-]+)*)({_AT})"
                        rf"([A-Za-z0-9-]+(?:{_DOT}[A-Za-z0-9-]+)*?{_DOT}(?i:{_TLD})(?:{_DOT}[A-Za-z]{{2}})?)\b")
_EMAIL_HINT = re.compile(r"(?i)\b(?:dot|com|org|net|edu|gov|io|info|mail)\b|[\[({<]\s*at\s*[\])}>]")
_URL = re.compile(r"(?i)(?:\b(?:https?://|www\.)|\b(?:[a-z0-9-]+\.)+(?:com|org|net|edu|gov|io|co|us|uk|me|health)/)"
                  r"[^\s<>\"'\[\]{}|]*")
# What makes a URL identifying: a patient/user key in its query, a record path, a home page, a social profile.
_URL_ID = re.compile(
    r"(?i)[?&;][a-z_]*(?:id|patient|pt|mrn|pid|user|uid|member|name|dob|email|acct|account|record|chart|subject|"
    r"person|client|ssn)[a-z_]*=|/(?:patients?|pt|users?|u|members?|profiles?|records?|charts?|people|persons?|"
    r"clients?|subjects?|accounts?|in|mrn|~)/[^/?#\s]+|/~|(?:facebook|twitter|x|instagram|linkedin|tiktok|youtube|"
    r"myspace|pinterest|reddit|threads|snapchat)\.com/[^/\s]")
_OCT = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCT}(?:\.{_OCT}){{3}}(?!\.?\d)(?!\w)")
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = re.compile(rf"(?<![\w:])(?:(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,6}}:(?:{_H}(?::{_H}){{0,5}})?|::{_H}(?::{_H}){{1,6}})"
                   r"(?![\w:])")

# ---------------------------------------------------------------- phones and ID numbers

_EXT = r"(?:\s*(?:x|ext\.?|extension)\s*\d{1,5})?"
_PHONE = re.compile(r"(?<![\w/.+-])(?:(?:\+|00)?\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[.-])\d{3}[.-]\d{4}"
                    rf"{_EXT}(?![\w/-])")
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}[\s.-]?(?:\(0\)\s?)?(?:\(?\d{1,5}\)?[\s.-]?){1,4}\d{2,5}"
                         rf"{_EXT}(?![\w-])")
_NUMBER_RUN = rf"(?:\+|00)?(?:\(\d{{1,5}}\)\s?)?\d{{1,10}}(?:(?:[ .-]|\s?\(\d{{1,4}}\)\s?)\d{{1,8}}){{0,5}}{_EXT}"
_PHONE_CUE = re.compile(
    r"(?i:\b(?:phone|telephone|tel|ph|cell(?:phone)?|mobile|mob|pager|beeper|fax|contact(?: number| no\.?| #)?|"
    r"call(?:back)?(?: number)?|reached at|reach (?:him|her|them|me|us) at|landline|home|work|office|number|"
    r"text (?:him|her|them|me))\b)"
    rf"\s*(?:is|number|no\.?|#|at|on)?\s*[:#]?\s*(?:\([a-z]\)\s*)?({_NUMBER_RUN})(?![\w/])")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_ID_CUE = re.compile(
    r"(?i:\b(?:MRN|MR|med(?:ical)? rec(?:ord)?s?(?: number| no\.?)?|record|chart(?: number| no\.?)?|"
    r"patient (?:id|number|no\.?)|pt (?:id|no\.?)|account(?: number| no\.?)?|acct\.?|member(?: id| number)?|"
    r"insurance (?:id|number|no\.?)|policy(?: number| no\.?)?|group(?: number| no\.?)?|medicare(?: number| id)?|"
    r"medicaid(?: number| id)?|ssn|social security(?: number| no\.?)?|npi|dea(?: number)?|"
    r"(?:driver'?s )?licen[cs]e(?: number| no\.?| plate)?|plate|vin|serial(?: number| no\.?)?|s/n|sn|device id|"
    r"accession(?: number| no\.?)?|encounter(?: number| no\.?| id)?|visit (?:number|id|no\.?)|"
    r"specimen(?: number| id| no\.?)?|claim(?: number| no\.?)?|beneficiary(?: id| number)?|"
    r"subscriber(?: id| number)?|case (?:number|no\.?)|certificate(?: number| no\.?)?|passport(?: number| no\.?)?|"
    r"id)\b)"
    r"\s*(?:#|number|no\.?)?\s*(?:is|:)?\s*#?\s*:?\s*"
    r"((?:[A-Za-z]{1,3}[ -]?)?[A-Za-z0-9]*\d[A-Za-z0-9]*(?:[ /-][A-Za-z0-9]*\d[A-Za-z0-9]*|[ -][A-Z]{2,4}\b)*)(?![\w-])")
_LONG_NUMBER = re.compile(r"(?<![\w.,/-])\d{7,}(?![\w.,/-])")

# ---------------------------------------------------------------- dates and ages

_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
          r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
_MON = f"(?i:{_MONTH})"  # any case: "14-MAR-1962", "dob 3 mar 1950"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_ORD = r"(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d{2}"
_DATES = [
    re.compile(rf"(?<![\d/.-]){_DAY}([/-]){_DAY}\1(?:{_YEAR}|\d{{2}})(?![\d/-])"),  # 07/29/2008, 23/11/2021, 5-6-19
    re.compile(rf"(?<![\d.]){_DAY}\.{_DAY}\.{_YEAR}(?!\.?\d)"),  # 14.02.2010
    re.compile(rf"(?<![\d/.-]){_YEAR}[-/.](?:0?[1-9]|1[0-2])[-/.]{_DAY}(?![\d-])"),  # 2019-11-04, 1950/07/03
    re.compile(rf"\b{_MONTH}\s+{_DAY}{_ORD}\b(?:,?\s+{_YEAR}\b)?"),  # March 3, 2015 / Nov 28
    re.compile(rf"\b{_DAY}{_ORD}\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR}\b)?(?![a-z])"),  # 3rd of November 2022
    re.compile(rf"(?<![\w/.-]){_DAY}([-/]?){_MON}\1(?:{_YEAR}|\d{{2}})(?![\w/-])"),  # 14-Mar-1962, 3-JUL-50, 14Mar1962
    re.compile(rf"(?<![\w/.-]){_DAY}{_ORD}\s+(?:of\s+)?{_MON},?\s+{_YEAR}\b"),  # 14 mar 1962
    re.compile(rf"\b{_MON}([-/]){_DAY}\1(?:{_YEAR}|\d{{2}})\b"),  # Mar-14-1962
    re.compile(rf"\b{_MON}\s+{_DAY}{_ORD},?\s+{_YEAR}\b"),  # MARCH 14, 1962
]
_DATE_CUE = re.compile(  # "dob 3.14.62", "born on 3rd of July 1950"; a bare year is no identifier
    r"(?i:\b(?:dob|d\.o\.b\.?|date of birth|birth ?date|born(?: on)?)(?![\w.]))\s*[:#-]?\s*"
    rf"((?:\d{{1,4}}{_ORD}|{_MON})(?:(?:[-/.,]\s*|\s+)(?:of\s+)?(?:\d{{1,4}}{_ORD}|{_MON})){{1,2}})(?![\w/])")
_SHORT_DATE_CUE = re.compile(  # "surgery on 3/14", "admitted 11/2"
    r"(?i:\b(?:on|since|dated|admitted|discharged|seen|until|dos|date)\b:?\s+)"
    r"((?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))(?![\d/])")
_OLD = r"(?:9\d|1[0-4]\d)"
_UNITS = r"(?:one|two|three|four|five|six|seven|eight|nine)"
_AGE_WORDS = rf"(?:ninety(?:[- ]{_UNITS})?|(?:one|a) hundred(?:(?: and)?[- ](?:{_UNITS}|ten))?)"
_AGES = [
    re.compile(rf"(?i)(?<![\w.])({_OLD}|{_AGE_WORDS})(?=\s*-?\s*(?:years?|yrs?|y)[- ]?(?:old|o\b|/o|\.o\.)|"
               r"\s*(?:yo|y/o|y\.o\.|years? of age)(?!\w)|\s+years? old)"),
    re.compile(rf"(?i)\b(?:aged?|age of|age is)\s*:?\s*({_OLD}|{_AGE_WORDS})\b"
               r"(?!\s*(?:%|mg|kg|g|mm|cm|ml|mmhg|min|minutes|hours|days|months|weeks|percent))"),
]

# ---------------------------------------------------------------- addresses

_STATES = ("AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC "
           "ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS FM GU MH MP PW PR VI AA AE AP").split()
_STATE_RX = "|".join(_STATES)
_ZIP = r"\d{5}(?:-\d{4})?"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}"
_CAPW = r"[A-Z][a-z]+(?:-[A-Z][a-z]+)*"


@lru_cache(maxsize=1)
def _street_types() -> str:
    from faker.providers.address.en_US import Provider
    words = set(Provider.street_suffixes) | set(
        "Street St Avenue Ave Road Rd Boulevard Blvd Lane Ln Drive Dr Court Ct Way Place Pl Terrace Ter Circle Cir "
        "Highway Hwy Parkway Pkwy Square Sq Trail Trl Crescent Close Row Mews Gardens Grove Strasse Weg".split())
    return "|".join(sorted(words, key=len, reverse=True))


_UNIT = r"(?:Apt|Apartment|Suite|Ste|Unit|Flat|Studio|Rm|Room|Fl|Floor|#)\.?\s*#?\s*[A-Za-z0-9-]+"


@lru_cache(maxsize=1)
def _address_patterns() -> list[re.Pattern]:
    types = _street_types()
    city_state_zip = (rf"(?:,?\s+{_CAPW}(?:\s{_CAPW}){{0,2}}(?=,?\s*(?:(?:{_STATE_RX})\b|{_ZIP}|{_UK_POSTCODE})))?"
                      rf"(?:,?\s*(?:{_STATE_RX})\b)?(?:,?\s+(?:{_ZIP}|{_UK_POSTCODE})\b)?")
    return [
        re.compile(rf"\b\d{{1,6}}[A-Z]?\s+(?:[NSEW]\.?\s+|(?:North|South|East|West)\s+)?"
                   rf"(?:(?:{_CAPW}|\d+(?:st|nd|rd|th))\s+){{1,3}}(?:{types})\b\.?(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?"
                   rf"(?:,?\s+{_UNIT})?{city_state_zip}"),
        re.compile(rf"\b\d{{1,6}}[A-Z]?,?\s+(?:Rue|Via|Calle|Avenida|Av\.|Rua|Boulevard|Place|Chemin)\s+"
                   rf"(?:(?:de|la|du|des|del|da|do|dos|le)\s+)*{_CAPW}(?:\s+{_CAPW})?(?:,\s*{_CAPW})?"),
        re.compile(rf"\bP\.?\s?O\.?\s+Box\s+\d+{city_state_zip}"),
        re.compile(rf"\b(?:USNS|USNV|USS|USCGC)\s+{_CAPW}(?:\s+{_CAPW})?(?:,?\s+FPO\s+A[AEP]\s+\d{{5}})?"),
        re.compile(r"\b(?:PSC|Unit)\s+\d{4},?\s+Box\s+\d{4}(?:,?\s+[AFD]PO\s+A[AEP]\s+\d{5})?"),
        re.compile(rf"\b{_CAPW}(?:\s{_CAPW}){{0,2}},\s*(?:{_STATE_RX})\s+{_ZIP}\b"),  # Springfield, IL 62704
    ]


# After "address:" or "lives at": the run of address-like tokens that follows ("Flat 5, Smith Lane, Leeds LS1 4AB").
_PO_BOX = r"P\.?\s?O\.?\s+Box\s+\d+"
_ADDR_TOKEN = (rf"(?:{_PO_BOX}|{_UK_POSTCODE}\b|{_ZIP}\b|\d{{1,6}}[A-Z]?\b|{_UNIT}|"
               r"(?:St|Ave|Apt|Rd|Dr|Blvd|Ln|Ct|Pl|Ste|Mt|Ft|Hwy|Pkwy|Sq|Ter|N|S|E|W|NE|NW|SE|SW)\.|"
               rf"{_CAPW}|[A-Z]{{2}}\b|(?:de|la|du|des|le|del|della|of|the|upon|am|an|der|van|von)\b)")
_ADDRESS_CUE = re.compile(
    r"(?i:\b(?:address|addr\.?|lives at|living at|resides at|residing at|located at|"
    r"picked (?:him|her|them) up at|picked up at)\b)\s*(?:is\s*)?:?\s*"
    rf"((?:{_PO_BOX}|\d{{1,6}}[A-Z]?\b|{_UNIT}|{_CAPW})(?:(?:,\s*|[ \t]+){_ADDR_TOKEN}){{0,14}})")
_CITY_CUE = re.compile(  # Safe Harbor counts the city too: "moved to Springfield", "lives with her son in Dayton"
    r"(?i:\b(?:lives|living|lived|resides|residing|moved|relocated|home)\b)[^.;\n]{0,60}?\b(?i:in|to)\s+"
    rf"({_CAPW}(?:\s{_CAPW}){{0,2}})")
_ZIP_CUE = re.compile(rf"(?i:\b(?:zip(?: code)?|postal code|post ?code)\b)\s*:?\s*({_ZIP}|{_UK_POSTCODE})\b")
_APARTMENT = re.compile(r"(?i:\b(apartment|apt|flat|suite|ste|studio|unit)\b)\.?\s*(#|no\.?|number)?\s*"
                        r"(\d{1,5}[A-Za-z]?|[A-Za-z]\d{1,4})\b")

# ---------------------------------------------------------------- names

_CAP = r"(?:[A-Z][a-z]*['’])?[A-Z][a-z]+(?:[A-Z][a-z]+)?(?:-(?:[A-Z][a-z]*['’])?[A-Z][a-z]+)*"
_UPW = r"(?:[A-Z]['’])?[A-Z]{2,}(?:-[A-Z]{2,})*"
_TOKEN = re.compile(r"\[NAME\]|[A-Za-z](?:[A-Za-z'’]*[A-Za-z])?(?:-[A-Za-z](?:[A-Za-z'’]*[A-Za-z])?)*\.?")
_PARTICLES = frozenset("de la las los van der den von di da dos das du del della bin binti bint ibn al el le ter ten "
                       "mac st".split())

# Function words, narrative verbs and note vocabulary: never part of a name, and where a name stops.
_STOP = frozenset("""
a an the and or but if so nor yet of in on at to for with from by as into onto upon about after before since until
over under than then there here now today tonight yesterday tomorrow this that these those it its he she they we i
you me my your our his her their him them us who whom whose which what when where why how is was are were be been
being am has have had do does did will would shall should can could may might must not no yes also too very just
only please per re via vs x c o n s y also again well still already ever never always soon later
reports reported states stated denies denied presents presented returns returned endorses endorsed complains
complained notes noted says said feels felt continues describes admits agrees understands tolerates tolerated
underwent went came comes come lives lived works worked takes took uses used appears seems remains arrived arrives
declined declines refuses refused reports requests requested called calls asked asks wants wanted needs needed
is was has had presenting reporting feeling doing getting being having seen seeing see saw here
patient patients pt pts client resident male female man woman men women boy girl baby infant child son daughter
wife husband mother father sister brother mom dad family yo y/o year years yr yrs old age aged dob mrn sex gender race
md do rn np pa phd dds dpm msw lcsw rd ot pt na n/a unknown none other self
date time phone cell home work address email fax pager contact room bed unit floor clinic hospital
note notes history plan assessment diagnosis exam review impression summary discharge admission consult
prior deceased alive living died dead end stage healthy unknown adopted maternal paternal
""".split())

# Capitalised words that are not names where a name could stand ("The patient", "Patient Education", "Cardiology").
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
Mr Mrs Ms Mx Dr Prof Miss Sir Madam
Cardiology Neurology Oncology Nephrology Surgery Psychiatry Psychology Dermatology Orthopedics Orthopaedics Urology
Rheumatology Endocrinology Gastroenterology Pulmonology Hematology Radiology Pathology Pediatrics Obstetrics
Gynecology Ophthalmology Anesthesia Anesthesiology Hospitalist Palliative Hospice Infectious Therapy Therapist
Management Wound Work Worker Dietitian Nutrition Chaplain Interpreter Security Transport Admissions Triage
ICU ED ER OR PACU NICU PICU ENT GI OB GYN PCP EMS HPI ROS PMH PSH FH SH CC HEENT CV GU MSK NEURO PSYCH ABD EXT
Chest Pain Abdomen Abdominal Back Neck Head Extremities Neuro Psych Lungs General Constitutional Respiratory
Cardiovascular Gastrointestinal Genitourinary Musculoskeletal Neurological Psychiatric Hematologic Endocrine
Allergy Allergic Immunology Labs Imaging Objective Subjective Data Subject Signed Sincerely Regards Thanks Dear
Hello Hi Attending Resident Fellow Intern Provider Physician Surgeon Name Sex Age Male Female Date Time Phone
Address Email Contact Emergency Kin Guardian Caregiver Spouse Partner Friend Neighbor Neighbour Mom Dad Pt
Discharge Admission Admitted Discharged Summary Consult Consultation Progress Report Reports Follow Up Visit
Office Telehealth Portal Message Messages Call Calls Phone Refill Refills Order Orders Status Problem Problems
Vital Signs Temperature Pulse Pressure Rate Weight Height Oxygen Saturation Review Systems Positive Negative
Normal Abnormal Mild Moderate Severe Acute Chronic Left Right Bilateral Upper Lower Anterior Posterior
Risk Factors Prognosis Outlook Symptoms Causes Cause Complications Inheritance Frequency Genetic Changes
Key Points Overview Information Resources Support Organizations Tips Questions Answers Glossary Summary Facts
Insulin Metformin Aspirin Tylenol Advil Motrin Lasix Coumadin Warfarin Heparin Lipitor Crestor Zoloft Prozac
""".split())
# Eponyms of diseases, signs and tests: never part of a name found without a title.
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
Tay Sachs Alport Hurler Niemann Gaucher Fabry Pompe Krabbe Canavan Rett Bruton Fanconi Blackfan Soulier Glanzmann
Willebrand Ehlers Danlos Peutz Jeghers Cowden Fraumeni Hippel Lindau Sturge Trenaunay Chiari Moyamoya Behcet
Takayasu Wegener Churg Kikuchi Castleman Waldenstrom Sezary Hurthle Merkel Stargardt Leber Bardet Biedl Waardenburg
Treacher Noonan DiGeorge Patau Magenis Lesch Nyhan Menkes Zellweger Refsum Kearns Sayre Friedreich Duchenne
Dreifuss Pelizaeus Merzbacher Binswanger Creutzfeldt Jakob Gerstmann Straussler Scheinker Lewy Broca Argyll Sequard
Basedow Quervain Riedel Sheehan Kallmann Kartagener Marjolin Kasabach Maffucci Ollier Perthes Schlatter Kienbock
Scheuermann Sprengel Madelung Volkmann Peyronie Ledderhose Bankart Monteggia Galeazzi Lisfranc Maisonneuve Chopart
Boerhaave Menetrier Ogilvie Dubin Crigler Najjar Caroli Alagille Krukenberg Sertoli Leydig Bartter Gitelman Liddle
Goodpasture Henoch Schonlein Addisonian Alzheimers Parkinsons Hodgkins Crohns Aspergers
""".split())
_EPONYM_NOUNS = frozenset("""
disease diseases syndrome syndromes sign signs test tests maneuver manoeuvre reflex fracture murmur score scale
criteria classification procedure operation catheter tube monitor stain phenomenon palsy law curve equation formula
method technique position triad ulcer lymphoma sarcoma tumor tumour cyst node nodes body bodies cell cells disorder
disorders sequence anomaly pupil myasthenic dementia disease's thyroiditis esophagus dystrophy ataxia chorea
neuralgia neuropathy anemia sign's type variant
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
Levora Kelnor Zovia Lyza Tarina Alesse Evista Tiny Amy Dan Gal Lina Mina Nina Tina Dina Ada Ali Asa Ava Eva Ida
Ira Isa Ola Uma Ana Ina Elle Early Long Little Strong Short Small Rusty Dusty Stormy Happy Lucky Honey Candy
Brandy Cherry Ginger Pepper Sugar Sky River Rain Storm Blue Red Woody Buddy Kitty Bunny Precious Blessing Gift
Patience Prudence Charity Mercy Grace Constance Verity Honor Trinity Destiny Harmony Melody Serenity Unity Liberty
Journey Promise Alpha Omega Delta Sigma Gamma Beta Ace Oral Branch Mason Hunter Baker Cook Porter
""".split())
# A word after a name-like pair that makes it an organisation ("Henry Ford Hospital").
_ORG_WORDS = frozenset("""
Hospital Hospitals University College School Institute Foundation Clinic Center Centre Medical Memorial County
Health Healthcare Society Association Trust Fund Award Prize Library Museum Company Corporation Inc Laboratories
Cancer Research Children Program Network Alliance Council Committee Coalition
""".split())
_NARRATIVE_AFTER = frozenset("""
is was has had reports reported states stated denies denied presents presented returns returned endorses endorsed
complains complained notes noted says said feels felt will would does did can could continues describes admits
agrees understands tolerates tolerated underwent went came comes lives lived works worked takes took uses used
and to who appears seems remains arrived declined refused called wants needs
""".split())
_NARRATIVE_BEFORE = frozenset("""
with for to cause bothering saw see seen examined told asked advised counseled encouraged gave give tell and
patient named daughter son wife husband mother father sister brother friend partner caregiver from
""".split())
_NARRATIVE_VERBS = (r"(?:presented|presents|reports|reported|states|stated|denies|denied|complains|complained|returns|"
                    r"returned|arrived|came|comes|underwent|tolerated|endorses|notes|noted|agrees|declined|refuses|"
                    r"refused|was seen|is seen|is here|was here|was admitted|is admitted|was brought|was transferred|"
                    r"has been|had been|is being|was found|called|calls|lives)\b")
_CREDENTIALS = (r"(?:MD|M\.D\.|D\.O\.|RN|BSN|NP|FNP(?:-[A-Z]{1,2})?|DNP|PA-C|PhD|Ph\.D\.|MBBS|MBChB|FRCP[A-Z]?|FACP|"
                r"FACS|LPN|CNA|PharmD|MSW|LCSW|LICSW|DDS|DMD|DPM|CNM|CRNA|APRN|ARNP|MPH|MSN|DPT|OTR|CCC-SLP|"
                r"(?<=, )(?:DO|PA|RD|OD))(?![A-Za-z])(?!,?\s*\d{5})")  # not "Bethesda, MD 20892"
_RELATIONS = frozenset("""
wife husband son daughter mother father mom dad sister brother partner spouse friend neighbor neighbour caregiver
aunt uncle niece nephew grandson granddaughter grandmother grandfather grandma grandpa fiance fiancee boyfriend
girlfriend guardian roommate stepson stepdaughter stepmother stepfather cousin child children kid kids
""".split())

_TITLE = re.compile(r"\b(?:(Mr|Mrs|Ms|Mx|Dr|Prof)\.?|(?:MR|MRS|MS|MX|DR|PROF)\.|(mr|mrs|dr)\.?|(ms)\.|(?:Miss|Mister|"
                    r"Doctor|Madam|Mme|Mlle|Sra|Srta|Senor|Senora|Frau|Herr)(?![\w.]))[ \t]+")
# Cues after which any word that is not a stop word is a name, lower case included.
_STRONG_CUE = re.compile(
    r"(?i:\b(?:(?:my|his|her|their|the patient'?s|patient'?s|pt'?s)\s+name\s+is|(?:full\s+|first\s+|last\s+|"
    r"patient\s+|pt\s+)?name\s*(?:is|:)|patient\s*:|pt\s*:|signed(?:\s+by)?\s*:?|(?:electronically|e-)\s*signed\s+by"
    r"\s*:?|dictated\s+by\s*:?|transcribed\s+by\s*:?|authored\s+by\s*:?|(?:attending|resident|fellow|intern|provider|"
    r"physician|pcp|nurse|np|surgeon|interpreter|translator)(?:\s+physician)?\s*:|referring(?:\s+(?:physician|"
    r"provider|doctor))?\s*:|referred\s+by\s*:?|cc\s*:|(?:emergency\s+)?contact(?:\s+person)?\s*:|next\s+of\s+kin"
    r"\s*:|nok\s*:|guardian\s*:|caregiver\s*:|spouse\s*:|from\s*:|sincerely,|regards,|thanks,|thank\s+you,"
    r"|cheers,))(?!\w)[ \t]*(?:\n[ \t]*)?")
_NOT_A_PERSON_NAME = re.compile(r"(?i)\b(?:brand|generic|drug|trade|product|medication|medicine|chemical|common|"
                                r"scientific|other|gene|protein|file|user|test|disease|condition)\s*$")
# Cues after which a capitalised word is a name, and a lower-case word only if it is a known given name.
_WEAK_CUE = re.compile(
    r"(?i:\b(?:i\s+am|i'm|this\s+is|dear|hi|hello|named|called|seen\s+(?:by|with)|spoke\s+(?:with|to)|"
    r"talked\s+(?:with|to)|discussed\s+with|accompanied\s+by|caller|client|patient(?:\s+is)?|pt(?:\s+is)?|"
    r"message\s+from|visited\s+by|visit\s+from|goes\s+by|known\s+as|a\.?k\.?a\.?))(?!\w)[ \t]*,?[ \t]*")
_RELATION_CUE = re.compile(r"[A-Za-z]+(?:'s)?[ \t]*[(,:]?[ \t]*")  # tried only at relation words
_CREDENTIAL = re.compile(_CREDENTIALS)
_NAME_BEFORE_CREDENTIAL = re.compile(
    rf"((?:{_CAP}|{_UPW}|[A-Z]\.)(?:[ \t]+(?:[A-Z]\.?|{_CAP}|{_UPW}|(?:de|van|von|der|da|di|del|la|le)(?=[ \t]+[A-Z])))"
    r"{0,3}),?[ \t]+$")
_KEYS = {  # the first words (lower case) at which each cue pattern can match
    "title": "mr mrs ms mx dr prof miss mister doctor madam mme mlle sra srta senor senora frau herr",
    "strong": "my his her their the patient's patients patient pt's pts pt full first last name signed electronically e "
              "dictated transcribed authored attending resident fellow intern provider physician pcp nurse np surgeon "
              "interpreter translator referring referred cc emergency contact next nok guardian caregiver spouse from "
              "sincerely regards thanks thank cheers",
    "weak": "i i'm this dear hi hello named called seen spoke talked discussed accompanied caller client patient pt "
            "message visited visit goes known a aka",
    "relation": " ".join(_RELATIONS),
    "id": "mrn mr med medical record chart patient pt account acct member insurance policy group medicare medicaid ssn "
          "social npi dea driver's drivers driver license licence plate vin serial s sn device accession encounter "
          "visit specimen claim beneficiary subscriber case certificate passport id",
    "phone": "phone telephone tel ph cell cellphone mobile mob pager beeper fax contact call callback reached reach "
             "landline home work office number text",
    "short_date": "on since dated admitted discharged seen until dos date",
    "city": "lives living lived resides residing moved relocated home",
    "apartment": "apartment apt flat suite ste studio unit",
    "address": "address addr lives living resides residing located picked",
}
_KEYS = {k: frozenset(v.split()) for k, v in _KEYS.items()}
_ALL_KEYS = frozenset().union(*_KEYS.values())
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")


class _Words:
    """Where each word of a text starts, so that a cue pattern is tried only at its own first words."""

    def __init__(self, t: str):
        self.t = t
        self.at: dict[str, list[int]] = {}
        self.given: list[tuple[int, str]] = []  # words of the given-name list, any case
        first = name_lexicon()[0]
        for m in _WORD.finditer(t):
            word = m.group()
            low = word.lower()
            if low in _ALL_KEYS:
                self.at.setdefault(low, []).append(m.start())
            if word.title() in first:
                self.given.append((m.start(), word))

    def matches(self, rx: re.Pattern, key: str):
        for pos in sorted(p for w in self.at.keys() & _KEYS[key] for p in self.at[w]):
            m = rx.match(self.t, pos)
            if m:
                yield m


_LAST_FIRST_UP = re.compile(rf"(?<![\w,])({_UPW}),[ \t]*({_UPW})((?:[ \t]+(?:{_UPW}|[A-Z]\.?)){{0,2}})(?![\w])")
_LAST_FIRST = re.compile(rf"(?<![\w,])({_CAP}),[ \t]+({_CAP})((?:[ \t]+(?:[A-Z]\.|[A-Z](?![\w])|{_CAP}))?)(?![\w-])")
_PAIR = re.compile(rf"\b(?=({_CAP})((?:[ \t]+[A-Z]\.)?(?:[ \t]+(?:de la|van der|van den|von|de|del|da|dos|van|di|bin|al-?))?"
                   rf"[ \t]+{_CAP}(?:[ \t]+{_CAP})?)\b)")
_PAIR_UP = re.compile(rf"(?<![\w-])(?=({_UPW})((?:[ \t]+[A-Z]\.?)?[ \t]+{_UPW}(?:[ \t]+{_UPW})?)(?![\w-]))")
_PAIR_LOW = re.compile(r"(?<![\w-])(?=([a-z]{2,})((?:[ \t]+[a-z]\.?)?[ \t]+[a-z]+(?:['’-][a-z]+)*)(?![\w-]))")
_SINGLE = re.compile(rf"(?<![\w-])({_CAP})(?![\w-])(?!['’]?\s*[A-Z])")
_CAP_BEFORE = re.compile(r"[A-Z][a-z]*\.?[ \t]+$")
_NARRATIVE_PAIR = re.compile(rf"(?:^|(?<=[.!?;:\n]\s)|(?<=[,(]\s))({_CAP}(?:[ \t]+{_CAP}){{1,2}})"
                             rf"(?:['’]s)?,?[ \t]+(?:{_NARRATIVE_VERBS})", re.M)
_AGE_CUE = re.compile(rf"\b({_CAP}(?:[ \t]+{_CAP})?),?\s+(?:is|was)\s+an?\s+(?:[a-z]+\s+){{0,2}}"
                      r"\d{1,3}[- ](?:year|month|week|day)[- ]old\b")
_HALF_MASKED = re.compile(rf"(?:({_CAP}|{_UPW}),?[ \t]*(?=\[NAME\]))|(?:(?<=\[NAME\])[ \t]*,?[ \t]*({_CAP}|{_UPW})\b)")
_MEDICAL_SUFFIX = re.compile(r"(?i)(?:itis|osis|emia|ectomy|otomy|ostomy|plasty|oscopy|ology|opathy|algia|pril|"
                             r"sartan|olol|statin|mab|nib|cillin|mycin|cycline|azole|tidine|dipine|profen|gliptin|"
                             r"gliflozin|azepam|oxetine|triptan|parin|formin|semide|thiazide|glitazone)$")


def _fold(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


_EXTRA_FOLD = {"Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "Đ": "D", "đ": "d", "ı": "i", "ß": "s", "Æ": "A", "æ": "a",
               "Œ": "O", "œ": "o", "Þ": "T", "þ": "t", "’": "'", "‘": "'", "ʼ": "'"}


@lru_cache(maxsize=4096)
def _fold_char(c: str) -> str:
    if c.isascii():
        return c
    if c in _EXTRA_FOLD:
        return _EXTRA_FOLD[c]
    d = _fold(c)
    return d if len(d) == 1 and d.isascii() else c


def _fold_same_length(text: str) -> str:
    """Accents off, one character for one ("Nguyễn" -> "Nguyen"), so offsets stay those of the original."""
    return text if text.isascii() else "".join(_fold_char(c) for c in text)


@lru_cache(maxsize=1)
def _common_words() -> frozenset[str]:
    """Lower-case words that are English before they are names: Faker's lorem and company-slogan word lists, the
    stop words, and given names that are words (rusty, grace)."""
    from faker.providers.company.en_US import Provider as Company
    from faker.providers.lorem.en_US import Provider as Lorem
    words = {w.lower() for w in Lorem.word_list}
    for group in (*Company.catch_phrase_words, *Company.bsWords):
        words.update(w.lower() for phrase in group for w in re.split(r"[\s-]+", phrase))
    return frozenset(words) | _STOP | {w.lower() for w in _AMBIGUOUS_FIRST}


def _as_list(v) -> list:
    return list(v) if isinstance(v, (dict, list, tuple, set, frozenset)) else []


@lru_cache(maxsize=1)
def name_lexicon() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, surnames) from the person providers of every Faker locale, accents folded, Latin script only.

    Left out: words that are common English, clinical or eponyms, place names as given names, and names found only
    in the generic "en" provider, whose long US list holds words like Branch, Oral, China and Alpha.
    """
    import faker.providers.person as person
    first: set[str] = set()
    last: set[str] = set()
    for mod in pkgutil.iter_modules(person.__path__):
        if mod.name == "en":
            continue
        p = importlib.import_module(f"faker.providers.person.{mod.name}").Provider
        for attr in ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary"):
            first.update(_as_list(getattr(p, attr, ())))
        last.update(_as_list(getattr(p, "last_names", ())))
    common = _common_words()

    def keep(names: set[str], min_len: int) -> frozenset[str]:
        folded = {_fold(n) for n in names if isinstance(n, str)}
        return frozenset(n for n in folded if len(n) >= min_len and n.isascii() and n.replace("-", "").isalpha()
                         and n[:1].isupper() and n.lower() not in common and n not in _NOT_NAME
                         and n not in _EPONYMS)

    return keep(first, 3) - _places(), keep(last, 2)  # "Le", "Ng", "Wu" are surnames


@lru_cache(maxsize=1)
def _places() -> frozenset[str]:
    """One-word countries and US states (Faker's lists), never taken for a given name: "in China and"."""
    from faker.providers.address.en_US import Provider
    return frozenset(p for p in (*Provider.countries, *Provider.states) if p.isalpha())


def _is_stop(word: str) -> bool:
    w = word.rstrip(".").lower()
    return w in _STOP or w.title() in _NOT_NAME or word in _NOT_NAME or w.upper() in _NOT_NAME


def _nameish(word: str, eponym_ok: bool = False) -> bool:
    """Could be a name where context says a name stands: not a stop word, clinical term or (unless eponym_ok, as
    after a title: "Mr. Bennett") an eponym."""
    w = word.rstrip(".")
    return (bool(w) and not _is_stop(w) and (eponym_ok or w.title() not in _EPONYMS)
            and not _MEDICAL_SUFFIX.search(w))


TRACE: list | None = None  # set to [] to record (source line of the rule, span) for each name candidate
_GAP = re.compile(r"[ \t]{1,2}")
_COMMA_GAP = re.compile(r",[ \t]{0,2}")


def _take(t: str, pos: int, max_words: int = 3, lower: bool = False, lex: bool = False,
          comma: bool = False) -> tuple[int, int] | None:
    """The name starting at pos: up to max_words name-like words (initials and particles too).

    lower: lower-case words may be names (after a strong cue); lex: a lower-case first word must be a known given
    name; comma: "SMITH, JOHN" may continue past one comma.
    """
    first, _ = name_lexicon()
    words: list[tuple[int, int]] = []
    i = pos
    while len(words) < max_words:
        j = i
        if words:
            m = (_COMMA_GAP if comma and len(words) == 1 and t.startswith(",", i) else _GAP).match(t, i)
            if not m:
                break
            j = m.end()
        m = _TOKEN.match(t, j)
        if not m or m.group() == "[NAME]":
            break
        w, end = m.group(), m.end()
        if w.endswith(".") and len(w) > 2:
            w, end = w[:-1], end - 1
        if w.endswith(("'s", "’s")) and len(w) > 3:
            w, end = w[:-2], end - 2
            max_words = len(words) + 1  # a possessive ends the name
        core = w.rstrip(".")
        if core.lower() in _PARTICLES:  # "van der Berg", "Maria de la Cruz"
            nxt = _TOKEN.match(t, m.end() + 1)
            if nxt and (nxt.group()[:1].isupper() or lower or nxt.group().lower() in _PARTICLES):
                words.append((m.start(), end))
                max_words += 1
                i = end
                continue
            break
        if len(core) == 1:  # an initial: "J." or "A" in "SMITH, JOHN A"
            if not core.isupper() or not words:
                break
            words.append((m.start(), end))
            i = end
            continue
        if not _nameish(core, eponym_ok=True):
            break
        if not core[0].isupper():
            if not lower or core.endswith("ly"):  # "signed electronically by"
                break
            if lex and not words and core.title() not in first:
                break
            if words and re.search(r"(?:ing|ed|ly)$", core) and core.title() not in name_lexicon()[1]:
                break
        words.append((m.start(), end))
        i = end
    while words and t[words[-1][0]:words[-1][1]].rstrip(".").lower() in _PARTICLES:
        words.pop()
    return (words[0][0], words[-1][1]) if words else None


def _not_a_person(text: str, end: int) -> bool:
    """The next word makes the span an eponym ("Austin Flint murmur") or an organisation ("Henry Ford Hospital")."""
    m = re.match(r"(?:['’]s)?(?:[ \t]+[A-Z][a-z]+){0,2}[ \t]+([a-zA-Z]+)", text[end:end + 50])
    return bool(m and (m.group(1).lower() in _EPONYM_NOUNS or m.group(1) in _ORG_WORDS))


_GIVEN_BEFORE = re.compile(rf"(?<![\w-])({_CAP})[ \t]$")


def _extend_left(t: str, start: int) -> int:
    """Take in a given name just before a found name, ambiguous ones too: "Ana Beatriz Aragao"."""
    while True:
        m = _GIVEN_BEFORE.search(t, max(0, start - 30), start)
        if not m or m.group(1) not in name_lexicon()[0] and m.group(1) not in _AMBIGUOUS_FIRST or _is_stop(m.group(1)):
            return start
        start = m.start(1)


def _names(w: _Words) -> list[tuple[int, int]]:
    """Name spans in the folded text w.t."""
    t = w.t
    first, last = name_lexicon()
    common = _common_words()
    spans: list[tuple[int, int]] = []

    def add(span: tuple[int, int] | None, cued: bool = False):
        if not span:
            return
        if TRACE is not None:
            TRACE.append((sys._getframe(1).f_lineno, t[span[0]:span[1]]))
        s, e = span
        words = re.findall(r"[A-Za-z]+", t[s:e])
        if not words:
            return
        if not cued and (all(x.title() in _EPONYMS for x in words) or _not_a_person(t, e)):
            return
        spans.append((_extend_left(t, s), e))

    for m in w.matches(_TITLE, "title"):
        add(_take(t, m.end(), 3, lower=bool(m.group(2) or m.group(3))), cued=True)
    for m in w.matches(_STRONG_CUE, "strong"):
        if not _NOT_A_PERSON_NAME.search(t[max(0, m.start() - 20):m.start()]):
            add(_take(t, m.end(), 4, lower=True, comma=True), cued=True)
    for m in w.matches(_WEAK_CUE, "weak"):
        nxt = t[m.end():m.end() + 1]
        if nxt.isupper():
            span = _take(t, m.end(), 3)
            if span:
                ws = t[span[0]:span[1]].split()
                # a capitalised word after a weak cue needs a second sign: a known name, or two name-like words
                if any(x.title() in first or x.title() in last for x in ws) or len(ws) >= 2 and all(
                        x.lower() not in common for x in ws):
                    add(span)
        elif nxt.islower():
            add(_take(t, m.end(), 3, lower=True, lex=True))
    for m in w.matches(_RELATION_CUE, "relation"):
        add(_take(t, m.end(), 3))
    for c in _CREDENTIAL.finditer(t):  # "Jane Doe, MD"
        m = _NAME_BEFORE_CREDENTIAL.search(t, max(0, c.start() - 80), c.start())
        if m:
            ws = list(re.finditer(r"\S+", m.group(1)))
            k = 0
            while k < len(ws) and not _nameish(ws[k].group()):  # "Seen By Jane Doe, MD" -> "Jane Doe"
                k += 1
            if k < len(ws):
                add((m.start(1) + ws[k].start(), m.end(1)), cued=True)
    if "," in t:
        for m in _LAST_FIRST_UP.finditer(t):
            a, b = m.group(1).title(), m.group(2).title()
            if _nameish(a) and _nameish(b) and (a in last or b in first or a in first) and a not in _EPONYMS:
                end = m.end(2)
                for x in re.finditer(r"\S+", m.group(3)):
                    if not _nameish(x.group()) and len(x.group().rstrip(".")) > 1:
                        break
                    end = m.start(3) + x.end()
                add((m.start(1), end))
        for m in _LAST_FIRST.finditer(t):
            a, b, rest = m.group(1), m.group(2), m.group(3).strip()
            initial = len(rest.rstrip(".")) == 1
            if (_nameish(a) and _nameish(b) and a.lower() not in common and b.lower() not in common
                    and ((a in last and b in first and b not in _AMBIGUOUS_FIRST) or initial)):
                add((m.start(1), m.end(3) if rest and (initial or rest in first or rest in last) else m.end(2)))
    if "[NAME]" in t:
        for m in _HALF_MASKED.finditer(t):
            g = 1 if m.group(1) else 2
            if _nameish(m.group(g), eponym_ok=True):
                add((m.start(g), m.end(g)), cued=True)
    for m in _AGE_CUE.finditer(t) if "old" in t else ():
        if all(_nameish(x, eponym_ok=True) for x in m.group(1).split()):
            add((m.start(1), m.end(1)), cued=True)
    for m in _NARRATIVE_PAIR.finditer(t):
        ws = m.group(1).split()
        if all(_nameish(x) and x.lower() not in common for x in ws) and not any(x in _ORG_WORDS for x in ws):
            add((m.start(1), m.end(1)))
    for pos, tok in w.given:  # rules anchored on a word of the given-name list
        title = tok.title()
        if tok[0].isupper() and not tok.isupper():
            m = _PAIR.match(t, pos)
            if m:
                given, rest = m.group(1), m.group(2)
                surnames = re.findall(_CAP, rest)
                if (surnames and _nameish(surnames[0])
                        and (given not in _AMBIGUOUS_FIRST or surnames[0] in last)):
                    if len(surnames) > 1 and (surnames[-1] not in last or not _nameish(surnames[-1])):
                        rest = rest[:rest.rindex(surnames[-1])].rstrip()
                    add((pos, pos + len(given) + len(rest)))
            m = _SINGLE.match(t, pos)  # a lone given name in narrative: "Matthew was last seen", "cause Karen to"
            if m and tok not in _AMBIGUOUS_FIRST and not _CAP_BEFORE.search(t[max(0, pos - 30):pos]):
                after = re.match(r"(?:['’]s\b|\s+([a-z]+))", t[m.end():m.end() + 20])
                before = re.search(r"\b([a-z]+),?\s+$", t[max(0, pos - 20):pos])
                if (after and (after.group(1) is None or after.group(1) in _NARRATIVE_AFTER)) or \
                        (before and before.group(1) in _NARRATIVE_BEFORE):
                    add((m.start(1), m.end(1)))
        elif tok.isupper() and len(tok) > 1 and title not in _AMBIGUOUS_FIRST:
            m = _PAIR_UP.match(t, pos)
            if m:
                rest = m.group(2)
                ws = [x.title() for x in re.findall(_UPW, rest)]
                if ws and _nameish(ws[0]) and (ws[0] in last or ws[0].lower() not in common):
                    if len(ws) > 1 and ws[-1] not in last:
                        rest = rest[:rest.upper().rindex(ws[-1].upper())].rstrip()
                    add((pos, pos + len(tok) + len(rest)))
        elif tok.islower() and title not in _AMBIGUOUS_FIRST and tok not in common:
            m = _PAIR_LOW.match(t, pos)
            if m:
                rest = m.group(2)
                b = rest.split()[-1]
                if b.title() in last and b not in common and not _is_stop(b):
                    add((pos, pos + len(tok) + len(rest)))
    return spans


def _propagates(word: str) -> bool:
    w = word.lower()
    return len(w) > 2 and w not in _common_words() and w not in _PARTICLES and _nameish(word)


def name_words(findings: Iterable[PhiFinding]) -> set[str]:
    """The words of NAME findings that mark the same person elsewhere in a document, as found (case kept)."""
    return {w for f in findings if f.kind == "NAME"
            for w in re.findall(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]", _fold_same_length(f.text)) if _propagates(w)}


# ---------------------------------------------------------------- scan


def _resolve(found: list[PhiFinding]) -> list[PhiFinding]:
    """Non-overlapping findings in text order; on overlap the more specific kind (then the longer span) wins."""
    kept: list[PhiFinding] = []
    for f in sorted(found, key=lambda f: (_PRIORITY[f.kind], f.start - f.end)):
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def _finding(text: str, kind: str, start: int, end: int) -> PhiFinding | None:
    while end > start and text[end - 1] in " \t\n,;:":
        end -= 1
    return PhiFinding(kind, start, end, text[start:end]) if end > start else None


def _detect(text: str) -> list[PhiFinding]:
    """Every candidate finding, overlaps not yet resolved."""
    t = _fold_same_length(text)
    w = _Words(t)
    found: list[PhiFinding | None] = []

    def put(kind: str, start: int, end: int):
        found.append(_finding(text, kind, start, end))

    def grab(kind: str, matches, group: int = 0):
        for m in matches:
            put(kind, m.start(group), m.end(group))

    grab("EMAIL", _EMAIL.finditer(t))
    if _EMAIL_HINT.search(t):
        for m in _OBF_EMAIL.finditer(t):
            plain_at = "at" == m.group(2).strip().lower()
            local, domain = m.group(1), m.group(3)
            if not plain_at or re.search(r"[._\d]|\bdot\b", local, re.I) or re.search(r"\bdot\b", domain, re.I):
                put("EMAIL", m.start(), m.end())
    low = t.lower()
    for m in _URL.finditer(t) if ("://" in t or "www." in low or ".com/" in low or ".org/" in low) else ():
        url = m.group().rstrip(".,;:!?)")
        if _URL_ID.search(url):
            put("URL", m.start(), m.start() + len(url))
    grab("IP", _IPV4.finditer(t))
    grab("IP", (m for m in _IPV6.finditer(t) if m.group().count(":") >= 3))
    grab("PHONE", _PHONE.finditer(t))
    for matches, group in ((_PHONE_INTL.finditer(t), 0), (w.matches(_PHONE_CUE, "phone"), 1)):
        grab("PHONE", (m for m in matches if 7 <= sum(c.isdigit() for c in m.group(group)) <= 15), group)
    grab("ID", _SSN.finditer(t))
    grab("ID", _LONG_NUMBER.finditer(t))
    grab("ID", (m for m in w.matches(_ID_CUE, "id")
                if sum(c.isdigit() for c in m.group(1)) >= 3 and sum(c.isalnum() for c in m.group(1)) >= 4), 1)
    for rx in _DATES:
        for m in rx.finditer(t):
            if rx is _DATES[0]:
                a, b = (int(x) for x in re.findall(r"\d+", m.group())[:2])
                if a > 12 and b > 12:
                    continue
            put("DATE", m.start(), m.end())
    grab("DATE", _DATE_CUE.finditer(t), 1)
    grab("DATE", w.matches(_SHORT_DATE_CUE, "short_date"), 1)
    for rx in _AGES:
        grab("AGE", rx.finditer(t), 1)
    for rx in _address_patterns():
        grab("ADDRESS", rx.finditer(t))
    for m in w.matches(_ADDRESS_CUE, "address"):
        s, e = m.start(1), m.end(1)
        toks = list(re.finditer(r"[^\s,]+", t[s:e]))
        while toks and (toks[-1].group().lower() in _STOP or toks[-1].group().lower() in _PARTICLES):
            toks.pop()
        if toks:
            put("ADDRESS", s, s + toks[-1].end())
    for m in w.matches(_CITY_CUE, "city"):
        ws = m.group(1).split()
        if not any(x.lower() in _STOP for x in ws) and _nameish(ws[-1]) and ws[-1].lower() not in _common_words():
            put("ADDRESS", m.start(1), m.end(1))
    grab("ADDRESS", _ZIP_CUE.finditer(t), 1)
    for m in w.matches(_APARTMENT, "apartment"):
        kind, hashed, value = m.group(1).lower(), m.group(2), m.group(3)
        if kind != "unit" or hashed or re.search(r"\d[A-Za-z]$", value):
            put("ADDRESS", m.start(), m.end())
    spaced = t.replace("_", " ")  # "john_smith_rash.jpg"
    for s, e in _names(w if spaced == t else _Words(spaced)):
        put("NAME", s, e)
    return [f for f in found if f]


def _propagate(text: str, found: list[PhiFinding], names: Iterable[str], any_case: bool = False) -> list[PhiFinding]:
    """A name found once is a name everywhere in the text: "Patient: Chidi Okonkwo ... Chidi". Words seen only
    capitalised match capitalised or upper-case occurrences (so "Brown" does not take "brown urine"); words seen
    in lower case, and every word when any_case (file names: "chidi_okonkwo.txt"), match any case."""
    words = set(names) | name_words(found)
    if not words:
        return []
    t = _fold_same_length(text).replace("_", " ")
    lower_ok = {x.lower() for x in words if any_case or x.islower()}
    rx = re.compile(r"(?<![\w-])(" + "|".join(sorted({re.escape(x.lower()) for x in words}, key=len, reverse=True))
                    + r")(?![\w-])", re.I)
    spans = [(_extend_left(t, m.start()) if m.group(1)[0].isupper() else m.start(), m.end()) for m in rx.finditer(t)
             if not m.group(1).islower() or m.group(1) in lower_ok]
    return [PhiFinding("NAME", a, b, text[a:b]) for a, b in spans]


def scan(text: str, names: Iterable[str] = ()) -> list[PhiFinding]:
    """Non-overlapping findings in text order; on overlap the more specific kind (then the longer span) wins.

    names: name words already known for this document (see `name_words`), masked wherever they occur (in lower
    case too where they were seen in lower case).
    """
    first = _resolve(_detect(text))
    return _resolve(first + _propagate(text, first, names))


def mask(text: str, findings: list[PhiFinding] | None = None) -> str:
    """Text with every finding replaced by its placeholder, e.g. "[NAME]"."""
    findings = scan(text) if findings is None else findings
    out, pos = [], 0
    for f in findings:
        out += [text[pos:f.start], f"[{f.kind}]"]
        pos = f.end
    return "".join(out) + text[pos:]


_SEPARATORS = re.compile(r"(?<!\d)[._+/\\:-]|[._+/\\:-](?!\d)")  # "2021-03-04" stays a date


def _label_first_pass(label: str) -> list[PhiFinding]:
    spaced = _SEPARATORS.sub(" ", label)
    return _resolve(_detect(label) + [dataclasses.replace(f, text=label[f.start:f.end]) for f in _detect(spaced)])


def _label_final(label: str, first: list[PhiFinding], names: Iterable[str]) -> list[PhiFinding]:
    more = _propagate(_SEPARATORS.sub(" ", label), first, names, any_case=True)
    return _resolve(first + [dataclasses.replace(f, text=label[f.start:f.end]) for f in more])


def scan_label(label: str, names: Iterable[str] = ()) -> list[PhiFinding]:
    """Findings in a file name, path or id ("cases/john_smith-discharge 2021-03-04.txt"): the text as it is, and
    again with separators read as spaces, so that "john-smith" and "John.Smith" are seen as names."""
    return _label_final(label, _label_first_pass(label), names)


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


_LABELS = ("doc_id", "path", "title", "source", "url")  # document metadata that search and the API show


def guard(doc: Document, policy: Policy = "reject", max_examples: int = 5, key: bytes | None = None) -> PhiReport:
    """Scan the text and the labels (id, path, title, source, URL, section titles, string metadata).

    Clean: the doc as is. "reject": no doc. "mask": a copy with placeholders; a masked doc_id gets a tag (HMAC of
    the original id under `key`, plain SHA-256 without one) so that two files named after two patients stay two
    documents. The report keeps the original id and path: it goes to the operator who ingested the files.
    """
    if policy not in ("reject", "mask"):
        raise ValueError(f"unknown PHI policy {policy!r}; choose 'reject' or 'mask'")
    labels = {k: getattr(doc, k) for k in _LABELS if getattr(doc, k)}
    labels.update({f"extra.{k}": v for k, v in doc.extra.items() if isinstance(v, str)})
    texts = {("title", i): s.title for i, s in enumerate(doc.sections)}
    texts.update({("text", i): s.text for i, s in enumerate(doc.sections)})
    texts.update({("extra", i, k): v for i, s in enumerate(doc.sections) for k, v in s.extra.items()
                  if isinstance(v, str)})
    first = {k: _resolve(_detect(v)) for k, v in texts.items()}
    first_labels = {k: _label_first_pass(v) for k, v in labels.items()}
    # a name seen anywhere in the document (file name included) is masked everywhere in it
    names = name_words([f for fs in (*first.values(), *first_labels.values()) for f in fs])
    found = {k: _resolve(first[k] + _propagate(v, first[k], names)) for k, v in texts.items()}
    label_findings = {k: _label_final(v, first_labels[k], names) for k, v in labels.items()}
    flat = [f for fs in (*label_findings.values(), *found.values()) for f in fs]
    if not flat:
        return PhiReport(doc.doc_id, doc.path, "clean", doc=doc)
    counts = dict(Counter(f.kind for f in flat))
    examples = [f"{f.kind}: {f.text[:1]}***" for f in flat[:max_examples]]
    if policy == "reject":
        return PhiReport(doc.doc_id, doc.path, "rejected", counts, examples)
    sections = [Section(mask(s.title, found[("title", i)]), mask(s.text, found[("text", i)]),
                        {k: mask(v, found[("extra", i, k)]) if ("extra", i, k) in found else v
                         for k, v in s.extra.items()})
                for i, s in enumerate(doc.sections)]
    masked = {k: mask(v, label_findings[k]) for k, v in labels.items()}
    changes = {k: masked[k] for k in _LABELS if k in masked}
    if changes.get("doc_id", doc.doc_id) != doc.doc_id:
        digest = (hmac.new(key, doc.doc_id.encode(), hashlib.sha256) if key
                  else hashlib.sha256(doc.doc_id.encode())).hexdigest()[:12]
        changes["doc_id"] = f"{changes['doc_id']}#{digest}"
    extra = {**doc.extra, **{k[6:]: v for k, v in masked.items() if k.startswith("extra.")},
             "phi_masked": sum(counts.values())}
    masked_doc = dataclasses.replace(doc, sections=sections, extra=extra, **changes)
    return PhiReport(doc.doc_id, doc.path, "masked", counts, examples, doc=masked_doc)
