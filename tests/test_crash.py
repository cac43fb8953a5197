"""Crash safety: a killed worker or a killed CLI leaves a consistent library, and
the next run finishes the rest."""
import os
import signal
import subprocess
import sys
import time

import pytest

from app.cli import main
from app.runner import Runner
from app.settings import Settings
from indexer.intake import discover, take
from indexer.store import Store
from tests.media_factory import make_media

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINES = ["Alpha station reports clear skies over the harbour.",
         "Bravo team found the missing compass under the bridge.",
         "Charlie painted the fence a bright shade of orange.",
         "Delta flight landed early despite the heavy rain.",
         "Echo chamber music filled the empty concert hall.",
         "Foxtrot dancers practised every morning before breakfast."]


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    for i, line in enumerate(LINES):
        make_media(root / f"clip{i}.wav", text=line + " " + line)
    return root


def queue_all(library, folder):
    s = Store(library)
    ids = [take(s, p).media_id for p, _ in discover([folder])]
    s.close()
    return ids


def test_worker_killed_mid_job_is_retried(library, speech_dir):
    ids = queue_all(library, speech_dir)
    events, killed = [], []
    runner = None

    def on_event(e):
        events.append(e)
        if e["type"] == "job_started" and e["stage"] == "speech" and not killed:
            killed.append(e["media_id"])
            os.kill(runner.current_worker_pid, signal.SIGKILL)

    runner = Runner(library, Settings(whisper_model="tiny.en"), on_event=on_event)
    runner.run()
    crashes = [e for e in events if e["type"] == "worker_crashed"]
    assert len(crashes) == 1 and crashes[0]["retrying"] and crashes[0]["how"].endswith("SIGKILL")
    assert len(runner.worker_pids) == 2
    s = Store(library)
    assert s.integrity_check() == "ok"
    assert [s.media(i)["status"] for i in ids] == ["done"] * len(ids)
    # The killed job ran twice and its transcript was written once.
    job = next(j for j in s.jobs(killed[0]) if j["stage"] == "speech")
    assert job["attempts"] == 2
    segs = s.transcript(killed[0])
    assert segs and len({round(x["start"], 2) for x in segs}) == len(segs)
    s.close()


def test_file_that_always_kills_the_worker_fails_with_a_message(library, speech_dir):
    ids = queue_all(library, speech_dir)
    victim = ids[2]
    runner = None

    def on_event(e):
        if e["type"] == "job_started" and e["media_id"] == victim and e["stage"] == "speech":
            os.kill(runner.current_worker_pid, signal.SIGKILL)

    runner = Runner(library, Settings(whisper_model="tiny.en"), on_event=on_event)
    runner.run()
    s = Store(library)
    statuses = {i: s.media(i)["status"] for i in ids}
    assert statuses.pop(victim) == "failed"
    assert set(statuses.values()) == {"done"}
    error = s.media(victim)["error"]
    assert "worker process was killed by signal SIGKILL" in error and "tried 2 times" in error
    s.close()


def test_kill_dash_nine_mid_batch_then_resume(library, speech_dir, capsys):
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen([sys.executable, "-m", "app", "index", str(speech_dir),
                             "--model", "tiny.en", "--quiet", "--library", str(library)],
                            cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=open(library.parent.parent / "cli.log", "w"))
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if not library.exists():
                continue
            s = Store(library)
            done = len(s.jobs(state="done"))
            speech_done = [j for j in s.jobs(state="done") if j["stage"] == "speech"]
            s.close()
            if speech_done and done < 3 * len(LINES):    # probes and subtitles go first
                break
        else:
            pytest.fail("the batch never got going: " + (library.parent.parent / "cli.log").read_text())
    finally:
        os.killpg(proc.pid, signal.SIGKILL)      # the CLI and its worker, mid-batch
        proc.wait()

    s = Store(library)
    assert s.integrity_check() == "ok"
    states = [j["state"] for j in s.jobs()]
    assert "done" in states and ("running" in states or "queued" in states)
    s.close()

    code = main(["index", str(speech_dir), "--model", "tiny.en", "--json"])
    capsys.readouterr()
    assert code == 0
    s = Store(library)
    assert s.integrity_check() == "ok"
    assert {m["status"] for m in s.all_media()} == {"done"}
    assert len(s.all_media()) == len(LINES)
    for m in s.all_media():
        assert sum(j["stage"] == "speech" for j in s.jobs(m["id"])) == 1
        assert m["segment_count"] >= 1
    s.close()


def test_cancel_running_job_saves_nothing_and_retry_finishes(library, speech_dir):
    ids = queue_all(library, speech_dir)
    target = ids[1]
    runner = None

    def on_event(e):
        if e["type"] == "job_started" and e["media_id"] == target and e["stage"] == "speech":
            runner.cancel_media([target])

    runner = Runner(library, Settings(whisper_model="tiny.en"), on_event=on_event)
    runner.run()
    s = Store(library)
    assert s.media(target)["status"] == "cancelled"
    assert s.transcript(target) == []
    assert all(s.media(i)["status"] == "done" for i in ids if i != target)
    assert s.retry([target]) == 1
    s.close()
    Runner(library, Settings(whisper_model="tiny.en")).run()
    s = Store(library)
    assert s.media(target)["status"] == "done" and s.transcript(target)
    s.close()


def _group_alive(pgid: int) -> bool:
    """Any process left in the process group (the CLI's orphaned worker)?"""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def test_kill_dash_nine_of_the_cli_alone_leaves_the_file_queued(library, tmp_path):
    """Only the CLI is killed: its worker must notice and quit without recording a failure."""
    folder = tmp_path / "talks"
    for i, line in enumerate(LINES[:3]):
        make_media(folder / f"talk{i}.wav", text=" ".join([line] * 3))
    env = {**os.environ, "PYTHONPATH": ROOT}
    cmd = [sys.executable, "-m", "app", "index", str(folder), "--model", "tiny.en", "--quiet",
           "--library", str(library)]
    first_err = tmp_path / "first.err"
    with open(first_err, "w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if library.exists():
                s = Store(library)
                speaking = [j for j in s.jobs(state="running") if j["stage"] == "speech"]
                s.close()
                if speaking:
                    break
        else:
            pytest.fail("speech never started: " + first_err.read_text())
        time.sleep(0.3)
        proc.kill()                              # the CLI only, not its worker
        proc.wait()
        deadline = time.monotonic() + 60
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(proc.pid), "the orphaned worker kept running"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    assert first_err.read_text() == ""            # no worker traceback, no leaked semaphores
    s = Store(library)
    states = {j["state"] for j in s.jobs()}
    assert "failed" not in states, s.status_summary()["failures"]
    assert "running" in states                     # the file in hand, requeued at the next start
    s.close()

    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert second.stderr == "Resumed 1 file left unfinished by an interrupted run.\n"
    s = Store(library)
    assert {m["status"] for m in s.all_media()} == {"done"}
    # every file's speech ran to the end (the resumed one on its second attempt); how many
    # segments tiny.en finds in espeak speech varies run to run (0-3 for talk0 in one
    # process, measured), so the transcript is not asserted here: this is about recovery
    assert all(j["state"] == "done" for j in s.jobs() if j["stage"] == "speech")
    s.close()
