"""Files per hour: the local executor against Ray with 1, 2 (, 4, 8) workers, and where the
single writer saturates.

    .venv/bin/python -m benchmarks.cluster                      # test split: local, ray 1, 2
    .venv/bin/python -m benchmarks.cluster --split dev
    .venv/bin/python -m benchmarks.cluster --workers 1 2 4 8    # on a machine with the cores
    .venv/bin/python -m benchmarks.cluster --model tiny.en --json out.json
    .venv/bin/python -m benchmarks.cluster --repeat 3           # the median of 3 runs each
    .venv/bin/python -m benchmarks.cluster --video --repeat 2   # the same speech as videos

Media: real recorded speech, Debian's Asterisk prompts (en, Allison; benchmarks/speakers.py
fetches them), sentences taken in the order of a hash of their name as spoken_search.py
takes them, PER_FILE to a file joined by 1 s of silence (about 25 s a file), FILES files per
split: dev from the first prompts, test from the next ones. Nothing is tuned (the worker
count is the measured variable), so dev is there to check a change before the test is read.

With --video each file is that speech under a stretch of vtest.avi (Debian opencv-doc's
street scene, 768x576), so the visual and faces stages run too.

Each run indexes the split's files into a fresh library (all stages; audio files: probe,
subtitles, speech, speakers, text; videos also visual and faces) with the real runner: app.runner.Runner (one local
worker process, the engine on all cores) or app.cluster_runner.ClusterRunner on a Ray
started on this machine (N actors, each with cores/N engine threads). The wall time is
runner.run()'s, actor start and model loading included; Ray's own start-up is given apart
(it stays up for the whole benchmark, idle during the local runs).

The writer: per file it applies the artifacts of the remote stages (speech, speakers,
visual, faces: SQLite and thumbnail files, measured per apply) and runs the stages that
stay local (probe, subtitles, text, in its worker process). One writer keeps up with N
workers while N x (writer's seconds per file) < (a worker's seconds per file); past that it saturates: N* = worker s per file /
writer s per file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import speakers, spoken_search  # noqa: E402
from benchmarks.markdown import table  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "cluster"
VOICE = "en-allison"
PER_FILE = 6
FILES = 8


def make_files(split: str) -> list[Path]:
    """FILES joined files of the split (made once, kept in the cache)."""
    out = [CACHE / split / f"{split}-{i:02d}.wav" for i in range(FILES)]
    if all(p.exists() for p in out):
        return out
    picked = [x for _, x in spoken_search.voice_sentences(VOICE, 2 * FILES * PER_FILE)]
    first = 0 if split == "dev" else FILES * PER_FILE
    out[0].parent.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(out):
        part = picked[first + i * PER_FILE:first + (i + 1) * PER_FILE]
        audio, _ = spoken_search._join(part)
        speakers._write_wav(path, audio)
    return out


VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")   # Debian opencv-doc
VIDEO_STEP_S = 9.0          # where each file's picture starts in vtest.avi (80 s long)


def make_videos(files: list[Path]) -> list[Path]:
    """The split's files as videos (made once, kept in the cache): each file's speech
    under a stretch of vtest.avi's street scene (768x576, 10 fps) as long as the speech,
    starting VIDEO_STEP_S further into it for each file (wrapping). The visual stage sees
    shots, people and motion; the faces stage, faces too small to track."""
    import subprocess
    if not VTEST.is_file():
        raise SystemExit(f"--video needs {VTEST} (Debian's opencv-doc)")
    out = [f.with_suffix(".mp4") for f in files]
    for i, (wav, mp4) in enumerate(zip(files, out)):
        if mp4.exists():
            continue
        secs = spoken_search.wave.open(str(wav)).getnframes() / speakers.SR
        start = (i * VIDEO_STEP_S) % max(1.0, 79.0 - secs)
        subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-ss", f"{start}",
                        "-t", f"{secs}", "-i", str(VTEST), "-i", str(wav), "-map", "0:v",
                        "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt",
                        "yuv420p", "-c:a", "aac", "-b:a", "64k", "-shortest", str(mp4)],
                       check=True, stdin=subprocess.DEVNULL)
    return out


def run_once(files: list[Path], model: str, workers: int | None) -> dict:
    """Index `files` into a fresh library; workers None: the local executor."""
    from app.cluster_runner import ClusterRunner
    from app.runner import Runner
    from app.settings import Settings
    from indexer.intake import take
    from indexer.store import Store

    with tempfile.TemporaryDirectory(prefix="avindex-cluster-bench-") as tmp:
        library = Path(tmp) / "library.db"
        store = Store(library)
        for f in files:
            take(store, f)
        store.close()
        events: list[dict] = []
        settings = Settings(whisper_model=model)
        if workers is None:
            runner = Runner(library, settings, events.append)
        else:
            runner = ClusterRunner(library, settings, events.append, address="ray",
                                   workers=workers)
        t0 = time.perf_counter()
        counts = runner.run()
        wall = time.perf_counter() - t0
    stage_s: dict[str, list[float]] = {}
    for e in events:
        if e["type"] == "job_finished" and e.get("seconds") is not None:
            stage_s.setdefault(e["stage"], []).append(e["seconds"])
    out = {"workers": workers, "wall_s": wall, "files": len(files),
           "files_per_hour": len(files) / wall * 3600, "done": counts.get("done", 0),
           "failed": counts.get("failed", 0),
           "stage_s_per_file": {k: sum(v) / len(files) for k, v in stage_s.items()}}
    if workers is not None:
        from indexer.cluster.remote_stages import REMOTE_STAGES
        st, n = runner.stats, len(files)
        # per file: the workers' compute (every remote stage), the writer's applies and
        # the stages it runs itself
        out.update(apply_ms=1000 * sum(st["apply_s"]) / n,
                   apply_ms_max=1000 * max(st["apply_s"]),
                   remote_s_per_file=sum(st["compute_s"]) / n,
                   computed=st["computed"], reused=st["reused"])
        local = sum(v for k, v in out["stage_s_per_file"].items() if k not in REMOTE_STAGES)
        writer = local + out["apply_ms"] / 1000
        out["writer_s_per_file"] = writer
        out["writer_saturates_at"] = out["remote_s_per_file"] / writer
        out["apply_only_saturates_at"] = out["remote_s_per_file"] / (out["apply_ms"] / 1000)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", choices=["dev", "test"], default="test")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--model", default="base")
    p.add_argument("--no-local", action="store_true", help="skip the local executor")
    p.add_argument("--repeat", type=int, default=1, help="runs per configuration (median)")
    p.add_argument("--video", action="store_true",
                   help="the files as videos (speech under vtest.avi's street scene)")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)

    files = make_files(args.split)
    audio_files = files
    if args.video:
        files = make_videos(files)
    audio_s = sum(spoken_search.wave.open(str(f)).getnframes() / speakers.SR
                  for f in audio_files)
    os.environ.setdefault("AVINDEX_MODELS_DIR", str(spoken_search.MODELS))
    from indexer.cluster.connect import connect, disconnect
    t0 = time.perf_counter()
    connect("ray")          # up for the whole benchmark (the local runs leave it idle)
    ray_start = time.perf_counter() - t0
    configs = ([None] if not args.no_local else []) + args.workers
    tries: dict = {n: [] for n in configs}
    try:
        for k in range(args.repeat):      # interleaved, so a busy spell hits every config
            for n in configs:
                tries[n].append(run_once(files, args.model, n))
                print(f"{'local' if n is None else f'ray, {n} worker(s)'} #{k + 1}: "
                      f"{tries[n][-1]['wall_s']:.1f} s", flush=True)
    finally:
        disconnect()
    # per config the run with the median wall (of an even count, the slower middle one)
    runs = [sorted(t, key=lambda r: r["wall_s"])[len(t) // 2] for t in tries.values()]
    for r, n in zip(runs, configs):
        r["walls"] = [round(t["wall_s"], 1) for t in tries[n]]

    base = next((r for r in runs if r["workers"] == 1), None)
    rows = []
    for r in runs:
        eff = (r["files_per_hour"] / (base["files_per_hour"] * r["workers"])
               if base and r["workers"] else None)
        rows.append([
            "local" if r["workers"] is None else f"Ray, {r['workers']}",
            " / ".join(f"{w:.1f}" for w in r["walls"]), f"{r['files_per_hour']:.0f}",
            "" if eff is None else f"{eff:.0%}",
            "" if r["workers"] is None else f"{r['remote_s_per_file']:.2f}",
            "" if r["workers"] is None else f"{r['apply_ms']:.1f} (max {r['apply_ms_max']:.1f})",
            "" if r["workers"] is None else f"{r['writer_s_per_file']:.2f}",
            "" if r["workers"] is None else f"{r['writer_saturates_at']:.1f}",
            "" if r["workers"] is None else f"{r['apply_only_saturates_at']:.0f}",
            f"{r['done']}/{r['failed']}"])
    print(f"\n{args.split}{' (videos)' if args.video else ''}: {len(files)} files, "
          f"{audio_s:.0f} s of speech, Whisper {args.model}, "
          f"{os.cpu_count()} CPUs; Ray start-up {ray_start:.1f} s (not in the walls)")
    print(table(rows, ["executor, workers", "wall s (each run)", "files/h (median)", "efficiency vs 1",
                       "worker s/file", "apply ms/file", "writer s/file",
                       "writer saturates at N", "SQLite apply alone at N", "jobs done/failed"]))
    for r in runs:
        print(("local" if r["workers"] is None else f"Ray {r['workers']}") + " per-file s by stage: "
              + ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["stage_s_per_file"].items())))
    if args.json:
        Path(args.json).write_text(json.dumps({"split": args.split, "video": args.video,
                                               "audio_s": audio_s,
                                               "ray_start_s": ray_start, "runs": runs,
                                               "every_run": list(tries.values())},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
