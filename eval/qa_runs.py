"""answer_fn factories: the project's retrieval and generator wired into eval.mirage.run_mirage and
eval.pubmedqa.run_pubmedqa.

Retrieval uses the question text only (MIRAGE's rule: never the options). Retrieved passages pass through the
assistant's evidence selection (near-duplicates dropped, kept within the model's context budget), so the
benchmark sees the same evidence a user's question would.

Answer extraction (on by default): when the first output names no answer (cut off by max_tokens, or reasoning
that never concludes), a second turn asks for the answer alone as JSON, as zero-shot chain-of-thought does
(Kojima et al., 2022). Both outputs are kept in the prediction, and extra["extracted"] marks those questions.

Two prompt styles:
  medrag        the published prompts unchanged (think step by step, then the answer): comparable with the paper.
  answer-first  the same prompts asking for the answer before a one-sentence explanation, so a small
                max_tokens still yields an answer on a CPU (labelled in every report; not the paper's setting).
  letter        (MIRAGE) the same prompts asking for the letter alone; the model writes one token, which a
                grammar (local) or the first token's log-probabilities (OpenAI-compatible) restrict to the
                option letters: the option the model itself ranks highest, nothing parsed from free text.
"""
from __future__ import annotations

import json

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from assistant.evidence import select_evidence
from assistant.generators import ExtractiveGenerator, Generator
from assistant.pipeline import LLM_TOKENS_PER_EMBEDDER_TOKEN
from assistant.types import Source
from eval import mirage, pubmedqa
from eval.answer_parsing import parse_answer

PROMPT_STYLES = ("medrag", "answer-first", "letter")
EXTRACT_MIRAGE = ('Reply with only the JSON {"answer_choice": "X"}, where X is the letter of your final answer '
                  "among the options.")
EXTRACT_PUBMEDQA = 'Reply with only the JSON {"answer": "X"}, where X is yes, no or maybe.'
SAFETY_TOKENS = 64  # chat-template tokens and tokenizer mismatch

# (old, new) edits that turn the published prompts into the answer-first style.
_MIRAGE_ANSWER_FIRST = [
    ("Please first think step-by-step and then choose the answer from the provided options. ",
     "Choose the answer from the provided options, then explain it in one sentence. "),
    ('Dict{"step_by_step_thinking": Str(explanation), "answer_choice": Str{A/B/C/...}}',
     'Dict{"answer_choice": Str{A/B/C/...}, "explanation": Str(one sentence)}'),
    ("Please think step-by-step and generate your output in json:", "Please generate your output in json:"),
]
_MIRAGE_LETTER = [
    ("Please first think step-by-step and then choose the answer from the provided options. ",
     "Choose the answer from the provided options. "),
    ('Organize your output in a json formatted as Dict{"step_by_step_thinking": Str(explanation), '
     '"answer_choice": Str{A/B/C/...}}. ', "Reply with the letter of the answer only. "),
    ("Please think step-by-step and generate your output in json:", "Answer (the letter only):"),
]
_PUBMEDQA_ANSWER_FIRST = [
    ("Please first think step-by-step and then answer. ", "Answer first, then explain it in one sentence. "),
    ('Dict{"step_by_step_thinking": Str(explanation), "answer": Str{yes/no/maybe}}',
     'Dict{"answer": Str{yes/no/maybe}, "explanation": Str(one sentence)}'),
    ("Please think step-by-step and generate your output in json:", "Please generate your output in json:"),
]


