"""Learning a motion encoder from unlabelled video, within a stated budget.

    enc, report = train_encoder(clips, budget=Budget(seconds=60))

`clips` are short stacks of small gray frames (models.motion.frames.small_gray at
MOTION_FPS), e.g. 9-frame pieces sampled across the library's videos. The budget bounds
both time and memory: at most `blocks` layer-1 blocks (400 floats each) and
`layer2_samples` layer-2 inputs (256 floats each) are held, plus the clips themselves
(a 9 x 72 x 128 clip is 330 KB; the app samples at most 240 of them, ~80 MB); the time
budget is split between the two ISA layers and each stops at its deadline.
"""
from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import isa
from .encoder import clip_tensor, torch_threads

Progress = Callable[[float, str], None]


@dataclass
class Budget:
    seconds: float = 60.0          # wall-clock cap for the learning itself
    blocks: int = 20000            # layer-1 blocks sampled (32 MB)
    layer2_samples: int = 12000    # layer-2 inputs sampled (12 MB)
    iters1: int = 300
    iters2: int = 300


def _rss_now_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return 0.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train_encoder(clips: list[np.ndarray], **kw):
    """See _train_encoder; runs torch in one thread (see encoder.torch_threads)."""
    with torch_threads(1):
        return _train_encoder(clips, **kw)


def _train_encoder(clips: list[np.ndarray], *, kind: str = "isa", budget: Budget | None = None,
                  seed: int = 0, progress: Progress = lambda f, msg: None,
                  check: Callable[[], None] = lambda: None):
    """An encoder learnt from the clips, and a report (objective histories, time, memory).
    The clips are normalised in place: the list is consumed (no second copy is held)."""
    budget = budget or Budget()
    base_rss = _rss_now_mb()
    start = time.monotonic()
    deadline = start + budget.seconds
    rng = np.random.default_rng(seed)
    progress(0.0, "normalising frames")
    # normalised in place, one clip at a time: the clips are consumed (no second copy)
    normed = clips
    for i, c in enumerate(normed):
        if len(c):
            normed[i] = clip_tensor(c)[0, 0].numpy()
    normed = [c for c in normed if len(c)]
    check()
    if kind == "conv3d":
        from .conv3d import train_conv3d
        model, history = train_conv3d(normed, seed=seed, deadline=deadline, check=check,
                                      progress=lambda f: progress(f, "training the 3-D conv net"))
        return model, {"kind": kind, "loss": history, "seconds": time.monotonic() - start,
                       "clips": len(normed), "peak_rss_mb": _rss_mb(), "budget": asdict(budget)}
    if kind != "isa":
        raise ValueError(f"unknown encoder kind {kind!r}")

    progress(0.02, "sampling layer-1 blocks")
    x1 = isa.layer1_blocks(normed, budget.blocks, rng)
    mean1, pca1, kept1 = isa.fit_pca(x1, isa.L1_PCA)
    z1 = (x1 - mean1) @ pca1.T
    del x1
    half = start + (deadline - start) * 0.55
    w1, hist1 = isa.train_isa(z1, isa.L1_UNITS, iters=budget.iters1, seed=seed, deadline=half,
                              progress=lambda f: progress(0.05 + 0.45 * f, "layer 1"), check=check)
    del z1
    layer1 = isa.ISALayer(mean1, pca1, w1)

    progress(0.5, "layer-1 responses")
    f1, b1 = layer1.filters(remove_dc=True)
    w1t, b1t = torch.from_numpy(f1.reshape(-1, 1, isa.T1, isa.S1, isa.S1)), torch.from_numpy(b1)
    parts = []
    per_clip = np.bincount(rng.integers(len(normed), size=budget.layer2_samples),
                           minlength=len(normed))
    with torch.no_grad():
        for c, n in zip(normed, per_clip):   # sampled map by map: no map is kept
            if c.shape[0] < isa.T1 or not n:
                continue
            r = F.conv3d(torch.from_numpy(c)[None, None], w1t, b1t,
                         stride=(1, isa.STRIDE1, isa.STRIDE1))
            parts.append(isa.layer2_inputs(isa.StackedISA._pool(r, layer1.group), int(n), rng))
    check()
    x2 = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
    if len(x2) < 100:
        raise ValueError("the clips are too short or too small for layer 2")
    del parts
    mean2, pca2, kept2 = isa.fit_pca(x2, isa.L2_PCA)
    z2 = (x2 - mean2) @ pca2.T
    del x2
    w2, hist2 = isa.train_isa(z2, isa.L2_UNITS, iters=budget.iters2, seed=seed + 1,
                              deadline=deadline,
                              progress=lambda f: progress(0.55 + 0.45 * f, "layer 2"), check=check)
    encoder = isa.StackedISA(layer1, isa.ISALayer(mean2, pca2, w2))
    progress(1.0, "done")
    return encoder, {"kind": kind, "objective1": hist1, "objective2": hist2,
                     "pca_variance_kept": [kept1, kept2], "blocks": budget.blocks,
                     "layer2_samples": budget.layer2_samples, "clips": len(normed),
                     "seconds": time.monotonic() - start, "peak_rss_mb": _rss_mb(),
                     "rss_at_start_mb": base_rss, "budget": asdict(budget)}
