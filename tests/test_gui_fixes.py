"""Fixes for bugs a user found in the window, each driven through real widgets on a
real library file."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_MEDIA_BACKEND", "ffmpeg")

from PySide6.QtCore import QEvent, QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.gui import build  # noqa: E402
from app.settings import Settings  # noqa: E402


def open_window(qtbot, library, tmp_path):
    """The real window on `library`, shown, its service started and idle."""
    qsettings = QSettings(str(tmp_path / "ui.ini"), QSettings.IniFormat)
    service, window = build(library, Settings(whisper_model="tiny.en"), qsettings)
    qtbot.addWidget(window)
    window.show()
    service.start()
    qtbot.waitUntil(lambda: not service.is_running, timeout=20_000)
    return window


@pytest.fixture
def gui(qtbot, library, tmp_path):
    window = open_window(qtbot, library, tmp_path)
    yield window
    window.service.shutdown()


def test_a_huge_query_does_not_widen_the_window(qtbot, gui):
    gui.resize(1100, 700)
    qtbot.waitUntil(lambda: gui.width() == 1100)
    query = "sensibility" * 910                       # 10,010 characters, no space to wrap at
    QApplication.clipboard().setText(query)
    gui.search_box.setFocus()
    qtbot.keyClick(gui.search_box, Qt.Key_V, Qt.ControlModifier)    # pasted, as a user would
    assert gui.search_box.text() == query
    qtbot.waitUntil(lambda: "sensibility" in gui.results.summary.text(), timeout=20_000)
    for _ in range(10):         # layouts pass the new size up one level per request
        QApplication.sendPostedEvents(None, QEvent.LayoutRequest)
    assert gui.width() <= 1100
    assert gui.minimumSizeHint().width() < 1100
    assert gui.search_box.sizeHint().width() < 1100
    assert len(gui.results.summary.text()) < 200           # the query is cut in the middle


def run_elsewhere(library, code: str) -> None:
    """Python in a separate process on the same library file, as `avindex index` is."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    prelude = ("import sys; from indexer.store import Store; "
               f"store = Store({str(library)!r})\n")
    subprocess.run([sys.executable, "-c", prelude + code + "\nstore.close()"], cwd=root,
                   check=True, timeout=60)


def test_files_another_process_adds_appear_while_open(qtbot, gui, library, tmp_path):
    assert gui.library_panel.all_media() == []
    path = str(tmp_path / "from_cli.mp4")
    run_elsewhere(library, f"store.add_media({path!r}, 'fp-cli', 10, 1)")
    qtbot.waitUntil(lambda: any(m["path"] == path for m in gui.library_panel.all_media()),
                    timeout=15_000)
    assert gui.library_panel.stack.currentIndex() == 1          # the table, not the hint
    # ... and what that process then does to the file shows too
    run_elsewhere(library, "job = store.claim_next_job(); "
                           "store.finish_job(job['id'], 'failed', 'unreadable here')")
    qtbot.waitUntil(lambda: gui.library_panel.all_media()[0]["status"] == "failed",
                    timeout=15_000)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from media_factory import make_media
    return make_media(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=4.0)


def test_an_opened_video_shows_its_frame_before_play(qtbot, gui, clip):
    player = gui.player
    frames = []

    def on_frame(f):        # called on the renderer's thread: disconnected before teardown
        if f.isValid():
            frames.append(f.startTime() / 1e6)
    sink = player.video.videoSink()
    sink.videoFrameChanged.connect(on_frame)
    with qtbot.waitSignal(gui.service.files_added, timeout=15_000):
        gui.add_paths([str(clip)])         # a media row of the library: the window unloads
    row = next(r for r in gui.jobs_panel.model.rows() if r["path"] == str(clip))
    player.load(row["media_id"], str(clip), 2.0, play=False)   # players of files it lacks
    qtbot.waitUntil(lambda: bool(frames), timeout=15_000)
    assert abs(frames[-1] - 2.0) < 0.5                       # the frame at that moment
    assert not player.is_playing()
    qtbot.waitUntil(lambda: abs(player.position_s() - 2.0) < 0.5, timeout=5000)
    player.toggle_play()                                       # and play goes on from there
    qtbot.waitUntil(player.is_playing, timeout=5000)
    sink.videoFrameChanged.disconnect(on_frame)


