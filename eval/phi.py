"""`carecite eval phi`: how much PHI the guard (ingest/phi.py) catches, and what it masks wrongly.

* `synthesize(seed)` writes a labelled set of clinical-note snippets with planted identifiers in varied forms: Faker
  values (names from 15 locales, phones, e-mails, addresses, IPs) in ~80 templates, plus hand-written tricky forms
  (lower-case and "LAST, FIRST" names, names in no name list, obfuscated e-mails, half-masked names, ages over 89,
  URLs with identifiers) and negatives (eponyms, drug names, young ages, vitals). `write_sets` shuffles it with the
  seed and splits it into tests/fixtures/phi_recall_dev.jsonl (two thirds, for tuning) and
  phi_recall_heldout.jsonl (one third, evaluated once).
* `evaluate(path)`: an identifier counts as caught when the findings (of any kind) cover all its characters; the
  per-kind figures also give the same-kind recall and precision.
* `false_positives(mirror, n, seed)`: every finding on n MedQuAD answers (real guideline text, no patient PHI), so
  anything masked there is masked wrongly.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import string
from collections import Counter
from pathlib import Path

from ingest.phi import KINDS, scan

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
DEV_SET, HELDOUT_SET = FIXTURES / "phi_recall_dev.jsonl", FIXTURES / "phi_recall_heldout.jsonl"
SEED = 20240917
TARGET_RECALL = 0.97
NAME_LOCALES = ("en_US", "en_GB", "es_MX", "fr_FR", "de_DE", "it_IT", "en_IN", "en_NG", "pt_BR", "pl_PL", "tr_TR",
                "vi_VN", "zu_ZA", "nl_NL", "en_IE")

# ---------------------------------------------------------------- synthetic set

# Names in none of Faker's lists: the guard must find them from context.
_UNLISTED_FIRST = ("Chidi Obinna Nnamdi Ayodele Oluwaseun Tendai Farai Nyasha Kagiso Yerlan Aigerim Nurlan Bolat "
                   "Dilnoza Otabek Tenzin Pema Dorji Ngaio Wiremu Aroha Keoni Kalani Makoa Siosaia Tevita Ahanu "
                   "Nayeli Xochitl Quilla Chayton Emeka Ifeoma Zhanar").split()
_UNLISTED_LAST = ("Okonkwo Nwachukwu Adeyemi Mutasa Chikwanha Abenov Seitkali Tsering Wangchuk Tuhiwai Ngata "
                  "Kahananui Kealoha Fifita Tupou Vainikolo Yazzie Begay Tsosie Etsitty Quispe Mamani Huanca Condori "
                  "Ticona Ezeudu Onyekachi Baimukhamedov").split()
_SYL = ("ka ko ma na ri to su le mi ba de nu ho ye zi wa ta se lo fe gu ne vi").split()

COMPLAINTS = ("chest pain", "shortness of breath", "a productive cough", "left knee pain", "dizziness",
              "abdominal pain", "headache", "fatigue", "a rash on both arms", "low back pain", "palpitations")
DRUGS = ("metformin 500 mg", "lisinopril 10 mg", "Lasix 40 mg", "Eliquis 5 mg", "Crestor 20 mg", "Xarelto 20 mg",
         "Januvia 100 mg", "Zoloft 50 mg", "Lyrica 75 mg", "Keppra 500 mg", "Humira", "Allegra 180 mg",
         "Coumadin 5 mg", "Synthroid 75 mcg", "Norvasc 5 mg", "Yasmin", "albuterol")
EPONYMS = ("Parkinson disease", "Hodgkin lymphoma", "Alzheimer dementia", "Crohn's disease", "Down syndrome",
           "Graves disease", "Cushing syndrome", "Bell's palsy", "Guillain-Barre syndrome", "Wilson disease",
           "Addison disease", "Hashimoto thyroiditis", "Kaposi sarcoma", "Tourette syndrome", "Huntington disease",
           "Raynaud phenomenon", "Sjogren syndrome", "Barrett esophagus", "Marfan syndrome", "Turner syndrome",
           "Kawasaki disease", "Paget disease of bone", "Burkitt lymphoma", "Meniere disease", "Lou Gehrig's disease",
           "Hirschsprung disease", "Ewing sarcoma", "Tay-Sachs disease", "Lyme disease", "Alport syndrome")
RELATIONS = ("daughter", "son", "wife", "husband", "sister", "brother", "mother", "father", "partner", "neighbor")

# {form} or {form:tag}: a slot; forms of one person share a tag (":a"). Forms are methods of _Slots below.
TEMPLATES = [
    # names: context cues, titles, case variants
    "{full:a} is a {age} year old {sex} who presents with {complaint}.",
    "Patient: {full:a}\nDOB: {dob}\nMRN: {mrn}",
    "Patient Name: {lf_upper:a}   Sex: {sx}   Age: {age}",
    "{title} {last:a} reports {complaint} since {weekday}.",
    "{title} {last:a} was seen today. {last:a} denies fever.",
    "Spoke with {lower:a} by phone about her {drug} dose.",
    "my name is {lower:a} and i need a refill of my {drug}",
    "pt {lower:a} c/o {complaint} x3 days",
    "{first:a} reports that the {complaint} improved after starting {drug}.",
    "Electronically signed by {full:b}, MD on {date}.",
    "The patient lives with her {relation}, {full:b}, who helps with medications.",
    "Emergency contact: {full:b} ({relation}) {phone}",
    "Seen by Dr. {last:b} in clinic; follow up in 2 weeks.",
    "{unlisted:a} presented to the ED with {complaint}.",
    "Patient: {unlisted:a}. {u_first:a} was started on {drug}.",
    "Referred by {full:b}, NP, for evaluation of {eponym}.",
    "Discussed the plan with the patient's {relation} {first:b} at bedside.",
    "Dear {first:a},\nYour lab results from {date} are normal.\nSincerely,\n{full:b}",
    "{lf_upper:a} {age}{sx} {eponym} - bed 12",
    "{lf:a} is on the list for {date}.",
    "Thank you for referring {title} {full_mid:a} for {complaint}.",
    "MR. {last_upper:a} IS A {age} YEAR OLD MALE WITH {complaint_upper}.",
    "{upper:a} - DISCHARGE SUMMARY",
    "Hi, this is {full:a}'s {relation} calling about the {drug} prescription.",
    "{half_lf:a} was admitted to ward 5 overnight.",
    "Patient [NAME] {last:a} tolerated the procedure well.",
    "name: {unlisted_lower:a}, seen for {complaint}",
    "Mrs {unlisted:a} ({age} y/o) has {eponym}.",
    "Attending: {unlisted:b}, MD. Resident: {full:c}.",
    "Discussed with {title} {u_last:a}'s {relation}, who agrees with the plan.",
    "{particle:a} is a {age}-year-old with {eponym}.",
    "Pt seen with {relation} {unlisted:b} who provides history.",
    "Message from {first_lower:a}: the {drug} makes me dizzy, {lower:a}",
    "cc: {full:b}, PA-C; {full:c}, RN",
    "{full:a} came in today for {complaint}; {first:a} is worried about {eponym}.",
    "Pt is {unlisted:a}, {age}M, presenting with {complaint}.",
    "Signed: {unlisted:b}",
    "Transcribed by {first:b} {last:b} for Dr. {unlisted:c}.",
    "Caller {lower:a} asked whether to hold {drug} before surgery.",
    "Patient {snake:a} uploaded a photo file {snake:a}_rash.jpg.",
    # dates
    "dob {dob}",
    "DOB: {dob}; admitted on {date}.",
    "D.O.B. {dob} | seen {date}",
    "Born {dob}. Colonoscopy performed on {date}.",
    "Discharged on {date} with {drug}.",
    "Date of service: {date}",
    "Last seen in clinic {date}; labs drawn {date2}.",
    "Date of birth {dob}, {sex}, {complaint}.",
    "Surgery on {short_date} went well.",
    # phones
    "Call the patient at {phone} to review results.",
    "Cell: {phone}   Home: {phone2}",
    "Her {relation} can be reached at {phone}.",
    "Pager {pager}; callback number {phone}.",
    "Phone {intl_phone} (patient is abroad).",
    "Contact number is {phone}.",
    # e-mail
    "Patient e-mail: {email}",
    "Send the summary to {email} as requested.",
    "He wrote from {obf_email} asking about {drug}.",
    "email: {obf_email}",
    "Contact {relation} at {obf_email} or {phone}.",
    # ids
    "MRN: {mrn}",
    "Medical record number {mrn}; account # {acct}.",
    "SSN {ssn} on file.",
    "Insurance ID: {ins_id}   Group: {group}",
    "Medicare number {mbi}",
    "NPI {npi}, DEA # {dea}",
    "Driver's license {license} verified at check-in.",
    "Implant serial number {serial} recorded.",
    "License plate {plate} in the visitor lot.",
    "Accession # {accession} sent to pathology.",
    "mrn {mrn}, encounter #{encounter}",
    # addresses
    "Lives at {street}, {city}, {state} {zip}.",
    "Address: {street_full}",
    "Home address {street}; lives alone in {apartment}.",
    "She lives in {apartment} and uses a walker.",
    "Mailing address: {po_box}, {city}, {state} {zip}",
    "Moved to {city} last year to be near her {relation}.",
    "Lives with {relation} at {street} in {city}.",
    "Ambulance picked him up at {street_full}.",
    # ages over 89
    "{old_age}-year-old {sex} with {eponym}.",
    "Age: {old_age}",
    "A {old_age} yo {sx} with {complaint}.",
    "{title} {last:a} is {old_age} y/o and lives independently.",
    "The patient, aged {old_age}, declined surgery.",
    "{old_age_words}-year-old woman with {complaint}.",
    "{old_age}yo M, {complaint}",
    # network and web
    "Portal login from IP {ipv4} at 02:14.",
    "Device reported from {ipv4_private}; firmware updated.",
    "Telehealth session host {ipv6}.",
    "Chart link: {url_path}",
    "See {url_query} for the imaging report.",
    "Photo posted at {url_social} by the patient.",
    "Patient blog: {url_tilde}",
]

# Hand-written tricky forms, each once: (text, [identifier strings]) with kind given per identifier.
HAND = [
    ("john smith came in with chest pain", [("NAME", "john smith")]),
    ("SMITH, JOHN  DOB 03/14/1962", [("NAME", "SMITH, JOHN"), ("DATE", "03/14/1962")]),
    ("Chidi Okonkwo is here for a follow-up.", [("NAME", "Chidi Okonkwo")]),
    ("dob 14-Mar-1962", [("DATE", "14-Mar-1962")]),
    ("reach me at john dot smith at example dot com", [("EMAIL", "john dot smith at example dot com")]),
    ("Smith, [NAME] seen in clinic.", [("NAME", "Smith")]),
    ("Lives in apartment 4B with her cat.", [("ADDRESS", "apartment 4B")]),
    ("94-year-old man with a hip fracture.", [("AGE", "94")]),
    ("Logged in from 192.168.14.201.", [("IP", "192.168.14.201")]),
    ("Results at https://portal.example.org/results?patient=12345", [
        ("URL", "https://portal.example.org/results?patient=12345")]),
    ("Record: https://ehr.example.com/patients/12345/notes", [("URL", "https://ehr.example.com/patients/12345/notes")]),
    ("pt is mary o'brien, 45F", [("NAME", "mary o'brien")]),
    ("Mrs. van der Berg was seen for Crohn's disease.", [("NAME", "van der Berg")]),
    ("Seen with her husband Nkosinathi today.", [("NAME", "Nkosinathi")]),
    ("DR. ADEBAYO OGUNLESI, ATTENDING", [("NAME", "ADEBAYO OGUNLESI")]),
    ("Per Dr Okafor the MRI was normal.", [("NAME", "Okafor")]),
    ("Nephew Tupac Yupanqui will drive her home.", [("NAME", "Tupac Yupanqui")]),
    ("jane.doe(at)example.org wrote again", [("EMAIL", "jane.doe(at)example.org")]),
    ("email jdoe [at] example [dot] net", [("EMAIL", "jdoe [at] example [dot] net")]),
    ("born 3rd of July 1950", [("DATE", "3rd of July 1950")]),
    ("DOB 07.03.1950", [("DATE", "07.03.1950")]),
    ("DOB: 1950/07/03", [("DATE", "1950/07/03")]),
    ("seen on 23/11/2021 by the team", [("DATE", "23/11/2021")]),
    ("Admit date 11-23-2021", [("DATE", "11-23-2021")]),
    ("DOB 3-JUL-50", [("DATE", "3-JUL-50")]),
    ("A ninety-four year old woman.", [("AGE", "ninety-four")]),
    ("Age 101, lives in a nursing home.", [("AGE", "101")]),
    ("She is 97 years old.", [("AGE", "97")]),
    ("Patient aged 92 years.", [("AGE", "92")]),
    ("IPv6 2001:db8:85a3::8a2e:370:7334 in the audit log", [("IP", "2001:db8:85a3::8a2e:370:7334")]),
    ("Find me on www.facebook.com/mary.obrien.77", [("URL", "www.facebook.com/mary.obrien.77")]),
    ("uploaded to http://files.example.net/user/jsmith/scan.png", [("URL", "http://files.example.net/user/jsmith/scan.png")]),
    ("Lab portal: https://lab.example.com/view?mrn=00443322&visit=2", [
        ("URL", "https://lab.example.com/view?mrn=00443322&visit=2")]),
    ("Unit #12, 400 Oak Street, Springfield, IL 62704", [("ADDRESS", "Unit #12, 400 Oak Street, Springfield, IL 62704")]),
    ("She lives at 12 Rue de la Paix, Paris.", [("ADDRESS", "12 Rue de la Paix, Paris")]),
    ("Address: 221B Baker Street, London NW1 6XE", [("ADDRESS", "221B Baker Street, London NW1 6XE")]),
    ("SSN: 123 45 6789", [("ID", "123 45 6789")]),
    ("MRN#A-0099812", [("ID", "A-0099812")]),
    ("Call (415)555-0199 ext 23", [("PHONE", "(415)555-0199 ext 23")]),
    ("call her cell 415 555 0199", [("PHONE", "415 555 0199")]),
    ("Tel +44 (0)20 7946 0958", [("PHONE", "+44 (0)20 7946 0958")]),
    ("Hello, I am Ngozi and my son Emeka has a fever.", [("NAME", "Ngozi"), ("NAME", "Emeka")]),
    ("Thanks,\nTendai Moyo", [("NAME", "Tendai Moyo")]),
    ("--\nDr. Aroha Ngata\nDepartment of Medicine", [("NAME", "Aroha Ngata")]),
    ("MS. MUTASA WAS SEEN IN CLINIC", [("NAME", "MUTASA")]),
    ("mr okonkwo is feeling better", [("NAME", "okonkwo")]),
    ("Okonkwo, Chidi A  MRN 7781234", [("NAME", "Okonkwo, Chidi A"), ("ID", "7781234")]),
    ("Wife (Aigerim) at bedside.", [("NAME", "Aigerim")]),
    ("The patient's name is Xochitl Quispe.", [("NAME", "Xochitl Quispe")]),
    ("JOHNSON, MARY ELLEN is a 66 yo F", [("NAME", "JOHNSON, MARY ELLEN")]),
    ("Lives in Springfield with her son.", [("ADDRESS", "Springfield")]),
    ("zip code 60614", [("ADDRESS", "60614")]),
    ("Ms. Nguyễn Thị Lan speaks Vietnamese.", [("NAME", "Nguyễn Thị Lan")]),
    ("José Álvarez-García reports nausea.", [("NAME", "José Álvarez-García")]),
    ("DeShawn McAllister is a 30-year-old.", [("NAME", "DeShawn McAllister")]),
    ("Pt: KEALOHA, MAKOA", [("NAME", "KEALOHA, MAKOA")]),
]

NEGATIVE_TEMPLATES = [
    "History of {eponym}; on {drug} daily.",
    "{Eponym} was diagnosed in {year}; continues {drug}.",
    "She is a {age}-year-old with {eponym} and hypertension.",
    "BP 132/80, HR 84, SpO2 96%, temp 37.1 C; grade 2/6 murmur, strength 5/5.",
    "Family history of {eponym} in a first-degree relative.",
    "Start {drug}; recheck A1c in 3 months. Follow up with Cardiology.",
    "Rule out {eponym}. Positive Murphy sign, negative Babinski, Romberg negative.",
    "The patient was counseled about {eponym} and given written instructions.",
    "Plan: continue {drug} and {drug2}; Patient Education provided on {eponym}.",
    "Apgar scores 8 and 9; Glasgow Coma Scale 15; Wells score 2.",
    "Unit 3 of the course covers {eponym}; see Chapter 12 and Table 4.",
    "Dose: insulin 10 units at bedtime, increase by 2 units every 3 days.",
    "Screening per USPSTF 2021; last colonoscopy 2019.",
]


class _Slots:
    """Values for template slots: each returns (surface text, [(kind, identifier text)])."""

    def __init__(self, seed: int):
        from faker import Faker
        self.rng = random.Random(seed)
        self.fake = Faker(list(NAME_LOCALES))
        self.fake.seed_instance(seed)
        self.us = self.fake["en_US"]
        self.people: dict[str, dict] = {}

    # people
    def _person(self, tag: str, unlisted: bool = False) -> dict:
        if tag not in self.people:
            r = self.rng
            if unlisted:
                if r.random() < 0.6:
                    first, last = r.choice(_UNLISTED_FIRST), r.choice(_UNLISTED_LAST)
                else:
                    first = "".join(r.choice(_SYL) for _ in range(r.randint(2, 3))).capitalize()
                    last = "".join(r.choice(_SYL) for _ in range(r.randint(3, 4))).capitalize()
            else:
                loc = r.choice(NAME_LOCALES)
                first, last = self.fake[loc].first_name(), self.fake[loc].last_name()
            self.people[tag] = {"first": first, "last": last, "mid": r.choice(string.ascii_uppercase)}
        return self.people[tag]

    def _name(self, tag, fmt, unlisted=False, gold=None):
        p = self._person(tag, unlisted)
        text = fmt.format(**p)
        return text, [("NAME", gold.format(**p) if gold else text)]

    def full(self, t): return self._name(t, "{first} {last}")
    def full_mid(self, t): return self._name(t, "{first} {mid}. {last}")
    def lower(self, t): s, _ = self._name(t, "{first} {last}"); return s.lower(), [("NAME", s.lower())]
    def upper(self, t): s, _ = self._name(t, "{first} {last}"); return s.upper(), [("NAME", s.upper())]
    def lf_upper(self, t): s, _ = self._name(t, "{last}, {first}"); return s.upper(), [("NAME", s.upper())]
    def lf(self, t): return self._name(t, "{last}, {first}")
    def last(self, t): return self._name(t, "{last}")
    def last_upper(self, t): s, _ = self._name(t, "{last}"); return s.upper(), [("NAME", s.upper())]
    def first(self, t): return self._name(t, "{first}")
    def first_lower(self, t): s, _ = self._name(t, "{first}"); return s.lower(), [("NAME", s.lower())]
    def half_lf(self, t): return self._name(t, "{last}, [NAME]", gold="{last}")
    def snake(self, t): s, _ = self._name(t, "{first}_{last}"); s = s.lower().replace(" ", "_"); return s, [("NAME", s)]
    def unlisted(self, t): return self._name(t, "{first} {last}", unlisted=True)
    def unlisted_lower(self, t): s, _ = self._name(t, "{first} {last}", unlisted=True); return s.lower(), [("NAME", s.lower())]
    def u_first(self, t): return self._name(t, "{first}", unlisted=True)
    def u_last(self, t): return self._name(t, "{last}", unlisted=True)

    def particle(self, t):
        p = self._person(t)
        s = f"{p['first']} {self.rng.choice(['de la', 'van der', 'von', 'da', 'dos', 'del', 'bin', 'al-'])} {p['last']}"
        s = s.replace("al- ", "al-")
        return s, [("NAME", s)]

    # dates
    def _when(self):
        return self.fake.date_between(start_date="-95y", end_date="-1y")

    def _fmt_date(self, d):
        mon = d.strftime("%b")
        forms = [f"{d.month:02d}/{d.day:02d}/{d.year}", f"{d.month}/{d.day}/{d.year % 100:02d}", d.isoformat(),
                 f"{d.day}-{mon}-{d.year}", f"{d.day:02d}-{mon.upper()}-{d.year}", f"{d.day:02d}{mon}{d.year}",
                 f"{mon} {d.day}, {d.year}", f"{d.strftime('%B')} {d.day}, {d.year}", f"{d.day} {d.strftime('%B')} {d.year}",
                 f"{d.day:02d}.{d.month:02d}.{d.year}", f"{mon}-{d.day:02d}-{d.year}", f"{d.year}/{d.month:02d}/{d.day:02d}",
                 f"{d.month}-{d.day}-{d.year}", f"{d.strftime('%B')} {_ordinal(d.day)}, {d.year}"]
        if d.day > 12:
            forms.append(f"{d.day}/{d.month:02d}/{d.year}")
        return self.rng.choice(forms)

    def dob(self, t): s = self._fmt_date(self._when()); return s, [("DATE", s)]
    def date(self, t): return self.dob(t)
    def date2(self, t): return self.dob(t)

    def short_date(self, t):
        d = self._when()
        s = self.rng.choice([f"{d.month}/{d.day}", f"{d.strftime('%b')} {d.day}", f"{d.strftime('%B')} {_ordinal(d.day)}"])
        return s, [("DATE", s)]

    # phones
    def phone(self, t):
        r = self.rng
        a, b, c = r.randint(201, 989), r.randint(200, 999), r.randint(0, 9999)
        s = r.choice([f"{a}-{b}-{c:04d}", f"({a}) {b}-{c:04d}", f"{a}.{b}.{c:04d}", f"+1 {a} {b} {c:04d}",
                      f"{a}-{b}-{c:04d} ext. {r.randint(1, 999)}", f"1-{a}-{b}-{c:04d}", self.us.phone_number(),
                      self.fake["en_GB"].phone_number(), f"{a} {b} {c:04d}", f"({a}){b}-{c:04d}"])
        return s, [("PHONE", s)]

    def phone2(self, t): return self.phone(t)

    def pager(self, t):
        s = f"{self.rng.randint(200, 999)}-{self.rng.randint(0, 9999):04d}"
        return s, [("PHONE", s)]

    def intl_phone(self, t):
        s = self.fake[self.rng.choice(["en_GB", "en_IN", "de_DE", "fr_FR", "es_MX", "en_NG"])].phone_number()
        return s, [("PHONE", s)]

    # e-mail
    def email(self, t): s = self.fake.email(); return s, [("EMAIL", s)]

    def obf_email(self, t):
        p = self._person(t + "mail")
        f, l = _ascii(p["first"]).lower(), _ascii(p["last"]).lower()
        dom = self.rng.choice(["example", "mailbox", "gmail", "outlook", "clinicmail"])
        tld = self.rng.choice(["com", "org", "net", "co.uk"])
        s = self.rng.choice([f"{f} dot {l} at {dom} dot {tld.replace('.', ' dot ')}", f"{f}.{l} [at] {dom} [dot] {tld}",
                             f"{f}{l[:1]}(at){dom}.{tld}", f"{f}_{l} AT {dom} DOT {tld.upper()}",
                             f"{f}.{l} at {dom}.{tld}", f"{f}{self.rng.randint(1, 99)} {{at}} {dom} {{dot}} {tld}"])
        return s, [("EMAIL", s)]

    # ids
    def _digits(self, n): return "".join(self.rng.choice(string.digits) for _ in range(n))
    def _letters(self, n): return "".join(self.rng.choice(string.ascii_uppercase) for _ in range(n))
    def mrn(self, t): s = self.rng.choice([self._digits(7), self._digits(8), "00" + self._digits(6), f"{self._digits(4)}-{self._digits(3)}"]); return s, [("ID", s)]
    def acct(self, t): s = self._digits(self.rng.randint(6, 10)); return s, [("ID", s)]
    def ssn(self, t): s = self.us.ssn(); return s, [("ID", s)]
    def ins_id(self, t): s = self._letters(3) + self._digits(9); return s, [("ID", s)]
    def group(self, t): s = self._digits(5); return s, [("ID", s)]
    def mbi(self, t): s = f"{self._digits(1)}{self._letters(2)}{self._digits(1)}-{self._letters(2)}{self._digits(1)}-{self._letters(2)}{self._digits(2)}"; return s, [("ID", s)]
    def npi(self, t): s = self._digits(10); return s, [("ID", s)]
    def dea(self, t): s = self._letters(2) + self._digits(7); return s, [("ID", s)]
    def license(self, t): s = self._letters(1) + self._digits(7); return s, [("ID", s)]
    def serial(self, t): s = f"{self._letters(2)}-{self._digits(6)}"; return s, [("ID", s)]
    def plate(self, t): s = self.us.license_plate(); return s, [("ID", s)]
    def accession(self, t): s = f"S{self._digits(2)}-{self._digits(5)}"; return s, [("ID", s)]
    def encounter(self, t): s = self._digits(9); return s, [("ID", s)]

    # addresses
    def street(self, t): s = self.us.street_address(); return s, [("ADDRESS", s)]
    def street_full(self, t):
        s = self.us.address().replace("\n", ", ") if self.rng.random() < 0.7 else self.fake["en_GB"].address().replace("\n", ", ")
        return s, [("ADDRESS", s)]
    def city(self, t): s = self.us.city(); return s, [("ADDRESS", s)]
    def state(self, t): return self.us.state_abbr(), [("ADDRESS", "")]
    def zip(self, t): s = self.us.zipcode(); return s, [("ADDRESS", s)]
    def apartment(self, t):
        s = self.rng.choice([f"apartment {self.rng.randint(1, 40)}{self.rng.choice('ABCDEF')}", f"Apt. {self.rng.randint(1, 999)}",
                             f"unit #{self.rng.randint(1, 300)}", f"Flat {self.rng.randint(1, 60)}", f"Suite {self.rng.randint(100, 999)}"])
        return s, [("ADDRESS", s)]
    def po_box(self, t): s = f"P.O. Box {self.rng.randint(10, 9999)}"; return s, [("ADDRESS", s)]

    # ages over 89
    def old_age(self, t): s = str(self.rng.randint(90, 104)); return s, [("AGE", s)]
    def old_age_words(self, t):
        s = self.rng.choice(["Ninety", "Ninety-one", "Ninety-two", "Ninety-three", "Ninety-six", "Ninety-eight",
                             "One hundred"])
        return s, [("AGE", s)]

    # network and web
    def ipv4(self, t): s = self.fake.ipv4_public(); return s, [("IP", s)]
    def ipv4_private(self, t): s = self.fake.ipv4_private(); return s, [("IP", s)]
    def ipv6(self, t): s = self.fake.ipv6(); return s, [("IP", s)]
    def url_path(self, t):
        s = f"https://{self.fake.domain_name()}/{self.rng.choice(['patients', 'patient', 'chart', 'records', 'members'])}/{self._digits(self.rng.randint(4, 8))}"
        return s, [("URL", s)]
    def url_query(self, t):
        key = self.rng.choice(["patient", "patientId", "mrn", "pid", "id", "member", "user"])
        s = f"https://{self.fake.domain_name()}/{self.rng.choice(['view', 'report', 'imaging/show', 'portal'])}?{key}={self._digits(self.rng.randint(4, 9))}"
        return s, [("URL", s)]
    def url_social(self, t):
        u = self.fake.user_name()
        s = self.rng.choice([f"https://www.facebook.com/{u}", f"instagram.com/{u}", f"https://twitter.com/{u}",
                             f"https://www.linkedin.com/in/{u}"])
        return s, [("URL", s)]
    def url_tilde(self, t): s = f"http://{self.fake.domain_name()}/~{self.fake.user_name()}"; return s, [("URL", s)]

    # fillers (no PHI)
    def age(self, t): return str(self.rng.randint(18, 88)), []
    def sex(self, t): return self.rng.choice(["male", "female", "man", "woman"]), []
    def sx(self, t): return self.rng.choice(["F", "M"]), []
    def title(self, t): return self.rng.choice(["Mr.", "Mrs.", "Ms.", "Mr", "Mrs", "Dr.", "Miss"]), []
    def weekday(self, t): return self.rng.choice(["Monday", "Friday", "last week", "yesterday"]), []
    def complaint(self, t): return self.rng.choice(COMPLAINTS), []
    def complaint_upper(self, t): return self.rng.choice(COMPLAINTS).upper(), []
    def drug(self, t): return self.rng.choice(DRUGS), []
    def drug2(self, t): return self.rng.choice(DRUGS), []
    def eponym(self, t): return self.rng.choice(EPONYMS), []
    def Eponym(self, t): e = self.rng.choice(EPONYMS); return e[:1].upper() + e[1:], []
    def relation(self, t): return self.rng.choice(RELATIONS), []
    def year(self, t): return str(self.rng.randint(1990, 2023)), []


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 11 <= n % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _ascii(s: str) -> str:
    import unicodedata
    return "".join(c for c in unicodedata.normalize("NFKD", s) if c.isascii() and c.isalpha())


_SLOT = re.compile(r"\{(\w+)(?::(\w+))?\}")


def _fill(template: str, slots: _Slots) -> dict:
    slots.people = {}
    out, gold, pos = [], [], 0
    for m in _SLOT.finditer(template):
        text, ids = getattr(slots, m.group(1))(m.group(2) or m.group(1))
        out += [template[pos:m.start()], text]
        gold += [{"kind": k, "text": v} for k, v in ids if v]
        pos = m.end()
    return {"text": "".join(out) + template[pos:], "phi": gold}


def synthesize(seed: int = SEED, rounds: int = 4, negatives: int = 100) -> list[dict]:
    """Every template `rounds` times with fresh values, the hand-written forms once, and `negatives` clean snippets."""
    slots = _Slots(seed)
    records = [{**_fill(t, slots), "form": f"t{i:02d}"} for _ in range(rounds) for i, t in enumerate(TEMPLATES)]
    records += [{"text": t, "phi": [{"kind": k, "text": v} for k, v in ids], "form": f"hand{i:02d}"}
                for i, (t, ids) in enumerate(HAND)]
    records += [{**_fill(slots.rng.choice(NEGATIVE_TEMPLATES), slots), "form": "negative"} for _ in range(negatives)]
    for r in records:
        if not all(g["text"] in r["text"] for g in r["phi"]):
            raise AssertionError(f"gold span not in text: {r}")
    return records


def write_sets(seed: int = SEED, folder: Path = FIXTURES) -> tuple[Path, Path]:
    """Drop repeated texts, shuffle with the seed, and write two thirds to the dev file and one third to the
    held-out file."""
    seen: set[str] = set()
    records = [r for r in synthesize(seed) if not (r["text"] in seen or seen.add(r["text"]))]  # no text in both
    random.Random(seed).shuffle(records)
    cut = len(records) * 2 // 3
    paths = folder / DEV_SET.name, folder / HELDOUT_SET.name
    for path, part in zip(paths, (records[:cut], records[cut:])):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
    return paths


# ---------------------------------------------------------------- measurement


def _spans(text: str, gold: list[dict]) -> list[tuple[str, int, int, str]]:
    """Each gold string at its first occurrence not already taken by an earlier one ("Chidi Okonkwo ... Chidi")."""
    out: list[tuple[str, int, int, str]] = []
    for g in gold:
        start = text.find(g["text"])
        while any(start < e and s < start + len(g["text"]) for _, s, e, _ in out):
            start = text.find(g["text"], start + 1)
        if start < 0:
            raise ValueError(f"gold span {g['text']!r} not found (again) in {text!r}")
        out.append((g["kind"], start, start + len(g["text"]), g["text"]))
    return out


def evaluate(path: Path | str, show_misses: bool = False) -> dict:
    """Recall (identifiers fully covered by findings of any kind), same-kind recall/precision per kind, negatives.

    Lines are {"text", "phi": [{"kind", "text"}], "form"?}; "phi": [] marks a negative, where any finding is wrong.
    """
    gold_n, caught_n, same_n, pred_n, correct_n = Counter(), Counter(), Counter(), Counter(), Counter()
    form_n, form_caught = Counter(), Counter()
    negatives, neg_flagged, wrong, misses = 0, 0, [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        text, found = rec["text"], scan(rec["text"])
        gold = _spans(text, rec["phi"])
        if not gold:
            negatives += 1
            neg_flagged += bool(found)
        covered = set().union(*(range(f.start, f.end) for f in found)) if found else set()
        for kind, s, e, g in gold:
            same = set().union(*(range(f.start, f.end) for f in found if f.kind == kind)) if found else set()
            full = all(i in covered or not text[i].isalnum() for i in range(s, e))
            gold_n[kind] += 1
            caught_n[kind] += full
            same_n[kind] += all(i in same or not text[i].isalnum() for i in range(s, e))
            form_n[rec.get("form", "")] += 1
            form_caught[rec.get("form", "")] += full
            if not full:
                misses.append(f"{kind}: {g!r} in {text!r} -> {[f.text for f in found]}")
        for f in found:
            pred_n[f.kind] += 1
            ok = any(f.start < e and s < f.end for _, s, e, _ in gold)
            correct_n[f.kind] += ok
            if not ok:
                wrong.append(f"{f.kind}: {f.text!r} in {text[:80]!r}")
    total = sum(gold_n.values())
    res = {"set": str(path), "identifiers": total, "caught": sum(caught_n.values()),
           "recall": _ratio(sum(caught_n.values()), total),
           "per_kind": {k: {"gold": gold_n[k], "caught": caught_n[k], "recall": _ratio(caught_n[k], gold_n[k]),
                            "same_kind_recall": _ratio(same_n[k], gold_n[k]), "predicted": pred_n[k],
                            "precision": _ratio(correct_n[k], pred_n[k])} for k in KINDS if gold_n[k] or pred_n[k]},
           "precision": _ratio(sum(correct_n.values()), sum(pred_n.values())),
           "negatives": negatives, "negatives_with_findings": neg_flagged, "wrong_findings": wrong}
    if show_misses:
        res["misses"] = misses
        res["per_form"] = {f: _ratio(form_caught[f], n) for f, n in sorted(form_n.items()) if form_caught[f] < n}
    return res


def guideline_passages(mirror: Path | str, n: int = 200, seed: int = 0) -> list[tuple[str, str]]:
    """n MedQuAD answers (doc_id, text), a deterministic sample over all answers of the corpus."""
    from ingest.readers import read_corpus
    answers = [(d.doc_id, s.text) for d in read_corpus("medquad", mirror) for s in d.sections if s.text.strip()]
    return random.Random(seed).sample(answers, min(n, len(answers)))


def false_positives(mirror: Path | str, n: int = 200, seed: int = 0) -> dict:
    """What the guard would mask in n real guideline passages (no patient PHI there: every finding is wrong)."""
    passages = guideline_passages(mirror, n, seed)
    found = []
    for doc_id, text in passages:
        for f in scan(text):
            found.append({"doc_id": doc_id, "kind": f.kind, "text": f.text,
                          "context": text[max(0, f.start - 40):f.end + 40].replace("\n", " ")})
    return {"passages": len(passages), "seed": seed, "passages_with_findings": len({x["doc_id"] for x in found}),
            "findings": len(found), "by_kind": dict(Counter(x["kind"] for x in found)), "masked": found}


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 1.0


# ---------------------------------------------------------------- command


def add_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument("--set", choices=["dev", "heldout"], default="dev",
                   help="which part of the synthetic set (the held-out third is for the final figure only)")
    q.add_argument("--fp-passages", type=int, default=200, help="MedQuAD answers scanned for false positives (0: skip)")
    q.add_argument("--fp-seed", type=int, default=0)
    q.add_argument("--misses", action="store_true", help="list every identifier missed")
    q.add_argument("--write-sets", action="store_true", help="regenerate the dev and held-out files from the seed")
    q.add_argument("--json", action="store_true")


def run(args, mirror: Path) -> int:
    if args.write_sets:
        for p in write_sets():
            print(f"wrote {p}")
    res = {"recall": evaluate(DEV_SET if args.set == "dev" else HELDOUT_SET, show_misses=args.misses),
           "target": TARGET_RECALL}
    if args.fp_passages:
        res["false_positives"] = false_positives(mirror, args.fp_passages, args.fp_seed)
    if args.json:
        print(json.dumps(res, indent=1, ensure_ascii=False))
        return 0 if res["recall"]["recall"] >= TARGET_RECALL else 1
    r = res["recall"]
    print(f"{args.set} set: {r['caught']}/{r['identifiers']} identifiers caught, recall {r['recall']:.3f} "
          f"(target {TARGET_RECALL}); precision {r['precision']:.3f}; "
          f"{r['negatives_with_findings']}/{r['negatives']} clean snippets flagged")
    for k, v in r["per_kind"].items():
        print(f"  {k:8s} {v['caught']:4d}/{v['gold']:<4d} recall {v['recall']:.3f} (same kind {v['same_kind_recall']:.3f})"
              f"  precision {v['precision']:.3f}")
    for line in r.get("misses", []) + r["wrong_findings"]:
        print("  ", line)
    fp = res.get("false_positives")
    if fp:
        print(f"guideline passages (MedQuAD, n={fp['passages']}, seed {fp['seed']}): {fp['findings']} span(s) masked in "
              f"{fp['passages_with_findings']} passage(s) {fp['by_kind']}")
        for x in fp["masked"]:
            print(f"  {x['kind']}: {x['text']!r} | {x['context']!r} ({x['doc_id']})")
    return 0 if r["recall"] >= TARGET_RECALL else 1
