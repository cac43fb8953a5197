"""Every stage's time on real media, side by side with other revisions.

    .venv/bin/python -m benchmarks.stage_speed --baseline 3ee4ec9 [--rounds 2]
    .venv/bin/python -m benchmarks.stage_speed --rounds 1 --media FILE_OR_GLOB ...

Media (Debian packages): pocketsphinx-testdata's five LibriVox recordings (probe, speech,
text) and opencv-doc's vtest.avi and Megamind.avi (probe, visual). Each revision indexes
them with its own CLI (`python -m app index FILES --library L`, default settings: Whisper
base, beam 5) into a fresh library, in its own process; rounds alternate the revisions.
Per stage: the sum over files of each job's time (its started_at to finished_at in the
library; the first job of a stage includes loading its model), the whole run's wall
time, and the mixed library's speed end to end: the files' total duration over that wall
time (issue 20's "x real time", every stage, talks plus footage). One untimed run first converts or caches the models, so that no revision pays it.
"""
from __future__ import annotations

import argparse
import glob
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchmarks.checkouts import ROOT, trees

LIBRIVOX = "/usr/share/pocketsphinx/test/data/librivox/*.wav"
VIDEOS = ["/usr/share/doc/opencv-doc/examples/data/vtest.avi",
          "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"]


def media() -> list[str]:
    files = sorted(glob.glob(LIBRIVOX)) + [v for v in VIDEOS if os.path.isfile(v)]
    if len(files) < 3:
        sys.exit("needs Debian's pocketsphinx-testdata and opencv-doc")
    return files


def _t(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def run(root: Path, files: list[str], library: Path) -> dict[str, float]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "app", "index", *files, "--library",
                          str(library)], cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode:
        sys.exit(f"{root}: exit {out.returncode}\n{out.stderr[-2000:]}")
    db = sqlite3.connect(library)
    media_s = db.execute("SELECT SUM(duration) FROM media").fetchone()[0] or 0.0
    per: dict[str, float] = {"run (wall)": wall, "x real time (media s / wall s)": media_s / wall}
    for stage, start, end, state in db.execute(
            "SELECT stage, started_at, finished_at, state FROM jobs"):
        if state != "done":
            sys.exit(f"{root}: a {stage} job ended {state}")
        per[stage] = per.get(stage, 0.0) + _t(end) - _t(start)
    db.close()
    return per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", action="append", default=[], metavar="REV")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--media", nargs="+", metavar="FILE_OR_GLOB",
                    help="index these instead of the packaged LibriVox clips and videos")
    args = ap.parse_args()
    files = sorted(f for g in args.media for f in glob.glob(g)) if args.media else media()
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        run(ROOT, files[:1], Path(tmp) / "warmup.db")
        for r in range(args.rounds):
            for label, root in trees(args.baseline):
                per = run(root, files, Path(tmp) / f"{label}-{r}.db")
                for stage, s in per.items():
                    results.setdefault(stage, {}).setdefault(label, []).append(s)
    labels = [label for label, _ in trees(args.baseline)]
    print(f"{len(files)} files, {args.rounds} rounds; seconds (x real time: the files' "
          "duration over the run's wall time), median of rounds (each round)")
    print("| stage | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for stage, by in results.items():
        cells = [f"{statistics.median(by[lb]):.1f} ({', '.join(f'{v:.1f}' for v in by[lb])})"
                 for lb in labels]
        print(f"| {stage} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
