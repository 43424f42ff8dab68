"""Index backends: the same tests run against Qdrant Edge and the qdrant-client server code path (congruence)."""
from __future__ import annotations

import numpy as np
import pytest

from indexes.bm25 import BM25Encoder, sparse_text
from indexes.base import IndexLockedError, IndexMissingError
from indexes.edge import EdgeIndex
from indexes.migrate import migrate
from indexes.server import ServerIndex
from indexes.types import Chunk, Filters, FilterError, chunk_id
from ingest.chunker import chunk_document
from ingest.readers import read_corpus

QUERIES = ["What are the symptoms of diabetes?", "How is leukemia treated?", "Is this condition inherited?",
           "What causes high blood pressure?", "treatment without surgery"]


@pytest.fixture(scope="module")
def corpus(data_mirror, embedder):
    docs = list(read_corpus("medquad", data_mirror, limit=40))
    chunks = [c for d in docs for c in chunk_document(d, embedder.count_tokens)]
    for i, c in enumerate(chunks):  # a date on every chunk for range filters
        c.metadata["date"] = f"20{10 + i % 10:02d}-06-01"
    bm25 = BM25Encoder(avg_len=float(np.mean([BM25Encoder().doc_length(sparse_text(c)) for c in chunks])))
    dense = embedder.embed([c.text for c in chunks])
    sparse = [bm25.encode_document(sparse_text(c)) for c in chunks]
    qdense = embedder.embed(QUERIES)
    return chunks, dense, sparse, bm25, qdense


@pytest.fixture(params=["edge", "server"])
def index(request, tmp_path, corpus):
    chunks, dense, sparse, bm25, _ = corpus
    ix = EdgeIndex(tmp_path / "ix", dim=dense.shape[1], create=True) if request.param == "edge" \
        else ServerIndex(":memory:", dim=dense.shape[1], create=True)
    ix.upsert(chunks, dense, sparse)
    ix.set_meta({"bm25_avg_len": bm25.avg_len})
    ix.optimize()
    yield ix
    ix.close()


def _rank(ix, corpus, qi, mode, **kw):
    return [h.chunk.id for h in _hits(ix, corpus, qi, mode, **kw)]


def _hits(ix, corpus, qi, mode, **kw):
    _, _, _, bm25, qdense = corpus
    return ix.search(qdense[qi], bm25.encode_query(QUERIES[qi]), mode=mode, top_k=10, **kw)


