"""The query lexicon (carecite/lexicon.py): spelling against the index's vocabulary, brand <-> generic names,
abbreviations and plurals, mined from real MedQuAD (GHR) and OpenStax pharmacology text; no model weights."""
from __future__ import annotations

import json

import numpy as np
import pytest

from carecite.lexicon import KINDS, Correction, Lexicon, LexiconError, english_words
from ingest.readers import read_corpus, read_path

N_INDEXED = 300  # GHR files in the lexicon; the next ones are held out (their questions name what it lacks)


@pytest.fixture(scope="module")
def ghr_files(data_mirror):
    return sorted((data_mirror / "medquad" / "3_GHR_QA").glob("*.xml"))


@pytest.fixture(scope="module")
def texts(data_mirror, ghr_files):
    docs = [d for f in ghr_files[:N_INDEXED] for d in read_path(f)]
    docs += [d for d in read_corpus("openstax-nursing", data_mirror) if d.source.endswith("pharmacology")]
    return [f"{d.title} — {s.title}\n{s.text}" for d in docs for s in d.sections]


@pytest.fixture(scope="module")
def lex(texts):
    return Lexicon.build(texts)


def _questions(files):
    return [s.title for f in files for d in read_path(f) for s in d.sections if s.title]


def test_built_from_real_text(lex, texts):
    st = lex.stats()
    assert st["texts"] == len(texts) > 1000
    assert st["words"] > 10_000 and st["drug_pairs"] > 100 and st["acronyms"] > 100
    assert lex.known("Wiedemann") and lex.known("hydralazine") and lex.known("HYDRALAZINE")
    assert not lex.known("Wieddeman") and not lex.known("")


def test_misspellings_are_corrected_to_the_index_vocabulary(lex):
    r = lex.read("What causes Beckwith-Wieddeman syndrome?")
    assert r.corrections == [Correction("Wieddeman", "Wiedemann", "spelling")]
    assert r.text == "What causes Beckwith-Wiedemann syndrome?"
    assert r.expansions["Wieddeman"] == ["Wiedemann"]
    r = lex.read("Is Hydrslazine safe in pregnancy?")
    [c] = r.corrections
    assert (c.original, c.replacement.lower(), c.kind) == ("Hydrslazine", "hydralazine", "spelling")
    assert c.replacement == "Hydralazine"  # the writer's capital is kept
    assert lex.read("can i take hydrslazine").text == "can i take hydralazine"
    assert lex.read("is it a syndrom").text == "is it a syndrome"  # a dropped last letter
    assert lex.variants("Hydrslazine")[0].lower() == "hydralazine"


def test_brand_and_generic_names_map_both_ways(lex):
    assert "atorvastatin" in lex.variants("Lipitor") and "Lipitor" in lex.variants("atorvastatin")
    r = lex.read("Can I eat grapefruit on Lipitor?")
    assert Correction("Lipitor", "atorvastatin", "brand") in r.corrections
    assert "Lipitor (atorvastatin)" in r.text  # the user's word stays, the generic is searched too
    assert r.corrections[0].describe() == "read “Lipitor” as “atorvastatin” (brand name)"
    assert "atorvastatin" in r.expansions["Lipitor"]
    r = lex.read("side effects of atorvastatin")
    assert r.corrections == [] and "Lipitor" in r.expansions["atorvastatin"]
    # a misspelled brand is corrected, then resolved
    r = lex.read("Is Lipitr safe?")
    assert [c.kind for c in r.corrections] == ["spelling", "brand"] and "atorvastatin" in r.text


def test_abbreviations_plurals_and_long_forms(lex):
    r = lex.read("Can NSAIDS cause ulcers?")
    assert Correction("NSAIDS", "NSAIDs", "plural") in r.corrections
    assert r.text == "Can NSAIDs cause ulcers?"
    forms = [f.lower() for f in r.expansions["NSAIDS"]]
    assert "nsaid" in forms and any("anti-inflammatory drug" in f for f in forms)
    assert "ulcer" in r.expansions["ulcers"]
    assert "NSAIDs" in lex.variants("nonsteroidal anti-inflammatory drugs")
    assert any("myocardial infarction" in f for f in lex.variants("MI"))  # mined, or the small hand list
    assert any("a1c" in f.lower() for f in lex.variants("HbA1c"))
    r = lex.read("is Beckwith-Wiedemanns syndrome inherited")  # a possessive without its apostrophe
    assert r.corrections == [Correction("Wiedemanns", "Wiedemann", "plural")]
    assert all(c.kind in KINDS for c in r.corrections)


def test_clean_questions_get_no_corrections(lex, ghr_files):
    """MedQuAD questions of the indexed documents, and of documents the lexicon never saw (rare names)."""
    indexed = _questions(ghr_files[:80])
    assert len(indexed) > 300
    assert [(q, r.corrections) for q in indexed if (r := lex.read(q)).corrections] == []
    held_out = _questions(ghr_files[N_INDEXED:N_INDEXED + 120])
    fixed = [(q, lex.read(q).corrections) for q in held_out]
    fixed = [(q, c) for q, c in fixed if c]
    assert len(held_out) > 400 and len(fixed) <= 0.02 * len(held_out), fixed


def test_real_words_names_and_short_words_are_left_alone(lex):
    for q in ("Please reply soon, we live in Southern California near Tacoma",
              "Is unopened, unrefrigerated insulin still good?",
              "What are the symptoms of Mabry syndrome and Banki syndrome?",
              "My doctor Henri Charnley says it is Rutherfurd syndrome",
              "Pars planitis in a 7 yr old, dose 250 mg",
              "teh cta is 2 old"):
        assert lex.read(q).corrections == [], q
    assert lex.correct("Wiedemann") is None  # known words are never corrected
    assert lex.correct("planitis") is None and lex.correct("hart") is None  # medical suffix; short word
    assert "reply" in english_words()


