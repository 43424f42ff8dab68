"""The answer pipeline and its facade, `Assistant`.

question (+ history) -> condense -> hybrid retrieval (+ filters) -> [rerank] -> evidence within a token budget
-> generate (streamed) -> parse + verify citations -> Answer (-> audit log).

    with Assistant(settings) as a:
        answer = a.ask("How is type 2 diabetes diagnosed?", filters=["doc_type=guideline"])
        for event in a.stream("What about its treatment?", history=[...]):
            ...

`stream` yields dicts, in this order:
    {"type": "sources", "sources": [Source, ...]}   once, the numbered passages the answer may cite
    {"type": "token", "text": str}                  the draft as it is generated (many)
    {"type": "answer", "answer": Answer}            once, last: the verified answer
The final `answer.answer` is the authoritative text: unsupported sentences may be removed
(answer.drop_unsupported) or the whole draft replaced by "Not found in the indexed sources." (abstention),
so a UI should re-render from it. `answer.abstained` says "not found in the indexed sources"; the closest
passages are still in `answer.sources`.

Errors: bad input raises at the call, before any event: QuestionError (empty, too long or non-string
question, malformed history), indexes.types.FilterError (unknown filter or bad value). A misconfigured
generator raises GeneratorError when the Assistant is built; an unreachable or failing endpoint raises
EndpointError (naming the URL, no retries) while streaming, after the "sources" event.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from assistant.audit import AuditLog
from assistant.condense import check_history, condense
from assistant.errors import AssistantError, QuestionError
from assistant.evidence import select_evidence
from assistant.generators import ExtractiveGenerator, Generator, get_generator
from assistant.prompts import NOT_FOUND, answer_messages, says_not_found
from assistant.question import (SAFETY_LINE, URGENT_WORDS, about_cases, emergency_kind, focus_text, question_parts,
                                unknown_terms)
from assistant.types import Answer, Source
from assistant.verify import REMOVED_INSTRUCTION, Verifier, split_sentences
from carecite.models import get_embedder, get_reranker, model_ids
from carecite.settings import Settings
from indexes.types import DOC_TYPES, Filters, Hit

log = logging.getLogger(__name__)
_UNSET = object()


@dataclasses.dataclass
class Reading:
    """A question as searched (no lexicon: as written)."""
    text: str
    corrections: list
    expansions: dict


def _interleave(lists: Sequence[list[Hit]]) -> list[Hit]:
    """Hits of several searches merged rank by rank (one per chunk), renumbered."""
    out: dict[str, Hit] = {}
    for rank in range(max((len(x) for x in lists), default=0)):
        for hits in lists:
            if rank < len(hits) and hits[rank].chunk.id not in out:
                out[hits[rank].chunk.id] = hits[rank]
    return [dataclasses.replace(h, rank=i + 1) for i, h in enumerate(out.values())]


def _unique(items: list[dict]) -> list[dict]:
    """Dicts in order, each once ("dissease" corrected twice in one message is shown once)."""
    seen: set = set()
    return [d for d in items if not (key := tuple(sorted(d.items()))) in seen and not seen.add(key)]


def _words(text: str) -> Iterator[str]:
    parts = text.split(" ")
    for i, word in enumerate(parts):
        yield word if i == len(parts) - 1 else word + " "

Event = dict[str, Any]
PROMPT_OVERHEAD_TOKENS = 350  # system prompt, tags and question, in LLM tokens
LLM_TOKENS_PER_EMBEDDER_TOKEN = 1.25  # the budget is counted with the embedder's tokenizer


def check_question(question: Any, max_chars: int) -> str:
    if not isinstance(question, str):
        raise QuestionError(f"the question must be text, got {type(question).__name__}")
    q = " ".join(question.split())
    if not q:
        raise QuestionError("the question is empty")
    if len(q) > max_chars:
        raise QuestionError(f"the question is {len(q)} characters; the limit is {max_chars} "
                            "(answer.max_question_chars): ask something shorter")
    return q


class Assistant:
    """Grounded answers with verified citations over the configured index (see the module docstring)."""

    def __init__(self, settings: Settings, searcher=None, generator: Generator | None = None,
                 audit: AuditLog | None = None):
        from carecite.runtime import open_searcher  # the runtime wires settings to the index
        self.settings = settings
        self._owns_index = searcher is None
        self.searcher = searcher if searcher is not None else open_searcher(settings)
        self.embedder = get_embedder(settings)
        self.generator = generator if generator is not None else get_generator(settings)
        self.reranker = get_reranker(settings)
        self.verifier = Verifier.from_embedder(self.embedder, settings.answer.support_threshold,
                                               repair=settings.answer.repair_citations)
        self.audit = audit if audit is not None else AuditLog.from_settings(settings)
        # The quick answer: the verified source sentences closest to the question, shown before the LLM's.
        self.quoter = self.generator if isinstance(self.generator, ExtractiveGenerator) \
            else ExtractiveGenerator(self.embedder)
        self.work_lock = threading.RLock()  # CPU stages run one at a time; the LLM has its own queue
        self.include_cases = False  # True: case notes are evidence for every question (a case-scoped assistant)
        self._lexicon = _UNSET

    # -- lifecycle
    def warm(self, background: bool = True) -> threading.Thread | None:
        """Load what the first question would otherwise wait for: the lexicon and its spelling index (about 2 s
        on the default corpus) and the embedder's first batch. The app and the API call it at start."""
        def run() -> None:
            with self.work_lock:
                lex = self.lexicon
                if lex is not None:
                    lex.warm()
                self.embedder.embed(["warm up"])
        if not background:
            run()
            return None
        t = threading.Thread(target=run, name="carecite-warm", daemon=True)
        t.start()
        return t

    def close(self) -> None:
        if self._owns_index:
            self.searcher.index.close()

    def __enter__(self) -> "Assistant":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- public API
    def ask(self, question: str, history: Sequence[dict] | None = None,
            filters: Filters | list[str] | dict | None = None) -> Answer:
        """The verified answer (the last event of `stream`)."""
        answer = None
        for event in self.stream(question, history, filters):
            if event["type"] == "answer":
                answer = event["answer"]
        assert answer is not None
        return answer

    def stream(self, question: str, history: Sequence[dict] | None = None,
               filters: Filters | list[str] | dict | None = None) -> Iterator[Event]:
        """Events for one answer (see the module docstring); input is checked before this returns."""
        t0 = time.perf_counter()
        q = check_question(question, self.settings.answer.max_question_chars)
        hist = check_history(history)
        flt = filters if isinstance(filters, Filters) else Filters.parse(filters)
        return self._run(q, hist, flt, t0)

    def record_feedback(self, answer_id: str, rating: int, kind: str = "", comment: str = "") -> dict:
        """Attach a rating (-1, 0, 1), a kind (e.g. "wrong", "unsupported") and a comment to an earlier answer."""
        return self.audit.record_feedback(answer_id, rating, kind, comment)

    # -- stages
    def _run(self, question: str, history: list[dict], flt: Filters, t0: float) -> Iterator[Event]:
        s = self.settings
        timings: dict[str, float] = {}

        def lap(stage: str, since: float) -> float:
            now = time.perf_counter()
            timings[stage] = round(now - since, 4)
            return now

        t = time.perf_counter()
        with self.work_lock:  # retrieval, evidence and the quick answer: CPU work, one answer at a time
            query = condense(question, history, self._llm)
            reading = self._read(query)
            parts = question_parts(reading.text)
            scope = self._scope(flt, question)
            t = lap("condense", t)

            part_hits = [self.searcher.search(p, scope, mode=s.retrieval.mode, top_k=s.retrieval.top_k)
                         for p in parts]
            if not any(part_hits) and (wide := self._scope(flt, question, cases=True)) != scope:
                scope = wide  # nothing but case notes here: they are the evidence
                part_hits = [self.searcher.search(p, scope, mode=s.retrieval.mode, top_k=s.retrieval.top_k)
                             for p in parts]
            if len(parts) > 1 and not any(part_hits):
                part_hits = [self.searcher.search(reading.text, scope, mode=s.retrieval.mode, top_k=s.retrieval.top_k)]
            hits = _interleave(part_hits)
            best = [self._best_cosine(p, scope, h) for p, h in zip(parts, part_hits)]
            t = lap("retrieve", t)
            if self.reranker is not None and hits:
                scores = self.reranker.predict([(reading.text, h.chunk.text) for h in hits])
                order = sorted(range(len(hits)), key=lambda i: -float(scores[i]))
                hits = [dataclasses.replace(hits[i], score=float(scores[i]), rank=r + 1) for r, i in enumerate(order)]
                t = lap("rerank", t)

            sources = select_evidence(hits, self.embedder.count_tokens, budget_tokens=self._budget(),
                                      max_passages=s.answer.max_passages)
            if self._llm is not None and s.answer.llm_evidence_tokens:
                sources = self._focus(sources, reading.text, s.answer.llm_evidence_tokens)
            t = lap("evidence", t)
        yield {"type": "sources", "sources": sources}

        answer = Answer(question=question, answer="", sentences=[], sources=sources, abstained=False,
                        timings=timings, models=self._models(), index_version=self._index_version(),
                        filters=flt.to_dict(), standalone_query=reading.text, answer_id=uuid.uuid4().hex,
                        corrections=_unique([c if isinstance(c, dict) else dataclasses.asdict(c)
                                             for c in reading.corrections]))
        answer.parts = [{"question": p, "covered": not gap, "reason": gap}
                        for p, gap in zip(parts, (self._retrieval_gap(p, sources, b) for p, b in zip(parts, best)))]
        self._set_notice(answer)
        covered = [p["question"] for p in answer.parts if p["covered"]]
        if not covered:
            self._abstain(answer, "; ".join(dict.fromkeys(p["reason"] for p in answer.parts)))
            yield {"type": "token", "text": answer.answer}
        else:
            with self.work_lock:
                quick = self._quick(answer, covered, reading)
                t = lap("quick", t)
            if quick is not None:
                timings["first_text"] = round(time.perf_counter() - t0, 4)
                yield {"type": "quick", "answer": dataclasses.replace(quick, answer=self._compose(quick))}
            if self._llm is None:
                final = quick
                if final is not None:
                    for piece in _words(self._compose(final)):
                        yield {"type": "token", "text": piece}
            else:
                final = yield from self._synthesise(answer, reading, quick, t0)
                t = lap("generate", t)
            if final is None:
                self._abstain(answer, answer.abstain_reason or "no sentence of the passages answers the question")
                if self._llm is None:
                    yield {"type": "token", "text": answer.answer}
            else:
                answer = final
        answer.answer = self._compose(answer)
        timings["total"] = round(time.perf_counter() - t0, 4)
        answer.timings = timings
        self._audit(answer, hits)
        yield {"type": "answer", "answer": answer}

    @property
    def _llm(self) -> Generator | None:
        return None if isinstance(self.generator, ExtractiveGenerator) else self.generator

    def _read(self, query: str):
        """The question as searched: spelling corrected against the index, brand names and acronyms resolved."""
        lex = self.lexicon
        if lex is None:
            return Reading(query, [], {})
        return lex.read(query)

    @property
    def lexicon(self):
        """The index's lexicon (spelling, brand/generic, acronyms), built at ingest; None when there is none."""
        if self._lexicon is _UNSET:
            try:
                from carecite.lexicon import load_lexicon
            except ImportError:
                self._lexicon = None
            else:
                self._lexicon = load_lexicon(self.settings)
        return self._lexicon

    def _scope(self, flt: Filters, question: str, cases: bool | None = None) -> Filters:
        """Case notes are evidence only for questions about cases (or when the filters ask for them); patient
        records only when the filters name them (a patient-scoped assistant, assistant/patients.py)."""
        if flt.doc_type or flt.doc_id or flt.patient_id:
            return flt
        cases = (self.include_cases or about_cases(question)) if cases is None else cases
        private = ("patient",) if cases else ("case", "patient")
        return dataclasses.replace(flt, doc_type=[t for t in DOC_TYPES if t not in private])

    def _aliases(self, reading) -> dict[str, list[str]]:
        return {k.lower(): list(v) for k, v in reading.expansions.items()}

    def _quick(self, answer: Answer, parts: list[str], reading) -> Answer | None:
        """The verified source sentences closest to each covered part, cited: shown while the LLM writes."""
        quoter = self.quoter
        passages = [src.passage for src in answer.sources]
        chosen: list[tuple[str, int]] = []
        per_part = max(2, quoter.max_sentences // len(parts))
        for p in parts:
            for sent, n, _ in quoter.select(p, passages)[:per_part]:
                if all(sent != c for c, _ in chosen):
                    chosen.append((sent, n))
        if not chosen:
            return None
        text = " ".join(f"{s.rstrip('.!').rstrip()} [{n}]{s[-1] if s[-1] in '.!' else '.'}" for s, n in chosen)
        quick = dataclasses.replace(answer, answer_id=answer.answer_id, kind="quotes", sentences=[],
                                    parts=[dict(p) for p in answer.parts])
        if self._verify(quick, text, reading) and quick.sentences:
            return quick
        return None

    def _synthesise(self, answer: Answer, reading, quick: Answer | None, t0: float):
        """Stream the LLM's draft, verify it; fall back to the quick answer when it fails or says nothing."""
        waiting = getattr(self.generator, "waiting", None)
        if callable(waiting) and (ahead := waiting()) > 0:
            yield {"type": "queued", "position": ahead + 1}
        question = reading.text if len(answer.parts) < 2 else "\n".join(
            f"{i}. {p['question']}" for i, p in enumerate(answer.parts, 1) if p["covered"])
        messages = answer_messages(question, [(src.passage, src.title, src.source) for src in answer.sources])
        draft_parts: list[str] = []
        try:
            for piece in self.generator.stream(messages):
                if not draft_parts:
                    answer.timings["first_token"] = round(time.perf_counter() - t0, 4)
                draft_parts.append(piece)
                yield {"type": "token", "text": piece}
        except AssistantError as e:
            if quick is None:
                raise
            log.warning("generator failed (%s); keeping the quick answer", e)
            quick.note = f"The model's answer failed ({e}); showing verified quotes from the sources."
            return quick
        with self.work_lock:
            ok = self._verify(answer, "".join(draft_parts), reading)
        if ok:
            return answer
        if quick is not None:
            quick.note = f"The model's answer was not used ({answer.abstain_reason}); showing verified quotes " \
                         "from the sources."
            return quick
        return None

    def _focus(self, sources: list[Source], question: str, budget: int) -> list[Source]:
        """Each passage cut to its sentences closest to the question (cosine, best first overall) within `budget`
        tokens, in their own order, gaps shown as " … "; passages left empty are dropped and the rest renumbered.
        The LLM reads less (prefill is most of its latency on a CPU) and every kept sentence is verbatim."""
        sents = [split_sentences(src.passage) for src in sources]
        flat = [(i, j, x) for i, ss in enumerate(sents) for j, x in enumerate(ss)]
        if not flat:
            return sources
        vecs = self.quoter.embed([question] + [x for _, _, x in flat])
        sims = vecs[1:] @ vecs[0]
        keep: set[tuple[int, int]] = set()
        used = 0
        for k in np.argsort(-sims, kind="stable"):
            i, j, x = flat[k]
            n = self.embedder.count_tokens(x)
            if used + n <= budget:
                keep.add((i, j))
                used += n
        out: list[Source] = []
        for i, src in enumerate(sources):
            parts, last = [], None
            for j, x in enumerate(sents[i]):
                if (i, j) in keep:
                    parts.append(x if last is None or j == last + 1 else f"… {x}")
                    last = j
            if parts:
                text = " ".join(parts) + (" …" if last != len(sents[i]) - 1 else "")
                out.append(dataclasses.replace(src, n=len(out) + 1, passage=("… " if (i, 0) not in keep else "")
                                               + text))
        return out

    def _best_cosine(self, query: str, flt: Filters, hits: list[Hit]) -> float:
        """Dense cosine of the closest passage: the retrieval-confidence signal (RRF scores are rank-based).
        A long message is also measured by its asking sentences alone: the story around them dilutes it."""
        best = hits[0].score if hits and self.settings.retrieval.mode == "dense" else \
            max((h.score for h in self.searcher.search(query, flt, mode="dense", top_k=1)), default=0.0)
        focus = focus_text(query)
        if focus != query:
            best = max(best, max((h.score for h in self.searcher.search(focus, flt, mode="dense", top_k=1)),
                                 default=0.0))
        return best

    def _retrieval_gap(self, query: str, sources: list[Source], best_cosine: float) -> str:
        """Why the evidence cannot answer the query ("" when it may)."""
        if not sources:
            return "no passage retrieved"
        if best_cosine < self.settings.answer.min_retrieval_score:
            return (f"retrieval too weak: best passage similarity {best_cosine:.2f} < "
                    f"{self.settings.answer.min_retrieval_score:.2f}")
        missing = unknown_terms(query, [f"{src.title} {src.section} {src.passage}" for src in sources],
                                self.embedder.tokenize, self.lexicon)
        return f"the indexed sources never mention {', '.join(missing)}" if missing else ""

    def _budget(self) -> int:
        s = self.settings
        if isinstance(self.generator, ExtractiveGenerator) or s.generator.kind == "openai":
            return s.answer.evidence_tokens
        room = (s.generator.n_ctx - s.generator.max_tokens - PROMPT_OVERHEAD_TOKENS) / LLM_TOKENS_PER_EMBEDDER_TOKEN
        return max(64, min(s.answer.evidence_tokens, int(room)))

    def _verify(self, answer: Answer, draft: str, reading) -> bool:
        """Verdicts per sentence, then keep or trim (True), or record why not (False, abstain_reason set)."""
        s = self.settings.answer
        # The passage as the generator saw it, with its title and section: a title counts as support.
        verdicts = self.verifier.verify(draft, [f"{src.title} — {src.section}\n{src.passage}"
                                                for src in answer.sources], self._aliases(reading))
        answer.sentences = verdicts
        claims = [v for v in verdicts if v.claim]
        unsupported = [v for v in claims if not v.supported]
        if not claims:
            answer.abstain_reason = ("the model found no answer in the passages" if says_not_found(draft)
                                     else "the draft states nothing checkable")
            return False
        if len(unsupported) / len(claims) > s.abstain_unsupported_fraction:
            answer.abstain_reason = f"{len(unsupported)} of {len(claims)} sentences failed verification"
            return False
        kept = [v for v in verdicts if (v.supported or not s.drop_unsupported or v.text == REMOVED_INSTRUCTION)
                and not (not v.claim and NOT_FOUND in v.text)]  # a stray "not found" after an answer
        answer.answer = " ".join(v.text for v in kept)
        withheld = sum(1 for v in unsupported if v not in kept)  # (a bare yes/no is no claim: dropped unsaid)
        if withheld:  # said, never silent: the verdicts (and the audit log) keep the withheld text
            what = f"{withheld} sentences of the draft were" if withheld > 1 else "1 sentence of the draft was"
            answer.note = _join_notes(answer.note, f"{what} withheld: the cited passages do not support "
                                                   f"{'them' if withheld > 1 else 'it'}.")
        return True

    def _set_notice(self, answer: Answer) -> None:
        """Urgent-care advice first for emergencies: the evidence's own sentence, else a fixed safety line."""
        if emergency_kind(answer.question):
            own = self._urgent_quote(answer)
            answer.notice, answer.notice_from_sources = (own, True) if own else (SAFETY_LINE, False)

    def _compose(self, answer: Answer) -> str:
        """What plain-text clients (the OpenAI API, the CLI, the clipboard) show, in reading order: urgent advice,
        the words read differently, the answer, and the parts the sources do not cover."""
        uncovered = [p["question"] for p in answer.parts if not p["covered"]]
        gaps = ("The indexed sources do not cover: " + "; ".join(f"\u201c{q}\u201d" for q in uncovered) + ".") \
            if uncovered and not answer.abstained else ""
        read = "; ".join(f"\u201c{c['original']}\u201d as \u201c{c['replacement']}\u201d" for c in answer.corrections)
        notice = (f"\u26a0 {answer.notice}" + ("" if answer.notice_from_sources else
                                               " (Safety notice: not from the indexed sources.)")) if answer.notice else ""
        return " ".join(x for x in (notice, f"(Read {read}.)" if read else "", answer.answer, answer.note, gaps) if x)

    def _urgent_quote(self, answer: Answer) -> str:
        """A source sentence of the evidence that tells the reader to seek urgent care, cited ("" if none)."""
        for src in answer.sources:
            for sent in split_sentences(src.passage):
                if URGENT_WORDS.search(sent) and len(sent.split()) >= 5:
                    return f"{sent.rstrip('.!').rstrip()} [{src.n}]."
        return ""

    def _abstain(self, answer: Answer, reason: str) -> None:
        answer.abstained, answer.abstain_reason = True, reason
        answer.sentences = []
        answer.answer = f"{NOT_FOUND} The closest passages are listed below." if answer.sources else NOT_FOUND

    def _models(self) -> dict[str, str]:
        ids = model_ids(self.settings)
        ids["generator"] = self.generator.name
        ids["verifier"] = f"{self.settings.embedder.model} cosine + key terms (threshold " \
                          f"{self.verifier.threshold:.2f})"
        return ids

    def _index_version(self) -> str:
        return str(self.searcher.index.get_meta().get("version", ""))

    def _audit(self, answer: Answer, hits: list[Hit]) -> None:
        self.audit.record_answer(answer, [(h.chunk.id, h.chunk.doc_id, h.score) for h in hits])


def _join_notes(*notes: str) -> str:
    return " ".join(n for n in notes if n)
