"""Rendered motion: a textured object translating, rotating, oscillating, scaling or
standing still on a textured background, at a random speed.

    frames = render("rotating", seed=3, seconds=4, fps=15, size=(320, 180))   # BGR uint8

Used to build the shipped default encoder (models.motion.encoder), by the tests and by
benchmarks/motion_quality.py (which writes the clips to H.264 files and indexes them).
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

MOTIONS = ("translating", "rotating", "oscillating", "scaling", "static")


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random coloured texture: blurred noise, a grating, a checkerboard or blobs."""
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:
        g = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), float(rng.uniform(1, 4)))
        g = (g - g.min()) / max(float(np.ptp(g)), 1e-6)
    elif kind == 1:
        th, period = rng.uniform(0, math.pi), rng.uniform(6, 20)
        g = 0.5 + 0.5 * np.sin((xx * math.cos(th) + yy * math.sin(th)) * 2 * math.pi / period)
    elif kind == 2:
        c = int(rng.integers(5, 16))
        g = (((xx // c) + (yy // c)) % 2).astype(np.float32)
    else:
        g = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(8, 30))):
            cv2.circle(g, (int(rng.integers(w)), int(rng.integers(h))), int(rng.integers(2, 12)),
                       float(rng.random()), -1)
    c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    img = c1[None, None, :] * (1 - g[..., None]) + c2[None, None, :] * g[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def render(motion: str, seed: int = 0, seconds: float = 4.0, fps: float = 15.0,
           size: tuple[int, int] = (320, 180), speed: float | None = None) -> list[np.ndarray]:
    """Frames of one clip; `speed` in [0, 1] picks slow..fast (random when None)."""
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; one of {MOTIONS}")
    rng = np.random.default_rng(seed)
    w, h = size
    bg = texture(rng, h, w)
    s = float(rng.uniform(0.28, 0.42)) * h           # object size
    sw, sh = int(s * rng.uniform(1.0, 1.6)), int(s)
    sprite = texture(rng, sh, sw)
    cv2.rectangle(sprite, (0, 0), (sw - 1, sh - 1), tuple(int(c) for c in rng.integers(0, 256, 3)), 2)
    mask = np.full((sh, sw), 255, np.uint8)
    if rng.random() < 0.5:                            # an ellipse instead of a rectangle
        mask[:] = 0
        cv2.ellipse(mask, (sw // 2, sh // 2), (sw // 2 - 1, sh // 2 - 1), 0, 0, 360, 255, -1)
    k = float(rng.uniform(0, 1)) if speed is None else float(speed)
    n = max(2, int(round(seconds * fps)))
    cx, cy = w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h
    ang0 = rng.uniform(0, 360)
    direction = rng.uniform(0, 2 * math.pi)
    dx, dy = math.cos(direction), math.sin(direction)
    sign = 1 if rng.random() < 0.5 else -1
    frames = []
    for i in range(n):
        t = i / fps
        x, y, ang, scale = cx, cy, ang0, 1.0
        if motion == "translating":
            v = (0.08 + 0.22 * k) * w                           # px/s
            travel = v * seconds
            x = cx + dx * (v * t - travel / 2)
            y = cy + dy * (v * t - travel / 2)
        elif motion == "rotating":
            ang = ang0 + sign * (40 + 140 * k) * t              # deg/s
        elif motion == "oscillating":
            amp, freq = (0.08 + 0.12 * k) * w, 0.4 + 0.5 * k
            off = amp * math.sin(2 * math.pi * freq * t + ang0)
            x, y = cx + dx * off, cy + dy * off
        elif motion == "scaling":
            rate = 0.15 + 0.35 * k                              # relative size change per s
            scale = math.exp(sign * rate * (t - seconds / 2))
        m = cv2.getRotationMatrix2D((sw / 2, sh / 2), ang, scale)
        m[0, 2] += x - sw / 2
        m[1, 2] += y - sh / 2
        obj = cv2.warpAffine(sprite, m, (w, h), flags=cv2.INTER_LINEAR)
        a = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR)[..., None] / 255.0
        frames.append((bg * (1 - a) + obj * a).astype(np.uint8))
    return frames


def write_video(path, frames: list[np.ndarray], fps: float = 15.0) -> None:
    """H.264 via the ffmpeg program (yuv420p), so the clip decodes like a real file."""
    import subprocess
    h, w = frames[0].shape[:2]
    cmd = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
           "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", str(path)]
    r = subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), capture_output=True)
    if r.returncode:
        raise RuntimeError(r.stderr.decode(errors="replace")[-2000:])


def write_clip_set(folder, motions=("rotating", "translating", "static"), per_motion: int = 3,
                   size=(192, 108), seconds: float = 4, fps: float = 15.0, sep: str = ""
                   ) -> dict[str, "Path"]:
    """`per_motion` H.264 clips of each motion in `folder`, named f"{motion}{sep}{i}.mp4"
    (i from 0, or from 1 when sep is given), each with its own seed: {stem: path}. The set
    the action-tag tests, the tag dialog's test and the screenshots index."""
    from pathlib import Path
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for motion in motions:
        for s in range(per_motion):
            p = folder / f"{motion}{sep}{s + (1 if sep else 0)}.mp4"
            write_video(p, render(motion, 500 + 10 * s + len(motion), seconds=seconds, fps=fps,
                                  size=size), fps=fps)
            out[p.stem] = p
    return out
