"""Where the speech stage's peak memory goes, window by window (issue 20, "Worker memory").

    .venv/bin/python -m benchmarks.worker_memory --minutes 20                 # as the worker runs it
    .venv/bin/python -m benchmarks.worker_memory --minutes 20 --engine-only   # the engine alone
    .venv/bin/python -m benchmarks.worker_memory --minutes 20 --arenas 0      # glibc's default arenas
    .venv/bin/python -m benchmarks.worker_memory --minutes 20 --mmap-kb 8192 --trim-kb 4096
    .venv/bin/python -m benchmarks.worker_memory --minutes 20 --mkl-pool      # MKL's pool kept

One process, no Runner: with the default, the file (benchmarks.first_hit's real speech) is
taken into a fresh library and its probe, subtitles and speech jobs run through
app.worker._run_job with the pipeline the worker builds, so every stage's code is loaded as
in the worker; --engine-only transcribes it with the speech engine alone. The peak resident
set (VmHWM, reset through /proc/self/clear_refs at each committed window) is read after each
CTranslate2 call of models.asr._ChunkWorkers and after the VAD, so each window prints its
peak and the call that reached it; "encode bases" is the RSS right before each encode call
(after its heap trim). Linux only. malloc options are set at start (mallopt): --arenas as the
worker would (models.asr.limit_malloc_arenas), --mmap-kb / --trim-kb (M_MMAP_THRESHOLD /
M_TRIM_THRESHOLD) to try other allocator settings.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CALLS = ("encode", "detect_language", "generate", "align")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def _status(key: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(key + ":")) / 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class Tracer:
    """Peaks per call kind since the last window, and the RSS before each encode."""

    def __init__(self, asr):
        self.peaks: dict[str, float] = {}
        self.windows: list[tuple[int, float, dict]] = []
        self.encode_bases: list[float] = []
        for name in CALLS:
            self._wrap(asr._ChunkWorkers, name, asr)
        import models.silero_vad as vad
        orig = vad.speech_timestamps

        def speech_timestamps(*a, **k):
            out = orig(*a, **k)
            self._note("vad")
            return out
        vad.speech_timestamps = speech_timestamps

    def _note(self, name: str) -> None:
        self.peaks[name] = max(self.peaks.get(name, 0.0), _status("VmHWM"))

    def _wrap(self, cls, name: str, asr) -> None:
        orig = getattr(cls, name)

        def call(obj, *a, **k):
            if name == "encode":
                asr.release_memory()           # as the call itself does first
                self.encode_bases.append(_status("VmRSS"))
            out = orig(obj, *a, **k)
            self._note(name)
            return out
        setattr(cls, name, call)

    def window(self, upto: float) -> None:
        self.windows.append((round(upto), _status("VmHWM"), dict(self.peaks)))
        self.peaks.clear()
        _reset_peak()


def _worker_run(path: Path, tracer: Tracer) -> None:
    import tqdm
    tqdm.tqdm.set_lock(threading.RLock())
    from app import worker
    from app.settings import Settings
    from app.stages import build_pipeline
    from indexer.intake import take
    from indexer.store import Store
    lib = Path(tempfile.mkdtemp(prefix="worker_memory-")) / "library.db"
    store = Store(lib)
    take(store, path)
    pipeline = build_pipeline(Settings(), lib)

    class Link:                       # the runner's side: events in, never cancelled
        def send(self, e):
            if e.get("type") == "partial_saved":
                tracer.window(e["upto"])
            elif e.get("type") == "job_finished" and e["state"] != "done":
                raise SystemExit(f"{e['stage']}: {e['state']}: {e['error']}")

        def is_set(self):
            return False

        def stopping(self):
            return False
    link = Link()
    while (job := store.claim_next_job()) is not None:
        if job["stage"] == "speech":
            print(f"before the speech stage: RSS {_status('VmRSS'):.0f} MB")
            _reset_peak()
        worker._run_job(store, pipeline, job["id"], link, link)
        if job["stage"] == "speech":
            break
    store.close()


def _engine_run(path: Path, tracer: Tracer, asr) -> None:
    from app.settings import Settings
    s = Settings()
    engine = asr.shared_engine(s.asr_engine, s.whisper_model, device=s.device,
                               threads=s.threads, models_dir=s.resolved_models_dir()).get()
    print(f"engine loaded: RSS {_status('VmRSS'):.0f} MB")
    _reset_peak()
    _, segments = engine.transcribe(str(path), beam_size=s.beam_size, on_window=tracer.window)
    for _ in segments:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--engine-only", action="store_true")
    ap.add_argument("--arenas", type=int, default=None,
                    help="malloc arenas (default: models.asr.MALLOC_ARENAS; 0: glibc's)")
    ap.add_argument("--mmap-kb", type=int, default=0)
    ap.add_argument("--trim-kb", type=int, default=0)
    ap.add_argument("--mkl-pool", action="store_true",
                    help="keep MKL's own buffer pool (models.asr.MKL_POOL: off)")
    args = ap.parse_args()
    if args.mkl_pool:                 # read by models.asr on import, by MKL when loaded
        os.environ["AVINDEX_MKL_POOL"] = "1"
        os.environ.pop("MKL_DISABLE_FAST_MM", None)
    import models.asr as asr
    arenas = asr.limit_malloc_arenas(args.arenas)
    libc = ctypes.CDLL("libc.so.6")
    for option, kb in ((M_MMAP_THRESHOLD, args.mmap_kb), (M_TRIM_THRESHOLD, args.trim_kb)):
        if kb:
            libc.mallopt(option, kb * 1024)
    from benchmarks.first_hit import hour_file
    path = hour_file(args.minutes)
    tracer = Tracer(asr)
    t0 = time.monotonic()
    if args.engine_only:
        _engine_run(path, tracer, asr)
    else:
        _worker_run(path, tracer)
    wall = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"{path.name}, {'engine alone' if args.engine_only else 'as the worker'}; arenas "
          f"{arenas or 'glibc default'}, mmap threshold {args.mmap_kb or 'dynamic'} kB, trim "
          f"threshold {args.trim_kb or 'dynamic'} kB, MKL's buffer pool "
          f"{'kept' if args.mkl_pool else 'off'}")
    for upto, peak, calls in tracer.windows:
        top = max(calls, key=calls.get) if calls else "-"
        print(f"window to {upto:5d} s: peak {peak:.0f} MB (reached by {top}; "
              + ", ".join(f"{k} {v:.0f}" for k, v in calls.items()) + ")")
    print("encode bases (MB): " + ", ".join(f"{b:.0f}" for b in tracer.encode_bases[:12]))
    print(f"peak over the windows {max(p for _, p, _ in tracer.windows):.0f} MB; the last "
          f"window {ru.ru_maxrss / 1024:.0f} MB; wall {wall:.0f} s; CPU user {ru.ru_utime:.1f} s "
          f"sys {ru.ru_stime:.1f} s; load average {load}")


if __name__ == "__main__":
    main()
