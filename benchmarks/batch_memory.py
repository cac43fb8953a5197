"""Worker memory across a batch of hundreds of files: it must stay flat.

    .venv/bin/python -m benchmarks.batch_memory [--files 200] [--model base]

Makes N distinct short speech clips (espeak-ng), indexes them with the real
runner and worker, and samples the worker's RSS after every job.
"""
from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
import time
from pathlib import Path

WORDS = ("river market window seven orange quietly engine garden silver morning "
         "bridge pencil thunder coffee planet library yellow winter station music").split()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--model", default="base")
    args = ap.parse_args()

    from app.runner import Runner
    from app.settings import Settings
    from indexer.intake import discover, take
    from indexer.store import Store

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        media = tmp / "media"
        media.mkdir()
        for i in range(args.files):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))
            subprocess.run(["espeak-ng", "-w", str(media / f"clip{i:04d}.wav"), text],
                           check=True, capture_output=True)
        library = tmp / "lib.db"
        store = Store(library)
        for path, _ in discover([media]):
            take(store, path)
        store.close()

        samples: list[float] = []
        runner = None

        def on_event(e):
            if e["type"] == "job_finished" and e["stage"] == "speech":
                pid = runner.current_worker_pid
                if pid:
                    samples.append(rss_mb(pid))
                    if len(samples) % 25 == 0:
                        print(f"  after {len(samples)} files: worker RSS {samples[-1]:.0f} MB",
                              flush=True)

        runner = Runner(library, Settings(whisper_model=args.model), on_event=on_event)
        t0 = time.monotonic()
        counts = runner.run()
        wall = time.monotonic() - t0
    n = len(samples)
    marks = [m for m in (1, 10, 50, 100, 200, 500) if m <= n] + [n]
    print(f"files={args.files} model={args.model} jobs={counts} wall={wall:.1f}s "
          f"workers={len(runner.worker_pids)}")
    print("worker RSS after speech job k (MB): "
          + ", ".join(f"k={m}: {samples[m - 1]:.0f}" for m in sorted(set(marks))))
    if n >= 20:
        early = sum(samples[5:15]) / 10
        late = sum(samples[-10:]) / 10
        print(f"mean RSS jobs 6-15: {early:.0f} MB, last 10: {late:.0f} MB, "
              f"growth {late - early:+.0f} MB over {n - 15} jobs")


if __name__ == "__main__":
    main()
