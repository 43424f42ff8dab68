"""How real messages are read (no model weights): the parts asked, what must be covered, emergencies, scope."""
from __future__ import annotations

from assistant.question import (about_cases, emergency_kind, focus_text, question_parts, unknown_terms)


def pieces(word: str) -> list[str]:
    """A stand-in for the embedder's WordPiece tokenizer (no weights in this tier): short common words are one
    piece, long or odd words split into 3-letter pieces, which is what makes a word "rare"."""
    common = {"diabetes", "california", "southern", "insulin", "glucose", "treated", "treatment", "symptoms"}
    w = word.lower()
    return [w] if w in common or len(w) <= 6 else [w[i:i + 3] for i in range(0, len(w), 3)]


class FakeLexicon:
    """The lexicon's query interface over a fixed vocabulary and variant table (the real one is built at ingest
    and tested in its own module)."""

    def __init__(self, vocab: set[str], variants: dict[str, list[str]]):
        self.vocab, self.table = vocab, variants

    def known(self, word: str) -> bool:
        return word.lower() in self.vocab

    def variants(self, word: str) -> list[str]:
        return self.table.get(word.lower(), [])


def test_one_question_is_one_part_and_the_story_is_context():
    msg = ("I am 84 and live in Southern California. I have had Parkinson for 8 years. "
           "What treatment options are there?")
    assert question_parts(msg) == [msg]
    assert focus_text(msg) == "What treatment options are there?"


def test_several_questions_are_split_and_a_bare_part_gets_the_subject():
    msg = "My mother takes Lipitor for cholesterol. Is it safe with grapefruit juice? What is the usual dose?"
    parts = question_parts(msg)
    assert len(parts) == 2 and parts[0].startswith("Is it safe with grapefruit")
    assert parts[1].startswith("What is the usual dose") and "Lipitor" in parts[1]


def test_requests_without_question_marks_count_as_asking():
    msg = "I AM HAVING PARKINSON FOR LAST 8 YEARS. PLS SUGGEST ANY CARE I NEED TO TAKE."
    assert focus_text(msg) == "PLS SUGGEST ANY CARE I NEED TO TAKE."


def test_context_words_never_veto_only_unknown_focus_terms_do():
    passages = ["Type 2 diabetes is diagnosed with an A1C test or a fasting plasma glucose test."]
    lex = FakeLexicon({"diabetes", "glucose", "california", "a1c"}, {})
    msg = "I live in Southern California near Wieddemanstown. How is type 2 diabetes diagnosed?"
    assert unknown_terms(msg, passages, pieces, lex) == []  # the town is story, not the question
    assert unknown_terms("Is zorbaxitrine safe for type 2 diabetes?", passages, pieces, lex) == ["zorbaxitrine"]


def test_a_brand_name_is_covered_by_its_generic_and_a_known_word_does_not_veto():
    passages = ["Atorvastatin lowers LDL cholesterol; take it once a day."]
    lex = FakeLexicon({"atorvastatin", "flatulence"}, {"lipitor": ["atorvastatin"]})
    assert unknown_terms("Can I take Lipitor at night?", passages, pieces, lex) == []
    # Known to the index but not in these passages: verification, not the veto, decides.
    assert unknown_terms("What causes flatulence?", passages, pieces, lex) == []
    # Without a lexicon the stricter rule holds: a rare word the evidence lacks vetoes.
    assert unknown_terms("Can I take Lipitor at night?", passages, pieces, None) == ["Lipitor"]


def test_inflections_of_known_words_are_not_unknown_names():
    lex = FakeLexicon({"refrigerated", "opened"}, {})
    assert unknown_terms("Is unopened, unrefrigerated insulin still good?", ["Insulin keeps for a month."],
                         pieces, lex) == []


def test_emergencies_are_recognised_in_lay_wording():
    assert emergency_kind("my son swallowed 25 iron pills an hour ago what do i do") == "overdose"
    assert emergency_kind("I have crushing chest pain and my left arm is numb") == "chest pain"
    assert emergency_kind("her face is drooping and she has slurred speech") == "stroke"
    assert emergency_kind("How is type 2 diabetes diagnosed?") is None
    assert emergency_kind("What is the treatment for chest acne?") is None


def test_case_questions_are_told_apart_from_general_ones():
    assert about_cases("Show me similar cases of knee pain") and about_cases("What was the plan for this patient?")
    assert not about_cases("How should unopened insulin be stored?")


