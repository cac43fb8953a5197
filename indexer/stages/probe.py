"""Probe a media file cheaply and explain, in plain words, why it cannot be used.

`probe()` opens the container with PyAV, decodes a few frames at the start of each
audio/video stream and checks that the packets really reach the declared end (a
seek near the end, never a full decode), so a three-hour file probes in well under
a second. Everything that can go wrong is raised as a `MediaError` whose `code` is
machine-readable and whose `message` can be shown to a non-technical user.
"""
from __future__ import annotations

import os
import re
import struct
from dataclasses import asdict, dataclass, field
from typing import Callable

import av
import av.logging

CODES = ("empty", "not_media", "corrupt", "truncated", "unreadable", "vanished",
         "unsupported_codec", "no_streams")

START_PACKETS = 600        # demux budget for the decode check at the start
STREAM_PACKETS = 96        # most packets decoded per stream (failing packets are cheap)
WANT_FRAMES = {"video": 2, "audio": 4}
END_WINDOW = 2.0           # seconds before the declared end where the end check seeks to
END_PACKETS = 2000         # demux budget for the end check (a few frames decoded, rest demuxed)


class MediaError(Exception):
    """A file that cannot be indexed; `str(exc)` is the user-facing message."""

    def __init__(self, code: str, message: str, path: str | None = None):
        assert code in CODES, code
        super().__init__(message)
        self.code, self.message, self.path = code, message, path

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):                      # picklable across worker processes
        return type(self), (self.code, self.message, self.path)


@dataclass
class StreamInfo:
    index: int
    kind: str                          # audio / video / subtitle / data / image (cover art)
    codec: str | None
    duration: float | None = None
    language: str | None = None
    decodable: bool = True
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    rotation: int = 0                  # display matrix, degrees counter-clockwise in [0, 360):
                                       # show decoded frames as np.rot90(img, rotation // 90)
    sample_rate: int | None = None
    channels: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ProbeResult:
    path: str
    container: str
    duration: float
    streams: list[StreamInfo]
    size: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def has_audio(self) -> bool:
        return any(s.kind == "audio" and s.decodable for s in self.streams)

    @property
    def has_video(self) -> bool:
        return any(s.kind == "video" and s.decodable for s in self.streams)

    @property
    def kind(self) -> str:
        return "audio+video" if self.has_audio and self.has_video else (
            "video" if self.has_video else "audio")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(has_audio=self.has_audio, has_video=self.has_video, kind=self.kind)
        return d


# ---- helpers --------------------------------------------------------------------------

def fmt_time(seconds: float) -> str:
    s = int(round(max(0.0, seconds)))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _truncated(path: str, ends_at: float | None, total: float | None) -> MediaError:
    """`ends_at` None: the file stops before any audio/video data."""
    where = ("before any audio or video begins" if ends_at is None else
             f"at {fmt_time(ends_at)}" + (f" of {fmt_time(total)}" if total else ""))
    return MediaError("truncated", f"The file is truncated: it ends {where} — "
                      "the copy or download was probably interrupted.", path)


