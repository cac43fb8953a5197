"""How soon is a dropped 1-hour file searchable? (issue 20: "first search hit within 60 s")

    .venv/bin/python -m benchmarks.first_hit            # first hit, then stop the run
    .venv/bin/python -m benchmarks.first_hit --full     # also the whole speech stage's end:
                                                        # when the first hit came before the
                                                        # speech stage committed per window
    .venv/bin/python -m benchmarks.first_hit --minutes 20
    .venv/bin/python -m benchmarks.first_hit --full --malloc-arenas 1   # the worker's malloc
                                                        # capped at one arena (tried, off:
                                                        # models.asr.MALLOC_ARENAS)
    .venv/bin/python -m benchmarks.first_hit --full --mkl-pool   # MKL's own buffer pool kept
                                                        # in the worker (before: off since,
                                                        # models.asr.MKL_POOL)

The file: real recorded speech, Debian's Asterisk English prompts (Allison Smith, studio
recordings; benchmarks/speakers.py fetches them), the sentence prompts in a fixed order
(benchmarks/spoken_search's selection) joined by 1 s of silence, round after round until
it lasts `--minutes` (60), 16 kHz mono WAV, cached under benchmarks/.cache/first_hit/.

What is timed, from the moment the file is dropped (`indexer.intake.take` on a fresh
library) with avindex's default settings (Whisper base, every stage) in one Runner, as the
GUI and the CLI run it:
- first committed window: the speech stage's first `partial_saved` event;
- first hit: a second connection (a search window open while indexing) searches, every
  0.25 s, the two longest words of the first committed line; the first time the file
  comes back is the first hit (the second it points at is printed beside the line's);
- with --full: the speech stage's end (the first moment anything was searchable before
  per-window commits) and its real-time factor.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import speakers, spoken_search  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "first_hit"
VOICE = "en-allison"
POLL_S = 0.25
RSS_EVERY_S = 2.0


def hour_file(minutes: float) -> Path:
    """The long file of real speech (cached)."""
    from models.audio_stream import SAMPLE_RATE
    path = CACHE / f"{VOICE}-{minutes:g}min.wav"
    if path.exists():
        return path
    sentences = [x for _, x in spoken_search.voice_sentences(VOICE)]
    gap = np.zeros(SAMPLE_RATE, np.float32)
    parts, total, want = [], 0, minutes * 60 * SAMPLE_RATE
    while total < want:
        for x in sentences:
            parts += [x, gap]
            total += len(x) + len(gap)
            if total >= want:
                break
    CACHE.mkdir(parents=True, exist_ok=True)
    speakers._write_wav(path, np.concatenate(parts))
    return path


def run(path: Path, full: bool) -> dict:
    from app.runner import Runner
    from app.settings import Settings
    from indexer.intake import take
    from indexer.search import search
    from indexer.store import Store
    lib = Path(tempfile.mkdtemp(prefix="first_hit-")) / "library.db"
    t0 = time.monotonic()
    store = Store(lib)
    media_id = take(store, path).media_id
    out: dict = {"audio_s": None}
    first_window = threading.Event()
    runner = None

    def on_event(e):
        now = time.monotonic() - t0
        if e.get("stage") != "speech":
            return
        if e["type"] == "job_started":
            out.setdefault("speech_started_s", now)
        elif e["type"] == "partial_saved" and "first_window_s" not in out:
            out.update(first_window_s=now, first_window_upto=e["upto"])
            first_window.set()
        elif e["type"] == "job_finished":
            out.update(speech_done_s=now, speech_state=e["state"])
            first_window.set()
            if full:
                runner.stop()      # the stages after speech are not what is timed here

    runner = Runner(lib, Settings(), on_event=on_event)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    rss: list[tuple[float, float]] = []       # (s after the drop, the worker's RSS in MB)
    threading.Thread(target=_sample_rss, args=(runner, thread, t0, rss), daemon=True).start()
    first_window.wait()
    reader = Store(lib)
    line = reader.transcript(media_id, "speech")[0]
    words = sorted({w.strip(".,!?;:'\"").lower() for w in line["text"].split()}, key=len)[-2:]
    query = " ".join(words)
    while True:
        hits = [h for h in search(reader, query, mode="text") if h.media_id == media_id]
        if hits:
            out.update(first_hit_s=time.monotonic() - t0, query=query,
                       hit_at=round(hits[0].start, 2), line=line["text"],
                       line_at=round(line["start"], 2))
            break
        time.sleep(POLL_S)
    reader.close()
    if not full:
        runner.stop()
    thread.join()
    out["audio_s"] = store.media(media_id)["duration"]
    lines = store.transcript(media_id, "speech")      # the same text run to run, any setting
    out["transcript"] = (len(lines), hashlib.sha1("\n".join(
        f"{ln['start']:.2f} {ln['text']}" for ln in lines).encode()).hexdigest()[:12])
    store.close()
    if full and out.get("speech_done_s"):
        out["speech_rtf"] = (out["speech_done_s"] - out["speech_started_s"]) / out["audio_s"]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)     # the ended worker
    out["peak_rss_children_mb"] = children.ru_maxrss / 1024
    out["worker_cpu_s"] = (children.ru_utime, children.ru_stime)  # load does not change it much
    out["rss"] = rss
    return out


def _sample_rss(runner, thread: threading.Thread, t0: float, rss: list) -> None:
    """The worker's resident memory every RSS_EVERY_S while the run lasts."""
    while thread.is_alive():
        pid = runner.current_worker_pid
        try:
            with open(f"/proc/{pid}/status") as f:
                kb = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))
            rss.append((time.monotonic() - t0, kb / 1024))
        except (OSError, StopIteration, TypeError):
            pass
        time.sleep(RSS_EVERY_S)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--malloc-arenas", type=int, default=None,
                    help="glibc malloc arenas in the worker (AVINDEX_MALLOC_ARENAS; "
                         "0: glibc's default; default: models.asr.MALLOC_ARENAS)")
    ap.add_argument("--mkl-pool", action="store_true",
                    help="keep MKL's own buffer pool in the worker (models.asr.MKL_POOL: off)")
    args = ap.parse_args()
    if args.malloc_arenas is not None:     # the spawned worker inherits it
        os.environ["AVINDEX_MALLOC_ARENAS"] = str(args.malloc_arenas)
    if args.mkl_pool:                      # before the worker is spawned: it inherits these
        os.environ["AVINDEX_MKL_POOL"] = "1"
        os.environ.pop("MKL_DISABLE_FAST_MM", None)
    path = hour_file(args.minutes)
    r = run(path, args.full)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"file: {path.name}, {r['audio_s']:.0f} s of real speech; load average {load}; "
          f"worker malloc arenas {os.environ.get('AVINDEX_MALLOC_ARENAS', 'default setting')}, "
          f"MKL's buffer pool {'kept' if args.mkl_pool else 'off'}")
    print(f"speech stage started {r['speech_started_s']:.1f} s after the drop")
    if "first_window_upto" in r:
        print(f"first window committed (up to {r['first_window_upto']:.0f} s of the file) "
              f"{r['first_window_s']:.1f} s after the drop")
    else:
        print("no window committed before the speech stage ended (a checkout without "
              "per-window commits)")
    print(f"first hit: {r['first_hit_s']:.1f} s after the drop "
          f"(query {r['query']!r} -> {r['hit_at']} s; the line at {r['line_at']} s: {r['line']!r})")
    if args.full and "speech_done_s" in r:
        print(f"speech stage done {r['speech_done_s']:.1f} s after the drop "
              f"(RTF {r['speech_rtf']:.3f}): before per-window commits, the first hit")
    print(f"worker peak RSS {r['peak_rss_children_mb']:.0f} MB; worker CPU user "
          f"{r['worker_cpu_s'][0]:.1f} s, sys {r['worker_cpu_s'][1]:.1f} s; transcript: "
          f"{r['transcript'][0]} lines, sha1 {r['transcript'][1]}")
    if r["rss"]:
        # how the worker's memory goes with the length transcribed: its RSS at each tenth
        # of the run (flat in file length is the aim)
        marks = [r["rss"][min(len(r["rss"]) - 1, i * len(r["rss"]) // 10)] for i in range(10)]
        print("worker RSS over the run (s: MB): "
              + ", ".join(f"{t:.0f}: {mb:.0f}" for t, mb in marks + [r["rss"][-1]]))


if __name__ == "__main__":
    main()
