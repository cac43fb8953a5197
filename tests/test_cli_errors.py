"""What the CLI says when paths, the library or its own output go wrong: one
sentence a person understands and a documented exit code, never a traceback."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from indexer.intake import take
from indexer.store import Store
from tests.media_factory import make_media, make_text_as_media

ROOT = Path(__file__).resolve().parents[1]


def avindex(*argv, library, stdout=subprocess.PIPE, unprivileged=False, **kw):
    """The real CLI in a child process (stderr and terminal detection are what we test)."""
    cmd = [sys.executable, "-m", "app", *argv, "--library", str(library)]
    if unprivileged and os.geteuid() == 0:       # root reads any folder; drop that power
        cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *cmd]
    return subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300, **kw)


def by_name(result):
    return {os.path.basename(f["path"]): f for f in result["files"]}


def test_bad_paths_given_by_name_fail_alone(library, tmp_path, capsys):
    good = make_media(tmp_path / "good.wav", seconds=1)
    (tmp_path / "loop.mp4").symlink_to("loop.mp4")
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    code = main(["index", str(tmp_path / "loop.mp4"), str(good), str(tmp_path / "dangling.mp4"),
                 "--model", "tiny.en", "--json"])
    files = by_name(json.loads(capsys.readouterr().out))
    assert code == 1
    assert files["good.wav"]["outcome"] == "indexed"
    assert files["loop.mp4"]["outcome"] == "failed"
    assert "link" in files["loop.mp4"]["error"] and "itself" in files["loop.mp4"]["error"]
    assert files["dangling.mp4"]["outcome"] == "failed"
    assert "gone.mp4" in files["dangling.mp4"]["error"]
    assert "does not exist" in files["dangling.mp4"]["error"]


def test_bad_entries_met_in_a_folder_walk_are_reported(library, tmp_path):
    folder = tmp_path / "media"
    make_media(folder / "good.wav", seconds=1)
    (folder / "loop.mp4").symlink_to("loop.mp4")
    (folder / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    make_media(folder / "locked" / "hidden.wav", seconds=1)
    (folder / "locked").chmod(0)
    try:
        r = avindex("index", str(folder), "--model", "tiny.en", "--json", library=library,
                    unprivileged=True)
    finally:
        (folder / "locked").chmod(0o755)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    files = by_name(json.loads(r.stdout))
    assert files["good.wav"]["outcome"] == "indexed"
    assert "itself" in files["loop.mp4"]["error"]
    assert "does not exist" in files["dangling.mp4"]["error"]
    assert files["locked"]["outcome"] == "failed"
    assert "permission" in files["locked"]["error"].lower()
    assert len(files) == 4


def _library_with_transcript(library, media: Path) -> None:
    s = Store(library)
    media_id = take(s, media).media_id
    s.save_transcript(media_id, "en", [{"start": 0.0, "end": 1.0, "text": "Hello there."}])
    s.close()


def test_export_to_a_missing_folder_or_a_folder(library, tmp_path, capsys):
    media = make_media(tmp_path / "talk.wav", seconds=1)
    _library_with_transcript(library, media)
    assert main(["export", str(media), "-o", str(tmp_path / "missing" / "dir" / "x.srt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("avindex: ") and err.count("\n") == 1
    assert "does not exist" in err and str(tmp_path / "missing" / "dir") in err
    assert main(["export", str(media), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "folder" in err
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("argv", [["status"], ["search", "hello"], ["export", "x.mp4"],
                                  ["prune"], ["retry"], ["tags", "list"], ["motion", "status"]])
def test_read_only_commands_need_an_existing_library(tmp_path, capsys, argv):
    typo = tmp_path / "typo" / "library.db"
    code = main([*argv, "--library", str(typo)])
    err = capsys.readouterr().err
    assert code == 3
    assert "no library" in err.lower() and str(typo) in err
    assert not (tmp_path / "typo").exists()


def test_closed_stdout_ends_quietly(library, tmp_path):
    Store(library).close()
    for argv in (["status", "--json"], ["search", "hello", "--json", "--mode", "text"]):
        r_fd, w_fd = os.pipe()
        os.close(r_fd)                               # the reader is gone (`| head` exited)
        with os.fdopen(w_fd, "w") as closed:
            r = avindex(*argv, library=library, stdout=closed)
        assert r.stderr == "", r.stderr
        assert r.returncode == 0


def test_retry_reports_what_failed_again(library, tmp_path, capsys):
    bad = [make_text_as_media(tmp_path / "notes.mp4"), make_text_as_media(tmp_path / "memo.mp3")]
    assert main(["index", *map(str, bad), "--json"]) == 1
    capsys.readouterr()
    code = main(["retry", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1
    assert result["summary"]["failed"] == 2
    assert {f["outcome"] for f in result["files"]} == {"failed"}
    assert main(["retry"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("2 file(s): 2 failed")


def test_files_resumed_from_an_interrupted_run_count_as_indexed(library, tmp_path, capsys):
    clips = [make_media(tmp_path / f"clip{i}.wav", seconds=1) for i in range(2)]
    s = Store(library)
    for c in clips:
        take(s, c)                                   # queued by a run that never got to them
    s.close()
    assert main(["index", *map(str, clips), "--model", "tiny.en", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["summary"] == {"indexed": 2, "skipped": 0, "relinked": 0, "failed": 0,
                                 "cancelled": 0, "queued": 0}


def test_progress_into_a_pipe_is_plain_lines(library, tmp_path):
    clips = [make_media(tmp_path / f"clip{i}.wav", seconds=1) for i in range(2)]
    r = avindex("index", *map(str, clips), "--model", "tiny.en", library=library)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stderr and "\r" not in r.stderr
    lines = r.stderr.splitlines()
    assert any("1/2" in ln and "clip" in ln for ln in lines), lines
    assert any("2/2" in ln and "clip" in ln for ln in lines), lines
