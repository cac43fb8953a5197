"""Search latency side by side with other revisions, on benchmarks.search_quality's library.

    .venv/bin/python -m benchmarks.search_quality          # builds the library (once, cached)
    .venv/bin/python -m benchmarks.search_latency --baseline 3ee4ec9 [--rounds 3]

The queries are search_quality's 75 (paraphrases in four languages, keywords, LibriVox),
each searched in hybrid mode and in full-text mode. Every revision runs in its own process
on its own copy of the library; rounds alternate the revisions so that a busy moment of
the machine hits both. Each process first searches every query once (loading the query
embedder, warming caches), then times every query `--per-query` times. Reported per
revision and mode: median, p95 and max of all timed searches, in ms.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.checkouts import trees

MODES = ("hybrid", "text")

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import indexer.search as S
from indexer.store import Store
lib, queries, per = sys.argv[2], json.loads(open(sys.argv[3]).read()), int(sys.argv[4])
kw = {}
if hasattr(S, "SearchModels"):             # models are passed in (since issue 15)
    from app.search_requests import search_models
    kw["models"] = search_models(None)
store = Store(lib)
out = {}
for mode in %r:
    for q in queries:
        S.search(store, q, mode=mode, **kw)
    times = []
    for q in queries:
        for _ in range(per):
            t = time.perf_counter()
            S.search(store, q, mode=mode, **kw)
            times.append((time.perf_counter() - t) * 1000)
    out[mode] = times
print(json.dumps(out))
""" % (MODES,)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", action="append", default=[], metavar="REV")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-query", type=int, default=3)
    args = ap.parse_args()
    from benchmarks.search_quality import CACHE, queries
    library = CACHE / "lib.db"
    if not library.exists():
        sys.exit(f"{library} is missing: run `python -m benchmarks.search_quality` first")
    qs = [q["text"] for q in queries(json.loads((CACHE / "meta.json").read_text()))]
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        qfile = Path(tmp) / "queries.json"
        qfile.write_text(json.dumps(qs))
        for _ in range(args.rounds):
            for label, root in trees(args.baseline):
                lib = Path(tmp) / f"{label}.db"
                shutil.copy(library, lib)
                out = subprocess.run([sys.executable, "-c", CHILD, str(root), str(lib),
                                      str(qfile), str(args.per_query)], cwd=root,
                                     capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{label}: {out.stderr[-2000:]}")
                for mode, t in json.loads(out.stdout.splitlines()[-1]).items():
                    results.setdefault(label, {}).setdefault(mode, []).extend(t)
                lib.unlink()
    print(f"{len(qs)} queries x {args.per_query} x {args.rounds} rounds per revision and mode (ms)")
    print("| revision | mode | median | p95 | max |")
    print("|---|---|---|---|---|")
    for label, modes in results.items():
        for mode, t in modes.items():
            t = sorted(t)
            print(f"| {label} | {mode} | {statistics.median(t):.2f} | "
                  f"{t[int(0.95 * (len(t) - 1))]:.2f} | {t[-1]:.2f} |")


if __name__ == "__main__":
    main()