def shown_text(table, index) -> str:
    """The text a view cell draws: its data, elided as the view elides it to the cell."""
    from PySide6.QtWidgets import QStyleOptionViewItem
    opt = QStyleOptionViewItem()
    table.initViewItemOption(opt)
    table.itemDelegateForIndex(index).initStyleOption(opt, index)
    width = table.columnWidth(index.column()) - 8              # the cell's text margins
    return opt.fontMetrics.elidedText(opt.text, opt.textElideMode, width)


def test_job_rows_keep_the_end_of_long_names(qtbot):
    from ui.jobs_panel import JobsPanel
    panel = JobsPanel()
    qtbot.addWidget(panel)
    panel.resize(700, 300)
    panel.show()
    paths = [f"/books/austen/sense_and_sensibility_01_librivox_64kb_chapter_{n:02d}.mp3"
             for n in range(1, 6)]
    for media_id, path in enumerate(paths, 1):
        panel.model.apply_event({"type": "job_started", "media_id": media_id, "path": path,
                                 "stage": "speech", "fraction": 0.0, "eta": None})
    model = panel.model
    shown = [shown_text(panel.table, model.index(r, 0)) for r in range(5)]
    assert all("…" in s for s in shown)                    # too long for the column
    assert len(set(shown)) == 5                            # yet each row tells its file
    assert [s[-7:] for s in shown] == [f"_{n:02d}.mp3" for n in range(1, 6)]
    assert [model.index(r, 0).data(Qt.ToolTipRole) for r in range(5)] == paths


class FakeWorker:
    """Does a worker's part on the real library (claims and finishes jobs through the
    Store) and sends its events the way the runner's events reach the window."""

    def __init__(self, gui, library):
        from indexer.store import Store
        self.store = Store(library)
        self.emit = gui.service._runner_event.emit

    def add(self, path: str) -> int:
        return self.store.add_media(path, f"fp-{path}", 10, 1)

    def event(self, job: dict, kind: str, **fields) -> None:
        self.emit({"type": kind, "job_id": job["id"], "media_id": job["media_id"],
                   "path": job["path"], "stage": job["stage"], **fields})

    def start(self) -> dict:
        job = self.store.claim_next_job()
        self.event(job, "job_started", fraction=0.0, eta=None)
        return job

    def finish(self, job: dict, then: tuple = ()) -> None:
        if job["stage"] == "probe":
            if os.path.exists(job["path"]):
                from indexer.stages.probe import probe
                info = probe(job["path"]).to_dict()
            else:
                info = {"duration": 60.0, "container": "mp4", "streams": [],
                        "kind": "audio+video"}
            self.store.save_probe(job["media_id"], info, then)
        self.store.finish_job(job["id"], "done")
        self.event(job, "job_finished", state="done", error=None)

    def close(self) -> None:
        self.store.close()


def test_jobs_show_the_time_left_for_the_job_and_the_batch(qtbot, gui, library, tmp_path):
    now = [1000.0]
    model = gui.jobs_panel.model
    model.clock = lambda: now[0]
    worker = FakeWorker(gui, library)
    try:
        for n in range(4):
            worker.add(str(tmp_path / f"part_{n}.mp4"))
        qtbot.waitUntil(lambda: len(model.rows()) == 4, timeout=15_000)
        for _ in range(4):
            worker.finish(worker.start(), then=("speech",))     # probes go first
        speech = worker.start()
        now[0] += 60                                     # a minute into the batch
        worker.event(speech, "progress", fraction=0.5, eta=30.0)
        row = model._index[speech["media_id"]]
        qtbot.waitUntil(lambda: model.index(row, 2).data() == "30 s left", timeout=5000)
        # the batch in 60 s: 4 files probed (0.05 each), one half through speech (0.6 x 0.5)
        done = (3 * 0.05 + 0.05 + 0.3) / 4
        assert model.batch_eta() == pytest.approx(60 * (1 - done) / done, abs=1)
        qtbot.waitUntil(lambda: "about 7 min 00 s left" in gui.jobs_panel.summary.text(),
                        timeout=5000)
        assert "about 7 min 00 s left" in gui.progress_label.text()
    finally:
        worker.close()


