"""Quitting the desktop app leaves no process behind: the real `python -m app gui`
(offscreen) on a fresh library, stopped with SIGTERM as a logout or `kill` would."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def group(pgid: int) -> dict[int, str]:
    """pid -> "state command line" of every process in the group, zombies included."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue                               # ended while we looked
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[2]) == pgid:
            found[int(entry.name)] = f"{fields[0]} {cmd.strip()}"
    return found


def test_sigterm_leaves_no_process_in_the_apps_group(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", AVINDEX_DATA_DIR=str(tmp_path / "data"),
               AVINDEX_LIBRARY=str(tmp_path / "data" / "library.db"), HOME=str(tmp_path))
    log = open(tmp_path / "gui.log", "wb")
    gui = subprocess.Popen([sys.executable, "-m", "app", "gui"], cwd=ROOT, env=env,
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # started: the app's helper processes (worker, search, resource tracker) are up
        deadline = time.monotonic() + 120
        while len(group(gui.pid)) < 3 and gui.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)                            # let the window settle into its event loop
        before = group(gui.pid)
        assert gui.poll() is None, (tmp_path / "gui.log").read_text()
        assert len(before) >= 2, before            # there are children to leave behind
        gui.send_signal(signal.SIGTERM)
        assert gui.wait(timeout=60) == 0, (tmp_path / "gui.log").read_text()
        # The app waited for its children: none is left, not even as a zombie for init to
        # reap (the resource tracker used to be one, still there a second later).
        left = group(gui.pid)
        assert not left, f"left at exit: {left} (running before: {before})"
        time.sleep(2.0)
        left = group(gui.pid)
        assert not left, f"left 2 s after exit: {left} (running before: {before})"
    finally:
        if gui.poll() is None:
            gui.kill()
        try:
            os.killpg(gui.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        gui.wait()
        log.close()
