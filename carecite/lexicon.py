"""Query understanding from the index's own text: its vocabulary (for spelling), brand <-> generic drug names and
acronyms, mined from the indexed chunks at ingest time and kept in <data_dir>/lexicon.json.

    lex = Lexicon.build(texts)            # chunk texts (titles included)
    lex.save(path); Lexicon.load(path)    # None when absent; a corrupt file raises LexiconError naming it
    r = lex.read("Is Lipitor safe with NSAIDS?")
    r.text          # "Is Lipitor (atorvastatin) safe with NSAIDs?"  (what retrieval searches)
    r.corrections   # [Correction("Lipitor", "atorvastatin", "brand"), Correction("NSAIDS", "NSAIDs", "plural")]
    r.expansions    # {"Lipitor": ["atorvastatin"], "NSAIDS": ["NSAIDs", "NSAID", "nonsteroidal anti-inflammatory
                    #   drugs", ...]}
    lex.variants("NSAIDS"); lex.known("Wiedemann")

Spelling: a SymSpell-style dictionary (deletes of the first PREFIX letters, edit distance <= 2) over the index's
words, ranked by distance then frequency; the distance charges 2 for a substitution no typist or speller makes.
Only unknown, non-English words of 5+ letters are corrected, and only where the candidate is clearly more
plausible (see Lexicon.correct): words the index lacks, names above all, are left as written.

Drug names: "generic (Brand[, Brand])" and "Brand (generic)" where the generic is drug-like (seen right before a
dose such as "20 mg", or ending in a drug stem such as -statin, -pril) and the brand is written capitalised;
"brand name(s) X", "sold as X", "also called/known as X" after a drug word of the same sentence; and DailyMed
references "Brand—generic tablet".

Acronyms: Schwartz & Hearst (2003) "long form (SF)" pairs, folded case-insensitively and over a plural "s"
(NSAIDS -> NSAIDs); COMMON_ABBREVIATIONS fills in a few very common clinical ones the text may not define.

Floor 1: imports nothing of ours (lexicon_path takes the settings object it is given).
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

LEXICON_VERSION = 1
FILE_NAME = "lexicon.json"
KINDS = ("spelling", "brand", "generic", "acronym", "plural")

MIN_WORD_LEN = 5  # shorter words are never corrected
MIN_CANDIDATE_COUNT = 3  # a correction must be a word the index uses at least this often
NAME_COUNT = 10  # ... and a name (a word the index writes capitalised) at least this often
LONG_WORD = 9  # words this long may be corrected at edit distance 2
PREFIX = 7  # SymSpell prefix length: deletes are generated for the first PREFIX letters only

_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*")  # hyphens and apostrophes split words
_CAMEL = re.compile(r"[a-z][A-Z]")
_URL = re.compile(r"(?:https?://|www\.)\S+")
_SENT_START = re.compile(r"(?:^|[.!?:;•\n]\s*|[\"“(]\s*)$")

# Drug-name stems (WHO INN stems and common endings); a word ending in one of these, or written right before a
# dose, counts as drug-like.
DRUG_STEMS = tuple("""
statin pril prilat sartan olol alol ilol dipine azole conazole mycin micin cillin cycline oxacin vir navir previr
buvir mab nib tinib ciclib zumab ximab umab tide glutide gliptin gliflozin glitazone pam zepam zolam azepam
barbital caine profen oxib coxib triptan setron tidine prazole lukast terol sone olone asone thiazide semide
parin farin xaban gatran grel platin rubicin taxel mustine trexate tropin relin pressin azosin osin dronate fibrate
formin glinide lutamide triptyline pramine oxetine azine apine idone peridol codone morphone orphan fenac
stigmine curium curonium vastatin floxacin dazole fungin vudine citabine tecan poetin grastim kinra cept
""".split())
SALTS = frozenset("""
hydrochloride hcl sodium potassium calcium magnesium succinate tartrate acetate sulfate sulphate phosphate
citrate maleate mesylate besylate fumarate bromide chloride hyclate monohydrate dihydrate dinitrate mononitrate
enanthate cypionate valerate propionate dipropionate undecanoate decanoate furoate xinafoate bitartrate lactate
nitrate carbonate hydroxide gluconate oxide iodide hippurate subsalicylate peroxide glycol
alfa beta er xr sr la xl cr dr ir ec
""".split())
# what a generic phrase may end in after its head word ("botulinum toxin", "insulin glargine", "calcium carbonate")
_HEADED = frozenset({"vaccine", "toxin", "carbonate", "hydroxide", "subsalicylate", "peroxide", "glycol",
                     "citrate", "gluconate", "iodide", "oxide"})
# endings of ordinary English words, which drug names do not have
_ENGLISH_ENDINGS = ("tion", "sion", "ment", "ness", "ance", "ence", "ity", "ing", "ed", "ly", "ful", "able",
                    "ible", "ical", "ous", "ive", "ary", "ory", "ist", "ism", "ure", "age", "ar", "al", "ic", "care",
                    "valent")
_DOSE = re.compile(r"\d[\d.,]*\s*(?:[-–]\s*[\d.,]+\s*)?(?:mg|mcg|µg|g|mL|ml|units?|mEq|IU)\b")
_BEFORE_DOSE = re.compile(r"([A-Za-z][a-z]{3,})(?:\s+[A-Za-z]+)?,?\s*\(?$")
# "word (inside)" and "Brand—generic" (DailyMed titles)
_PAREN = re.compile(r"\([ \t]*([^()\n]{1,80}?)[ \t]*\)")
_DASH = re.compile(r"\b([A-Z][a-z][A-Za-z]+)(?:\s[A-Z]{1,4})?(?:\s?[—–]\s?([A-Za-z][a-z]{4,})|-([a-z]{5,}))\b"
                   r"(?=[^.]{0,40}?\b(?:tablets?|capsules?|injection|solution|suspension|cream|gel|patch|spray"
                   r"|powder))")
_NAMED = re.compile(r"(?:brand[- ]names?|trade[- ]names?|sold (?:as|under(?: the (?:brand )?names?)?)|also called|"
                    r"also known as|marketed as)[\s:,]+((?:(?:[A-Z][A-Za-z0-9-]+)(?:\s+[A-Z]{1,4})?"
                    r"(?:\s*(?:,|and|or|;)\s*)?){1,6})")
_SENTENCE = re.compile(r"[^.!?\n]+")

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers him his how i if in into is it its itself just me more most my no nor not now of off on once only or other
our out over own same she should so some such than that the their them then there these they this those through
to too under until up very was we were what when where which while who whom why will with would you your yours
others this thus less always perhaps various news series species means lens
""".split())

