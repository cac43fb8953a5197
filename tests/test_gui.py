"""The main window end to end: real speech files are dropped on it, indexed by the
real runner and worker (tiny.en), searched, played, exported and corrected."""
from __future__ import annotations

import os
import shutil

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_MEDIA_BACKEND", "ffmpeg")

from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QLineEdit  # noqa: E402

from app.gui import build  # noqa: E402
from app.settings import Settings  # noqa: E402
from media_factory import make_media, make_text_as_media  # noqa: E402

SPEECH = ("Good morning everyone. Today we review the quarterly budget for the museum. "
          "After that, the elephant report is due on Friday.")
INDEX_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def talk_mp4(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("media") / "talk.mp4", text=SPEECH)


@pytest.fixture
def media_dir(tmp_path, talk_mp4):
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(talk_mp4, folder / "talk.mp4")
    make_text_as_media(folder / "notes.mp4")
    return folder


@pytest.fixture
def gui(qtbot, library, tmp_path):
    qsettings = QSettings(str(tmp_path / "ui.ini"), QSettings.IniFormat)
    service, window = build(library, Settings(whisper_model="tiny.en"), qsettings)
    qtbot.addWidget(window)
    events: list[dict] = []
    service.job_event.connect(events.append)
    window.events = events
    window.show()
    service.start()
    yield window
    service.shutdown()


