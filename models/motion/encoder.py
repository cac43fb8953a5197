"""Encoders as bytes, the shipped default, and an encoder's response to one window.

    enc = load(blob)                    # an encoder saved with to_bytes()
    enc = default_encoder()             # shipped: default_encoder.npz (see build_default)
    vec = window_responses(enc, gray_frames)     # ENC_DIM floats

The pooled response of a window: for each layer's map, the temporal standard deviation of
every unit at every position divided by its temporal mean (how much the response changes,
whatever the texture's contrast: motion energy rather than texture), then its mean and its
maximum over positions (a small moving thing in a still scene): 4 x 32 = ENC_DIM values,
whatever the encoder's kind. This pooling told moving kinds apart better than the plain
temporal spread, mean frame-to-frame change or the spatial mean/max of the responses.
Measured: benchmarks/README.md "Descriptor quality on a labelled generated set".
"""
from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..threads import torch_threads  # noqa: F401  (re-exported: stages use it)
from .frames import contrast_normalise

from .layout import ENC_DIM
DEFAULT_FILE = Path(__file__).with_name("default_encoder.npz")


def to_bytes(encoder) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in encoder.arrays().items()})
    return buf.getvalue()


def load(blob: bytes):
    a = np.load(io.BytesIO(blob), allow_pickle=False)
    kind = str(a["kind"])
    if kind == "isa":
        from .isa import StackedISA
        return StackedISA.from_arrays(a)
    if kind == "conv3d":
        from .conv3d import Conv3dEncoder
        return Conv3dEncoder.from_arrays(a)
    raise ValueError(f"unknown encoder kind {kind!r}")


def fingerprint(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:16]


@lru_cache(maxsize=1)
def default_blob() -> bytes:
    return DEFAULT_FILE.read_bytes()


def default_encoder():
    return load(default_blob())


def clip_tensor(gray_frames: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """Small gray frames (models.motion.frames.small_gray) -> (1, 1, T, H, W) normalised."""
    arr = np.stack([contrast_normalise(f) for f in gray_frames]).astype(np.float32)
    return torch.from_numpy(arr)[None, None]


@torch.no_grad()
def window_responses(encoder, gray_frames) -> np.ndarray:
    """ENC_DIM pooled responses of the encoder to one window's frames (zeros if too short).
    Call it inside `torch_threads(1)` (once per file) for speed."""
    frames = list(gray_frames)
    from .isa import L2_DILATION, L2_KERNEL, T1
    need = T1 + (L2_KERNEL - 1) * L2_DILATION + 1     # two layer-2 positions at least
    if not frames:
        return np.zeros(ENC_DIM, np.float32)
    while len(frames) < need:       # the last short window of a file: play it back and forth
        frames += frames[-2::-1] if len(frames) > 1 else frames
    h1, h2 = encoder.maps(clip_tensor(frames))
    # how much each unit's response changes over the window at each place, relative to its
    # level there (motion energy, independent of the texture's contrast), averaged over and
    # at its largest across positions
    rel = [h.std(2, correction=0) / (h.mean(2) + 1e-3) for h in (h1, h2)]
    parts = [r.mean((2, 3)) for r in rel] + [r.amax((2, 3)) for r in rel]
    return torch.cat(parts, 1)[0].numpy().astype(np.float32)
