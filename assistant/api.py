"""OpenAI-compatible HTTP API (`carecite serve`): answers with citations, search and health.

Endpoints
  POST /v1/chat/completions  OpenAI chat completions, plain or streamed (SSE `data: {...}` chunks, then
                             `data: [DONE]`); the official openai client works unchanged. The last user
                             message is the question, earlier user/assistant turns are the history (follow-ups).
                             model, temperature, max_tokens, ... are accepted and ignored: the server's settings
                             choose the generator.
  POST /v1/search            {"query", "filters", "mode": hybrid|dense|sparse, "top_k": 1..100}
                             -> {"query", "filters", "hits": [{rank, score, chunk_id, doc_id, source, doc_type,
                             title, section, url, specialty, text}]}
  GET  /v1/models            the one model id, "carecite"
  GET  /healthz              {"status": "ok", "index": {"chunks", "version"}, "models"}; never needs the token

The extension field "carecite" (on the response, and on the last stream chunk, the one with finish_reason
"stop") is Answer.to_json():
  {"answer_id", "question", "answer",                      # answer: the verified text
   "sentences": [{"text", "citations": [n], "supported", "score", "reason", "claim"}],
   "citations": [{"n", "doc_id", "chunk_id", "source", "title", "section", "url", "passage", "score",
                  "doc_type", "cited", "supported"}],
   "abstained", "abstain_reason", "timings", "models", "index_version", "filters", "standalone_query"}
plus, when streamed, "revised": true when verification changed the streamed draft (sentences dropped, or an
abstention): a client should then show carecite.answer rather than the concatenated deltas. Earlier chunks of a
stream may carry {"carecite": {"quick": {...}}} (the quick answer: verified quotes from the sources, Answer.to_json()
with kind "quotes", sent as soon as retrieval ends) and {"carecite": {"queued": {"position": n}}} (the local model
is busy; the full answer follows); their deltas are empty, so plain OpenAI clients see a normal stream.
Request options ride in the same field: {"carecite": {"filters": ["doc_type=guideline", "source=..."]}} or
{"carecite": {"filters": {"doc_type": ["case"]}}} (keys as `carecite search --filter`); with the openai client,
extra_body={"carecite": {...}}.

Auth: with a token (settings.server.api_token / --token) every /v1 route needs "Authorization: Bearer <token>";
serve() refuses to bind beyond loopback without one (check_bind).

Every error is JSON, {"error": {"message", "type", "code", "param"}}, the shape OpenAI clients parse:
bad JSON, a missing or wrong field, an unknown filter, a bad question -> 400; missing/wrong token -> 401;
unknown route 404, wrong method 405; body over settings.server.max_body_bytes -> 413; a failing generator
-> 502 (an error event once a stream has started).
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.errors import AssistantError, FeedbackError, GeneratorError, QuestionError
from carecite.settings import Settings
from indexes.searcher import QueryError
from indexes.types import FilterError, Filters

log = logging.getLogger("carecite.api")

MODEL_ID = "carecite"


class BindError(ValueError):
    """Refusal to serve beyond loopback without a token."""


class ApiError(Exception):
    """An error answered as {"error": {...}} with an HTTP status."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse({"error": {"message": self.message, "type": self.type, "code": self.code,
                                       "param": self.param}}, status_code=self.status, headers=headers)


# ---------------------------------------------------------------- binding and auth

def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1); 0.0.0.0 and :: are every interface."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback address without a bearer token."""
    if not host or not host.strip():
        raise BindError("no host to bind to; use 127.0.0.1 for this machine only")
    if not is_loopback(host) and not (token and token.strip()):
        raise BindError(f"refusing to serve on {host!r} without a bearer token: anyone on the network could query "
                        "the index. Set --token or CARECITE_SERVER__API_TOKEN, or bind to 127.0.0.1.")


# ---------------------------------------------------------------- request bodies

