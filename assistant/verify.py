"""Citation parsing and answer-time verification: does each sentence follow from the passages it cites?

A cited sentence is supported when
  * every number in it appears in the cited passages (with the same unit when it has one: 5 mg is not 5 g),
  * its negation matches the passage sentence it aligns with ("is not inherited" vs "is inherited"),
  * it names no rare term (drug, disease, gene: words the embedder's vocabulary splits into pieces)
    that the cited passages lack, and
  * score = SEM_WEIGHT * cosine(sentence, best 1-2 sentence window of the passages)
            + (1 - SEM_WEIGHT) * share of its content words found in the passages  >=  threshold.
The weights and threshold are calibrated by eval/verification.py on pairs built from MedQuAD and OpenStax.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from assistant.prompts import says_not_found, undatamark
from assistant.types import SentenceVerdict
from carecite.textsafety import instruction_reason, strip_instructions
from indexes.bm25 import NEGATIONS, BM25Encoder
from ingest.chunker import split_sentences as _split_line

SEM_WEIGHT = 0.6
DEFAULT_THRESHOLD = 0.7
REMOVED_INSTRUCTION = "(One sentence was removed here: it gave orders to a model.)"
REPAIR_MARGIN = 0.1  # re-citing a sentence needs clearly more support than keeping a citation

CITATION = re.compile(r"\[\s*(\d{1,3}(?:\s*(?:,|;|-|–|and)\s*\d{1,3})*)\s*\]")
_LEADING_CITATIONS = re.compile(r"^(?:\s*\[\s*\d[\d\s,;\-–and]*\])+")
_AFTER_CITATION = re.compile(r"(?<=\][.!?])\s+(?=…)")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
_UNITS = {"%": "%", "percent": "%", "mg": "mg", "mcg": "mcg", "µg": "mcg", "μg": "mcg", "g": "g", "kg": "kg",
          "ml": "ml", "l": "l", "iu": "iu", "unit": "unit", "units": "unit", "mmol": "mmol", "mmol/l": "mmol/l",
          "mg/dl": "mg/dl", "mg/kg": "mg/kg", "mmhg": "mmhg", "meq": "meq", **{
              f"{u}{s}": u for u in ("minute", "hour", "day", "week", "month", "year") for s in ("", "s")}}
_QUANTITY = re.compile(r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?)(?:\s*(mg/dl|mg/kg|mmol/l|%|percent|mcg|µg|μg|mg|kg|"
                       r"ml|mmol|mmhg|meq|iu|units?|g|l|(?:minute|hour|day|week|month|year)s?)(?![\w/]))?", re.I)
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split()) if i >= 2}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.I)
# "doesnt": MedQuAD lost its apostrophes.
_NEGATION = re.compile(r"\b(?:not|no|never|without|cannot|none|neither|nor|(?:do|does|did|is|are|was|were|has|have|"
                       r"had|ca|wo|should|could|would|must)nt)\b|n't\b", re.I)
NEG_SCOPE_WORDS = 4  # a negation governs the next few words
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]{3,}")
# Words a faithful paraphrase adds that carry no claim of their own.
_GENERIC = frozenset(BM25Encoder().tokens(
    "passage passages source sources according also include includes including called known may can "
    "however therefore usually often typically generally"))
_bm25 = BM25Encoder()


@dataclass
class Claim:
    text: str  # the sentence as written, citation markers included
    claim: str  # the sentence without citation markers
    cited: list[int]  # [n] as written, unique, in order


@dataclass
class Support:
    supported: bool
    score: float  # SEM_WEIGHT * sem + (1 - SEM_WEIGHT) * coverage
    reason: str = ""
    sem: float = 0.0  # cosine to the best-aligned 1-2 sentence window
    coverage: float = 0.0  # share of content words found in the passages
    veto: str = ""  # key-term mismatch (numbers, negation, rare terms)


def split_sentences(text: str) -> list[str]:
    """Sentences of a multi-line text; list bullets are dropped, "- " bullets inside a line split too."""
    out = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip()
        for part in re.split(r"\s+-\s+(?=[A-Z])", line):
            for s in _split_line(part.strip()):
                # quoted runs end with their citation: "… quote [3]. … next quote [1]." is two sentences
                out.extend(x for x in _AFTER_CITATION.split(s) if x)
    return out


def citation_numbers(group: str) -> list[int]:
    """Passage numbers in one [..] group: "1, 3", "2-4" (short ranges expand), "1 and 2"."""
    nums: list[int] = []
    for a, b in re.findall(r"(\d+)\s*(?:[-–]\s*(\d+))?", group):
        lo, hi = int(a), int(b or a)
        nums.extend(range(lo, hi + 1) if 0 <= hi - lo <= 10 else (lo, hi))
    return nums


def strip_citations(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"\s{2,}", " ", CITATION.sub("", text))).strip()


def keep_citations(text: str, keep: set[int]) -> str:
    """The text with citation numbers outside `keep` removed (a marker left empty disappears)."""
    def sub(m: re.Match) -> str:
        nums = [n for n in citation_numbers(m.group(1)) if n in keep]
        return f"[{', '.join(map(str, nums))}]" if nums else ""
    return re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"\s{2,}", " ", CITATION.sub(sub, text))).strip()


def parse_answer(text: str) -> list[Claim]:
    """Sentences with the [n] they cite; a citation opening a sentence ("... text. [1] Next") belongs to the one before."""
    claims: list[Claim] = []
    for sent in split_sentences(undatamark(text)):
        lead = _LEADING_CITATIONS.match(sent)
        if lead and re.match(r"\s*[a-z]", sent[lead.end():]):
            lead = None  # the citation is the subject ("[2] lists ..."): it belongs to this sentence
        if lead and claims:
            prev = claims[-1]
            for n in (n for g in CITATION.findall(lead.group(0)) for n in citation_numbers(g)):
                if n not in prev.cited:
                    prev.cited.append(n)
            prev.text = set_citations(prev.text, prev.cited)
            sent = sent[lead.end():].strip()
            if not sent:
                continue
        cited: list[int] = []
        for g in CITATION.findall(sent):
            for n in citation_numbers(g):
                if n not in cited:
                    cited.append(n)
        if lead and not claims:  # "[1] First sentence." -> "First sentence [1]."
            sent = set_citations(sent, cited)
        claims.append(Claim(sent, strip_citations(sent), cited))
    return claims


def quantities(text: str) -> set[tuple[str, str | None]]:
    """(number, unit or None) pairs; "1,000" -> "1000", "6.50" -> "6.5", "two" -> "2"."""
    text = _NUMBER_WORD.sub(lambda m: _NUMBER_WORDS[m.group(1).lower()], text)
    out = set()
    for num, unit in _QUANTITY.findall(text):
        v = num.replace(",", "")
        if "." in v:
            v = v.rstrip("0").rstrip(".")
        out.add((v, _UNITS[unit.lower()] if unit else None))
    return out


def has_negation(text: str) -> bool:
    return bool(_NEGATION.search(text))


def negation_scopes(text: str) -> list[list[str]]:
    """For each negation, the content stems it governs, in order, up to the clause end
    ("is not found in beans, fruit" -> [found, bean])."""
    out = []
    for m in _NEGATION.finditer(text):
        clause = re.split(r"[.;:!?,]", text[m.end():], maxsplit=1)[0]
        stems = [s for s in _bm25.tokens(" ".join(clause.split()[:NEG_SCOPE_WORDS]))
                 if s not in NEGATIONS and s not in _GENERIC]
        out.append(stems)
    return out


def negation_conflict(claim: str, passage: str) -> bool:
    """The claim negates something the passage does not, or states what the passage negates."""
    claim_stems, c_scopes, p_scopes = content_stems(claim), negation_scopes(claim), negation_scopes(passage)
    for cs in c_scopes:
        if (cs or not p_scopes) and not any(set(cs) & set(ps) for ps in p_scopes):
            return True
    for ps in p_scopes:  # the negated predicate (first governed word) is in the claim without a negation
        if ps and ps[0] in claim_stems and not any(ps[0] in cs for cs in c_scopes):
            return True
    return False


def content_stems(text: str) -> set[str]:
    return {s for s in _bm25.tokens(text) if s not in NEGATIONS and s not in _GENERIC and not s.isdigit()}


def is_claim(sentence: str) -> bool:
    """A sentence stating something checkable: not a question, a lead-in, or a "not found" statement."""
    s = strip_citations(sentence)
    if s.endswith(("?", ":")) or says_not_found(s):
        return False
    return len(content_stems(s)) >= 2


class CachedEmbed:
    """embed(texts) with a bounded memo: an answer embeds the same passage sentences to pick and to check them."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], max_items: int = 8192):
        self.embed, self.max_items = embed, max_items
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if todo:
            vecs = self.embed(todo)
            with self._lock:
                for t, v in zip(todo, vecs):
                    self._memo[t] = v
                while len(self._memo) > self.max_items:
                    self._memo.popitem(last=False)
        with self._lock:
            found = {t: self._memo[t] for t in texts if t in self._memo}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:  # evicted meanwhile by another thread
            found.update(zip(missing, self.embed(missing)))
        return np.stack([found[t] for t in texts])


