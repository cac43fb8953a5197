"""A real batch: good files of every container beside every kind of bad file,
through the CLI, the job runner and the worker process."""
import json
import os

import pytest

from app.cli import main
from tests.media_factory import (make_empty, make_garbled, make_image, make_media,
                                 make_text_as_media, make_truncated, make_unsupported_codec)

SENTENCE = "The lighthouse keeper counted seven ships before the storm arrived."


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    good = {}
    for ext in ("mp4", "mkv", "webm", "mov", "avi", "mp3", "m4a", "wav", "flac", "ogg", "opus"):
        good[f"talk {ext} ✓.{ext}"] = make_media(root / f"talk {ext} ✓.{ext}", text=SENTENCE)
    good["silent video.mp4"] = make_media(root / "silent video.mp4", audio=False, seconds=2)
    src = make_media(root.parent / "src.mp4", text=SENTENCE)
    bad = {
        "empty.wav": (make_empty(root / "empty.wav"), "empty"),
        "notes.mp4": (make_text_as_media(root / "notes.mp4"), "not an audio or video file"),
        "cut.mp4": (make_truncated(src, root / "cut.mp4"), "interrupted"),
        "garbled.mkv": (make_garbled(make_media(root.parent / "src.mkv", text=SENTENCE),
                                     root / "garbled.mkv"), None),
        "codec.mkv": (make_unsupported_codec(root / "codec.mkv"), "codec"),
        "picture.mp4": (make_image(root / "picture.png"), "image"),
    }
    # An image with a media extension: rename the png.
    os.replace(root / "picture.png", root / "picture.mp4")
    bad["picture.mp4"] = (root / "picture.mp4", "image")
    return root, good, bad


def test_batch_of_good_and_bad_files(library, batch, capsys):
    root, good, bad = batch
    code = main(["index", str(root), "--model", "tiny.en", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1                                      # a partial failure is not success
    by_name = {os.path.basename(f["path"]): f for f in result["files"]}
    for name in good:
        assert by_name[name]["outcome"] == "indexed", by_name[name]
    for name, (_, words) in bad.items():
        f = by_name[name]
        assert f["outcome"] == "failed", f
        assert f["error"] and f["error"][0].isupper() and f["error"].endswith(".")
        assert "Traceback" not in f["error"]
        if words:
            assert words in f["error"].lower(), f["error"]
    assert result["summary"]["indexed"] == len(good)
    assert result["summary"]["failed"] == len(bad)

    # status --json lists each failure with its message.
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    failed = {os.path.basename(f["path"]): f["error"] for f in status["failures"]}
    assert set(failed) == set(bad)

    # Every good file with speech was transcribed: search finds the spoken word in each.
    assert main(["search", "lighthouse", "--json", "--limit", "50"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    spoken = {n for n in good if n != "silent video.mp4"}
    assert {os.path.basename(h["path"]) for h in hits} == spoken
    for h in hits:
        assert 0 <= h["start"] <= h["end"] <= 6.0
        assert "[lighthouse]" in h["snippet"].lower()
    said = {os.path.basename(h["path"]) for h in hits if h["start"] < h["end"]}
    assert said == spoken


def test_vanished_and_unreadable_files(library, tmp_path, capsys, monkeypatch):
    keep = make_media(tmp_path / "keep.wav", text="Keep this one.")
    gone = make_media(tmp_path / "gone.wav", text="This one will vanish.")
    from indexer.intake import take
    from indexer.store import Store
    s = Store(library)
    take(s, gone)            # queued, then deleted before the worker gets to it
    s.close()
    gone.unlink()
    code = main(["index", str(keep), "--model", "tiny.en", "--json"])
    capsys.readouterr()
    assert code == 0         # the vanished file belongs to no file named in this run
    assert main(["status", "--json"]) == 0
    failures = json.loads(capsys.readouterr().out)["failures"]
    assert [f["path"] for f in failures] == [str(gone)]
    assert "disappeared" in failures[0]["error"]

    if os.geteuid() != 0:
        locked = make_media(tmp_path / "locked.wav", seconds=1)
        locked.chmod(0)
        assert main(["index", str(locked), "--json"]) == 1
        out = json.loads(capsys.readouterr().out)
        assert "permission" in out["files"][0]["error"].lower()


def test_export_of_indexed_file(library, tmp_path, capsys):
    media = make_media(tmp_path / "talk.m4a", text=SENTENCE)
    assert main(["index", str(media), "--model", "tiny.en", "--json"]) == 0
    capsys.readouterr()
    for fmt in ("srt", "vtt", "json", "txt"):
        out = tmp_path / f"talk.{fmt}"
        assert main(["export", str(media), "--format", fmt, "-o", str(out), "--json"]) == 0
        capsys.readouterr()
        assert "lighthouse" in out.read_text(encoding="utf-8").lower()
    import srt
    cues = list(srt.parse((tmp_path / "talk.srt").read_text(encoding="utf-8")))
    assert cues and cues[0].start.total_seconds() < 1.5
    assert main(["export", str(tmp_path / "nope.mp4"), "--json"]) == 4
    assert "not in the library" in json.loads(capsys.readouterr().out)["error"]


def test_speech_is_followed_by_keywords_and_semantic_vectors(library, tmp_path, capsys):
    media = make_media(tmp_path / "storm.wav", text=SENTENCE + " " + SENTENCE)
    # The default model (base): tiny.en hears espeak's "lighthouse keeper counted seven
    # ships" as "right housekeeper counted censorship", which no boats-and-lighthouse query
    # should match; the semantic checks below are about search, not tiny.en's ears.
    assert main(["index", str(media), "--json"]) == 0
    capsys.readouterr()
    from indexer.search import search
    from indexer.store import Store
    from models.text_embed import load_query_embedder
    s = Store(library)
    m = s.media_by_path(str(media))
    assert [j["stage"] for j in s.jobs(m["id"])] == ["probe", "subtitles", "speech", "speakers",
                                                  "text"]
    assert {j["state"] for j in s.jobs(m["id"])} == {"done"}
    keywords = [r["keyword"].lower() for r in
                s.db.query("SELECT keyword FROM keywords WHERE media_id = ?", [m["id"]])]
    assert any("lighthouse" in k or "ships" in k or "storm" in k for k in keywords), keywords
    for query in ("someone counting boats before bad weather came",
                  "tempête et bateaux au phare"):
        hits = search(s, query, mode="semantic", embedder=load_query_embedder())
        assert hits and hits[0].media_id == m["id"], query
    assert search(s, "qwertyuiop asdfghjkl zxcvbnm", mode="semantic",
                  embedder=load_query_embedder()) == []
    s.close()