_DRUG_TALK = re.compile(r"\b(?:drugs?|medications?|medicines?|prescri\w*|mg|mcg|doses?|dosage|tablets?|capsules?|"
                        r"antidepressants?|antibiotics?|inhibitors?|blockers?|analgesics?|pain relievers?|"
                        r"anticoagulants?|antihypertensives?|statins?|treated with|brand|generic|"
                        r"over-the-counter|OTC)\b",
                        re.I)

# Words of drug talk that are no drug's name.
PHARMA_WORDS = frozenset("""
drug drugs medication medications medicine medicines dose doses dosage dosing tablet tablets capsule capsules pill
pills agent agents therapy therapies treatment product products brand brands name names generic generics daily
called such like including example examples inhibitor inhibitors blocker blockers antagonist antagonists agonist
agonists antibiotic antibiotics vitamin vitamins supplement supplements injection injections solution cream
ointment patch spray drops oral intravenous level levels intake maximum minimum total increase decrease
combination class group type form forms version transdermal lotion patches devices device concentrate
laxative laxatives ranges range release extended delayed immediate assistance insurance program vaccine vaccines
toxin
""".split())

# Very common clinical abbreviations (used only where the indexed text defines none of them itself).
COMMON_ABBREVIATIONS = {
    "MI": ["myocardial infarction", "heart attack"], "HbA1c": ["hemoglobin A1c", "glycated hemoglobin", "A1C"],
    "A1C": ["hemoglobin A1c", "HbA1c"], "BP": ["blood pressure"], "HR": ["heart rate"],
    "CHF": ["congestive heart failure"], "COPD": ["chronic obstructive pulmonary disease"],
    "DVT": ["deep vein thrombosis"], "PE": ["pulmonary embolism"], "UTI": ["urinary tract infection"],
    "GERD": ["gastroesophageal reflux disease"], "IBS": ["irritable bowel syndrome"],
    "ADHD": ["attention deficit hyperactivity disorder"], "CKD": ["chronic kidney disease"],
    "ESRD": ["end-stage renal disease"], "TIA": ["transient ischemic attack"], "CVA": ["stroke"],
    "NSAID": ["nonsteroidal anti-inflammatory drug"], "ECG": ["electrocardiogram", "EKG"],
    "EKG": ["electrocardiogram", "ECG"], "CAD": ["coronary artery disease"], "MS": ["multiple sclerosis"],
    "ALS": ["amyotrophic lateral sclerosis"], "RA": ["rheumatoid arthritis"], "SLE": ["systemic lupus erythematosus"],
    "HIV": ["human immunodeficiency virus"], "TB": ["tuberculosis"], "PTSD": ["posttraumatic stress disorder"],
    "OCD": ["obsessive-compulsive disorder"], "CABG": ["coronary artery bypass graft"], "BMI": ["body mass index"],
    "LDL": ["low-density lipoprotein"], "HDL": ["high-density lipoprotein"], "T2DM": ["type 2 diabetes"],
    "T1DM": ["type 1 diabetes"], "AFib": ["atrial fibrillation"], "SIDS": ["sudden infant death syndrome"],
}


class LexiconError(ValueError):
    """A lexicon file that cannot be read (the message names the file and how to rebuild it)."""


@dataclass(frozen=True)
class Correction:
    original: str  # as the user wrote it
    replacement: str  # how it was read
    kind: str  # one of KINDS

    def describe(self) -> str:
        """What to tell the user: 'read “Lipitor” as “atorvastatin” (brand name)'."""
        why = {"spelling": "spelling", "brand": "brand name", "generic": "generic name", "acronym": "abbreviation",
               "plural": "plural"}[self.kind]
        return f"read “{self.original}” as “{self.replacement}” ({why})"


@dataclass
class Reading:
    text: str  # the question with corrections applied: what retrieval searches
    corrections: list[Correction] = field(default_factory=list)
    expansions: dict[str, list[str]] = field(default_factory=dict)  # term as written -> forms also accepted

    def to_json(self) -> dict:
        return {"text": self.text, "corrections": [asdict(c) for c in self.corrections],
                "expansions": self.expansions}


# ---------------------------------------------------------------- small word helpers

_KEYS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEAR: set[tuple[str, str]] = set()
for _r, _row in enumerate(_KEYS):
    for _i, _k in enumerate(_row):
        for _dr, _di in ((0, -1), (0, 1), (-1, 0), (-1, 1), (1, -1), (1, 0)):
            if 0 <= _r + _dr < 3 and 0 <= _i + _di < len(_KEYS[_r + _dr]):
                _NEAR.add((_k, _KEYS[_r + _dr][_i + _di]))
