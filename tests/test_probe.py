import os
import pickle
import subprocess
import time

import numpy as np
import pytest

from indexer.stages.probe import MediaError, ProbeResult, probe
from models.audio_stream import decode_audio
from tests.media_factory import (AUDIO_EXTS, CODECS, VIDEO_EXTS, make_empty, make_garbled,
                                 make_image, make_media, make_text_as_media, make_truncated,
                                 make_unsupported_codec, speech_wav, wav_seconds)

SECONDS = 2.0


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """One 2-second file per container, made once for the module."""
    root = tmp_path_factory.mktemp("media")
    return {ext: make_media(root / f"clip.{ext}", seconds=SECONDS) for ext in CODECS}


def assert_readable(err: MediaError, code: str):
    assert err.code == code, (err.code, err.message)
    assert str(err) == err.message
    assert err.message[0].isupper() and err.message.endswith(".")
    for jargon in ("Errno", "AVERROR", "Traceback", "0x"):
        assert jargon not in err.message


def expect_error(path, code: str) -> MediaError:
    with pytest.raises(MediaError) as info:
        probe(path)
    assert_readable(info.value, code)
    return info.value


# ---- good files ----------------------------------------------------------------------

@pytest.mark.parametrize("ext", sorted(CODECS))
def test_every_container_probes(media, ext):
    r = probe(media[ext])
    assert isinstance(r, ProbeResult)
    assert r.kind == ("audio" if ext in AUDIO_EXTS else "audio+video")
    assert abs(r.duration - SECONDS) < 0.3, r.duration
    assert r.size == os.path.getsize(media[ext]) and not r.warnings
    audio = [s for s in r.streams if s.kind == "audio"]
    assert len(audio) == 1 and audio[0].sample_rate and audio[0].channels == 1
    if ext in VIDEO_EXTS:
        (v,) = [s for s in r.streams if s.kind == "video"]
        assert (v.width, v.height, v.rotation) == (160, 120, 0)
        assert v.fps == pytest.approx(15, abs=0.1)
    d = r.to_dict()
    assert d["kind"] == r.kind and d["streams"][0]["index"] == 0


@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm", "mov", "avi"])
def test_video_only_and_audio_only_variants(tmp_path, ext):
    v = probe(make_media(tmp_path / f"v.{ext}", audio=False, seconds=SECONDS))
    assert (v.kind, v.has_audio, v.has_video) == ("video", False, True)
    assert abs(v.duration - SECONDS) < 0.3
    a = probe(make_media(tmp_path / f"a.{ext}", video=False, seconds=SECONDS))
    assert (a.kind, a.has_audio, a.has_video) == ("audio", True, False)
    assert abs(a.duration - SECONDS) < 0.3


def test_speech_duration_matches_the_spoken_text(tmp_path):
    truth = wav_seconds(speech_wav(tmp_path / "s.wav", "The quick brown fox jumps over the lazy dog."))
    r = probe(make_media(tmp_path / "s.mp4", text="The quick brown fox jumps over the lazy dog."))
    assert r.kind == "audio+video"
    assert abs(r.duration - truth) < 0.3


def test_unicode_and_spaces_in_path(tmp_path):
    path = make_media(tmp_path / "tëst dir" / "mon fichier ✓.mkv", seconds=SECONDS)
    r = probe(path)
    assert r.path == str(path) and r.kind == "audio+video"
    assert len(decode_audio(path)) == pytest.approx(16000 * SECONDS, abs=160)


def test_rotation_from_display_matrix(media, tmp_path):
    out = tmp_path / "portrait.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(media["mp4"]),
                    "-c", "copy", "-metadata:s:v", "rotate=90", str(out)], check=True)
    (v,) = [s for s in probe(out).streams if s.kind == "video"]
    assert v.rotation in (90, 270)


def test_cover_art_does_not_make_audio_a_video(media, tmp_path):
    out = tmp_path / "song.mp3"
    jpg = make_image(tmp_path / "cover.jpg")
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(media["mp3"]),
                    "-i", str(jpg), "-map", "0", "-map", "1", "-c", "copy",
                    "-disposition:v", "attached_pic", str(out)], check=True)
    r = probe(out)
    assert r.kind == "audio" and any(s.kind == "image" for s in r.streams)


def test_three_hour_file_probes_fast(tmp_path):
    # copy-loop a 1 fps minute to 3 h (few packets, so writing is quick); probing must
    # not decode or demux it all
    clip, long = tmp_path / "minute.mkv", tmp_path / "long.mkv"
    ff = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error"]
    subprocess.run(ff + ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=1:duration=60",
                         "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", str(clip)], check=True)
    subprocess.run(ff + ["-stream_loop", "179", "-i", str(clip), "-c", "copy", str(long)], check=True)
    t = time.perf_counter()
    r = probe(long)
    assert time.perf_counter() - t < 1.5
    assert abs(r.duration - 3 * 3600) < 60
    # ... and a cut copy of it is still caught quickly
    cut = make_truncated(long, tmp_path / "cut.mkv", 0.6)
    t = time.perf_counter()
    err = expect_error(cut, "truncated")
    assert time.perf_counter() - t < 2.0
    assert "of 3:00:" in err.message


