"""The HTTP API over the small real index: the official openai client (plain and streamed), /v1/search,
/healthz, bearer auth, the bind rule, and bad requests that must get a 4xx JSON error, never a 500."""
from __future__ import annotations

import json
import random
import re

import httpx
import pytest
from openai import APIError, AuthenticationError, BadRequestError, OpenAI

from assistant.api import BindError, check_bind, is_loopback, serve
from live_servers import running_api

QUESTION = "What are the symptoms of breast cancer?"


@pytest.fixture(scope="module")
def assistant(small_index):
    from assistant.pipeline import Assistant
    with Assistant(small_index) as a:  # opens (and at the end closes) the index once for the module
        yield a


@pytest.fixture(scope="module")
def base_url(small_index, assistant):
    with running_api(small_index, assistant=assistant) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url):
    return OpenAI(base_url=f"{base_url}/v1", api_key="unused-on-loopback", max_retries=0, timeout=120)


def _cited_numbers(text: str) -> set[int]:
    return {int(n) for group in re.findall(r"\[([\d,\s]+)\]", text) for n in re.findall(r"\d+", group)}


def test_chat_completion_carries_citations_and_verdicts(client, small_index):
    from assistant.audit import AuditLog
    resp = client.chat.completions.create(model="carecite", messages=[{"role": "user", "content": QUESTION}])
    text = resp.choices[0].message.content
    ext = resp.model_extra["carecite"]
    assert resp.choices[0].finish_reason == "stop" and resp.object == "chat.completion"
    assert not ext["abstained"] and text == ext["answer"]
    by_n = {c["n"]: c for c in ext["citations"]}
    cited = _cited_numbers(text)
    assert cited and cited <= set(by_n), (cited, sorted(by_n))
    for n in cited:
        assert by_n[n]["cited"] and by_n[n]["passage"] and by_n[n]["title"] and by_n[n]["doc_id"]
    assert ext["sentences"] and all({"text", "citations", "supported", "score", "reason"} <= set(s)
                                    for s in ext["sentences"])
    assert any(s["supported"] for s in ext["sentences"])
    assert "breast" in text.lower()
    # the answer is in the audit log, so feedback can be attached to it later
    assert AuditLog.from_settings(small_index).find_answer(ext["answer_id"]) is not None


