"""Keyframes: sampled frames, shot boundaries, one keyframe per shot plus one every N seconds.

    for kf in iter_keyframes("talk.mp4", max_gap=5.0, thumb_dir=thumbs, thumb_prefix="m12"):
        kf.time, kf.shot, kf.reason, kf.thumbnail   # thumbnail is relative to thumb_dir
        kf.image                                    # upright full-size BGR frame

Decoding is one sequential pass. With OpenCV every frame is grab()bed (demuxed and
decoded, which no reader can avoid for inter-coded video) but only the sampled ones are
retrieve()d (converted to BGR); there are no seeks. Progressive H.264 in MP4/MOV/MKV (most
files) is read with PyAV instead, selectively: a non-reference picture that cannot be one
of the samples is never sent to the decoder, which yields OpenCV's frames, bit for bit and
with OpenCV's times, from roughly half the decoding work (see _selective_frames). Files
OpenCV cannot open go through plain PyAV. All readers honour the display-matrix rotation,
so frames are upright.

Shot boundaries come from PySceneDetect's ContentDetector run on the sampled frames,
downscaled to DETECT_WIDTH (the width PySceneDetect's own auto-downscale aims at); a cut is
reported at the first sampled frame of the new shot, so its time is at most one sample
interval (1 / sample_fps) after the true cut. `benchmarks/visual_speed.py --shots`
compares it with AdaptiveDetector and a plain HSV-histogram method on real and generated
clips.

Frames are produced lazily and only a few are held at once, so memory does not grow with
the length of the file.
"""
from __future__ import annotations

import bisect
import math
import os
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

# OpenCV (24 MB resident, more once used) is imported where it is used, not here: a worker
# that only transcribes does not hold it (benchmarks/README.md "Worker memory").
import numpy as np

DEFAULT_SAMPLE_FPS = 4.0      # frames per second looked at for shot detection
DEFAULT_MAX_GAP = 5.0         # at least one keyframe every N seconds
DETECT_WIDTH = 256            # shot detection works on frames this wide
DEFAULT_MIN_SHOT = 0.6        # seconds; a cut closer than this to the last one is ignored
BLANK_STD = 6.0              # grey-level spread below which a frame counts as blank
THUMB_WIDTH = 320
THUMB_QUALITY = 80
DETECTORS = ("content", "adaptive", "histogram")

Progress = Callable[[float], None]          # called with the time (s) of each sampled frame


class VideoUnreadable(Exception):
    """Neither OpenCV nor PyAV could read a single frame of the file."""


class _Interlaced(VideoUnreadable):
    """The stream is interlaced: OpenCV's BGR conversion gives all-black frames for it
    ("Cannot convert interlaced to progressive"), so it is read with plain PyAV."""


class Frame:
    """A sampled frame: its running number, its time (s from the start of the stream) and
    `image`, upright BGR at full size (or at most `max_width` px wide, in the stored
    orientation). A frame from PyAV keeps the decoder's picture and converts it on first
    use of `image`: most samples only feed shot detection and motion, whose small copy
    (`small()`) swscale makes straight from the YUV picture, 1.2 ms instead of 6.2 for the
    full conversion and resize at 1080p (benchmarks/README.md, "Visual stage speed"); the
    faces stage converts only the samples it looks at."""
    __slots__ = ("index", "time", "_image", "_picture", "_size")

    def __init__(self, index: int, time: float, image: np.ndarray | None = None, *,
                 picture=None, max_width: int | None = None):
        if image is None and picture is None:
            raise ValueError("a frame needs an image or a decoded picture")
        self.index, self.time, self._image, self._picture = index, time, image, picture
        self._size = None
        if picture is not None:
            w, h = picture.width, picture.height
            if max_width is not None and w > max_width:
                h, w = max(2, round(h * max_width / w / 2) * 2), max_width
            self._size = (w, h)                       # of the stored picture, not turned

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            self._image = _upright_bgr(self._picture, self._size)
            self._picture = None
        return self._image

    @image.setter
    def image(self, value: np.ndarray) -> None:
        self._image, self._picture = value, None

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of `image`, without converting the picture."""
        if self._picture is None:
            return self._image.shape[:2]
        w, h = self._size
        return (w, h) if _turns(self._picture) % 2 else (h, w)

    def small(self, width: int = DETECT_WIDTH) -> np.ndarray:
        """The frame `width` px wide (as detect_width_frame), scaled by swscale's area
        filter from the decoder's picture when the full image was not needed."""
        pic = self._picture
        if pic is None:
            return detect_width_frame(self.image, width)
        turn = _turns(pic)
        w, h = (pic.width, pic.height) if turn % 2 == 0 else (pic.height, pic.width)
        if w <= width:
            return self.image
        out = (width, max(1, round(h * width / w)))
        sw, sh = out if turn % 2 == 0 else out[::-1]
        img = pic.to_ndarray(width=sw, height=sh, format="bgr24", interpolation="AREA")
        return np.ascontiguousarray(np.rot90(img, turn)) if turn else img


