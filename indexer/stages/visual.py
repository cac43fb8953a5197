"""The "visual" stage: keyframes, ImageNet tags, keyframe features and on-screen text.

    stage = VisualStage(thumb_dir, models_dir, max_gap=settings.frame_interval_s)
    saver = stage.run(media, ctx)         # decodes, classifies, reads text; no SQL
    saver(store)                          # one transaction (Store.save_visual)

One sequential pass over the video (indexer.stages.keyframes): a keyframe at each shot and at
least every `max_gap` seconds. The pass runs in its own thread a few keyframes ahead of
the models, so decoding overlaps OCR and EfficientNet on a 2-core CPU (the results are the
same as one thread's: the same frames are decoded, in the same order). Per keyframe:

* EfficientNet-Lite0 (models.vision.image_features), in batches: a 1280-d feature for
  search by example (keyframe_vec) and ImageNet probabilities; labels reaching their
  calibrated threshold (models.vision.tags) become tags. A tag carried by consecutive
  keyframes is one row from the first of them to the next keyframe without it (the end of
  the media after the last keyframe), scored with its highest probability.
* Motion (indexer.stages.motion), when the stage has a store to read the encoder from: every
  sampled frame of the same pass feeds the window descriptors (no second decode); they and
  the action tags of the library's trained tags are saved with the rest.
* OCR (models.vision.ocr) when the cheap text check passes, reusing the previous result when
  the picture has not changed. Identical consecutive lines (after normalising case, spaces
  and OCR jitter) are merged into one time range like tags; where any line was read the
  keyframe also gets the tag "text" (source "ocr"), so "text" or "writing" finds it.
* People (models.vision.people, a HOG people detector) on the full keyframe: the tag
  "person" (source "people"), scored by the detector's margin squashed into 0-1. It is
  asked at most once per PEOPLE_GAP seconds within a shot (a keyframe of the same shot in
  between keeps the last answer) and on every new shot, and then runs only when the picture
  differs from the one it last looked at (models.vision.ocr.same_picture): about 0.06 s of
  CPU per 720p frame, 0.07 s per 1080p, on this thread (BLAS on one thread: decoding has the
  other).
"""
from __future__ import annotations

import difflib
import logging
import os
import queue
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# OpenCV (24 MB resident, more once used) is imported where it is used, not here: a worker
# that only transcribes does not hold it (benchmarks/README.md "Worker memory").
import numpy as np

from indexer.stages.base import SearchList
from indexer.stages.keyframes import DEFAULT_MAX_GAP, DEFAULT_SAMPLE_FPS, Keyframe, iter_keyframes

log = logging.getLogger(__name__)

TAG_SOURCE = "imagenet"
PEOPLE_SOURCE = "people"      # the "person" tag of the people detector
TEXT_SOURCE = "ocr"           # the "text" tag where OCR read a line
PEOPLE_GAP = 10.0             # seconds between people checks within one shot
CLASSIFY_BATCH = 8
TEXT_MATCH_RATIO = 0.85       # difflib ratio above which two OCR lines are the same text
MIN_TEXT_CHARS = 2            # alphanumeric characters a line needs to be kept


@dataclass
class _Open:
    start: float
    text: str          # or label
    score: float
    last_seen: float


@dataclass
class VisualResult:
    keyframes: list[dict] = field(default_factory=list)   # time, shot, thumbnail, reason
    features: list[np.ndarray] = field(default_factory=list)
    tags: list[dict] = field(default_factory=list)        # start, end, label, source, score
    screen_text: list[dict] = field(default_factory=list) # start, end, text, confidence
    stats: dict = field(default_factory=dict)
    motion: object | None = None                          # indexer.stages.motion.MotionResult


# ---- merging per-keyframe results into time ranges ----------------------------------------