def test_files_done_count_keeps_up_with_a_busy_batch(qtbot, gui, library, tmp_path):
    import re
    worker = FakeWorker(gui, library)
    try:
        for n in range(29):
            worker.add(str(tmp_path / f"short_{n:02d}.mp4"))
        qtbot.waitUntil(lambda: len(gui.jobs_panel.model.rows()) == 29, timeout=15_000)
        counts = []
        for n in range(29):                 # short files: events far closer than 200 ms
            worker.finish(worker.start())  # the probe is each file's only job
            qtbot.wait(40)
            found = re.search(r"(\d+) of 29 files done", gui.progress_label.text())
            counts.append(int(found.group(1)) if found else None)
        # the last file done may already have cleared the label (the batch is over)
        during = counts[:-1] + ([] if counts[-1] is None else [counts[-1]])
        assert None not in during, counts           # the count never blanks mid-batch
        assert max(during) >= 1 and during == sorted(during), counts
        qtbot.waitUntil(lambda: gui.progress_label.text() == "", timeout=5000)   # all done
        assert all(r["state"] == "done" for r in gui.jobs_panel.model.rows())
    finally:
        worker.close()


def test_a_duration_reads_the_same_in_the_library_and_the_player(qtbot, gui, library,
                                                                  tmp_path):
    from media_factory import make_media
    clip = make_media(tmp_path / "lecture.mp4", seconds=79.6)
    worker = FakeWorker(gui, library)
    try:
        media_id = worker.add(str(clip))
        worker.finish(worker.start())                      # the real probe
    finally:
        worker.close()
    qtbot.waitUntil(lambda: bool((gui.library_panel.media(media_id) or {}).get("duration")),
                    timeout=15_000)
    assert 79.5 < gui.library_panel.media(media_id)["duration"] < 80
    proxy = gui.library_panel.proxy
    in_library = proxy.index(0, 1).data()
    gui.open_media(media_id)
    qtbot.waitUntil(lambda: gui.player.player.duration() > 0, timeout=15_000)
    in_player = gui.player.time_label.text().split(" / ")[1]
    assert in_library == in_player == "1:19"


def test_export_asks_before_overwriting(qtbot, gui, library, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox
    worker = FakeWorker(gui, library)
    try:
        media_id = worker.add(str(tmp_path / "talk.mp4"))
        worker.finish(worker.start())
        worker.store.save_transcript(media_id, "en", [
            {"start": 0.0, "end": 2.0, "text": "Good morning everyone.", "words": []}])
    finally:
        worker.close()
    qtbot.waitUntil(lambda: gui.library_panel.media(media_id) is not None, timeout=15_000)
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "talk.srt"
    existing.write_text("the user's own subtitles", encoding="utf-8")
    asked, answer = [], [QMessageBox.No]

    def question(parent, title, text, *args):
        asked.append(text)
        return answer[0]
    monkeypatch.setattr(QMessageBox, "question", question)

    def export():
        dialog = gui.open_export_dialog([media_id])
        dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("srt"))
        dialog.elsewhere.setChecked(True)
        dialog.folder_edit.setText(str(out))
        dialog.accept()
        return dialog

    requested = []
    gui.service.export_finished.connect(lambda written, problems: requested.append(written))
    dialog = export()
    assert len(asked) == 1 and "talk.srt" in asked[0]
    assert dialog.isVisible() and dialog.result() != dialog.DialogCode.Accepted  # not closed
    dialog.reject()
    qtbot.wait(300)
    assert requested == [] and existing.read_text(encoding="utf-8") == "the user's own subtitles"

    answer[0] = QMessageBox.Yes
    export()
    qtbot.waitUntil(lambda: bool(requested), timeout=10_000)
    assert len(asked) == 2 and requested == [[str(existing)]]
    assert "Good morning everyone." in existing.read_text(encoding="utf-8")


