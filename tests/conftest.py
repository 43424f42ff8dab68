"""Shared fixtures: the real embedder, temp settings, and a small real index built by the real pipeline."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from carecite.settings import Settings  # noqa: E402

DATA = Settings().paths.data_mirror
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def pytest_configure(config):
    if not DATA.exists():
        raise pytest.UsageError(f"tests read the public data mirror at {DATA}; set CARECITE_PATHS__DATA_MIRROR")


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    return DATA


@pytest.fixture(scope="session")
def embedder():
    from carecite.models import get_embedder
    return get_embedder(Settings())


def make_settings(tmp: Path, **overrides) -> Settings:
    s = Settings.from_name("fast", **overrides)
    s.paths.data_dir = Path(tmp)
    s.audit.enabled = True
    return s


@pytest.fixture
def tmp_settings(tmp_path) -> Settings:
    return make_settings(tmp_path)


SMALL_CORPUS = {"medquad": 120, "aci-bench": 12, "openstax-nursing": 8}


@pytest.fixture(scope="session")
def small_index(tmp_path_factory, embedder) -> Settings:
    """Settings pointing at a closed Edge index holding a real slice of MedQuAD, ACI-Bench (masked) and OpenStax.

    Tests open it with carecite.runtime.open_index / open_searcher and must close it (one process, one holder)."""
    from carecite.runtime import open_index
    from ingest.pipeline import Ingestor, SourceSpec

    s = make_settings(tmp_path_factory.mktemp("small-index"))
    s.phi.policy = "mask"
    with open_index(s, create=True, dim=embedder.dim) as index:
        report = Ingestor(index, embedder, phi_policy="mask", data_mirror=s.paths.data_mirror,
                          show_progress=False).run([SourceSpec(n, limit=k) for n, k in SMALL_CORPUS.items()])
        assert not report.errors, report.errors
        assert index.count() > 0
    return s
