"""Speech the way issue 20 measured it: one `avindex index FILE` per file (its own process,
a fresh library, default settings: every stage an audio file gets), against plain
faster-whisper in its own process per file (the same Whisper base int8 weights, beam 5,
its defaults: what a desktop transcriber runs), and against other revisions of avindex.

    .venv/bin/python -m benchmarks.per_file_cli [--baseline REV] [--rounds 2] [--split test]

The files: benchmarks/spoken_search.py's real recorded speech (Debian's Asterisk prompts,
8 voices, 5 languages; `python -m benchmarks.spoken_search` builds them once). Rounds
alternate the runners, so a busy moment of the machine weighs on all. Per runner: the
summed wall seconds, the real-time factor (wall / audio), and the CPU seconds of the
processes it started (RUSAGE_CHILDREN), which other load moves less than wall time.
"""
from __future__ import annotations

import argparse
import glob
import os
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

from benchmarks.checkouts import ROOT, trees

AUDIO = ROOT / "benchmarks" / ".cache" / "spoken" / "audio"
PLAIN = """
import sys
from faster_whisper import WhisperModel
from models.weights import resolve_model
from app.settings import Settings
folder = resolve_model("base", Settings().resolved_models_dir()).path
model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=2,
                     local_files_only=True)
segments, _ = model.transcribe(sys.argv[1], beam_size=5)
texts = [s.text for s in segments]
if len(sys.argv) > 2:                       # the text, for a WER (benchmarks/long_files.py)
    import json
    json.dump(texts, open(sys.argv[2], "w", encoding="utf-8"))
print(sum(map(len, texts)))
"""


def _seconds(path: str) -> float:
    with wave.open(path) as w:
        return w.getnframes() / w.getframerate()


def timed(cmd: list[str], cwd: Path = ROOT, timeout: float = 1800, env: dict | None = None
          ) -> tuple[float, float]:
    """(wall s, CPU s of the processes it started) of a command run to its end; `env`:
    variables set for it on top of this process's."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, timeout=timeout,
                   env=None if env is None else {**os.environ, **env})
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run(label: str, root: Path | None, files: list[str]) -> tuple[float, float]:
    wall = cpu = 0.0
    for f in files:
        if root is None:
            w, c = timed([sys.executable, "-c", PLAIN, f])
        else:
            with tempfile.TemporaryDirectory() as tmp:
                w, c = timed([sys.executable, "-m", "app", "index", f, "--library",
                              str(Path(tmp) / "lib.db"), "-q"], root)
        wall, cpu = wall + w, cpu + c
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", action="append", default=[], metavar="REV")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--split", default="test", choices=("dev", "test"))
    args = ap.parse_args()
    files = sorted(glob.glob(str(AUDIO / f"{args.split}-*.wav")))
    if not files:
        sys.exit("no audio: run `python -m benchmarks.spoken_search` once to build it")
    audio = sum(_seconds(f) for f in files)
    runners = [("plain faster-whisper", None)] + list(trees(args.baseline))
    for label, root in runners[1:]:                  # models converted or cached, untimed
        run(label, root, files[:1])
    results: dict[str, list] = {label: [] for label, _ in runners}
    for _ in range(args.rounds):
        for label, root in runners:
            results[label].append(run(label, root, files))
    print(f"{len(files)} files, {audio:.0f} s of audio, one process per file, "
          f"{args.rounds} rounds (wall s / CPU s per round)")
    print("| runner | wall s | RTF | CPU s | plain's wall / this |")
    print("|---|---|---|---|---|")
    plain = min(w for w, _ in results["plain faster-whisper"])
    for label, _ in runners:
        walls = [w for w, _ in results[label]]
        cpus = [c for _, c in results[label]]
        print(f"| {label} | {' / '.join(f'{w:.1f}' for w in walls)} | "
              f"{min(walls) / audio:.3f} | {' / '.join(f'{c:.1f}' for c in cpus)} | "
              f"{plain / min(walls):.2f} |")


if __name__ == "__main__":
    main()
