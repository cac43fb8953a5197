"""The people detector (models.vision.people): what it finds, and what it costs.

    python -m benchmarks.people_detector [--split dev|test|all] [--baseline REV]

Pictures, all real and packaged: frames of Debian opencv-doc's vtest.avi (a street with
pedestrians), one every 4 s, are the pictures of people; opencv-doc's photos without people
(PEOPLE lists those with some), the MATE and UKUI wallpapers (Debian, fetched once by
benchmarks.tag_words) and frames of opencv-doc's tree.avi, one every 2 s, are not. Each
picture is scored at its own size by PeopleDetector.score (the best window margin over the
pyramid): found = vtest frames at or over the threshold, false = other pictures over it.
Pictures alternate between dev and test in name order. Cost: CPU seconds of one score() of
a vtest frame scaled to 576, 720 and 1080 lines, 16:9 (median of 9 runs).

With --baseline REV the detector of that git revision (its models/vision/people.py and
weights, extracted with git show) scores the same pictures in the same process: its counts,
the largest margin difference between the two, and its cost beside the current one.
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")
WALLPAPERS = ROOT / "benchmarks" / ".cache" / "tag_words" / "debs"
PEOPLE = re.compile(r"(basketball\d|messi5|ml|left\d\d|right\d\d)\.(jpg|png)$")


def _frames(name: str, every_s: float) -> dict[str, np.ndarray]:
    cap = cv2.VideoCapture(str(OPENCV / name))
    fps, i, out = cap.get(cv2.CAP_PROP_FPS) or 10.0, 0, {}
    step = max(1, round(fps * every_s))
    while cap.grab():
        if i % step == 0:
            out[f"{Path(name).stem}@{i / fps:04.1f}s"] = cap.retrieve()[1]
        i += 1
    cap.release()
    return out


def pictures() -> tuple[dict[str, np.ndarray], set[str]]:
    """(name -> BGR picture, the names of the pictures of people)."""
    if not OPENCV.is_dir():
        raise SystemExit(f"needs Debian opencv-doc ({OPENCV})")
    if not WALLPAPERS.is_dir():
        from benchmarks import tag_words
        tag_words.pictures()                           # apt-get download + dpkg -x, once
    people = _frames("vtest.avi", 4.0)
    out = dict(people)
    out.update(_frames("tree.avi", 2.0))
    files = [p for p in sorted(OPENCV.glob("*.*")) if p.suffix in (".jpg", ".png")]
    files += sorted(WALLPAPERS.glob("*/usr/share/backgrounds/**/*.*"))
    for p in files:
        if PEOPLE.search(p.name):
            continue
        img = cv2.imread(str(p))
        if img is not None:
            out.setdefault(p.name, img)
    return out, set(people)


def _baseline_detector(rev: str, tmp: Path):
    """PeopleDetector of git revision `rev` (module and weights written under tmp)."""
    for name in ("people.py", "people_detector.npy"):
        blob = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:models/vision/{name}"],
                              capture_output=True, check=True).stdout
        (tmp / name).write_bytes(blob)
    spec = importlib.util.spec_from_file_location("people_baseline", tmp / "people.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PeopleDetector(tmp / "people_detector.npy")


def _cpu(detector, image: np.ndarray, runs: int = 9) -> float:
    detector.score(image)
    times = []
    for _ in range(runs):
        t = time.process_time()
        detector.score(image)
        times.append(time.process_time() - t)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "test", "all"), default="all")
    ap.add_argument("--baseline", metavar="REV", help="also the detector of this git revision")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from models.vision.people import THRESHOLD, PeopleDetector
    pics, people = pictures()
    names = sorted(pics)
    split = {n: ("dev", "test")[i % 2] for i, n in enumerate(names)}
    chosen = [n for n in names if args.split == "all" or split[n] == args.split]
    with tempfile.TemporaryDirectory() as tmp:
        detectors = {"current": PeopleDetector()}
        if args.baseline:
            detectors[args.baseline] = _baseline_detector(args.baseline, Path(tmp))
        margins = {k: {n: d.score(pics[n]) for n in chosen} for k, d in detectors.items()}
        frame = pics[sorted(people)[5]]
        cost = {k: {h: _cpu(d, cv2.resize(frame, (h * 16 // 9, h))) for h in (576, 720, 1080)}
                for k, d in detectors.items()}
    pos = [n for n in chosen if n in people]
    neg = [n for n in chosen if n not in people]
    print(f"split {args.split}: {len(pos)} vtest frames with people, {len(neg)} pictures "
          f"without; threshold {THRESHOLD}")
    print("| detector | vtest frames found | pictures without people over | CPU per frame "
          "576p / 720p / 1080p |")
    print("|---|---|---|---|")
    for k, m in margins.items():
        found = sum(m[n] is not None and m[n] >= THRESHOLD for n in pos)
        false = [n for n in neg if m[n] is not None and m[n] >= THRESHOLD]
        c = cost[k]
        print(f"| {k} | {found}/{len(pos)} | {len(false)}/{len(neg)} | "
              f"{c[576]:.3f} / {c[720]:.3f} / {c[1080]:.3f} s |")
        if false:
            print(f"  over the threshold without people: {', '.join(false)}")
        missed = [n for n in pos if m[n] is None or m[n] < THRESHOLD]
        if missed:
            print(f"  vtest frames missed: {', '.join(missed)}")
    if args.baseline:
        a, b = margins["current"], margins[args.baseline]
        diff = max(abs(a[n] - b[n]) for n in chosen if a[n] is not None and b[n] is not None)
        same_none = all((a[n] is None) == (b[n] is None) for n in chosen)
        print(f"largest margin difference current vs {args.baseline}: {diff:.2e} over "
              f"{len(chosen)} pictures{'' if same_none else ' (too small for one differs)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
