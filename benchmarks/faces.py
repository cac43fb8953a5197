"""Faces: query-by-face P@1, clustering pairwise F1, people on screen >= 2 s found in
video, the faces stage's cost beside the visual stage's at 720p, memory over a batch.

    .venv/bin/python -m benchmarks.faces            # everything (~7 min on 2 cores)
    .venv/bin/python -m benchmarks.faces --photos   # P@1 and F1 only, test and dev splits
    .venv/bin/python -m benchmarks.faces --tune     # the clustering's F1 on dev by threshold
    .venv/bin/python -m benchmarks.faces --levers   # the faces stage under each cost lever
    .venv/bin/python -m benchmarks.faces --fit-boxes   # the fast detector's box -> HOG's

Real photos from packages only (fetched once into benchmarks/.cache/faces/ with pip and
npm; nothing else is downloaded):
* PyPI face_recognition 1.3.0 sdist, tests/test_images: obama.jpg, obama2.jpg, obama3.jpg,
  obama_partial_face.jpg, obama_partial_face2.jpg, biden.jpg;
* PyPI insightface 2.1 sdist: Tom_Hanks_54745.png, t1.jpg (a group: strangers);
* npm @vladmandic/face-api 1.7.15: demo/sample1-6.jpg (groups: strangers);
* Debian opencv-doc: messi5.jpg, julia_facedetect_sample.jpg, facereg.jpg (four people, the
  bottom right one Obama again, with landmarks drawn on), lbp_yale.jpg (its top row: one
  Yale B subject under four lightings; the bottom row is LBP images, left out).
Only two identities have more than one photo (Obama: 6, the Yale subject: 4), so P@1 has
10 queries against every other face as gallery and the F1 has 21 same-person pairs. That
is the test split. The dev split, other people from two more packages (a montage of 25
photos of one woman, frames of two people's clips, 13 strangers), is in
benchmarks/faces_dev.py; --tune scores the clustering threshold on it.

Video: a 44.5 s 1280x720 H.264 clip rendered in-process with PyAV from these photos (11
segments of 1.2-6 s, zooming or panning, between moving-pattern fillers of 0.7-1.9 s that
start off the 1 s grid; ground truth in people720.json beside it); a person counts as found
when an appearance overlaps their segment (a group photo of n people needs n appearances).
Cost: both stages one after the other on the clip and on opencv-doc's vtest.avi and
Megamind.avi re-encoded to 720p, wall and CPU seconds of each (and each file's CPU median
over all its runs in the batch); memory: RSS after each of a batch of 10 files through both
stages. --fit-boxes fetches npm @vladmandic/human 3.3.6 for its assets/ pictures (faces of
no identity scored here) and fits models.fast_face_detector's box mapping on them.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache" / "faces"
PHOTOS = CACHE / "photos"
OPENCV = Path("/usr/share/doc/opencv-doc")

FACE_RECOGNITION = ["obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg",
                    "obama_partial_face2.jpg", "biden.jpg"]
INSIGHTFACE = ["Tom_Hanks_54745.png", "t1.jpg"]
FACE_API = [f"sample{i}.jpg" for i in range(1, 7)]
OPENCV_FILES = {"messi5.jpg": OPENCV / "examples/data/messi5.jpg",
                "julia.jpg": OPENCV / "opencv4/html/julia_facedetect_sample.jpg",
                "facereg.jpg": OPENCV / "opencv4/html/facereg.jpg",
                "lbp_yale.jpg": OPENCV / "opencv4/html/lbp_yale.jpg"}


def _run(cmd, **kw) -> None:
    with tempfile.TemporaryFile("w+") as err:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=err, timeout=900, **kw)
        if r.returncode:
            err.seek(0)
            raise SystemExit(f"{cmd[0]} failed: {err.read().strip()[-2000:]}")


def _extract(archive: Path, wanted: list[str], inside: str, dest: Path = PHOTOS,
             prefix: str = "") -> None:
    """The `wanted` files under a folder `inside` the archive, into dest as prefix + name."""
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            name = Path(m.name).name
            if name in wanted and inside in m.name:
                (dest / f"{prefix}{name}").write_bytes(tar.extractfile(m).read())


def fetch() -> Path:
    """The photos, fetched once from the packages into benchmarks/.cache/faces/photos."""
    PHOTOS.mkdir(parents=True, exist_ok=True)
    need = FACE_RECOGNITION + INSIGHTFACE + FACE_API
    if not all((PHOTOS / n).is_file() for n in need):
        with tempfile.TemporaryDirectory() as tmp:
            pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                   "--disable-pip-version-check"]
            _run([*pip, "--no-binary", "face_recognition", "face_recognition==1.3.0"])
            _run([*pip, "--no-binary", "insightface", "--no-build-isolation", "insightface==2.1"])
            _run(["npm", "pack", "--silent", "@vladmandic/face-api@1.7.15"], cwd=tmp)
            for a in Path(tmp).iterdir():
                if a.name.startswith("face_recognition"):
                    _extract(a, FACE_RECOGNITION, "/tests/test_images/")
                elif a.name.startswith("insightface"):
                    _extract(a, INSIGHTFACE, "/data/images/")
                elif a.name.endswith(".tgz"):
                    _extract(a, FACE_API, "package/demo/")
    for name, src in OPENCV_FILES.items():
        if not (PHOTOS / name).is_file():
            if not src.is_file():
                raise SystemExit(f"{src} is missing: apt-get install opencv-doc")
            shutil.copyfile(src, PHOTOS / name)
    return PHOTOS


HUMAN = "@vladmandic/human@3.3.6"          # npm; its assets/ pictures, for --fit-boxes only
HUMAN_ASSETS = ["samples.jpg", "screenshot-facedetect.jpg", "screenshot-faceid.jpg",
                "screenshot-facematch.jpg", "screenshot-vrm.jpg"]
BOX_FIT_PHOTOS = ["t1.jpg", *FACE_API]       # no identity in the P@1 / F1 test rests on these


def fit_boxes() -> dict:
    """The fast detector's box mapped to dlib HOG's (models.fast_face_detector.BOX_DY,
    BOX_SIDE): medians over the faces both find (IoU > 0.3) on pictures whose identities
    the benchmark does not score (the human package's assets, t1.jpg, face-api's photos)."""
    from models.boxes import box_iou as _iou
    from models.faces import read_photo, shared_face_models
    assets = CACHE / "human"
    if not all((assets / n).is_file() for n in HUMAN_ASSETS):
        assets.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            _run(["npm", "pack", "--silent", HUMAN], cwd=tmp)
            with tarfile.open(next(Path(tmp).glob("*.tgz"))) as tar:
                for m in tar.getmembers():
                    if m.name.startswith("package/assets/") and Path(m.name).name in HUMAN_ASSETS:
                        (assets / Path(m.name).name).write_bytes(tar.extractfile(m).read())
    models = shared_face_models().get()
    if models.fast is None:
        raise SystemExit("yuface (the fast detector) is not installed")
    fetch()
    rows = []
    for path in [*(assets / n for n in HUMAN_ASSETS), *(PHOTOS / n for n in BOX_FIT_PHOTOS)]:
        img = read_photo(path)
        s = min(1.0, 960 / max(img.shape[:2]))
        if s < 1:
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        hog = models.detect(img, width=img.shape[1], max_faces=50)
        for x, y, w, h, _ in models.fast.detect(img, width=img.shape[1]):
            best = max(hog, key=lambda f: _iou(f.box, (x, y, w, h)), default=None)
            if best is not None and _iou(best.box, (x, y, w, h)) > 0.3:
                hx, hy, hw, _ = best.box
                rows.append(((hy + hw / 2 - (y + h / 2)) / h, hw / np.sqrt(w * h)))
    dy, side = np.median(np.asarray(rows), axis=0)
    return {"faces": len(rows), "box_dy": round(float(dy), 3), "box_side": round(float(side), 3)}


# ---- photos: P@1 and clustering -----------------------------------------------------------

# Two faces of the group photos that are one woman (judged by eye after the benchmark showed
# them at distance 0.41; the demo photos come from one set of shoots).
SAME_BY_EYE = {("sample1.jpg", 2): "sample-blonde", ("sample3.jpg", 0): "sample-blonde"}


def _label(name: str, box, shape, k: int) -> str | None:
    """The identity of face k in photo `name` (None: not a photo of a face)."""
    h, w = shape[:2]
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    if name.startswith("obama"):
        return "obama"
    if name in ("biden.jpg", "messi5.jpg", "julia.jpg", "Tom_Hanks_54745.png"):
        return name.split(".")[0].split("_5")[0]
    if name == "facereg.jpg":
        quadrant = ("top" if cy < h / 2 else "bottom") + ("left" if cx < w / 2 else "right")
        return "obama" if quadrant == "bottomright" else f"facereg-{quadrant}"
    if name == "lbp_yale.jpg":
        return "yale-subject" if cy < h / 2 else None
    return SAME_BY_EYE.get((name, k), f"{name}#{k}")   # group photos: strangers


def photo_faces(models) -> list[dict]:
    from models.faces import read_photo
    out = []
    for path in sorted(fetch().iterdir()):
        img = read_photo(path)
        faces, vecs = models.faces_in_photo(img, max_faces=50)
        for k, (f, v) in enumerate(zip(faces, vecs)):
            label = _label(path.name, f.box, img.shape, k)
            if label is not None:
                out.append({"photo": path.name, "identity": label, "vec": v,
                            "detector": f.detector, "size": round(min(f.box[2:]))})
    return out


def library_people(vecs: np.ndarray, threshold: float) -> list[int]:
    """The person each face ends up with when each is a file of its own, saved in this
    order into a real library (`Store.save_faces`: assign, then join_close)."""
    import tempfile
    from indexer.store import Store
    face = {"start": 0.0, "end": 1.0, "time": 0.0, "x": 0.4, "y": 0.2, "w": 0.2, "h": 0.3,
            "score": 1.0, "sightings": 1, "thumbnail": None}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "people.db")
        try:
            rows = [store.save_faces(store.add_media(f"/faces/{i}.jpg", f"f{i}", 1, 0), [face],
                                     [v], match_distance=threshold)[0]["id"]
                    for i, v in enumerate(vecs)]
            person = {r["id"]: r["person_id"] for r in store._rows(
                "SELECT id, person_id FROM face_appearances")}
        finally:
            store.close()
    return [person[r] for r in rows]


def photo_scores(faces: list[dict], orders: int = 5, threshold: float | None = None,
                 join: bool = True) -> dict:
    """P@1 (each face with a same-person face elsewhere queries all the others) and the
    pairwise F1 of the incremental clustering, the faces fed in `orders` random orders,
    each a file of its own saved into a real library (`join`: False, by `assign` alone,
    as before people close enough were joined after each file)."""
    from models.face_clustering import MATCH_DISTANCE, assign, pairwise_f1
    threshold = MATCH_DISTANCE if threshold is None else threshold
    ids = np.array([f["identity"] for f in faces])
    vecs = np.asarray([f["vec"] for f in faces])
    d = np.linalg.norm(vecs[:, None] - vecs[None], axis=2)
    np.fill_diagonal(d, np.inf)
    queries = [i for i in range(len(faces)) if (ids == ids[i]).sum() > 1]
    hits = [ids[int(np.argmin(d[i]))] == ids[i] for i in queries]
    misses = [(faces[i]["photo"], faces[int(np.argmin(d[i]))]["photo"], round(float(d[i].min()), 3))
              for i, ok in zip(queries, hits) if not ok]
    f1s = []
    rng = np.random.default_rng(0)
    for _ in range(orders):
        order = rng.permutation(len(faces))
        labels = np.empty(len(faces), int)
        if join:
            labels[order] = library_people(vecs[order], threshold)
        else:
            labels[order] = assign(vecs[order], threshold=threshold).labels
        f1s.append(pairwise_f1(ids, labels))
    same = d[np.equal.outer(ids, ids) & np.isfinite(d)]
    other = d[~np.equal.outer(ids, ids)]
    return {"faces": len(faces), "identities": len(set(ids)), "queries": len(queries),
            "p_at_1": float(np.mean(hits)) if hits else float("nan"), "misses": misses,
            "f1_mean": float(np.mean([f["f1"] for f in f1s])),
            "f1_min": float(min(f["f1"] for f in f1s)),
            "precision": float(np.mean([f["precision"] for f in f1s])),
            "recall": float(np.mean([f["recall"] for f in f1s])),
            "same_pairs": f1s[0]["pairs_same"],
            "same_distance_max": float(same.max()) if same.size else None,
            "other_distance_min": float(other.min()),
            "cnn_faces": sum(f["detector"] == "cnn" for f in faces)}


# MATCH_DISTANCE values --tune tries on the dev split (benchmarks/faces_dev.py)
TUNE_THRESHOLDS = [0.45, 0.5, 0.52, 0.54, 0.56, 0.57, 0.58, 0.59, 0.6, 0.62, 0.65]


# ---- video ------------------------------------------------------------------------------------

# (photo, people in it, seconds on screen, motion): "zoom" grows from 85 % to 100 % of the
# frame's height, "out" shrinks back, "pan" slides a 110 % picture sideways. Segments under
# 2 s are in the clip too, but outside the ">= 2 s" target.
SEGMENTS = [("obama.jpg", 1, 2.0, "zoom"), ("biden.jpg", 1, 2.3, "out"),
            ("obama2.jpg", 1, 6.0, "pan"), ("julia.jpg", 1, 2.4, "zoom"),
            ("messi5.jpg", 1, 1.2, "pan"), ("obama3.jpg", 1, 2.6, "zoom"),
            ("facereg.jpg", 4, 2.2, "zoom"), ("sample2.jpg", 3, 4.5, "pan"),
            ("biden.jpg", 1, 1.5, "zoom"), ("Tom_Hanks_54745.png", 1, 2.0, "zoom"),
            ("julia.jpg", 1, 3.5, "pan")]
FILLERS = [1.3, 0.7, 1.9, 1.1, 1.6, 0.9, 1.4, 1.2, 1.7, 1.0, 1.5]   # s, off the 1 s grid
FPS, SIZE = 25, (1280, 720)
VIDEO_VERSION = 2                 # bump when SEGMENTS or the rendering change


def _filler(k: int, n: int) -> np.ndarray:
    """A moving colour pattern with no face in it (frame k of n)."""
    w, h = SIZE
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    shift = k / max(1, n)
    img = np.stack([np.broadcast_to((x + shift) % 1.0, (h, w)),
                    np.broadcast_to(y, (h, w)),
                    np.broadcast_to(((x + y) / 2 + 2 * shift) % 1.0, (h, w))], axis=2)
    img = (img * 255).astype(np.uint8)
    cv2.rectangle(img, (200 + int(400 * shift), 250), (420 + int(400 * shift), 470),
                  (255, 255, 255), -1)
    return img


def _photo_frame(photo: np.ndarray, motion: str, f: float) -> np.ndarray:
    """The photo on a black 1280x720 frame, `f` (0..1) of the way through its motion."""
    w, h = SIZE
    ph, pw = photo.shape[:2]
    if motion == "pan":
        frac, dx = 1.1, (f - 0.5) * 0.1 * w
    else:
        frac, dx = (0.85 + 0.15 * f) if motion == "zoom" else (1.0 - 0.15 * f), 0.0
    k = min(h * frac / ph, w * frac / pw)
    m = np.float32([[k, 0, (w - pw * k) / 2 + dx], [0, k, (h - ph * k) / 2]])
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(photo, m, SIZE, flags=interp, borderValue=(0, 0, 0))


def make_video(out: Path | None = None) -> tuple[Path, list[dict]]:
    """The 720p clip (H.264, encoded in-process with PyAV: no ffmpeg subprocess) and its
    ground truth, written beside it as JSON; both are kept and reused."""
    import av
    out = out or CACHE / "people720.mp4"
    truth = out.with_suffix(".json")
    if out.is_file() and truth.is_file():
        known = json.loads(truth.read_text())
        if known.get("version") == VIDEO_VERSION:
            return out, known["cases"]
    fetch()
    cases, frames, t = [], [], 0.0
    for (photo, people, secs, motion), filler in zip(SEGMENTS, FILLERS):
        frames.append(("filler", filler, None))
        t += filler
        cases.append({"photo": photo, "people": people, "start": round(t, 3),
                      "end": round(t + secs, 3)})
        frames.append((photo, secs, motion))
        t += secs
    tmp = out.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for name, secs, motion in frames:
            n = int(round(secs * FPS))
            photo = None if name == "filler" else cv2.imread(str(PHOTOS / name))
            for k in range(n):
                img = _filler(k, n) if photo is None else _photo_frame(photo, motion, k / max(1, n - 1))
                frame = av.VideoFrame.from_ndarray(img, format="bgr24")
                container.mux(stream.encode(frame))
        container.mux(stream.encode())
    os.replace(tmp, out)
    truth.write_text(json.dumps({"version": VIDEO_VERSION, "fps": FPS, "size": SIZE,
                                 "cases": cases}, indent=1))
    return out, cases


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


REAL_VIDEOS = [OPENCV / "examples/data/vtest.avi", OPENCV / "examples/data/Megamind.avi"]


def to_720p(src: Path) -> Path:
    """A real video re-encoded to 1280x720 H.264 (PyAV, in-process), cached."""
    import av
    out = CACHE / f"{src.stem}_720p.mp4"
    if out.is_file():
        return out
    if not src.is_file():
        raise SystemExit(f"{src} is missing: apt-get install opencv-doc")
    tmp = out.with_suffix(".tmp.mp4")
    with av.open(str(src)) as inp, av.open(str(tmp), "w") as container:
        vin = inp.streams.video[0]
        rate = vin.average_rate or 25
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for frame in inp.decode(vin):
            img = cv2.resize(frame.to_ndarray(format="bgr24"), SIZE, interpolation=cv2.INTER_LINEAR)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
        container.mux(stream.encode())
    os.replace(tmp, out)
    return out


def _duration(path: Path) -> float:
    import av
    with av.open(str(path)) as c:
        return float(c.duration) / 1e6


def _stages(models_dir: Path, tmp: Path, **faces_kw):
    from indexer.stages.faces import FacesStage
    from indexer.stages.visual import VisualStage
    from models.faces import shared_face_models
    visual = VisualStage(tmp / "thumbs", models_dir)
    visual.classifier, visual.reader                  # models loaded before the clock
    faces = FacesStage(tmp / "thumbs", models=shared_face_models().get(), **faces_kw)
    return visual, faces


def timed_run(store, visual, faces, path: Path) -> dict:
    """Both stages on one file, one after the other as the pipeline runs them; wall and
    CPU seconds of each, and the faces stage's rows."""
    from indexer.stages.base import StageContext
    from indexer.stages.motion import MotionAnalyser
    MotionAnalyser.for_store(store)
    media_id = store.add_media(str(path), None, path.stat().st_size, 0)
    media = {"id": media_id, "path": str(path), "duration": _duration(path)}
    out = {"file": path.name, "duration": media["duration"], "media_id": media_id}
    for name, stage in (("visual", visual), ("faces", faces)):
        t, cpu = time.perf_counter(), time.process_time()
        saver = stage.run(media, StageContext(store=store))
        out[f"{name}_s"] = time.perf_counter() - t
        out[f"{name}_cpu_s"] = time.process_time() - cpu
        with store.transaction():
            saver(store)
    out["faces_stats"] = dict(faces.last_stats)
    out["visual_stats"] = {k: v for k, v in visual.last_stats.items()
                           if isinstance(v, (int, float))}
    out["appearances"] = store.face_appearances(media_id, include_hidden=True)
    return out