# letters a writer swaps for their sound
for _group in ("aeiouy", "ckqs", "sz", "gj", "mn", "dt", "bp", "fv", "xz"):
    _NEAR.update((x, y) for x in _group for y in _group)


def _sub_cost(x: str, y: str) -> int:
    """A substitution a typist or a speller makes (a neighbouring key, a vowel, a like sound) costs 1, others 2."""
    return 0 if x == y else 1 if (x, y) in _NEAR else 2


def _osa(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment edit distance where an insertion, a deletion, an adjacent transposition and a
    plausible substitution cost 1 and an implausible substitution (lectin/leptin: c for p) 2; two letters swapped
    across one (linisopril/lisinopril) count 1. Returns limit + 1 when the distance exceeds limit."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        if len(diff) == 2 and diff[1] - diff[0] == 2 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]:
            return 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        lo = i
        for j in range(1, len(b) + 1):
            v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + _sub_cost(a[i - 1], b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                v = min(v, prev2[j - 2] + 1)
            cur[j] = v
            lo = min(lo, v)
        if lo > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1] if prev[-1] <= limit else limit + 1


def _deletes(word: str, depth: int) -> set[str]:
    out, frontier = {word}, {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1:] for w in frontier for i in range(len(w))} - out
        out |= frontier
    return out


def _number_forms(w: str) -> list[str]:
    """Singular and plural guesses of a lower-case word (checked against the vocabulary by the caller)."""
    if len(w) < 4 or w in STOPWORDS:
        return []
    if w.endswith("ies"):
        return [w[:-3] + "y"]
    if w.endswith(("ses", "xes", "zes", "ches", "shes")):
        return [w[:-2], w[:-1]]
    if w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return [w[:-1]]
    if w.endswith("y") and len(w) > 4 and w[-2] not in "aeiou":
        return [w[:-1] + "ies"]
    if w.endswith(("s", "x", "z", "ch", "sh")):
        return [w + "es"]
    return [w + "s"]


def _fold_acronym(sf: str) -> str:
    """Key of an abbreviation as defined: lower case, a lower-case plural 's' dropped (NSAIDs -> nsaid; an
    upper-case S may belong to the abbreviation: DRESS, BPS)."""
    k = sf.lower()
    if len(sf) > 2 and sf.endswith("s") and sum(c.isupper() for c in sf[:-1]) >= 2:
        k = k[:-1]
    return k


def _is_abbreviation(s: str) -> bool:
    return (2 <= len(s) <= 10 and s[0].isalnum() and " " not in s
            and sum(c.isupper() for c in s) >= 2 and any(c.isalpha() for c in s))


def _best_long_form(sf: str, words: list[str]) -> str | None:
    """Schwartz & Hearst (2003): the shortest tail of `words` whose letters spell `sf` right to left, the first
    letter of sf starting a word."""
    lf = " ".join(words)
    s, li = len(sf) - 1, len(lf) - 1
    while s >= 0:
        c = sf[s].lower()
        if not c.isalnum():
            s -= 1
            continue
        while li >= 0 and (lf[li].lower() != c or (s == 0 and li > 0 and lf[li - 1].isalnum())):
            li -= 1
        if li < 0:
            return None
        li -= 1
        s -= 1
    start = lf.rfind(" ", 0, li + 1) + 1
    out = lf[start:]
    n_words = len(out.split())
    if len(out) <= len(sf) or n_words > min(len(sf) + 5, len(sf) * 2) or sf.lower() in out.lower().split():
        return None
    return out


# Inflections and derivations (and medical suffixes) a spelling correction must not swap: the word is then a
# different word the index lacks, not a misspelling.
_ENDING_PAIRS = (("oses", "osis"), ("ous", "osis"), ("ic", "y"), ("ic", "ia"), ("ical", "y"), ("ions", "ing"),
                 ("ion", "ing"), ("ed", "ing"), ("ies", "y"), ("al", "y"), ("otic", "osis"), ("ae", "a"),
                 ("i", "us"), ("ism", "ic"), ("ist", "y"), ("ia", "y"), ("emia", "emic"), ("atic", "a"),
                 ("ase", "ate"), ("ic", "es"), ("ic", "e"), ("ic", "s"), ("is", "ity"), ("is", "e"),
                 ("iva", "ive"), ("ica", "ic"), ("ina", "ine"), ("um", "a"), ("us", "ous"), ("a", "um"),
                 ("ata", "ate"), ("o", "e"))
# Prefixes of opposite meaning (hypouricemia is not hyperuricemia).
_PREFIX_PAIRS = (("hypo", "hyper"), ("pre", "post"), ("intra", "inter"), ("intra", "extra"), ("inter", "extra"),
                 ("micro", "macro"), ("brady", "tachy"), ("endo", "exo"), ("ante", "anti"), ("sub", "supra"),
                 ("hypo", "hyp"), ("mono", "poly"), ("uni", "bi"))
_MEDICAL_SUFFIXES = ("itis", "osis", "oses", "emia", "oma", "omas", "pathy", "plasia", "trophy", "algia", "ectomy",
                     "otomy", "ostomy", "scopy", "gram", "graphy", "uria", "penia", "cytosis", "philia")


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _same_stem(a: str, b: str) -> bool:
    """a and b differ only by an inflectional or derivational ending or by opposite prefixes, or b lacks a's
    medical suffix."""
    for x, y in _PREFIX_PAIRS:
        if (a.startswith(x) and b.startswith(y)) or (a.startswith(y) and b.startswith(x)):
            if a.startswith(x) != b.startswith(x) or a.startswith(y) != b.startswith(y):
                return True
    for x, y in _ENDING_PAIRS:
        for p, q in ((x, y), (y, x)):
            if a.endswith(p) and b.endswith(q) and a[:-len(p)] == b[:-len(q)]:
                return True
    return any(a.endswith(sfx) and not b.endswith(sfx) for sfx in _MEDICAL_SUFFIXES)


