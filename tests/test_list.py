"""`avindex list`: one row per file, as an aligned table or JSON, with --failed,
--missing and --watching; real files indexed by the real runner."""
from __future__ import annotations

import json

import pytest

from app.cli import main
from indexer.store import Store
from indexer.watching import add_folder
from tests.media_factory import make_media, make_text_as_media


@pytest.fixture
def indexed(library, tmp_path, capsys):
    folder = tmp_path / "media"
    good = make_media(folder / "tone.wav", seconds=1.5)
    bad = make_text_as_media(folder / "notes.mp4")
    assert main(["index", str(folder), "--model", "tiny.en", "--quiet", "--json"]) == 1
    capsys.readouterr()
    return folder.resolve(), good.resolve(), bad.resolve()


def listed(capsys, *args) -> tuple[int, str]:
    code = main(["list", *args])
    return code, capsys.readouterr().out


def test_an_empty_library_says_so(library, capsys):
    Store(library).close()
    code, out = listed(capsys)
    assert code == 0 and "The library is empty" in out
    code, out = listed(capsys, "--json")
    assert code == 0 and json.loads(out) == []


def test_list_text_json_failed_and_missing(indexed, library, capsys):
    folder, good, bad = indexed
    code, out = listed(capsys, "--json")
    assert code == 0
    rows = {r["path"]: r for r in json.loads(out)}
    assert set(rows) == {str(good), str(bad)}
    ok = rows[str(good)]
    assert ok["status"] == "done" and abs(ok["duration"] - 1.5) < 0.1
    assert ok["stages_done"][0] == "probe" and {"speech", "text"} <= set(ok["stages_done"])
    assert ok["error"] is None and ok["failed_stage"] is None and ok["missing_since"] is None
    broken = rows[str(bad)]
    assert broken["status"] == "failed" and broken["failed_stage"] == "probe"
    assert "not an audio or video file" in broken["error"] and broken["stages_done"] == []

    # the table: a header, one aligned row per file, the failure under its row
    code, out = listed(capsys)
    lines = out.splitlines()
    assert lines[0].split() == ["STATUS", "DURATION", "LANG", "STAGES", "DONE", "PATH"]
    column = lines[0].index("PATH")
    good_line = next(ln for ln in lines if ln.endswith(str(good)))
    bad_line = next(ln for ln in lines if ln.endswith(str(bad)))
    assert good_line.index(str(good)) == bad_line.index(str(bad)) == column
    assert good_line.startswith("indexed") and "0:00:02" in good_line
    assert bad_line.startswith("failed")
    reason = lines[lines.index(bad_line) + 1]
    assert "failed at probe:" in reason and "not an audio or video file" in reason
    assert lines[-1].startswith("2 file(s)")

    code, out = listed(capsys, "--failed", "--json")
    assert [r["path"] for r in json.loads(out)] == [str(bad)]
    code, out = listed(capsys, "--missing")
    assert code == 0 and out.strip() == "No file is missing."

    good.unlink()
    store = Store(library)
    store.mark_missing([store.media_by_path(str(good))["id"]])
    store.close()
    code, out = listed(capsys, "--missing", "--json")
    missing = json.loads(out)
    assert [r["path"] for r in missing] == [str(good)] and missing[0]["missing_since"]
    assert missing[0]["status"] == "done"          # what it was; kept until pruned
    code, out = listed(capsys, "--missing")
    lines = out.splitlines()
    assert lines[1].startswith("missing") and lines[1].endswith(str(good))
    assert "missing since" in lines[2] and "was indexed" in lines[2]


def test_list_watching_shows_the_folders(indexed, library, capsys, tmp_path):
    folder, good, bad = indexed
    code, out = listed(capsys, "--watching")
    assert code == 0 and "No folders are watched" in out
    store = Store(library)
    add_folder(store, folder)
    other = tmp_path / "elsewhere"
    other.mkdir()
    add_folder(store, other, poll=True)
    store.set_watched_folder_state(str(other.resolve()), "unavailable")
    store.close()
    code, out = listed(capsys, "--watching")
    lines = out.splitlines()
    assert lines[0] == "Watched folders:"
    assert f"  {folder}  [native events; ok]" in lines[1:3]
    assert any(str(other.resolve()) in ln and "polling; UNAVAILABLE" in ln for ln in lines[1:3])
    assert sum(ln.endswith((str(good), str(bad))) for ln in lines) == 2
    code, out = listed(capsys, "--watching", "--json")
    assert {(r["watched_folder"], r["folder_state"]) for r in json.loads(out)} == \
        {(str(folder), "ok")}


def test_list_filters_are_exclusive(library, capsys):
    Store(library).close()
    assert main(["list", "--failed", "--missing"]) == 2