_IMAGE_MAGIC = [(b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"),
                (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP")]
_IMAGE_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF"}


def _sniff_image(head: bytes) -> str | None:
    for magic, name in _IMAGE_MAGIC:
        # "BM" is only two bytes: also require BMP's reserved header fields to be zero
        if head.startswith(magic) and (name != "BMP" or head[6:10] == b"\0\0\0\0"):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        return _IMAGE_BRANDS.get(head[8:12])
    return None


_MEDIA_MAGIC = (b"OggS", b"fLaC", b"\x1aE\xdf\xa3", b"RIFF", b"ID3", b"FLV", b"FORM",
                b"0&\xb2u\x8ef\xcf\x11", b".RMF", b"\x00\x00\x01\xba", b"#!AMR")


def _sniff_media(head: bytes) -> bool:
    """True when the header bytes are those of a known audio/video container."""
    return head.startswith(_MEDIA_MAGIC) or head[4:8] == b"ftyp"


def _image_error(path: str, name: str) -> MediaError:
    return MediaError("not_media", f"This is an image ({name}), not an audio or video file.", path)


def _isobmff_incomplete(path: str, size: int) -> bool:
    """Walk the top-level MP4/MOV boxes: a box running past EOF or no 'moov' means cut short."""
    pos, seen_moov = 0, False
    with open(path, "rb") as f:
        while pos + 8 <= size:
            f.seek(pos)
            n, typ = struct.unpack(">I4s", f.read(8))
            if n == 1:
                n = struct.unpack(">Q", f.read(8))[0]
            elif n == 0:                       # "extends to end of file" (unfinished recording)
                n = size - pos
            if n < 8 or pos + n > size:
                return True
            seen_moov |= typ == b"moov"
            pos += n
    return not seen_moov


def _riff_missing_bytes(head: bytes, size: int) -> int:
    """WAV/AVI declare their total size in the RIFF header; >0 means bytes are missing."""
    if head[:4] != b"RIFF" or len(head) < 8:
        return 0
    declared = struct.unpack("<I", head[4:8])[0]
    if declared in (0, 0xFFFFFFFF):            # streamed/unknown size
        return 0
    missing = declared + 8 - size
    # some writers get the size slightly wrong; only a real shortfall counts
    return missing if missing > max(4096, size // 200) else 0


def _ogg_has_eos(path: str, size: int) -> bool:
    """A complete Ogg stream ends with a page flagged end-of-stream (header byte 5, bit 2)."""
    with open(path, "rb") as f:
        f.seek(max(0, size - 65536))
        tail = f.read()
    i = tail.rfind(b"OggS")
    return i >= 0 and len(tail) > i + 5 and bool(tail[i + 5] & 0x04)


# demuxers whose duration is a bitrate-based estimate, not a declared total
_ESTIMATED_FORMATS = {"aac", "ac3", "eac3", "dts", "truehd", "mlp", "h264", "hevc", "m4v",
                      "mpegvideo", "mpeg", "mpegts", "loas", "latm"}


def _duration_is_estimate(fmt: str, path: str, head: bytes) -> bool:
    """True when FFmpeg guessed the duration from the bitrate (so a short end is no evidence
    of truncation). For MP3 that is when no Xing/Info/VBRI header declares the frame count."""
    if fmt in _ESTIMATED_FORMATS:
        return True
    if fmt != "mp3":
        return False
    offset = 0
    if head[:3] == b"ID3" and len(head) >= 10:  # skip the ID3v2 tag (syncsafe size)
        offset = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
    with open(path, "rb") as f:
        f.seek(offset)
        first = f.read(4096)
    return not any(tag in first for tag in (b"Xing", b"Info", b"VBRI"))


def _undecodable_codec_names(path: str, indices: list[int]) -> dict[int, str]:
    """Stream index -> codec name for streams PyAV has no decoder for, read from FFmpeg's log.

    PyAV exposes no codec id when there is no decoder, but the demuxer logs it. Logging is
    process-global, so it is switched on only for this rare re-open.
    """
    names: dict[int, str] = {}
    old = av.logging.get_level()
    av.logging.set_level(av.logging.VERBOSE)
    try:
        with av.logging.Capture() as logs:
            av.open(path, metadata_errors="replace").close()
    except Exception:
        return names
    finally:
        av.logging.set_level(old)
    unknown = [m.group(1) for _, _, msg in logs
               for m in [re.search(r"Unknown/unsupported AVCodecID (\S+?)\.?\s*$", msg)] if m]
    for _, _, msg in logs:
        m = re.search(r"codec parameters for stream (\d+) \(\w+: (\w+)", msg)
        if m and m.group(2) != "none":
            names[int(m.group(1))] = m.group(2)
    # the matroska "unknown codec id" lines carry no stream number: assign them in order
    missing = [i for i in indices if i not in names]
    for i, name in zip(missing, unknown):
        names[i] = name
    return names


def _stream_info(s) -> StreamInfo:
    kind = s.type if s.type in ("audio", "video", "subtitle") else "data"
    if kind == "video" and s.disposition & av.stream.Disposition.attached_pic:
        kind = "image"                         # cover art in an MP3/M4A/FLAC, not a video
    cc = s.codec_context
    info = StreamInfo(
        index=s.index, kind=kind, codec=cc.name if cc else None, decodable=cc is not None,
        duration=float(s.duration * s.time_base) if s.duration and s.time_base else None,
        language=s.metadata.get("language") or s.metadata.get("LANGUAGE") or None)
    if info.language in ("und", ""):
        info.language = None
    if kind == "video" and cc:
        info.width, info.height = cc.width or None, cc.height or None
        rate = s.average_rate or s.guessed_rate or s.base_rate
        info.fps = round(float(rate), 3) if rate else None
        try:
            # the legacy "rotate" tag is clockwise; keep ffmpeg's display-matrix convention
            info.rotation = -int(float(s.metadata.get("rotate", 0))) % 360
        except ValueError:
            pass
    elif kind == "audio" and cc:
        info.sample_rate, info.channels = cc.sample_rate or None, cc.channels or None
    return info


# ---- the checks -----------------------------------------------------------------------

class _DecodeCheck:
    """Decode up to a few frames per stream, counting packets, frames and failures."""

    def __init__(self, c, kinds: dict[int, str]):
        self.c, self.kinds = c, kinds
        self.stats = {i: [0, 0, 0] for i in kinds}   # packets, frames, errors
        self.rotation: dict[int, int] = {}

    def done(self, i: int) -> bool:
        pkts, frames, errors = self.stats[i]
        # keep going while failures outnumber frames: a few bad packets before the first
        # keyframe are normal (a recording started mid-stream), mostly bad ones are not
        return frames >= max(WANT_FRAMES[self.kinds[i]], errors) or pkts >= STREAM_PACKETS

    def feed(self, pkt) -> None:
        i = pkt.stream.index
        if i in self.stats and pkt.size and not self.done(i):
            self.stats[i][0] += 1
            self._decode(i, pkt)

    def _decode(self, i: int, pkt) -> None:
        try:
            frames = self.c.streams[i].codec_context.decode(pkt)
        except av.error.FFmpegError:
            self.stats[i][2] += 1
            return
        self.stats[i][1] += len(frames)
        if frames and self.kinds[i] == "video" and i not in self.rotation:
            self.rotation[i] = int(getattr(frames[0], "rotation", 0) or 0) % 360  # display matrix

    def finish(self, path: str, where: str) -> None:
        """Drain decoder delay, then raise `corrupt` for a stream whose packets do not decode."""
        for i, st in self.stats.items():
            if st[0] and not self.done(i):
                self._decode(i, None)
        for i, (pkts, frames, errors) in self.stats.items():
            if pkts and (not frames or errors > frames):
                raise MediaError("corrupt", f"The file is damaged: its {self.kinds[i]} data "
                                 f"{where}cannot be decoded (it was probably corrupted on disk or "
                                 "during a transfer).", path)


def _check_start(c, path: str, streams: dict[int, StreamInfo]) -> float:
    """Decode the first frames of every audio/video stream. Returns the furthest packet end seen."""
    check = _DecodeCheck(c, {i: s.kind for i, s in streams.items()})
    last_end, start = 0.0, (c.start_time or 0) / 1e6
    try:
        for n, pkt in enumerate(c.demux([c.streams[i] for i in streams])):
            if n >= START_PACKETS or all(check.done(i) for i in streams):
                break
            last_end = max(last_end, _packet_end(pkt, start) or 0.0)
            check.feed(pkt)
    except av.error.FFmpegError:
        pass                                   # demuxing stopped early; judged below
    if not any(st[0] for st in check.stats.values()):
        raise _truncated(path, None, None)
    check.finish(path, "")
    for i, rot in check.rotation.items():
        if rot and not streams[i].rotation:
            streams[i].rotation = rot
    return last_end


def _packet_end(pkt, start: float) -> float | None:
    ts = pkt.pts if pkt.pts is not None else pkt.dts
    if not pkt.size or ts is None or pkt.time_base is None:
        return None
    return float((ts + (pkt.duration or 0)) * pkt.time_base) - start


def _last_packet_end(c, at: float, start: float, check: _DecodeCheck | None = None) -> float | None:
    """Seek to `at` seconds and demux every stream; the furthest packet end seen, or None.
    With `check`, also decode a few frames there."""
    try:
        c.seek(int((at + start) * 1e6), backward=True)
    except av.error.FFmpegError:
        return None
    if check:
        for i in check.stats:
            c.streams[i].codec_context.flush_buffers()
    best = None
    try:
        for n, pkt in enumerate(c.demux()):
            if n >= END_PACKETS:
                break
            end = _packet_end(pkt, start)
            if end is not None:
                best = end if best is None else max(best, end)
                if check:
                    check.feed(pkt)
    except av.error.FFmpegError:
        pass
    return best


def _check_end(c, path: str, kinds: dict[int, str], duration: float, reached: float,
               estimated: bool) -> float:
    """Raise `truncated` when the packets stop well before the declared duration, `corrupt`
    when the frames there do not decode. Returns the duration (corrected when it was only
    a bitrate estimate)."""
    start = (c.start_time or 0) / 1e6
    tol = max(0.75, 0.03 * duration)
    check = _DecodeCheck(c, kinds)
    # all streams count: a subtitle or data track may legitimately run past the audio/video
    end = _last_packet_end(c, max(0.0, duration - END_WINDOW), start, check)
    if end is not None and end >= duration - tol:
        check.finish(path, "near its end ")
        return duration
    if end is None:
        # nothing after the seek: bisect for where the data really stops (cheap seeks)
        lo, hi = reached, duration
        for _ in range(10):
            if hi - lo < tol:
                break
            mid = (lo + hi) / 2
            got = _last_packet_end(c, mid, start)
            if got is not None and got > lo:
                lo = got
            else:
                hi = mid
        end = lo
    if end >= duration - tol:
        return duration
    if estimated:
        return end
    raise _truncated(path, end, duration)


# ---- public API -----------------------------------------------------------------------

_VANISHED = "The file disappeared before it could be processed (moved or deleted during the batch)."
_NO_PERMISSION = "You do not have permission to read this file."


def _open(path: str):
    """av.open with FFmpeg's failures translated into MediaError."""
    try:
        return av.open(path, metadata_errors="replace")
    except FileNotFoundError:                  # av.error.* subclass the builtin OSErrors
        raise MediaError("vanished", _VANISHED, path) from None
    except PermissionError:
        raise MediaError("unreadable", _NO_PERMISSION, path) from None
    except IsADirectoryError:
        raise MediaError("unreadable", "This is a folder, not a file.", path) from None
    except av.error.EOFError:                  # headers cut short
        raise _truncated(path, None, None) from None
    except av.error.InvalidDataError:
        with open(path, "rb") as f:
            head = f.read(64)
        if not head:
            raise MediaError("empty", "The file is empty (0 bytes).", path) from None
        if head[4:8] == b"ftyp" and _isobmff_incomplete(path, os.path.getsize(path)):
            raise MediaError("truncated", "The file is incomplete: the index that MP4/MOV files "
                             "store at the end is missing — the copy, download or recording was "
                             "probably interrupted.", path) from None
        if _sniff_media(head):
            raise MediaError("corrupt", "The file is damaged: it looks like a media file but its "
                             "structure cannot be read.", path) from None
        raise MediaError("not_media", "This is not an audio or video file: no decoder recognises "
                         "its contents.", path) from None
    except av.error.FFmpegError:
        raise MediaError("corrupt", "The file could not be opened: its structure is damaged.",
                         path) from None

def probe(path) -> ProbeResult:
    """Describe a media file, or raise MediaError explaining why it cannot be used."""
    path = os.fspath(path)
    try:
        size = os.stat(path).st_size
        if os.path.isdir(path):
            raise IsADirectoryError(path)
        with open(path, "rb") as f:
            head = f.read(64)
    except FileNotFoundError:
        raise MediaError("vanished", _VANISHED, path) from None
    except PermissionError:
        raise MediaError("unreadable", _NO_PERMISSION, path) from None
    except IsADirectoryError:
        raise MediaError("unreadable", "This is a folder, not a file.", path) from None
    except OSError as e:
        raise MediaError("unreadable", f"The file could not be read ({e.strerror or e}).", path) from None
    if size == 0:
        raise MediaError("empty", "The file is empty (0 bytes).", path)
    if image := _sniff_image(head):
        raise _image_error(path, image)

    c = _open(path)
    with c:
        fmt = c.format.name
        if fmt == "image2" or fmt.endswith("_pipe") or fmt == "gif":
            raise _image_error(path, (c.streams[0].codec_context.name.upper()
                                      if c.streams and c.streams[0].codec_context else "image"))
        infos = [_stream_info(s) for s in c.streams]
        av_streams = [s for s in infos if s.kind in ("audio", "video")]
        if not av_streams:
            raise MediaError("no_streams", "The file contains no audio or video "
                             + ("(only subtitles or data)." if infos else "streams."), path)
        warnings = []
        bad = [s for s in av_streams if not s.decodable]
        if bad:
            names = _undecodable_codec_names(path, [s.index for s in bad])
            for s in bad:
                s.codec = names.get(s.index, "unknown")
                warnings.append(f"The {s.kind} stream uses a codec avindex cannot decode "
                                f"(codec '{s.codec}').")
            if len(bad) == len(av_streams):
                raise MediaError("unsupported_codec", warnings[0], path)
        usable = {s.index: s for s in av_streams if s.decodable}

        duration = (c.duration or 0) / 1e6 or max((s.duration or 0) for s in infos)
        reached = _check_start(c, path, usable)
        missing = _riff_missing_bytes(head, size)
        if missing and duration:              # FFmpeg clamps the duration to the bytes present
            raise _truncated(path, duration, duration * (size + missing) / size)
        if fmt == "ogg" and not _ogg_has_eos(path, size):
            raise _truncated(path, duration, None)
        if duration:
            duration = _check_end(c, path, {i: s.kind for i, s in usable.items()}, duration,
                                  reached, _duration_is_estimate(fmt, path, head))
        return ProbeResult(path=path, container=fmt, duration=duration, streams=infos,
                           size=size, warnings=warnings)


def stored_probe(media: dict) -> dict:
    """What `ProbeResult.to_dict()` tells the stages' `applies`, rebuilt from a media row."""
    import json
    streams = media.get("streams") or []
    if isinstance(streams, str):
        streams = json.loads(streams)
    usable = {s.get("kind") for s in streams if s.get("decodable", True)}
    return {"path": media.get("path"), "container": media.get("container"),
            "duration": media.get("duration"), "streams": streams, "kind": media.get("kind"),
            "has_audio": "audio" in usable, "has_video": "video" in usable}


class ProbeStage:
    """Reads the container and streams; the pipeline then queues the stages that apply."""

    name = "probe"
    after: tuple[str, ...] = ()        # queued by intake
    derives: tuple[str, ...] = ()      # the media row's own columns
    search_lists: tuple = ()

    def applies(self, probe: dict) -> bool:
        return True

    def run(self, media: dict, ctx) -> Callable:
        info = probe(media["path"]).to_dict()
        ctx.report(1.0)
        return lambda store: store.save_probe(media["id"], info, ())
