"""Answer generators behind one interface: `generate(messages) -> str` and `stream(messages) -> Iterator[str]`.

    LocalGenerator       a GGUF run in-process by llama.cpp (xllamacpp), with the model's own chat template
    OpenAIGenerator      any OpenAI-compatible chat endpoint (Azure AI Foundry, vLLM, Ollama, llama.cpp server)
    ExtractiveGenerator  no LLM: the passage sentences closest to the question, each cited [n]; deterministic

`get_generator(settings)` picks one from settings.generator.kind; when the local model is not installed it
falls back to the extractive generator (its `name` says so).
"""
from __future__ import annotations

import logging
import math
import queue
import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from assistant.errors import EndpointError, GeneratorError
from assistant.prompts import NOT_FOUND, Message, parse_answer_messages
from assistant.verify import cached_embed, content_stems, split_sentences
from carecite.models import ModelIntegrityError, ModelMissingError, draft_gguf_path, get_embedder, gguf_path
from carecite.settings import Settings
from carecite.textsafety import strip_instructions

log = logging.getLogger(__name__)


class Generator(Protocol):
    name: str  # model id for answers and the audit log, e.g. "local:qwen2.5-coder-1.5b"

    def generate(self, messages: Sequence[Message]) -> str: ...

    def stream(self, messages: Sequence[Message]) -> Iterator[str]: ...


# ---------------------------------------------------------------- local GGUF (llama.cpp via xllamacpp)

