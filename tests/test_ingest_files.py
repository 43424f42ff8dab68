"""Ingesting an institution's own folders: ids that do not collide, replacement instead of duplicates, every file
that is not read reported, one bad file never stopping the rest, exit codes that tell the truth, resuming a
large document, and BEIR corpora with repeated rows. Real files, the real embedder and a real Edge index."""
from __future__ import annotations

import builtins
import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ingest.pipeline as pipeline
from carecite.cli import main
from carecite.runtime import open_index
from indexes.types import Filters
from ingest.pipeline import Ingestor, SourceSpec
from ingest_helpers import FailingEmbedder  # noqa: E402

SEPSIS_A = "# Sepsis bundle (site A)\n\nGive broad-spectrum antibiotics within one hour of recognising septic shock.\n"
SEPSIS_B = "# Sepsis bundle (site B)\n\nGive 30 mL/kg of crystalloid for hypotension or a lactate of 4 mmol/L.\n"


def _ing(index, embedder, **kw):
    return Ingestor(index, embedder, show_progress=False, **kw)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _docs(index, **filters) -> dict[str, str]:
    """doc_id -> source of every stored document (matching the filters)."""
    return {c.doc_id: c.metadata["source"] for c, _ in index.scroll(Filters(**filters) if filters else None,
                                                                    fields=["doc_id", "source"])}


def test_same_file_name_in_two_sites_are_two_documents(tmp_settings, embedder, tmp_path):
    a = _write(tmp_path / "sites" / "siteA" / "guidelines" / "sepsis.md", SEPSIS_A)
    _write(tmp_path / "sites" / "siteB" / "guidelines" / "sepsis.md", SEPSIS_B)
    spec_a = SourceSpec("siteA", path=tmp_path / "sites" / "siteA")
    with open_index(tmp_settings, create=True, dim=embedder.dim) as index:
        first = _ing(index, embedder).run([spec_a])
        second = _ing(index, embedder).run([SourceSpec("siteB", path=tmp_path / "sites" / "siteB")])
        assert (first.docs_new, second.docs_new, second.errors) == (1, 1, [])
        assert _docs(index) == {"guidelines:siteA/guidelines/sepsis.md": "guidelines",
                                "guidelines:siteB/guidelines/sepsis.md": "guidelines"}
        again = _ing(index, embedder).run([spec_a])  # unchanged, and A is still there
        assert again.skipped_sources == ["siteA"] and len(_docs(index)) == 2
        texts = {c.doc_id: c.text for c, _ in index.scroll()}
        assert "site A" in texts["guidelines:siteA/guidelines/sepsis.md"]

        # A real collision (another folder named siteA, same source): an error naming the id; nothing replaced.
        _write(tmp_path / "elsewhere" / "siteA" / "guidelines" / "sepsis.md", SEPSIS_B)
        other = SourceSpec("other siteA", path=tmp_path / "elsewhere" / "siteA")
        clash = _ing(index, embedder).run([other])
        assert clash.docs_new == 0 and clash.chunks_written == 0
        assert len(clash.errors) == 1 and "guidelines:siteA/guidelines/sepsis.md" in clash.errors[0][1]
        assert str(a.parent.parent.resolve()) in clash.errors[0][1]  # says where the stored one came from
        assert "site A" in {c.doc_id: c.text for c, _ in index.scroll()}["guidelines:siteA/guidelines/sepsis.md"]
        assert "failed" in clash.summary()
        # Told apart by a source label, it goes in.
        other.source = "Other hospital"
        ok = _ing(index, embedder).run([other])
        assert ok.docs_new == 1 and not ok.errors and len(_docs(index)) == 3

        # The folder moved: --replace takes the id over, and says so; the old folder is then read again (not
        # "unchanged, skipped") and its file is the collision now.
        _write(tmp_path / "moved" / "siteA" / "guidelines" / "sepsis.md", SEPSIS_A + "\nReviewed 2024.\n")
        moved = _ing(index, embedder).run([SourceSpec("moved", path=tmp_path / "moved" / "siteA", replace=True)])
        assert moved.taken_over == [("guidelines:siteA/guidelines/sepsis.md", str(spec_a.path.resolve()))]
        assert "replaced 1 document(s) stored from another folder" in moved.summary() and not moved.errors
        texts = {c.doc_id: c.text for c, _ in index.scroll()}
        assert len(texts) == 3 and "Reviewed 2024" in texts["guidelines:siteA/guidelines/sepsis.md"]
        back = _ing(index, embedder).run([spec_a])
        assert not back.skipped_sources and len(back.errors) == 1 and "--replace" in back.errors[0][1]


