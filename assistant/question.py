"""Reading a question the way people write it: the parts it asks, what must be covered, emergencies, scope.

Real messages (../shared/data/liveqa-train) carry a story ("I am 84, live in Southern California ..."), several
questions at once, typos and brand names. This module decides, without an LLM:

  question_parts(text)      the questions asked, one per part (the whole message when it asks one thing)
  focus_text(text)          the sentences that ask (the story around them is context, never a reason to abstain)
  unknown_terms(...)        rare words of the asking sentences that neither the evidence nor the index knows,
                            after spelling, brand/generic and acronym variants: the "never heard of it" veto
  emergency_kind(text)      overdose, chest pain, stroke signs, ...: urgent advice goes first
  about_cases(text)         whether the question is about case notes (otherwise cases are not evidence)
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from assistant.condense import subject_of
from assistant.verify import split_sentences
from indexes.bm25 import BM25Encoder

_bm25 = BM25Encoder()

_ASKS = re.compile(
    r"^\s*(?:(?:and|so|also|but|then|or)\s+)?(?:what|what's|whats|how|why|when|where|which|who|whom|whose|is|are|was|"
    r"were|can|could|should|would|will|do|does|did|has|have|may|might|shall|any|please|pls|plz|tell me|"
    r"i (?:would like|want|need|wish|wanted) to know|i(?:'d| would) like (?:to know|information)|"
    r"i am (?:looking|searching) for|i'm (?:looking|searching) for|looking for|need (?:information|info|advice)|"
    r"(?:kindly|please)? ?(?:advise|advice|suggest|explain|help)|let me know|is there|are there)\b", re.I)
_REQUEST = re.compile(r"\b(?:please|pls|plz|kindly)\s+(?:tell|let|advise|suggest|explain|send|help|give|provide)|"
                      r"\b(?:can|could|would) you\b|\bi (?:would like|want|need) to know\b|\bwhat (?:should|can|do) i\b",
                      re.I)
MAX_PARTS = 4
MAX_NAME_SENTENCE_WORDS = 30  # longer asking sentences are run-on stories: capitals there are no names

# Words of an emergency, in lay and clinical wording; each names the advice that goes first.
_EMERGENCY = [
    # Events, not topics: "swallowed 25 pills", "my son was poisoned"; not "what is lead poisoning?".
    ("overdose", re.compile(r"\b(?:over ?dos(?:e|ed|ing)|swallow(?:ed)?\s+(?:\d+|a (?:lot|bottle|handful)|"
                            r"(?:too )?many|all)\b|took (?:\d+|too many|a whole bottle|all (?:of )?(?:the|my))\b[^.?!]{0,40}"
                            r"\b(?:pills?|tablets?|capsules?)|(?:was|been|got|is) poisoned\b|ingested\b)", re.I)),
    ("chest pain", re.compile(r"\b(?:have|having|has|with|got|feel|feels|feeling) (?:\w+ ){0,2}chest (?:pain|pressure|"
                              r"tightness)|\bhaving a heart attack\b|crushing (?:chest )?pain\b", re.I)),
    ("stroke", re.compile(r"\bstroke (?:signs?|symptoms?)|(?:face|facial) (?:droop|drooping)|slurred speech|"
                          r"sudden (?:numbness|weakness|confusion|severe headache)|having a stroke\b", re.I)),
    ("breathing", re.compile(r"\b(?:can(?:no|')?t|cannot|unable to|trouble|difficulty|hard to) breath(?:e|ing)\b|"
                             r"\bnot breathing\b|\bchoking\b|\banaphyla", re.I)),
    ("bleeding", re.compile(r"\b(?:severe|heavy|uncontrolled|won'?t stop) bleeding\b|bleeding (?:won'?t|will not) "
                            r"stop\b|coughing up blood|vomiting blood", re.I)),
    ("suicide", re.compile(r"\b(?:suicid\w*|kill (?:myself|himself|herself)|end (?:my|his|her) life|self[- ]harm)\b", re.I)),
    ("unconscious", re.compile(r"\b(?:unconscious|unresponsive|passed out|seizure (?:that )?(?:won'?t|will not) stop)\b",
                               re.I)),
]
SAFETY_LINE = ("This may be an emergency. Call your local emergency number (911 in the US) now, or for a "
               "poisoning or overdose, Poison Control (1-800-222-1222 in the US). Do not wait for symptoms.")
URGENT_WORDS = re.compile(r"\b(?:emergency|911|poison control|immediately|right away|urgent(?:ly)?|call (?:your|a) "
                          r"(?:doctor|health care provider|provider)|emergency room|hospital right away)\b", re.I)

_CASES = re.compile(r"\b(?:case(?:s| note| notes| summar(?:y|ies))?|this patient|the patient|our patient|visit note|"
                    r"encounter|similar patients?|patients? (?:like|with) (?:this|these))\b", re.I)
# Common word endings and prefixes: a word that is an inflection of a known word is not an unknown name.
_AFFIX = re.compile(r"^(?:un|non|re|pre|anti|over|under)|(?:ed|ing|s|es|ly|ness|ment|able|ible)$")


def is_asking(sentence: str) -> bool:
    s = sentence.strip()
    return s.endswith("?") or bool(_ASKS.match(s)) or bool(_REQUEST.search(s))


def asking_sentences(text: str) -> list[str]:
    return [s for s in split_sentences(text) if is_asking(s)]


def question_parts(text: str, max_parts: int = MAX_PARTS) -> list[str]:
    """The separate questions of a message, in order; [text] when it asks one thing (or none explicitly).

    "Is Lipitor safe in pregnancy? And what dose is usual?" -> two parts. A part that names nothing of its own
    ("What is the dose?") gets the message's subject added, so it can be searched on its own."""
    asks = asking_sentences(text)
    if len(asks) < 2:
        return [text]
    asks = [a for a in dict.fromkeys(asks)][:max_parts]
    topic = subject_of(" ".join(s for s in split_sentences(text) if s not in asks) or asks[0])
    out = []
    for a in asks:
        own = subject_of(a)
        if len(own.split()) < 2 and topic and topic.lower() not in a.lower():
            a = f"{a.rstrip(' ?')} ({' '.join(topic.split()[:6])})?"
        out.append(a)
    return out