@dataclass
class Keyframe:
    time: float
    shot: int             # 0 for the first shot, +1 at each detected cut
    reason: str           # "start", "cut" or "interval"
    image: np.ndarray = field(repr=False)
    thumbnail: str | None = None   # relative to the thumbnail folder


# ---- sequential, sampled decoding --------------------------------------------------------

def _sample_due(t: float, next_t: float, step: float) -> bool:
    return t >= next_t - 1e-3 * step


def _next_slot(t: float, step: float) -> float:
    """The first sampling-grid time strictly after t (grid: 0, step, 2*step, ...)."""
    return (math.floor(t / step + 1e-3) + 1) * step


def _opencv_frames(path: str, step: float) -> Iterator[Frame]:
    import cv2
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise VideoUnreadable(f"OpenCV cannot open {path}")
        # Upright frames (the FFmpeg backend's default, set in case a build differs).
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and math.isfinite(fps) and 0 < fps < 1000 else 25.0
        decoded, sampled, next_t, last_t = 0, 0, 0.0, -1.0
        while cap.grab():
            t = _frame_time(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0, decoded, last_t, fps)
            decoded += 1
            last_t = t
            if not _sample_due(t, next_t, step):
                continue
            ok, img = cap.retrieve()
            if not ok or img is None:
                continue
            yield Frame(sampled, t, img)
            sampled += 1
            next_t = _next_slot(t, step)
        if decoded == 0:
            raise VideoUnreadable(f"OpenCV decoded no frame of {path}")
    finally:
        cap.release()


def _frame_time(pos: float, decoded: int, last_t: float, fps: float) -> float:
    """A decoded frame's time: the container's timestamp `pos` when it is sane, else frame
    count / fps, and always after the previous frame's `last_t`."""
    t = pos if math.isfinite(pos) and pos > last_t else decoded / fps
    if decoded and t <= last_t:
        t = last_t + 1.0 / fps
    return t


def _turns(frame) -> int:
    """Quarter turns (counter-clockwise, as np.rot90) that make a PyAV frame upright."""
    return round((getattr(frame, "rotation", 0) or 0) / 90) % 4


def _upright_bgr(frame, size: tuple[int, int] | None = None) -> np.ndarray:
    """A PyAV frame as BGR (scaled by swscale to `size`, width and height before turning),
    turned by its display-matrix rotation."""
    if size is not None and size != (frame.width, frame.height):
        img = frame.to_ndarray(width=size[0], height=size[1], format="bgr24")
    else:
        img = frame.to_ndarray(format="bgr24")
    k = _turns(frame)
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


