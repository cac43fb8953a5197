"""Search by example image: P@1 and hit@5 over groups of real photos, the query another
photo of the same group, through the real search service.

    .venv/bin/python -m benchmarks.image_search                 # dev and test (~4 min once)
    .venv/bin/python -m benchmarks.image_search --levers        # each lever on and off, dev
    .venv/bin/python -m benchmarks.image_search --split test --json out.json
    .venv/bin/python -m benchmarks.image_search --offline-levers   # QE and poolings, numpy
    .venv/bin/python -m benchmarks.image_search --latency 25000    # generated keyframes

Real photos from packages only (fetched once into benchmarks/.cache/image_search/):
* Debian opencv-doc, examples/data: pairs and sets of one object or scene photographed
  differently (aero1/3, aloeL/R, basketball1/2, box/box_in_scene, ela_original/modified,
  graf1/3, leuvenA/B, left/right, rubberwhale1/2, the Blender Suzanne renders, five views
  of one chessboard), and single photos as distractors;
* PyPI scikit-image 0.26.0 wheel, skimage/data: the motorcycle stereo pair, photos of
  printed text, the cat, and distractors;
* Debian mate-backgrounds, plasma-workspace-wallpapers, ukui-wallpapers, lomiri-wallpapers:
  scene categories sorted by eye (flowers close up, a lake or pier at dusk, green leaves and
  grass close up) and the abstract wallpapers as distractors;
* the face photos of benchmarks.faces (PyPI face_recognition and insightface, npm
  @vladmandic/face-api, opencv-doc): Obama (5 photos), one Yale B subject under four
  lightings (the top row of lbp_yale.jpg, cut in four), the face-api demo album (six group
  photos from one set of shoots).
Groups are listed in GROUPS with their kind (object, scene, person); every photo of a
group is a query once. Dev and test are split by group, alternating within each kind in
name order (fixed before any run).

The library is what avindex indexes: the photos are shown in slideshow videos (2.5 s each,
640x480, letterboxed, in a seeded shuffle across 8-photo videos, rendered in-process with
PyAV), next to opencv-doc's vtest.avi, Megamind.avi and tree.avi, and every video goes
through the real visual stage (keyframes, EfficientNet-Lite0 features; OCR and motion off,
they do not touch the features) and the faces stage. A query is the original photo file,
searched with `indexer.search.search(store, image=path, models=...)` with the face models
when installed, as the app does; hits on the query's own slide are dropped (leave one
out), and a hit counts when it falls on a slide of another photo of the query's group.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache" / "image_search"
PHOTOS = CACHE / "photos"
OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")
DEBS = ["mate-backgrounds", "plasma-workspace-wallpapers", "ukui-wallpapers",
        "lomiri-wallpapers"]
SKIMAGE = "scikit-image==0.26.0"
LIBRARY_VERSION = 1
SLIDE_S, FPS, SIZE, PER_VIDEO = 2.5, 4, (640, 480), 8
VIDEOS = ["vtest.avi", "Megamind.avi", "tree.avi"]

MATE = "usr/share/backgrounds/mate/nature/"
PLASMA = "usr/share/wallpapers/{}/contents/images/"


def _plasma(name: str) -> str:
    return f"deb:{PLASMA.format(name)}"


# group -> (kind, [photo keys]); a key is "cv:<opencv-doc file>", "sk:<skimage/data file>",
# "deb:<path in the unpacked packages>" (the first image of a folder when it ends in /),
# "face:<benchmarks.faces photo>" or "yale:<0-3>".
GROUPS: dict[str, tuple[str, list[str]]] = {
    "aerial": ("object", ["cv:aero1.jpg", "cv:aero3.jpg"]),
    "aloe": ("object", ["cv:aloeL.jpg", "cv:aloeR.jpg"]),
    "basketball": ("object", ["cv:basketball1.png", "cv:basketball2.png"]),
    "box": ("object", ["cv:box.png", "cv:box_in_scene.png"]),
    "notebook": ("object", ["cv:ela_original.jpg", "cv:ela_modified.jpg"]),
    "graffiti": ("object", ["cv:graf1.png", "cv:graf3.png"]),
    "leuven": ("object", ["cv:leuvenA.jpg", "cv:leuvenB.jpg"]),
    "books": ("object", ["cv:left.jpg", "cv:right.jpg"]),
    "rubberwhale": ("object", ["cv:rubberwhale1.png", "cv:rubberwhale2.png"]),
    "motorcycle": ("object", ["sk:motorcycle_left.png", "sk:motorcycle_right.png"]),
    "suzanne": ("object", ["cv:Blender_Suzanne1.jpg", "cv:Blender_Suzanne2.jpg"]),
    "chessboard": ("object", ["cv:left01.jpg", "cv:left05.jpg", "cv:left09.jpg",
                              "cv:right02.jpg", "cv:right12.jpg"]),
    "printed text": ("scene", ["cv:text_defocus.jpg", "cv:text_motion.jpg", "sk:page.png",
                               "cv:imageTextN.png"]),
    "fruit": ("scene", ["cv:fruits.jpg", "cv:orange.jpg", "cv:apple.jpg"]),
    "flowers": ("scene", [f"deb:{MATE}FreshFlower.jpg", f"deb:{MATE}Garden.jpg",
                          f"deb:{MATE}YellowFlower.jpg", f"deb:{MATE}TwoWings.jpg"]),
    "lake at dusk": ("scene", [_plasma("BytheWater"), _plasma("ColdRipple"),
                               _plasma("DarkestHour"), _plasma("summer_1am"),
                               _plasma("EveningGlow")]),
    "leaves and grass": ("scene", [f"deb:{MATE}Blinds.jpg", f"deb:{MATE}GreenMeadow.jpg",
                                   f"deb:{MATE}RainDrops.jpg", f"deb:{MATE}LadyBird.jpg"]),
    "animal faces": ("scene", ["sk:chelsea.png", "cv:chicky_512.png", "cv:baboon.jpg",
                               "cv:squirrel_cls.jpg"]),
    "obama": ("person", ["face:obama.jpg", "face:obama2.jpg", "face:obama3.jpg",
                         "face:obama_partial_face.jpg", "face:obama_partial_face2.jpg"]),
    "yale subject": ("person", ["yale:0", "yale:1", "yale:2", "yale:3"]),
    "face-api album": ("person", [f"face:sample{i}.jpg" for i in range(1, 7)]),
}

DISTRACTORS = [
    *(f"cv:{n}" for n in ["building.jpg", "home.jpg", "HappyFish.jpg", "LinuxLogo.jpg",
                          "WindowsLogo.jpg", "board.jpg", "blox.jpg", "butterfly.jpg",
                          "cards.png", "smarties.png", "starry_night.jpg", "stuff.jpg",
                          "ml.png", "notes.png", "licenseplate_motion.jpg", "pic1.png",
                          "pic5.png", "opencv-logo.png"]),
    *(f"sk:{n}" for n in ["astronaut.png", "camera.png", "coffee.png", "coins.png",
                          "rocket.jpg", "hubble_deep_field.jpg", "retina.jpg", "ihc.png",
                          "brick.png", "grass.png", "gravel.png", "horse.png", "moon.png"]),
    *(_plasma(n) for n in ["Altai", "Autumn", "Canopee", "Cascade", "Cluster",
                           "ColorfulCups", "Elarun", "FallenLeaf", "Flow", "FlyingKonqui",
                           "Grey", "Honeywave", "IceCold", "Kay", "Kite", "Kokkini",
                           "MilkyWay", "OneStandsOut", "Opal", "PastelHills", "Patak",
                           "Path", "SafeLanding", "Shell", "Volna"]),
    *(f"deb:usr/share/backgrounds/{n}" for n in [
        "2004default.jpg", "calla.png", "city.png", "desert.png", "firstgeneration.jpg",
        "fluent-color.png", "focal-ubuntukylin.png", "goldfish.png", "rhythm.jpg",
        "rollpaper.png", "string.jpg", "the-mouse.jpg", "warty-final-ubuntu.png"]),
    *(f"deb:{MATE}{n}" for n in ["Aqua.jpg", "Dune.jpg", "Storm.jpg", "Wood.jpg"]),
    *(f"face:{n}" for n in ["Tom_Hanks_54745.png", "biden.jpg", "t1.jpg", "messi5.jpg",
                            "julia.jpg", "facereg.jpg"]),
]


# ---- the photos ---------------------------------------------------------------------------
def _run(cmd, **kw) -> None:
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=900, **kw)
    if r.returncode:
        raise SystemExit(f"{cmd[0]} failed: {r.stderr.strip()[-2000:]}")


def _unpack() -> Path:
    """The Debian packages and the scikit-image wheel, downloaded and unpacked once."""
    x = CACHE / "x"
    done = x / ".done"
    if done.is_file():
        return x
    pkgs = CACHE / "pkgs"
    pkgs.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", "download", *DEBS], cwd=pkgs)
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(pkgs),
          "--disable-pip-version-check", SKIMAGE])
    x.mkdir(exist_ok=True)
    for deb in pkgs.glob("*.deb"):
        _run(["dpkg", "-x", str(deb), str(x)])
    wheel = next(pkgs.glob("scikit_image-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        for m in z.namelist():
            if m.startswith("skimage/data/") and m.endswith((".png", ".jpg")):
                z.extract(m, x / "skimage")
    done.touch()
    return x


def _source(key: str, x: Path, faces: Path) -> Path:
    kind, name = key.split(":", 1)
    if kind == "cv":
        return OPENCV / name
    if kind == "sk":
        return x / "skimage/skimage/data" / name
    if kind == "face":
        return faces / name
    if kind == "deb":
        p = x / name
        return sorted(f for f in p.iterdir() if f.is_file())[0] if name.endswith("/") else p
    raise ValueError(key)


def photo_name(key: str) -> str:
    kind, name = key.split(":", 1)
    if kind == "deb" and name.endswith("/"):
        return f"{name.split('/')[-4]}.jpg"
    if kind == "yale":
        return f"yale{name}.png"
    return name.split("/")[-1]


def fetch() -> dict[str, Path]:
    """key -> a photo file under benchmarks/.cache/image_search/photos (big wallpapers are
    stored at most 2048 px wide: the model sees 224 px, and decoding a 5120 px PNG per
    query would time the decoder, not the search)."""
    from benchmarks import faces as face_bench
    faces = face_bench.fetch()
    if not OPENCV.is_dir():
        raise SystemExit(f"{OPENCV} is missing: apt-get install opencv-doc")
    x = _unpack()
    PHOTOS.mkdir(parents=True, exist_ok=True)
    out = {}
    keys = [k for _, ks in GROUPS.values() for k in ks] + DISTRACTORS
    for key in keys:
        dst = PHOTOS / photo_name(key)
        out[key] = dst
        if dst.is_file():
            continue
        if key.startswith("yale:"):
            img = cv2.imread(str(faces / "lbp_yale.jpg"))
            h, w = img.shape[:2]
            i = int(key.split(":")[1])
            cv2.imwrite(str(dst), img[:h // 2, i * w // 4:(i + 1) * w // 4])
            continue
        src = _source(key, x, faces)
        img = cv2.imread(str(src), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"cannot read {src}")
        if max(img.shape[:2]) > 2048 or src.suffix.lower() not in (".jpg", ".png"):
            k = 2048 / max(img.shape[:2])
            if k < 1:
                img = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(dst), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        else:
            shutil.copyfile(src, dst)
    return out


def splits() -> dict[str, str]:
    """group -> "dev" or "test": alternating within each kind, in name order."""
    out = {}
    for kind in ("object", "scene", "person"):
        for i, g in enumerate(sorted(g for g, (k, _) in GROUPS.items() if k == kind)):
            out[g] = "dev" if i % 2 == 0 else "test"
    return out


# ---- the library --------------------------------------------------------------------------
def _slide(img: np.ndarray) -> np.ndarray:
    w, h = SIZE
    k = min(w / img.shape[1], h / img.shape[0])
    small = cv2.resize(img, (max(1, round(img.shape[1] * k)), max(1, round(img.shape[0] * k))),
                       interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


def make_slideshows(photos: dict[str, Path], folder: Path) -> dict[str, dict]:
    """Slideshow videos of every photo (seeded shuffle); key -> {video, start, end}."""
    import av
    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(photos)
    np.random.default_rng(16).shuffle(keys)
    truth = {}
    for v in range(0, len(keys), PER_VIDEO):
        path = folder / f"slides{v // PER_VIDEO:02d}.mp4"
        with av.open(str(path), "w") as c:
            stream = c.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "20"}
            for j, key in enumerate(keys[v:v + PER_VIDEO]):
                frame = av.VideoFrame.from_ndarray(_slide(cv2.imread(str(photos[key]))),
                                                   format="bgr24")
                for _ in range(int(SLIDE_S * FPS)):
                    c.mux(stream.encode(frame))
                truth[key] = {"video": path.name, "start": j * SLIDE_S,
                              "end": (j + 1) * SLIDE_S}
            c.mux(stream.encode())
    return truth


def _duration(path: Path) -> float:
    import av
    with av.open(str(path)) as c:
        return float(c.duration) / 1e6


def build(db: Path, models_dir: Path, *, faces: bool = True) -> dict:
    """The library (cached with its truth beside it while LIBRARY_VERSION holds)."""
    meta = db.with_suffix(".json")
    if db.is_file() and meta.is_file():
        known = json.loads(meta.read_text())
        if known.get("version") == LIBRARY_VERSION:
            return known
    from indexer.stages.base import StageContext
    from indexer.stages.faces import FacesStage
    from indexer.stages.visual import VisualStage
    from indexer.store import Store
    photos = fetch()
    for f in (db, meta, db.with_suffix(".db-wal"), db.with_suffix(".db-shm")):
        if f.exists():
            f.unlink()
    folder = db.parent / (db.stem + "-media")
    truth = make_slideshows(photos, folder)
    videos = sorted(folder.glob("slides*.mp4")) + [OPENCV / v for v in VIDEOS]
    store = Store(db)
    visual = VisualStage(db.parent / (db.stem + "-thumbs"), models_dir, ocr=False, motion=False)
    stages = [visual]
    if faces:
        from models.faces import shared_face_models
        from models.weights import ModelUnavailable
        try:
            stages.append(FacesStage(db.parent / (db.stem + "-thumbs"),
                                     models=shared_face_models(models_dir).get()))
        except ModelUnavailable:
            print("face models not installed: the library has no faces", file=sys.stderr)
    media = {}
    t0 = time.perf_counter()
    for path in videos:
        mid = store.add_media(str(path), None, path.stat().st_size, 0)
        media[path.name] = mid
        item = {"id": mid, "path": str(path), "duration": _duration(path)}
        for stage in stages:
            saver = stage.run(item, StageContext(store=store))
            with store.transaction():
                saver(store)
    n_kf = store.db.execute("SELECT count(*) FROM keyframes").fetchone()[0]
    store.close()
    known = {"version": LIBRARY_VERSION, "media": media, "truth": truth,
             "photos": {k: str(p) for k, p in photos.items()}, "keyframes": n_kf,
             "index_s": round(time.perf_counter() - t0, 1)}
    meta.write_text(json.dumps(known, indent=1))
    return known


# ---- scoring ------------------------------------------------------------------------------
def queries(lib: dict, split: str) -> list[dict]:
    sp = splits()
    return [{"group": g, "kind": kind, "key": key, "path": lib["photos"][key]}
            for g, (kind, keys) in sorted(GROUPS.items()) if split in ("all", sp[g])
            for key in keys]


def _slide_of(lib: dict, by_media: dict[int, str], media_id: int, t: float) -> str | None:
    video = by_media.get(media_id)
    for key, s in lib["truth"].items():
        if s["video"] == video and s["start"] - 1e-3 <= t < s["end"] - 1e-3:
            return key
    return None


def evaluate(store, lib: dict, qs: list[dict], models, **search_kw) -> dict:
    """P@1 and hit@5 (leave one out), per kind and per group, and the search time."""
    from indexer.search import search
    by_media = {mid: name for name, mid in lib["media"].items()}
    group_of = {k: g for g, (_, ks) in GROUPS.items() for k in ks}
    rows, times = [], []
    for q in qs:
        t = time.perf_counter()
        hits = search(store, image=q["path"], models=models, limit=10, **search_kw)
        times.append((time.perf_counter() - t) * 1000)
        got = []
        for h in hits:
            key = _slide_of(lib, by_media, h.media_id, h.start)
            if key == q["key"]:
                continue                      # the query's own slide
            got.append(group_of.get(key) if key else None)
        rows.append({**q, "top": got[:5], "p1": bool(got) and got[0] == q["group"],
                     "hit5": q["group"] in got[:5]})
    return summarise(rows, times)


def summarise(rows: list[dict], times: list[float]) -> dict:
    def part(rs):
        return {"n": len(rs), "p1": round(sum(r["p1"] for r in rs) / max(1, len(rs)), 3),
                "hit5": round(sum(r["hit5"] for r in rs) / max(1, len(rs)), 3)}
    out = part(rows)
    out["kinds"] = {k: part([r for r in rows if r["kind"] == k])
                    for k in ("object", "scene", "person") if any(r["kind"] == k for r in rows)}
    out["groups"] = {g: part([r for r in rows if r["group"] == g])
                     for g in sorted({r["group"] for r in rows})}
    out["misses"] = [(r["group"], photo_name(r["key"]), r["top"][:3]) for r in rows
                     if not r["p1"]]
    out["ms_p50"] = round(statistics.median(times), 1) if times else None
    return out


def _print(name: str, res: dict) -> None:
    kinds = "  ".join(f"{k} {v['p1']:.3f}/{v['hit5']:.3f} ({v['n']})"
                      for k, v in res["kinds"].items())
    print(f"{name:<34} P@1 {res['p1']:.3f}  hit@5 {res['hit5']:.3f}  n={res['n']}  "
          f"[{kinds}]  p50 {res['ms_p50']} ms")


# name -> module attributes set while it is measured
LEVERS: dict[str, dict] = {
    "plain cosine": {"indexer.search.vectors.RERANK_CANDIDATES": 0},
    "whitened re-rank (shipped)": {},
}


@contextlib.contextmanager
def lever(setting: dict):
    import importlib
    old = []
    try:
        for dotted, value in setting.items():
            mod, attr = dotted.rsplit(".", 1)
            m = importlib.import_module(mod)
            old.append((m, attr, getattr(m, attr)))
            setattr(m, attr, value)
        yield
    finally:
        for m, attr, value in reversed(old):
            setattr(m, attr, value)


# ---- levers measured outside the search path (numpy over the same photos) ----------------
def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


def _loo(lib_keys: list, lib_vecs: np.ndarray, q_keys: list, q_vecs: np.ndarray,
         score=None) -> dict:
    """P@1 / hit@5 per split, leave one out, ranking the library rows by `score(qi, own)`
    (default: dot product); rows that are not group photos count as misses."""
    group_of = {k: g for g, (_, ks) in GROUPS.items() for k in ks}
    sp = splits()
    out = {}
    for split in ("dev", "test"):
        p1 = h5 = n = 0
        for qi, key in enumerate(q_keys):
            g = group_of[key]
            if sp[g] != split:
                continue
            own = np.array([k == key for k in lib_keys])
            s = lib_vecs @ q_vecs[qi] if score is None else score(qi, own)
            got = [group_of.get(lib_keys[j]) for j in np.argsort(-s, kind="stable")
                   if not own[j]][:5]
            p1, h5, n = p1 + (got[0] == g), h5 + (g in got), n + 1
        out[split] = (round(p1 / n, 3), round(h5 / n, 3))
    return out


def offline_levers(lib: dict, db: Path, models_dir: Path) -> None:
    """Query expansion on the library's stored keyframe features, and other poolings of
    EfficientNet-Lite0's last feature map (7x7x1280 at 224 px; 10x10 at 320 px) computed
    in torch on the slides as the slideshow shows them (no H.264, no video frames), each
    with and without the library's whitening (models.whitening, shipped settings)."""
    import torch
    from indexer.search import code_index
    from indexer.store import Store
    from models.vision.image_features import _torch_model, preprocess, shared_classifier
    from models.whitening import fit_whitening
    group_keys = [k for _, ks in GROUPS.values() for k in ks]
    # query expansion: alpha-QE over the top k (the query's own slide left out)
    store = Store(db)
    data = code_index.read_vectors(store, "keyframe")
    times = dict(store.db.execute("SELECT id, time FROM keyframes").fetchall())
    by_media = {m: n for n, m in lib["media"].items()}
    lib_keys = [_slide_of(lib, by_media, int(m), float(times[int(i)]))
                for i, m in zip(data["ids"], data["media_id"])]
    store.close()
    clf = shared_classifier(models_dir).get()
    q = np.stack([clf.features_of_file(lib["photos"][k]) for k in group_keys])
    x = data["vectors"]
    w = fit_whitening(x)
    spaces = {"plain": (x, q), "whitened": (w.transform(x), w.transform(q))}

    def qe(xs, qs, k, alpha):
        def score(qi, own):
            s = np.where(own, -9.0, xs @ qs[qi])
            top = np.argsort(-s)[:k]
            wt = np.maximum(s[top], 0) ** alpha
            return xs @ _unit(qs[qi] + (wt[:, None] * xs[top]).sum(0))
        return score
    print("whitening settings (dims, power, shrink), P@1/hit@5 dev, test:")
    for dims in (64, 96, 128, len(x) - 1):
        for power in (0.125, 0.25, 0.375, 0.5):
            for shrink in (0.0, 0.1, 0.5, 1.0):
                wg = fit_whitening(x, dims=dims, power=power, shrink=shrink)
                print(f"  {dims:>3} {power:<5} {shrink:<4} "
                      f"{_loo(lib_keys, wg.transform(x), group_keys, wg.transform(q))}")
    print("query expansion (alpha-QE over the top k), P@1/hit@5 dev, test:")
    for name, (xs, qs) in spaces.items():
        print(f"  {name:<9} none        {_loo(lib_keys, xs, group_keys, qs)}")
        for k in (1, 3, 5):
            for alpha in (1, 3):
                print(f"  {name:<9} k={k} a={alpha}   "
                      f"{_loo(lib_keys, xs, group_keys, qs, qe(xs, qs, k, alpha))}")
    # pooling of the feature map
    torch.set_num_threads(1)
    net = _torch_model().net

    def fmap(img: np.ndarray, size: int) -> np.ndarray:
        if size == 224:
            x = preprocess(img)
        else:
            h, w_ = img.shape[:2]
            k = size * 256 / 224 / min(h, w_)
            im = cv2.resize(img, (max(size, round(w_ * k)), max(size, round(h * k))),
                            interpolation=cv2.INTER_AREA)
            y0, x0 = (im.shape[0] - size) // 2, (im.shape[1] - size) // 2
            im = im[y0:y0 + size, x0:x0 + size, ::-1]
            x = ((im.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)
        with torch.inference_mode():
            return net.extract_features(torch.from_numpy(np.ascontiguousarray(x))[None])[0].numpy()

    def pools(f: np.ndarray) -> dict:
        c, h, w_ = f.shape
        regions = [f] + [f[:, i * h // 2:(i + 1) * h // 2 + 1, j * w_ // 2:(j + 1) * w_ // 2 + 1]
                         for i in range(2) for j in range(2)]
        return {"mean": f.mean((1, 2)), "gem3": ((np.maximum(f, 1e-6) ** 3).mean((1, 2))) ** (1 / 3),
                "max": f.max((1, 2)), "regional": sum(_unit(r.mean((1, 2))) for r in regions)}
    keys = sorted(lib["photos"])
    cpu = {224: 0.0, 320: 0.0}
    lib_p, q_p = {}, {}
    for key in keys:
        img = cv2.imread(lib["photos"][key])
        for size in (224, 320):
            t = time.process_time()
            lib_p[(key, size)] = pools(fmap(_slide(img), size))
            cpu[size] += time.process_time() - t
            if key in group_keys:
                q_p[(key, size)] = pools(fmap(img, size))
    print(f"feature map CPU per image, torch one thread: 224 px "
          f"{1000 * cpu[224] / len(keys):.0f} ms, 320 px {1000 * cpu[320] / len(keys):.0f} ms")
    print("pooling (library: the slides only), P@1/hit@5 dev, test:")
    variants = {p: [(p, 224)] for p in ("mean", "gem3", "max", "regional")}
    variants.update({f"{p} 224+320": [(p, 224), (p, 320)] for p in ("mean", "gem3", "regional")})
    for name, parts in variants.items():
        xs = _unit(np.stack([sum(_unit(lib_p[(k, s)][p]) for p, s in parts) for k in keys]))
        qs = _unit(np.stack([sum(_unit(q_p[(k, s)][p]) for p, s in parts) for k in group_keys]))
        wv = fit_whitening(xs)
        print(f"  {name:<16} plain {_loo(keys, xs, group_keys, qs)}  whitened "
              f"{_loo(keys, wv.transform(xs), group_keys, wv.transform(qs))}")


# ---- latency on generated keyframes --------------------------------------------------------
def latency(n: int, queries: int = 30, rounds: int = 2) -> None:
    """By-image KNN (vectors.keyframe_knn, 50 rows as the search asks) with and without
    the whitened re-rank, on n generated keyframes (100 per file around 300 random
    non-negative centres, like pooled ReLU features; codes fitted when n reaches
    code_index.FIT_MIN_ROWS), in a temporary library."""
    import indexer.search.vectors as vectors
    from indexer.search import code_index
    from indexer.store import Store
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((300, 1280)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "lib.db")
        for m in range(n // 100):
            mid = store.add_media(f"/v/{m}.mp4", f"fp{m}", 1, 0)
            f = _unit(np.abs(centres[rng.integers(0, 300)]
                             + 0.7 * rng.standard_normal((100, 1280)).astype(np.float32)))
            store.save_visual(mid, [{"time": float(i), "shot": i, "thumbnail": None,
                                     "kind": "video"} for i in range(100)], [], [], list(f))
        print("library tasks:", code_index.maintain(store, ["keyframe"]))
        qs = [np.abs(centres[i] + 0.7 * rng.standard_normal(1280)).astype(np.float32)
              for i in range(queries)]
        for name, cand in (("plain cosine", 0), ("whitened re-rank", vectors.RERANK_CANDIDATES)):
            with lever({"indexer.search.vectors.RERANK_CANDIDATES": cand}):
                vectors.keyframe_knn(store, qs[0], 50)
                ts = []
                for _ in range(rounds):
                    for q in qs:
                        t = time.perf_counter()
                        vectors.keyframe_knn(store, q, 50)
                        ts.append((time.perf_counter() - t) * 1000)
            ts.sort()
            print(f"{n} keyframes, {name:<17} p50 {statistics.median(ts):.1f} ms  "
                  f"p95 {ts[int(0.95 * (len(ts) - 1))]:.1f} ms")
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "test", "all", "both"), default="both")
    ap.add_argument("--levers", action="store_true", help="each lever on and off")
    ap.add_argument("--offline-levers", action="store_true",
                    help="query expansion and poolings, in numpy over the same photos")
    ap.add_argument("--no-faces", action="store_true", help="whole-image similarity only")
    ap.add_argument("--latency", type=int, metavar="N",
                    help="time the by-image KNN on N generated keyframes and stop")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--verbose", action="store_true", help="per group and the misses")
    args = ap.parse_args()
    if args.latency:
        latency(args.latency)
        return
    from app.search_requests import search_models
    from app.settings import Settings
    from indexer.store import Store
    models_dir = Settings().resolved_models_dir()
    db = CACHE / "library.db"
    if args.rebuild and db.with_suffix(".json").exists():
        db.with_suffix(".json").unlink()
    lib = build(db, models_dir)
    print(f"library: {len(lib['truth'])} photos in slideshows + {len(VIDEOS)} videos, "
          f"{lib['keyframes']} keyframes; groups {len(GROUPS)} "
          f"({sum(len(k) for _, k in GROUPS.values())} photos), "
          f"distractors {len(DISTRACTORS)}")
    if args.offline_levers:
        offline_levers(lib, db, models_dir)
        return
    models = search_models(models_dir)
    if args.no_faces:
        models = dataclasses.replace(models, face_model=lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "library.db"
        shutil.copyfile(db, work)              # searches never write, but stay safe
        store = Store(work)
        from indexer.search import code_index
        print("library tasks:", code_index.maintain(store))   # as the app after a batch
        out = {}
        split_names = ("dev", "test") if args.split == "both" else (args.split,)
        levers = LEVERS if args.levers else {"shipped": {}}
        for split in split_names:
            qs = queries(lib, split)
            for name, setting in levers.items():
                with lever(setting):
                    res = evaluate(store, lib, qs, models)
                out[f"{split} {name}"] = res
                _print(f"{split} {name}", res)
            if args.verbose:
                for g, v in res["groups"].items():
                    print(f"    {g:<20} {v['p1']:.3f} {v['hit5']:.3f} ({v['n']})")
                for m in res["misses"]:
                    print("    miss", m)
        store.close()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
