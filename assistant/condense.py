"""Follow-up questions -> a standalone query, by rules or with the LLM (rules are the fallback).

"How is type 2 diabetes diagnosed?" then "How is it treated?" -> "How is type 2 diabetes treated?"
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from assistant.errors import AssistantError, QuestionError
from assistant.prompts import Message, condense_messages, says_not_found

log = logging.getLogger(__name__)

_PRONOUN = re.compile(r"\b(it|this|that|these|those|they|them|this condition|the condition|this disease|"
                      r"the disease|this disorder|the disorder|this drug|the drug|this medicine|the medicine)\b", re.I)
_POSSESSIVE = re.compile(r"\b(its|their)\s+((?:[\w-]+\s+){0,2}?[\w-]+)"
                         r"(?=\s*(?:[?.!,]|$|\s+(?:in|for|with|after|during|be|is|are|and|or|like)\b))", re.I)
_CONNECTOR = re.compile(r"^\s*(?:and|also|but|so|then|what about|how about)\b[\s,]*", re.I)
# Words that say what is asked, not what it is about; dropped when extracting the subject of a question.
_ASKING = frozenset("""
what whats which who whom whose how when where why is are was were be been do does did can could should would will
may might must the a an of for to in on at by with about from and or there any some my your i we you me it its this
that these those they them their tell explain describe define definition mean means meaning
symptom symptoms sign signs cause causes caused treatment treatments treat treated treating therapy therapies
diagnose diagnosed diagnosis diagnosing test tests testing exam exams risk risks prevent prevented prevention
outlook prognosis inherited inheritance genetic genetics change changes related affect affected affects people
many much frequency common information research trials complications side effects dose dosage used use uses
get gets getting have has having need needs know known best way ways type types
""".split())


def subject_of(question: str) -> str:
    """The topic words of a question in their order: "What are the symptoms of Alport syndrome?" -> "Alport syndrome"."""
    q = re.sub(r"\((?:are|is)\)", " ", question)
    words = re.findall(r"[\w][\w'-]*", q)
    keep = [w for w in words if w.lower() not in _ASKING or re.fullmatch(r"\d+", w)]
    # "type 2 diabetes": keep "type" when a number follows it.
    out = []
    for i, w in enumerate(words):
        if w in keep or (w.lower() == "type" and i + 1 < len(words) and words[i + 1].isdigit()):
            out.append(w)
    return " ".join(out)


def needs_context(question: str) -> bool:
    q = question.strip()
    return bool(_PRONOUN.search(q) or _POSSESSIVE.search(q) or _CONNECTOR.match(q)) or len(q.split()) <= 2


def _last_subject(history: Sequence[Message]) -> str:
    for m in reversed(history):
        if m["role"] == "user" and (subj := subject_of(m["content"])):
            return subj
    return ""


def condense_rules(question: str, history: Sequence[Message]) -> str:
    """Put the subject of the last user turn into a follow-up that refers back to it."""
    q = question.strip()
    if not history or not needs_context(q):
        return q
    subj = _last_subject(history)
    if not subj or subj.lower() in q.lower():
        return q
    if _POSSESSIVE.search(q):
        return _POSSESSIVE.sub(lambda m: f"the {m.group(2)} of {subj}", q, count=1)
    if _PRONOUN.search(q):
        return _PRONOUN.sub(subj, q, count=1)
    body = _CONNECTOR.sub("", q).rstrip(" ?.!")
    return f"{body[:1].upper()}{body[1:]} of {subj}?"


def check_history(history) -> list[Message]:
    """Chat history as [{"role": "user"|"assistant", "content": str}, ...] (OpenAI / Gradio messages format)."""
    if history is None:
        return []
    if not isinstance(history, (list, tuple)):
        raise QuestionError(f"history must be a list of {{'role', 'content'}} messages, got {type(history).__name__}")
    out = []
    for i, m in enumerate(history):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system") \
                or not isinstance(m.get("content"), str):
            raise QuestionError(f"history[{i}] must be {{'role': 'user'|'assistant', 'content': str}}, got {m!r:.120}")
        if m["role"] != "system":
            out.append({"role": m["role"], "content": m["content"]})
    return out


def condense(question: str, history: Sequence[Message], generator=None) -> str:
    """Standalone query for `question`; with an LLM generator the model rewrites it, rules otherwise or on failure."""
    if not history or not needs_context(question):
        return question.strip()
    if generator is not None:
        try:
            text = generator.generate(condense_messages(question, history))
            line = text.strip().splitlines()[0].strip().strip('"').strip() if text.strip() else ""
            line = re.sub(r"^(?:standalone question|question)\s*:\s*", "", line, flags=re.I)
            if 3 <= len(line) <= 300 and not says_not_found(line) and len(line.split()) >= 2:
                return line
            log.info("LLM condensation unusable (%r); using rules", text[:80])
        except AssistantError as e:
            log.warning("LLM condensation failed (%s); using rules", e)
    return condense_rules(question, history)