def restyle(messages: tuple[str, str], style: str, edits: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """(system, user) in the chosen prompt style."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; choose one of {PROMPT_STYLES}")
    if style == "medrag":
        return messages
    if style == "letter" and edits is not _MIRAGE_LETTER:
        raise ValueError("prompt style 'letter' is for multiple-choice benchmarks (MIRAGE)")
    system, user = messages
    for old, new in edits:
        if old not in system and old not in user:
            raise RuntimeError(f"the answer-first edit {old!r} no longer matches the benchmark prompt; "
                               "update eval/qa_runs.py")
        system, user = system.replace(old, new), user.replace(old, new)
    return system, user


def require_llm(generator: Generator) -> None:
    """Multiple-choice and yes/no benchmarks need a model that writes an answer; the extractive generator
    (also the fallback when the local model is missing) only quotes passages."""
    if isinstance(generator, ExtractiveGenerator):
        raise ValueError(f"generator {generator.name!r} cannot answer multiple-choice or yes/no questions "
                         "(it only quotes passages); use --generator local or --generator openai")


@dataclass
class Retriever:
    """Passages for a question from the index, fitted to a token budget.

    searcher: carecite.runtime.open_searcher(...); count_tokens: the embedder's token counter;
    context_tokens: the model's window (generator.n_ctx); answer_tokens: generator.max_tokens."""
    searcher: object
    count_tokens: Callable[[str], int]
    k: int = 8
    mode: str = "hybrid"
    context_tokens: int = 4096
    answer_tokens: int = 384

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")

    def budget(self, prompt_without_passages: str) -> int:
        """Embedder tokens left for passages once the prompt and the answer are accounted for."""
        prompt = self.count_tokens(prompt_without_passages) * LLM_TOKENS_PER_EMBEDDER_TOKEN
        room = (self.context_tokens - self.answer_tokens - SAFETY_TOKENS - prompt) / LLM_TOKENS_PER_EMBEDDER_TOKEN
        if room < 32:
            raise ValueError(f"the prompt alone (~{int(prompt)} tokens) leaves no room for passages in a "
                             f"{self.context_tokens}-token context with {self.answer_tokens} answer tokens; "
                             "raise --n-ctx or lower --max-tokens, or use --no-retrieval")
        return int(room)

    def passages(self, question: str, prompt_without_passages: str) -> list[Source]:
        hits = self.searcher.search(question, None, mode=self.mode, top_k=self.k)
        if not hits:
            return []
        return select_evidence(hits, self.count_tokens, budget_tokens=self.budget(prompt_without_passages),
                               max_passages=self.k)


def _sources_extra(sources: Sequence[Source], own_doc: str | None = None) -> dict:
    extra = {"doc_ids": [s.doc_id for s in sources], "chunk_ids": [s.chunk_id for s in sources]}
    if own_doc is not None:
        extra["own_doc_retrieved"] = own_doc in extra["doc_ids"]
    return extra


def answer_with_extraction(generator: Generator, system: str, user: str, readable: Callable[[str], bool],
                           follow_up: str | None) -> tuple[str, dict]:
    """The model's output; when it names no answer and follow_up is given, a second turn asks for it.
    Returns (first output, or both joined by a newline; {"extracted": True} when the second turn ran)."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    raw = generator.generate(messages)
    if follow_up is None or readable(raw):
        return raw, {}
    second = generator.generate(messages + [{"role": "assistant", "content": raw},
                                            {"role": "user", "content": follow_up}])
    return f"{raw}\n{second}", {"extracted": True}


def mirage_answer_fn(generator: Generator, retriever: Retriever | None = None, style: str = "medrag",
                     extract: bool = True) -> mirage.AnswerFn:
    """answer_fn(question, options) for run_mirage: CoT without a retriever, MedRAG with one."""
    require_llm(generator)
    if style == "letter" and not hasattr(generator, "choose"):
        raise ValueError(f"generator {generator.name!r} cannot rank option letters (no choose()); "
                         "use --prompt medrag or answer-first")

    def answer(question: str, options: dict[str, str]) -> tuple[str, dict]:
        extra: dict = {"generator": generator.name, "style": style}
        snippets = None
        if retriever is not None:
            bare = "".join(mirage.build_prompt(question, options, snippets=[]))
            sources = retriever.passages(question, bare)  # the question only, never the options
            snippets = [(s.title, s.passage) for s in sources]
            extra |= _sources_extra(sources)
        if style == "letter":
            system, user = restyle(mirage.build_prompt(question, options, snippets), style, _MIRAGE_LETTER)
            label, logp = generator.choose([{"role": "system", "content": system},
                                            {"role": "user", "content": user}], sorted(options))
            return json.dumps({"answer_choice": label}), extra | {"letter_logprobs": logp}
        system, user = restyle(mirage.build_prompt(question, options, snippets), style, _MIRAGE_ANSWER_FIRST)
        raw, more = answer_with_extraction(generator, system, user, lambda t: parse_answer(t, options) is not None,
                                           EXTRACT_MIRAGE if extract else None)
        return raw, extra | more

    return answer


CONTENT_FREE = "N/A"


def letter_prior(generator: Generator, options: Mapping[str, str], retrieval: bool) -> dict[str, float]:
    """The model's log-probabilities for the option letters given a content-free question ("N/A", Zhao et al.
    2021, contextual calibration) in the same prompt: its bias towards a letter whatever the question says."""
    snippets = [] if retrieval else None
    system, user = restyle(mirage.build_prompt(CONTENT_FREE, options, snippets), "letter", _MIRAGE_LETTER)
    return generator.choose([{"role": "system", "content": system}, {"role": "user", "content": user}],
                            sorted(options))[1]


def calibrated_letter(logp: Mapping[str, float], prior: Mapping[str, float], letters: Sequence[str]) -> str | None:
    """argmax over the letters of log p(letter | question) - log p(letter | content-free): None unless both
    give every letter (then the uncalibrated choice stands)."""
    if not letters or any(k not in logp or k not in prior for k in letters):
        return None
    return max(sorted(letters), key=lambda k: logp[k] - prior[k])


def pubmedqa_answer_fn(generator: Generator, retriever: Retriever | None = None, style: str = "medrag",
                       own_docs: Mapping[str, str] | None = None, extract: bool = True) -> pubmedqa.AnswerFn:
    """answer_fn(question, context) for run_pubmedqa. With a retriever the context is retrieved from the
    question (run it with context_fn=None); without one the given context (oracle abstract or None) is used.
    own_docs maps a question to its abstract's doc id ("pubmed:<pmid>") to record whether retrieval found it."""
    require_llm(generator)

    def answer(question: str, context: str | None) -> tuple[str, dict]:
        extra: dict = {"generator": generator.name, "style": style}
        if retriever is not None:
            bare = "".join(pubmedqa.build_prompt(question, ""))
            sources = retriever.passages(question, bare)
            context = pubmedqa.retrieved_context([(s.title, s.passage) for s in sources]) if sources else None
            extra |= _sources_extra(sources, (own_docs or {}).get(question))
        system, user = restyle(pubmedqa.build_prompt(question, context), style, _PUBMEDQA_ANSWER_FIRST)
        raw, more = answer_with_extraction(generator, system, user,
                                           lambda t: pubmedqa.parse_yes_no_maybe(t) is not None,
                                           EXTRACT_PUBMEDQA if extract else None)
        return raw, extra | more

    return answer
