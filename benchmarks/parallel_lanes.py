"""Stages of different files side by side (issue 20's lever): one runner indexing speech
files and videos together, against two runners at once, one per kind, each with its own
library (a library has one runner at a time). Rounds interleave the two.

    .venv/bin/python -m benchmarks.parallel_lanes [--rounds 2]

Media: pocketsphinx-testdata's five LibriVox clips (speech) and opencv-doc's vtest.avi and
Megamind.avi (visual; Megamind has speech too), as benchmarks.stage_speed uses them.
"""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.stage_speed import LIBRIVOX, VIDEOS

ROOT = Path(__file__).resolve().parents[1]


def _index(files: list[str], library: Path) -> subprocess.Popen:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.Popen([sys.executable, "-m", "app", "index", *files, "--library",
                             str(library)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _wait(procs: list[subprocess.Popen], t0: float) -> list[float]:
    """Each process's end, in seconds from t0."""
    ends: list[float | None] = [None] * len(procs)
    while None in ends:
        for i, p in enumerate(procs):
            if ends[i] is None and p.poll() is not None:
                if p.returncode:
                    sys.exit(f"avindex index exited {p.returncode}")
                ends[i] = time.perf_counter() - t0
        time.sleep(0.05)
    return ends


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    audio = sorted(glob.glob(LIBRIVOX))
    video = [v for v in VIDEOS if os.path.isfile(v)]
    if not audio or not video:
        sys.exit("needs Debian's pocketsphinx-testdata and opencv-doc")
    print("| round | one runner, all files | two at once: speech files / videos (wall = the later) "
          "| load average |")
    print("|---|---|---|---|")
    for r in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            (one,) = _wait([_index(audio + video, Path(tmp) / "one.db")], t0)
            t0 = time.perf_counter()
            a, v = _wait([_index(audio, Path(tmp) / "a.db"), _index(video, Path(tmp) / "v.db")],
                         t0)
            print(f"| {r} | {one:.1f} s | {a:.1f} / {v:.1f} s | {os.getloadavg()[0]:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