def assert_congruent(a, b, rel=1e-3):
    """Same scores rank by rank; same ids except inside groups of tied scores."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.score == pytest.approx(y.score, rel=rel, abs=1e-6)
    groups_a, groups_b = _tie_groups(a, rel), _tie_groups(b, rel)
    assert groups_a == groups_b


def _tie_groups(hits, rel):
    groups, cur, last = [], set(), None
    for h in hits:
        if last is not None and abs(h.score - last) > rel * max(abs(last), 1e-9):
            groups.append(cur)
            cur = set()
        cur.add(h.chunk.id)
        last = h.score
    return groups + [cur] if cur else groups


def test_backends_agree_on_rankings(tmp_path, corpus):
    chunks, dense, sparse, bm25, qdense = corpus
    edge = EdgeIndex(tmp_path / "e", dim=dense.shape[1], create=True)
    srv = ServerIndex(":memory:", dim=dense.shape[1], create=True)
    try:
        for ix in (edge, srv):
            ix.upsert(chunks, dense, sparse)
            ix.optimize()
        for qi in range(len(QUERIES)):
            for mode in ("sparse", "dense"):
                assert_congruent(_hits(edge, corpus, qi, mode), _hits(srv, corpus, qi, mode))
            # Fused ranks: the top of the list agrees (RRF ties after rank ~5 may break differently).
            assert _rank(edge, corpus, qi, "hybrid")[:3] == _rank(srv, corpus, qi, "hybrid")[:3]
            fa = _rank(edge, corpus, qi, "hybrid", filters=Filters(date_from="2012-01-01", date_to="2014-12-31"))
            fb = _rank(srv, corpus, qi, "hybrid", filters=Filters(date_from="2012-01-01", date_to="2014-12-31"))
            assert fa[:3] == fb[:3] and fa  # same RRF tie caveat as above
    finally:
        edge.close()
        srv.close()


def test_sparse_ranks_exact_term_first(index, corpus):
    chunks = corpus[0]
    hits = index.search(None, corpus[3].encode_query("leukemia"), mode="sparse", top_k=5)
    assert hits and all("leukemia" in (h.chunk.text + h.chunk.metadata.get("title", "")).lower() for h in hits)
    assert len({c.id for c in chunks}) == len(chunks)


def test_filters_fail_closed(index, corpus):
    q = corpus[4][0]
    assert index.search(q, None, mode="dense", filters=Filters(source=["no-such-source"])) == []
    assert index.search(q, corpus[3].encode_query("diabetes"), mode="hybrid",
                        filters=Filters(doc_type=["case"])) == []  # slice has no cases
    assert index.count(Filters(source=["no-such-source"])) == 0
    hits = index.search(q, None, mode="dense", filters=Filters(date_from="2015-01-01"), top_k=50)
    assert hits and all(h.chunk.metadata["date"] >= "2015" for h in hits)


def test_filter_parsing_is_strict():
    assert Filters.parse(["doc_type=guideline,case", "source=MedQuAD/GHR"]).doc_type == ["guideline", "case"]
    assert Filters.parse({"specialty": ["Cardiology"]}).specialty == ["cardiology"]  # stored lower-case
    for bad in (["colour=red"], ["doc_type=poem"], ["doc_type"], ["date_from=yesterday"]):
        with pytest.raises(FilterError):
            Filters.parse(bad)


def test_facets_counts_and_delete(index, corpus):
    chunks = corpus[0]
    assert index.count() == len(chunks)
    assert sum(index.facet("source").values()) == len(chunks)
    doc = chunks[0].doc_id
    n_doc = sum(c.doc_id == doc for c in chunks)
    index.delete_docs([doc])
    assert index.count() == len(chunks) - n_doc
    assert index.count(Filters(doc_id=[doc])) == 0


def test_doc_metadata_rewrite_keeps_vectors_and_drops_unset_keys(index, corpus):
    chunks = corpus[0]
    doc = chunks[0].doc_id
    n_doc = sum(c.doc_id == doc for c in chunks)
    before = _rank(index, corpus, 0, "hybrid")
    index.set_doc_metadata(doc, {"specialty": ["endocrinology"], "meta_hash": "new"}, unset=["url"])
    hits = index.count(Filters(specialty=["endocrinology"], doc_id=[doc]))
    assert hits == n_doc == index.count(Filters(specialty=["endocrinology"]))
    stored = [c for c, _ in index.scroll(Filters(doc_id=[doc]))]
    assert all("url" not in c.metadata and c.metadata["title"] == chunks[0].metadata["title"] for c in stored)
    assert {d: s.meta_hash for d, s in index.stored_docs(Filters(doc_id=[doc])).items()} == {doc: "new"}
    assert _rank(index, corpus, 0, "hybrid") == before  # vectors and text untouched


def test_delete_keeps_current_version(index, corpus):
    chunks = corpus[0]
    doc = chunks[0].doc_id
    keep = chunks[0].metadata["content_hash"]
    index.delete_docs([doc], keep_hash=keep)
    assert index.count(Filters(doc_id=[doc])) == sum(c.doc_id == doc for c in chunks)
    index.delete_docs([doc], keep_hash="something-else")
    assert index.count(Filters(doc_id=[doc])) == 0


def test_bm25_collisions_and_negations(monkeypatch):
    enc = BM25Encoder(avg_len=10)
    v = enc.encode_document("no fever, not febrile, without chills; fever fever")
    assert len(set(v.indices)) == len(v.indices)
    assert BM25Encoder.token_id("no") in v.indices and BM25Encoder.token_id("without") in v.indices
    # Two stems hashing to one id are merged, not duplicated (Qdrant rejects duplicate indices).
    monkeypatch.setattr(BM25Encoder, "token_id", staticmethod(lambda s: 7))
    v = enc.encode_document("alpha beta gamma")
    assert v.indices == [7] and len(v.values) == 1


def test_bm25_matches_fastembed_formula():
    enc = BM25Encoder(avg_len=4, k=1.2, b=0.75)
    v = enc.encode_document("insulin insulin dose")
    w = dict(zip(v.indices, v.values))
    n = 3
    expect = lambda tf: tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * n / 4))  # noqa: E731
    assert w[BM25Encoder.token_id("insulin")] == pytest.approx(expect(2))
    assert w[BM25Encoder.token_id("dose")] == pytest.approx(expect(1))
    import mmh3
    assert BM25Encoder.token_id("insulin") == abs(mmh3.hash("insulin"))


def test_edge_lock_and_persistence(tmp_path, corpus):
    chunks, dense, sparse, *_ = corpus
    ix = EdgeIndex(tmp_path / "p", dim=dense.shape[1], create=True)
    ix.upsert(chunks[:10], dense[:10], sparse[:10])
    with pytest.raises(IndexLockedError, match="one process at a time"):
        EdgeIndex(tmp_path / "p")
    ix.close()
    with EdgeIndex(tmp_path / "p") as again:
        assert again.count() == 10
    with pytest.raises(IndexMissingError):
        EdgeIndex(tmp_path / "nothing-here")


def test_migrate_edge_to_server_keeps_rankings(tmp_path, corpus):
    chunks, dense, sparse, bm25, qdense = corpus
    src = EdgeIndex(tmp_path / "m", dim=dense.shape[1], create=True)
    src.upsert(chunks, dense, sparse)
    src.set_meta({"bm25_avg_len": bm25.avg_len, "version": "1.x"})
    src.optimize()
    dst = ServerIndex(":memory:", dim=dense.shape[1], create=True)
    try:
        assert migrate(src, dst) == len(chunks)
        assert dst.get_meta()["bm25_avg_len"] == bm25.avg_len
        for qi in range(len(QUERIES)):
            assert_congruent(_hits(src, corpus, qi, "sparse"), _hits(dst, corpus, qi, "sparse"))
            assert _rank(src, corpus, qi, "hybrid")[:5] == _rank(dst, corpus, qi, "hybrid")[:5]
    finally:
        src.close()
        dst.close()
