"""The `carecite` command as a user runs it: offline ingest + search, stats, filters, bad input."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], env_extra: dict | None = None, wrap: list[str] | None = None, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    cmd = (wrap or []) + [sys.executable, "-m", "carecite.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def _netns_available() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True).returncode == 0


def test_ingest_and_search_with_network_blocked(tmp_path, data_mirror):
    """No socket may leave the machine: a socket guard logs and refuses any non-loopback connection, and where
    possible the commands also run in a fresh network namespace with only loopback up (unshare -n)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for f in sorted((data_mirror / "medquad" / "5_NIDDK_QA").glob("*.xml"))[:4]:
        shutil.copy(f, docs / f.name)
    log = tmp_path / "net.log"
    env = {"PYTHONPATH": f"{ROOT / 'tests' / 'support'}:{ROOT}", "CARECITE_NET_LOG": str(log),
           "CARECITE_PATHS__DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
    wrap = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"] if _netns_available() else None
    ing = run_cli(["ingest", str(docs), "--doc-type", "guideline", "--source", "NIDDK copy"], env, wrap)
    assert ing.returncode == 0, ing.stderr[-2000:]
    assert "chunks written" in ing.stdout
    res = run_cli(["search", "kidney disease symptoms", "--top-k", "3", "--json"], env, wrap)
    assert res.returncode == 0, res.stderr[-2000:]
    hits = json.loads(res.stdout)
    assert hits and all(h["source"].startswith("MedQuAD/") for h in hits)  # MedQuAD XML carries its own source
    assert not log.exists() or log.read_text() == "", log.read_text()


def test_search_stats_and_errors(small_index):
    env = {"CARECITE_PATHS__DATA_DIR": str(small_index.paths.data_dir)}
    out = run_cli(["search", "what are the symptoms of type 2 diabetes", "--top-k", "3",
                   "--filter", "doc_type=guideline"], env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("[1]") and "MedQuAD" in out.stdout
    js = json.loads(run_cli(["search", "knee pain", "--filter", "doc_type=case", "--json"], env).stdout)
    assert js and {h["doc_type"] for h in js} == {"case"} and all(h["text"] for h in js)
    none = run_cli(["search", "knee pain", "--filter", "source=Nowhere"], env)
    assert none.returncode == 0 and "no passages matched" in none.stdout
    stats = json.loads(run_cli(["stats", "--json"], env).stdout)
    assert stats["chunks"] > 0 and set(stats["by_doc_type"]) >= {"guideline", "case"}
    assert stats["size_bytes"] > 0 and stats["models"]["embedder"] == "all-MiniLM-L6-v2"
    assert stats["by_specialty"] and max(stats["by_specialty"].values()) <= stats["chunks"]
    for args, msg in ((["search", "  "], "query is empty"),
                      (["search", "x", "--filter", "colour=red"], "unknown filter 'colour'"),
                      (["search", "x", "--filter", "doc_type=poem"], "unknown doc_type")):
        bad = run_cli(args, env)
        assert bad.returncode == 2 and msg in bad.stderr, bad.stderr


def test_missing_index_and_missing_data_are_explained(tmp_path):
    env = {"CARECITE_PATHS__DATA_DIR": str(tmp_path / "empty"), "CARECITE_PATHS__DATA_MIRROR": str(tmp_path / "nomirror")}
    out = run_cli(["search", "anything"], env)
    assert out.returncode == 2 and "carecite ingest" in out.stderr
    ing = run_cli(["ingest", "--corpus", "medquad"], env)
    assert ing.returncode == 2 and "Download" in ing.stderr and "CARECITE_PATHS__DATA_MIRROR" in ing.stderr


def test_loadtest_command_serves_the_given_index(small_index):
    """`carecite --preset fast --data-dir D loadtest --serve` starts a server on that index and reports 0 errors."""
    out = run_cli(["--preset", "fast", "--data-dir", str(small_index.paths.data_dir), "loadtest", "--serve",
                   "--clients", "2", "--per-client", "2", "--json"])
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)
    assert (res["requests"], res["errors"]) == (4, 0)
    assert res["generator"] == "extractive" and res["mean_citations"] > 0
