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
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..loading import LazyModel, lazy

THRESHOLDS_FILE = Path(__file__).with_name("tag_thresholds.json")
FALLBACK_GLOBAL = 0.35


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


def select(probs: np.ndarray, labels: list[str], thresholds: np.ndarray,
           max_tags: int = 3) -> list[tuple[str, float]]:
    """The labels whose probability reaches their threshold, best first (at most max_tags)."""
    hits = np.nonzero(probs >= thresholds)[0]
    hits = hits[np.argsort(probs[hits])[::-1]][:max_tags]
    return [(labels[i], float(probs[i])) for i in hits]


def shared_thresholds(path: str | Path = THRESHOLDS_FILE) -> LazyModel[TagThresholds]:
    """The calibrated thresholds, read once per process (models.loading)."""
    return lazy(f"tag-thresholds:{Path(path).name}@{Path(path).parent}",
                lambda: TagThresholds.load(path))
