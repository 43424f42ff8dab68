"""Reading a model's chosen option out of free text.

Two readers:
- ``authors_choice``: the MIRAGE authors' scorer rules (src/utils.py ``locate_answer`` applied to the text after the
  last ``"answer_choice": "``), reimplemented so published predictions score exactly as in the paper. It never
  fails: text matching none of its rules counts as "A".
- ``parse_answer``: a tolerant reader for our own models' output; returns None when no single option is named.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping

# The authors' rules, tried in this order on the answer_choice text; the first match wins.
_AUTHORS_RULES = [re.compile(p) for p in (
    r"^\s*(A|B|C|D)$",
    r"^\s*(A|B|C|D) or",
    r"^\s*(A|B|C|D) and",
    r"^\s*(A|B|C|D)/",
    r"^\s*(A|B|C|D),",
    r"[Oo]ption (A|B|C|D)",
    r":\s*(A|B|C|D)",
    r"^\s*(A|B|C|D)\.",
    r"^\s*(A|B|C|D)\"",
    r"^\s*(A|B|C|D):",
)]
AUTHORS_FALLBACK = "A"


def authors_choice(raw: str) -> str:
    """The letter the MIRAGE authors' scorer reads from one raw model output."""
    tail = raw.split('"answer_choice": "')[-1].strip()
    for rule in _AUTHORS_RULES:
        found = rule.findall(tail)
        if found:
            return found[0]
    return AUTHORS_FALLBACK


_JSON_BLOCK = re.compile(r"\{.*\}", re.DOTALL)
_CHOICE_FIELD = re.compile(r'"(?:answer_choice|answer)"\s*:\s*"([^"]*)', re.IGNORECASE)
# "Answer: B", "the answer is (b)", "correct option is C", "Option D"
_STATED = re.compile(
    r"(?i:answer(?:_choice)?|option|choice)\s*(?i:is|would be|:|=)?\s*[:\-]?\s*"
    r"(?:\(([A-Za-z])\)|([A-Z])\b|([a-z])(?=[.):,]|\s*$))")
# A value that starts with its letter: "B", "(B)", "B.", "B)", "B: text", "b", "b. text"; loose also "B text".
_LEADING = re.compile(r"^\s*(?:\(([A-Za-z])\)|([A-Z])(?=$|[.):,;])|([a-z])(?=$|[.):]))")
_LEADING_LOOSE = re.compile(r"^\s*(?:\(([A-Za-z])\)|([A-Z])(?=$|[\s.):,;\-])|([a-z])(?=$|[.):]))")


def _norm(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def _letter_from_value(value: str, options: Mapping[str, str], loose: bool = True) -> str | None:
    """A letter from a short answer value: its leading letter, or an option's exact text.
    Loose also takes "B text"; whole free texts are read strictly ("A patient..." is no answer)."""
    m = (_LEADING_LOOSE if loose else _LEADING).match(value)
    if m:
        letter = next(g for g in m.groups() if g).upper()
        if letter in options:
            return letter
    wanted = _norm(value)
    if wanted:
        same = [k for k, v in options.items() if _norm(v) == wanted]
        if len(same) == 1:
            return same[0]
    return None


def _options_named(text: str, options: Mapping[str, str]) -> list[str]:
    """Options whose full text occurs in the text as whole words."""
    hay = f" {_norm(text)} "
    return [k for k, v in options.items() if _norm(v) and f" {_norm(v)} " in hay]


def parse_answer(text: str, options: Mapping[str, str]) -> str | None:
    """The option letter a model's output picks, or None when it names no single option.

    Tried in order: a JSON object's answer_choice/answer field (also from truncated JSON), the whole
    text as a short answer, the last "answer is X"-style statement, the one option whose text it quotes.
    """
    if not options:
        raise ValueError("options must not be empty")
    text = text.strip()
    block = _JSON_BLOCK.search(text)
    if block:
        try:
            obj = json.loads(block.group(0))
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            for key in ("answer_choice", "answer", "Answer", "answer choice"):
                if isinstance(obj.get(key), str):
                    letter = _letter_from_value(obj[key], options)
                    if letter:
                        return letter
    field = _CHOICE_FIELD.findall(text)
    if field:
        letter = _letter_from_value(field[-1], options)
        if letter:
            return letter
    letter = _letter_from_value(text, options, loose=False) if len(text) <= 200 else None
    if letter:
        return letter
    for m in reversed(list(_STATED.finditer(text))):
        letter = next(g for g in m.groups() if g).upper()
        if letter in options:
            return letter
    named = _options_named(text, options)
    return named[0] if len(named) == 1 else None