_ENGLISH: frozenset[str] | None = None


def english_words() -> frozenset[str]:
    """Lower-case English words (pyspellchecker's frequency list): real words are never spelling-corrected."""
    global _ENGLISH
    if _ENGLISH is None:
        import gzip
        from importlib.resources import files
        try:
            with gzip.open(files("spellchecker").joinpath("resources", "en.json.gz")) as f:
                _ENGLISH = frozenset(json.load(f))
        except (ModuleNotFoundError, FileNotFoundError) as e:
            raise LexiconError("the English word list of the pyspellchecker package is missing "
                               f"({e}); install it: pip install pyspellchecker==0.9.1") from e
    return _ENGLISH


def _keep_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


# ---------------------------------------------------------------- the lexicon

class Lexicon:
    def __init__(self, words: dict[str, int], forms: dict[str, str], drugs: list[tuple[str, str]],
                 acronyms: dict[str, dict], *, n_texts: int = 0, lower_counts: dict[str, int] | None = None):
        self.words = words  # lower-case word -> count in the index
        self.forms = forms  # lower-case word -> its usual written form, where that is not lower case
        self.lower_counts = lower_counts or {}  # how often a capitalised word is written in lower case
        self.drugs = sorted(set(drugs))  # (brand as written, generic lower case)
        self.acronyms = acronyms  # folded key -> {"forms": [...], "long": [...]}
        self.n_texts = n_texts
        self.brand_to_generic: dict[str, list[str]] = defaultdict(list)
        self.generic_to_brand: dict[str, list[str]] = defaultdict(list)
        for brand, generic in self.drugs:
            if generic not in self.brand_to_generic[brand.lower()]:
                self.brand_to_generic[brand.lower()].append(generic)
            if brand not in self.generic_to_brand[generic]:
                self.generic_to_brand[generic].append(brand)
        self.long_to_acronym: dict[str, list[str]] = defaultdict(list)
        for entry in acronyms.values():
            for lf in entry["long"]:
                for key in {lf.lower(), *_phrase_number_forms(lf.lower())}:
                    if entry["forms"][0] not in self.long_to_acronym[key]:
                        self.long_to_acronym[key].append(entry["forms"][0])
        self._max_phrase = max([len(k.split()) for k in (*self.brand_to_generic, *self.generic_to_brand,
                                                         *self.long_to_acronym)] or [1])
        self._deletes: dict[str, list[str]] | None = None

    # ------------------------------------------------------------ building

    @classmethod
    def build(cls, texts: Iterable[str]) -> "Lexicon":
        surface: Counter[str] = Counter()
        initial: Counter[str] = Counter()  # sentence-initial occurrences (their capital says nothing)
        dose_words: Counter[str] = Counter()
        parens: list[tuple[str, str, str]] = []  # (clause before, inside, text around a brand-like inside)
        dashes: list[tuple[str, str, str]] = []
        named: list[tuple[str, str]] = []  # (sentence text before the cue, names after it)
        n = 0
        for text in texts:
            n += 1
            if "://" in text or "www." in text:
                text = _URL.sub(" ", text)
            surface.update(_TOKEN.findall(text))
            for m in re.finditer(r"(?:^|[.!?:;•\n]\s*)([A-Z][A-Za-z0-9]*)", text):
                initial[m.group(1)] += 1
            for m in _DOSE.finditer(text):
                b = _BEFORE_DOSE.search(text, max(0, m.start() - 40), m.start())
                if b:
                    dose_words[b.group(1).lower()] += 1
            if "(" in text:
                for m in _PAREN.finditer(text):
                    before = text[max(0, m.start() - 160):m.start()]
                    before = re.split(r"[.;:!?()\[\]\n]", before)[-1].strip()  # same clause only
                    if before:
                        inside = m.group(1)
                        near = (text[max(0, m.start() - 200):m.end() + 100]
                                if inside[:1].isupper() and any(c.islower() for c in inside) else "")
                        parens.append((before, inside, near))
            if "—" in text or "–" in text or "-" in text:
                dashes += _DASH.findall(text)
            low = text.lower()
            if any(k in low for k in ("brand", "trade name", "sold ", "also called", "also known", "marketed")):
                for sm in _SENTENCE.finditer(text):
                    for m in _NAMED.finditer(sm.group(0)):
                        named.append((sm.group(0)[:m.start()], m.group(1)))
        words: Counter[str] = Counter()
        by_lower: dict[str, Counter[str]] = defaultdict(Counter)
        for tok, c in surface.items():
            lw = tok.lower()
            words[lw] += c
            if tok != lw:
                by_lower[lw][tok] += c
        forms: dict[str, str] = {}
        lower_counts: dict[str, int] = {}
        for lw, variants in by_lower.items():
            lower_n = surface.get(lw, 0)
            inside = {t: c - initial.get(t, 0) for t, c in variants.items()}
            best, best_n = max(inside.items(), key=lambda kv: kv[1])
            if (best_n > 0 and best_n >= 2 * lower_n) or lower_n == 0:
                forms[lw] = best
                lower_counts[lw] = lower_n
        lex = cls(dict(words), forms, [], {}, n_texts=n, lower_counts=lower_counts)
        acronyms = _mine_acronyms(parens)
        drugs = [(b, g) for b, g in lex._mine_drugs(dose_words, parens, dashes, named)
                 if b.lower() not in acronyms]  # CrCl is an abbreviation, not a brand
        return cls(dict(words), forms, drugs, acronyms, n_texts=n, lower_counts=lower_counts)

    def _is_drug(self, w: str, dose_words: Counter[str], about_drugs: bool = False) -> bool:
        """Drug-like: ends in a drug stem, is written right before a dose often enough for its frequency, or (in a
        passage about drugs) is a lower-case word of 6+ letters, seen twice or more but not too often, that does
        not look like an English word or a plural."""
        lw = w.lower()
        if (len(lw) < 4 or not lw.isalpha() or lw in STOPWORDS or lw in PHARMA_WORDS
                or (lw.endswith("s") and not lw.endswith(("ss", "us", "is")))):
            return False
        if lw.endswith(DRUG_STEMS):
            return True
        if self._capitalised(lw):
            return False  # a name
        return (dose_words.get(lw, 0) >= max(2, 0.02 * self.words.get(lw, 0))
                or (about_drugs and len(lw) >= 6 and 2 <= self.words.get(lw, 0) <= 500
                    and not lw.endswith(_ENGLISH_ENDINGS)))

    def _capitalised(self, lw: str) -> bool:
        """Written capitalised (inside sentences) at least three times in four."""
        return lw in self.forms and self.lower_counts.get(lw, 0) * 3 <= self.words.get(lw, 0)

    def _is_brand(self, b: str) -> bool:
        lb = b.lower()
        return (len(b) >= 4 and b[0].isupper() and sum(c.islower() for c in b[1:]) >= 2 and lb not in STOPWORDS
                and lb not in PHARMA_WORDS and self._capitalised(lb) and not lb.endswith(DRUG_STEMS))

    def _generic_phrase(self, before: list[str], dose_words: Counter[str], about_drugs: bool = False) -> str | None:
        """The drug name that ends `before` (a salt or release suffix belongs to it), lower case."""
        words = [w.lower() for w in before if w.isalpha()]
        if len(words) >= 2 and words[-1] in _HEADED and len(words[-2]) >= 4 \
                and words[-2] not in STOPWORDS and words[-2] not in PHARMA_WORDS:
            n = 3 if len(words) >= 3 and words[-2] in ("virus", "conjugate", "polysaccharide", "toxoid") else 2
            return " ".join(words[-n:])  # botulinum toxin, zoster virus vaccine, calcium carbonate
        while words and words[-1] in SALTS:
            words.pop()
        if not words or not self._is_drug(words[-1], dose_words, about_drugs):
            return None
        if len(words) >= 2 and words[-2] == "insulin":
            return " ".join(words[-2:])
        return words[-1]

    def _mine_drugs(self, dose_words, parens, dashes, named) -> list[tuple[str, str]]:
        pairs: set[tuple[str, str]] = set()
        split = re.compile(r"\s*(?:,|;|/|\band\b|\bor\b|\bothers?\b)\s*")
        for before, inside, near in parens:
            about_drugs = bool(near) and bool(_DRUG_TALK.search(near))
            items = [x.strip().rstrip("®™") for x in split.split(inside) if x.strip()]
            if not items or len(items) > 6:
                continue
            bwords = before.split()
            generic = self._generic_phrase(bwords, dose_words, about_drugs)
            brands = [_brand_name(x) for x in items]
            if generic and all(brands) and all(self._is_brand(b.split()[0]) for b in brands):
                pairs.update((b, generic) for b in brands)
                continue
            # "Brand (generic[, generic])"
            brand = _brand_name(" ".join(bwords[-2:])) if len(bwords) >= 2 and bwords[-1].isupper() else bwords[-1]
            if brand and self._is_brand(brand.split()[0]):
                gens = [self._generic_phrase(x.split(), dose_words, about_drugs) if x[:1].islower() else None
                        for x in items]
                if all(gens) and all(len(x.split()) <= 3 for x in items):
                    pairs.update((brand, g) for g in gens)
        for brand, dashed, hyphened in dashes:
            generic = dashed or hyphened
            if (self._is_brand(brand) and self._is_drug(generic, dose_words) and brand.lower() != generic.lower()
                    and generic.lower() not in DRUG_STEMS):
                pairs.add((brand, generic.lower()))
        for before, names in named:
            near = [w for w in _TOKEN.findall(before)[-4:] if w.lower() not in STOPWORDS and w.lower() not in SALTS]
            if not near or not self._is_drug(near[-1], dose_words):
                continue  # the name must follow the drug it names ("ibuprofen under the brand name Advil")
            generic = near[-1].lower()
            for x in split.split(names):
                b = _brand_name(x.strip())
                if b and self._is_brand(b.split()[0]):
                    pairs.add((b, generic))
        return sorted(p for p in pairs if p[0].lower() != p[1])

    # ------------------------------------------------------------ persistence

    def to_json(self) -> dict:
        return {"version": LEXICON_VERSION, "n_texts": self.n_texts, "words": self.words, "forms": self.forms,
                "lower_counts": self.lower_counts, "drugs": [list(p) for p in self.drugs], "acronyms": self.acronyms}

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> "Lexicon | None":
        path = Path(path)
        if not path.exists():
            return None
        hint = "rebuild it with `carecite lexicon build`"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LexiconError(f"{path}: corrupt lexicon file ({e}); {hint}") from e
        if not isinstance(data, dict) or data.get("version") != LEXICON_VERSION:
            got = data.get("version") if isinstance(data, dict) else type(data).__name__
            raise LexiconError(f"{path}: not a lexicon file of version {LEXICON_VERSION} (found {got!r}); {hint}")
        try:
            return cls({str(k): int(v) for k, v in data["words"].items()}, dict(data["forms"]),
                       [(str(b), str(g)) for b, g in data["drugs"]],
                       {str(k): {"forms": list(v["forms"]), "long": list(v["long"])}
                        for k, v in data["acronyms"].items()},
                       n_texts=int(data.get("n_texts", 0)), lower_counts=dict(data.get("lower_counts", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise LexiconError(f"{path}: corrupt lexicon file (bad or missing {e}); {hint}") from e

    # ------------------------------------------------------------ look-ups

    def known(self, word: str) -> bool:
        """Every word of `word` (a word or a phrase) is in the index's vocabulary (case-insensitive)."""
        toks = _TOKEN.findall(word)
        return bool(toks) and all(t.lower() in self.words for t in toks)

    def count(self, word: str) -> int:
        return self.words.get(word.lower(), 0)

    def acronym(self, term: str) -> dict | None:
        """{"forms": [...], "long": [...]} of an abbreviation, matched case-insensitively and over a plural s."""
        low = term.lower()
        entry = self.acronyms.get(low) or self.acronyms.get(_fold_acronym(term))
        if entry is None and len(low) > 2 and low.endswith("s"):  # NSAIDS, where the text writes NSAIDs
            entry = self.acronyms.get(low[:-1])
            if entry and not any(f.endswith("s") and f[:-1].lower() == low[:-1] for f in entry["forms"]):
                entry = None
        return entry

    def correct(self, word: str, *, capitalised_inside: bool = False) -> str | None:
        """The index word this unknown word is most plausibly a misspelling of (case kept), or None: the closest
        (edit distance 1, or 2 for words of LONG_WORD+ letters), then the most frequent.

        Never corrected: a word the index knows, an English word (pyspellchecker's list), a word under 5 letters,
        one with digits or inner capitals. A candidate must start with the same letter (the same two at distance
        2), be seen MIN_CANDIDATE_COUNT+ times, not be an abbreviation, and not differ only by an affix (a dropped
        last letter, syndrom/syndrome, is a typo) or an inflection (unrefrigerated/refrigerated,
        megalencephalic/megalencephaly) or a medical suffix (planitis/plants). A name (a word the index writes
        capitalised) must be seen NAME_COUNT+ times. A name-like word (capitalised inside a sentence) becomes a
        name only if it has 7+ letters (9+ at distance 2), another word only if it has 8+ letters at distance 1.
        A misspelled brand name (6+ letters, distance 1) is always corrected."""
        w = word.lower()
        if (len(w) < MIN_WORD_LEN or not w.isalpha() or w in self.words or _CAMEL.search(word)
                or w in english_words() or (capitalised_inside and len(w) < 6)):
            return None
        max_d = 2 if len(w) >= LONG_WORD else 1
        best: tuple[int, int, str] | None = None
        for cand in self._candidates(w):
            dropped_last = len(cand) == len(w) + 1 and cand.startswith(w) and cand[-1] != "s"  # syndrom
            if cand[0] != w[0] or cand in w or (w in cand and not dropped_last) or _same_stem(w, cand):
                continue
            d = _osa(w, cand, max_d)
            if d > max_d or (d == 2 and (cand[:2] != w[:2] or len(cand) == len(w) - 2
                                         or _common_prefix(w, cand) >= max(len(w), len(cand)) - 3)):
                continue  # at distance 2: the same first two letters, not two letters dropped, not another ending
            name = self._capitalised(cand)
            form = self.forms.get(cand, "")
            if form.isupper():
                continue
            n = self.words[cand]
            if cand in self.brand_to_generic and d == 1 and len(w) >= 6:
                pass  # a misspelled brand name (brands are rare in the text, and names)
            elif n < MIN_CANDIDATE_COUNT or (name and n < NAME_COUNT):
                continue
            elif capitalised_inside and not ((name and len(w) >= (7 if d == 1 else 9))
                                             or (n >= NAME_COUNT and d == 1 and len(w) >= 8)):
                continue
            key = (d, -self.words[cand], cand)
            if best is None or key < best:
                best = key
        if best is None:
            return None
        cand = best[2]
        return self.forms[cand] if self._capitalised(cand) else _keep_case(word, cand)

    def misspelt_or_plain(self, word: str) -> bool:
        """Whether an unknown word is more likely a typo or plain English than a name the index lacks: an English
        word, two index words run together ("atleast", "Shuntfrom"), or within edit distance 2 of an index word
        with the same first letter ("pamplets", "diagnost"). Looser than `correct`: it decides only that the word
        must not veto an answer, never what the user meant."""
        w = word.lower()
        if not w.isalpha() or w in self.words or w in english_words():
            return True
        if any(self.words.get(w[:i], 0) >= MIN_CANDIDATE_COUNT and self.words.get(w[i:], 0) >= MIN_CANDIDATE_COUNT
               for i in range(2, len(w) - 1)):
            return True
        return len(w) >= 6 and any(c[0] == w[0] and _osa(w, c, 2) <= 2 and self.words[c] >= MIN_CANDIDATE_COUNT
                                   for c in self._candidates(w))

    def singular(self, word: str) -> str | None:
        """The known singular of an unknown word written as a plural or a possessive without its apostrophe
        (Raynauds -> Raynaud, gilberts -> Gilbert), or None."""
        w = word.lower()
        if len(w) < MIN_WORD_LEN or not w.isalpha() or w in self.words or not w.endswith("s"):
            return None
        for stem in (w[:-1], w[:-2] if w.endswith("es") else None):
            if stem and self.words.get(stem, 0) >= (NAME_COUNT if self._capitalised(stem) else MIN_CANDIDATE_COUNT):
                return self.forms[stem] if self._capitalised(stem) else _keep_case(word, stem)
        return None

    def warm(self) -> "Lexicon":
        """Build the spelling index and load the English word list now (about 2 s of CPU for the default corpus)
        instead of at the first unknown word of the first question."""
        self._candidates("x")
        english_words()
        return self

    def _candidates(self, w: str) -> set[str]:
        if self._deletes is None:
            self._deletes = _deletes_index(self.words, self.brand_to_generic)
        out: set[str] = set()
        for d in _deletes(w[:PREFIX], 2):
            out.update(self._deletes.get(d, ()))
        return out

    def variants(self, word: str) -> list[str]:
        """Other accepted forms of a word or phrase: its usual written form (NSAIDS -> NSAIDs), abbreviation <->
        long form, singular <-> plural, the reading of an unknown word (spelling, plural), brand <-> generic."""
        term = " ".join(word.split())
        low = term.lower()
        out: list[str] = []
        entry = self.acronym(term) if " " not in low else None
        if entry:
            out += entry["forms"]
        if low in self.forms:
            out.append(self.forms[low])
        if " " not in low:
            out += [f for f in _number_forms(low) if f in self.words]
            fixed = self.singular(term) or self.correct(term)
            if fixed:
                out.append(fixed)
                low = fixed.lower()
        else:
            out += [f for f in _phrase_number_forms(low) if f in self.long_to_acronym]
        out += self.brand_to_generic.get(low, []) + self.generic_to_brand.get(low, [])
        if entry:
            out += entry["long"]
            if low.endswith("s"):  # NSAIDs: the long form's singular and plural both
                out += [f for lf in entry["long"] for f in _phrase_number_forms(lf)]
        out += self.long_to_acronym.get(low, [])
        return _unique(out, term)

    # ------------------------------------------------------------ reading a question

    def read(self, question: str) -> Reading:
        toks = list(_TOKEN.finditer(question))
        alpha = [m.group(0) for m in toks if m.group(0).isalpha() and len(m.group(0)) > 1]
        shouting = bool(alpha) and sum(t.isupper() for t in alpha) >= 0.6 * len(alpha)
        corrections: list[Correction] = []
        expansions: dict[str, list[str]] = {}
        edits: dict[int, tuple[int, str]] = {}  # token start -> (end, replacement text)

        def expand(term: str, forms: list[str]) -> None:
            cur = _unique(expansions.get(term, []) + forms, term)
            if cur:
                expansions[term] = cur

        i = 0
        while i < len(toks):
            m = toks[i]
            tok = m.group(0)
            # phrases first: a multi-word brand, generic or long form
            span = self._phrase_at(question, toks, i)
            if span is not None:
                j, phrase = span
                low = phrase.lower()
                expand(phrase, self.brand_to_generic.get(low, []) + self.generic_to_brand.get(low, [])
                       + self.long_to_acronym.get(low, []))
                if low in self.brand_to_generic:
                    gens = self.brand_to_generic[low]
                    corrections += [Correction(phrase, g, "brand") for g in gens]
                    edits[m.start()] = (toks[j].end(), f"{phrase} ({', '.join(gens)})")
                i = j + 1
                continue
            i += 1
            low = tok.lower()
            written = tok
            inside = tok[:1].isupper() and not shouting and not _SENT_START.search(question[:m.start()])
            # spelling
            if low not in self.words and tok.isalpha() and (shouting or not tok.isupper()):
                as_written = low if shouting else tok
                fixed, kind = self.singular(as_written), "plural"
                if fixed and not self._capitalised(fixed.lower()):
                    expand(tok, [fixed])  # a plain plural the index writes in the singular: searched as it is
                    continue
                if not fixed:  # else a name's possessive without its apostrophe: Raynauds -> Raynaud
                    fixed, kind = self.correct(as_written, capitalised_inside=inside), "spelling"
                if fixed:
                    corrections.append(Correction(tok, fixed, kind))
                    edits[m.start()] = (m.end(), fixed)
                    expand(tok, [fixed])
                    written, low = fixed, fixed.lower()
            # brand -> generic (always shown: the generic is what most passages use)
            if low in self.brand_to_generic:
                gens = self.brand_to_generic[low]
                corrections += [Correction(written, g, "brand") for g in gens]
                edits[m.start()] = (m.end(), f"{written} ({', '.join(gens)})")
                expand(tok, [written] + gens)
                continue
            # generic -> brand: only where the index knows the drug mostly by its brand name
            if low in self.generic_to_brand:
                brands = self.generic_to_brand[low]
                expand(tok, brands)
                top = max(brands, key=self.count)
                if self.count(low) < MIN_CANDIDATE_COUNT <= self.count(top):
                    corrections.append(Correction(written, top, "generic"))
                    edits[m.start()] = (m.end(), f"{written} ({top})")
                continue
            # abbreviations (a lower-case word only where the index never writes it in lower case)
            upper = sum(c.isupper() for c in written) >= 2
            entry = self.acronym(written) if upper or (len(low) >= 3 and low not in english_words()) else None
            if entry and (upper or (low in self.forms and not self.lower_counts.get(low))):
                # the form the text uses most among those spelled alike (NSAIDs over NSAIDS)
                form = next((f for f in entry["forms"] if f.lower() == written.lower()), None)
                if form is not None and form != written:
                    if upper and written[-1:] in "sS" and form[-1:] != written[-1:]:  # NSAIDS -> NSAIDs
                        corrections.append(Correction(written, form, "plural"))
                        edits[m.start()] = (m.end(), form)
                if not self.known(written) and entry["long"] and (form is None or not self.known(form)):
                    corrections.append(Correction(written, entry["long"][0], "acronym"))
                    edits[m.start()] = (m.end(), f"{form or written} ({entry['long'][0]})")
                expand(tok, self.variants(written))
                continue
            # singular / plural forms the index uses
            if low in self.words and len(low) >= 4:
                expand(tok, [f for f in _number_forms(low) if f in self.words])
        text, pos = [], 0
        for start in sorted(edits):
            end, rep = edits[start]
            text.append(question[pos:start] + rep)
            pos = end
        text.append(question[pos:])
        return Reading("".join(text), corrections, expansions)

    def _phrase_at(self, question: str, toks: list, i: int) -> tuple[int, str] | None:
        """The longest multi-word brand, generic or long form starting at token i: (last token index, phrase)."""
        for n in range(min(self._max_phrase, len(toks) - i), 1, -1):
            j = i + n - 1
            between = question[toks[i].end():toks[j].start()]
            if re.search(r"[^\s'’-]", re.sub(r"\w", "", between)):  # no punctuation inside the phrase
                continue
            phrase = " ".join(t.group(0) for t in toks[i:j + 1])
            low = phrase.lower()
            if low in self.brand_to_generic or low in self.generic_to_brand or low in self.long_to_acronym:
                return j, question[toks[i].start():toks[j].end()]
            hyphen = question[toks[i].start():toks[j].end()].lower()
            if hyphen in self.long_to_acronym:
                return j, question[toks[i].start():toks[j].end()]
        return None

    def stats(self) -> dict:
        return {"texts": self.n_texts, "words": len(self.words), "drug_pairs": len(self.drugs),
                "brands": len(self.brand_to_generic), "generics": len(self.generic_to_brand),
                "acronyms": len(self.acronyms)}


def _unique(forms: Iterable[str], term: str) -> list[str]:
    """forms without term itself and without repeats (case-insensitive; a case variant of term is kept once)."""
    seen: set[str] = set()
    out = []
    for f in forms:
        if f != term and f.lower() not in seen:
            seen.add(f.lower())
            out.append(f)
    return out


def _brand_name(x: str) -> str | None:
    """A brand as written in a list: one capitalised word, optionally with a short release suffix (XL, ER)."""
    x = x.strip().rstrip("®™").strip()
    m = re.fullmatch(r"([A-Z][A-Za-z0-9-]*[a-z][A-Za-z0-9-]*)(?:\s+([A-Z]{1,4}|[A-Z][a-z]{2,}))?", x)
    if not m:
        return None
    return x if m.group(2) and m.group(2).isupper() else m.group(1)


def _phrase_number_forms(phrase: str) -> list[str]:
    words = phrase.split()
    return [" ".join(words[:-1] + [f]) for f in _number_forms(words[-1])] if words else []


def _deletes_index(words: dict[str, int], brands: Iterable[str]) -> dict[str, list[str]]:
    """SymSpell: every delete (up to 2) of the first PREFIX letters of each candidate word -> those words."""
    idx: dict[str, list[str]] = defaultdict(list)
    brands = set(brands)
    for w, c in words.items():
        if (c >= MIN_CANDIDATE_COUNT or w in brands) and len(w) >= 3 and w.isalpha():
            for d in _deletes(w[:PREFIX], 2):
                idx[d].append(w)
    return idx


def _mine_acronyms(parens: list[tuple[str, str, str]]) -> dict[str, dict]:
    found: dict[str, Counter] = defaultdict(Counter)
    forms: dict[str, Counter] = defaultdict(Counter)
    for before, inside, _ in parens:
        sf = inside.strip()
        if not _is_abbreviation(sf):
            continue
        words = [w for w in re.split(r"\s+", before.strip()) if w]
        lf = _best_long_form(sf, words[-min(len(sf) + 5, len(sf) * 2):])
        if lf is None:
            continue
        key = _fold_acronym(sf)
        found[key][re.sub(r"\s+s$", "s", lf.lower())] += 1  # "record(s) (EHRs)" -> "records"
        forms[key][sf] += 1
    # an upper-case plural (NSAIDS) defined like its singular joins it
    for key in [k for k in found if k.endswith("s") and k[:-1] in found]:
        if {lf.split()[0] for lf in found[key]} & {lf.split()[0] for lf in found[key[:-1]]}:
            found[key[:-1]].update(found.pop(key))
            forms[key[:-1]].update(forms.pop(key))
    out: dict[str, dict] = {}
    for key, longs in found.items():
        ranked = [lf for lf, c in longs.most_common() if c >= 2] or [lf for lf, _ in longs.most_common()]
        out[key] = {"forms": [f for f, _ in forms[key].most_common()], "long": ranked[:3]}
    for sf, longs in COMMON_ABBREVIATIONS.items():  # fill in what the text does not define
        entry = out.setdefault(_fold_acronym(sf), {"forms": [sf], "long": []})
        entry["long"] += [lf for lf in longs if lf.lower() not in {x.lower() for x in entry["long"]}]
    return out


def lexicon_path(settings) -> Path:
    return Path(settings.paths.data_dir) / FILE_NAME


def load_lexicon(settings) -> Lexicon | None:
    """The lexicon built at the last ingest (None when there is none yet)."""
    return Lexicon.load(lexicon_path(settings))
