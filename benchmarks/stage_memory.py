"""The worker's memory through every stage of one file: `avindex index FILE` into a fresh
library, the worker process's RSS sampled every 0.5 s, the peak and the last sample of
each stage's job (from the library's job times).

    .venv/bin/python -m benchmarks.stage_memory                   # the 60-minute talk
    .venv/bin/python -m benchmarks.stage_memory --file PATH [--code-root WORKTREE]

The default file is benchmarks/first_hit.py's hour of real recorded speech (Debian's
Asterisk English prompts; built once). `benchmarks.first_hit --full` stops after the
speech stage; this runs the speakers and text stages too, as a user's library does.
"""
from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.speech import _rss_mb  # noqa: E402


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def measure(path: Path, code_root: Path) -> tuple[list[tuple], list[tuple]]:
    """(samples (s, main MB, worker MB), jobs (stage, start s, end s))."""
    import sqlean
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib.db"
        t0 = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "app", "index", str(path),
                                 "--library", str(lib), "-q"], cwd=code_root)
        samples = []
        while proc.poll() is None:
            workers = _children(proc.pid)
            samples.append((time.time() - t0, _rss_mb(proc.pid) or 0,
                            max([_rss_mb(k) or 0 for k in workers] or [0])))
            time.sleep(0.5)
        if proc.returncode:
            raise SystemExit(f"avindex index failed ({proc.returncode})")
        db = sqlean.connect(str(lib))

        def at(stamp: str) -> float:
            return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() - t0
        jobs = [(stage, at(a), at(b)) for stage, a, b in db.execute(
            "SELECT stage, started_at, finished_at FROM jobs ORDER BY id")]
        db.close()
    return samples, jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", type=Path)
    ap.add_argument("--code-root", type=Path, default=ROOT,
                    help="run avindex from this checkout (a worktree of another revision)")
    args = ap.parse_args()
    if args.file is None:
        from benchmarks.first_hit import hour_file
        args.file = hour_file(60.0)
    samples, jobs = measure(args.file, args.code_root)
    print(f"{args.file.name}, code {args.code_root}")
    print("| stage | seconds | worker peak MB | worker MB at its end |")
    print("|---|---|---|---|")
    for stage, a, b in jobs:
        inside = [w for t, _, w in samples if a <= t <= b]
        if inside:
            print(f"| {stage} | {b - a:.1f} | {max(inside):.0f} | {inside[-1]:.0f} |")
    print(f"worker peak {max(w for *_, w in samples):.0f} MB, main process peak "
          f"{max(m for _, m, _ in samples):.0f} MB")


if __name__ == "__main__":
    main()
