"""Streaming audio decoding for the ASR engines (PyAV; no ffmpeg program needed).

Whole-file decoding costs 64 kB per second of audio (16 kHz float32: a 3-hour file is
690 MB), so long files are decoded and transcribed window by window. Windows are cut in
the quietest 200 ms inside the last few seconds before the window limit (at its quietest
20 ms), so a cut rarely falls inside a word and prefers a real pause to the momentary
silence of a stop consonant.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import av
import numpy as np

SAMPLE_RATE = 16000
_FRAME = SAMPLE_RATE // 50  # 20 ms energy frames used to choose a cut point
_PAUSE_FRAMES = 10  # a cut goes into the quietest run of this many frames (200 ms)


def probe_duration(path: str | os.PathLike) -> float:
    """Duration of the audio stream decode_blocks reads, in seconds (0.0 when the container
    does not say)."""
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = _audio_stream(container, path)
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base
    return 0.0


def _audio_stream(container, path):
    """The first audio stream that has a decoder."""
    stream = next((s for s in container.streams.audio if s.codec_context is not None), None)
    if stream is None:
        raise ValueError(f"{path}: no audio stream that can be decoded")
    return stream


def _frames(container, stream) -> Iterator[av.AudioFrame]:
    """Decoded frames of `stream`. A packet that does not decode is skipped rather than
    losing the whole file; a demuxer error ends the data (the demuxer cannot go on)."""
    try:
        for packet in container.demux(stream):  # its last, empty packet flushes the decoder
            try:
                yield from packet.decode()
            except av.error.InvalidDataError:
                continue
    except av.error.InvalidDataError:
        return


def decode_blocks(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Yield the first decodable audio stream as mono float32 blocks at `sample_rate`, in
    order; a block is one decoded frame's worth (a few thousand samples), so memory stays
    bounded however long the file is.

    The input format may change mid-stream (a broadcast recording switching from mono
    48 kHz to stereo 44.1 kHz, or 2.0 to 5.1): FFmpeg's resampler is set up for the first
    frame it sees (PyAV raises "Frame does not match AudioResampler setup" for another), so
    each change flushes the old resampler and starts a new one.
    """
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = _audio_stream(container, path)
        resampler, setup = None, None
        for frame in _frames(container, stream):
            this = (frame.format.name, frame.layout.name, frame.sample_rate)
            if this != setup:
                if resampler is not None:
                    yield from _arrays(resampler.resample(None))  # the old format's tail
                resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
                setup = this
            yield from _arrays(resampler.resample(frame))
        if resampler is not None:
            yield from _arrays(resampler.resample(None))


def _arrays(frames) -> Iterator[np.ndarray]:
    for frame in frames:
        yield frame.to_ndarray().reshape(-1)


def decode_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Whole file as one array (for short files and tests; long ones: decode_blocks)."""
    blocks = list(decode_blocks(path, sample_rate))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def windows(
    blocks: Iterable[np.ndarray],
    window_s: float = 600.0,
    search_s: float = 5.0,
    sample_rate: int = SAMPLE_RATE,
    start_s: float = 0.0,
) -> Iterator[tuple[float, np.ndarray]]:
    """Regroup blocks into (offset_seconds, samples) windows of at most `window_s`,
    from `start_s` on (the samples before it are dropped, and offsets stay file time).

    Memory stays at about one window plus one block, whatever the input length.
    """
    limit = int(window_s * sample_rate)
    search = min(int(search_s * sample_rate), limit // 2)
    pending: list[np.ndarray] = []
    size = 0
    emitted = int(round(start_s * sample_rate))
    if emitted > 0:
        blocks = _skipped(blocks, emitted)
    for block in blocks:
        pending.append(np.asarray(block, dtype=np.float32))
        size += len(block)
        while size >= limit:
            # A single big block (an in-memory array) is sliced as views, not copied.
            buf = pending[0] if len(pending) == 1 else np.concatenate(pending)
            cut = _quiet_cut(buf[limit - search: limit]) + limit - search
            yield emitted / sample_rate, buf[:cut]
            emitted += cut
            pending, size = [buf[cut:]], len(buf) - cut
    if size:
        yield emitted / sample_rate, pending[0] if len(pending) == 1 else np.concatenate(pending)


def _skipped(blocks: Iterable[np.ndarray], n: int) -> Iterator[np.ndarray]:
    """The blocks less their first `n` samples (decoding from the start is exact where a
    container seek is not, and audio decodes at hundreds of times real time)."""
    for block in blocks:
        if n >= len(block):
            n -= len(block)
            continue
        yield block[n:] if n else block
        n = 0


def _quiet_cut(region: np.ndarray) -> int:
    """Index (in region) of a cut point: the start of the quietest 20 ms frame inside the
    quietest 200 ms of the region.

    The lowest single frame is often a stop consonant or a zero-crossing inside speech
    (synthetic speech has digital silence between words); a 200 ms run is a real pause.
    """
    n = len(region) // _FRAME
    if n == 0:
        return len(region)
    energy = np.square(region[: n * _FRAME].reshape(n, _FRAME).astype(np.float64)).sum(axis=1)
    span = min(_PAUSE_FRAMES, n)
    runs = np.convolve(energy, np.ones(span), mode="valid")  # energy of each span-frame run
    start = int(np.argmin(runs))
    return (start + int(np.argmin(energy[start: start + span]))) * _FRAME
