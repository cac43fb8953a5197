"""The one audio decoder (models/audio_stream.py): real files from every container, real
format changes mid-stream, decoded by PyAV."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from models.audio_stream import SAMPLE_RATE, decode_audio, decode_blocks
from tests.media_factory import CODECS, make_media, speech_wav, wav_seconds

SECONDS = 2.0


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """One 2-second sine file per container, made once for the module."""
    root = tmp_path_factory.mktemp("media")
    return {ext: make_media(root / f"clip.{ext}", seconds=SECONDS) for ext in CODECS}


def make_format_change_ts(path: Path, texts: tuple[str, str], codec: str = "mp2") -> tuple[Path, float]:
    """One MPEG-TS whose audio switches from mono 48 kHz to stereo 44.1 kHz halfway, as a
    broadcast recording does at a programme change: espeak-ng speech of texts[0] then
    texts[1], each encoded on its own and joined with FFmpeg's concat protocol (the second
    part's timestamps continue the first's). Returns (path, seconds the first part lasts)."""
    path = Path(path)
    parts = []
    offset = 0.0
    first = 0.0
    for i, (text, rate, channels) in enumerate([(texts[0], 48000, 1), (texts[1], 44100, 2)]):
        wav = speech_wav(path.parent / f"{path.stem}-{i}.wav", text)
        parts.append(path.parent / f"{path.stem}-{i}.ts")
        subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(wav),
                        "-ar", str(rate), "-ac", str(channels), "-c:a", codec,
                        "-output_ts_offset", f"{offset:.6f}", str(parts[-1])], check=True)
        offset += wav_seconds(wav)
        first = first or offset
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error",
                    "-i", "concat:" + "|".join(map(str, parts)), "-c", "copy", str(path)], check=True)
    return path, first


@pytest.mark.parametrize("ext", ["wav", "flac", "mkv", "mp4", "mp3", "ogg", "opus", "webm", "avi"])
def test_blocks_add_up_in_every_container(media, ext):
    blocks = list(decode_blocks(media[ext]))
    assert blocks and all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    total = sum(b.size for b in blocks)
    if ext in ("wav", "flac", "avi"):                  # lossless: exact
        assert total == SAMPLE_RATE * SECONDS
    else:                                              # codec padding/priming
        assert abs(total - SAMPLE_RATE * SECONDS) <= SAMPLE_RATE * 0.05
    whole = decode_audio(media[ext])
    assert np.array_equal(np.concatenate(blocks), whole)
    assert 0.05 < np.abs(whole).max() <= 1.0          # the sine is really there


def test_blocks_are_small_and_lazy_at_any_rate(media):
    blocks = decode_blocks(media["wav"], sample_rate=8000)
    first = next(blocks)                               # a generator: a block before the rest
    assert 0 < first.size <= 8000                      # bounded: a frame's worth, not the file
    assert first.size + sum(b.size for b in blocks) == 8000 * SECONDS


@pytest.mark.parametrize("codec", ["mp2", "aac"])
def test_a_format_change_mid_stream_decodes_whole(tmp_path, codec):
    """Mono 48 kHz -> stereo 44.1 kHz inside one .ts: every sample of both halves comes out,
    at the one output rate (PyAV's resampler refuses a frame unlike its first)."""
    path, _ = make_format_change_ts(tmp_path / "broadcast.ts", (
        "The weather was cold this morning, so we stayed inside.",
        "Later in the afternoon we went for a long walk along the river."), codec)
    truth = sum(wav_seconds(tmp_path / f"broadcast-{i}.wav") for i in (0, 1))
    audio = decode_audio(path)
    assert audio.size / SAMPLE_RATE == pytest.approx(truth, abs=0.1)
    # both halves carry speech: no half was dropped or replaced by silence
    half = int(wav_seconds(tmp_path / "broadcast-0.wav") * SAMPLE_RATE)
    assert np.abs(audio[:half]).max() > 0.05 and np.abs(audio[half:]).max() > 0.05


def test_a_file_without_audio_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no audio"):
        list(decode_blocks(make_media(tmp_path / "v.mp4", audio=False, seconds=1)))
