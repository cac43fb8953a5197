"""Which ImageNet labels become tags: a calibrated global threshold plus per-label ones.

A softmax probability is not a tag by itself: on frames with nothing ImageNet knows (test
patterns, slides, blank or noisy frames, street scenes of people) the classifier still
puts its mass somewhere, and some labels ("digital clock", "web site", "envelope",
"crossword puzzle", "window screen") are what it says for almost any synthetic or text-heavy
picture. The thresholds in tag_thresholds.json are produced by models/vision/calibrate.py:

* global threshold = highest top-1 probability on natural frames that show no ImageNet
  object (video of people walking, foliage, faces), plus a margin; checked against a set of
  real photos of ImageNet objects, all of which must still pass;
* per-label threshold, for labels that score above the global threshold on synthetic
  "nothing there" frames: that label's highest score on them, plus the margin.

So a label becomes a tag when its probability reaches max(global, per-label threshold).

A picture also needs enough to classify: test patterns and colour bars are a few flat
areas, and EfficientNet calls them "binder" at up to 0.37 (over the global threshold).
image_evidence() is the share of pixels with a clear edge (at 256 px on the short side);
below MIN_EVIDENCE no label is a tag. Measured: colour bars 0.04-0.066 (pal75bars, the
"binder" one, 0.044), ffmpeg's rgbtestsrc/yuvtestsrc/colorspectrum 0.01-0.02; the real
photos of opencv-doc, scikit-image, the face photos and the MATE/UKUI wallpapers 0.067
(a logo) and up, natural photos 0.19 and up.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..loading import LazyModel, lazy

THRESHOLDS_FILE = Path(__file__).with_name("tag_thresholds.json")
FALLBACK_GLOBAL = 0.35
MIN_EVIDENCE = 0.06          # share of edge pixels a picture needs for any tag
EDGE_LEVEL = 20.0            # Sobel magnitude (grey levels) that counts as an edge


@dataclass
class TagThresholds:
    default: float = FALLBACK_GLOBAL
    per_label: dict[int, float] = field(default_factory=dict)   # class index -> threshold
    source: str = "built-in default"

    def vector(self, num_classes: int = 1000) -> np.ndarray:
        t = np.full(num_classes, self.default, np.float32)
        for idx, value in self.per_label.items():
            t[int(idx)] = max(self.default, float(value))
        return t

    @classmethod
    def load(cls, path: str | Path = THRESHOLDS_FILE) -> "TagThresholds":
        path = Path(path)
        if not path.is_file():
            return cls()
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(float(raw["global"]),
                   {int(k): float(v["threshold"]) for k, v in raw.get("per_label", {}).items()},
                   str(path.name))


def image_evidence(image: np.ndarray) -> float:
    """The share of pixels on a clear edge, with the short side scaled to 256 px."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    s = 256 / min(h, w)
    if s != 1:
        gray = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))),
                          interpolation=cv2.INTER_AREA)
    gray = gray.astype(np.float32)
    mag = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    return float((mag > EDGE_LEVEL).mean())


def select(probs: np.ndarray, labels: list[str], thresholds: np.ndarray,
           max_tags: int = 3, evidence: float | None = None) -> list[tuple[str, float]]:
    """The labels whose probability reaches their threshold, best first (at most max_tags);
    none when the picture's `evidence` (image_evidence) is under MIN_EVIDENCE."""
    if evidence is not None and evidence < MIN_EVIDENCE:
        return []
    hits = np.nonzero(probs >= thresholds)[0]
    hits = hits[np.argsort(probs[hits])[::-1]][:max_tags]
    return [(labels[i], float(probs[i])) for i in hits]


def shared_thresholds(path: str | Path = THRESHOLDS_FILE) -> LazyModel[TagThresholds]:
    """The calibrated thresholds, read once per process (models.loading)."""
    return lazy(f"tag-thresholds:{Path(path).name}@{Path(path).parent}",
                lambda: TagThresholds.load(path))