@contextmanager
def _open_video(path: str):
    """(container, first video stream) of a file opened with PyAV, closed on exit."""
    import av
    try:
        container = av.open(path)
    except av.FFmpegError as exc:
        raise VideoUnreadable(f"PyAV cannot open {path}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise VideoUnreadable(f"{path} has no video stream")
        yield container, container.streams.video[0]


def _pyav_frames(path: str, step: float) -> Iterator[Frame]:
    import av
    with _open_video(path) as (container, stream):
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        sampled, decoded, next_t = 0, 0, 0.0
        try:
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else decoded / rate
                decoded += 1
                if not _sample_due(t, next_t, step):
                    continue
                yield Frame(sampled, t, picture=frame)
                sampled += 1
                next_t = _next_slot(t, step)
        except av.FFmpegError:
            if decoded == 0:
                raise
            # a damaged tail: keep what was decoded
        if decoded == 0:
            raise VideoUnreadable(f"PyAV decoded no frame of {path}")


# ---- a cheap pass for detectors that need no exact frames (faces) -----------------------

CHEAP_MAX_WIDTH = 1280        # frames of the cheap pass are at most this wide


def cheap_sampled_frames(path: str | os.PathLike, sample_fps: float, *,
                         max_width: int = CHEAP_MAX_WIDTH) -> Iterator[Frame]:
    """Upright BGR frames about every 1/sample_fps seconds, decoded as cheaply as PyAV
    allows, for work that needs a picture near each grid time rather than OpenCV's exact
    frame: the decoder drops non-reference pictures (skip_frame NONREF: a sample is the
    first reference picture at or after its grid time, at most a few frames late) and
    skips the deblocking filter (faint block edges, about a third less decoding), and
    swscale scales straight to at most `max_width` px wide while converting to BGR. On
    30 s of 720p H.264 that is ~1.3 CPU s instead of ~1.9 for sampled_frames
    (benchmarks/README.md, "Faces"). Files PyAV cannot decode this way go through
    sampled_frames (scaled the same)."""
    import av
    path, step = str(path), 1.0 / sample_fps
    produced = 0
    try:
        with _open_video(path) as (container, stream):
            stream.thread_type = "SLICE"          # frame threads cost CPU (see SELECTIVE_THREADS)
            stream.thread_count = SELECTIVE_THREADS
            ctx = stream.codec_context
            ctx.skip_frame = "NONREF"
            ctx.options = {"skip_loop_filter": "all"}
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            decoded, next_t, last_t = 0, 0.0, -1.0
            try:
                for frame in container.decode(stream):
                    pos = frame.time if frame.time is not None else math.nan
                    t = _frame_time(pos, decoded, last_t, rate)
                    decoded += 1
                    last_t = t
                    if not _sample_due(t, next_t, step):
                        continue
                    yield Frame(produced, t, picture=frame, max_width=max_width)
                    produced += 1
                    next_t = _next_slot(t, step)
            except av.FFmpegError:
                if produced == 0:
                    raise VideoUnreadable(f"PyAV cannot decode {path} cheaply")
    except (VideoUnreadable, av.FFmpegError):
        if produced:
            return                          # a damaged tail: keep what was decoded
    if produced:
        return
    import cv2
    for frame in sampled_frames(path, sample_fps):
        h, w = frame.image.shape[:2]
        if w > max_width:
            frame.image = cv2.resize(frame.image, (max_width, max(2, round(h * max_width / w))),
                                     interpolation=cv2.INTER_AREA)
        yield frame


# ---- selective decoding: reference frames, and only the non-reference frames sampled ------

SELECTIVE_WINDOW = 64         # recent timestamps kept to place a packet among its neighbours
SELECTIVE_THREADS = 1         # decoder threads (see _selective_frames)


def _avcc_length_size(extradata: bytes | None) -> int | None:
    """The NAL length-prefix size of an H.264 stream stored as AVCC (MP4, MOV, MKV), else
    None (Annex B byte streams, other codecs)."""
    ext = bytes(extradata or b"")
    if len(ext) >= 7 and ext[0] == 1:
        return (ext[4] & 3) + 1
    return None


def is_disposable_h264(data: bytes, length_size: int) -> bool:
    """True when an AVCC H.264 access unit is a non-reference picture: at least one slice,
    every slice with nal_ref_idc 0, no IDR and no parameter sets. No other picture is
    predicted from it and the decoder's state (frame_num, POC of reference pictures) does
    not depend on it, so leaving it out changes no other decoded frame. Anything unexpected
    answers False (decode it)."""
    i, n, slices = 0, len(data), 0
    while i < n:
        if i + length_size >= n:
            return False
        size = int.from_bytes(data[i:i + length_size], "big")
        i += length_size
        if size <= 0 or i + size > n:
            return False
        header = data[i]
        kind = header & 0x1F
        if kind == 1:                       # non-IDR slice
            if header & 0x60:               # nal_ref_idc != 0: a reference picture
                return False
            slices += 1
        elif kind in (2, 3, 4, 5, 7, 8, 13, 15, 20):   # partitions, IDR, SPS/PPS, ...
            return False
        i += size
    return slices > 0


def _field_order(ctx) -> str:
    order = getattr(ctx, "field_order", None)
    return str(getattr(order, "name", order)).lower()


def _interlaced(ctx) -> bool:
    """Known to be interlaced (field order tt, bb, tb or bt; FFmpeg's 2-5)."""
    return _field_order(ctx) in ("2", "3", "4", "5", "tt", "bb", "tb", "bt")


def _progressive(ctx) -> bool:
    return _field_order(ctx) in ("1", "progressive")


def _grid_threshold_in(lo: float, hi: float, step: float) -> bool:
    """Could a frame at `hi` whose predecessor (in display order) is at `lo` be sampled,
    i.e. is there a grid time g with lo < g - 1e-3*step <= hi (see _sample_due)? Errs
    towards True by a small margin (True only costs decoding a frame)."""
    m = math.floor(lo / step + 1e-3)
    return (m + 1) * step - 1e-3 * step <= hi + 1e-6 or m * step - 1e-3 * step > lo - 1e-6


def _selective_frames(path: str, step: float, stats: dict | None = None) -> Iterator[Frame]:
    """The frames _opencv_frames samples, bit for bit and with the same times, decoding
    only what they need: for H.264 in MP4/MOV/MKV, a non-reference picture (a "b" frame,
    often half of all frames) is not even sent to the decoder unless it could be a sample.

    A sampled frame is the first one at or after a grid time, so a frame can only be a
    sample when a grid time lies between its display-order predecessor and itself. The
    predecessor is taken from the timestamps demuxed so far (a later packet can only bring
    a closer predecessor, which makes the interval smaller), so the test never skips a
    frame that the full decode would sample. Times are OpenCV's (CAP_PROP_POS_MSEC:
    (pts - stream start) * time base) and the BGR conversion is the same swscale call, so
    the frames equal OpenCV's (checked by the tests and benchmarks/visual_speed.py).
    Raises VideoUnreadable when the file is not such a stream (the caller uses OpenCV).
    `stats` (a dict) gets the counts of packets "decoded" and "skipped"."""
    import av
    with _open_video(path) as (container, stream):
        ctx = stream.codec_context
        if _interlaced(ctx):
            raise _Interlaced(f"{path}: interlaced")
        length_size = _avcc_length_size(ctx.extradata) if ctx.name == "h264" else None
        if length_size is None or stream.time_base is None:
            raise VideoUnreadable(f"{path}: not H.264 in AVCC form")
        if not _progressive(ctx):
            raise VideoUnreadable(f"{path}: not known to be progressive")
        # One decoder thread: the visual stage already runs this pass beside the models,
        # and frame threads cost CPU time (benchmarks/README.md, "Visual stage speed").
        stream.thread_type = "SLICE"
        stream.thread_count = SELECTIVE_THREADS
        tb = stream.time_base
        unit = tb.numerator / tb.denominator
        start = stream.start_time if stream.start_time is not None else 0
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate and 0 < float(rate) < 1000 else 25.0

        def seconds(pts: int) -> float:
            return (pts - start) * unit * 1000.0 / 1000.0   # via milliseconds, as OpenCV: the same float

        recent: list[int] = []            # sorted pts of the last SELECTIVE_WINDOW packets
        decoded, sampled, next_t, last_t = 0, 0, 0.0, -1.0
        counts = stats if stats is not None else {}
        counts.update(decoded=0, skipped=0)
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError:
                if decoded == 0:
                    raise VideoUnreadable(f"PyAV cannot demux {path}")
                break                            # a damaged tail: keep what was decoded
            pts = packet.pts
            if pts is not None:
                j = bisect.bisect_left(recent, pts)
                skip = (j > 0 and (j == len(recent) or recent[j] != pts)
                        and is_disposable_h264(bytes(packet), length_size)
                        and not _grid_threshold_in(seconds(recent[j - 1]), seconds(pts), step))
                recent.insert(j, pts)
                if len(recent) > SELECTIVE_WINDOW:
                    del recent[0]
                if skip:
                    counts["skipped"] += 1
                    continue
            if packet.size:
                counts["decoded"] += 1
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue                     # a damaged packet, as OpenCV's grab skips it
            for frame in frames:
                pos = seconds(frame.pts) if frame.pts is not None else math.nan
                t = _frame_time(pos, decoded, last_t, fps)    # as _opencv_frames
                decoded += 1
                last_t = t
                if not _sample_due(t, next_t, step):
                    continue
                yield Frame(sampled, t, picture=frame)
                sampled += 1
                next_t = _next_slot(t, step)
        if decoded == 0:
            raise VideoUnreadable(f"PyAV decoded no frame of {path}")


def sampled_frames(path: str | os.PathLike, sample_fps: float = DEFAULT_SAMPLE_FPS, *,
                   backend: str = "auto", stats: dict | None = None) -> Iterator[Frame]:
    """Upright BGR frames on a 1/sample_fps grid (or every frame of slower video).

    backend "auto" decodes H.264 in MP4/MOV/MKV selectively (_selective_frames: the same
    frames as OpenCV, from fewer decoded pictures), other files with OpenCV, and falls back
    to PyAV when OpenCV cannot open the file or decodes nothing from it; interlaced video
    goes to PyAV directly (OpenCV returns it all black); "selective",
    "opencv" and "pyav" force one reader. `stats` receives the selective reader's counts.
    """
    path, step = str(path), 1.0 / sample_fps
    if backend not in ("auto", "selective", "opencv", "pyav"):
        raise ValueError(f"unknown backend {backend!r}")
    if backend in ("auto", "selective"):
        produced = 0
        try:
            for frame in _selective_frames(path, step, stats):
                produced += 1
                yield frame
            return
        except _Interlaced:
            if backend == "selective":
                raise
            backend = "pyav"
        except VideoUnreadable:
            if backend == "selective" or produced:
                raise
    if backend in ("auto", "opencv"):
        produced = 0
        try:
            for frame in _opencv_frames(path, step):
                produced += 1
                yield frame
            return
        except VideoUnreadable:
            if backend == "opencv" or produced:
                raise
    yield from _pyav_frames(path, step)


# ---- shot boundaries ------------------------------------------------------------------

class HistogramCutDetector:
    """A plain method kept for comparison: Bhattacharyya distance between HSV histograms of
    consecutive sampled frames (same process_frame interface as PySceneDetect detectors)."""

    def __init__(self, threshold: float = 0.45, min_scene_len: int = 2):
        self.threshold, self.min_len = threshold, min_scene_len
        self._last_hist, self._last_cut = None, None

    event_buffer_length = 0

    def process_frame(self, timecode, frame_img: np.ndarray) -> list:
        import cv2
        hsv = cv2.cvtColor(frame_img, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, [16, 4, 4], [0, 180, 0, 256, 0, 256])
        cv2.normalize(hist, hist, 1.0, 0.0, cv2.NORM_L1)
        last, self._last_hist = self._last_hist, hist
        if last is None:
            return []
        d = cv2.compareHist(last, hist, cv2.HISTCMP_BHATTACHARYYA)
        index = timecode.frame_num
        if d >= self.threshold and (self._last_cut is None or index - self._last_cut >= self.min_len):
            self._last_cut = index
            return [timecode]
        return []

    def post_process(self, timecode) -> list:
        return []


def make_detector(method: str = "content", sample_fps: float = DEFAULT_SAMPLE_FPS,
                  min_shot: float = DEFAULT_MIN_SHOT, threshold: float | None = None):
    """A shot detector fed with downscaled sampled frames (frame numbers in samples)."""
    min_len = max(1, round(min_shot * sample_fps))
    if method == "content":
        from scenedetect.detector import FlashFilter
        from scenedetect.detectors import ContentDetector
        # SUPPRESS reports a cut on the frame where it happens (MERGE may report it late).
        return ContentDetector(threshold=27.0 if threshold is None else threshold,
                               min_scene_len=min_len, filter_mode=FlashFilter.Mode.SUPPRESS)
    if method == "adaptive":
        from scenedetect.detectors import AdaptiveDetector
        return AdaptiveDetector(adaptive_threshold=3.0 if threshold is None else threshold,
                                min_scene_len=min_len)
    if method == "histogram":
        return HistogramCutDetector(0.45 if threshold is None else threshold, min_len)
    raise ValueError(f"unknown shot detector {method!r}; one of {DETECTORS}")


def detect_width_frame(img: np.ndarray, width: int = DETECT_WIDTH) -> np.ndarray:
    h, w = img.shape[:2]
    if w <= width:
        return img
    import cv2
    return cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def is_blank(small_bgr: np.ndarray, max_std: float = BLANK_STD) -> bool:
    """A frame of (nearly) one colour: black, a fade, a blank card."""
    import cv2
    gray = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2GRAY) if small_bgr.ndim == 3 else small_bgr
    return float(gray.std()) < max_std


