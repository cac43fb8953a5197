"""A library on a full disk: one message naming the disk and what to do, exit 3,
the queue kept, and everything indexed once space is freed. On a real small
filesystem (a tmpfs mounted for the test)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.runner import Runner
from app.settings import Settings
from indexer.intake import take
from indexer.store import Store
from tests.media_factory import make_media

ROOT = Path(__file__).resolve().parents[1]


def clips(folder: Path, n: int) -> list[Path]:
    return [make_media(folder / f"talk{i}.wav", text=f"Number {i} is reading the weather report.")
            for i in range(n)]


def test_cli_on_a_full_disk_says_so_and_exits_3(small_disk, tmp_path):
    library = small_disk / "library.db"
    holder = Store(library)         # open elsewhere (the GUI), so the CLI gets to add_media
    files = clips(tmp_path / "media", 2)
    filler = small_disk.fill()
    cmd = [sys.executable, "-m", "app", "index", *map(str, files), "--model", "tiny.en",
           "--library", str(library)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in ("library open elsewhere", "library closed"):
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 3, r.stderr
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("avindex: "), r.stderr
        assert str(small_disk) in r.stderr and "full" in r.stderr and "Free" in r.stderr
        holder.close()

    filler.unlink()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = Store(library)
    assert [m["status"] for m in s.all_media()] == ["done", "done"]
    s.close()


def test_runner_stops_on_a_full_disk_and_keeps_the_queue(small_disk, tmp_path):
    library = small_disk / "library.db"
    s = Store(library)
    for f in clips(tmp_path / "media", 3):
        take(s, f)
    s.close()
    events, filler = [], []

    def on_event(e):
        events.append(e)
        if e["type"] == "job_started" and e["stage"] == "speech" and not filler:
            filler.append(small_disk.fill())      # the transcript cannot be saved

    Runner(library, Settings(whisper_model="tiny.en"), on_event=on_event).run()
    full = [e for e in events if e["type"] == "disk_full"]
    assert len(full) == 1, [e["type"] for e in events]
    assert str(small_disk) in full[0]["message"] and "full" in full[0]["message"]
    assert not [e for e in events if e["type"] == "job_finished" and e["state"] == "failed"]
    s = Store(library)
    states = [j["state"] for j in s.jobs()]
    assert "failed" not in states and states.count("queued") + states.count("running") >= 3
    s.close()

    filler[0].unlink()
    Runner(library, Settings(whisper_model="tiny.en")).run()
    s = Store(library)
    assert {m["status"] for m in s.all_media()} == {"done"}
    assert all(m["segment_count"] for m in s.all_media())
    s.close()
