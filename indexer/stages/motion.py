"""Motion descriptors of a video, per WINDOW_S window, and the tags they carry.

Two ways in, one result:
* inside the visual stage (indexer.stages.visual): `MotionAnalyser.tap` receives every frame the
  keyframe pass samples (4 per second, already 256 px wide), so the file is decoded once;
* the `motion` stage (MotionStage below): queued when a new encoder replaces the one that
  described a video; it decodes the file on its own (sampled frames only) and reads the
  keyframe features the visual stage stored.

Either way the descriptors (models.motion.descriptor) are saved with the version of the
encoder that made them, and the library's trained tags of that version are applied.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from models.loading import lazy, unload_all
from models.motion.layout import WINDOW_S

from indexer.stages.base import SearchList
from indexer.store.motion import MOTION_STAGE


def current_encoder_row(store) -> dict:
    """The library's current encoder row; the shipped default is stored on first use."""
    from models.motion import encoder as enc_mod
    row = store.current_encoder()
    if row is None:
        blob = enc_mod.default_blob()
        row = store.ensure_default_encoder("isa", blob, enc_mod.fingerprint(blob))
    return row


def current_encoder(store) -> tuple[int, object]:
    """(version, encoder) the library uses now; the shipped default on first use."""
    from models.motion import encoder as enc_mod
    row = current_encoder_row(store)
    model = lazy(f"motion-encoder:{row['fingerprint']}", lambda: enc_mod.load(row["model"]))
    if not model.loaded:                  # one encoder at a time: drop the one it replaces
        unload_all("motion-encoder:")
    return int(row["version"]), model.get()


@dataclass
class MotionResult:
    windows: list[tuple[float, float]] = field(default_factory=list)
    descriptors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    version: int = 0
    tags: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


class MotionAnalyser:
    """Feeds sampled frames into a WindowBuilder; `finish` adds appearance and tags."""

    def __init__(self, version: int, encoder, tag_models: list[dict] = ()):
        from models.motion.descriptor import WindowBuilder
        self.version, self.encoder = version, encoder
        self.tag_models = [m for m in tag_models if m["encoder_version"] == version]
        self.builder = WindowBuilder(encoder)
        self.seconds = 0.0

    @classmethod
    def for_store(cls, store) -> "MotionAnalyser":
        version, encoder = current_encoder(store)
        return cls(version, encoder, store.tag_models(with_model=True))

    def tap(self, t: float, frame: np.ndarray) -> None:
        s = time.perf_counter()
        self.builder.add(t, frame)
        self.seconds += time.perf_counter() - s

    def finish(self, duration: float | None, keyframes: list[tuple[float, np.ndarray]]
               ) -> MotionResult:
        from models.motion.descriptor import assemble
        s = time.perf_counter()
        windows = self.builder.finish(duration)
        x = assemble(windows, keyframes)
        spans = [(w.start, w.end) for w in windows]
        tags = apply_tag_models(self.tag_models, spans, x)
        self.seconds += time.perf_counter() - s
        return MotionResult(spans, x, self.version, tags,
                            {"motion_s": self.seconds, "windows": len(spans)})


def apply_tag_models(models: list[dict], spans: list[tuple[float, float]], x: np.ndarray,
                     media_id: int | None = None) -> list[dict]:
    """Tag rows (start, end, label, source, score) where each model's probability reaches
    its threshold and the window is like the tag's examples (the open-set test of
    models.motion.classifier), consecutive windows merged into one range."""
    from models.motion.classifier import TagModel, merge_ranges
    rows = []
    if not len(spans):
        return rows
    for m in models:
        model = TagModel.from_bytes(m["model"])
        p = model.tagged(x, m["threshold"])
        hits = [(s, e, float(pi)) for (s, e), pi in zip(spans, p) if pi > 0]
        for s, e, score in merge_ranges(hits):
            row = {"start": s, "end": e, "label": m["label"], "source": m["source"],
                   "score": round(score, 4)}
            if media_id is not None:
                row["media_id"] = media_id
            rows.append(row)
    return rows


def describe_file(path: str, analyser: MotionAnalyser, *, duration: float | None = None,
                  keyframes: list[tuple[float, np.ndarray]] = (),
                  progress: Callable[[float], None] = lambda t: None) -> MotionResult:
    """Decode a file's sampled frames (as the visual stage samples them) and describe it."""
    from models.motion.encoder import torch_threads

    from indexer.stages.keyframes import DEFAULT_SAMPLE_FPS, sampled_frames
    with torch_threads(1):
        for frame in sampled_frames(path, DEFAULT_SAMPLE_FPS):
            progress(frame.time)
            analyser.tap(frame.time, frame.small())
        return analyser.finish(duration, keyframes)


class MotionStage:
    """Recomputes a video's descriptors with the current encoder (queued by retraining)."""

    name = MOTION_STAGE
    after: tuple[str, ...] = ()        # queued by the motion-encoder task, not by the pipeline:
                                       # the visual stage describes new videos in its own pass
    derives = ("motion_windows",)
    search_lists = (SearchList("tag", 1.0, "tags_fts", "tags", "label"),)  # action tags

    def applies(self, probe: dict) -> bool:
        return bool(probe.get("has_video", False))

    def run(self, media: dict, ctx) -> Callable:
        store = ctx.store
        analyser = MotionAnalyser.for_store(store)
        duration = media.get("duration")

        def progress(t: float) -> None:
            ctx.check()
            if duration:
                ctx.report(min(0.99, t / duration))
        res = describe_file(media["path"], analyser, duration=duration,
                            keyframes=store.keyframe_features(media["id"]), progress=progress)
        ctx.check()
        ctx.report(1.0)
        return lambda st: st.save_motion(media["id"], res.windows, res.descriptors, res.version,
                                         res.tags)


__all__ = ["MotionAnalyser", "MotionResult", "MotionStage", "apply_tag_models", "current_encoder",
           "describe_file", "WINDOW_S"]