def _timecode(index: int, sample_fps: float):
    from scenedetect import FrameTimecode
    return FrameTimecode(index, fps=sample_fps)


# ---- keyframes --------------------------------------------------------------------------

def write_thumbnail(img: np.ndarray, thumb_dir: Path, name: str,
                    width: int = THUMB_WIDTH, quality: int = THUMB_QUALITY) -> str:
    """A small JPEG at thumb_dir/name; returns name (relative, '/'-separated)."""
    import cv2
    h, w = img.shape[:2]
    if w > width:
        img = cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    target = Path(thumb_dir) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"cannot encode thumbnail {name}")
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, target)
    return name


def iter_keyframes(path: str | os.PathLike, *, sample_fps: float = DEFAULT_SAMPLE_FPS,
                   max_gap: float = DEFAULT_MAX_GAP, detector: str = "content",
                   min_shot: float = DEFAULT_MIN_SHOT, threshold: float | None = None,
                   thumb_dir: str | os.PathLike | None = None, thumb_prefix: str = "",
                   thumb_width: int = THUMB_WIDTH, backend: str = "auto",
                   progress: Progress | None = None,
                   on_frame: Callable[[float, np.ndarray], None] | None = None
                   ) -> Iterator[Keyframe]:
    """Keyframes in time order: the first frame, the first sampled frame of every shot, and
    more so that consecutive keyframes are never more than `max_gap` seconds apart (unless
    the file's own frames are further apart than the sampling can see coming).

    `progress(t)` is called for every sampled frame (the place to report and to cancel);
    `on_frame(t, small)` gets every sampled frame downsized to DETECT_WIDTH (motion reuses
    them instead of decoding the file again). With `thumb_dir`, each keyframe gets a JPEG `<thumb_prefix>/<milliseconds>.jpg`.
    """
    if max_gap <= 0 or sample_fps <= 0:
        raise ValueError("max_gap and sample_fps must be positive")
    # Sample at least twice per max_gap so the gap can be honoured.
    sample_fps = max(sample_fps, 2.0 / max_gap)
    step = 1.0 / sample_fps
    # Each sample is decided once the next one has been read, so the max_gap rule knows when
    # the next keyframe could come and takes the latest sample that keeps the gap (a 5 s gap
    # gives keyframes 5 s apart, not 4.75). At the end of the file, where no next sample
    # comes, its time is predicted: samples are the first decoded frame at or after each grid
    # time, so the next one comes at most a grid step plus one source frame later; 1.5 steps
    # covers any source with at least 2 frames per step. Sparser sources (every frame
    # sampled, or variable frame rate with gaps) use the recent spacing of their frames.
    spacing: deque[float] = deque(maxlen=4)
    det = make_detector(detector, sample_fps, min_shot, threshold)
    lag = max(1, int(getattr(det, "event_buffer_length", 0) or 0))
    pending: deque[Frame] = deque()
    cuts: set[int] = set()
    blank: set[int] = set()
    state = {"shot": 0, "last": None, "first": None, "postponed": None, "emitted": 0}

    def decide(frame: Frame, nxt: Frame | None, force: bool = False) -> Keyframe | None:
        last = state["last"]
        next_time = (nxt.time if nxt is not None
                     else frame.time + max(1.5 * step, 1.2 * max(spacing, default=0.0)))
        if state["first"] is None:
            state["first"] = frame
        if frame.index in cuts and last is not None:
            state["shot"] += 1
            reason = "cut"
        elif last is None:
            reason = "start"
        elif state["postponed"]:
            reason = state["postponed"]
        elif next_time > last + max_gap + 1e-6:  # the next sample would be too late
            reason = "interval"
        else:
            return None
        # A black or blank frame makes a useless keyframe (fades, the black first frame of
        # many files): wait for the next picture, unless max_gap would be broken.
        anchor = last if last is not None else state["first"].time
        if frame.index in blank and not force and next_time <= anchor + max_gap + 1e-6:
            state["postponed"] = reason
            return None
        state["postponed"] = None
        state["last"] = frame.time
        state["emitted"] += 1
        kf = Keyframe(frame.time, state["shot"], reason, frame.image)
        if thumb_dir is not None:
            name = f"{int(round(frame.time * 1000)):09d}.jpg"
            kf.thumbnail = write_thumbnail(frame.image, Path(thumb_dir),
                                           f"{thumb_prefix}/{name}" if thumb_prefix else name,
                                           width=thumb_width)
        return kf

    last_frame = None
    for frame in sampled_frames(path, sample_fps, backend=backend):
        if progress is not None:
            progress(frame.time)
        if last_frame is not None:
            spacing.append(frame.time - last_frame.time)
        last_frame = frame
        small = frame.small()
        if on_frame is not None:
            on_frame(frame.time, small)
        if is_blank(small):
            blank.add(frame.index)
        for tc in det.process_frame(_timecode(frame.index, sample_fps), small):
            cuts.add(int(tc.frame_num))
        pending.append(frame)
        while len(pending) > lag:
            kf = decide(pending.popleft(), pending[0])
            if kf is not None:
                yield kf
    if last_frame is not None and hasattr(det, "post_process"):
        for tc in det.post_process(_timecode(last_frame.index, sample_fps)) or ():
            cuts.add(int(tc.frame_num))
    while pending:
        kf = decide(pending.popleft(), pending[0] if pending else None)
        if kf is not None:
            yield kf
    if state["emitted"] == 0 and state["first"] is not None:   # all blank: keep one anyway
        state["last"] = None
        kf = decide(state["first"], None, force=True)
        if kf is not None:
            yield kf


def detect_cuts(path: str | os.PathLike, *, sample_fps: float = DEFAULT_SAMPLE_FPS,
                detector: str = "content", min_shot: float = DEFAULT_MIN_SHOT,
                threshold: float | None = None, backend: str = "auto") -> list[float]:
    """Times (s) of the first sampled frame after each detected cut."""
    det = make_detector(detector, sample_fps, min_shot, threshold)
    times: dict[int, float] = {}
    cuts: list[int] = []
    last = None
    for frame in sampled_frames(path, sample_fps, backend=backend):
        times[frame.index] = frame.time
        last = frame
        cuts += [int(tc.frame_num) for tc in
                 det.process_frame(_timecode(frame.index, sample_fps), frame.small())]
    if last is not None and hasattr(det, "post_process"):
        cuts += [int(tc.frame_num) for tc in
                 det.post_process(_timecode(last.index, sample_fps)) or ()]
    return [times[i] for i in sorted(set(cuts)) if i in times]
