"""Watched folders on a real file system with real watchdog observers: slow writes are
taken once, moves re-linked, deletions marked missing (then pruned), a folder that
disappears is not a mass deletion, and `avindex watch` runs (and stops) as a real process."""
from __future__ import annotations

import io
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import pytest

from app.cli import main
from indexer.store import Store
from indexer.watching import FolderWatcher, Settler, add_folder, network_fs
from indexer.watching.mounts import mount_of

ROOT = Path(__file__).resolve().parents[1]
SETTLE_S = 0.8


def wav_bytes(seconds: float = 1.0, freq: float = 440.0, rate: int = 16000) -> bytes:
    """A real PCM WAV; the frequency makes each file's content (and fingerprint) its own."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        v = int(8000 * math.sin(2 * math.pi * freq * i / rate))
        frames += v.to_bytes(2, "little", signed=True)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return buf.getvalue()


def write_slowly(path: Path, data: bytes, chunks: int, pause: float) -> float:
    """Write `data` in `chunks` pieces with a pause after each but the last, as a slow
    copy or a recording does; returns the monotonic time of the last write."""
    step = math.ceil(len(data) / chunks)
    with open(path, "wb") as f:
        for i in range(chunks):
            f.write(data[i * step:(i + 1) * step])
            f.flush()
            os.fsync(f.fileno())
            last = time.monotonic()
            if i < chunks - 1:
                time.sleep(pause)
    return last


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Recorder:
    """The watcher's events, each with the monotonic time it arrived."""

    def __init__(self):
        self.events: list[tuple[float, dict]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict) -> None:
        with self.lock:
            self.events.append((time.monotonic(), event))

    def of(self, kind: str, path: str | None = None) -> list[dict]:
        with self.lock:
            return [e for _, e in self.events
                    if e["type"] == kind and (path is None or e.get("path") == path)]

    def times(self, kind: str, path: str) -> list[float]:
        with self.lock:
            return [t for t, e in self.events if e["type"] == kind and e.get("path") == path]


@pytest.fixture
def folder(tmp_path, library):
    path = tmp_path / "watched"
    path.mkdir()
    store = Store(library)
    add_folder(store, path)
    store.close()
    return path.resolve()


def start_watcher(library, recorder, **kw) -> FolderWatcher:
    watcher = FolderWatcher(library, settle_s=SETTLE_S, on_event=recorder, check_s=0.2, **kw)
    watcher.start()
    assert watcher.ready.wait(20)
    return watcher


@pytest.fixture
def watching(library, folder):
    recorder = Recorder()
    watcher = start_watcher(library, recorder)
    yield watcher, recorder
    watcher.stop()


def test_settler_takes_a_file_once_its_writes_stop(tmp_path):
    now = [0.0]
    settler = Settler(2.0, clock=lambda: now[0])
    path = tmp_path / "clip.wav"
    path.write_bytes(b"x" * 10)
    settler.touch(str(path))
    now[0] = 1.5
    assert settler.due() == []
    with open(path, "ab") as f:            # a write: the quiet period starts again
        f.write(b"y")
    assert settler.due() == []
    now[0] = 3.0
    assert settler.due() == []             # 1.5 s after the write was noticed
    now[0] = 3.6
    assert settler.due() == [str(path)]
    assert settler.due() == [] and len(settler) == 0


@pytest.mark.parametrize("polling", [False, True], ids=["native", "polling"])
def test_slow_writes_are_taken_once_after_the_last_write(library, folder, polling):
    if polling:
        store = Store(library)
        add_folder(store, folder, poll=True)
        store.close()
    recorder = Recorder()
    watcher = start_watcher(library, recorder, poll_interval_s=0.3)
    try:
        assert recorder.of("scanned")[0]["mode"] == ("polling" if polling else "native")
        clip = folder / "recording.wav"
        data = wav_bytes(1.0)
        last_write = write_slowly(clip, data, chunks=10, pause=0.25)
        wait_for(lambda: recorder.of("taken", str(clip)), what="the file to be taken")
        time.sleep(SETTLE_S * 2)            # time for a second intake, if there were one
        taken = recorder.of("taken", str(clip))
        assert len(taken) == 1 and taken[0]["action"] == "new"
        assert recorder.times("taken", str(clip))[0] >= last_write + SETTLE_S * 0.9
    finally:
        watcher.stop()
    store = Store(library)
    media = store.media_by_path(str(clip))
    assert media["size"] == len(data) == clip.stat().st_size
    assert [j["stage"] for j in store.jobs(media["id"])] == ["probe"]
    store.close()
    assert not [t for t in watcher.observer_threads() if t.is_alive()]