def test_save_load_round_trip_and_missing_file(lex, tmp_path):
    path = lex.save(tmp_path / "sub" / "lexicon.json")
    again = Lexicon.load(path).warm()
    q = "Lipitor or NSAIDS for Beckwith-Wieddeman syndrome?"
    assert again.read(q) == lex.read(q) and again.stats() == lex.stats()
    assert Lexicon.load(tmp_path / "absent.json") is None


@pytest.mark.parametrize("content, says", [("{not json", "corrupt lexicon file"),
                                           ('{"version": 99}', "not a lexicon file of version 1"),
                                           ('{"version": 1, "words": {}}', "corrupt lexicon file"),
                                           ('[1, 2]', "not a lexicon file"),
                                           (b"\xff\xfe\x00garbage", "corrupt lexicon file")])
def test_corrupt_file_is_a_clear_error(tmp_path, content, says):
    path = tmp_path / "lexicon.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(LexiconError) as e:
        Lexicon.load(path)
    assert str(path) in str(e.value) and says in str(e.value) and "carecite lexicon build" in str(e.value)


def test_built_from_an_index_on_both_backends(tmp_path, data_mirror):
    """rebuild_lexicon scrolls every chunk of an Edge or a server index (random vectors: no model needed)."""
    from indexes.base import SparseVec
    from indexes.edge import EdgeIndex
    from indexes.server import ServerIndex
    from indexes.types import Chunk, chunk_id
    from ingest.lexicon_build import rebuild_lexicon

    docs = list(read_corpus("medquad", data_mirror, limit=30))
    chunks = [Chunk(chunk_id(d.doc_id, i), d.doc_id, f"{d.title} — {s.title}\n{s.text}", {"title": d.title})
              for d in docs for i, s in enumerate(d.sections)]
    dense = np.random.default_rng(0).normal(size=(len(chunks), 8)).astype(np.float32)
    sparse = [SparseVec([1], [1.0]) for _ in chunks]
    stats = []
    for name, ix in (("edge", EdgeIndex(tmp_path / "ix", dim=8, create=True)),
                     ("server", ServerIndex(":memory:", dim=8, create=True))):
        with ix:
            ix.upsert(chunks, dense, sparse)
            st = rebuild_lexicon(ix, tmp_path / f"{name}.json")
        assert st["texts"] == len(chunks) and st["seconds"] >= 0
        stats.append({k: v for k, v in st.items() if k not in ("path", "seconds", "cpu_seconds")})
        lex = Lexicon.load(tmp_path / f"{name}.json")
        assert lex.known(docs[0].title.split()[0])
    assert stats[0] == stats[1]


def test_cli_lexicon_build_and_read(tmp_path, data_mirror, capsys):
    from carecite import cli
    from indexes.base import SparseVec
    from indexes.edge import EdgeIndex
    from indexes.types import Chunk, chunk_id

    data = tmp_path / "data"
    docs = [d for f in sorted((data_mirror / "medquad" / "3_GHR_QA").glob("*.xml"))[:150] for d in read_path(f)]
    chunks = [Chunk(chunk_id(d.doc_id, i), d.doc_id, f"{d.title} — {s.title}\n{s.text}")
              for d in docs for i, s in enumerate(d.sections)]
    with EdgeIndex(data / "index", dim=4, create=True) as ix:
        ix.upsert(chunks, np.ones((len(chunks), 4), np.float32), [SparseVec([1], [1.0])] * len(chunks))
    assert cli.main(["--data-dir", str(data), "lexicon", "read", "x"]) == 2  # none built yet
    assert "carecite lexicon build" in capsys.readouterr().err
    assert cli.main(["--data-dir", str(data), "lexicon", "build", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["texts"] == len(chunks) and (data / "lexicon.json").exists()
    assert cli.main(["--data-dir", str(data), "lexicon", "read", "Beckwith-Wieddeman syndrome", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["text"] == "Beckwith-Wiedemann syndrome"
    assert out["corrections"] == [{"original": "Wieddeman", "replacement": "Wiedemann", "kind": "spelling"}]
    (data / "lexicon.json").write_text("{broken")
    assert cli.main(["--data-dir", str(data), "lexicon", "read", "x"]) == 2
    err = capsys.readouterr().err
    assert "corrupt lexicon file" in err and str(data / "lexicon.json") in err


@pytest.mark.slow
def test_ingest_builds_the_lexicon_when_the_index_changes(tmp_path, capsys):
    from carecite import cli
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "ingest", "--corpus", "medquad", "--limit", "3", "--json"]
    assert cli.main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["chunks_written"] > 0 and first["lexicon"]["texts"] == first["index_chunks"]
    assert Lexicon.load(data / "lexicon.json").stats()["texts"] == first["index_chunks"]
    assert cli.main(args) == 0  # nothing changed: the lexicon is kept as it is
    assert json.loads(capsys.readouterr().out)["lexicon"] is None


def test_typos_run_together_words_and_english_are_not_unknown_names(lex):
    """What may not veto an answer (assistant.question.unknown_terms): near misses of index words, two index words
    written as one, plain English; a name the index has never seen still counts as unknown."""
    assert lex.misspelt_or_plain("syndrom") and lex.misspelt_or_plain("atleast")
    assert lex.misspelt_or_plain("Shuntfrom") or lex.misspelt_or_plain("geneschange")
    assert lex.misspelt_or_plain("refrigerator")  # English
    assert not lex.misspelt_or_plain("zorbaxitrine") and not lex.misspelt_or_plain("Folitrax")
