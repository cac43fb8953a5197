"""Everyday words for what is shown: how often a word finds a photo of that thing.

    python -m benchmarks.tag_words [--split dev|test|all]

Real photos from packages (opencv-doc's examples/data, scikit-image's bundled data from its
wheel, the MATE and UKUI wallpapers from Debian, the face photos under
benchmarks/.cache/faces/photos when benchmarks/faces.py has fetched them) and frames of
opencv-doc's vtest.avi, each with the everyday words a person would accept for it (TRUTH;
pictures not listed there are of nothing a word here names: space, coins, gravel, abstract
wallpapers). Each picture gets the visual stage's tags: EfficientNet labels through
models.vision.tags.select, "person" from models.vision.people and "text" from OCR.

before: the labels at the shipped thresholds, a word finds a picture when it is one of its
labels (what tag search could do). after: the picture's evidence bound, the people and text
tags, and the word's labels from models.vision.tag_words. Reported per split (pictures
alternate between dev and test in name order): found = pairs (picture, accepted word)
found / all such pairs; wrong = pairs (picture, word not accepted) found, over WORDS.
"""
from __future__ import annotations

import argparse
import glob
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2

from models.vision.build_tag_words import CACHE

OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")
FACES = Path(__file__).resolve().parent / ".cache" / "faces" / "photos"
TRUTH = {
    "butterfly.jpg": {"butterfly", "insect", "animal"}, "fruits.jpg": {"fruit", "food"},
    "apple.jpg": {"fruit", "food"}, "orange.jpg": {"fruit", "food"},
    "baboon.jpg": {"monkey", "animal"}, "squirrel_cls.jpg": {"squirrel", "animal"},
    "messi5.jpg": {"person", "ball"}, "HappyFish.jpg": {"fish", "animal"},
    "licenseplate_motion.jpg": {"car", "vehicle"}, "building.jpg": {"building"},
    "astronaut.png": {"person"}, "camera.png": {"person", "camera"},
    "chelsea.png": {"cat", "animal"}, "coffee.png": {"coffee", "cup", "drink"},
    "motorcycle_left.png": {"motorcycle", "vehicle"}, "page.png": {"text"},
    "LadyBird.jpg": {"insect", "beetle", "animal"}, "YellowFlower.jpg": {"flower"},
    "FreshFlower.jpg": {"flower"}, "Garden.jpg": {"flower"}, "Aqua.jpg": {"water"},
    "goldfish.png": {"fish", "animal"},
}
NOTHING = {"hubble_deep_field.jpg", "coins.png", "moon.png", "gravel.png", "brick.png",
           "Wood.jpg", "Storm.jpg", "string.jpg", "rhythm.jpg", "2004default.jpg",
           "fluent-color.png", "starry_night.jpg"}
WORDS = sorted({w for ws in TRUTH.values() for w in ws}
               | {"dog", "bird", "boat", "plane", "tree", "food", "car", "person", "text",
                  "building", "water", "horse", "train"})


def pictures() -> dict[str, object]:
    """name -> BGR image (fetching scikit-image's wheel and the wallpapers once)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    if not list(CACHE.glob("scikit_image-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary", ":all:", "-d", str(CACHE), "scikit-image"], check=True)
    for pkg in ("mate-backgrounds", "ukui-wallpapers"):
        target = CACHE / "debs" / pkg
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)   # dpkg -x makes only the last
            with tempfile.TemporaryDirectory() as tmp:
                subprocess.run(["apt-get", "download", "-q", pkg], cwd=tmp, check=True,
                               stdout=subprocess.DEVNULL)
                subprocess.run(["dpkg", "-x", str(next(Path(tmp).glob("*.deb"))), str(target)],
                               check=True)
    out = {}
    with zipfile.ZipFile(sorted(CACHE.glob("scikit_image-*.whl"))[-1]) as z:
        for name in z.namelist():
            base = name.rsplit("/", 1)[-1]
            if base in TRUTH or base in NOTHING:
                out[base] = cv2.imdecode(__import__("numpy").frombuffer(z.read(name), "uint8"),
                                         cv2.IMREAD_COLOR)
    paths = [*OPENCV.glob("*.*"), *(CACHE / "debs").glob("*/usr/share/backgrounds/**/*.*")]
    for p in paths:
        if p.name in TRUTH or p.name in NOTHING:
            out.setdefault(p.name, cv2.imread(str(p)))
    for p in sorted(FACES.glob("*.*")):
        img = cv2.imread(str(p))
        if img is not None:
            out[f"face:{p.name}"] = img
            TRUTH[f"face:{p.name}"] = {"person"}
    cap = cv2.VideoCapture(str(OPENCV / "vtest.avi"))
    fps, i = cap.get(cv2.CAP_PROP_FPS) or 10.0, 0
    while cap.grab():
        if i % round(fps * 8) == 0:
            out[f"vtest@{i / fps:04.0f}s"] = cap.retrieve()[1]
            TRUTH[f"vtest@{i / fps:04.0f}s"] = {"person"}
        i += 1
    return {k: v for k, v in out.items() if v is not None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "test", "all"), default="test")
    args = ap.parse_args(argv)
    from models.vision.image_features import ImageClassifier
    from models.vision.ocr import ScreenTextReader
    from models.vision.people import PeopleDetector
    from models.vision.tag_words import classes_for
    from models.vision.tags import TagThresholds, image_evidence, select
    pics = pictures()
    names = sorted(pics)
    split = {n: ("dev", "test")[i % 2] for i, n in enumerate(names)}
    clf = ImageClassifier(CACHE.parent / "models")
    th = TagThresholds.load().vector()
    people, reader = PeopleDetector(), ScreenTextReader()
    rows = {"before": [0, 0, 0], "after": [0, 0, 0]}      # found, accepted pairs, wrong
    misses, wrongs = [], []
    for name in names:
        if args.split != "all" and split[name] != args.split:
            continue
        img = pics[name]
        [a] = clf.analyze([img])
        small = cv2.resize(img, None, fx=256 / min(img.shape[:2]), fy=256 / min(img.shape[:2]))
        before = {lb.casefold() for lb, _ in select(a.probs, clf.labels, th)}
        after = {lb for lb, _ in select(a.probs, clf.labels, th, evidence=image_evidence(small))}
        if people.sees_person(img)[0]:
            after.add("person")
        if any(sum(c.isalnum() for c in ln.text) >= 2 for ln in reader.read(img)):
            after.add("text")
        truth = TRUTH.get(name, set())
        for word in WORDS:
            hit_b = word in before
            hit_a = bool(after & set(classes_for(word)))
            for key, hit in (("before", hit_b), ("after", hit_a)):
                if word in truth:
                    rows[key][0] += hit
                    rows[key][1] += 1
                elif hit:
                    rows[key][2] += 1
            if word in truth and not hit_a:
                misses.append(f"{name}:{word}")
            if word not in truth and hit_a:
                wrongs.append(f"{name}:{word}({','.join(sorted(after & set(classes_for(word))))})")
    n = sum(1 for x in names if args.split == "all" or split[x] == args.split)
    print(f"split {args.split}: {n} pictures, {len(WORDS)} words")
    print("| | found (accepted word finds the picture) | wrong (other words that find it) |")
    print("|---|---|---|")
    for key, (found, pairs, wrong) in rows.items():
        print(f"| {key} | {found}/{pairs} = {found / max(1, pairs):.2f} | {wrong} |")
    print("missed:", " ".join(misses))
    print("wrong:", " ".join(wrongs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