def test_a_move_is_relinked_not_reprocessed(library, folder, watching):
    watcher, recorder = watching
    (folder / "sub").mkdir()
    clip = folder / "talk.wav"
    clip.write_bytes(wav_bytes(1.0, 330))
    wait_for(lambda: recorder.of("taken", str(clip)), what="the file to be taken")
    store = Store(library)
    media_id = store.media_by_path(str(clip))["id"]
    jobs_before = store.jobs(media_id)

    moved = folder / "sub" / "talk renamed ✓.wav"
    os.rename(clip, moved)
    wait_for(lambda: recorder.of("moved", str(moved)), what="the move")
    assert recorder.of("moved", str(moved))[0]["from"] == str(clip)
    after = store.media(media_id)
    assert after["path"] == str(moved) and not after["missing_since"]
    assert store.jobs(media_id) == [{**j, "path": str(moved)} for j in jobs_before]
    time.sleep(SETTLE_S * 2)
    assert not recorder.of("taken", str(moved)) and not recorder.of("missing")
    assert len(store.all_media()) == 1

    # saved as a copy, the original deleted: the same content, re-linked by fingerprint
    copy = folder / "copy.wav"
    copy.write_bytes(moved.read_bytes())
    moved.unlink()
    wait_for(lambda: recorder.of("taken", str(copy)), what="the copy to be taken")
    assert [(t["action"], t["media_id"]) for t in recorder.of("taken", str(copy))] == \
        [("relinked", media_id)]
    time.sleep(SETTLE_S * 2)
    assert not recorder.of("missing") and len(store.all_media()) == 1
    assert [j["id"] for j in store.jobs(media_id)] == [j["id"] for j in jobs_before]

    # moved while nobody watched: the scan at the next start re-links it by content
    watcher.stop()
    again = folder / "again.wav"
    os.rename(copy, again)
    os.utime(again, (time.time() - 60, time.time() - 60))
    recorder2 = Recorder()
    watcher2 = start_watcher(library, recorder2)
    try:
        taken = recorder2.of("taken", str(again))
        assert [(t["action"], t["media_id"]) for t in taken] == [("relinked", media_id)]
        assert store.media(media_id)["path"] == str(again)
        assert not recorder2.of("missing")
    finally:
        watcher2.stop()
        store.close()


