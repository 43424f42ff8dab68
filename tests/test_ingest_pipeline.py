"""The ingest pipeline end to end on real files: incremental, replace-on-change, purge, bad files, PHI."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from carecite.runtime import open_index, open_searcher
from indexes.types import Filters
from ingest.pipeline import Ingestor, SourceSpec
from ingest_helpers import FailingEmbedder  # noqa: E402


def _ingestor(index, embedder, s, **kw):
    return Ingestor(index, embedder, data_mirror=s.paths.data_mirror, show_progress=False, **kw)


def _write_guides(folder: Path, data_mirror: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sepsis.md").write_text("# Sepsis bundle\n\n## Antibiotics\nGive broad-spectrum antibiotics within "
                                      "one hour of recognising septic shock.\n\n## Fluids\nGive 30 mL/kg of "
                                      "crystalloid for hypotension or lactate of 4 mmol/L or more.\n")
    (folder / "asthma.txt").write_text("Asthma action plan. Use a short-acting beta agonist for quick relief. "
                                       "Step up controller therapy if symptoms occur more than twice a week.")
    for f in sorted((data_mirror / "medquad" / "5_NIDDK_QA").glob("*.xml"))[:3]:
        shutil.copy(f, folder / f.name)


def test_incremental_change_purge_and_bad_files(tmp_settings, embedder, data_mirror, tmp_path):
    s = tmp_settings
    guides = tmp_path / "guides"
    _write_guides(guides, data_mirror)
    spec = SourceSpec("guides", path=guides, doc_type="guideline", source="Ward guides")
    with open_index(s, create=True, dim=embedder.dim) as index:
        first = _ingestor(index, embedder, s).run([spec])
        assert not first.errors and first.docs_new == 5 and first.chunks_written > 5
        n = index.count()
        # Unchanged: skipped by fingerprint, no embedding work.
        again = _ingestor(index, embedder, s).run([spec])
        assert again.skipped_sources == ["guides"] and again.chunks_written == 0 and index.count() == n

        # New metadata on unchanged text is rewritten in place, without embedding; dropping it again works too.
        tagged = SourceSpec("guides", path=guides, doc_type="guideline", source="Ward guides",
                            specialty="Critical Care, ")
        relabel = _ingestor(index, embedder, s).run([tagged])
        assert (relabel.docs_relabelled, relabel.docs_unchanged, relabel.chunks_written) == (5, 5, 0)
        assert index.count(Filters(specialty=["critical care"])) == n
        untag = _ingestor(index, embedder, s).run([spec])
        assert (untag.docs_relabelled, untag.chunks_written) == (5, 0)
        assert index.count(Filters(specialty=["critical care"])) == 0 and index.count() == n

        # A changed file replaces its old chunks; bad files are reported and the rest goes on.
        (guides / "sepsis.md").write_text("# Sepsis bundle\n\n## Antibiotics\nGive antibiotics within three hours "
                                          "in the emergency department.\n")
        (guides / "broken.xml").write_text("<Document id='x'><QAPairs><QAPair>")
        (guides / "empty.txt").write_text("")
        (guides / "binary.pdf").write_bytes(b"\x00\x01\x02not a pdf")
        (guides / "latin1.txt").write_bytes("Fi\xe8vre et toux".encode("latin-1"))
        third = _ingestor(index, embedder, s).run([spec])
        failed = {Path(f).name for f, _ in third.errors}
        assert {"broken.xml", "empty.txt", "binary.pdf", "latin1.txt"} <= failed
        assert all(m for _, m in third.errors)
        assert third.docs_changed == 1 and third.docs_unchanged == 4
        sepsis = [c for c, _ in index.scroll(Filters(source=["Ward guides"])) if "Sepsis" in c.metadata["title"]]
        assert sepsis and all("30 mL/kg" not in c.text for c in sepsis)
        assert any("three hours" in c.text for c in sepsis)
        assert index.count() >= n - 2  # nothing else was lost
        # Unchanged again: skipped without parsing, and the bad files are still reported.
        fourth = _ingestor(index, embedder, s).run([spec])
        assert fourth.skipped_sources == ["guides"] and fourth.chunks_written == 0
        assert {Path(f).name for f, _ in fourth.errors} == failed
        assert all(m.endswith("(unchanged since the last ingest)") for _, m in fourth.errors)

        # Removed files are purged only when asked.
        (guides / "asthma.txt").unlink()
        for bad in ("broken.xml", "empty.txt", "binary.pdf", "latin1.txt"):
            (guides / bad).unlink()
        kept = _ingestor(index, embedder, s).run([spec])
        assert kept.docs_removed == 0
        gone = _ingestor(index, embedder, s).run([spec], purge=True)
        assert gone.docs_removed == 1
        assert not [c for c, _ in index.scroll(Filters(source=["Ward guides"])) if "Asthma" in c.text]


def test_phi_reject_keeps_cases_out_and_reports(tmp_settings, embedder):
    s = tmp_settings
    with open_index(s, create=True, dim=embedder.dim) as index:
        rep = _ingestor(index, embedder, s, phi_policy="reject").run([SourceSpec("aci-bench", limit=5)])
        assert len([p for p in rep.phi if p["action"] == "rejected"]) == 5
        assert index.count(Filters(doc_type=["case"])) == 0
        assert "rejected" in rep.summary()
        masked = _ingestor(index, embedder, s, phi_policy="mask").run([SourceSpec("aci-bench", limit=5)])
        assert all(p["action"] == "masked" for p in masked.phi) and masked.docs_new == 5
        texts = [c.text for c, _ in index.scroll(Filters(doc_type=["case"]))]
        assert texts and any("[NAME]" in t for t in texts)
        # Back under "reject": the masked versions stay, and the report says so.
        again = _ingestor(index, embedder, s, phi_policy="reject").run([SourceSpec("aci-bench", limit=5)])
        assert all(p["action"] == "rejected" and p["stored_version_kept"] for p in again.phi)
        assert "5 of the rejected have a version stored" in again.summary()
        assert index.count(Filters(doc_type=["case"])) == len(texts)


def test_missing_corpus_says_what_to_download(tmp_settings, embedder, tmp_path):
    from ingest.readers import DataMissingError
    with open_index(tmp_settings, create=True, dim=embedder.dim) as index:
        with pytest.raises(DataMissingError, match="Download .*MedQuAD"):
            Ingestor(index, embedder, data_mirror=tmp_path / "no-mirror", show_progress=False).run(
                [SourceSpec("medquad")])
        assert index.count() == 0


def test_small_index_search_with_filters(small_index):
    searcher = open_searcher(small_index)
    try:
        hits = searcher.search("What are the symptoms of diabetes?", top_k=5)
        assert hits and hits[0].chunk.metadata["doc_type"] in ("guideline", "reference", "case")
        cases = searcher.search("knee pain", ["doc_type=case"], top_k=5)
        assert cases and all(h.chunk.metadata["doc_type"] == "case" for h in cases)
        assert searcher.search("knee pain", ["source=Nowhere"], top_k=5) == []
    finally:
        searcher.index.close()


def test_interrupted_ingest_resumes_without_redoing_finished_documents(tmp_settings, embedder):
    s = tmp_settings
    spec = [SourceSpec("medquad", limit=30)]
    with open_index(s, create=True, dim=embedder.dim) as index:
        with pytest.raises(KeyboardInterrupt):
            Ingestor(index, FailingEmbedder(embedder, 2), data_mirror=s.paths.data_mirror, show_progress=False,
                     batch_size=64).run(spec)
        stored = index.count()
        assert 0 < stored <= 128
        # Chunks are embedded in windows sorted by length, so the crash may leave no document whole.
        whole = sum(1 for d in index.stored_docs().values() if d.content_hash)
        resumed = Ingestor(index, embedder, data_mirror=s.paths.data_mirror, show_progress=False).run(spec)
        full = index.count()
        # Documents stored whole before the crash are skipped, and no chunk stored before it is embedded again.
        assert resumed.docs_unchanged == whole and resumed.chunks_written <= full - stored
        assert resumed.docs_unchanged + resumed.docs_changed + resumed.docs_new == 30
        again = Ingestor(index, embedder, data_mirror=s.paths.data_mirror, show_progress=False).run(spec)
        assert again.chunks_written == 0 and index.count() == full
        ids = [c.doc_id for c, _ in index.scroll(fields=["doc_id", "doc_chunks"])]
        assert len(set(ids)) == 30
