"""Everyday words over tag labels (models.vision.tag_words) and the builder that makes
its JSON from WordNet (models.vision.build_tag_words)."""
from __future__ import annotations

import json

import pytest

from models.vision import build_tag_words as builder
from models.vision.image_features import load_labels
from models.vision.tag_words import WORDS_FILE, TagWords, classes_for, everyday_word, words_for

LABELS = [ln.split(",")[0].strip() for ln in load_labels()]


def test_dog_covers_the_breeds_and_plurals_fold():
    dogs = classes_for("dog")
    assert {"Chihuahua", "golden retriever", "pug", "German shepherd", "dalmatian"} <= set(dogs)
    assert 110 <= len(dogs) <= 130
    assert "tabby" not in dogs and "timber wolf" not in dogs
    assert classes_for("Dogs") == dogs == classes_for("  puppies ")
    assert everyday_word("people") == "person" == everyday_word("Pedestrians")


def test_common_words_reach_their_things():
    expect = {"bird": "goldfinch", "cat": "tabby", "car": "sports car", "vehicle": "tractor",
              "food": "pizza", "fruit": "banana", "fish": "goldfish", "insect": "bee",
              "butterflies": "monarch", "boat": "canoe", "plane": "airliner",
              "instrument": "violin", "furniture": "rocking chair", "building": "church",
              "water": "lakeside", "beaches": "seashore", "flowers": "daisy",
              "people": "person", "writing": "text", "buses": "school bus",
              "knives": [], "wolves": "timber wolf", "butterfly": "admiral"}
    for word, label in expect.items():
        if label == []:
            assert classes_for(word) == [], word
        else:
            assert label in classes_for(word), word


def test_words_for_a_label_and_unrelated_words_find_nothing():
    assert {"animal", "cat", "mammal"} <= set(words_for("tabby"))
    assert "dog" in words_for("pug") and "cat" not in words_for("pug")
    assert words_for("person") == ["person"]
    assert words_for("no such label") == []
    for word in ("xylophone", "democracy", "quantum", "yesterday", "", "   ", "the"):
        assert classes_for(word) == [], word
        assert everyday_word(word) is None


def test_the_packaged_file_is_sane():
    raw = json.loads(WORDS_FILE.read_text(encoding="utf-8"))
    assert "Princeton University" in raw["licence"]
    known = set(LABELS) | {"person", "text"}
    assert 60 <= len(raw["words"]) <= 400
    for word, labels in raw["words"].items():
        assert labels and set(labels) <= known, word
        assert word == word.casefold().strip()
    assert set(raw["aliases"].values()) <= set(raw["words"])
    # abstract WordNet nodes are not offered
    assert not {"entity", "whole", "artifact", "instrumentality", "object"} & set(raw["words"])
    # "crane" is a bird and a machine; a tag row holds the label only, so neither word has it
    assert "crane" not in classes_for("bird")


def test_aliases_point_at_words():
    tw = TagWords({"dog": ["pug"], "person": ["person"]}, {"puppy": "dog", "people": "person"})
    assert tw.classes_for("Puppies") == ["pug"]
    assert tw.classes_for("people") == ["person"] == tw.classes_for("persons")
    assert tw.words_for("pug") == ["dog"]


# ---- the builder, on a tiny WordNet folder in the real file format -------------------------

def _write_wordnet(folder):
    # offset lex type count lemmas... ptr_count ptrs... | gloss
    data = [
        "  1 licence header line",
        "00000001 03 n 01 animal 0 000 | a living thing",
        "00000002 05 n 01 dog 0 001 @ 00000001 n 0000 | a dog",
        "00000003 05 n 01 pug 0 001 @ 00000002 n 0000 | a breed",
        "00000004 05 n 01 crane 0 001 @ 00000001 n 0000 | a bird",
        "00000005 06 n 01 crane 0 000 | a machine",
        "00000006 05 n 02 tabby 0 queen 1 001 @ 00000001 n 0000 | a cat",
    ]
    index = [
        "  1 licence header line",
        "animal n 1 0 1 0 00000001",
        "dog n 1 1 @ 1 0 00000002",
    ]
    (folder / "data.noun").write_text("\n".join(data) + "\n", encoding="latin-1")
    (folder / "index.noun").write_text("\n".join(index) + "\n", encoding="latin-1")


def test_builder_follows_hypernyms_and_leaves_shared_labels_out(tmp_path, monkeypatch):
    _write_wordnet(tmp_path)
    wn = builder.WordNetNouns(tmp_path)
    assert wn.offset("dog.n.01") == "00000002"
    assert wn.ancestors("00000003") == {"00000002", "00000001"}
    monkeypatch.setattr(builder, "WORDS", {"dog": (("dog.n.01",), (), ()),
                                           "animal": (("animal.n.01",), ("person",), ("tabby",))})
    monkeypatch.setattr(builder, "ALIASES", {"puppy": "dog"})
    synsets = ["n00000003", "n00000004", "n00000005", "n00000006"]
    out = builder.build(wn, synsets, ["pug", "crane", "crane", "tabby, queen"])
    assert out["words"] == {"animal": ["person", "pug"], "dog": ["pug"]}
    assert out["aliases"] == {"puppy": "dog"}
    with pytest.raises(SystemExit, match="order"):
        builder.build(wn, synsets, ["pug", "crane", "tabby", "crane"])
