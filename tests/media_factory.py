"""Real media made at test time with ffmpeg and espeak-ng.

Plain functions (not fixtures) so any test module can import them. Every file is
short (a few seconds, 160x120 video) so the suite stays fast.
"""
from __future__ import annotations

import os
import random
import subprocess
import tempfile
import wave
from pathlib import Path

DEFAULT_SECONDS = 3.0
SIZE = "160x120"
FPS = 15

# extension -> (video codec args, audio codec args); None = the container holds no video.
CODECS: dict[str, tuple[list[str] | None, list[str]]] = {
    "mp4": (["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], ["-c:a", "aac", "-b:a", "64k"]),
    "mov": (["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], ["-c:a", "aac", "-b:a", "64k"]),
    "mkv": (["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], ["-c:a", "libopus", "-b:a", "32k"]),
    # lag-in-frames 0 + one thread: libvpx otherwise spends ~2 s on a 2 s clip
    "webm": (["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0",
              "-threads", "1", "-b:v", "200k"],
             ["-c:a", "libopus", "-b:a", "32k"]),
    "avi": (["-c:v", "mpeg4", "-q:v", "5"], ["-c:a", "pcm_s16le"]),
    "mp3": (None, ["-c:a", "libmp3lame", "-b:a", "64k"]),
    "m4a": (None, ["-c:a", "aac", "-b:a", "64k"]),
    "wav": (None, ["-c:a", "pcm_s16le"]),
    "flac": (None, ["-c:a", "flac"]),
    "ogg": (None, ["-c:a", "libvorbis", "-q:a", "2"]),
    "opus": (None, ["-c:a", "libopus", "-b:a", "32k"]),
}
AUDIO_EXTS = {e for e, (v, _) in CODECS.items() if v is None}
VIDEO_EXTS = set(CODECS) - AUDIO_EXTS


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr[-2000:]}")


def speech_wav(path, text: str, voice: str = "en", speed: int = 150) -> Path:
    """Synthesise `text` to a mono WAV (22.05 kHz) with espeak-ng."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text])
    return path


def wav_seconds(path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def make_media(path, *, text: str | None = None, video: bool = True, audio: bool = True,
               seconds: float | None = None, voice: str = "en") -> Path:
    """Make a real file; the container and codecs follow the extension (see CODECS).

    Audio is espeak speech of `text` if given, else a 440 Hz sine. Without `seconds`
    the length is the speech length (text) or DEFAULT_SECONDS. Audio-only extensions
    (mp3, m4a, wav, flac, ogg, opus) ignore `video`.
    """
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    vargs, aargs = CODECS[ext]
    video = video and vargs is not None
    if not (video or audio):
        raise ValueError("need audio or video")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        inputs: list[str] = []
        if text is not None and audio:
            wav = speech_wav(Path(tmp) / "speech.wav", text, voice=voice)
            if seconds is None:
                seconds = wav_seconds(wav)
            # apad so a `seconds` longer than the speech still gets audio to the end
            inputs += ["-i", str(wav)]
            afilter = ["-af", "apad"]
        else:
            afilter = []
        seconds = seconds or DEFAULT_SECONDS
        if audio and text is None:
            inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
        if video:
            inputs += ["-f", "lavfi", "-i", f"testsrc=size={SIZE}:rate={FPS}:duration={seconds}"]
        cmd = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *inputs]
        if video:
            cmd += vargs
        else:
            cmd += ["-vn"]
        if audio:
            cmd += aargs + afilter
        cmd += ["-t", f"{seconds:.3f}", str(path)]
        _run(cmd)
    return path


# ---- broken files -----------------------------------------------------------------

def make_empty(path) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def make_text_as_media(path) -> Path:
    """A text file with a media name (e.g. notes.mp4)."""
    path = Path(path)
    path.write_text("These are meeting notes, not a video.\n" * 40)
    return path


def make_image(path) -> Path:
    """A still image (.png/.jpg) made by ffmpeg."""
    path = Path(path)
    _run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
          f"testsrc=size={SIZE}:rate=1", "-frames:v", "1", str(path)])
    return path


def make_truncated(src, dst, fraction: float = 0.5) -> Path:
    """Copy the first `fraction` of src's bytes, like an interrupted copy/download."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def _payload_start(data: bytes) -> int:
    """Offset where the coded audio/video begins (just after the container header)."""
    if data[4:8] == b"ftyp" and (i := data.find(b"mdat")) > 0:
        return i + 12                          # mdat box header (+ a few bytes of sample data)
    if data[:4] == b"\x1aE\xdf\xa3" and (i := data.find(b"\x1f\x43\xb6\x75")) > 0:
        return i + 32                          # first Matroska Cluster, past its timestamp
    return min(1024, len(data) // 8)


def make_garbled(src, dst, seed: int = 0) -> Path:
    """Keep the container header and the last 4 KiB (mp4 moov / mkv cues); random bytes between.

    The file still opens but its packets do not decode (`corrupt`), or the demuxer loses
    sync and finds no data (`truncated`). Only meaningful for compressed formats: random
    PCM in a WAV is just noise.
    """
    data = bytearray(Path(src).read_bytes())
    head, tail = _payload_start(data), 4096
    n = max(0, len(data) - head - tail)
    data[head:head + n] = random.Random(seed).randbytes(n)
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def make_unsupported_codec(dst, seconds: float = 2.0) -> Path:
    """An MKV whose only audio stream's codec id is A_OPUX (no decoder exists)."""
    dst = Path(dst)
    tmp = dst.with_name(dst.stem + ".tmp.mkv")
    make_media(tmp, video=False, seconds=seconds)
    data = tmp.read_bytes()
    assert data.count(b"A_OPUS") == 1
    dst.write_bytes(data.replace(b"A_OPUS", b"A_OPUX"))
    os.remove(tmp)
    return dst


def make_slideshow(path, photos, *, text: str | None = None, seconds_each: float = 4.0,
                   size: str = "320x240") -> Path:
    """An mp4 showing each photo for `seconds_each` (hard cuts between them), with espeak
    speech of `text` (or silence) as its sound track."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    total = seconds_each * len(photos)
    w, h = size.split("x")
    with tempfile.TemporaryDirectory() as tmp:
        inputs: list[str] = []
        for photo in photos:
            inputs += ["-loop", "1", "-framerate", str(FPS), "-t", f"{seconds_each:.3f}",
                       "-i", str(photo)]
        n = len(photos)
        scale = "".join(f"[{i}:v]scale={w}:{h}:force_original_aspect_ratio=decrease,"
                        f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={FPS}[v{i}];"
                        for i in range(n))
        graph = scale + "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v]"
        if text is not None:
            wav = speech_wav(Path(tmp) / "speech.wav", text)
            inputs += ["-i", str(wav)]
        else:
            inputs += ["-f", "lavfi", "-i", f"anullsrc=r=22050:cl=mono:d={total}"]
        cmd = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *inputs,
               "-filter_complex", graph, "-map", "[v]", "-map", f"{n}:a", "-af", "apad",
               *CODECS["mp4"][0], *CODECS["mp4"][1], "-t", f"{total:.3f}", str(path)]
        _run(cmd)
    return path