class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class CareciteOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filters: list[str] | dict[str, Any] | None = None
    patient: str | None = None  # a pseudonym: answer from this patient's record and the guidelines


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, ...: accepted, the server's settings rule
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    carecite: CareciteOptions | None = None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str
    filters: list[str] | dict[str, Any] | None = None
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    top_k: int = Field(10, ge=1, le=100)
    patient: str | None = None  # only this patient's record (same as the filter patient_id)

    @field_validator("query")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("query is empty")
        return v


def _validation_message(e: ValidationError) -> tuple[str, str | None]:
    parts, param = [], None
    for err in e.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()))
        param = param or loc or None
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts), param


def parse_body(raw: bytes, model: type[BaseModel]) -> Any:
    """Bytes -> a validated request model, or ApiError(400) saying what is wrong."""
    if not raw.strip():
        raise ApiError(400, "the request body is empty; send a JSON object", code="empty_body")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ApiError(400, f"the request body is not valid JSON: {str(e)[:200]}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(data).__name__}", code="invalid_json")
    bad = _lone_surrogate(data)
    if bad is not None:
        raise ApiError(400, f"{bad or 'body'}: text holds a lone UTF-16 surrogate (e.g. \\ud800), which is not "
                            "valid Unicode; send valid UTF-8 text", code="invalid_text", param=bad or None)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        msg, param = _validation_message(e)
        raise ApiError(400, msg, code="invalid_field", param=param) from None
    except RecursionError:
        raise ApiError(400, "the request body is nested too deeply", code="invalid_json") from None


def _lone_surrogate(data: Any) -> str | None:
    """The dotted location ("" for the top) of the first string or key in decoded JSON that is not valid
    Unicode (a lone surrogate such as "\\ud800"); None if there is none. Iterative: nesting depth is the client's."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return where
            continue
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for k, v in reversed(list(items)):
            loc = f"{where}.{k}" if where else str(k)
            stack.append((loc, v))
            if isinstance(k, str):
                stack.append((loc, k))
    return None


def parse_filters(raw: list[str] | dict[str, Any] | None, where: str = "filters") -> Filters:
    """Filters.parse, its FilterError as a 400 naming the field (e.g. param "filters.date_to")."""
    try:
        return Filters.parse(raw)
    except FilterError as e:
        param = f"{where}.{e.key}" if e.key else where
        raise ApiError(400, f"{param}: {e}", code="invalid_filter", param=param) from None


def split_messages(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """(the last user question, earlier user/assistant turns) of an OpenAI message list."""
    last = messages[-1]
    if last.role != "user":
        raise ApiError(400, f"the last message must have role 'user', got {last.role!r}", param="messages")
    question = last.text().strip()
    if not question:
        raise ApiError(400, "the last user message has no text", param="messages")
    history = [{"role": m.role, "content": m.text()} for m in messages[:-1]
               if m.role in ("user", "assistant") and m.text().strip()]
    return question, history


# ---------------------------------------------------------------- responses

def _completion(answer, model: str, cid: str, created: int) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.answer},
                         "logprobs": None, "finish_reason": "stop"}],
            "carecite": _answer_json(answer)}


def _answer_json(answer) -> dict[str, Any]:
    """Answer.to_json; a patient-scoped answer adds each citation's label ([P1, date] or [n])."""
    if getattr(answer, "patient_id", None):
        from assistant.patients import answer_json
        return answer_json(answer)
    return answer.to_json()


def _chunk(cid: str, created: int, model: str, delta: dict, finish: str | None = None, **extra) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _error_event(e: Exception) -> str:
    err = _api_error(e)
    return "data: " + json.dumps({"error": {"message": err.message, "type": err.type, "code": err.code,
                                            "param": err.param}}) + "\n\n"


def _api_error(e: Exception) -> ApiError:
    if isinstance(e, ApiError):
        return e
    if isinstance(e, (QuestionError, QueryError, FilterError, FeedbackError)):
        return ApiError(400, str(e))
    if isinstance(e, GeneratorError):
        return ApiError(502, str(e), type="generator_error")
    if isinstance(e, AssistantError) and getattr(e, "status", None) in (400, 404):  # assistant.patients
        return ApiError(e.status, str(e), code="unknown_patient" if e.status == 404 else "invalid_patient",
                        param="patient")
    if isinstance(e, AssistantError):
        return ApiError(500, str(e), type="server_error")
    log.exception("unexpected error", exc_info=e)
    return ApiError(500, f"internal error: {type(e).__name__}", type="server_error")