class RangeMerger:
    """Turns per-keyframe observations into (start, end) ranges. Call `observe(t, items)` for
    every keyframe in time order (items: key -> (display text, score)); an item absent from a
    keyframe closes its range at that keyframe's time."""

    def __init__(self, same: Callable[[str, str], bool] | None = None):
        self.same = same or (lambda a, b: a == b)
        self.open: dict[str, _Open] = {}
        self.closed: list[tuple[float, float, str, float]] = []

    def _match(self, key: str) -> str | None:
        if key in self.open:
            return key
        for k in self.open:
            if self.same(k, key):
                return k
        return None

    def observe(self, t: float, items: dict[str, tuple[str, float]]) -> None:
        seen = set()
        for key, (text, score) in items.items():
            k = self._match(key)
            if k is None or k in seen:
                self.open[key] = _Open(t, text, score, t)
                seen.add(key)
                continue
            o = self.open[k]
            if score > o.score:
                o.text, o.score = text, score
            o.last_seen = t
            seen.add(k)
        for k in [k for k in self.open if k not in seen]:
            o = self.open.pop(k)
            self.closed.append((o.start, t, o.text, o.score))

    def finish(self, end: float) -> list[tuple[float, float, str, float]]:
        for o in self.open.values():
            self.closed.append((o.start, max(end, o.last_seen), o.text, o.score))
        self.open.clear()
        return sorted(self.closed)


