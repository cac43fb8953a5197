"""The long speech set through the speech engine of other checkouts, interleaved.

    git worktree add /tmp/before e641475
    .venv/bin/python -m benchmarks.speech_checkouts /tmp/before . --repeat 2
    .venv/bin/python -m benchmarks.speech_checkouts . --beam 5 3 --repeat 2   # beam sizes

Each run is its own process, and its wall time includes loading the model. The output
gives wall time, RTF, user+system CPU s, peak RSS, and a digest of the transcript text,
so you can see whether two revisions wrote the same words. The set is benchmarks.speech's
"long" set, which `python -m benchmarks.speech --sets long` generates into the cache.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache" / "speech"

CHILD = r"""
import glob, hashlib, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
t0 = time.time()
from models import asr
eng = asr.load_engine("faster-whisper", "base", models_dir=Path(sys.argv[2]))
files = sorted(glob.glob(os.path.join(sys.argv[3], sys.argv[5])))
h, n, audio = hashlib.sha1(), 0, 0.0
for f in files:
    info, segs = eng.transcribe(f, beam_size=int(sys.argv[4]))
    for s in segs:
        n += 1
        h.update(s.text.encode())
    audio += info.duration
wall = time.time() - t0
r = resource.getrusage(resource.RUSAGE_SELF)
print(f"wall {wall:.1f} s  RTF {wall / audio:.4f}  CPU {r.ru_utime + r.ru_stime:.1f} s  "
      f"peak RSS {r.ru_maxrss // 1024} MB  segments {n}  text {h.hexdigest()[:8]}  "
      f"load {open('/proc/loadavg').read().split()[0]}")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkouts", nargs="+", type=Path)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--beam", type=int, nargs="+", default=[5], help="beam sizes, interleaved")
    ap.add_argument("--models-dir", type=Path, default=CACHE / "models")
    ap.add_argument("--files", default="long*.m4a",
                    help="which cached files (a glob), e.g. 'hour-*.m4a' for the one-file hour set")
    args = ap.parse_args()
    if not list(CACHE.glob(args.files)):
        sys.exit(f"no {args.files} in {CACHE}: run `python -m benchmarks.speech --sets long` once "
                 "(it makes the long set, and the hour file unless given --no-hour)")
    for _ in range(args.repeat):
        for checkout in args.checkouts:
            for beam in args.beam:
                out = subprocess.run([sys.executable, "-c", CHILD, str(checkout.resolve()), str(args.models_dir),
                                      str(CACHE), str(beam), args.files], capture_output=True, text=True)
                line = out.stdout.strip().splitlines()[-1] if out.returncode == 0 else out.stderr.strip()[-300:]
                print(f"{checkout} beam {beam}: {line}", flush=True)


if __name__ == "__main__":
    main()
