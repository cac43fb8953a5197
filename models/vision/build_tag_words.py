"""Re-derive tag_words.json: the everyday words a user types for what is seen, each over
the ImageNet classes it covers (see tag_words.py for how the product reads it).

    python -m models.vision.build_tag_words [--cache DIR] [--write]

Development machines only (the product just reads the JSON). It needs two packages,
downloaded once into --cache with their ordinary clients and read offline:

* Debian `wordnet-base` (WordNet 3.0 noun database: data.noun, index.noun), for the
  hypernym pointers ("@", "@i") that put "Chihuahua" under dog.n.01;
* PyPI `timm` (wheel, read as a zip), for timm/data/_info/imagenet_synsets.txt: the
  ImageNet-1k WordNet ids in model order. The order is checked against
  imagenet_classes.txt (each class's first name must be one of its synset's lemmas).

A word covers the classes under its WordNet heads, plus curated additions (ImageNet has
no tree or water class, but "lakeside" shows water) and minus curated drops (WordNet
puts "menu", "plate" and "hay" under food). Labels shared by two classes of which only
one is under the word ("crane" the bird and the machine) are left out of it, since a tag
row holds the label only. Labels the visual stage writes itself ("person" from the
people detector, "text" where OCR read a line) are listed where they belong.

WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. Its licence
permits use, copying, modification and distribution for any purpose without fee, with
this notice kept; the notice is repeated in the JSON's "licence" field.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .image_features import load_labels
from .tag_words import WORDS_FILE

CACHE = Path(__file__).resolve().parents[2] / "benchmarks" / ".cache" / "tag_words"
SYNSETS_IN_WHEEL = "timm/data/_info/imagenet_synsets.txt"
WORDNET_NOTICE = (
    "Word hierarchy from WordNet 3.0 (Debian package wordnet-base). WordNet 3.0 Copyright "
    "2006 by Princeton University. All rights reserved. Permission to use, copy, modify and "
    "distribute this software and database and its documentation for any purpose and without "
    "fee or royalty is hereby granted, provided that you agree to comply with the following "
    "copyright notice and statements, including the disclaimer, and that the same appear on "
    "ALL copies of the software, database and documentation, including modifications that "
    "you make for internal use or for distribution. THIS SOFTWARE AND DATABASE IS PROVIDED "
    "\"AS IS\" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR "
    "IMPLIED. The name of Princeton University or Princeton may not be used in advertising "
    "or publicity pertaining to distribution of the software and/or database. Title to "
    "copyright in this software, database and any associated documentation shall at all "
    "times remain with Princeton University and LICENSEE agrees to preserve same.")

# word -> (WordNet heads as lemma.n.NN, labels added, labels dropped)
WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    # animals
    "animal": (("animal.n.01",), (), ()),
    "mammal": (("mammal.n.01",), (), ()),
    "dog": (("dog.n.01", "wild_dog.n.01"), (), ()),
    "wolf": (("wolf.n.01",), (), ()),
    "fox": (("fox.n.01",), (), ()),
    "bear": (("bear.n.01",), ("giant panda",), ()),
    "panda": ((), ("giant panda", "lesser panda"), ()),
    "cat": (("cat.n.01", "big_cat.n.01"), (), ()),
    "lion": ((), ("lion",), ()),
    "tiger": ((), ("tiger",), ()),
    "monkey": (("monkey.n.01",), (), ()),
    "ape": (("ape.n.01",), (), ()),
    "primate": (("primate.n.02",), (), ()),
    "horse": (("equine.n.01",), (), ()),
    "cow": (("bovine.n.01",), ("water buffalo", "bison"), ()),
    "sheep": (("sheep.n.01",), ("bighorn",), ()),
    "pig": (("swine.n.01",), (), ()),
    "elephant": (("elephant.n.01",), (), ()),
    "rabbit": (("leporid.n.01",), (), ()),
    "rodent": (("rodent.n.01",), (), ()),
    "squirrel": (("squirrel.n.01",), (), ()),
    "whale": ((), ("grey whale", "killer whale"), ()),
    "seal": ((), ("sea lion",), ()),
    "bird": (("bird.n.01",), (), ()),
    "duck": (("duck.n.01",), ("goose",), ()),
    "owl": (("owl.n.01",), (), ()),
    "eagle": (("eagle.n.01",), ("kite", "vulture"), ()),
    "parrot": (("parrot.n.01",), (), ()),
    "penguin": (("penguin.n.01",), (), ()),
    "chicken": ((), ("cock", "hen"), ()),
    "fish": (("fish.n.01",), (), ()),
    "shark": (("shark.n.01",), (), ()),
    "insect": (("insect.n.01",), (), ()),
    "bug": (("insect.n.01", "spider.n.01"), (), ()),
    "butterfly": (("butterfly.n.01",), (), ()),
    "beetle": (("beetle.n.01",), (), ()),
    "spider": (("spider.n.01",), (), ()),
    "snake": (("snake.n.01",), (), ()),
    "lizard": (("lizard.n.01",), (), ()),
    "turtle": (("turtle.n.02",), (), ()),
    "reptile": (("reptile.n.01",), (), ()),
    "frog": (("frog.n.01",), (), ()),
    "crab": (("crab.n.01",), (), ()),
    "shellfish": (("crustacean.n.01", "mollusk.n.01"), (), ()),
    # vehicles
    "vehicle": (("vehicle.n.01",), (), ()),
    "car": (("car.n.01",), ("police van", "pickup", "car wheel", "grille"), ()),
    "truck": (("truck.n.01",), (), ("minivan",)),
    "bus": ((), ("school bus", "trolleybus", "minibus"), ()),
    "bicycle": (("bicycle.n.01",), ("tricycle", "unicycle"), ()),
    "motorcycle": (("motorcycle.n.01",), ("motor scooter",), ()),
    "train": (("train.n.01",), ("electric locomotive", "steam locomotive", "passenger car",
                                "freight car", "streetcar"), ()),
    "boat": (("vessel.n.02",), (), ()),
    "ship": (("ship.n.01",), ("liner", "schooner"), ()),
    "plane": (("aircraft.n.01",), (), ("balloon", "airship")),
    "aircraft": (("aircraft.n.01",), (), ()),
    # food and drink
    "food": (("food.n.01", "food.n.02"), (),
             ("menu", "plate", "hay", "cup", "red wine", "espresso", "eggnog")),
    "fruit": (("edible_fruit.n.01",), (), ()),
    "vegetable": (("vegetable.n.01",), (), ()),
    "bread": (("bread.n.01",), (), ("meat loaf",)),
    "dessert": (("dessert.n.01",), ("chocolate sauce",), ()),
    "drink": (("beverage.n.01",), ("beer bottle", "wine bottle", "beer glass"), ("cup",)),
    "coffee": ((), ("espresso", "espresso maker", "coffee mug", "coffeepot"), ()),
    "mushroom": (("fungus.n.01",), ("mushroom",), ()),
    # plants and landscape: ImageNet has no tree, water or sky class, only scenes
    "plant": (("vascular_plant.n.01", "fungus.n.01"), ("pot", "greenhouse", "rapeseed"), ()),
    "flower": (("flower.n.01",), ("pot",), ()),
    "tree": ((), ("valley", "lakeside", "alp", "greenhouse"), ()),
    "water": ((), ("lakeside", "seashore", "sandbar", "coral reef", "geyser", "breakwater",
                   "dam", "fountain", "boathouse", "canoe", "paddle", "snorkel",
                   "scuba diver", "speedboat"), ()),
    "sea": ((), ("seashore", "sandbar", "coral reef", "breakwater", "promontory"), ()),
    "beach": ((), ("seashore", "sandbar"), ()),
    "lake": ((), ("lakeside", "boathouse"), ()),
    "mountain": ((), ("alp", "volcano", "valley", "cliff"), ()),
    "landscape": (("geological_formation.n.01",), (), ()),
    # buildings and places
    "building": (("building.n.01",), ("castle", "dome", "triumphal arch", "bell cote",
                                      "prison", "water tower", "patio"), ()),
    "house": (("dwelling.n.01",), ("boathouse", "barn"), ()),
    "church": ((), ("church", "mosque", "monastery", "bell cote", "altar"), ()),
    "bridge": (("bridge.n.01",), (), ()),
    "shop": (("shop.n.01",), ("grocery store",), ()),
    "street": ((), ("street sign", "traffic light", "parking meter", "cab", "streetcar",
                    "trolleybus", "manhole cover", "police van", "moving van"), ()),
    # things at home
    "furniture": (("furniture.n.01",), (), ()),
    "chair": (("chair.n.01",), ("folding chair",), ()),
    "table": ((), ("dining table", "desk", "pool table"), ()),
    "bed": ((), ("four-poster", "studio couch", "crib", "cradle", "quilt"), ()),
    "sofa": (("sofa.n.01",), (), ()),
    "kitchen": ((), ("refrigerator", "dishwasher", "microwave", "stove", "toaster",
                     "Dutch oven", "frying pan", "wok", "caldron", "spatula"), ()),
    "bottle": (("bottle.n.01",), (), ()),
    "cup": ((), ("cup", "coffee mug"), ()),
    "toy": (("toy.n.01",), ("teddy",), ()),
    "book": ((), ("book jacket", "bookcase", "bookshop", "library", "comic book"), ()),
    # devices
    "computer": (("computer.n.01",), ("computer keyboard", "mouse", "monitor", "desktop computer"),
                 ("slide rule", "web site")),
    "phone": (("telephone.n.01",), (), ()),
    "screen": ((), ("monitor", "screen", "television", "web site"), ()),
    "television": ((), ("television", "screen", "home theater"), ()),
    "camera": (("camera.n.01",), ("tripod", "lens cap"), ()),
    "clock": (("clock.n.01",), ("digital watch", "stopwatch"), ()),
    "instrument": (("musical_instrument.n.01",), (), ()),
    "guitar": (("guitar.n.01",), (), ()),
    "piano": (("piano.n.01",), (), ()),
    "drum": ((), ("drum", "steel drum"), ()),
    # clothing and sport
    "clothes": (("clothing.n.01",), (), ("mask",)),
    "hat": (("headdress.n.01",), (), ()),
    "shoe": (("footwear.n.02",), (), ()),
    "ball": (("ball.n.01",), (), ("punching bag",)),
    "weapon": (("weapon.n.01",), (), ()),
    "gun": (("gun.n.01",), (), ()),
    # seen by the visual stage's own detectors, not ImageNet
    "person": (("person.n.01",), ("person",), ()),
    "text": ((), ("text",), ()),
    "sign": ((), ("text", "street sign"), ()),
}

# other words for the same thing (checked: each target is a word above)
ALIASES = {
    "people": "person", "human": "person", "man": "person", "woman": "person",
    "child": "person", "kid": "person", "pedestrian": "person", "crowd": "person",
    "someone": "person", "writing": "text", "words": "text", "caption": "text",
    "puppy": "dog", "doggy": "dog", "kitten": "cat", "kitty": "cat", "pony": "horse",
    "cattle": "cow", "bull": "cow", "hog": "pig", "bunny": "rabbit", "hen": "chicken",
    "rooster": "chicken", "poultry": "chicken",
    "automobile": "car", "auto": "car", "lorry": "truck", "bike": "bicycle",
    "motorbike": "motorcycle", "airplane": "plane", "aeroplane": "plane", "jet": "plane",
    "vessel": "boat", "meal": "food", "dish": "food", "beverage": "drink",
    "fungus": "mushroom", "forest": "tree", "woods": "tree",
    "ocean": "sea", "coast": "sea", "shore": "beach", "river": "water",
    "scenery": "landscape", "nature": "landscape", "hill": "mountain",
    "home": "house", "store": "shop", "road": "street", "couch": "sofa", "desk": "table",
    "laptop": "computer", "pc": "computer", "telephone": "phone", "mobile": "phone",
    "smartphone": "phone", "monitor": "screen", "display": "screen", "tv": "television",
    "watch": "clock", "clothing": "clothes", "dress": "clothes", "cap": "hat",
    "helmet": "hat", "footwear": "shoe", "boot": "shoe", "sneaker": "shoe",
    "music": "instrument", "rifle": "gun", "pistol": "gun",
}


# ---- WordNet --------------------------------------------------------------------------------

class WordNetNouns:
    """The noun part of a WordNet 3.0 database folder: synset lemmas and hypernyms."""

    def __init__(self, folder: Path):
        self.lemmas: dict[str, list[str]] = {}       # offset -> lemmas
        self.parents: dict[str, list[str]] = {}      # offset -> hypernym offsets
        for line in (folder / "data.noun").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):                # the licence header
                continue
            f = line.split(" | ")[0].split()
            n = int(f[3], 16)
            k = 4 + 2 * n
            ptrs = f[k + 1:k + 1 + 4 * int(f[k])]
            self.lemmas[f[0]] = [f[4 + 2 * i] for i in range(n)]
            self.parents[f[0]] = [ptrs[i + 1] for i in range(0, len(ptrs), 4)
                                  if ptrs[i] in ("@", "@i")]
        self.senses: dict[str, list[str]] = {}       # lemma -> offsets, sense order
        for line in (folder / "index.noun").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            f = line.split()
            self.senses[f[0]] = f[6 + int(f[3]):]

    def offset(self, name: str) -> str:
        """'dog.n.01' -> the offset of the noun dog's first sense (NLTK's numbering)."""
        lemma, _, sense = name.rpartition(".n.")
        return self.senses[lemma.lower()][int(sense) - 1]

    def ancestors(self, offset: str) -> set[str]:
        seen, todo = set(), [offset]
        while todo:
            for p in self.parents[todo.pop()]:
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        return seen


def build(wordnet: WordNetNouns, synsets: list[str], label_lines: list[str]) -> dict:
    labels = [ln.split(",")[0].strip() for ln in label_lines]
    if len(synsets) != len(labels):
        raise SystemExit(f"{len(synsets)} synsets for {len(labels)} labels")
    for wnid, label in zip(synsets, labels):
        lemmas = [w.replace("_", " ").lower() for w in wordnet.lemmas[wnid[1:]]]
        if label.lower() not in lemmas:
            raise SystemExit(f"class order differs: {wnid} {lemmas} vs {label!r}")
    known = set(labels) | {"person", "text"}
    above = [wordnet.ancestors(w[1:]) | {w[1:]} for w in synsets]
    words = {}
    for word, (heads, added, dropped) in WORDS.items():
        offsets = {wordnet.offset(h) for h in heads}
        inside = [i for i, a in enumerate(above) if a & offsets]
        # a label two classes share goes in only when both are under the word
        ambiguous = {labels[i] for i in inside
                     if sum(labels[j] == labels[i] for j in inside) < labels.count(labels[i])}
        chosen = {labels[i] for i in inside} - ambiguous - set(dropped)
        for label in (*added, *dropped):
            if label not in known:
                raise SystemExit(f"{word}: {label!r} is not an ImageNet label")
        chosen |= set(added)
        if not chosen:
            raise SystemExit(f"{word} covers no class")
        order = {label: i for i, label in reversed(list(enumerate(labels)))}
        words[word] = sorted(chosen, key=lambda lb: (order.get(lb, -1), lb))
    for alias, word in ALIASES.items():
        if word not in words:
            raise SystemExit(f"alias {alias!r} -> unknown word {word!r}")
    aliases = dict(sorted(ALIASES.items()))
    return {"licence": WORDNET_NOTICE,
            "source": "models/vision/build_tag_words.py (wordnet-base, timm imagenet_synsets)",
            "words": dict(sorted(words.items())), "aliases": aliases}


# ---- the packages ---------------------------------------------------------------------------

def fetch(cache: Path) -> tuple[Path, Path]:
    """The WordNet folder and the timm wheel, downloaded once into `cache`."""
    cache.mkdir(parents=True, exist_ok=True)
    wn = cache / "wordnet-base" / "usr" / "share" / "wordnet"
    if not (wn / "data.noun").is_file():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["apt-get", "download", "-q", "wordnet-base"], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL)
            deb = next(Path(tmp).glob("*.deb"))
            subprocess.run(["dpkg", "-x", str(deb), str(cache / "wordnet-base")], check=True)
    wheels = sorted(cache.glob("timm-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary", ":all:", "-d", str(cache), "timm"], check=True)
        wheels = sorted(cache.glob("timm-*.whl"))
    return wn, wheels[-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--write", action="store_true", help=f"write {WORDS_FILE.name}")
    args = ap.parse_args(argv)
    wn_dir, wheel = fetch(args.cache)
    with zipfile.ZipFile(wheel) as z:
        synsets = z.read(SYNSETS_IN_WHEEL).decode().split()
    data = build(WordNetNouns(wn_dir), synsets, load_labels())
    covered = {lb for labels in data["words"].values() for lb in labels}
    print(f"{len(data['words'])} words, {len(data['aliases'])} aliases, "
          f"{len(covered)} labels covered ({wheel.name})")
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    if args.write:
        WORDS_FILE.write_text(text, encoding="utf-8")
        print(f"wrote {WORDS_FILE}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
