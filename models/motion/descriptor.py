"""Clip descriptors: one vector per time window (WINDOW_S seconds).

    b = WindowBuilder(encoder)
    for t, frame in frames:                 # sampled frames in time order, any size, BGR/gray
        b.add(t, frame)
    windows = b.finish(duration)            # [Window(start, end, encoded, flow)]
    X = assemble(windows, keyframes)        # (N, DESCRIPTOR_DIM); keyframes: [(time, 1280-d)]

Layout (fixed; stored in vec0): encoder responses (ENC_DIM) | flow statistics (FLOW_DIM)
| appearance (APP_DIM). A window's frames are its own plus the last frame before it, so at
4 fps a 2 s window has 9 frames and 8 flow pairs, and nothing but one window is buffered.
Appearance is the EfficientNet feature of the window's keyframe (the last one at or before
its middle), L2-normalised and reduced by a fixed random projection (Johnson-Lindenstrauss:
distances kept within a few percent; no fitting, identical in every library).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .encoder import window_responses
from .flow import pair_stats, window_flow
from .frames import small_gray
from .layout import APP_DIM, BLOCKS, DESCRIPTOR_DIM, WINDOW_S, standardiser  # noqa: F401

APP_SOURCE_DIM = 1280


@dataclass
class Window:
    start: float
    end: float
    encoded: np.ndarray = field(repr=False)
    flow: np.ndarray = field(repr=False)


@lru_cache(maxsize=1)
def _projection() -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(20111))
    return (rng.standard_normal((APP_SOURCE_DIM, APP_DIM)) / np.sqrt(APP_DIM)).astype(np.float32)


def appearance(feature) -> np.ndarray:
    if feature is None:
        return np.zeros(APP_DIM, np.float32)
    f = np.asarray(feature, np.float32).ravel()[:APP_SOURCE_DIM]
    f = f / max(float(np.linalg.norm(f)), 1e-6)
    return f @ _projection()


class WindowBuilder:
    """Streams sampled frames into per-window encoder responses and flow statistics."""

    def __init__(self, encoder, window: float = WINDOW_S):
        self.encoder, self.window = encoder, window
        self.windows: list[Window] = []
        self._index: int | None = None
        self._frames: list[np.ndarray] = []
        self._pairs: list[dict] = []
        self._last: np.ndarray | None = None

    def add(self, t: float, frame: np.ndarray) -> None:
        g = small_gray(frame)
        k = int(t // self.window + 1e-9)
        if self._index is None:
            self._index = k
        elif k != self._index:
            self._close()
            self._index = k
            self._frames = [self._last] if self._last is not None and self._last.shape == g.shape else []
        if self._frames and self._frames[-1].shape == g.shape:
            self._pairs.append(pair_stats(self._frames[-1], g))
        self._frames.append(g)
        self._last = g

    def _close(self, end: float | None = None) -> None:
        if self._index is None or len(self._frames) < 2:
            self._frames, self._pairs = [], []
            return
        start = self._index * self.window
        stop = start + self.window if end is None else min(start + self.window, end)
        if stop > start:
            self.windows.append(Window(start, stop, window_responses(self.encoder, self._frames),
                                       window_flow(self._pairs)))
        self._frames, self._pairs = [], []

    def finish(self, duration: float | None = None) -> list[Window]:
        last_end = None
        if duration:
            last_end = float(duration)
        self._close(last_end)
        self._index = None
        return self.windows


def keyframe_for(t: float, keyframes: list[tuple[float, np.ndarray]]):
    """The feature of the last keyframe at or before t (the first one if none is)."""
    best = None
    for kt, feat in keyframes:
        if kt <= t + 1e-6 or best is None:
            best = feat
        if kt > t:
            break
    return best


def assemble(windows: list[Window], keyframes: list[tuple[float, np.ndarray]] = ()) -> np.ndarray:
    """(N, DESCRIPTOR_DIM) descriptors; keyframes sorted by time."""
    kfs = sorted(keyframes, key=lambda k: k[0])
    out = np.zeros((len(windows), DESCRIPTOR_DIM), np.float32)
    for i, w in enumerate(windows):
        out[i, BLOCKS["encoder"]] = w.encoded
        out[i, BLOCKS["flow"]] = w.flow
        out[i, BLOCKS["appearance"]] = appearance(keyframe_for((w.start + w.end) / 2, kfs))
    return out
