"""Where a recording holds speech: the silero VAD that speech recognition uses (bundled
with faster-whisper, runs offline on onnxruntime, same options as models.asr), over the
first audio stream decoded in windows, so memory stays flat however long the file is.
Much cheaper than recognition: it says where someone speaks, not what they say. The
network runs through models.silero_vad, whose calls all have one shape (faster-whisper's
own call grows memory with every window of another length)."""
from __future__ import annotations

import os
from typing import Callable

from . import audio_stream
from .asr import VAD_OPTIONS, WINDOW_S

SAMPLE_RATE = audio_stream.SAMPLE_RATE


def speech_regions(path: str | os.PathLike, *, check: Callable[[], None] = lambda: None
                   ) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch of speech, in order. `check` is called
    between windows (it may raise to cancel)."""
    from faster_whisper.vad import VadOptions

    from .silero_vad import speech_timestamps
    options = VadOptions(**VAD_OPTIONS)
    out: list[tuple[float, float]] = []
    parts = audio_stream.windows(audio_stream.decode_blocks(path), WINDOW_S)
    try:
        for offset, samples in parts:
            check()
            for ts in speech_timestamps(samples, options):
                out.append((offset + ts["start"] / SAMPLE_RATE, offset + ts["end"] / SAMPLE_RATE))
    finally:
        parts.close()
    return out
