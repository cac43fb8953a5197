"""Visual stage speed, and the evidence behind its choices.

    python benchmarks/visual_speed.py              # speed: 720p and 1080p H.264, 30 s each
    python benchmarks/visual_speed.py --baseline main   # ... and an older revision, interleaved
    python benchmarks/visual_speed.py --shots      # shot detectors on clips with known cuts
    python benchmarks/visual_speed.py --models     # EfficientNet torch vs onnxruntime, OCR

Speed: each clip (made once with ffmpeg into benchmarks/.cache/) is decoded by
`ffmpeg -i F -f null -` (the floor: every frame decoded, nothing else done), then by the
keyframe pass alone (OpenCV grab/retrieve, shot detection, thumbnails), then by the whole
VisualStage (plus EfficientNet tags/features, OCR and motion descriptors) and its saver
into a fresh Store (models and the motion encoder are loaded before the clock starts, as in
a worker that has indexed a file before). Every measurement runs in its own process, so peak
RSS (wait4's ru_maxrss) is its own. With `--baseline REV` the stage of that git revision
(its indexer/ and models/, extracted with `git archive`) runs too, interleaved with the
current one on the same clips, and the results are compared: keyframe times/shots/reasons,
tags with their ranges and scores, OCR text with its ranges and confidence, motion windows
and descriptors must all be equal.
The clips are 6 segments of 5 s: real footage from Debian's opencv-doc (Megamind.avi with
two cuts, vtest.avi, tree.avi) scaled up, a rendered slide with text, ffmpeg's testsrc2 and
mandelbrot. Needs ffmpeg and opencv-doc.
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

ROOT = Path(__file__).resolve().parents[1]
# A child measuring another revision gets that revision's indexer/ and models/ first.
sys.path.insert(0, str(ROOT))
if os.environ.get("AVINDEX_CODE_ROOT"):
    sys.path.insert(0, os.environ["AVINDEX_CODE_ROOT"])

CACHE = ROOT / "benchmarks" / ".cache" / "visual"
DATA = Path("/usr/share/doc/opencv-doc/examples/data")
SEG = 5.0


def _ffmpeg(args: list[str]) -> None:
    r = subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", *args], capture_output=True,
                       text=True)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])


def _slide(path: Path, w: int, h: int) -> Path:
    import cv2
    import numpy as np
    img = np.full((h, w, 3), (60, 30, 20), np.uint8)
    s = h / 720
    cv2.putText(img, "Quarterly results 2024", (int(80 * s), int(250 * s)),
                cv2.FONT_HERSHEY_DUPLEX, 2.0 * s, (255, 255, 255), max(1, int(3 * s)), cv2.LINE_AA)
    cv2.putText(img, "Revenue up 12 percent", (int(120 * s), int(420 * s)),
                cv2.FONT_HERSHEY_SIMPLEX, 1.4 * s, (200, 230, 255), max(1, int(2 * s)), cv2.LINE_AA)
    cv2.imwrite(str(path), img)
    return path


def make_clip(height: int) -> Path:
    """30 s of H.264 at 30 fps, 16:9 `height`p (cached)."""
    w, h = height * 16 // 9, height
    out = CACHE / f"clip{height}p.mp4"
    if out.is_file():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    slide = _slide(CACHE / f"slide{height}.png", w, h)
    inputs = ["-ss", "2", "-t", str(SEG), "-i", str(DATA / "Megamind.avi"),
              "-ss", "10", "-t", str(SEG), "-i", str(DATA / "vtest.avi"),
              "-loop", "1", "-t", str(SEG), "-i", str(slide),
              "-t", str(SEG), "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
              "-ss", "20", "-t", str(SEG), "-i", str(DATA / "tree.avi"),
              "-t", str(SEG), "-f", "lavfi", "-i", "mandelbrot=size=640x360:rate=30"]
    norm = ",".join([f"scale={w}:{h}:force_original_aspect_ratio=decrease",
                     f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2", "setsar=1", "fps=30", "format=yuv420p"])
    graph = ";".join(f"[{i}:v]{norm},trim=duration={SEG},setpts=PTS-STARTPTS[v{i}]"
                     for i in range(6))
    graph += ";" + "".join(f"[v{i}]" for i in range(6)) + "concat=n=6:v=1:a=0[out]"
    tmp = out.with_suffix(".tmp.mp4")
    _ffmpeg([*inputs, "-filter_complex", graph, "-map", "[out]", "-c:v", "libx264",
             "-preset", "veryfast", "-crf", "21", "-pix_fmt", "yuv420p", str(tmp)])
    os.replace(tmp, out)
    return out


def _run_child(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall s, peak RSS MB, stdout); the child's CPU seconds (user+sys) go to _CPU[-1]."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=env)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise RuntimeError(f"{cmd} failed ({p.returncode}): {out[-1000:]}")
    _CPU.append(usage.ru_utime + usage.ru_stime)
    return wall, usage.ru_maxrss / 1024.0, out


_CPU: list[float] = []


# ---- children -------------------------------------------------------------------------------

def child_keyframes(path: str) -> None:
    from indexer.stages.keyframes import iter_keyframes
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        n = sum(1 for _ in iter_keyframes(path, thumb_dir=tmp, thumb_prefix="1"))
        print(json.dumps({"keyframes": n, "s": time.perf_counter() - t}))


def child_stage(path: str, models_dir: str) -> None:
    from indexer.stages.motion import MotionAnalyser
    from indexer.stages.base import StageContext
    from indexer.store import Store
    from indexer.stages.visual import VisualStage
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stage = VisualStage(Path(tmp) / "thumbs", models_dir)
        stage.classifier, stage.reader              # load the models up front
        store = Store(Path(tmp) / "lib.db")
        MotionAnalyser.for_store(store)             # torch and the motion encoder, too
        load = time.perf_counter() - t0
        media_id = store.add_media(path, None, os.path.getsize(path), 0)
        duration = float(subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
             path], capture_output=True, text=True).stdout.strip() or 0)
        t, cpu = time.perf_counter(), time.process_time()
        saver = stage.run({"id": media_id, "path": path, "duration": duration},
                          StageContext(store=store))
        run, run_cpu = time.perf_counter() - t, time.process_time() - cpu
        t = time.perf_counter()
        saver(store)
        save = time.perf_counter() - t
        stats = dict(stage.last_stats, load_models_s=load, run_s=run, run_cpu_s=run_cpu,
                     save_s=save)
        stats["result"] = _stage_result(store, media_id)
        print(json.dumps(stats))


def _stage_result(store, media_id) -> dict:
    """What the stage saved, in a form two revisions can be compared by (vectors as digests)."""
    import hashlib
    out = {}
    for name, sql in _RESULT_QUERIES.items():
        try:
            rows = store.db.execute(sql, (media_id,)).fetchall()
        except Exception as exc:              # a table another revision lacks
            out[name] = f"n/a ({exc})"
            continue
        out[name] = [[hashlib.sha1(v).hexdigest()[:12] if isinstance(v, bytes) else v
                      for v in r] for r in rows]
    return out


_RESULT_QUERIES = {
    "keyframes": "SELECT k.time, k.shot, v.embedding FROM keyframes k LEFT JOIN keyframe_vec v "
                 "ON v.keyframe_id = k.id WHERE k.media_id = ? ORDER BY k.time",
    "tags": "SELECT start, end, label, source, score FROM tags WHERE media_id = ? "
            "ORDER BY start, label, source",
    "screen_text": "SELECT start, end, text, confidence FROM screen_text WHERE media_id = ? "
                   "ORDER BY start, text",
    "motion": "SELECT w.start, w.end, v.descriptor FROM motion_windows w JOIN motion_vec v "
              "ON v.window_id = w.id WHERE w.media_id = ? ORDER BY w.start",
}


# ---- speed table ------------------------------------------------------------------------------

def child_prepare(models_dir: str) -> None:
    from models.vision.image_features import ImageClassifier
    ImageClassifier(models_dir)                       # one-time ONNX export, not timed
    for height in (720, 1080):
        make_clip(height)


def _checkout(rev: str) -> Path:
    """indexer/ and models/ of git revision `rev`, extracted into a temporary folder."""
    d = Path(tempfile.mkdtemp(prefix="visual_speed_"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "indexer", "models"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(d)], input=archive, check=True)
    return d


def _same(a, b, tol: float = 1e-6) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= tol
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, tol) for x, y in zip(a, b))
    return a == b


def speed(models_dir: str, repeat: int = 1, baseline: str | None = None) -> None:
    # The parent stays small (no cv2/torch imported): a child's peak RSS as reported by
    # wait4 includes the memory it inherited from the parent at fork time.
    py = sys.executable
    me = str(Path(__file__).resolve())
    _run_child([py, me, "--child", "prepare", models_dir])
    versions = [(rev, dict(os.environ, AVINDEX_CODE_ROOT=str(_checkout(rev))))
                for rev in (baseline.split(",") if baseline else [])] + [("current", None)]
    rows, results = [], {}
    for height in (720, 1080):
        clip = str(CACHE / f"clip{height}p.mp4")
        best: dict = {}
        for _ in range(repeat):        # interleaved; the fastest of `repeat` runs is kept
            wall_ff, rss_ff, _ = _run_child(["ffmpeg", "-nostdin", "-v", "error", "-i", clip,
                                             "-f", "null", "-"])
            if wall_ff < best.get("ff", (1e9,))[0]:
                best["ff"] = (wall_ff, rss_ff)
                best["ff_cpu"] = _CPU[-1]
            for name, env in versions:
                _, rss_kf, out = _run_child([py, me, "--child", "keyframes", clip], env)
                kf = json.loads(out.strip().splitlines()[-1])
                kf["cpu_s"] = _CPU[-1]
                if kf["s"] < best.get(("kf", name), (None, {"s": 1e9}))[1]["s"]:
                    best[("kf", name)] = (rss_kf, kf)
                _, rss_st, out = _run_child([py, me, "--child", "stage", clip, models_dir], env)
                st = json.loads(out.strip().splitlines()[-1])
                results.setdefault((height, name), []).append(st.pop("result"))
                if st["run_s"] < best.get(name, (None, {"run_s": 1e9}))[1]["run_s"]:
                    best[name] = (rss_st, st)
        for name, _ in versions:
            rows.append((height, name, *best["ff"], best[("kf", name)][1], best[("kf", name)][0],
                         *best[name][::-1]))
            rows[-1][6]["ffmpeg_cpu_s"] = best["ff_cpu"]
    import resource
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min) on "
          f"{os.cpu_count()} CPUs; clips 30 s, 30 fps; times: fastest of {repeat} run(s); "
          f"peak RSS of this parent (a floor under each child's figure): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}MB")
    print(f"{'clip':6} {'code':8} {'ffmpeg null':>12} {'keyframe pass':>14} {'visual stage':>13} "
          f"{'stage/ffmpeg':>13} {'x realtime':>10} | {'RSS ffmpeg':>10} {'RSS kf':>7} {'RSS stage':>9}")
    for h, name, wff, rff, kf, rkf, st, rst in rows:
        print(f"{h}p{'':3} {name[:8]:8} {wff:11.2f}s {kf['s']:13.2f}s {st['run_s']:12.2f}s "
              f"{st['run_s'] / wff:12.2f}x {30.0 / st['run_s']:9.2f}x | {rff:8.0f}MB {rkf:5.0f}MB "
              f"{rst:7.0f}MB")
    print("\nstage breakdown (s): keyframe pass (decode+shots+thumbs; beside the models since "
          "the prefetch thread) | waited for it | classify | OCR gate | OCR | motion | save | "
          "model load; counts")
    for h, name, *_, st, _rss in rows:
        print(f"{h}p {name[:8]:8}: {st['decode_and_shots_s']:.2f} | "
              f"{st.get('waited_for_frames_s', float('nan')):.2f} | {st['classify_s']:.2f} | "
              f"{st['gate_s']:.2f} | {st['ocr_s']:.2f} | {st.get('motion_s', 0.0):.2f} | "
              f"{st['save_s']:.3f} | {st['load_models_s']:.2f}; "
              f"keyframes {st['keyframes']}, shots {st['shots']}, OCR'd {st['ocr_frames']}, "
              f"OCR reused {st['ocr_reused']}, OCR skipped by gate {st['ocr_skipped']}, "
              f"tags {st['tags']}, text lines {st['text_lines']}, backend {st['backend']}")
    print("\nCPU seconds (user+sys of all threads; less sensitive than wall time to the "
          "machine's other load): ffmpeg null decode | the stage run (process_time around "
          "stage.run) | ratio")
    for h, name, _wff, _rff, kf, _rkf, st, _rss in rows:
        print(f"{h}p {name[:8]:8}: {st['ffmpeg_cpu_s']:.2f} | {st['run_cpu_s']:.2f} | "
              f"{st['run_cpu_s'] / st['ffmpeg_cpu_s']:.2f}x; keyframe pass alone "
              f"{kf['cpu_s']:.2f} CPU s (its fastest run)")
    print("\nresults (what the stage saved) compared across runs and revisions:")
    for height in (720, 1080):
        runs = [(name, r) for name, _ in versions for r in results[(height, name)]]
        ref_name, ref = runs[0]
        cur = results[(height, "current")][-1]
        print(f"  {height}p: {len(cur['keyframes'])} keyframes at "
              f"{[round(r[0], 3) for r in cur['keyframes']]}; tags "
              f"{[(round(r[0], 2), round(r[1], 2), r[2]) for r in cur['tags']]}; OCR "
              f"{[r[2] for r in cur['screen_text']]}; {len(cur['motion'])} motion windows")
        for name, r in runs[1:]:
            verdict = {k: ("equal" if _same(ref[k], r[k]) else "DIFFERENT") for k in ref}
            print(f"    {name} vs {ref_name}: " + ", ".join(f"{k} {v}" for k, v in verdict.items())
                  + " (keyframe times+shots+feature digests, tag ranges+scores, OCR text+ranges"
                    "+confidence, motion windows+descriptor digests)")


# ---- shot detector comparison -------------------------------------------------------------------

def _shot_clips() -> list[tuple[str, Path, list[float], float]]:
    """(name, path, true cut times, seconds to ignore at the start)."""
    d = CACHE / "shots"
    d.mkdir(parents=True, exist_ok=True)
    clips = []
    # hard cuts between different synthetic sources, 2 s each, 25 fps
    srcs = ["testsrc", "smptebars", "mandelbrot", "testsrc2", "rgbtestsrc", "cellauto"]
    p = d / "synthetic_cuts.mp4"
    if not p.is_file():
        args = []
        for s in srcs:
            args += ["-t", "2", "-f", "lavfi", "-i", f"{s}=size=640x360:rate=25"]
        graph = "".join(f"[{i}:v]" for i in range(len(srcs))) + f"concat=n={len(srcs)}:v=1,format=yuv420p[o]"
        _ffmpeg([*args, "-filter_complex", graph, "-map", "[o]", "-c:v", "libx264",
                 "-preset", "veryfast", str(p)])
    clips.append(("synthetic 6x2s", p, [2.0, 4.0, 6.0, 8.0, 10.0], 0.0))
    # cuts between real clips: vtest 4 s | tree 4 s | Megamind (one shot) 1.5 s | vtest 4 s
    p = d / "real_cuts.mp4"
    if not p.is_file():
        parts = [("vtest.avi", 0, 4), ("tree.avi", 10, 4), ("Megamind.avi", 4.5, 1.5),
                 ("vtest.avi", 40, 4)]
        args, graph = [], ""
        for i, (f, ss, t) in enumerate(parts):
            args += ["-ss", str(ss), "-t", str(t), "-i", str(DATA / f)]
            graph += (f"[{i}:v]scale=640:360,setsar=1,fps=25,format=yuv420p,"
                      f"trim=duration={t},setpts=PTS-STARTPTS[v{i}];")
        graph += "".join(f"[v{i}]" for i in range(len(parts))) + "concat=n=4:v=1[o]"
        _ffmpeg([*args, "-filter_complex", graph, "-map", "[o]", "-c:v", "libx264",
                 "-preset", "veryfast", str(p)])
    clips.append(("real cuts", p, [4.0, 8.0, 9.5], 0.0))
    # Megamind.avi: cuts at frames 98, 154, 200 (23.976 fps), found by the largest HSV
    # frame differences and checked by eye; frame 0 is black (ignored)
    r = 24000 / 1001
    clips.append(("Megamind.avi", DATA / "Megamind.avi", [98 / r, 154 / r, 200 / r], 0.5))
    clips.append(("vtest.avi (no cut)", DATA / "vtest.avi", [], 0.0))
    clips.append(("tree.avi (no cut, hand)", DATA / "tree.avi", [], 0.0))
    # a 1 s cross-fade (one gradual transition; any detection inside it counts as a hit)
    p = d / "fade.mp4"
    if not p.is_file():
        _ffmpeg(["-t", "3", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
                 "-t", "3", "-f", "lavfi", "-i", "smptebars=size=640x360:rate=25",
                 "-filter_complex", "[0][1]xfade=transition=fade:duration=1:offset=2,format=yuv420p",
                 "-c:v", "libx264", "-preset", "veryfast", str(p)])
    clips.append(("cross-fade 1 s", p, [2.5], 0.0))
    # camera motion over a still photo (no cut): a slow zoom and pan
    p = d / "pan.mp4"
    if not p.is_file():
        _ffmpeg(["-loop", "1", "-t", "8", "-i", str(DATA / "home.jpg"), "-vf",
                 "scale=1280:-2,zoompan=z='min(zoom+0.004,1.8)':x='iw/2-(iw/zoom/2)+on*2':"
                 "y='ih/2-(ih/zoom/2)':d=1:s=640x360:fps=25,format=yuv420p",
                 "-t", "8", "-c:v", "libx264", "-preset", "veryfast", str(p)])
    clips.append(("zoom+pan photo (no cut)", p, [], 0.0))
    return clips


def shots() -> None:
    from indexer.stages.keyframes import detect_cuts
    clips = _shot_clips()
    print(f"{'clip':25} {'fps':>4} {'method':10} {'true':>4} {'hit':>4} {'miss':>4} {'false':>5} "
          f"{'max err':>8} {'s':>6}")
    totals: dict = {}
    for sample_fps in (2.0, 4.0, 8.0):
        step = 1.0 / sample_fps
        for method in ("content", "adaptive", "histogram"):
            tot = totals.setdefault((sample_fps, method), [0, 0, 0, 0])
            for name, path, truth, ignore in clips:
                t = time.perf_counter()
                found = [c for c in detect_cuts(path, sample_fps=sample_fps, detector=method)
                         if c >= ignore]
                el = time.perf_counter() - t
                fade = name.startswith("cross-fade")
                hits, errs, used = 0, [], set()
                for c in truth:
                    lo, hi = (c - 0.5 - 0.05, c + 0.5 + step) if fade else (c - 0.05, c + step + 0.05)
                    m = [f for f in found if lo <= f <= hi and f not in used]
                    if m:
                        hits += 1
                        used.add(m[0])
                        errs.append(m[0] - c)
                false = len(found) - len(used)
                tot[0] += len(truth); tot[1] += hits; tot[2] += false
                tot[3] = max(tot[3], max((abs(e) for e in errs), default=0.0))
                print(f"{name:25} {sample_fps:4.0f} {method:10} {len(truth):4} {hits:4} "
                      f"{len(truth) - hits:4} {false:5} "
                      f"{max((abs(e) for e in errs), default=0):7.2f}s {el:5.2f}s")
    print("\ntotals over all clips: sample fps, method, true cuts, hits, false cuts, max error")
    for (fps, method), (n, hit, false, err) in totals.items():
        print(f"  {fps:3.0f} fps {method:10} {n:3} {hit:3} {false:3} {err:5.2f}s")


# ---- model timings ----------------------------------------------------------------------------

def models(models_dir: str) -> None:
    import cv2
    from models.vision.image_features import ImageClassifier
    from models.vision.ocr import ScreenTextReader, might_have_text
    img = cv2.imread(str(DATA / "squirrel_cls.jpg"))
    for backend in ("torch", "onnx"):
        clf = ImageClassifier(models_dir, backend=backend)
        for batch in (1, 8):
            ims = [img] * batch
            clf.analyze(ims)
            n, t = 0, time.perf_counter()
            while time.perf_counter() - t < 3.0:
                clf.analyze(ims, batch_size=batch)
                n += batch
            print(f"EfficientNet-Lite0 {backend:5} batch {batch}: "
                  f"{(time.perf_counter() - t) / n * 1000:6.1f} ms/image (incl. preprocessing)")
    frame = cv2.resize(cv2.imread(str(DATA / "orange.jpg")), (1920, 1080))
    text = frame.copy()
    cv2.putText(text, "I never said that to him", (200, 950), cv2.FONT_HERSHEY_SIMPLEX, 2.0,
                (255, 255, 255), 4, cv2.LINE_AA)
    reader = ScreenTextReader()
    for name, im in (("1080p photo, no text", frame), ("1080p photo + subtitle", text)):
        reader.read(im)
        t = time.perf_counter()
        for _ in range(3):
            lines = reader.read(im)
        print(f"OCR {name}: {(time.perf_counter() - t) / 3 * 1000:6.0f} ms/frame "
              f"-> {[l.text for l in lines]}")
        t = time.perf_counter()
        for _ in range(20):
            might_have_text(im)
        print(f"  cheap text check: {(time.perf_counter() - t) / 20 * 1000:.1f} ms/frame")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", action="store_true")
    ap.add_argument("--models", action="store_true")
    ap.add_argument("--models-dir", default=str(CACHE / "models"))
    ap.add_argument("--repeat", type=int, default=1, help="keep the fastest of N runs")
    ap.add_argument("--baseline", metavar="REV",
                    help="also measure the stage of these git revisions (comma-separated) "
                         "and compare results")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        {"keyframes": child_keyframes, "stage": child_stage,
         "prepare": child_prepare}[kind](*rest)
        return 0
    if not DATA.is_dir():
        print(f"{DATA} missing: apt-get install opencv-doc", file=sys.stderr)
        return 2
    if args.shots:
        shots()
    elif args.models:
        models(args.models_dir)
    else:
        speed(args.models_dir, args.repeat, args.baseline)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