def normalise_text(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", "", text.casefold())).strip()


def _same_text(a: str, b: str) -> bool:
    return difflib.SequenceMatcher(None, a, b).ratio() >= TEXT_MATCH_RATIO


# ---- the stage ------------------------------------------------------------------------------

class VisualStage:
    """Keyframes, tags, features and screen text of a video (see module docstring)."""

    name = "visual"
    after = ("probe",)
    # motion is described in the same decode pass (one decode, not two): see the module doc
    derives = ("keyframes", "tags", "screen_text", "motion_windows")
    search_lists = (SearchList("shown", 1.0, "screen_text_fts", "screen_text", "text"),
                    SearchList("tag", 1.0, "tags_fts", "tags", "label"),
                    SearchList("image", 1.0))        # keyframe features (keyframe_vec)
    thumb_folder = "{media_id}"      # a file's thumbnails, under thumb_dir (the saver prunes it)

    def __init__(self, thumb_dir: str | os.PathLike, models_dir: str | os.PathLike | None = None,
                 *, max_gap: float = DEFAULT_MAX_GAP, sample_fps: float = DEFAULT_SAMPLE_FPS,
                 detector: str = "content", ocr: bool = True, threads: int = 0,
                 classifier=None, reader=None, thresholds=None, max_tags: int = 3,
                 motion: bool = True, people: bool = True, people_detector=None):
        self.thumb_dir = Path(thumb_dir)
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self.max_gap, self.sample_fps, self.detector = max_gap, sample_fps, detector
        self.use_ocr, self.threads, self.max_tags = ocr, threads, max_tags
        self.use_motion, self.use_people = motion, people
        self._classifier, self._reader, self._thresholds = classifier, reader, thresholds
        self._people = people_detector
        self.last_stats: dict = {}

    # models are loaded once per process, on first use (models.loading), unless given
    @property
    def classifier(self):
        if self._classifier is not None:
            return self._classifier
        from models.vision.image_features import shared_classifier
        return shared_classifier(self.models_dir, threads=self.threads).get()

    @property
    def reader(self):
        if self._reader is not None:
            return self._reader
        from models.vision.ocr import shared_reader
        return shared_reader(threads=self.threads).get()

    @property
    def people_detector(self):
        if self._people is not None:
            return self._people
        from models.vision.people import shared_detector
        return shared_detector()

    @property
    def thresholds(self) -> np.ndarray:
        t = self._thresholds
        if t is None:
            from models.vision.tags import shared_thresholds
            t = shared_thresholds().get()
        return t if isinstance(t, np.ndarray) else t.vector(len(self.classifier.labels))

    def applies(self, probe: dict) -> bool:
        return bool(probe.get("has_video", False))

    def analyse(self, path: str, *, media_id: int | str = "x", duration: float | None = None,
                report: Callable[[float], None] = lambda f: None,
                check: Callable[[], None] = lambda: None, motion=None) -> VisualResult:
        """Everything but the saving; `report(fraction)` and `check()` are called often.
        With `motion` (an indexer.stages.motion.MotionAnalyser) the same pass describes motion."""
        if motion is None:
            return self._analyse(path, media_id, duration, report, check, None)
        from models.motion.encoder import torch_threads
        with torch_threads(1):
            return self._analyse(path, media_id, duration, report, check, motion)

    def _analyse(self, path, media_id, duration, report, check, motion) -> VisualResult:
        from models.vision.ocr import frame_signature, might_have_text, same_picture
        from models.vision.tags import image_evidence, select

        t0 = time.perf_counter()
        clf = self.classifier
        reader = self.reader if self.use_ocr else None
        thresholds = self.thresholds
        people = self.people_detector if self.use_people else None
        stats = {"load_s": time.perf_counter() - t0, "classify_s": 0.0, "ocr_s": 0.0,
                 "gate_s": 0.0, "ocr_frames": 0, "ocr_reused": 0, "ocr_skipped": 0,
                 "people_s": 0.0, "people_frames": 0, "people_reused": 0}
        res = VisualResult(stats=stats)
        tag_merge = RangeMerger()
        text_merge = RangeMerger(_same_text)
        seen_merge = RangeMerger()                       # "person" and "text" tags
        last_people: _PeopleCheck | None = None
        pending: list[tuple[float, np.ndarray]] = []     # (time, small image) to classify
        last_sig, last_lines = None, {}

        reported = [-1.0]

        def progress(t: float) -> None:
            check()
            if duration:
                fraction = min(0.99, t / duration)
                if fraction - reported[0] >= 0.005:        # at most ~200 reports a file
                    reported[0] = fraction
                    report(fraction)

        def classify() -> None:
            if not pending:
                return
            s = time.perf_counter()
            for (t, im), a in zip(pending, clf.analyze([im for _, im in pending])):
                res.features.append(a.feature)
                tags = select(a.probs, clf.labels, thresholds, self.max_tags,
                              evidence=image_evidence(im))
                tag_merge.observe(t, {label: (label, p) for label, p in tags})
            pending.clear()
            stats["classify_s"] += time.perf_counter() - s

        start = time.perf_counter()
        last_time = 0.0
        # Motion gets its own thread too: at 1080p the keyframe pass is the slower side.
        tap = _Background(motion.tap) if motion is not None else None
        frames = _Prefetch(lambda on_sample: iter_keyframes(
            path, sample_fps=self.sample_fps, max_gap=self.max_gap, detector=self.detector,
            thumb_dir=self.thumb_dir, thumb_prefix=self.thumb_folder.format(media_id=media_id),
            progress=on_sample, on_frame=tap), progress)
        try:
            for kf in frames:
                last_time = kf.time
                res.keyframes.append({"time": kf.time, "shot": kf.shot,
                                      "thumbnail": kf.thumbnail, "reason": kf.reason})
                pending.append((kf.time, _shrink(kf.image, 256)))
                seen: dict[str, tuple[str, float]] = {}
                sig = None
                if reader is not None:
                    sig = frame_signature(kf.image)
                    lines = self._read_text(kf, reader, stats, last_sig, sig, last_lines,
                                            might_have_text, same_picture)
                    last_sig, last_lines = sig, lines
                    text_merge.observe(kf.time, lines)
                    if lines:
                        seen["text"] = ("text", max(c for _, c in lines.values()))
                if people is not None:
                    last_people = _check_people(people, kf, sig, last_people, stats,
                                                frame_signature, same_picture)
                    seen.update(last_people.items)
                seen_merge.observe(kf.time, seen)
                kf.image = None                                   # keep memory flat
                if len(pending) >= CLASSIFY_BATCH:
                    classify()
                check()
        finally:
            frames.close()      # also when OCR or a model fails
            if tap is not None:
                tap.close()
        classify()
        end = duration if duration else last_time + 1.0 / self.sample_fps
        if motion is not None:
            res.motion = motion.finish(end, [(k["time"], f) for k, f in
                                             zip(res.keyframes, res.features)])
            stats.update(motion_s=res.motion.stats["motion_s"],
                         motion_windows=res.motion.stats["windows"])
        res.tags = [{"start": s, "end": e, "label": label, "source": TAG_SOURCE,
                     "score": round(p, 4)} for s, e, label, p in tag_merge.finish(end)]
        res.tags += [{"start": s, "end": e, "label": label,
                      "source": PEOPLE_SOURCE if label == "person" else TEXT_SOURCE,
                      "score": round(p, 4)} for s, e, label, p in seen_merge.finish(end)]
        res.screen_text = [{"start": s, "end": e, "text": text, "confidence": round(p, 4)}
                           for s, e, text, p in text_merge.finish(end)]
        stats.update(total_s=time.perf_counter() - start, keyframes=len(res.keyframes),
                     shots=len({k["shot"] for k in res.keyframes}), tags=len(res.tags),
                     text_lines=len(res.screen_text), backend=getattr(clf, "backend", "?"))
        # The keyframe pass runs beside the models (see _Prefetch): its own busy time, and
        # how long the models waited for it.
        stats["decode_and_shots_s"] = frames.busy_s
        stats["waited_for_frames_s"] = frames.waited_s
        report(1.0)
        return res

    def _read_text(self, kf: Keyframe, reader, stats, last_sig, sig, last_lines,
                   might_have_text, same_picture) -> dict:
        s = time.perf_counter()
        if last_sig is not None and same_picture(last_sig, sig):
            stats["ocr_reused"] += 1
            stats["gate_s"] += time.perf_counter() - s
            return last_lines
        gate = might_have_text(kf.image)
        stats["gate_s"] += time.perf_counter() - s
        if not gate:
            stats["ocr_skipped"] += 1
            return {}
        s = time.perf_counter()
        lines = {}
        for line in reader.read(kf.image):
            if sum(ch.isalnum() for ch in line.text) < MIN_TEXT_CHARS:
                continue
            key = normalise_text(line.text)
            if key and (key not in lines or line.confidence > lines[key][1]):
                lines[key] = (line.text, line.confidence)
        stats["ocr_s"] += time.perf_counter() - s
        stats["ocr_frames"] += 1
        return lines

    def run(self, media: dict, ctx) -> Callable:
        media_id = media["id"]
        motion = None
        if self.use_motion and getattr(ctx, "store", None) is not None:
            from indexer.stages.motion import MotionAnalyser
            motion = MotionAnalyser.for_store(ctx.store)
        res = self.analyse(media["path"], media_id=media_id, duration=media.get("duration"),
                           report=ctx.report, check=ctx.check, motion=motion)
        self.last_stats = res.stats
        ctx.check()
        kind = media.get("kind") or "video"
        thumb_dir, keep = self.thumb_dir, {k["thumbnail"] for k in res.keyframes}

        def saver(store) -> None:
            rows = [dict(k, kind=kind) for k in res.keyframes]
            store.save_visual(media_id, rows, res.tags, res.screen_text, res.features,
                              replace_sources=(TAG_SOURCE, PEOPLE_SOURCE, TEXT_SOURCE))
            if res.motion is not None:
                m = res.motion
                store.save_motion(media_id, m.windows, m.descriptors, m.version, m.tags)
            store.after_commit(lambda: prune_thumbnails(thumb_dir, str(media_id), keep))
        return saver


class _Prefetch:
    """Runs the keyframe pass (decode, shot detection, thumbnails, the motion tap) in a
    thread, up to PREFETCH keyframes ahead of the models that consume them, so decoding and
    OCR/EfficientNet overlap on two cores (OpenCV's decoder and onnxruntime release the GIL).
    Callbacks stay on the caller's thread: `progress(t)` (report and cancel) is called there
    for every sampled frame, in order, as soon as the caller is free, and a cancel or error
    on either side stops the other. `make(on_sample)` builds the keyframe iterator; the producer calls
    `on_sample(t)` for each sampled frame."""

    PREFETCH = 2         # keyframes (full-size frames) queued: ~12 MB at 1080p

    def __init__(self, make: Callable, progress: Callable[[float], None]):
        self._q: queue.Queue = queue.Queue(self.PREFETCH)
        self._stop = threading.Event()
        self._times: deque[float] = deque()     # sampled times not yet passed to progress
        self._progress = progress
        self.busy_s = 0.0         # producer: time spent making keyframes (not waiting)
        self.waited_s = 0.0       # caller: time spent waiting for the next keyframe
        self._thread = threading.Thread(target=self._produce, args=(make,),
                                        name="visual-decode", daemon=True)
        self._thread.start()

    def _on_sample(self, t: float) -> None:
        self._times.append(t)
        if self._stop.is_set():
            raise _Stopped()

    def _put(self, item) -> None:
        s = time.perf_counter()
        try:
            self._put_blocking(item)
        finally:
            self.busy_s -= time.perf_counter() - s

    def _put_blocking(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped()

    def _produce(self, make) -> None:
        start = time.perf_counter()
        try:
            for kf in make(self._on_sample):
                self._put(("kf", kf))
            self._put(("end", None))
        except _Stopped:
            pass
        except BaseException as exc:          # handed to the caller's thread
            try:
                self._put(("error", exc))
            except _Stopped:
                pass
        finally:
            self.busy_s += time.perf_counter() - start

    def __iter__(self):
        try:
            while True:
                s = time.perf_counter()
                try:
                    kind, item = self._q.get(timeout=0.05)
                except queue.Empty:
                    kind = None
                self.waited_s += time.perf_counter() - s
                while self._times:
                    self._progress(self._times.popleft())
                if kind == "kf":
                    yield item
                elif kind == "end":
                    return
                elif kind == "error":
                    raise item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the producer (at its next sampled frame) and wait for it."""
        self._stop.set()
        self._thread.join()


class _Stopped(Exception):
    pass


class _Background:
    """`fn(*args)` calls made in order on one worker thread (bounded queue: the caller waits
    when it is QUEUE calls ahead). close() waits for the calls made so far and re-raises the
    first error; after an error the remaining calls are dropped."""

    QUEUE = 16

    def __init__(self, fn: Callable):
        self._fn, self._q, self._error = fn, queue.Queue(self.QUEUE), None
        self._thread = threading.Thread(target=self._work, name="visual-motion", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            args = self._q.get()
            if args is None:
                return
            if self._error is None:
                try:
                    self._fn(*args)
                except BaseException as exc:
                    self._error = exc

    def __call__(self, *args) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(args)

    def close(self) -> None:
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


@dataclass
class _PeopleCheck:
    time: float                    # of the keyframe whose answer this is (last due check)
    shot: int
    signature: np.ndarray          # of the frame the detector last looked at
    items: dict[str, tuple[str, float]]


def _check_people(detector, kf: Keyframe, sig, last: _PeopleCheck | None, stats: dict,
                  frame_signature, same_picture) -> _PeopleCheck:
    """The people answer for keyframe `kf`: the last one until a check is due (a new shot,
    or PEOPLE_GAP seconds into one); a due check keeps the last answer when the picture is
    the same as the one the detector last looked at (a still shot, a cut where the picture
    hardly changed), else runs the detector. `sig`: the keyframe's frame_signature when OCR
    made it."""
    if last is not None and kf.shot == last.shot and kf.time - last.time < PEOPLE_GAP:
        return last
    s = time.perf_counter()
    sig = frame_signature(kf.image) if sig is None else sig
    if last is not None and same_picture(last.signature, sig):
        stats["people_reused"] += 1
        check = _PeopleCheck(kf.time, kf.shot, last.signature, last.items)
    else:
        stats["people_frames"] += 1
        check = _PeopleCheck(kf.time, kf.shot, sig, _people_items(detector, kf.image))
    stats["people_s"] += time.perf_counter() - s
    return check


def _people_items(detector, image: np.ndarray) -> dict[str, tuple[str, float]]:
    """{"person": ("person", score)} when the detector sees a person, else {}; the score is
    the margin over the threshold squashed into 0-1 (0.5 at the threshold)."""
    found, margin = detector.sees_person(image)
    if not found:
        return {}
    return {"person": ("person", float(1.0 / (1.0 + np.exp(detector.threshold - margin))))}


def _shrink(img: np.ndarray, short_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = short_side / min(h, w)
    if s >= 1:
        return img.copy()
    import cv2
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def prune_thumbnails(thumb_dir: Path, prefix: str, keep: set) -> None:
    """After the new rows are committed: drop this media's thumbnails no row points to."""
    folder = Path(thumb_dir) / prefix
    if not folder.is_dir():
        return
    for f in folder.iterdir():
        if f.is_file() and f"{prefix}/{f.name}" not in keep:
            try:
                f.unlink()
            except OSError:
                pass
