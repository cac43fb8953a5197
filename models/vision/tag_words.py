"""Everyday words for what is seen: "dog" over the 120 breeds, "car", "food", "water",
"person"... each over the tag labels it covers.

    classes_for("dogs")          # ['Chihuahua', 'Japanese spaniel', ...]  (plural folded)
    classes_for("people")        # ['person', 'scuba diver', 'groom', 'ballplayer']
    classes_for("xylophone")     # []  (not an everyday word: match the label as typed)
    words_for("tabby")           # ['animal', 'cat', 'mammal']
    everyday_word("puppies")     # 'dog'

The tags a video gets are ImageNet class labels (a breed, not "dog") plus the visual
stage's own "person" (people detector) and "text" (on-screen text read by OCR); a user
types the everyday word. tag_words.json holds, for a few hundred such words, the labels
each covers, and aliases ("puppy" -> "dog", "people" -> "person"). It is made by
models/vision/build_tag_words.py from WordNet 3.0's hypernyms over the ImageNet classes,
curated by hand; WordNet 3.0 Copyright 2006 by Princeton University, used under its
licence (repeated in the JSON's "licence" field).

A word is folded to the vocabulary's form: case, surrounding spaces, English plurals
("puppies", "knives", "buses") and a few irregular ones ("people", "mice", "geese").
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

WORDS_FILE = Path(__file__).with_name("tag_words.json")

IRREGULAR_PLURALS = {
    "people": "person", "persons": "person", "men": "man", "women": "woman",
    "children": "child", "kids": "kid", "mice": "mouse", "geese": "goose",
    "teeth": "tooth", "feet": "foot", "oxen": "ox", "cacti": "cactus", "fungi": "fungus",
    "sheep": "sheep", "fish": "fish", "deer": "deer", "clothes": "clothes",
    "bus": "bus", "glass": "glass", "grass": "grass",
}


class TagWords:
    """The everyday-word vocabulary of one tag_words.json (see module docstring)."""

    def __init__(self, words: dict[str, list[str]], aliases: dict[str, str]):
        self.words = {w: list(labels) for w, labels in words.items()}
        self.aliases = dict(aliases)
        above: dict[str, set[str]] = {}
        for word, labels in self.words.items():
            for label in labels:
                above.setdefault(label, set()).add(word)
        self._above = {label: sorted(ws) for label, ws in above.items()}

    @classmethod
    def load(cls, path: str | Path = WORDS_FILE) -> "TagWords":
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(raw["words"], raw.get("aliases", {}))

    def everyday_word(self, text: str) -> str | None:
        """The vocabulary's word for what was typed ("Puppies" -> "dog"), or None."""
        for form in _singular_forms(_normalise(text)):
            if form in self.words:
                return form
            if form in self.aliases:
                return self.aliases[form]
        return None

    def classes_for(self, text: str) -> list[str]:
        """The tag labels an everyday word covers, in model order; [] for other words."""
        word = self.everyday_word(text)
        return list(self.words[word]) if word else []

    def words_for(self, label: str) -> list[str]:
        """The everyday words that cover a tag label, alphabetically."""
        return list(self._above.get(label, ()))


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().casefold().replace("-", " "))


def _singular_forms(word: str) -> list[str]:
    """The word itself, then what it would be if it were an English plural."""
    if not word:
        return []
    head, _, last = word.rpartition(" ")
    prefix = f"{head} " if head else ""
    forms = [last]
    if last in IRREGULAR_PLURALS:
        forms.append(IRREGULAR_PLURALS[last])
    elif len(last) > 3 and last.endswith("s") and not last.endswith("ss"):
        if last.endswith("ies"):
            forms.append(last[:-3] + "y")
        if last.endswith("ves"):
            forms += [last[:-3] + "f", last[:-3] + "fe"]
        if last.endswith("es"):
            forms.append(last[:-2])
        forms.append(last[:-1])
    elif len(last) == 3 and last.endswith("s") and last[-2] not in "su":
        forms.append(last[:-1])                   # "cats", "dogs"... of 3-letter words: "tvs"
    return [prefix + f for f in dict.fromkeys(forms)]


@functools.lru_cache(maxsize=1)
def shared_words() -> TagWords:
    """The packaged vocabulary, read once per process."""
    return TagWords.load(WORDS_FILE)


def everyday_word(text: str) -> str | None:
    return shared_words().everyday_word(text)


def classes_for(text: str) -> list[str]:
    return shared_words().classes_for(text)


def words_for(label: str) -> list[str]:
    return shared_words().words_for(label)