_caches: dict[int, CachedEmbed] = {}
_caches_lock = threading.Lock()


def cached_embed(embedder) -> CachedEmbed:
    """The shared memo of one embedder object."""
    with _caches_lock:
        if id(embedder) not in _caches:
            _caches[id(embedder)] = CachedEmbed(embedder.embed)
        return _caches[id(embedder)]


class Verifier:
    """Scores sentences against passages with the embedder; `threshold` is the calibrated cut-off."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], tokenize: Callable[[str], list[str]],
                 threshold: float = DEFAULT_THRESHOLD, sem_weight: float = SEM_WEIGHT, repair: bool = False):
        self.embed, self.tokenize = embed, tokenize
        self.threshold, self.sem_weight, self.repair = threshold, sem_weight, repair

    @classmethod
    def from_embedder(cls, embedder, threshold: float = DEFAULT_THRESHOLD, repair: bool = False) -> "Verifier":
        return cls(cached_embed(embedder), embedder.tokenize, threshold, repair=repair)

    def _rare(self, word: str) -> bool:
        return len(self.tokenize(word)) >= 3 or any(c.isdigit() for c in word)

    def check_many(self, items: Sequence[tuple[str, Sequence[str]]],
                   aliases: dict[str, Sequence[str]] | None = None) -> list[Support]:
        """Each (claim text without markers, cited passage texts) -> Support; embeddings batched across items.

        aliases: accepted other forms of a word, keyed lower-case ("lipitor" -> ["atorvastatin"]): a claim that
        names a drug by its brand is not vetoed when the passage names the generic."""
        windows: list[list[str]] = []
        for _, passages in items:
            sents = [s for p in passages for s in split_sentences(p)] or [" ".join(passages)]
            windows.append(sents)
        flat = [s for w in windows for s in w]
        if not items:
            return []
        vecs = self.embed([c for c, _ in items] + flat)
        cvecs, svecs = vecs[:len(items)], vecs[len(items):]
        out, k = [], 0
        for i, ((claim, passages), sents) in enumerate(zip(items, windows)):
            out.append(self._judge(claim, " ".join(passages), sents, cvecs[i], svecs[k:k + len(sents)], aliases))
            k += len(sents)
        return out

    def check(self, claim: str, passages: Sequence[str]) -> Support:
        return self.check_many([(claim, passages)])[0]

    def _judge(self, claim: str, haystack: str, sents: list[str], cv: np.ndarray, sv: np.ndarray,
               aliases: dict[str, Sequence[str]] | None = None) -> Support:
        sims = sv @ cv
        i = int(np.argmax(sims))
        best, aligned = float(sims[i]), [sents[i]]
        if len(sents) > 1:  # the best two adjacent sentences: claims often merge them
            pair = sv[:-1] + sv[1:]
            psims = pair @ cv / np.maximum(np.linalg.norm(pair, axis=1), 1e-9)
            j = int(np.argmax(psims))
            best = max(best, float(psims[j]))
            aligned.append(f"{sents[j]} {sents[j + 1]}")
        stems = content_stems(claim)
        hay_stems = set(_bm25.tokens(haystack))
        coverage = len(stems & hay_stems) / len(stems) if stems else 1.0
        score = self.sem_weight * max(best, 0.0) + (1 - self.sem_weight) * coverage
        veto = self._veto(claim, haystack, hay_stems, aligned, aliases or {})
        if veto:
            return Support(False, score, veto, best, coverage, veto)
        if score < self.threshold:
            return Support(False, score, f"weak support ({score:.2f} < {self.threshold:.2f})", best, coverage)
        return Support(True, score, "", best, coverage)

    def _veto(self, claim: str, haystack: str, hay_stems: set[str], aligned: list[str],
              aliases: dict[str, Sequence[str]]) -> str:
        """A key-term mismatch that no similarity can outweigh ("" if none)."""
        hay_q = quantities(haystack)
        hay_nums = {v for v, _ in hay_q}
        for v, unit in sorted(quantities(claim), key=str):
            if (unit is None and v not in hay_nums) or (unit is not None and (v, unit) not in hay_q):
                return f"number not in cited passage: {v}{' ' + unit if unit else ''}"
        # Negation must agree with the best-aligned sentence or with the best two-sentence window.
        if all(negation_conflict(claim, a) for a in aligned):
            return "negation differs from the cited passage"
        hay_words = {w.lower() for w in _WORD.findall(haystack)}
        for m in _WORD.finditer(claim):
            w = m.group(0)
            stem = _bm25.tokens(w)
            if w.lower() in hay_words or not stem or stem[0] in hay_stems:
                continue
            if any(a.lower() in hay_words or any(t in hay_stems for t in _bm25.tokens(a))
                   for a in aliases.get(w.lower(), ())):
                continue
            if self._rare(w) or (w[0].isupper() and m.start() > 0):  # a name the passages lack
                return f"term not in cited passage: {w}"
        return ""

    def verify(self, answer_text: str, passages: Sequence[str],
               aliases: dict[str, Sequence[str]] | None = None) -> list[SentenceVerdict]:
        """Verdicts for every sentence of an answer; passages[n-1] is passage [n].

        Citations to passages that do not exist are dropped (and named in the reason); a factual sentence
        without a valid citation is unsupported ("no citation"); lead-ins and "not found" sentences are not claims.
        With `repair`, a claim its citation does not support, or that cites nothing, is re-cited to the one
        passage that supports it clearly (score >= threshold + REPAIR_MARGIN, no key-term mismatch); the
        reason records the change ("citation corrected: [1] -> [5]").
        """
        claims = parse_answer(answer_text)
        # Text that addresses a model is never support, and a sentence that gives a model orders is never a
        # supported answer (however closely a passage matches it).
        passages = [strip_instructions(p)[0] for p in passages]
        verdicts: list[SentenceVerdict] = []
        todo: list[tuple[int, str, list[str]]] = []
        for c in claims:
            verdict, yes_no = _bare_yes_no(c)
            if verdict is not None:
                verdicts.append(verdict)
                continue
            valid = [n for n in c.cited if 1 <= n <= len(passages)]
            dropped = [n for n in c.cited if n not in valid]
            note = _join(yes_no, f"dropped citation to missing passage {', '.join(f'[{n}]' for n in dropped)}"
                         if dropped else "")
            text = keep_citations(c.text, set(valid)) if dropped else c.text
            if not is_claim(c.claim):
                verdicts.append(SentenceVerdict(text, valid, True, 1.0, _join("not a claim", note), claim=False))
            elif not valid:
                verdicts.append(SentenceVerdict(text, [], False, 0.0, _join("no citation", note)))
            else:
                todo.append((len(verdicts), c.claim, [passages[n - 1] for n in valid]))
                verdicts.append(SentenceVerdict(text, valid, False, 0.0, note))
        for (i, _, _), sup in zip(todo, self.check_many([(c, p) for _, c, p in todo], aliases)):
            v = verdicts[i]
            v.supported, v.score, v.reason = sup.supported, round(sup.score, 4), _join(sup.reason, v.reason)
        if self.repair:
            self._repair([(v, c.claim) for v, c in zip(verdicts, claims) if v.claim and not v.supported], passages,
                         aliases)
        for v, c in zip(verdicts, claims):  # never shown, not even marked unsupported: replaced by a notice
            why = instruction_reason(c.claim)
            if why:
                v.text, v.citations, v.supported, v.claim, v.score = REMOVED_INSTRUCTION, [], False, True, 0.0
                v.reason = f"removed: the sentence read as an instruction to a model ({why})"
        return verdicts

    def _repair(self, failed: list[tuple[SentenceVerdict, str]], passages: Sequence[str],
                aliases: dict[str, Sequence[str]] | None = None) -> None:
        if not failed or not passages:
            return
        checks = self.check_many([(claim, [p]) for _, claim in failed for p in passages], aliases)
        for k, (v, _) in enumerate(failed):
            row = checks[k * len(passages):(k + 1) * len(passages)]
            best = max(range(len(passages)), key=lambda j: (row[j].supported, row[j].score))
            if row[best].supported and row[best].score >= self.threshold + REPAIR_MARGIN:
                n = best + 1
                change = f"citation corrected: {_marks(v.citations)} -> [{n}]" if v.citations \
                    else f"citation added: [{n}]"
                v.text = set_citations(v.text, [n])
                v.citations, v.supported, v.score = [n], True, round(row[best].score, 4)
                v.reason = _join(change, f"was: {v.reason}" if v.reason else "")


def _bare_yes_no(c: Claim) -> tuple[SentenceVerdict | None, str]:
    """A yes or no is a verdict on the asker's case that no passage states: a sentence that is only "Yes." is
    withheld, and "Yes, the rash ..." is checked (and shown) as "The rash ..." (a real question about lupus was
    answered "Yes, ..." above verified sentences about the rash)."""
    m = _YES_NO.match(c.claim)
    if not m:
        return None, ""
    rest = c.claim[m.end():].strip()
    if not rest or not is_claim(rest):  # "Yes." and "Yes, it does.": nothing left to check
        return SentenceVerdict(c.text, c.cited, False, 0.0, "a bare yes or no: no passage can support it",
                               claim=False), ""
    rest = rest[:1].upper() + rest[1:]
    c.text, c.claim = set_citations(rest, c.cited) if c.cited else rest, rest
    return None, f"removed the leading \u201c{m.group(0).strip(' ,.!;:—–')}\u201d: no passage can support it"


# "No treatment exists" is a claim, not an answer "No": the word must be followed by punctuation or stand alone.
_YES_NO = re.compile(r"^\s*(?:yes|no|yeah|nope|correct|indeed)\s*(?:[,.!;:—–]+\s*|$)", re.I)


def set_citations(text: str, nums: list[int]) -> str:
    """The sentence with its citation markers replaced by `nums`, placed before the final punctuation (or kept
    as the subject: "[2] lists ..." -> "[3] lists ...")."""
    bare = strip_citations(text)
    if (lead := _LEADING_CITATIONS.match(text)) and re.match(r"\s*[a-z]", text[lead.end():]):
        return f"{_marks(nums)} {bare}"
    end = len(bare.rstrip(".!;")) if bare.endswith((".", "!", ";")) else len(bare)
    return f"{bare[:end]} {_marks(nums)}{bare[end:]}"


def _marks(nums: Sequence[int]) -> str:
    return "".join(f"[{n}]" for n in nums)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