def drop_on(widget, paths) -> bool:
    """A real drag-enter + drop with file URLs, as a file manager sends them."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    center = widget.rect().center()
    enter = QDragEnterEvent(center, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(widget, enter)
    drop = QDropEvent(QPointF(center), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(widget, drop)
    return enter.isAccepted() and drop.isAccepted()


def job_row(window, name):
    return next((r for r in window.jobs_panel.model.rows() if r["path"].endswith(name)), None)


def wait_indexed(qtbot, window, names, timeout=INDEX_TIMEOUT_MS):
    def finished():
        rows = [job_row(window, n) for n in names]
        assert all(r is not None and r["state"] in ("done", "failed", "cancelled") for r in rows)
        assert not window.service.is_running
    qtbot.waitUntil(finished, timeout=timeout)


def media_id_of(window, name) -> int:
    return next(m["id"] for m in window.library_panel.all_media() if m["path"].endswith(name))


def word_time(library, media_id, word) -> float:
    from indexer.store import Store
    store = Store(library)
    try:
        for seg in store.transcript(media_id):
            for w in seg["words"]:
                if word in w["word"].lower():
                    return w["start"]
    finally:
        store.close()
    raise AssertionError(f"{word!r} not transcribed")


def search(qtbot, window, text):
    window.search_box.clear()
    qtbot.keyClicks(window.search_box, text)
    qtbot.waitUntil(lambda: bool(window.results.model.hits) and
                    window.results.summary.text().endswith("from that moment."), timeout=10_000)
    return window.results.model.hits


def export_srt(qtbot, window, media_id, folder):
    import srt
    dialog = window.open_export_dialog([media_id])
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("srt"))
    dialog.elsewhere.setChecked(True)
    dialog.folder_edit.setText(str(folder))
    window.last_export = None
    dialog.accept()
    qtbot.waitUntil(lambda: window.last_export is not None, timeout=10_000)
    written, problems = window.last_export
    assert problems == [] and len(written) == 1
    return list(srt.parse(open(written[0], encoding="utf-8").read()))


# ---- end to end ---------------------------------------------------------------------------

def test_drop_indexes_files_with_progress_and_shows_failures(qtbot, gui, media_dir):
    assert gui.library_panel.stack.currentIndex() == 0          # empty-library hint
    overall = []     # the status bar while job events arrive
    gui.service.job_event.connect(
        lambda e: overall.append((gui.progress_bar.isVisible(), gui.progress_label.text())))
    assert drop_on(gui, [media_dir / "talk.mp4"])               # a real drop event
    gui.add_paths([str(media_dir / "notes.mp4")])               # the drop handler itself
    wait_indexed(qtbot, gui, ["talk.mp4", "notes.mp4"])

    progress = [e for e in gui.events if e["type"] == "progress" and e["path"].endswith("talk.mp4")]
    assert {e["stage"] for e in progress} >= {"speech"}
    assert job_row(gui, "talk.mp4")["state"] == "done"
    assert gui.library_panel.stack.currentIndex() == 1
    talk = gui.library_panel.media(media_id_of(gui, "talk.mp4"))
    assert talk["status"] == "done" and talk["language"] == "en" and talk["duration"] > 5

    failed = job_row(gui, "notes.mp4")
    assert failed["state"] == "failed" and "not an audio or video file" in failed["error"]
    gui.jobs_panel.select_media(failed["media_id"])
    assert "not an audio or video file" in gui.jobs_panel.detail_text()
    assert gui.jobs_panel.retry_button.isEnabled()
    assert any(visible and "talk.mp4: speech" in text for visible, text in overall)
    assert not gui.progress_bar.isVisible()                     # the batch is over


def test_search_plays_the_moment_export_and_correction(qtbot, gui, media_dir, library, tmp_path):
    gui.add_paths([str(media_dir / "talk.mp4")])
    wait_indexed(qtbot, gui, ["talk.mp4"])
    media_id = media_id_of(gui, "talk.mp4")
    spoken_at = word_time(library, media_id, "elephant")
    assert spoken_at > 3.0       # late in the line, so the segment start would be wrong

    hits = search(qtbot, gui, "elephant")
    assert hits[0]["media_id"] == media_id and "[elephant]" in hits[0]["snippet"].lower()
    assert abs(hits[0]["seek"] - spoken_at) < 0.5
    assert gui.tabs.currentWidget() is gui.results
    index = gui.results.model.index(0, 3)
    assert "<b>" in index.data(Qt.UserRole + 10)                 # match drawn bold

    gui.results.table.setFocus()
    gui.results.table.setCurrentIndex(gui.results.model.index(0, 0))
    qtbot.keyClick(gui.results.table, Qt.Key_Return)
    player = gui.player
    qtbot.waitUntil(lambda: player.media_id == media_id and player._pending_seek_ms is None
                    and player.player.duration() > 0, timeout=15_000)
    qtbot.waitUntil(lambda: abs(player.player.position() / 1000 - spoken_at) < 1.0, timeout=5000)

    # the transcript follows playback
    qtbot.waitUntil(lambda: bool(gui.transcript.model.segments) and gui.transcript.model.current >= 0,
                    timeout=10_000)
    segs = gui.transcript.model.segments
    current = segs[gui.transcript.model.current]
    assert current["start"] <= spoken_at + 0.05

    dialog = gui.open_export_dialog([media_id])                   # defaults: beside the media
    assert dialog.folder() is None and str(media_dir / "talk.srt") in dialog.preview.text()
    dialog.reject()
    cues = export_srt(qtbot, gui, media_id, tmp_path / "out")
    assert "elephant" in " ".join(c.content for c in cues).lower()
    assert all(c.end > c.start for c in cues)

    # correct the line that holds "elephant": search and export see the edit
    row = next(i for i, s in enumerate(segs) if "elephant" in s["text"].lower())
    new_text = segs[row]["text"].lower().replace("elephant", "giraffe")
    view = gui.transcript.view
    view.edit(gui.transcript.model.index(row))                  # what a double-click does
    editor = view.viewport().findChild(QLineEdit)
    assert editor is not None and "elephant" in editor.text().lower()
    editor.setText(new_text)
    with qtbot.waitSignal(gui.service.correction_saved, timeout=10_000):
        qtbot.keyClick(editor, Qt.Key_Return)
    assert gui.transcript.model.segments[row]["corrected"]
    hits = search(qtbot, gui, "giraffe")
    assert hits[0]["media_id"] == media_id
    cues = export_srt(qtbot, gui, media_id, tmp_path / "out2")
    text = " ".join(c.content for c in cues).lower()
    assert "giraffe" in text and "elephant" not in text


def test_clicking_a_transcript_line_seeks(qtbot, gui, media_dir):
    gui.add_paths([str(media_dir / "talk.mp4")])
    wait_indexed(qtbot, gui, ["talk.mp4"])
    media_id = media_id_of(gui, "talk.mp4")
    gui.open_media(media_id)
    qtbot.waitUntil(lambda: len(gui.transcript.model.segments) > 0, timeout=10_000)
    qtbot.waitUntil(lambda: gui.player.player.duration() > 0, timeout=10_000)
    segs = gui.transcript.model.segments
    target = segs[-1]
    gui.transcript._clicked(gui.transcript.model.index(len(segs) - 1))
    qtbot.waitUntil(lambda: abs(gui.player.position_s() - target["start"]) < 0.5, timeout=5000)

    gui.transcript.find_edit.setText("budget")
    assert gui.transcript.model.matches
    assert gui.transcript.match_label.text().startswith("1 of")

    gui.player.seek(1.0)
    qtbot.waitUntil(lambda: abs(gui.player.position_s() - 1.0) < 0.3, timeout=5000)
    gui.forward_action.trigger()                                 # Right: +5 s
    qtbot.waitUntil(lambda: abs(gui.player.position_s() - 6.0) < 0.5, timeout=5000)
    gui.back_j_action.trigger()                                  # J: -10 s, clamped at 0
    qtbot.waitUntil(lambda: gui.player.position_s() < 0.5, timeout=5000)


def test_cancel_then_retry(qtbot, gui, media_dir, talk_mp4):
    for i in range(3):
        shutil.copy(talk_mp4, media_dir / f"copy{i}.mp4")
        # distinct content, or intake would see one file three times
        with open(media_dir / f"copy{i}.mp4", "ab") as f:
            f.write(bytes([i]) * 16)
    with qtbot.waitSignal(gui.service.files_added, timeout=30_000):
        gui.add_paths([str(media_dir / f"copy{i}.mp4") for i in range(3)])
    last = media_id_of(gui, "copy2.mp4")
    gui.jobs_panel.select_media(last)
    assert gui.jobs_panel.cancel_button.isEnabled()
    gui.jobs_panel.cancel_button.click()
    wait_indexed(qtbot, gui, ["copy0.mp4", "copy1.mp4", "copy2.mp4"])
    assert job_row(gui, "copy2.mp4")["state"] == "cancelled"
    assert job_row(gui, "copy0.mp4")["state"] == "done"

    gui.jobs_panel.select_media(last)
    assert gui.jobs_panel.retry_button.isEnabled()
    gui.jobs_panel.retry_button.click()
    qtbot.waitUntil(lambda: job_row(gui, "copy2.mp4")["state"] in ("queued", "running"),
                    timeout=10_000)
    wait_indexed(qtbot, gui, ["copy2.mp4"])
    assert job_row(gui, "copy2.mp4")["state"] == "done"


def test_waits_while_another_process_indexes_the_library(qtbot, gui, media_dir, library):
    from app.runner import LibraryLock
    lock = LibraryLock(library)            # what `avindex index` holds while it runs
    qtbot.waitUntil(lambda: not gui.service.is_running, timeout=10_000)
    assert lock.acquire()
    try:
        with qtbot.waitSignal(gui.service.message, timeout=30_000) as said:
            gui.add_paths([str(media_dir / "talk.mp4")])
        assert "Another avindex process" in said.args[0]
        qtbot.waitUntil(lambda: job_row(gui, "talk.mp4") is not None, timeout=10_000)
        assert job_row(gui, "talk.mp4")["state"] == "queued"
    finally:
        lock.release()
    wait_indexed(qtbot, gui, ["talk.mp4"])           # picked up once the lock is free
    assert job_row(gui, "talk.mp4")["state"] == "done"


# ---- smaller pieces ------------------------------------------------------------------------

def test_drop_on_a_child_widget_reaches_the_window(qtbot, gui, tmp_path):
    calls = []
    gui.service.add_paths = calls.append
    assert drop_on(gui.transcript.view.viewport(), [tmp_path]) or calls
    assert calls == [[str(tmp_path)]]
    assert not gui.overlay.isVisible()


def test_a_picture_dropped_on_the_window_searches_by_it(qtbot, gui, tmp_path):
    from media_factory import make_image
    photo = make_image(tmp_path / "frame.png")
    added, searched = [], []
    gui.service.add_paths = added.append
    gui.service.search_image = lambda path, *filters: searched.append(path)
    assert drop_on(gui.transcript.view.viewport(), [photo])
    assert searched == [str(photo)] and added == []
    assert gui.tabs.currentWidget() is gui.results
    assert "frames like frame.png" in gui.results.summary.text()


def test_search_is_debounced(qtbot, gui):
    queries = []
    gui.service.search = lambda query, *filters: queries.append(query)
    qtbot.keyClicks(gui.search_box, "budget")
    assert queries == []
    qtbot.waitUntil(lambda: queries == ["budget"], timeout=2000)
    qtbot.wait(400)
    assert queries == ["budget"]


def test_library_list_sorts_and_filters(qtbot, gui):
    rows = [{"id": 1, "path": "/a/zeta.mp4", "status": "done", "duration": 30.0,
             "language": "en", "tag_count": 2, "error": None},
            {"id": 2, "path": "/b/alpha.wav", "status": "failed", "duration": None,
             "language": None, "tag_count": 0, "error": "broken"},
            {"id": 3, "path": "/b/mid.mkv", "status": "done", "duration": 3700.0,
             "language": "fr", "tag_count": 0, "error": None}]
    panel = gui.library_panel
    panel.set_media(rows)
    proxy = panel.proxy
    names = lambda: [proxy.index(r, 0).data() for r in range(proxy.rowCount())]  # noqa: E731
    assert names() == ["alpha.wav", "mid.mkv", "zeta.mp4"]
    panel.table.sortByColumn(1, Qt.DescendingOrder)
    assert names() == ["mid.mkv", "zeta.mp4", "alpha.wav"]
    panel.filter_edit.setText("/b/")
    assert sorted(names()) == ["alpha.wav", "mid.mkv"]
    panel.status_combo.setCurrentIndex(panel.status_combo.findData("failed"))
    assert names() == ["alpha.wav"]
    assert "broken" in proxy.index(0, 0).data(Qt.ToolTipRole)
    panel.set_media(rows[:1])                  # keyed update removes the others
    panel.filter_edit.clear()
    panel.status_combo.setCurrentIndex(0)
    assert names() == ["zeta.mp4"]


def test_settings_are_saved_to_qsettings_and_the_library(qtbot, gui, library, tmp_path):
    dialog = gui.open_settings()
    dialog.model_combo.setCurrentIndex(dialog.model_combo.findData("base"))
    dialog.threads_spin.setValue(3)
    dialog.interval_spin.setValue(2.5)
    dialog.models_edit.setText(str(tmp_path / "models"))
    with qtbot.waitSignal(gui.service.settings_changed):
        dialog.accept()
    saved = Settings.load(library)
    assert (saved.whisper_model, saved.threads, saved.frame_interval_s) == ("base", 3, 2.5)
    assert saved.models_dir == str(tmp_path / "models")
    assert gui.qsettings.value("settings/threads") in (3, "3")
    assert "Whisper base" in gui.device_label.text()
    assert gui.device_label.text().split(" · ")[0] in ("CPU", "GPU (CUDA)")


def test_switching_library_in_settings(qtbot, gui, tmp_path):
    other = tmp_path / "other" / "second.db"
    values = dict(gui.service.settings_dict(), library=str(other))
    with qtbot.waitSignal(gui.service.library_changed, timeout=30_000):
        gui.apply_settings(values)
    assert gui.service.library == other.resolve()
    assert str(other) in gui.windowTitle()
    assert Settings.load(other).whisper_model == "tiny.en"


def test_about_shows_diagnostics(qtbot, gui, library):
    about = gui.open_about()
    qtbot.waitUntil(lambda: bool(about.info), timeout=20_000)
    for key in ("Python", "PySide6", "torch", "faster-whisper", "GPU", "ffmpeg", "Library"):
        assert key in about.info
    assert about.info["Library"] == str(library)
    assert "ffmpeg" in about.text()


def test_playback_shortcuts_are_bound(gui):
    keys = {a.shortcut().toString() for a in gui.actions()}
    assert {"Space", "Left", "Right", "J", "K", "L"} <= keys


def test_pyside_calls_cannot_exhaust_none_true_false(qapp):
    """PySide6 6.12.0 on Python 3.11 drops a reference to None/True/False per call;
    ui.qt_compat must keep a long session (millions of calls) from aborting."""
    import sys

    import ui  # noqa: F401  (applies the work-around)
    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal(object)

    probe = Probe()
    probe.ping.connect(lambda _: None)
    for _ in range(300_000):            # more than the references a process starts with
        probe.setObjectName("x")       # returns None
        probe.ping.emit(1)             # returns True
    assert sys.getrefcount(None) > 0 and sys.getrefcount(True) > 0


def test_job_rows_follow_runner_events(qtbot):
    from ui.jobs_panel import JobsModel
    model = JobsModel()
    base = {"media_id": 7, "path": "/m/a.mp4", "job_id": 1}
    seen = []
    for event in ({"type": "job_started", "stage": "probe", "fraction": 0.0},
                  {"type": "job_finished", "stage": "probe", "state": "done"},
                  {"type": "job_started", "stage": "speech", "fraction": 0.0},
                  {"type": "progress", "stage": "speech", "fraction": 0.5, "eta": 12.0},
                  {"type": "job_finished", "stage": "speech", "state": "done"},
                  {"type": "job_started", "stage": "text", "fraction": 0.0}):
        model.apply_event({**base, **event})
        seen.append(model.row(7)["progress"])
    assert seen == sorted(seen) and 0 < seen[-1] < 1           # never goes back
    assert JobsModel.progress_text(model.row(7)) == "Text · 0%"
    model.apply_event({**base, "type": "job_finished", "stage": "text", "state": "failed",
                       "error": "Ran out of memory during text."})
    row = model.row(7)
    assert row["state"] == "failed" and row["error"].startswith("Ran out")
    assert model.overall()[:2] == (1, 1)
    model.sync_media([{"id": 7, "path": "/m/a.mp4", "status": "queued", "error": None}])
    assert model.row(7)["state"] == "queued" and model.row(7)["progress"] == 0.0   # retried


def test_a_files_share_done_follows_its_stages_in_any_order(qtbot):
    """Visual ending before speech starts is a quarter of a video's work, not all of it
    (the bar said 99 % and "about 0 s left" with every file's speech still queued)."""
    from ui.jobs_panel import JobsModel
    model = JobsModel()
    media = [{"id": i, "path": f"/m/{i}.mp4", "status": "indexing", "error": None,
              "kind": "audio+video"} for i in (1, 2)]
    model.sync_media(media)
    for i in (1, 2):
        for stage in ("probe", "subtitles", "visual"):
            model.apply_event({"type": "job_finished", "media_id": i, "path": f"/m/{i}.mp4",
                               "job_id": 0, "stage": stage, "state": "done"})
    finished, total, fraction, _ = model.overall()
    assert (finished, total) == (0, 2) and 0.25 < fraction < 0.4
    # an audio file's speech is most of it, and it gets no visual stage
    model.sync_media(media + [{"id": 3, "path": "/m/3.wav", "status": "indexing",
                               "error": None, "kind": "audio"}])
    for stage, fraction in (("probe", 1.0), ("speech", 0.5)):
        model.apply_event({"type": "job_started", "media_id": 3, "path": "/m/3.wav",
                           "job_id": 0, "stage": stage, "fraction": fraction})
        if fraction == 1.0:
            model.apply_event({"type": "job_finished", "media_id": 3, "path": "/m/3.wav",
                               "job_id": 0, "stage": stage, "state": "done"})
    assert 0.45 < model.row(3)["progress"] < 0.55          # (0.05 + 0.3) / 0.71