# ---------------------------------------------------------------- the app

def create_app(settings: Settings, assistant=None, *, searcher=None, token: str | None = None) -> FastAPI:
    """The API over an Assistant (built here on the configured index unless given) and its searcher.

    An index opened here is closed when the app shuts down; a given assistant/searcher stays the caller's."""
    owned = None
    if assistant is None:
        from assistant.pipeline import Assistant
        from carecite.runtime import open_searcher
        searcher = searcher or open_searcher(settings)
        owned = searcher.index
        assistant = Assistant(settings, searcher=searcher)
        assistant.warm()  # the first request does not wait for the lexicon's spelling index
    searcher = searcher or getattr(assistant, "searcher", None)
    if searcher is None:
        raise ValueError("create_app needs a searcher for /v1/search (pass searcher= or an Assistant that has one)")
    token = token if token is not None else settings.server.api_token
    limit = settings.server.max_body_bytes
    # One search or answer stage at a time: on a few cores serial work beats oversubscribed torch threads. The
    # Assistant takes the same lock for its CPU stages and releases it while the LLM writes (the local model
    # queues its requests), so every waiting client gets its quick answer and queue place at once.
    engine = getattr(assistant, "work_lock", None) or threading.RLock()

    def locked(fn, *args, **kwargs):
        with engine:
            return fn(*args, **kwargs)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        if owned is not None:
            owned.close()

    app = FastAPI(title="CareCite API", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.assistant, app.state.searcher = assistant, searcher

    @app.exception_handler(ApiError)
    async def _api_error_handler(_req, e: ApiError):
        return e.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error_handler(_req, e: StarletteHTTPException):
        return ApiError(e.status_code, str(e.detail), code="not_found" if e.status_code == 404 else None).response()

    @app.exception_handler(RequestValidationError)
    async def _validation_handler(_req, e: RequestValidationError):
        return ApiError(400, "; ".join(str(x.get("msg")) for x in e.errors()[:5])).response()

    @app.exception_handler(Exception)
    async def _unexpected_handler(_req, e: Exception):
        return _api_error(e).response()

    async def auth(request: Request) -> None:
        if not token:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                           type="authentication_error", code="missing_token")
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(401, "invalid bearer token", type="authentication_error", code="invalid_token")

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"the request body is {declared} bytes; the limit is {limit}", code="body_too_large")
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise ApiError(413, f"the request body exceeds the limit of {limit} bytes", code="body_too_large")
        return bytes(body)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        from carecite.models import model_ids
        index = searcher.index
        return {"status": "ok", "index": {"chunks": index.count(), "version": index.get_meta().get("version")},
                "models": model_ids(settings)}

    @app.get("/v1/models", dependencies=[Depends(auth)])
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0,
                                            "owned_by": "carecite"}]}

    @app.post("/v1/search", dependencies=[Depends(auth)])
    async def search(request: Request) -> dict[str, Any]:
        req: SearchRequest = parse_body(await read_body(request), SearchRequest)
        filters = parse_filters(req.filters)
        if req.patient is not None:  # fail closed: an unknown patient is a 404, never an unfiltered search
            from assistant.patients import PatientError, check_patient
            try:
                pid = check_patient(searcher.index, req.patient)
                if filters.patient_id not in (None, [pid]):
                    raise PatientError(f"filters.patient_id {filters.patient_id} contradicts patient {pid}")
            except PatientError as e:
                raise _api_error(e) from None
            filters.patient_id = [pid]
        try:
            hits = await run_in_threadpool(locked, searcher.search, req.query, filters, mode=req.mode,
                                           top_k=req.top_k)
        except (QueryError, FilterError) as e:
            raise ApiError(400, str(e)) from None
        return {"query": req.query, "filters": filters.to_dict(),
                "hits": [h.to_json() for h in hits]}

    @app.post("/v1/chat/completions", dependencies=[Depends(auth)])
    async def chat(request: Request):
        req: ChatRequest = parse_body(await read_body(request), ChatRequest)
        question, history = split_messages(req.messages)
        filters = parse_filters(req.carecite.filters if req.carecite else None, "carecite.filters")
        cid, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), MODEL_ID
        patient = req.carecite.patient if req.carecite else None
        if patient is not None:  # this patient's record and the guidelines (assistant/patients.py)
            from assistant.patients import ask_patient, stream_patient
        if not req.stream:
            try:
                answer = await run_in_threadpool(
                    *((ask_patient, assistant, patient, question) if patient is not None else (assistant.ask, question)),
                    history=history, filters=filters)
            except Exception as e:  # noqa: BLE001 - mapped to a JSON error with the right status
                raise _api_error(e) from None
            return _completion(answer, model, cid, created)

        try:  # bad input raises here, before any bytes are sent
            events = (stream_patient(assistant, patient, question, history=history, filters=filters)
                      if patient is not None else assistant.stream(question, history=history, filters=filters))
        except Exception as e:  # noqa: BLE001
            raise _api_error(e) from None
        pending = _produce(events)
        first = await run_in_threadpool(pending.get)
        if isinstance(first, Exception):  # failed before its first event: a proper status code
            raise _api_error(first)
        return StreamingResponse(_sse(first, pending, cid, created, model), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


_END = object()


def _produce(events: Iterator[dict]) -> queue.Queue:
    """Run the answer in its own thread, handing events (or the exception) to a queue.

    The answer finishes (and the Assistant frees its locks) even when the client goes away mid-stream."""
    out: queue.Queue = queue.Queue()

    def run() -> None:
        try:
            for event in events:
                out.put(event)
        except Exception as e:  # noqa: BLE001 - handed to the response
            out.put(e)
        out.put(_END)

    threading.Thread(target=run, daemon=True, name="carecite-answer").start()
    return out


def _sse(first, pending: queue.Queue, cid: str, created: int, model: str) -> Iterator[str]:
    """Assistant stream events -> OpenAI chunks; the final chunk carries the "carecite" extension field.

    Content deltas are the draft as generated; carecite.answer is the verified text, and carecite.revised is
    true when verification changed it (unsupported sentences dropped, or an abstention)."""
    yield _chunk(cid, created, model, {"role": "assistant", "content": ""})
    streamed: list[str] = []
    try:
        event = first
        while event is not _END:
            if isinstance(event, Exception):
                raise event
            if event.get("type") == "quick":  # verified quotes at once; plain clients ignore the extension
                yield _chunk(cid, created, model, {}, carecite={"quick": _answer_json(event["answer"])})
            elif event.get("type") == "queued":
                yield _chunk(cid, created, model, {}, carecite={"queued": {"position": event["position"]}})
            elif event.get("type") == "token" and event.get("text"):
                streamed.append(event["text"])
                yield _chunk(cid, created, model, {"content": event["text"]})
            elif event.get("type") == "answer":
                answer = event["answer"]
                ext = {**_answer_json(answer), "revised": "".join(streamed).strip() != answer.answer.strip()}
                yield _chunk(cid, created, model, {}, "stop", carecite=ext)
            event = pending.get()
    except Exception as e:  # noqa: BLE001 - the status line is gone; the client gets an error event
        yield _error_event(e)
    yield "data: [DONE]\n\n"


def serve(settings: Settings, host: str | None = None, port: int | None = None, token: str | None = None) -> None:
    """Run the API with uvicorn until interrupted; refuses a non-loopback host without a token."""
    import uvicorn
    host = host or settings.server.host
    port = port if port is not None else settings.server.port
    token = token if token is not None else settings.server.api_token
    check_bind(host, token)
    app = create_app(settings, token=token)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