def test_disk_full_pauses_indexing_until_resumed(qtbot, gui, tmp_path):
    import threading

    from media_factory import make_text_as_media
    message = (f"The disk holding {gui.service.library} is full. Free some space on it, "
               "then resume indexing.")
    runner = gui.service._runner                 # the runner start() made, and its events' way
    said = threading.Thread(target=runner.on_event,
                            args=({"type": "disk_full", "message": message},))
    said.start()                                 # from a thread of its own, as the runner's
    said.join()
    banner = gui.disk_banner
    qtbot.waitUntil(banner.isVisible, timeout=5000)
    assert banner.label.text() == message

    broken = make_text_as_media(tmp_path / "broken.mp4")   # fails its probe at once
    with qtbot.waitSignal(gui.service.files_added, timeout=15_000):
        gui.add_paths([str(broken)])
    assert not gui.service.is_running                       # paused: it waits in the queue
    row = next(r for r in gui.jobs_panel.model.rows() if r["path"] == str(broken))
    assert row["state"] == "queued" and banner.isVisible()

    qtbot.mouseClick(banner.resume_button, Qt.LeftButton)
    assert not banner.isVisible()
    qtbot.waitUntil(lambda: gui.jobs_panel.model.row(row["media_id"])["state"] == "failed",
                    timeout=30_000)                          # indexed (and failed) after all


def test_adding_files_to_a_library_on_a_full_disk_shows_the_banner(qtbot, small_disk, tmp_path):
    from media_factory import make_media
    window = open_window(qtbot, small_disk / "library.db", tmp_path)
    service = window.service
    try:
        clip = make_media(tmp_path / "talk.wav", text="A full disk stops the intake.")
        small_disk.fill()
        window.add_paths([str(clip)])        # intake's INSERT meets the full disk
        qtbot.waitUntil(window.disk_banner.isVisible, timeout=15_000)
        text = window.disk_banner.label.text()
        assert "full" in text and str(small_disk) in text, text
        assert not service.is_running
    finally:
        service.shutdown()


def test_a_long_said_line_shows_its_match_not_only_its_start(qtbot):
    """A line longer than its column keeps the words before its first match that fit and
    drops the rest of its start ("…"), so the bold match is on screen; a line that fits,
    or one without a match, is drawn as it is."""
    from PySide6.QtWidgets import QStyleOptionViewItem, QTableView

    from ui.formatting import snippet_html, snippet_plain
    from ui.rich_text_delegate import MATCH_AT, RichTextDelegate, _x, first_bold
    from ui.search_panel import HitsModel
    opt = QStyleOptionViewItem()
    opt.font = QApplication.font()
    follow, plain = RichTextDelegate(follow_match=True), RichTextDelegate()
    line = ("Good morning everyone, today we review the quarterly plans, and after a long "
            "look at the numbers the [budget] for the launch is approved.")
    whole = plain._fitted(opt, snippet_html(line), 300)
    assert whole.toPlainText().startswith("Good morning")         # not following: as it is
    doc = follow._fitted(opt, snippet_html(line), 300)
    text = doc.toPlainText()
    assert text.startswith("…") and "Good morning" not in text
    assert "the numbers the budget" in text
    assert text.endswith("…") or text.endswith("is approved.")      # the rest, as it fits
    assert _x(doc, len(text)) <= 300
    start, end = first_bold(doc)
    assert text[start:end] == "budget"
    assert 0.5 * 300 < _x(doc, end) <= MATCH_AT * 300 + 1        # room used, match shown
    assert follow._fitted(opt, snippet_html(line), 2000).toPlainText() == snippet_plain(line)
    unmarked = follow._fitted(opt, snippet_html(snippet_plain(line)), 300).toPlainText()
    assert unmarked.startswith("Good morning") and unmarked.endswith("…")   # a whole word, …
    assert unmarked[:-1].rstrip() + " " in snippet_plain(line) + " "
    # drawn in the results table without error, the column narrower than the line
    model = HitsModel()
    model.set_hits([{"name": "talk.mp4", "seek": 12.0, "snippet": line, "kind": "said",
                     "path": "/m/talk.mp4", "media_kind": "video"}])
    table = QTableView()
    qtbot.addWidget(table)
    table.setModel(model)
    table.setItemDelegateForColumn(HitsModel.SNIPPET_COL, follow)
    table.setColumnWidth(HitsModel.SNIPPET_COL, 300)
    table.resize(800, 200)
    table.show()
    assert not table.grab().isNull()
