"""Optical-flow statistics of a time window, from Farneback flow on tiny gray frames.

    pairs = [pair_stats(prev, cur) for prev, cur in consecutive frames of the window]
    vec = window_flow(pairs)            # FLOW_DIM floats, fixed layout (FLOW_NAMES)

Per pair of consecutive sampled frames (MOTION_WIDTH px wide, 1/MOTION_FPS s apart): which
pixels move, how fast (a log-magnitude histogram), where to (a magnitude-weighted direction
histogram), and an affine fit of the moving pixels' flow whose divergence says scaling and
whose curl says rotation (both independent of the object's size). Per window: their means
plus what only time shows: whether the mean motion keeps its direction (translation) or
reverses (oscillation), and how much the speed varies.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

MOVING_PX = 0.25                    # px per frame pair at MOTION_WIDTH: slower is "still"
CHANGED = 0.015                     # mean |grey change| (0..1) around a pixel that can move
N_DIR = 8
MAG_EDGES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)   # px per pair; 7 bins
FLOW_NAMES = (["moving_fraction", "log_speed"] + [f"dir_{i}" for i in range(N_DIR)]
              + [f"mag_{i}" for i in range(len(MAG_EDGES) + 1)]
              + ["coherence", "reversals", "translation_ratio", "div", "abs_div", "curl",
                 "abs_curl", "rotation_ratio", "residual", "speed_variation", "frame_diff"])
from .layout import FLOW_DIM  # FLOW_NAMES padded with zeros (room to grow)
_FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=9, iterations=2, poly_n=5,
                  poly_sigma=1.1, flags=0)


def _u8(gray: np.ndarray) -> np.ndarray:
    return gray if gray.dtype == np.uint8 else np.clip(gray * 255.0, 0, 255).astype(np.uint8)


def dense_flow(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """(H, W, 2) Farneback flow from prev to cur (float [0,1] or uint8 gray frames)."""
    return cv2.calcOpticalFlowFarneback(_u8(prev), _u8(cur), None, **_FARNEBACK)


def pair_stats(prev: np.ndarray, cur: np.ndarray) -> dict:
    """Statistics of the flow between two consecutive small gray frames."""
    a8, b8 = _u8(prev), _u8(cur)
    change = cv2.blur(cv2.absdiff(a8, b8), (5, 5)).astype(np.float32) * (1.0 / 255.0)
    changed = change > CHANGED
    h, w = a8.shape[:2]
    if changed.any():
        flow = dense_flow(a8, b8)
        # Farneback invents flow in flat or unchanged areas (even between identical
        # frames); only pixels whose neighbourhood changed can have moved
        flow[~changed] = 0.0
    else:
        flow = np.zeros((h, w, 2), np.float32)
    u, v = flow[..., 0], flow[..., 1]
    mag = np.sqrt(u * u + v * v)
    moving = mag > MOVING_PX
    n = int(moving.sum())
    mag_hist = np.bincount(np.searchsorted(MAG_EDGES, mag.ravel()),
                           minlength=len(MAG_EDGES) + 1).astype(np.float32) / mag.size
    out = {"moving": n / mag.size, "mag_hist": mag_hist,
           "diff": float(change.mean()),
           "speed": 0.0, "mean": np.zeros(2, np.float32), "dir_hist": np.zeros(N_DIR, np.float32),
           "div": 0.0, "curl": 0.0, "residual": 0.0}
    if n < 6:
        return out
    um, vm, mm = u[moving], v[moving], mag[moving]
    out["speed"] = float(mm.mean())
    out["mean"] = np.array([um.mean(), vm.mean()], np.float32)
    ang = np.arctan2(vm, um)
    bins = ((ang + math.pi) / (2 * math.pi) * N_DIR).astype(int) % N_DIR
    hist = np.bincount(bins, weights=mm, minlength=N_DIR).astype(np.float32)
    out["dir_hist"] = hist / max(float(hist.sum()), 1e-6)
    # affine flow of the moving pixels around their centroid, in units of the frame width
    ys, xs = np.nonzero(moving)
    x = (xs - xs.mean()) / w
    y = (ys - ys.mean()) / w
    a = np.stack([np.ones_like(x), x, y], 1)
    coef, *_ = np.linalg.lstsq(a, np.stack([um, vm], 1) / w, rcond=None)
    (_, ux, uy), (_, vx, vy) = coef[:, 0], coef[:, 1]
    out["div"], out["curl"] = float(ux + vy), float(vx - uy)
    fitted = a @ coef * w
    err = float(((fitted[:, 0] - um) ** 2 + (fitted[:, 1] - vm) ** 2).sum())
    out["residual"] = err / max(float((mm ** 2).sum()), 1e-6)
    return out


def window_flow(pairs: list[dict]) -> np.ndarray:
    """The FLOW_DIM-float flow part of a window's descriptor (zeros for no pairs)."""
    vec = np.zeros(FLOW_DIM, np.float32)
    if not pairs:
        return vec
    moving = np.array([p["moving"] for p in pairs])
    speed = np.array([p["speed"] for p in pairs])
    means = np.stack([p["mean"] for p in pairs])
    weights = moving / max(moving.sum(), 1e-6)
    dir_hist = (np.stack([p["dir_hist"] for p in pairs]) * weights[:, None]).sum(0)
    mag_hist = np.stack([p["mag_hist"] for p in pairs]).mean(0)
    norms = np.linalg.norm(means, axis=1)
    coherence = float(np.linalg.norm(means.sum(0)) / max(norms.sum(), 1e-6))
    if len(pairs) > 1:
        dots = (means[1:] * means[:-1]).sum(1)
        scale = norms[1:] * norms[:-1]
        reversals = float((dots < -0.25 * scale).sum() / max((scale > 0).sum(), 1))
    else:
        reversals = 0.0
    translation = float((norms / np.maximum(speed, 1e-6) * weights).sum())
    div = np.array([p["div"] for p in pairs])
    curl = np.array([p["curl"] for p in pairs])
    rot = float(np.abs(curl).mean() / max(np.abs(curl).mean() + np.abs(div).mean(), 1e-6))
    live = speed > 0
    speed_var = float(np.std(np.log(speed[live] + 0.05))) if live.sum() > 1 else 0.0
    mean_speed = float((speed * weights).sum())
    # direction histogram turned so its strongest bin comes first: the shape of the spread
    # of directions, not which way (left/right walking, any orientation of a shape)
    dir_hist = np.roll(dir_hist, -int(np.argmax(dir_hist)))
    values = ([float(moving.mean()), math.log1p(mean_speed)] + list(dir_hist) + list(mag_hist)
              + [coherence, reversals, translation, 10 * float((div * weights).sum()),
                 10 * float((np.abs(div) * weights).sum()), 10 * float((curl * weights).sum()),
                 10 * float((np.abs(curl) * weights).sum()), rot,
                 float((np.array([p["residual"] for p in pairs]) * weights).sum()), speed_var,
                 10 * float(np.mean([p["diff"] for p in pairs]))])
    vec[:len(values)] = values
    return vec