def test_new_source_relabels_and_old_ids_are_migrated(tmp_settings, embedder, tmp_path, monkeypatch):
    guides = tmp_path / "guides"
    _write(guides / "sepsis.md", SEPSIS_A)
    _write(guides / "renal" / "aki.txt", "Acute kidney injury. Stop nephrotoxic drugs and review fluid status.")
    with open_index(tmp_settings, create=True, dim=embedder.dim) as index:
        # An index written before ids held paths: "<source>:<file name>" (simulated with the old id rule).
        with monkeypatch.context() as m:
            m.setattr(pipeline, "path_doc_id", lambda f, root, source: f"{source or f.parent.name}:{f.name}")
            m.setattr(pipeline, "ID_SCHEME", "old")
            _ing(index, embedder).run([SourceSpec("guides", path=guides, source="Ward")])
        assert set(_docs(index)) == {"Ward:sepsis.md", "Ward:aki.txt"}
        n = index.count()

        migrated = _ing(index, embedder).run([SourceSpec("guides", path=guides, source="Ward")])
        assert sorted(migrated.replaced) == [("Ward:aki.txt", "Ward:guides/renal/aki.txt"),
                                             ("Ward:sepsis.md", "Ward:guides/sepsis.md")]
        assert set(_docs(index)) == {"Ward:guides/sepsis.md", "Ward:guides/renal/aki.txt"} and index.count() == n
        assert "replaced 2 stored document(s)" in migrated.summary()

        relabel = _ing(index, embedder).run([SourceSpec("guides", path=guides, source="Our hospital")])
        assert len(relabel.replaced) == 2 and not relabel.errors
        assert _docs(index) == {"Our hospital:guides/sepsis.md": "Our hospital",
                                "Our hospital:guides/renal/aki.txt": "Our hospital"}
        assert index.count() == n and index.count(Filters(source=["Ward"])) == 0


def _deny(monkeypatch, target: Path):
    """Reading `target` raises PermissionError. chmod 000 as well, but tests may run as root, which chmod does not
    stop, so open() itself is made to refuse that one file (builtins.open and io.open, which pathlib uses)."""
    target.chmod(0)
    real = io.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(io, "open", guarded)


def test_unreadable_file_is_one_error_not_a_crash(tmp_settings, embedder, tmp_path, monkeypatch):
    guides = tmp_path / "guides"
    _write(guides / "sepsis.md", SEPSIS_A)
    secret = _write(guides / "secret.md", SEPSIS_B)
    _deny(monkeypatch, secret)
    with open_index(tmp_settings, create=True, dim=embedder.dim) as index:
        rep = _ing(index, embedder).run([SourceSpec("guides", path=guides)])
        assert rep.docs_new == 1 and list(_docs(index)) == ["guides:guides/sepsis.md"]
        assert rep.errors == [(str(secret), f"{secret}: cannot be read (Permission denied)")]
        monkeypatch.undo()  # readable again: it is read on the next run (the fingerprint changed)
        secret.chmod(0o644)
        again = _ing(index, embedder).run([SourceSpec("guides", path=guides)])
        assert again.docs_new == 1 and not again.errors and len(_docs(index)) == 2


def test_links_loops_fifos_and_odd_files_are_reported(tmp_settings, embedder, tmp_path):
    guides = tmp_path / "guides"
    _write(guides / "sepsis.md", SEPSIS_A)
    outside = _write(tmp_path / "outside" / "asthma.md", "# Asthma\n\nUse a reliever inhaler for quick relief.\n")
    (guides / "linked-folder").symlink_to(outside.parent, target_is_directory=True)
    (guides / "linked.md").symlink_to(outside)  # a linked file is read
    (guides / "loop").symlink_to(guides / "loop")
    (guides / "broken.md").symlink_to(tmp_path / "nowhere.md")
    os.mkfifo(guides / "pipe.md")  # opening it would block for ever
    (guides / "scan.png").write_bytes(b"\x89PNG....")
    bad_name = os.fsencode(guides) + b"/caf\xe9.md"  # a file name that is not UTF-8
    with open(bad_name, "wb") as f:
        f.write(SEPSIS_B.encode())
    with open_index(tmp_settings, create=True, dim=embedder.dim) as index:
        rep = _ing(index, embedder).run([SourceSpec("guides", path=guides)])
        skipped = {Path(p).name: why for p, why in rep.skipped_files}
        assert "symlinked folder" in skipped["linked-folder"] and "not followed" in skipped["linked-folder"]
        assert "symlink loop" in skipped["loop"] and "broken symlink" in skipped["broken.md"]
        assert "FIFO" in skipped["pipe.md"] and "unsupported file type .png" in skipped["scan.png"]
        assert [(Path(p).name, "not valid UTF-8" in m) for p, m in rep.errors] == [("caf\\xe9.md", True)]
        assert set(_docs(index)) == {"guides:guides/sepsis.md", "guides:guides/linked.md"}
        summary = rep.summary()
        assert "5 path(s) not read" in summary and "pipe.md" in summary and "1 file(s) failed" in summary


