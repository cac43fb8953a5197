"""Training the library's motion encoder from its own videos (no labels).

    report = train_library_encoder(store, budget=Budget(seconds=60), progress=cb)

Sampling: CLIPS_MAX pieces of CLIP_FRAMES frames at the motion frame rate (4 fps, as the
visual stage samples), spread over the library's videos by seeking (so the cost does not
grow with the length of the files), each turned into small gray frames exactly as indexing
does (256 px wide, then models.motion.frames.small_gray). Then models.motion.train learns
the stacked ISA within the budget, the encoder is stored as the new current version, and
every video described by an older version is queued for the `motion` stage.

Budget: sampling stops after `sample_seconds` (default 30 s), learning after
`Budget.seconds` (default 60 s); memory held is the clips (240 x 9 x 72 x 128 float32 =
80 MB, twice while normalising) plus the layer-1 blocks and layer-2 inputs that
models.motion.train.Budget bounds. Measured: benchmarks/README.md "Training budget".
"""
from __future__ import annotations

import time
from typing import Callable

import cv2
import numpy as np

CLIP_FRAMES = 9
CLIPS_MAX = 240
MIN_CLIPS = 8


def sample_clip(cap, start: float, fps: float, n: int = CLIP_FRAMES) -> np.ndarray | None:
    """n small gray frames 1/fps apart from `start` (s) of an open cv2.VideoCapture."""
    from models.motion.frames import small_gray

    from indexer.stages.keyframes import detect_width_frame
    cap.set(cv2.CAP_PROP_POS_MSEC, start * 1000.0)
    frames, next_t = [], None
    for _ in range(int(n / fps * 120) + 10):            # enough grabs for any source rate
        if not cap.grab():
            break
        t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if next_t is None:
            next_t = t
        if t + 1e-3 < next_t:
            continue
        ok, img = cap.retrieve()
        if not ok:
            break
        frames.append(small_gray(detect_width_frame(img)))
        next_t += 1.0 / fps
        if len(frames) == n:
            return np.stack(frames)
    return None


def sample_library_clips(videos: list[dict], *, max_clips: int = CLIPS_MAX,
                         max_seconds: float = 30.0, seed: int = 0,
                         progress: Callable[[float], None] = lambda f: None,
                         check: Callable[[], None] = lambda: None) -> list[np.ndarray]:
    """Clips spread evenly over the videos' total duration (videos: path, duration)."""
    from models.motion.frames import MOTION_FPS
    rng = np.random.default_rng(seed)
    span = CLIP_FRAMES / MOTION_FPS
    usable = [v for v in videos if (v.get("duration") or 0) >= span]
    total = sum(v["duration"] for v in usable)
    if not total:
        return []
    deadline = time.monotonic() + max_seconds
    clips: list[np.ndarray] = []
    for v in usable:
        n = max(1, int(round(max_clips * v["duration"] / total)))
        starts = np.sort(rng.uniform(0, max(0.0, v["duration"] - span), size=n))
        cap = cv2.VideoCapture(v["path"], cv2.CAP_FFMPEG)
        try:
            if not cap.isOpened():
                continue
            for s in starts:
                check()
                clip = sample_clip(cap, float(s), MOTION_FPS)
                if clip is not None:
                    clips.append(clip)
                progress(min(1.0, len(clips) / max_clips))
                if time.monotonic() > deadline or len(clips) >= max_clips:
                    return clips
        finally:
            cap.release()
    return clips


def train_library_encoder(store, *, budget=None, kind: str = "isa", max_clips: int = CLIPS_MAX,
                          sample_seconds: float = 30.0, seed: int = 0,
                          progress: Callable[[float, str], None] = lambda f, m: None,
                          check: Callable[[], None] = lambda: None) -> dict:
    """Learn an encoder from the library's videos and make it current. Returns a report
    with the new version and how many videos were queued for recomputation."""
    from models.motion import encoder as enc_mod
    from models.motion.train import train_encoder
    t0 = time.monotonic()
    videos = store.video_media()
    progress(0.0, f"sampling clips from {len(videos)} video(s)")
    clips = sample_library_clips(videos, max_clips=max_clips, max_seconds=sample_seconds,
                                 seed=seed, check=check,
                                 progress=lambda f: progress(0.3 * f, "sampling clips"))
    if len(clips) < MIN_CLIPS:
        raise ValueError(f"not enough video to learn from: {len(clips)} clip(s) of "
                         f"{CLIP_FRAMES / 4:.2f} s sampled, {MIN_CLIPS} needed")
    sampled_s = time.monotonic() - t0
    enc, report = train_encoder(clips, kind=kind, budget=budget, seed=seed, check=check,
                                progress=lambda f, m: progress(0.3 + 0.7 * f, m))
    report.update(sample_seconds=round(sampled_s, 2), videos=len(videos),
                  clip_frames=CLIP_FRAMES, clip_mb=round(sum(c.nbytes for c in clips) / 2**20, 1))
    blob = enc_mod.to_bytes(enc)
    version, queued = store.add_encoder(kind, blob, enc_mod.fingerprint(blob), report)
    report.update(version=version, queued=queued, total_seconds=round(time.monotonic() - t0, 2))
    progress(1.0, f"encoder v{version}; {queued} video(s) queued for new descriptors")
    return report


__all__ = ["sample_clip", "sample_library_clips", "train_library_encoder"]