def test_streaming_ends_with_the_extension_field(client):
    stream = client.chat.completions.create(model="carecite", stream=True,
                                            messages=[{"role": "user", "content": QUESTION}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = chunks[-1]
    ext = last.model_extra["carecite"]
    assert len(chunks) > 3 and last.choices[0].finish_reason == "stop"
    # The quick answer (verified quotes) rides in the extension field of an early chunk with an empty delta.
    quick = [i for i, c in enumerate(chunks[:-1]) if c.model_extra.get("carecite")]
    assert len(quick) == 1 and not chunks[quick[0]].choices[0].delta.content
    q = chunks[quick[0]].model_extra["carecite"]["quick"]
    assert q["kind"] == "quotes" and q["answer_id"] == ext["answer_id"] and _cited_numbers(q["answer"])
    assert not "".join(c.choices[0].delta.content or "" for c in chunks[:quick[0]])  # before any text
    assert ext["answer"] and ext["citations"] and _cited_numbers(ext["answer"])
    assert ext["revised"] == (text.strip() != ext["answer"].strip())
    if not ext["revised"]:
        assert text.strip() == ext["answer"].strip()


def test_raw_sse_framing(base_url):
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", timeout=120,
                      json={"messages": [{"role": "user", "content": QUESTION}], "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        body = r.read().decode()
    events = [e for e in body.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2][6:])["carecite"]["answer_id"]


def test_follow_up_uses_the_history(client):
    first = client.chat.completions.create(model="carecite", messages=[{"role": "user", "content": QUESTION}])
    follow = client.chat.completions.create(model="carecite", messages=[
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "How is it treated?"}])
    ext = follow.model_extra["carecite"]
    assert "breast cancer" in ext["standalone_query"].lower()
    assert ext["question"] == "How is it treated?"


def test_filters_in_the_extension_field(client):
    resp = client.chat.completions.create(model="carecite", messages=[{"role": "user", "content": QUESTION}],
                                          extra_body={"carecite": {"filters": ["doc_type=case"]}})
    ext = resp.model_extra["carecite"]
    assert ext["filters"] == {"doc_type": ["case"]}
    assert ext["citations"] and all(c["doc_type"] == "case" for c in ext["citations"])


def test_search_endpoint_applies_filters(base_url):
    r = httpx.post(f"{base_url}/v1/search", timeout=60,
                   json={"query": "knee pain", "filters": ["doc_type=case"], "top_k": 3})
    body = r.json()
    assert r.status_code == 200 and body["filters"] == {"doc_type": ["case"]}
    assert len(body["hits"]) == 3 and [h["rank"] for h in body["hits"]] == [1, 2, 3]
    assert all(h["doc_type"] == "case" and h["source"] == "ACI-Bench" and h["text"] for h in body["hits"])
    r = httpx.post(f"{base_url}/v1/search", json={"query": "breast cancer", "filters": {"source": ["ACI-Bench"]},
                                                  "mode": "sparse"}, timeout=60)
    assert r.status_code == 200 and all(h["source"] == "ACI-Bench" for h in r.json()["hits"])


def test_healthz_and_models(base_url, client):
    h = httpx.get(f"{base_url}/healthz").json()
    assert h["status"] == "ok" and h["index"]["chunks"] > 0 and h["models"]["generator"] == "extractive"
    assert [m.id for m in client.models.list()] == ["carecite"]


BAD_CHAT = [
    (b"{", 400), (b"", 400), (b"[1, 2]", 400), (b'"text"', 400), (b"\xff\xfe{}", 400), (b"[" * 50_000, 400),
    (b'{"model": "carecite"}', 400),  # no messages
    (b'{"messages": []}', 400),
    (b'{"messages": "hello"}', 400),
    (b'{"messages": [{"content": "no role"}]}', 400),
    (b'{"messages": [{"role": "wizard", "content": "x"}]}', 400),
    (b'{"messages": [{"role": "assistant", "content": "last is not a user"}]}', 400),
    (b'{"messages": [{"role": "user", "content": "   "}]}', 400),
    (b'{"messages": [{"role": "user", "content": 42}]}', 400),
    (b'{"messages": [{"role": "user", "content": "x"}], "stream": [1]}', 400),
    (b'{"messages": [{"role": "user", "content": "x"}], "carecite": {"filters": ["colour=red"]}}', 400),
    (b'{"messages": [{"role": "user", "content": "x"}], "carecite": {"filters": ["doc_type=memo"]}}', 400),
    (b'{"messages": [{"role": "user", "content": "x"}], "carecite": {"filters": ["date_from=yesterday"]}}', 400),
    (b'{"messages": [{"role": "user", "content": "x"}], "carecite": {"unknown_option": 1}}', 400),
    (json.dumps({"messages": [{"role": "user", "content": "q" * 5000}]}).encode(), 400),  # question too long
]
BAD_SEARCH = [
    (b"{", 400), (b'{"filters": ["doc_type=case"]}', 400), (b'{"query": ""}', 400), (b'{"query": 7}', 400),
    (b'{"query": "x", "filters": ["source"]}', 400), (b'{"query": "x", "filters": {"colour": ["red"]}}', 400),
    (b'{"query": "x", "top_k": 0}', 400), (b'{"query": "x", "top_k": "many"}', 400),
    (b'{"query": "x", "mode": "magic"}', 400), (b'{"query": "x", "extra": 1}', 400),
]


@pytest.mark.parametrize("path,cases", [("/v1/chat/completions", BAD_CHAT), ("/v1/search", BAD_SEARCH)])
def test_bad_requests_get_4xx_json(base_url, path, cases):
    for body, status in cases:
        r = httpx.post(f"{base_url}{path}", content=body, headers={"content-type": "application/json"}, timeout=60)
        assert r.status_code == status, (body[:80], r.status_code, r.text[:200])
        err = r.json()["error"]
        assert err["message"] and err["type"] == "invalid_request_error", (body[:80], err)


def test_unknown_filter_through_the_openai_client(client):
    with pytest.raises(BadRequestError, match="unknown filter 'colour'"):
        client.chat.completions.create(model="carecite", messages=[{"role": "user", "content": QUESTION}],
                                       extra_body={"carecite": {"filters": ["colour=red"]}})


def test_oversized_bodies_are_refused(base_url, small_index):
    limit = small_index.server.max_body_bytes
    big = json.dumps({"messages": [{"role": "user", "content": "x" * limit}]}).encode()
    r = httpx.post(f"{base_url}/v1/chat/completions", content=big, timeout=60)
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]

    def chunked():  # no Content-Length: the limit is counted while reading
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    r = httpx.post(f"{base_url}/v1/search", content=chunked(), timeout=60)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_unknown_routes_and_methods_are_json(base_url):
    r = httpx.get(f"{base_url}/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["message"]
    r = httpx.get(f"{base_url}/v1/chat/completions")
    assert r.status_code == 405 and r.json()["error"]["message"]


def test_fuzzed_bodies_never_500(base_url):
    rng = random.Random(1234)
    atoms = [None, True, 0, -1, 1e308, "", "user", "doc_type=case", [], {}, [None], {"role": "user"}]

    def value(depth=0):
        if depth > 3 or rng.random() < 0.4:
            return rng.choice(atoms)
        if rng.random() < 0.5:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        keys = ["messages", "role", "content", "stream", "carecite", "filters", "query", "top_k", "mode", "x"]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.randint(0, 4))}

    for i in range(60):
        body = json.dumps(value()).encode() if i % 4 else bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        for path in ("/v1/chat/completions", "/v1/search"):
            r = httpx.post(f"{base_url}{path}", content=body, timeout=60)
            assert r.status_code < 500, (path, body[:120], r.text[:200])
            if r.status_code >= 400:
                assert r.json()["error"]["message"]