def test_ingest_exit_codes(tmp_path, capsys):
    data = tmp_path / "data"
    base = ["--preset", "fast", "--data-dir", str(data), "ingest"]
    assert main([*base, str(tmp_path / "no-such-folder")]) == 2
    assert "no such file or folder" in capsys.readouterr().err and not (data / "index").exists()
    assert main([*base, "--corpus", "medqaud"]) == 2
    assert "unknown corpus 'medqaud'" in capsys.readouterr().err

    guides = tmp_path / "guides"
    _write(guides / "sepsis.md", SEPSIS_A)
    assert main([*base, str(guides)]) == 0
    _write(guides / "empty.txt", "")
    assert main([*base, str(guides), "--json"]) == 1
    out = capsys.readouterr()
    assert "empty.txt" in out.err and json.loads(out.out.splitlines()[-1])["errors"][0][0].endswith("empty.txt")
    assert main([*base, str(guides)]) == 1  # unchanged, but the file still fails: still reported, still 1
    assert "empty.txt" in capsys.readouterr().err


def test_question_bytes_that_are_not_utf8_are_a_clear_error(tmp_path):
    env = {**os.environ, "CARECITE_PATHS__DATA_DIR": str(tmp_path)}
    for cmd in (["search", b"\xff"], ["ask", b"fever \xe9"], ["search", b"x", "--filter", b"source=\xff"]):
        r = subprocess.run([sys.executable, "-m", "carecite.cli", "--preset", "fast", *cmd], env=env,
                           capture_output=True, timeout=600)
        err = r.stderr.decode()
        assert r.returncode == 2 and "not valid UTF-8" in err and "Traceback" not in err, (cmd, err[-800:])


def test_large_document_resumes_where_it_stopped(tmp_settings, embedder, tmp_path):
    """One long file (the 20 MB case in small): after an interruption only its missing chunks are embedded."""
    words = ["insulin", "glucose", "renal", "sepsis", "fluid", "dose", "monitor", "review", "lactate", "oxygen"]
    paras = [" ".join(f"Step {i}.{j}: {words[(i + j) % 10]} {words[(i * j) % 10]} checked every {j + 1} hours."
                      for j in range(8)) for i in range(14)]
    big = _write(tmp_path / "manual" / "ward-manual.txt", "\n\n".join(paras))
    spec = [SourceSpec("manual", path=big.parent)]
    with open_index(tmp_settings, create=True, dim=embedder.dim) as index:
        with pytest.raises(KeyboardInterrupt):
            _ing(index, FailingEmbedder(embedder, 2), batch_size=4, max_tokens=64, overlap_tokens=8).run(spec)
        stored = index.count()
        assert stored == 8
        resumed = _ing(index, embedder, batch_size=4, max_tokens=64, overlap_tokens=8).run(spec)
        total = index.count()
        assert total > 16 and (resumed.docs_resumed, resumed.chunks_resumed) == (1, stored)
        assert resumed.chunks_written == total - stored and "resumed 1 document" in resumed.summary()
        doc = index.stored_docs()["manual:manual/ward-manual.txt"]
        assert doc.content_hash and doc.chunks == doc.expected_chunks == total
        again = _ing(index, embedder, batch_size=4, max_tokens=64, overlap_tokens=8).run(spec)
        assert again.chunks_written == 0 and index.count() == total


def _beir(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "antibiotics in septic shock"}) + "\n")
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return folder


ROWS = [{"_id": "d1", "title": "Sepsis", "text": "Give antibiotics within one hour of septic shock."},
        {"_id": "d2", "title": "Asthma", "text": "Use a reliever inhaler for quick relief of wheeze."},
        {"_id": "d3", "title": "Diabetes", "text": "Metformin is the first drug for type 2 diabetes."}]


def test_beir_corpus_repeats_are_kept_once_and_conflicts_fail_before_embedding(tmp_settings, tmp_path,
                                                                               monkeypatch):
    from eval import retrieval
    res = retrieval.run_retrieval_eval(_beir(tmp_path / "repeats", ROWS + [ROWS[0], ROWS[2], ROWS[0]]),
                                       tmp_settings, modes=["sparse"])
    assert res["n_docs"] == 3 and res["n_chunks"] == 3 and res["modes"]["sparse"]["recall@10"] == 1.0
    assert len(res["warnings"]) == 1 and "3 row(s) repeat an earlier row verbatim" in res["warnings"][0]
    assert "Warning:" in res["table"]

    class NoEmbedding:
        def __getattr__(self, name):
            raise AssertionError("the model was used before the corpus was checked")

    monkeypatch.setattr(retrieval, "get_embedder", lambda s: NoEmbedding())
    conflict = _beir(tmp_path / "conflict", ROWS + [{**ROWS[1], "text": "Another text under the same id."}])
    with pytest.raises(ValueError, match=r"1 passage id\(s\) repeated with a different title or text: 'd2' "
                                         r"\(lines 2 and 4\)"):
        retrieval.run_retrieval_eval(conflict, tmp_settings, modes=["sparse"])