# ---- broken files --------------------------------------------------------------------

def test_empty(tmp_path):
    err = expect_error(make_empty(tmp_path / "empty.wav"), "empty")
    assert "empty" in err.message and "0 bytes" in err.message


@pytest.mark.parametrize("name", ["notes.mp4", "notes.mkv", "notes.mp3", "notes.wav"])
def test_text_with_media_extension(tmp_path, name):
    err = expect_error(make_text_as_media(tmp_path / name), "not_media")
    assert "not an audio or video file" in err.message


def test_random_bytes(tmp_path):
    (tmp_path / "noise.mkv").write_bytes(np.random.default_rng(1).bytes(5000))
    expect_error(tmp_path / "noise.mkv", "not_media")


@pytest.mark.parametrize("name", ["photo.png", "photo.jpg"])
def test_still_image(tmp_path, name):
    img = make_image(tmp_path / name)
    assert "image" in expect_error(img, "not_media").message
    renamed = tmp_path / (name + ".mp4")              # an image with a video name is still an image
    img.rename(renamed)
    assert "image" in expect_error(renamed, "not_media").message


def test_vanished(tmp_path):
    err = expect_error(tmp_path / "gone.mp4", "vanished")
    assert "disappeared" in err.message


def test_directory_is_unreadable(tmp_path):
    expect_error(tmp_path, "unreadable")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read any file")
def test_permission_denied(media, tmp_path):
    locked = tmp_path / "locked.wav"
    locked.write_bytes(media["wav"].read_bytes())
    locked.chmod(0)
    try:
        assert "permission" in expect_error(locked, "unreadable").message
    finally:
        locked.chmod(0o644)


def test_permission_denied_simulated(media, monkeypatch):
    # tests run as root, so simulate what a non-root user gets from open()
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr("indexer.stages.probe.open", denied, raising=False)
    assert "permission" in expect_error(media["wav"], "unreadable").message


@pytest.mark.parametrize("ext", sorted(CODECS))
def test_truncated(media, tmp_path, ext):
    cut = make_truncated(media[ext], tmp_path / f"cut.{ext}", 0.5)
    err = expect_error(cut, "truncated")
    assert "interrupted" in err.message


@pytest.mark.parametrize("ext", ["mkv", "mp3", "wav", "flac", "webm"])
def test_truncated_message_says_where_it_ends(media, tmp_path, ext):
    cut = make_truncated(media[ext], tmp_path / f"cut.{ext}", 0.5)
    err = expect_error(cut, "truncated")
    assert "ends at 0:01 of 0:02" in err.message, err.message


@pytest.mark.parametrize("ext", ["mp4", "mov", "m4a", "mkv", "webm", "ogg", "opus", "flac"])
def test_garbled(media, tmp_path, ext):
    bad = make_garbled(media[ext], tmp_path / f"bad.{ext}")
    with pytest.raises(MediaError) as info:
        probe(bad)
    assert info.value.code in ("corrupt", "truncated"), info.value.message
    assert_readable(info.value, info.value.code)


def test_garbled_mp4_is_corrupt(media, tmp_path):
    # the index (moov) is intact, so the packets are all there but do not decode
    err = expect_error(make_garbled(media["mp4"], tmp_path / "bad.mp4"), "corrupt")
    assert "damaged" in err.message


def test_unsupported_codec(tmp_path):
    err = expect_error(make_unsupported_codec(tmp_path / "odd.mkv"), "unsupported_codec")
    assert err.message == "The audio stream uses a codec avindex cannot decode (codec 'A_OPUX')."


def test_undecodable_audio_beside_good_video_is_a_warning(media, tmp_path):
    data = media["mkv"].read_bytes()
    (tmp_path / "mixed.mkv").write_bytes(data.replace(b"A_OPUS", b"A_OPUX"))
    r = probe(tmp_path / "mixed.mkv")
    assert r.kind == "video"
    assert r.warnings == ["The audio stream uses a codec avindex cannot decode (codec 'A_OPUX')."]


def test_mp3_without_xing_header_is_not_called_truncated(tmp_path):
    # without a Xing/Info header FFmpeg only estimates the duration from the bitrate, so a
    # short file is no evidence of truncation: the duration is measured instead
    src = tmp_path / "plain.mp3"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=duration=3", "-c:a", "libmp3lame", "-write_xing", "0", str(src)], check=True)
    assert abs(probe(src).duration - 3) < 0.3
    cut = make_truncated(src, tmp_path / "cut.mp3", 0.5)
    assert abs(probe(cut).duration - 1.5) < 0.3


def test_media_error_pickles():
    err = pickle.loads(pickle.dumps(MediaError("empty", "The file is empty (0 bytes).", "/x.wav")))
    assert (err.code, str(err), err.path) == ("empty", "The file is empty (0 bytes).", "/x.wav")


def test_no_audio_or_video_streams(tmp_path):
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n")
    out = tmp_path / "subs.mkv"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(srt), str(out)],
                   check=True)
    assert "no audio or video" in expect_error(out, "no_streams").message