def test_a_deleted_file_is_marked_missing_and_pruned(library, folder, watching, capsys):
    watcher, recorder = watching
    keep, drop = folder / "keep.wav", folder / "drop.wav"
    keep.write_bytes(wav_bytes(1.0, 500))
    drop.write_bytes(wav_bytes(1.0, 600))
    wait_for(lambda: recorder.of("taken", str(keep)) and recorder.of("taken", str(drop)),
             what="both files to be taken")
    drop.unlink()
    wait_for(lambda: recorder.of("missing", str(drop)), what="the missing mark")
    store = Store(library)
    assert store.media_by_path(str(drop))["missing_since"]
    assert not store.media_by_path(str(keep))["missing_since"]
    store.close()

    assert main(["list", "--missing", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in listed] == [str(drop)] and listed[0]["missing_since"]
    assert main(["prune", "--yes", "--json"]) == 0
    pruned = json.loads(capsys.readouterr().out)
    assert pruned["removed"] == 1 and [m["path"] for m in pruned["missing"]] == [str(drop)]
    store = Store(library)
    assert [m["path"] for m in store.all_media()] == [str(keep)]
    store.close()


def test_a_sidecar_written_or_deleted_beside_its_media_is_read_again(library, folder,
                                                                      watching):
    watcher, recorder = watching
    media = folder / "talk.wav"
    media.write_bytes(wav_bytes(1.0, 500))
    wait_for(lambda: recorder.of("taken", str(media)), what="the media to be taken")
    mid = recorder.of("taken", str(media))[0]["media_id"]
    sidecar, orphan = folder / "talk.en.srt", folder / "nobody.en.srt"
    orphan.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n", encoding="utf-8")
    write_slowly(sidecar, b"1\n00:00:00,000 --> 00:00:01,000\nhello there\n", 3, 0.2)
    wait_for(lambda: recorder.of("taken", str(sidecar)), what="the sidecar to be taken")
    taken = recorder.of("taken", str(sidecar))
    assert [(e["action"], e["media_id"]) for e in taken] == [("subtitles", mid)]
    sidecar.unlink()
    wait_for(lambda: len(recorder.of("taken", str(sidecar))) == 2, what="the deletion")
    assert not recorder.of("taken", str(orphan))        # its media may come later
    assert not recorder.of("missing", str(sidecar))


def test_a_folder_that_disappears_and_comes_back(library, folder, watching, tmp_path, capsys):
    watcher, recorder = watching
    files = [folder / "a.wav", folder / "b.wav"]
    for i, f in enumerate(files):
        f.write_bytes(wav_bytes(1.0, 700 + 100 * i))
    wait_for(lambda: all(recorder.of("taken", str(f)) for f in files), what="intake")

    away = tmp_path / "unplugged"
    os.rename(folder, away)                                  # the drive is unplugged
    wait_for(lambda: recorder.of("folder"), what="the folder to be unavailable")
    assert recorder.of("folder")[0]["state"] == "unavailable"
    store = Store(library)
    assert store.watched_folder(str(folder))["state"] == "unavailable"
    (away / "added while away.wav").write_bytes(wav_bytes(1.0, 900))

    # prune holds the files back (their folder is unavailable) unless told otherwise
    assert main(["prune", "--yes", "--json"]) == 0
    pruned = json.loads(capsys.readouterr().out)
    assert pruned["removed"] == 0 and len(pruned["kept"]) == 2
    assert main(["list", "--watching"]) == 0
    assert "UNAVAILABLE" in capsys.readouterr().out

    os.rename(away, folder)                                  # plugged in again
    wait_for(lambda: len(recorder.of("folder")) == 2, what="the folder to be back")
    assert recorder.of("folder")[1]["state"] == "ok"
    added = folder / "added while away.wav"
    wait_for(lambda: recorder.of("taken", str(added)), what="the rescan to take the new file")
    assert not recorder.of("missing")
    assert store.watched_folder(str(folder))["state"] == "ok"
    assert all(not m["missing_since"] for m in store.all_media())
    assert len(store.all_media()) == 3
    store.close()


def test_an_emptied_mount_point_is_unavailable_not_a_mass_deletion(library, folder, tmp_path):
    """An unmounted drive often leaves its mount point behind, empty."""
    files = [folder / "one.wav", folder / "two.wav"]
    for i, f in enumerate(files):
        f.write_bytes(wav_bytes(0.5, 300 + 50 * i))
    recorder = Recorder()
    watcher = start_watcher(library, recorder)
    wait_for(lambda: len(recorder.of("taken")) == 2, what="intake")
    watcher.stop()
    stash = tmp_path / "stash"
    stash.mkdir()
    for f in files:
        os.rename(f, stash / f.name)

    recorder = Recorder()
    watcher = start_watcher(library, recorder)
    try:
        assert [e["state"] for e in recorder.of("folder")] == ["unavailable"]
        assert not recorder.of("missing")
        for f in files:                                      # mounted again
            os.rename(stash / f.name, f)
        wait_for(lambda: len(recorder.of("folder")) == 2, what="the folder to be back")
        assert not recorder.of("missing") and not recorder.of("taken")
    finally:
        watcher.stop()


def test_watch_command_usage(library, tmp_path, capsys):
    assert main(["watch", str(tmp_path / "nowhere")]) == 4
    assert "There is no folder at" in capsys.readouterr().err
    Store(library).close()
    assert main(["watch"]) == 2
    assert "No folders are watched yet" in capsys.readouterr().err
    a_file = tmp_path / "clip.wav"
    a_file.write_bytes(wav_bytes(0.2))
    assert main(["watch", str(a_file)]) == 4
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["watch", "--settle", "0", str(tmp_path)]) == 2
    capsys.readouterr()

    store = Store(library)
    add_folder(store, tmp_path)
    store.close()
    assert main(["watch", "--list"]) == 0
    assert str(tmp_path.resolve()) in capsys.readouterr().out
    assert main(["watch", "--forget", str(tmp_path / "other")]) == 4
    assert "is not a watched folder" in capsys.readouterr().err
    assert main(["watch", "--forget", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["forgotten"] == [str(tmp_path.resolve())]
    assert main(["watch", "--list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["folders"] == []


def test_network_shares_are_polled(tmp_path):
    table = tmp_path / "mounts"
    table.write_text("/dev/sda1 / ext4 rw 0 0\n"
                     "server:/export /mnt/nas nfs4 rw,relatime 0 0\n"
                     "//host/films /mnt/my\\040films cifs rw 0 0\n"
                     "user@box:/srv /home/me/box fuse.sshfs rw 0 0\n")
    assert network_fs("/mnt/nas/video/a", str(table)) == "nfs4"
    assert network_fs("/mnt/my films/x", str(table)) == "cifs"
    assert network_fs("/home/me/box", str(table)) == "fuse.sshfs"
    assert network_fs("/mnt/nasty", str(table)) is None
    assert mount_of("/home/me/video", str(table)) == ("/", "ext4")


def test_avindex_watch_runs_indexes_and_stops_on_ctrl_c(library, tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "watch", str(folder), "--library", str(library),
         "--model", "tiny.en", "--settle", "1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    seen: list[str] = []
    reader = threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True)
    reader.start()

    def expect(word: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                assert proc.poll() is None, "avindex watch ended early:\n" + "".join(seen)
                continue
            seen.append(line)
            if word in line:
                return line
        raise AssertionError(f"no {word!r} line:\n" + "".join(seen))

    try:
        expect("scanned")
        clip = folder / "dictation.wav"
        data = wav_bytes(1.5, 250)
        write_slowly(clip, data, chunks=8, pause=0.3)
        expect("indexed")
        store = Store(library)
        media = store.media_by_path(str(clip.resolve()))
        assert media["status"] == "done" and media["size"] == len(data)
        store.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    while not lines.empty():
        seen.append(lines.get())
    out = "".join(seen)
    assert sum(" new " in ln and "dictation.wav" in ln for ln in out.splitlines()) == 1
    assert "Stopped watching" in out and "1 indexed" in out
    assert "Traceback" not in out


def test_gui_watched_folders_round_trip_and_are_watched_while_open(qtbot, library, tmp_path):
    from PySide6.QtCore import QSettings, Qt

    from app.gui import build
    from app.settings import Settings
    from ui.library_view import MEDIA_ID_ROLE

    qsettings = QSettings(str(tmp_path / "ui.ini"), QSettings.IniFormat)
    service, window = build(library, Settings(whisper_model="tiny.en"), qsettings)
    qtbot.addWidget(window)
    service.start()
    try:
        inbox = tmp_path / "inbox"
        (inbox / "sub").mkdir(parents=True)
        qtbot.waitUntil(lambda: "watched_folders" in service.settings_dict())
        dialog = window.open_settings()
        panel = dialog.watched
        assert panel.folders() == []
        assert not panel.add_folder(str(tmp_path / "nowhere"))
        assert "There is no folder" in panel.message.text()
        assert panel.add_folder(str(inbox), polling=True)
        assert not panel.add_folder(str(inbox / "sub"))
        assert "as part of" in panel.message.text()
        with qtbot.waitSignal(service.watched_folders_changed, timeout=20_000):
            dialog.accept()
        store = Store(library)
        assert [(f["path"], f["polling"]) for f in store.watched_folders()] == [(str(inbox), 1)]

        # the dialog shows what the library holds; the polling box is turned off there
        dialog = window.open_settings()
        panel = dialog.watched
        assert panel.folders() == [{"path": str(inbox), "polling": True}]
        qtbot.waitUntil(lambda: service.watched_folders()[0]["state"] == "ok")
        panel.table.item(0, 1).setCheckState(Qt.Unchecked)
        with qtbot.waitSignal(service.watched_folders_changed, timeout=20_000):
            dialog.accept()
        assert [(f["path"], f["polling"]) for f in store.watched_folders()] == [(str(inbox), 0)]

        # while the window is open, a file written there is indexed ...
        clip = inbox / "memo.wav"
        write_slowly(clip, wav_bytes(1.0, 420), chunks=4, pause=0.2)
        model = window.library_panel.model

        def status_of(name):
            for r in range(model.rowCount()):
                if model.index(r, 0).data() == name:
                    return model.index(r, 3).data()
            return None
        qtbot.waitUntil(lambda: status_of("memo.wav") == "Indexed", timeout=90_000)
        # ... and one deleted there shows as missing, its index kept
        clip.unlink()
        qtbot.waitUntil(lambda: status_of("memo.wav") == "Missing", timeout=30_000)
        media_id = model.index(0, 0).data(MEDIA_ID_ROLE)
        assert store.media(media_id)["missing_since"] and store.media(media_id)["status"] == "done"

        # removing the folder keeps its files
        dialog = window.open_settings()
        dialog.watched.table.selectRow(0)
        dialog.watched.remove_selected()
        with qtbot.waitSignal(service.watched_folders_changed, timeout=20_000):
            dialog.accept()
        assert store.watched_folders() == [] and len(store.all_media()) == 1
        store.close()
    finally:
        service.shutdown()


def test_avindex_watch_stops_cleanly_on_sigterm(library, tmp_path):
    folder = tmp_path / "quiet"
    folder.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "watch", str(folder), "--library", str(library), "--json"],
        cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if json.loads(line)["event"] == "scanned":
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    last = json.loads(out.splitlines()[-1])
    assert last["event"] == "stopped" and last["summary"]["observers_running"] == 0
