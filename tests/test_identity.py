"""A file is known by its content: rename -> relink, unchanged -> skip, changed -> re-index."""
import json
import os
import shutil

from app.cli import main
from tests.media_factory import make_media


def run_cli(capsys, *argv):
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def outcomes(result):
    return {os.path.basename(f["path"]): f["outcome"] for f in result["files"]}


def test_rename_relinks_unchanged_skips_changed_reindexes(library, tmp_path, capsys):
    lib = tmp_path / "media"
    lib.mkdir()
    clip = make_media(lib / "clip one.mp4", audio=False, seconds=2)
    make_media(lib / "other.mkv", audio=False, seconds=3)

    code, first = run_cli(capsys, "index", str(lib))
    assert code == 0
    assert outcomes(first) == {"clip one.mp4": "indexed", "other.mkv": "indexed"}
    media_id = next(f["media_id"] for f in first["files"] if f["path"].endswith("clip one.mp4"))

    # Unchanged: nothing runs again.
    code, second = run_cli(capsys, "index", str(lib))
    assert code == 0
    assert outcomes(second) == {"clip one.mp4": "skipped", "other.mkv": "skipped"}

    # Renamed and moved into a subfolder: the same media row, re-linked, no job re-run.
    from indexer.store import Store
    s = Store(library)
    before = [(j["stage"], j["finished_at"], j["attempts"]) for j in s.jobs(media_id)]
    s.close()
    (lib / "sub dir").mkdir()
    moved = lib / "sub dir" / "renamed ✓.mp4"
    shutil.move(clip, moved)
    code, third = run_cli(capsys, "index", str(lib))
    assert code == 0
    assert outcomes(third) == {"renamed ✓.mp4": "relinked", "other.mkv": "skipped"}
    s = Store(library)
    assert s.media(media_id)["path"] == str(moved)
    assert [(j["stage"], j["finished_at"], j["attempts"]) for j in s.jobs(media_id)] == before
    assert len(s.all_media()) == 2
    s.close()

    # Changed content at the same path: re-indexed (new duration is picked up).
    make_media(moved, audio=False, seconds=4)
    code, fourth = run_cli(capsys, "index", str(moved))
    assert code == 0
    assert outcomes(fourth) == {"renamed ✓.mp4": "indexed"}
    s = Store(library)
    assert abs(s.media(media_id)["duration"] - 4.0) < 0.3
    s.close()


def test_prune_lists_then_removes_missing(library, tmp_path, capsys):
    a = make_media(tmp_path / "a.mp4", audio=False, seconds=2)
    b = make_media(tmp_path / "b.mp4", audio=False, seconds=2)
    assert run_cli(capsys, "index", str(a), str(b))[0] == 0
    a.unlink()
    code, listed = run_cli(capsys, "prune")
    assert code == 0 and [m["path"] for m in listed["missing"]] == [str(a)]
    assert listed["removed"] == 0
    code, removed = run_cli(capsys, "prune", "--yes")
    assert removed["removed"] == 1
    code, status = run_cli(capsys, "status")
    assert status["media"] == 1