def found_per_case(rows: list, cases: list[dict]) -> list[dict]:
    """Each case with `found`: the appearances overlapping its time, at most its people."""
    out = []
    for c in cases:
        overlapping = [r for r in rows if r["start"] < c["end"] and r["end"] > c["start"]]
        out.append(dict(c, found=min(len(overlapping), c["people"])))
    return out


def video_scores(clip: Path, cases: list[dict], models_dir: Path, batch: int,
                 real: list[Path], **faces_kw) -> dict:
    from indexer.store import Store
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "lib.db")
        visual, faces = _stages(models_dir, Path(tmp), **faces_kw)
        runs = [timed_run(store, visual, faces, p) for p in [clip, *real]]
        per_case = found_per_case(runs[0]["appearances"], cases)
        long = [c for c in per_case if c["end"] - c["start"] >= 2.0]
        files = [clip, *real]
        rss = []
        cpu = {r["file"]: [(r["visual_cpu_s"], r["faces_cpu_s"])] for r in runs}
        for k in range(batch):                           # memory over a batch of files
            src = files[k % len(files)]
            link = Path(tmp) / f"batch{k}_{src.name}"    # a new file to the library
            link.symlink_to(src)
            r = timed_run(store, visual, faces, link)
            cpu[src.name].append((r["visual_cpu_s"], r["faces_cpu_s"]))
            rss.append(round(_rss_mb()))
        store.close()
    for r in runs:                  # medians over every run of the file (a busy machine)
        r["appearances"] = len(r["appearances"])
        r["cpu_runs"] = len(cpu[r["file"]])
        r["visual_cpu_median"], r["faces_cpu_median"] = np.median(cpu[r["file"]], axis=0)
    people = sum(c["people"] for c in long)
    return {"people": people, "found": int(sum(c["found"] for c in long)),
            "found_rate": sum(c["found"] for c in long) / people,
            "short_people": sum(c["people"] for c in per_case if c not in long),
            "short_found": sum(c["found"] for c in per_case if c not in long),
            "per_case": per_case, "runs": runs, "rss_mb": rss,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def lever_scores(clip: Path, cases: list[dict], rounds: int = 2, only=()) -> list[dict]:
    """The faces stage alone on the clip under each cost lever, interleaved round by round
    so a busy machine weighs on all alike: CPU seconds (median), its parts, found rate."""
    from indexer.stages.faces import FacesStage
    from models.faces import shared_face_models
    models = shared_face_models().get()
    models.embed_chips([np.zeros((150, 150, 3), np.uint8)])   # torch's network built, warm
    fast = models.fast                    # None where yuface is not installed
    net = getattr(fast, "net", None)      # models.yunet (None: the library's own call)
    levers = [("HOG scan at every sample", {"fast": False, "scan_every": 0}),
              ("HOG scan every 2 s, follow on crops between", {"fast": False, "scan_every": 2.0}),
              ("HOG scan every 2 s at 640 px, follow between",
               {"fast": False, "scan_every": 2.0, "scan_width": 640}),
              ("fast scan at every sample, 320 px", {"scan_width": 320, "scan_every": 0}),
              ("fast scan at every sample, 480 px", {"scan_width": 480, "scan_every": 0}),
              ("fast scan at every sample, 640 px", {"scan_width": 640, "scan_every": 0}),
              ("fast scan, 320 px, every 2 s while no face is tracked, dlib's embedder",
               {"scan_width": 320, "dlib_embed": True}),
              ("fast scan, 320 px, every 2 s while no face is tracked, torch embedder, "
               "the library's own detector call", {"scan_width": 320, "library_call": True}),
              ("fast scan, 320 px, every 2 s while no face is tracked, torch embedder, "
               "the detector run by onnxruntime (kept)", {"scan_width": 320})]
    if only:
        levers = [lv for lv in levers if any(o in lv[0] for o in only)]
    from indexer.stages.keyframes import detect_cuts
    duration = _duration(clip)
    cuts = detect_cuts(clip)            # the shots the visual stage would hand the stage
    runs: dict[str, list] = {name: [] for name, *_ in levers}
    for _ in range(rounds):
        for name, kw in levers:
            kw = dict(kw)
            models.torch_embed = not kw.pop("dlib_embed", False)
            library_call = kw.pop("library_call", False)
            if fast is not None:
                fast.net = None if library_call else net
            stage = FacesStage(CACHE, models=models, **kw)
            cpu = time.process_time()
            res = stage.analyse(str(clip), duration=duration, shot_starts=cuts)
            runs[name].append((time.process_time() - cpu, res))
    models.torch_embed = True
    if fast is not None:
        fast.net = net
    from indexer.stages.keyframes import cheap_sampled_frames
    decode = []                     # what a decode shared with the visual stage would save
    for _ in range(rounds):
        cpu = time.process_time()
        for _frame in cheap_sampled_frames(clip, 1.0):
            pass
        decode.append(time.process_time() - cpu)
    out = [{"lever": "(the stage's own decoding alone)", "cpu_s": float(np.median(decode)),
            "cpu_runs": sorted(decode), "decode_s": float("nan"), "detect_s": float("nan"),
            "embed_s": float("nan"), "stats": None, "found": 0, "people": 0}]
    for name, *_ in levers:
        cpus = sorted(c for c, _ in runs[name])
        res = runs[name][0][1]
        long = [c for c in found_per_case(res.appearances, cases) if c["end"] - c["start"] >= 2]
        out.append({"lever": name, "cpu_s": float(np.median(cpus)), "cpu_runs": cpus,
                    "decode_s": res.stats["decode_s"], "detect_s": res.stats["detect_s"],
                    "embed_s": res.stats["embed_s"], "stats": res.stats,
                    "found": sum(c["found"] for c in long),
                    "people": sum(c["people"] for c in long)})
    return out


def _stage_line(st: dict) -> str:
    return (f"{st['frames']} frames ({st['scanned_frames']} scanned, {st['followed_frames']} "
            f"followed on {st.get('hog_crops', 0)} crops, {st['skipped_frames']} skipped, "
            f"{st['reused_frames']} reused, {st['backfilled']} back-filled), decode "
            f"{st['decode_s']:.2f} s, detect {st['detect_s']:.2f} s, align {st['align_s']:.2f} s, "
            f"CNN {st['cnn_s']:.2f} s ({st['cnn_looks']} looks, {st['cnn_found']} found), embed "
            f"{st['embed_s']:.2f} s ({st.get('embedded', 0)} faces), {st['appearances']} appearances")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", action="store_true", help="P@1 and clustering F1 only")
    ap.add_argument("--levers", nargs="*", metavar="WORD",
                    help="the faces stage alone on the clip under each cost lever (those "
                         "whose name holds one of the WORDs, if given)")
    ap.add_argument("--fit-boxes", action="store_true",
                    help="fit the fast detector's box to dlib HOG's framing")
    ap.add_argument("--no-join", action="store_true",
                    help="people by assign alone, as before close people were joined after "
                         "each file (stop 34)")
    ap.add_argument("--tune", action="store_true",
                    help="the clustering's F1 on the dev split under each MATCH_DISTANCE")
    ap.add_argument("--batch", type=int, default=10, help="files in the memory check")
    ap.add_argument("--dlib-embed", action="store_true",
                    help="describe faces by dlib's own ResNet code, not torch (the before)")
    ap.add_argument("--library-call", action="store_true",
                    help="the fast detector by libfacedetection's own call, not onnxruntime "
                         "(the before of stop 36)")
    ap.add_argument("--scan-every", type=float, default=None,
                    help="s between whole-frame scans (0: every sample; default: the stage's)")
    args = ap.parse_args()
    from benchmarks.markdown import table
    from models.faces import shared_face_models
    if args.fit_boxes:
        print(fit_boxes())
        return
    if args.levers is not None:
        clip, cases = make_video()
        rows = lever_scores(clip, cases, only=args.levers)
        print(table([[r["lever"], r["cpu_s"], r["decode_s"], r["detect_s"], r["embed_s"],
                      f"{r['found']}/{r['people']}"] for r in rows],
                    ["faces stage on the 44.5 s clip", "CPU s (median)", "decode s",
                     "detect s", "embed s", "found (>= 2 s)"]))
        for r in rows:
            if r["stats"]:
                print(r["lever"] + ":", _stage_line(r["stats"]))
        print("CPU s of every run:", {r["lever"]: [round(c, 2) for c in r["cpu_runs"]]
                                      for r in rows})
        return
    models = shared_face_models().get()
    models.torch_embed = not args.dlib_embed
    if args.library_call and models.fast is not None:
        models.fast.net = None
    if args.tune:
        from benchmarks.faces_dev import dev_faces
        faces = dev_faces(models)
        rows = [photo_scores(faces, orders=50, threshold=t, join=not args.no_join)
                | {"threshold": t}
                for t in TUNE_THRESHOLDS]
        print(table([[r["threshold"], r["precision"], r["recall"], r["f1_mean"], r["f1_min"]]
                     for r in rows], ["dev: MATCH_DISTANCE", "pair precision", "pair recall",
                                      "F1 (mean of 50 orders)", "F1 (worst order)"]))
        return
    result = {}
    splits = [("test", photo_faces)]
    if args.photos:
        from benchmarks.faces_dev import dev_faces
        splits.append(("dev", dev_faces))
    for split, faces_of in splits:
        ps = photo_scores(faces_of(models), join=not args.no_join)
        print(table([[split, ps["faces"], ps["identities"], ps["queries"], ps["p_at_1"],
                      ps["same_pairs"], ps["precision"], ps["recall"], ps["f1_mean"],
                      ps["f1_min"]]],
                    ["split", "faces", "identities", "P@1 queries", "P@1", "same-person pairs",
                     "pair precision", "pair recall", "F1 (mean of 5 orders)",
                     "F1 (worst order)"]))
        print(f"{split}: largest same-person distance {ps['same_distance_max']:.3f}, smallest "
              f"different-person distance {ps['other_distance_min']:.3f}; P@1 misses: "
              f"{ps['misses'] or 'none'}; faces found by the CNN fallback: {ps['cnn_faces']}")
        result["photos" if split == "test" else "dev_photos"] = ps
    if not args.photos:
        from app.settings import Settings
        models_dir = Settings().resolved_models_dir()
        clip, cases = make_video()
        real = [to_720p(p) for p in REAL_VIDEOS]
        kw = {} if args.scan_every is None else {"scan_every": args.scan_every}
        vs = video_scores(clip, cases, models_dir, args.batch, real, **kw)
        result["video"] = vs
        print()
        print(table([[c["photo"], c["people"], f"{c['start']:.1f}-{c['end']:.1f}", c["found"]]
                     for c in vs["per_case"]], ["photo", "people", "on screen (s)", "found"]))
        print(f"on screen >= 2 s: {vs['found']}/{vs['people']} found "
              f"({vs['found_rate']:.3f}); under 2 s: {vs['short_found']}/{vs['short_people']}")
        print()
        print(table([[r["file"], f"{r['duration']:.1f}", r["visual_s"], r["faces_s"],
                      r["faces_s"] / r["visual_s"], r["visual_cpu_s"], r["faces_cpu_s"],
                      r["faces_cpu_s"] / r["visual_cpu_s"], r["cpu_runs"],
                      r["visual_cpu_median"], r["faces_cpu_median"],
                      r["faces_cpu_median"] / r["visual_cpu_median"], r["appearances"]]
                     for r in vs["runs"]],
                    ["720p file", "s", "visual s", "faces s", "faces/visual", "visual CPU s",
                     "faces CPU s", "CPU ratio", "runs", "visual CPU s (median)",
                     "faces CPU s (median)", "CPU ratio (medians)", "appearances"]))
        for r in vs["runs"]:
            st = r["faces_stats"]
            print(f"{r['file']}: {_stage_line(st)}")
        print(f"RSS after each of {len(vs['rss_mb'])} files (both stages): {vs['rss_mb']} MB "
              f"(peak {vs['peak_rss_mb']:.0f} MB)")
    (CACHE / "results.json").write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
