"""Motion descriptors: quality on a labelled generated set, a "walking" tag on real
footage, and what motion adds to the visual stage's time.

    python -m benchmarks.motion_quality                 # all three (~6 min on 2 cores)
    python -m benchmarks.motion_quality --only quality  # or: walking, cost
    python -m benchmarks.motion_quality --compare-encoders   # + stacked ISA vs 3-D conv net

Quality: 5 kinds of motion (translating, rotating, oscillating, scaling, static), CLIPS
clips each: a textured object on a textured background (models.motion.synthetic; random
textures, shapes, directions and speeds), 4 s of 320x180 H.264 at 15 fps. Every clip is
indexed by the real visual stage (keyframes, EfficientNet features, motion windows in the
same pass) into a fresh library; then the library's own encoder is learnt from it without
labels (indexer.library_tasks.motion_encoder) and the descriptors are recomputed (the `motion` stage).
Per draw, 5 clips per kind are the labelled examples; one tag per kind is trained on their
windows (models.motion.classifier, the same call as `avindex tags train`), and every other
clip is assigned the kind whose tag gives its windows the highest mean probability.
Accuracy over DRAWS random draws, for the full descriptor and for each block alone.

Walking: Debian opencv-doc's vtest.avi (80 s of pedestrians) with 20 s of one of its
frames frozen in the middle (same picture, nobody moves), indexed beside the generated
clips. A "walking" tag is trained from 3 windows of the real footage (negatives: the
default library sample); it should fire on the real footage and not on the frozen part.

Cost: a 30 s 720p H.264 clip (benchmarks.visual_speed's) through the visual stage with
and without motion, against `ffmpeg -i F -f null -`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = ROOT / "benchmarks" / ".cache" / "motion"
DATA = Path("/usr/share/doc/opencv-doc/examples/data")
CLIPS = 14                 # per kind
SHOTS = 5                  # labelled examples per kind
DRAWS = 20
SEED0 = 20000              # clip seeds: never those of the default encoder or the tests


def _ffmpeg(args: list[str]) -> None:
    r = subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", *args], capture_output=True,
                       text=True)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])


def make_set() -> list[tuple[Path, str]]:
    from models.motion.synthetic import MOTIONS, render, write_video
    out = []
    folder = CACHE / "set"
    folder.mkdir(parents=True, exist_ok=True)
    for ki, kind in enumerate(MOTIONS):
        for i in range(CLIPS):
            p = folder / f"{kind}_{i:02d}.mp4"
            if not p.is_file():
                write_video(p, render(kind, SEED0 + 1000 * ki + i, seconds=4, fps=15,
                                      size=(320, 180)))
            out.append((p, kind))
    return out


def make_vtest_mix() -> tuple[Path, list[tuple[float, float]]]:
    """vtest [0, 40) + 20 s frozen on its frame at 40 s + vtest [40, 79.5); returns the file
    and the frozen span."""
    out = CACHE / "vtest_mix.mp4"
    frozen = (40.0, 60.0)
    if not out.is_file():
        src = str(DATA / "vtest.avi")
        CACHE.mkdir(parents=True, exist_ok=True)
        graph = ("[0:v]trim=0:40,setpts=PTS-STARTPTS[a];"
                 "[0:v]trim=start=40,setpts=PTS-STARTPTS,split[b0][b1];"
                 "[b0]trim=end_frame=1,loop=loop=199:size=1:start=0,setpts=N/10/TB[f];"
                 "[b1]setpts=PTS-STARTPTS[b];"
                 "[a][f][b]concat=n=3:v=1:a=0,format=yuv420p[o]")
        _ffmpeg(["-i", src, "-filter_complex", graph, "-map", "[o]", "-r", "10",
                 "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", str(out)])
    return out, [frozen]


def _duration(path: Path) -> float:
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                        "csv=p=0", str(path)], capture_output=True, text=True)
    return float(r.stdout.strip() or 0)


def build_library(tmp: Path, files: list[Path], models_dir: str):
    """Index files with the real visual stage (motion in the same pass) into a new Store."""
    from indexer.stages.base import StageContext
    from indexer.store import Store
    from indexer.stages.visual import VisualStage
    store = Store(tmp / "lib.db")
    stage = VisualStage(tmp / "thumbs", models_dir, ocr=False)
    t = time.perf_counter()
    for f in files:
        mid = store.add_media(str(f), None, f.stat().st_size, 0)
        store.db["media"].update(mid, {"kind": "video", "duration": _duration(f)})
        media = store.media(mid)
        saver = stage.run(media, StageContext(store=store))
        with store.transaction():
            saver(store)
            for job in store.jobs(mid):
                store.finish_job(job["id"], "done")
    return store, time.perf_counter() - t


def recompute(store) -> float:
    from indexer.stages.motion import MotionStage
    from indexer.stages.base import StageContext
    t = time.perf_counter()
    stage = MotionStage()
    for job in store.jobs(state="queued"):
        if job["stage"] != "motion":
            continue
        store.claim_next_job()
        saver = stage.run(store.media(job["media_id"]), StageContext(store=store))
        with store.transaction():
            saver(store)
            store.finish_job(job["id"], "done")
    return time.perf_counter() - t


VARIANTS = {"full (encoder+flow+appearance)": ("encoder", "flow", "appearance"),
            "encoder+flow": ("encoder", "flow"), "flow only": ("flow",),
            "encoder only": ("encoder",), "appearance only": ("appearance",)}


def evaluate(rows: list[dict], x: np.ndarray, kind_of: dict[int, str], variants=VARIANTS,
             draws: int = DRAWS) -> dict:
    from models.motion.classifier import train_tag
    media = np.array([r["media_id"] for r in rows])
    ids = sorted(kind_of)
    kinds = sorted(set(kind_of.values()))
    out = {}
    for name, blocks in variants.items():
        accs = []
        rng = np.random.default_rng(0)
        for _ in range(draws):
            train = {k: list(rng.choice([m for m in ids if kind_of[m] == k], SHOTS, replace=False))
                     for k in kinds}
            train_ids = {m for v in train.values() for m in v}
            test = [m for m in ids if m not in train_ids]
            probs = []
            for k in kinds:
                pos = np.isin(media, train[k])
                neg = np.isin(media, [m for kk, v in train.items() if kk != k for m in v])
                model = train_tag(x[pos], x[neg], reference=x, blocks=blocks,
                                  pos_groups=media[pos], neg_groups=media[neg])
                p = model.probability(x)
                probs.append([p[media == m].mean() for m in test])
            pred = np.array(kinds)[np.argmax(probs, 0)]
            accs.append(float(np.mean(pred == np.array([kind_of[m] for m in test]))))
        out[name] = {"accuracy": round(float(np.mean(accs)), 3),
                     "std": round(float(np.std(accs)), 3)}
        print(f"  {name:32} {out[name]['accuracy']:.3f} ± {out[name]['std']:.3f}", flush=True)
    return out


def quality(models_dir: str, compare: bool) -> dict:
    from indexer.library_tasks.motion_encoder import train_library_encoder
    from models.motion.train import Budget
    files = make_set()
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        store, secs = build_library(Path(tmp), [f for f, _ in files], models_dir)
        kind_of = {store.media_by_path(str(f))["id"]: k for f, k in files}
        print(f"indexed {len(files)} clips ({len(files) * 4} s) in {secs:.1f} s", flush=True)
        rows, x = store.motion_windows(version=0)
        print("shipped default encoder (v0, learnt from rendered clips of other seeds):")
        res["default_encoder"] = evaluate(rows, x, kind_of)
        t = time.perf_counter()
        report = train_library_encoder(store, budget=Budget(seconds=60))
        print(f"library encoder v{report['version']}: {report['clips']} clips, learnt in "
              f"{report['seconds']:.1f} s, sampling {report['sample_seconds']:.1f} s, "
              f"peak RSS {report['peak_rss_mb']:.0f} MB", flush=True)
        res["training"] = {k: report[k] for k in ("clips", "seconds", "sample_seconds",
                                                   "peak_rss_mb", "clip_mb")}
        res["training"]["objective1"] = [report["objective1"][0], report["objective1"][-1]]
        res["training"]["objective2"] = [report["objective2"][0], report["objective2"][-1]]
        res["training"]["recompute_s"] = round(recompute(store), 1)
        print(f"recomputed the descriptors in {res['training']['recompute_s']} s", flush=True)
        rows, x = store.motion_windows(version=report["version"])
        print("library-trained stacked ISA (the default flow of the app):")
        res["library_isa"] = evaluate(rows, x, kind_of)
        if compare:
            res["conv3d"] = compare_conv3d(store, rows, x, kind_of)
        store.close()
    return res


def compare_conv3d(store, rows, x_isa, kind_of) -> dict:
    """Same library, same clips sample and budget: a 3-D conv net trained by frame-order
    verification replaces the ISA in the encoder block."""
    from indexer.library_tasks.motion_encoder import sample_library_clips
    from models.motion.descriptor import WindowBuilder
    from models.motion.encoder import torch_threads
    from models.motion.layout import BLOCKS
    from models.motion.train import Budget, train_encoder
    clips = sample_library_clips(store.video_media())
    enc, report = train_encoder(clips, kind="conv3d", budget=Budget(seconds=60))
    print(f"3-D conv net: learnt in {report['seconds']:.1f} s, loss "
          f"{report['loss'][0]:.3f} -> {report['loss'][-1]:.3f}", flush=True)
    from indexer.stages.keyframes import DEFAULT_SAMPLE_FPS, detect_width_frame, sampled_frames
    x = x_isa.copy()
    by_media: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_media.setdefault(r["media_id"], []).append(i)
    with torch_threads(1):
        for mid, idx in by_media.items():
            b = WindowBuilder(enc)
            for fr in sampled_frames(store.media(mid)["path"], DEFAULT_SAMPLE_FPS):
                b.add(fr.time, detect_width_frame(fr.image))
            wins = b.finish(store.media(mid)["duration"])
            for i, w in zip(idx, wins):
                x[i, BLOCKS["encoder"]] = w.encoded
    print("3-D conv net in the encoder block:")
    out = evaluate(rows, x, kind_of, {k: VARIANTS[k] for k in
                                      ("full (encoder+flow+appearance)", "encoder+flow",
                                       "encoder only")})
    out["train_seconds"] = round(report["seconds"], 1)
    return out


def walking(models_dir: str) -> dict:
    from indexer.library_tasks.action_tags import Example
    if not (DATA / "vtest.avi").is_file():
        print("vtest.avi missing (Debian opencv-doc); skipped")
        return {}
    mix, frozen = make_vtest_mix()
    others = [f for f, k in make_set()[::3]]          # a third of the generated clips
    with tempfile.TemporaryDirectory() as tmp:
        store, secs = build_library(Path(tmp), [mix, *others], models_dir)
        mid = store.media_by_path(str(mix))["id"]
        examples = [Example(mid, 6.0, 8.0), Example(mid, 24.0, 26.0), Example(mid, 70.0, 72.0)]
        out = {"index_s": round(secs, 1)}
        for how, negatives in (("default negatives (library sample)", []),
                               ("+ 2 negative windows of the frozen part",
                                [Example(mid, 44.0, 46.0, False), Example(mid, 52.0, 54.0, False)])):
            print(how)
            out[how] = _walking_run(store, mid, examples, negatives, frozen)
        store.close()
    return out


def _walking_run(store, mid, examples, negatives, frozen) -> dict:
    from indexer.library_tasks.action_tags import train_action_tag
    res = train_action_tag(store, "walking", examples, negatives)
    rows, _ = store.motion_windows(media_id=mid)
    tags = store.tag_rows("walking")

    def tagged(r) -> bool:
        return any(t["media_id"] == r["media_id"] and t["start"] <= r["start"] + 1e-6
                   and r["end"] <= t["end"] + 1e-6 for t in tags)
    is_frozen = lambda r: any(a <= r["start"] and r["end"] <= b for a, b in frozen)  # noqa
    held = [r for r in rows if not any(e.covers(r) for e in list(examples) + negatives)]
    walk = [r for r in held if not is_frozen(r)]
    still = [r for r in held if is_frozen(r)]
    other_rows, _ = store.motion_windows(with_vectors=False)
    other_rows = [r for r in other_rows if r["media_id"] != mid]
    out = {"cv_accuracy": res["cv_accuracy"], "threshold": res["threshold"],
           "block_weights": res["block_weights"],
           "walking_windows_tagged": f"{sum(map(tagged, walk))}/{len(walk)}",
           "frozen_windows_tagged": f"{sum(map(tagged, still))}/{len(still)}",
           "generated_clip_windows_tagged": f"{sum(map(tagged, other_rows))}/{len(other_rows)}"}
    print(json.dumps(out, indent=1), flush=True)
    return out


def cost(models_dir: str) -> dict:
    from benchmarks.visual_speed import make_clip
    from indexer.stages.motion import MotionAnalyser
    from indexer.stages.visual import VisualStage
    from models.motion.encoder import default_encoder
    clip = make_clip(720)
    dur = _duration(clip)
    t = time.perf_counter()
    _ffmpeg(["-i", str(clip), "-f", "null", "-"])
    ffmpeg_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        stage = VisualStage(Path(tmp) / "thumbs", models_dir)
        stage.classifier, stage.reader                     # loaded up front, not timed
        enc = default_encoder()
        runs = {"without": [], "with": []}
        motion_s = []
        for _ in range(2):
            for mode in ("without", "with"):
                m = MotionAnalyser(0, enc) if mode == "with" else None
                t = time.perf_counter()
                res = stage.analyse(str(clip), media_id=1, duration=dur, motion=m)
                runs[mode].append(time.perf_counter() - t)
                if m is not None:
                    motion_s.append(res.stats["motion_s"])
    out = {"clip": "30 s 720p H.264 30 fps", "ffmpeg_decode_s": round(ffmpeg_s, 2),
           "visual_without_motion_s": round(min(runs["without"]), 2),
           "visual_with_motion_s": round(min(runs["with"]), 2),
           "motion_own_s": round(min(motion_s), 2),
           "motion_per_video_s_ms": round(1000 * min(motion_s) / dur, 1)}
    out["with_motion_x_realtime"] = round(dur / out["visual_with_motion_s"], 1)
    out["with_motion_vs_ffmpeg"] = round(out["visual_with_motion_s"] / ffmpeg_s, 2)
    print(json.dumps(out, indent=1), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["quality", "walking", "cost"])
    ap.add_argument("--compare-encoders", action="store_true")
    ap.add_argument("--models-dir", default=str(ROOT / "benchmarks" / ".cache" / "visual" / "models"))
    args = ap.parse_args()
    os.environ.setdefault("AVINDEX_DATA_DIR", str(CACHE / "data"))
    results = {}
    if args.only in (None, "quality"):
        results["quality"] = quality(args.models_dir, args.compare_encoders)
    if args.only in (None, "walking"):
        results["walking"] = walking(args.models_dir)
    if args.only in (None, "cost"):
        results["cost"] = cost(args.models_dir)
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "results.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**old, **results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
