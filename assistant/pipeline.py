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
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from assistant.audit import AuditLog
from assistant.condense import check_history, condense
from assistant.errors import QuestionError
from assistant.evidence import missing_terms, select_evidence
from assistant.generators import ExtractiveGenerator, Generator, get_generator
from assistant.prompts import NOT_FOUND, answer_messages, says_not_found
from assistant.types import Answer, Source
from assistant.verify import Verifier
from carecite.models import get_embedder, get_reranker, model_ids
from carecite.settings import Settings
from indexes.types import Filters, Hit

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

    # -- lifecycle
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
        llm = None if isinstance(self.generator, ExtractiveGenerator) else self.generator
        query = condense(question, history, llm)
        t = lap("condense", t)

        hits = self.searcher.search(query, flt, mode=s.retrieval.mode, top_k=s.retrieval.top_k)
        best_cosine = self._best_cosine(query, flt, hits)
        t = lap("retrieve", t)
        if self.reranker is not None and hits:
            scores = self.reranker.predict([(query, h.chunk.text) for h in hits])
            order = sorted(range(len(hits)), key=lambda i: -float(scores[i]))
            hits = [dataclasses.replace(hits[i], score=float(scores[i]), rank=r + 1) for r, i in enumerate(order)]
            t = lap("rerank", t)

        sources = select_evidence(hits, self.embedder.count_tokens, budget_tokens=self._budget(),
                                  max_passages=s.answer.max_passages)
        t = lap("evidence", t)
        yield {"type": "sources", "sources": sources}

        answer = Answer(question=question, answer="", sentences=[], sources=sources, abstained=False,
                        timings=timings, models=self._models(), index_version=self._index_version(),
                        filters=flt.to_dict(), standalone_query=query, answer_id=uuid.uuid4().hex)
        gap = self._retrieval_gap(query, sources, best_cosine)
        if gap:
            self._abstain(answer, gap)
            yield {"type": "token", "text": answer.answer}
        else:
            draft_parts: list[str] = []
            messages = answer_messages(query, [(src.passage, src.title, src.source) for src in sources])
            for piece in self.generator.stream(messages):
                if not draft_parts:
                    timings["first_token"] = round(time.perf_counter() - t0, 4)
                draft_parts.append(piece)
                yield {"type": "token", "text": piece}
            t = lap("generate", t)
            self._verify(answer, "".join(draft_parts))
            t = lap("verify", t)
        timings["total"] = round(time.perf_counter() - t0, 4)
        self._audit(answer, hits)
        yield {"type": "answer", "answer": answer}

    def _best_cosine(self, query: str, flt: Filters, hits: list[Hit]) -> float:
        """Dense cosine of the closest passage: the retrieval-confidence signal (RRF scores are rank-based)."""
        if self.settings.retrieval.mode == "dense":
            return hits[0].score if hits else 0.0
        dense = self.searcher.search(query, flt, mode="dense", top_k=1)
        return dense[0].score if dense else 0.0

    def _retrieval_gap(self, query: str, sources: list[Source], best_cosine: float) -> str:
        """Why the evidence cannot answer the query ("" when it may)."""
        if not sources:
            return "no passage retrieved"
        if best_cosine < self.settings.answer.min_retrieval_score:
            return (f"retrieval too weak: best passage similarity {best_cosine:.2f} < "
                    f"{self.settings.answer.min_retrieval_score:.2f}")
        missing = missing_terms(query, [f"{src.title} {src.section} {src.passage}" for src in sources],
                                self.embedder.tokenize)
        return f"the passages never mention {', '.join(missing)}" if missing else ""

    def _budget(self) -> int:
        s = self.settings
        if isinstance(self.generator, ExtractiveGenerator) or s.generator.kind == "openai":
            return s.answer.evidence_tokens
        room = (s.generator.n_ctx - s.generator.max_tokens - PROMPT_OVERHEAD_TOKENS) / LLM_TOKENS_PER_EMBEDDER_TOKEN
        return max(64, min(s.answer.evidence_tokens, int(room)))

    def _verify(self, answer: Answer, draft: str) -> None:
        """Verdicts per sentence, then keep, trim or abstain."""
        s = self.settings.answer
        # The passage as the generator saw it, with its title and section: a title counts as support.
        verdicts = self.verifier.verify(draft, [f"{src.title} — {src.section}\n{src.passage}"
                                                for src in answer.sources])
        answer.sentences = verdicts
        claims = [v for v in verdicts if v.claim]
        unsupported = [v for v in claims if not v.supported]
        if not claims:
            self._abstain(answer, "the model found no answer in the passages" if says_not_found(draft)
                          else "the draft states nothing checkable")
        elif len(unsupported) / len(claims) > s.abstain_unsupported_fraction:
            self._abstain(answer, f"{len(unsupported)} of {len(claims)} sentences failed verification")
        else:
            kept = [v for v in verdicts if (v.supported or not s.drop_unsupported)
                    and not (not v.claim and NOT_FOUND in v.text)]  # a stray "not found" after an answer
            answer.answer = " ".join(v.text for v in kept)

    def _abstain(self, answer: Answer, reason: str) -> None:
        answer.abstained, answer.abstain_reason = True, reason
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