def focus_text(text: str) -> str:
    """The asking sentences of a message (the whole text when none stands out): what must be covered."""
    asks = asking_sentences(text)
    return " ".join(asks) if asks and len(asks) < len(split_sentences(text)) else text


def _derived_from_known(word: str, known: Callable[[str], bool]) -> bool:
    w = word.lower()
    for _ in range(2):
        stripped = _AFFIX.sub("", w, count=1)
        if stripped == w or len(stripped) < 4:
            return False
        w = stripped
        if known(w) or known(w + "e"):
            return True
    return False


# Who the question is about, when it is not a person: the default corpus is human medicine, so a dose for a
# beagle must not be answered with a human dose. Such a word must be covered by the evidence like a rare name.
_ANIMALS = re.compile(
    r"\b(?:dogs?|pupp(?:y|ies)|canine|cats?|kittens?|feline|horses?|equine|ponies|pony|pets?|veterinar\w*|"
    r"beagles?|poodles?|labradors?|retrievers?|terriers?|chihuahuas?|bulldogs?|shepherds?|rabbits?|bunn(?:y|ies)|"
    r"hamsters?|guinea pigs?|ferrets?|parrots?|budgies?|birds?|chickens?|hens?|cows?|cattle|calf|calves|goats?|"
    r"sheep|lambs?|pigs?|piglets?|livestock|reptiles?|snakes?|lizards?|turtles?|tortoises?|fish)\b", re.I)


def _inner_names(text: str) -> set[str]:
    """Words written as names in the asking sentences: capitalised (not all capitals), not first in the sentence,
    and not part of a run of three or more capitalised words (a title: "Whole Exome Sequencing", "Grant High
    School"). "The early signs of Marrowind-Ashby syndrome?" -> {Marrowind, Ashby}. A name the index lacks is
    unknown even when it splits into only two word pieces or looks like two words run together; misspelled
    names still match through the lexicon's spelling variants. Long run-on sentences and story are left out."""
    out: set[str] = set()
    for sent in asking_sentences(text):
        words = list(re.finditer(r"[A-Za-z][A-Za-z']*", sent))
        if len(words) > MAX_NAME_SENTENCE_WORDS or _title_or_caps(sent):
            continue
        caps = [i > 0 and w.group(0)[0].isupper() and w.group(0)[1:].islower() for i, w in enumerate(words)]
        for i, w in enumerate(words):
            if not caps[i]:
                continue
            lo = hi = i
            while lo > 0 and caps[lo - 1]:
                lo -= 1
            while hi + 1 < len(words) and caps[hi + 1]:
                hi += 1
            if hi - lo < 2:
                out.add(w.group(0))
    return out


def _title_or_caps(sent: str) -> bool:
    """Title Case Or ALL CAPS writing: capitals say nothing about names there."""
    words = re.findall(r"[A-Za-z]{4,}", sent)
    return bool(words) and sum(w[0].isupper() for w in words) > 0.6 * len(words)


def unknown_terms(question: str, texts: Sequence[str], tokenize: Callable[[str], list[str]],
                  lexicon=None) -> list[str]:
    """Rare words of the asking sentences that the evidence does not mention under any accepted form, and that
    the index as a whole does not know either (a drug, disease or gene name the corpus has never seen).

    Rare = split into 3+ pieces by the embedder's tokenizer. Accepted forms come from the lexicon (spelling
    correction against the index vocabulary, brand <-> generic, acronym <-> long form, plurals). Without a
    lexicon, a rare word the evidence lacks counts as unknown (the stricter rule)."""
    have = {t for text in texts for t in _bm25.tokens(text)}
    focus = focus_text(question)
    names = _inner_names(focus)
    subject = subject_of(focus)
    out: list[str] = []
    for m in re.finditer(r"[A-Za-z][A-Za-z'-]{3,}", subject):
        for w in m.group(0).split("-"):
            stems = _bm25.tokens(w)
            name = w in names
            if len(w) < 4 or not stems or stems[0] in have or len(tokenize(w)) < (2 if name else 3):
                continue
            forms: Iterable[str] = lexicon.variants(w) if lexicon is not None else ()
            if any(s in have for f in forms for s in _bm25.tokens(f)):
                continue
            if lexicon is not None and (lexicon.known(w) or _derived_from_known(w, lexicon.known)
                                        or any(lexicon.known(f) for f in forms)
                                        or (not name and getattr(lexicon, "misspelt_or_plain", lambda _: False)(w))):
                continue  # the index knows the word, or it reads as a typo or plain English: not an unknown name
            out.append(w)
    for m in _ANIMALS.finditer(" ".join(asking_sentences(question)) or focus):
        word = m.group(0)
        if not any(t in have for t in _bm25.tokens(word)):
            out.append(word)
    return list(dict.fromkeys(out))


def emergency_kind(text: str) -> str | None:
    for kind, pat in _EMERGENCY:
        if pat.search(text):
            return kind
    return None


def about_cases(text: str) -> bool:
    return bool(_CASES.search(text))
