"""Malformed requests to the HTTP API get a 400 naming the field, never a 500: the eight cases of issue 9, and a
Hypothesis property test over the request schema of every endpoint.

The index here is a tiny real one (three guideline files through the real pipeline and embedder) and the
generator is the extractive one: request validation is what is under test, and a small index keeps each of the
generated requests fast. Requests go through the real FastAPI app in process (Starlette's TestClient).
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st
from starlette.testclient import TestClient

from indexes.types import FILTER_KEYS

GUIDES = {
    "sepsis.md": "# Sepsis bundle\n\n## Antibiotics\nGive broad-spectrum antibiotics within one hour of "
                 "recognising septic shock.\n\n## Fluids\nGive 30 mL/kg of crystalloid for hypotension.\n",
    "asthma.md": "# Asthma\n\nUse a short-acting beta agonist for quick relief. Step up controller therapy if "
                 "symptoms occur more than twice a week.\n",
    "diabetes.md": "# Type 2 diabetes\n\nDiagnose with an HbA1c of 6.5% or higher. Start metformin unless "
                   "contraindicated.\n",
}


@pytest.fixture(scope="module")
def api(tmp_path_factory, embedder):
    from assistant.api import create_app
    from assistant.pipeline import Assistant
    from carecite.runtime import open_index
    from conftest import make_settings
    from ingest.pipeline import Ingestor, SourceSpec

    tmp = tmp_path_factory.mktemp("api-requests")
    guides = tmp / "guides"
    guides.mkdir()
    for name, text in GUIDES.items():
        (guides / name).write_text(text)
    s = make_settings(tmp / "data")  # preset "fast": the extractive generator
    with open_index(s, create=True, dim=embedder.dim) as index:
        report = Ingestor.from_settings(index, embedder, s, show_progress=False).run(
            [SourceSpec("guides", path=guides, doc_type="guideline", source="Ward guides")])
        assert not report.errors and report.docs_new == 3
    with Assistant(s) as assistant:
        with TestClient(create_app(s, assistant), raise_server_exceptions=False) as client:
            yield client


def _chat(content="What is the sepsis fluid dose?", **extra):
    return {"messages": [{"role": "user", "content": content}], **extra}


# The eight malformed requests of issue 9 (each answered 500 before), with the field the error must name.
MALFORMED = [
    ("/v1/chat/completions", _chat(carecite={"filters": {"specialty": 7}}), "carecite.filters.specialty"),
    ("/v1/chat/completions", _chat(carecite={"filters": {"source": True}}), "carecite.filters.source"),
    ("/v1/chat/completions", _chat(carecite={"filters": {"date_to": []}}), "carecite.filters.date_to"),
    ("/v1/chat/completions", _chat(carecite={"filters": {"doc_type": 5}}), "carecite.filters.doc_type"),
    ("/v1/chat/completions", _chat(carecite={"filters": ["date_from=2020-01-01Tgarbage"]}),
     "carecite.filters.date_from"),
    ("/v1/search", {"query": "sepsis", "filters": {"date_from": "2020-01-01Tgarbage"}}, "filters.date_from"),
    ("/v1/chat/completions", _chat(stream=True, carecite={"filters": {"specialty": 7}}), "carecite.filters.specialty"),
    ("/v1/chat/completions", _chat("\ud800 sepsis"), "messages.0.content"),
]


@pytest.mark.parametrize("path,body,field", MALFORMED, ids=[f"{i}" for i in range(len(MALFORMED))])
def test_malformed_requests_are_400_naming_the_field(api, path, body, field):
    # ensure_ascii keeps the lone surrogate as the escape "\ud800", as a client would send it
    r = api.post(path, content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert r.status_code == 400, (body, r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err["param"] == field and field in err["message"], err
    assert err["type"] == "invalid_request_error"


def test_good_dates_and_filters_still_work(api):
    for flt in ({"date_from": "2020-01-01T10:00:00Z"}, {"date_to": "2030-12-31"}, {"source": "Ward guides"},
                ["doc_type=guideline", "date_from=2020-01-01T00:00:00+02:00"]):
        r = api.post("/v1/search", json={"query": "sepsis fluids", "filters": flt})
        assert r.status_code == 200, (flt, r.text[:300])
    r = api.post("/v1/search", json={"query": "sepsis fluids", "filters": {"source": ["Ward guides"]}})
    assert r.status_code == 200 and r.json()["hits"][0]["title"] == "Sepsis bundle"


# ---------------------------------------------------------------- property-based fuzzing of every endpoint
# A valid request of each endpoint with one or two of its fields (at any depth of the schema) replaced by an
# arbitrary value, plus free-form JSON to every route with every method. Mutating a valid request makes each
# generated body reach the validation of the field it breaks, instead of failing on the first missing field.

# Text with anything in it: lone surrogates (category Cs, which st.characters() leaves out) and control characters.
_text = st.text(st.characters(exclude_categories=()) | st.characters(categories=["Cs", "Cc"]), max_size=20)
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                     max_leaves=6)
_dates = st.sampled_from(["2020-01-01", "2020-01-01Tgarbage", "2020-13-01", "2020-01-01T25:00", "", "2020",
                          "2020-01-01T10:00:00Z", "2020-01-01T10:00:00+05:30", "yesterday"])
_words = st.sampled_from(["guideline", "case", "memo", "Ward guides", "cardiology", "", " ", "user", "hybrid"])
_value = st.one_of(st.integers(), st.booleans(), st.none(), st.just([]), st.just({}), _words, _dates,
                   st.lists(_words | _dates | st.integers(), max_size=3), _text, _json)

_FILTERS = {"doc_type": ["guideline"], "source": ["Ward guides"]}
_SEARCH = {"query": "sepsis fluids", "filters": _FILTERS, "mode": "hybrid", "top_k": 5}
_CHAT = {"model": "carecite", "stream": False, "carecite": {"filters": _FILTERS},
         "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "sepsis"},
                      {"role": "assistant", "content": "Give fluids [1]."},
                      {"role": "user", "content": "What is the sepsis fluid dose?"}]}
_KEYS = ["query", "filters", "mode", "top_k", "messages", "role", "content", "type", "text", "stream", "carecite",
         *FILTER_KEYS, "colour", ""]


def _paths(value, prefix=()):
    """Every location in a JSON value (the value itself first)."""
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        yield from _paths(v, (*prefix, k))


def _put(value, path, new):
    if not path:
        return new
    out = dict(value) if isinstance(value, dict) else list(value)
    out[path[0]] = _put(out[path[0]], path[1:], new) if path[1:] else new
    return out


@st.composite
def _mutated(draw, base):
    body = json.loads(json.dumps(base))
    if draw(st.booleans()):  # a stream too, where the endpoint streams
        body = {**body, "stream": True} if "messages" in body else body
    for _ in range(draw(st.integers(1, 2))):
        paths = list(_paths(body))[1:]
        path = draw(st.sampled_from(paths))
        if draw(st.integers(0, 4)) == 0 and isinstance(body, dict):  # or add a key somewhere
            parent = draw(st.sampled_from([p for p in [(), *paths] if isinstance(_get(body, p), dict)]))
            path = (*parent, draw(st.sampled_from(_KEYS)))
        body = _put(body, path, draw(_value))
    return body


def _get(value, path):
    for k in path:
        value = value[k]
    return value


_request = st.one_of(
    st.tuples(st.just("POST"), st.just("/v1/chat/completions"), _mutated(_CHAT)),
    st.tuples(st.just("POST"), st.just("/v1/search"), _mutated(_SEARCH)),
    st.tuples(st.sampled_from(["POST", "GET", "PUT"]),
              st.sampled_from(["/v1/chat/completions", "/v1/search", "/v1/models", "/healthz"]), _json),
)


@hyp_settings(max_examples=120, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(req=_request)
def test_no_request_gets_a_5xx(api, req):
    method, path, body = req
    raw = json.dumps(body).encode()  # ASCII escapes: lone surrogates arrive as "\udxxx"
    with api.stream(method, path, content=raw, headers={"content-type": "application/json"}) as r:
        text = r.read().decode("utf-8", "replace")
    assert r.status_code < 500, (method, path, raw[:300], r.status_code, text[:300])
    if r.status_code >= 400:
        assert json.loads(text)["error"]["message"]
    elif r.headers.get("content-type", "").startswith("text/event-stream"):
        assert '"server_error"' not in text, (raw[:300], text[-500:])
        assert text.rstrip().endswith("data: [DONE]")


def test_valid_bases_of_the_fuzz_are_answered(api):
    """The unmutated requests the fuzz starts from succeed, so mutations test one broken field at a time."""
    assert api.post("/v1/search", json=_SEARCH).json()["hits"]
    assert api.post("/v1/chat/completions", json=_CHAT).json()["carecite"]["answer"]
