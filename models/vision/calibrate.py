"""Re-derive tag_thresholds.json (see tags.py for what the thresholds mean).

    python -m models.vision.calibrate [--models-dir DIR] [--write]

Needs the ffmpeg program and Debian's opencv-doc sample data (development machines only;
the product just reads the JSON). Three sets of pictures:

* natural frames with no ImageNet object: vtest.avi (people walking in a hall) and tree.avi
  (foliage, a hand) every 2 s -> the global threshold is their highest top-1 probability
  plus MARGIN;
* synthetic "nothing there" frames: ffmpeg test sources (testsrc, smptebars, mandelbrot, ...),
  blank/noise/gradient frames, rendered text slides, text documents, calibration chessboards
  and blob drawings -> every label that reaches the global threshold on them gets its own
  threshold (its highest score there plus MARGIN);
* photos of ImageNet objects with the labels a person would accept -> reported as a check:
  each must still yield an accepted tag.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from .image_features import ImageClassifier
from .tags import THRESHOLDS_FILE, TagThresholds, select

DATA = Path("/usr/share/doc/opencv-doc/examples/data")
MARGIN = 0.05
GLOBAL_BOUNDS = (0.2, 0.5)
LAVFI = ["testsrc", "testsrc2", "smptebars", "smptehdbars", "rgbtestsrc", "yuvtestsrc",
         "mandelbrot", "cellauto", "life", "gradients"]
SYNTHETIC_FILES = ["detect_blob.png", "pic1.png", "pic2.png", "pic3.png", "pic4.png", "pic5.png",
                   "pic6.png", "digits.png", "imageTextN.png", "imageTextR.png",
                   "text_defocus.jpg", "text_motion.jpg", "chessboard.png", "sudoku.png",
                   "notes.png", "ellipses.jpg", "gradient.png", "mask.png"]
SYNTHETIC_GLOBS = ["left[0-9]*.jpg", "right[0-9]*.jpg"]
BUTTERFLIES = {"admiral", "ringlet", "monarch", "cabbage butterfly", "sulphur butterfly",
               "lycaenid"}
CARS = {"minivan", "cab", "sports car", "convertible", "beach wagon", "limousine", "racer",
        "police van", "car wheel", "grille", "Model T", "jeep", "ambulance", "pickup"}
POSITIVES = {
    "baboon.jpg": {"baboon"}, "squirrel_cls.jpg": {"fox squirrel"}, "orange.jpg": {"orange"},
    "apple.jpg": {"Granny Smith"}, "fruits.jpg": {"lemon", "orange", "banana", "Granny Smith"},
    "messi5.jpg": {"soccer ball"}, "butterfly.jpg": BUTTERFLIES, "chicky_512.png": {"Pekinese"},
    "licenseplate_motion.jpg": CARS,
}


def _video_frames(path: Path, every: float = 2.0) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    step, frames, i = max(1, round(fps * every)), [], 0
    while cap.grab():
        if i % step == 0:
            ok, img = cap.retrieve()
            if ok:
                frames.append(img)
        i += 1
    cap.release()
    return frames


def natural_negatives() -> dict[str, np.ndarray]:
    out = {}
    for name in ("vtest.avi", "tree.avi"):
        for k, img in enumerate(_video_frames(DATA / name)):
            out[f"{name}@{2 * k}s"] = img
    return out


def _slides() -> dict[str, np.ndarray]:
    out = {}
    texts = ["Quarterly results 2024", "Agenda: budget, hiring", "Chapter 3 - Methods"]
    fonts = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX]
    for i, (text, font) in enumerate(zip(texts, fonts)):
        for bg, fg in ((30, 255), (240, 20), (120, 250)):
            img = np.full((720, 1280, 3), bg, np.uint8)
            cv2.putText(img, text, (80, 300), font, 2.0, (fg, fg, fg), 3, cv2.LINE_AA)
            cv2.putText(img, "- first point", (120, 450), font, 1.2, (fg, fg, fg), 2, cv2.LINE_AA)
            out[f"slide{i}_{bg}"] = img
    return out


def synthetic_negatives() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)
    out["black"] = np.zeros((720, 1280, 3), np.uint8)
    out["white"] = np.full((720, 1280, 3), 255, np.uint8)
    out["gray"] = np.full((720, 1280, 3), 128, np.uint8)
    for s in (10, 30, 60):
        out[f"noise{s}"] = np.clip(128 + rng.normal(0, s, (720, 1280, 3)), 0, 255).astype(np.uint8)
    ramp = np.tile(np.linspace(0, 255, 1280, dtype=np.float32), (720, 1))
    out["ramp"] = cv2.cvtColor(ramp.astype(np.uint8), cv2.COLOR_GRAY2BGR)
    for name, bgr in (("red", (0, 0, 200)), ("green", (0, 160, 0)), ("blue", (200, 0, 0))):
        out[name] = np.full((720, 1280, 3), bgr, np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        for src in LAVFI:
            pattern = os.path.join(tmp, f"{src}_%02d.png")
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                            f"{src}=size=1280x720:rate=1", "-frames:v", "3", pattern], check=True)
            for f in sorted(glob.glob(os.path.join(tmp, f"{src}_*.png"))):
                out[Path(f).stem] = cv2.imread(f)
    out.update(_slides())
    names = list(SYNTHETIC_FILES) + sorted(
        os.path.basename(p) for g in SYNTHETIC_GLOBS for p in glob.glob(str(DATA / g)))
    for name in names:
        img = cv2.imread(str(DATA / name))
        if img is not None:
            out[name] = img
    return out


def calibrate(clf: ImageClassifier) -> tuple[dict, list[str]]:
    report = []
    nat = natural_negatives()
    syn = synthetic_negatives()
    nat_res = clf.analyze(list(nat.values()))
    worst = max(zip(nat, nat_res), key=lambda kv: kv[1].top[0][1])
    global_t = float(np.clip(worst[1].top[0][1] + MARGIN, *GLOBAL_BOUNDS))
    report.append(f"natural negatives: {len(nat)} frames, highest top-1 "
                  f"{worst[1].top[0][1]:.3f} ({worst[1].top[0][0]!r} on {worst[0]}) "
                  f"-> global threshold {global_t:.3f}")
    per_label: dict[int, dict] = {}
    syn_res = clf.analyze(list(syn.values()))
    for name, res in zip(syn, syn_res):
        for idx in np.nonzero(res.probs >= global_t)[0]:
            p = float(res.probs[idx])
            entry = per_label.setdefault(int(idx), {"label": clf.labels[idx], "max": 0.0,
                                                     "seen_on": []})
            entry["seen_on"].append(name)
            entry["max"] = max(entry["max"], p)
    for entry in per_label.values():
        entry["threshold"] = round(min(0.99, entry["max"] + MARGIN), 3)
        entry["max"] = round(entry["max"], 3)
    report.append(f"synthetic negatives: {len(syn)} frames; labels given their own threshold: "
                  + ", ".join(f"{e['label']} {e['threshold']}" for e in per_label.values()))
    thresholds = TagThresholds(global_t, {k: v["threshold"] for k, v in per_label.items()})
    vec = thresholds.vector()
    ok = 0
    for name, wanted in POSITIVES.items():
        img = cv2.imread(str(DATA / name))
        [res] = clf.analyze([img])
        tags = select(res.probs, clf.labels, vec)
        good = any(label in wanted for label, _ in tags)
        ok += good
        report.append(f"positive {name}: tags {[(l, round(p, 2)) for l, p in tags]} "
                      f"{'OK' if good else 'MISSED'}")
    report.append(f"positives tagged sensibly: {ok}/{len(POSITIVES)}")
    data = {"model": "efficientnet-lite0", "global": round(global_t, 3), "margin": MARGIN,
            "natural_negatives": len(nat), "synthetic_negatives": len(syn),
            "positives_ok": f"{ok}/{len(POSITIVES)}",
            "per_label": {str(k): v for k, v in sorted(per_label.items())}}
    return data, report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", default=os.path.join(tempfile.gettempdir(), "avindex-models"))
    ap.add_argument("--write", action="store_true", help=f"write {THRESHOLDS_FILE.name}")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"{DATA} not found: apt-get install opencv-doc", file=sys.stderr)
        return 2
    data, report = calibrate(ImageClassifier(args.models_dir))
    print("\n".join(report))
    if args.write:
        THRESHOLDS_FILE.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {THRESHOLDS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