def test_a_typo_or_run_together_words_do_not_veto_but_an_unknown_name_does():
    class Typos(FakeLexicon):
        def misspelt_or_plain(self, word: str) -> bool:  # the real rule is tested with the lexicon
            return word.lower() in {"pamplets", "lipnodes"}

    lex = Typos({"hernia", "written", "detected"}, {})
    passages = ["An inguinal hernia happens when tissue pushes through a weak spot in the groin muscles."]
    assert unknown_terms("Do you offer any written pamplets on inguinal hernia?", passages, pieces, lex) == []
    assert unknown_terms("CAN LIPNODES BE DETECTED IN A UPPER GI", passages, pieces, lex) == []
    assert unknown_terms("Is antistaxolin good for hernia?", passages, pieces, lex) == ["antistaxolin"]


def test_a_topic_is_not_an_emergency_an_event_is():
    assert emergency_kind("Are ear lobe creases always heart disease and 100% heart attack pending?") is None
    assert emergency_kind("What is lead poisoning and how is it treated?") is None
    assert emergency_kind("I think I am having a heart attack") == "chest pain"
    assert emergency_kind("my dad has bad chest pain and is sweating") == "chest pain"
    assert emergency_kind("my toddler ingested a dishwasher pod") == "overdose"


def test_a_name_the_index_lacks_vetoes_even_when_it_looks_like_two_words():
    """Regression: "Marrowind-Ashby syndrome" (fictional) splits into two word pieces (marrow ##ind) and reads as
    "marrow" + "ind" run together, so it passed as a typo and the assistant quoted signs of other syndromes."""
    class Loose(FakeLexicon):
        def misspelt_or_plain(self, word: str) -> bool:
            return True  # everything reads as a typo or two words: only the name rule can veto

    passages = ["The Human Phenotype Ontology provides the following list of signs and symptoms for ABCD syndrome."]
    q = "What are the early signs of Marrowind-Ashby syndrome?"
    assert unknown_terms(q, passages, pieces, Loose({"syndrome", "signs"}, {})) == ["Marrowind"]
    assert unknown_terms(q, passages, pieces, None) == ["Marrowind"]
    # Lower case, the same word is not a name: the typo rule may excuse it.
    assert unknown_terms(q.lower(), passages, pieces, Loose({"syndrome", "signs"}, {})) == []
    # A name the evidence holds, or one written in a Title Case sentence, is no veto.
    assert unknown_terms("What is Marrowind syndrome?", ["Marrowind syndrome is rare."], pieces, None) == []
    assert unknown_terms("What Are The Signs Of Marrowind Syndrome?", passages, pieces,
                         Loose({"syndrome"}, {})) == []


def test_names_in_story_or_in_titles_are_not_unknown_names():
    class Loose(FakeLexicon):
        def misspelt_or_plain(self, word: str) -> bool:
            return True

    lex = Loose({"sids"}, {})
    passages = ["Sudden infant death syndrome (SIDS) is the sudden, unexplained death of a baby."]
    story = ("Hello, my name is Pa Xiong and i am a student at Grant High School. I am writing a report on SIDS and "
             "i was hoping you could help me with some information.")
    assert unknown_terms(story, passages, pieces, lex) == []
    assert unknown_terms("we did Whole Exome Sequencing, can SIDS run in families?", passages, pieces, lex) == []


def test_a_question_about_an_animal_needs_evidence_about_that_animal():
    """A dose for a beagle must not be answered with the human dose (seen on a hand-written liveqa question)."""
    human = ["Diphenhydramine (Benadryl) 25-50 mg orally every 4-6 hours; not to exceed 300 mg in 24 hours."]
    lex = FakeLexicon({"diphenhydramine", "benadryl"}, {"benadryl": ["diphenhydramine"]})
    q = "how much benadryl can i give my 20 lb beagle for a bee sting on his nose"
    assert unknown_terms(q, human, pieces, lex) == ["beagle"]
    assert unknown_terms("Is diphenhydramine safe for dogs?", human, pieces, lex) == ["dogs"]
    # Evidence about the animal, or an animal only in the story, is no veto.
    assert unknown_terms("Can a dog bite cause rabies?", ["Rabies spreads through the bite of an infected dog."],
                         pieces, lex) == []
    story = "We have a cat at home. What are the side effects of diphenhydramine?"
    assert unknown_terms(story, human, pieces, lex) == []