class SlotQueue:
    """First come, first served turns at the local model's one slot.

    llama.cpp runs one request at a time (n_parallel=1); callers queue here in arrival order, and
    `waiting()` says how many requests are in flight or queued, without blocking, so a caller can tell
    its user "queued, position n" before it blocks in `acquire()`."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._issued = 0  # tickets handed out
        self._served = 0  # tickets finished; ticket t runs when _served == t
        self._abandoned: set[int] = set()  # tickets whose caller was interrupted while queued

    def waiting(self) -> int:
        with self._cond:
            return self._issued - self._served - len(self._abandoned)

    def acquire(self) -> int:
        with self._cond:
            ticket = self._issued
            self._issued += 1
            try:
                while self._served != ticket:
                    self._cond.wait()
            except BaseException:  # interrupted while queued: give the turn up so the queue moves on
                self._abandon(ticket)
                raise
            return ticket

    def release(self) -> None:
        with self._cond:
            self._served += 1
            self._skip_abandoned()
            self._cond.notify_all()

    def _abandon(self, ticket: int) -> None:  # called with the lock held
        self._abandoned.add(ticket)
        self._skip_abandoned()
        self._cond.notify_all()

    def _skip_abandoned(self) -> None:
        while self._served in self._abandoned:
            self._abandoned.discard(self._served)
            self._served += 1


_servers: dict[tuple, object] = {}
_queues: dict[str, SlotQueue] = {}
_servers_lock = threading.Lock()


def _slot_queue(path: str) -> SlotQueue:
    """One FIFO per model file: every LocalGenerator on that file shares it (and the CPUs)."""
    with _servers_lock:
        return _queues.setdefault(path, SlotQueue())


def _server_params(path: str, n_ctx: int, n_threads: int, draft: str | None, draft_max: int):
    import xllamacpp as xlc
    p = xlc.CommonParams()
    p.model.path = path
    p.n_ctx = n_ctx
    p.n_parallel = 1
    p.cpuparams.n_threads = n_threads
    p.cpuparams_batch.n_threads = n_threads
    # The system prompt comes first and never changes: the slot keeps the previous prompt's KV cache and
    # the next request evaluates only what follows the common prefix (timings.cache_n counts the reused tokens).
    p.cache_prompt = True
    p.verbosity = -1
    p.warmup = False
    p.ui = False
    # xllamacpp also listens on 127.0.0.1; a random key keeps other local processes off it.
    p.api_keys = [secrets.token_hex(16)]
    if draft:
        p.speculative.types = [xlc.common_speculative_type.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE]
        p.speculative.draft.mparams.path = draft
        p.speculative.draft.n_max = draft_max
        p.speculative.draft.cpuparams.n_threads = n_threads
        p.speculative.draft.cpuparams_batch.n_threads = n_threads
    return p


def _llama_server(path: str, n_ctx: int, n_threads: int, draft: str | None = None, draft_max: int = 8):
    """One llama.cpp server per (model, context, threads, draft) in this process; loading is the slow part.

    A draft model that fails to load (corrupt, wrong tokenizer) is dropped with a warning: the server then
    decodes without it. Returns (server, draft actually in use)."""
    key = (path, n_ctx, n_threads, draft, draft_max)
    with _servers_lock:
        if key not in _servers:
            import xllamacpp as xlc
            used = draft
            try:
                server = xlc.Server(_server_params(path, n_ctx, n_threads, draft, draft_max))
            except RuntimeError as e:
                if not draft:
                    raise GeneratorError(f"llama.cpp could not load the local model {path}: {e}") from e
                log.warning("speculative decoding off: llama.cpp could not load the draft model %s with %s (%s); "
                            "decoding without a draft", draft, path, e)
                used = None
                try:
                    server = xlc.Server(_server_params(path, n_ctx, n_threads, None, draft_max))
                except RuntimeError as e2:
                    raise GeneratorError(f"llama.cpp could not load the local model {path}: {e2}") from e2
            _servers[key] = (server, used)
        return _servers[key]


def _llama_error(res: dict) -> str | None:
    err = res.get("error") if isinstance(res.get("error"), dict) else (res if "code" in res and "message" in res
                                                                         else None)
    if not err:
        return None
    msg = str(err.get("message", err))
    if err.get("type") == "exceed_context_size_error":
        msg += " (raise generator.n_ctx or lower answer.evidence_tokens)"
    return msg


def llama_stats(res: dict) -> dict | None:
    """Token counts and rates from a llama.cpp response (or a stream's last chunk); None when it has none.

    prompt_tokens: the whole prompt; cached_tokens: reused from the slot's KV cache (the shared prefix);
    prompt_eval_tokens: evaluated now, at prompt_tok_s; generated_tokens at gen_tok_s; with a draft model,
    draft_tokens proposed and draft_accepted by the main model."""
    t, u = res.get("timings"), res.get("usage")
    if not t and not u:
        return None
    t, u = t or {}, u or {}
    out = {"prompt_tokens": u.get("prompt_tokens"), "cached_tokens": t.get("cache_n"),
           "prompt_eval_tokens": t.get("prompt_n"), "prompt_ms": t.get("prompt_ms"),
           "prompt_tok_s": t.get("prompt_per_second"), "generated_tokens": u.get("completion_tokens",
                                                                                  t.get("predicted_n")),
           "gen_ms": t.get("predicted_ms"), "gen_tok_s": t.get("predicted_per_second")}
    if "draft_n" in t:
        out["draft_tokens"], out["draft_accepted"] = t.get("draft_n"), t.get("draft_n_accepted")
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}


class LocalGenerator:
    """A GGUF in-process through llama.cpp: one request at a time, in arrival order (`waiting()`), with the
    prompt prefix cached across requests and an optional speculative-decoding draft (generator.draft_model)."""

    DRAFT_MAX = 8  # draft tokens proposed per step

    def __init__(self, settings: Settings):
        g = settings.generator
        self.path = str(gguf_path(settings))  # ModelMissingError / ModelIntegrityError name the package
        self.name = f"local:{g.local_model}"
        self.n_ctx, self.n_threads = g.n_ctx, g.n_threads
        self.max_tokens, self.temperature = g.max_tokens, g.temperature
        try:
            draft = draft_gguf_path(settings)
        except (ModelMissingError, ModelIntegrityError) as e:
            log.warning("speculative decoding off: %s", e)
            draft = None
        self.draft: str | None = str(draft) if draft else None  # None once llama.cpp has refused it
        self._queue = _slot_queue(self.path)
        self._last = threading.local()

    def waiting(self) -> int:
        """Requests in flight or queued for the model (0: a new request starts at once). Never blocks."""
        return self._queue.waiting()

    def last_stats(self) -> dict | None:
        """llama_stats of this thread's last finished request (token counts, cache reuse, rates)."""
        return getattr(self._last, "stats", None)

    def _server(self):
        server, self.draft = _llama_server(self.path, self.n_ctx, self.n_threads, self.draft, self.DRAFT_MAX)
        return server

    def _request(self, messages: Sequence[Message], stream: bool) -> dict:
        req = {"messages": list(messages), "max_tokens": self.max_tokens, "temperature": self.temperature,
               "seed": 0, "stream": stream, "cache_prompt": True}
        if stream:
            req["stream_options"] = {"include_usage": True}
        return req

    def generate(self, messages: Sequence[Message]) -> str:
        self._last.stats = None
        self._queue.acquire()
        try:
            res = self._server().handle_chat_completions(self._request(messages, False))
        finally:
            self._queue.release()
        if (err := _llama_error(res)) is not None:
            raise GeneratorError(f"local model {self.name} failed: {err}")
        self._last.stats = llama_stats(res)
        return res["choices"][0]["message"].get("content") or ""

    def choose(self, messages: Sequence[Message], options: Sequence[str]) -> tuple[str, dict[str, float]]:
        """The option the model itself prefers: one token, constrained by a grammar to the option labels (greedy,
        so the most probable allowed label), with the log-probabilities llama.cpp reports for the labels."""
        req = {"messages": list(messages), "max_tokens": 1, "temperature": 0.0, "seed": 0, "stream": False,
               "cache_prompt": True, "grammar": choice_grammar(options), "logprobs": True, "top_logprobs": 20}
        self._last.stats = None
        self._queue.acquire()
        try:
            res = self._server().handle_chat_completions(req)
        finally:
            self._queue.release()
        if (err := _llama_error(res)) is not None:
            raise GeneratorError(f"local model {self.name} failed: {err}")
        self._last.stats = llama_stats(res)
        choice = res["choices"][0]
        text = (choice["message"].get("content") or "").strip()
        tops = ((choice.get("logprobs") or {}).get("content") or [{}])[0].get("top_logprobs") or []
        return _pick(text, options, {t.get("token", ""): t.get("logprob") for t in tops})

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        self._last.stats = None
        self._queue.acquire()  # on the first next(): a queued caller waits here, in arrival order
        try:
            server = self._server()
        except BaseException:
            self._queue.release()
            raise
        chunks: queue.Queue = queue.Queue()
        stop = threading.Event()
        done = object()

        def on_chunk(chunk) -> bool:  # returning True asks llama.cpp to stop generating
            chunks.put(chunk)
            return stop.is_set()

        def run() -> None:
            try:
                res = server.handle_chat_completions(self._request(messages, True), on_chunk)
                if isinstance(res, dict) and _llama_error(res) is not None:  # refused before streaming
                    chunks.put(res)
            except Exception as e:  # noqa: BLE001 - handed to the consumer
                chunks.put(e)
            finally:
                self._queue.release()  # the slot is free when llama.cpp returns, not when the consumer leaves
                chunks.put(done)

        threading.Thread(target=run, name="llama-stream", daemon=True).start()
        try:
            while (item := chunks.get()) is not done:
                if isinstance(item, Exception):
                    raise GeneratorError(f"local model {self.name} failed: {item}") from item
                if (err := _llama_error(item)) is not None:
                    raise GeneratorError(f"local model {self.name} failed: {err}")
                for choice in item.get("choices") or []:
                    if text := (choice.get("delta") or {}).get("content"):
                        yield text
                if (stats := llama_stats(item)) is not None:
                    self._last.stats = stats
        finally:
            stop.set()  # the consumer stopped early, or we are done: stop generating


# ---------------------------------------------------------------- OpenAI-compatible endpoint

class OpenAIGenerator:
    def __init__(self, settings: Settings):
        g = settings.generator
        if not g.base_url:
            raise GeneratorError("generator.kind=openai needs an endpoint: set CARECITE_GENERATOR__BASE_URL "
                                 "(e.g. http://127.0.0.1:8080/v1)")
        if not g.model:
            raise GeneratorError(f"generator.kind=openai needs a model name for {g.base_url}: "
                                 "set CARECITE_GENERATOR__MODEL")
        import openai
        self._openai = openai
        self.base_url, self.model = g.base_url, g.model
        self.name = f"openai:{g.model}@{g.base_url}"
        self.max_tokens, self.temperature = g.max_tokens, g.temperature
        # One try per call: an unreachable endpoint fails fast instead of retrying in a storm.
        self.client = openai.OpenAI(base_url=g.base_url, api_key=g.api_key or "none", timeout=g.timeout_s,
                                    max_retries=0)

    def _call(self, messages: Sequence[Message], stream: bool):
        try:
            return self.client.chat.completions.create(model=self.model, messages=list(messages), stream=stream,
                                                       max_tokens=self.max_tokens, temperature=self.temperature)
        except self._openai.APIError as e:
            raise self._error(e) from e

    def _error(self, e: Exception) -> EndpointError:
        if isinstance(e, self._openai.APITimeoutError):
            return EndpointError(f"the OpenAI-compatible endpoint at {self.base_url} timed out "
                                 f"(generator.timeout_s); no retry was made")
        if isinstance(e, self._openai.APIConnectionError):
            return EndpointError(f"cannot reach the OpenAI-compatible endpoint at {self.base_url}: {e}; "
                                 "check generator.base_url and that the server is running (no retry was made)")
        if isinstance(e, self._openai.APIStatusError):
            return EndpointError(f"the endpoint at {self.base_url} answered HTTP {e.status_code} for model "
                                 f"{self.model!r}: {e.message}")
        return EndpointError(f"the endpoint at {self.base_url} failed: {e}")

    def generate(self, messages: Sequence[Message]) -> str:
        res = self._call(messages, False)
        return (res.choices[0].message.content or "") if res.choices else ""

    def choose(self, messages: Sequence[Message], options: Sequence[str]) -> tuple[str, dict[str, float]]:
        """The option label the model ranks highest in its first token's log-probabilities (any OpenAI-compatible
        server that returns logprobs); the label it wrote when none of them is among the top 20."""
        try:
            res = self.client.chat.completions.create(model=self.model, messages=list(messages), max_tokens=1,
                                                      temperature=0.0, logprobs=True, top_logprobs=20)
        except self._openai.APIError as e:
            raise self._error(e) from e
        if not res.choices:
            return "", {}
        c = res.choices[0]
        tops = (c.logprobs.content[0].top_logprobs if c.logprobs and c.logprobs.content else []) or []
        return _pick((c.message.content or "").strip(), options, {t.token: t.logprob for t in tops})

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        chunks = self._call(messages, True)
        try:
            for chunk in chunks:
                for choice in chunk.choices or []:
                    if choice.delta and choice.delta.content:
                        yield choice.delta.content
        except self._openai.APIError as e:
            raise self._error(e) from e
        finally:
            chunks.close()


# ---------------------------------------------------------------- extractive (no LLM)

LEXICAL_WEIGHT = 0.3


MAX_QUOTE_WORDS = 50
# A "resources" section flattened into one line: "These resources address ...", "MedlinePlus Encyclopedia: X
# Genetic Testing Registry: Y" (seen quoted as an answer to a real question about another condition).
_RESOURCE_LIST = re.compile(r"^These resources\b|(?:[A-Z][\w-]*(?: [\w-]+){0,5}: [A-Z][^:]*){2,}")
_NOT_PROSE = re.compile(r"https?://|www\.|\(source:|\bet al\b|\b[A-Z][a-z]+, [A-Z]\. ?[A-Z]?\.?,|\(\d{4}[a-z]?\)\s*$")


def choice_grammar(options: Sequence[str]) -> str:
    """A GBNF grammar that lets the model write exactly one of the option labels."""
    if not options or any(not re.fullmatch(r"[A-Za-z0-9]+", o) for o in options):
        raise ValueError(f"option labels must be letters or digits, got {list(options)}")
    return "root ::= " + " | ".join(f'"{o}"' for o in options)


def _pick(text: str, options: Sequence[str], top: dict[str, float | None]) -> tuple[str, dict[str, float]]:
    """(chosen label, {label: log-probability} for the labels among the top tokens, leading spaces ignored)."""
    logp: dict[str, float] = {}
    for tok, lp in top.items():
        t = tok.strip()
        if t in options and lp is not None and lp > logp.get(t, float("-inf")):
            logp[t] = float(lp)
    if logp:
        return max(logp, key=logp.get), logp
    return (text if text in options else ""), logp


def quotable(sentence: str, min_words: int = 5) -> bool:
    """A sentence fit to quote as an answer: prose of reasonable length, not a question or lead-in, not a
    flattened table row, reference-list entry or web address."""
    n = len(sentence.split())
    return (min_words <= n <= MAX_QUOTE_WORDS and not sentence.endswith(("?", ":"))
            and not _NOT_PROSE.search(sentence) and not _RESOURCE_LIST.search(sentence))


class ExtractiveGenerator:
    """The passage sentences most similar to the question, best first, each followed by its [n].

    Deterministic; answers only CareCite answer prompts (prompts.answer_messages), replying NOT_FOUND when no
    sentence reaches `min_score` (cosine to the question plus a small bonus for shared content words)."""

    name = "extractive"

    def __init__(self, embedder, max_sentences: int = 4, min_score: float = 0.45, min_words: int = 5):
        self.embed = cached_embed(embedder)
        self.max_sentences, self.min_score, self.min_words = max_sentences, min_score, min_words

    def select(self, question: str, passages: Sequence[str]) -> list[tuple[str, int, float]]:
        """(sentence, passage number, score) chosen for the answer, best first.

        score = cosine(question, sentence) + LEXICAL_WEIGHT * the IDF-weighted share of the question's content
        words in the sentence (IDF over the candidate sentences: words every passage repeats, like the disease
        name, count little; the asked-about word, like "diagnosed", counts a lot)."""
        cands = [(s, n) for n, p in enumerate(passages, 1) for s in split_sentences(strip_instructions(p)[0])
                 if quotable(s, self.min_words)]  # never quote orders
        if not cands:
            return []
        vecs = self.embed([question] + [s for s, _ in cands])
        sims = vecs[1:] @ vecs[0]
        q_stems = content_stems(question)
        c_stems = [content_stems(s) for s, _ in cands]
        idf = {t: math.log(1 + len(cands) / (1 + sum(t in cs for cs in c_stems))) for t in q_stems}
        total = sum(idf.values()) or 1.0
        scores = [float(sim) + LEXICAL_WEIGHT * sum(idf[t] for t in q_stems & cs) / total
                  for sim, cs in zip(sims, c_stems)]
        chosen: list[tuple[str, int, float]] = []
        seen: list[set[str]] = []
        for i in np.argsort(-np.array(scores), kind="stable"):
            s, n = cands[i]
            if scores[i] < self.min_score or len(chosen) >= self.max_sentences:
                break
            words = set(s.lower().split())
            if any(len(words & w) / len(words | w) >= 0.6 for w in seen):  # near-duplicate sentence
                continue
            seen.append(words)
            chosen.append((s, n, scores[i]))
        return chosen

    def generate(self, messages: Sequence[Message]) -> str:
        try:
            question, passages = parse_answer_messages(messages)
        except ValueError as e:
            raise GeneratorError(f"the extractive generator only answers CareCite answer prompts: {e}") from e
        chosen = self.select(question, passages)
        if not chosen:
            return NOT_FOUND
        return " ".join(f"{s.rstrip('.!').rstrip()} [{n}]{s[-1] if s[-1] in '.!' else '.'}" for s, n, _ in chosen)

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        text = self.generate(messages)
        parts = text.split(" ")
        for i, word in enumerate(parts):
            yield word if i == len(parts) - 1 else word + " "


# ---------------------------------------------------------------- factory

def get_generator(settings: Settings, kind: str | None = None) -> Generator:
    """The configured generator; kind overrides settings.generator.kind (local | openai | extractive)."""
    kind = kind or settings.generator.kind
    if kind == "local":
        try:
            return LocalGenerator(settings)
        except ModelMissingError as e:
            log.warning("local model unavailable (%s); answering with the extractive generator", e)
            gen = ExtractiveGenerator(get_embedder(settings))
            gen.name = "extractive (fallback: local model not installed)"
            return gen
    if kind == "openai":
        return OpenAIGenerator(settings)
    if kind == "extractive":
        return ExtractiveGenerator(get_embedder(settings))
    raise GeneratorError(f"unknown generator kind {kind!r}; choose local, openai or extractive")