def test_bearer_token_auth(small_index, assistant):
    with running_api(small_index, assistant=assistant, token="s3cret-token") as url:
        assert httpx.get(f"{url}/healthz").status_code == 200  # liveness stays open
        r = httpx.post(f"{url}/v1/search", json={"query": "breast cancer"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"
        assert r.headers["www-authenticate"] == "Bearer"
        r = httpx.post(f"{url}/v1/search", json={"query": "breast cancer"}, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
        good = OpenAI(base_url=f"{url}/v1", api_key="s3cret-token", max_retries=0, timeout=120)
        resp = good.chat.completions.create(model="carecite", messages=[{"role": "user", "content": QUESTION}])
        assert resp.model_extra["carecite"]["citations"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_needs_no_token(host):
    assert is_loopback(host)
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "example.org"])
def test_other_hosts_need_a_token(host):
    assert not is_loopback(host)
    for token in (None, "", "   "):
        with pytest.raises(BindError, match="without a bearer token"):
            check_bind(host, token)
    check_bind(host, "a-long-random-token")


def test_serve_refuses_before_opening_anything(tmp_settings):
    # no index exists under tmp_settings: the bind check must fail first, with its own message
    with pytest.raises(BindError, match="0.0.0.0"):
        serve(tmp_settings, host="0.0.0.0", port=1, token=None)


def test_generator_failure_is_a_json_error_not_a_crash(small_index, assistant):
    """An unreachable OpenAI-compatible endpoint: 502 with the URL named (plain), an error event (streamed)."""
    import copy
    from assistant.generators import ExtractiveGenerator, OpenAIGenerator
    s = small_index.model_copy(deep=True)
    s.generator.kind, s.generator.base_url, s.generator.model = "openai", "http://127.0.0.1:9/v1", "none"
    s.generator.timeout_s = 2
    broken = copy.copy(assistant)
    broken.generator = OpenAIGenerator(s)
    with running_api(small_index, assistant=broken) as url:  # the quick answer stands and names the failure
        r = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]},
                       timeout=60)
        ext = r.json()["carecite"]
        assert r.status_code == 200 and ext["kind"] == "quotes" and "127.0.0.1:9" in ext["note"]
    broken.quoter = ExtractiveGenerator(assistant.embedder, min_score=9.0)  # no quick answer to fall back on
    with running_api(small_index, assistant=broken) as url:
        r = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]},
                       timeout=60)
        assert r.status_code == 502 and "127.0.0.1:9" in r.json()["error"]["message"]
        c = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=60)
        with pytest.raises(APIError, match="127.0.0.1:9"):
            list(c.chat.completions.create(model="carecite", stream=True,
                                           messages=[{"role": "user", "content": QUESTION}]))


def test_loadtest_smoke(base_url):
    from eval.loadtest import format_report, run_loadtest
    res = run_loadtest(base_url, clients=2, per_client=2)
    assert res["requests"] == 4 and res["errors"] == 0, res["error_examples"]
    assert 0 < res["latency_ms"]["p50"] <= res["latency_ms"]["p95"] <= res["latency_ms"]["max"]
    assert res["throughput_rps"] > 0 and res["generator"] == "extractive"
    assert "errors: 0" in format_report(res)
    with pytest.raises(ValueError, match="clients"):
        run_loadtest(base_url, clients=0)
