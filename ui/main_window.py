"""The main window: library, jobs and search results on the left, the player and the
transcript of the playing file on the right (with who says each line: renaming or
merging a speaker there goes to the service, and "where else does this voice speak"
becomes a speaker:… search). A People tab shows everyone the faces stage found (rename,
merge, hide, show appearances); a person timeline under the player shows who is on
screen when, and "More of this person" (a result's or the player's context menu) lists
the other moments of who is seen there. It talks to the library service only through
its methods and signals (plain data both ways)."""
from __future__ import annotations

import os

from PySide6.QtCore import QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QLabel, QMainWindow,
                               QProgressBar, QPushButton, QSizePolicy, QSplitter, QTabWidget,
                               QToolBar, QVBoxLayout, QWidget)

from .about_dialog import AboutDialog
from .export_dialog import ExportDialog
from .formatting import elided, eta_text, file_name
from .jobs_panel import JobsPanel
from .library_view import LibraryPanel
from .people_view import PeopleView
from .player import PlayerWidget
from .search_panel import IMAGE_EXTENSIONS, SearchBox, SearchResults, image_paths
from .settings_dialog import SettingsDialog
from .tags_dialog import GROUPS_TAB, TRAIN_TAB, TagsDialog
from .thumbnails import ThumbnailCache
from .transcript_panel import TranscriptPanel

LIBRARY_TAB, JOBS_TAB, SEARCH_TAB, PEOPLE_TAB = range(4)


class DropOverlay(QLabel):
    """Shown over the window while files are dragged onto it."""

    def __init__(self, parent):
        super().__init__("Drop to add to the library", parent)
        self.setAlignment(Qt.AlignCenter)
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.setStyleSheet("QLabel { background: rgba(26, 98, 181, 150); color: white;"
                           " font-size: 22px; font-weight: bold;"
                           " border: 3px dashed white; border-radius: 12px; }")
        self.hide()

    def cover(self) -> None:
        self.setGeometry(self.parentWidget().rect().adjusted(8, 8, -8, -8))
        self.raise_()
        self.show()


class PauseBanner(QFrame):
    """A bar across the top of the window while indexing is paused (the disk is full)."""

    resume_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("pause-banner")
        self.setStyleSheet("#pause-banner { background: #fce8e6; border-bottom: 1px solid "
                           "#b3261e; } #pause-banner QLabel { color: #5c0f0a; }")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.resume_button = QPushButton("Resume indexing")
        self.resume_button.clicked.connect(self.resume_requested)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 10, 6)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.resume_button)
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.show()


class MainWindow(QMainWindow):
    def __init__(self, service, qsettings: QSettings, version: str = "", parent=None):
        super().__init__(parent)
        self.service = service
        self.qsettings = qsettings
        self.version = version
        self._media_status: dict[int, str] = {}
        self._about: AboutDialog | None = None
        self.tags_dialog: TagsDialog | None = None
        self.export_dialog: ExportDialog | None = None
        self.last_export: tuple[list, list] | None = None
        self.setAcceptDrops(True)
        self.resize(1280, 800)

        self._last_search: tuple[str, object] | None = None   # what the results show
        self._warmed = False
        self.thumbnails = ThumbnailCache(self)     # one cache for library and results
        self.library_panel = LibraryPanel(thumbnails=self.thumbnails)
        self.jobs_panel = JobsPanel()
        self.results = SearchResults(thumbnails=self.thumbnails)
        self.people_view = PeopleView(thumbnails=self.thumbnails)
        self.player = PlayerWidget()
        self.transcript = TranscriptPanel()
        self.search_box = SearchBox()

        self.tabs = QTabWidget()
        self.tabs.addTab(self.library_panel, "Library")
        self.tabs.addTab(self.jobs_panel, "Jobs")
        self.tabs.addTab(self.results, "Search results")
        self.tabs.addTab(self.people_view, "People")
        self.right = QSplitter(Qt.Vertical)
        self.right.addWidget(self.player)
        self.right.addWidget(self.transcript)
        self.right.setStretchFactor(0, 3)
        self.right.setStretchFactor(1, 2)
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(self.tabs)
        self.splitter.addWidget(self.right)
        self.splitter.setStretchFactor(0, 5)
        self.splitter.setStretchFactor(1, 4)
        self.disk_banner = PauseBanner()
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.disk_banner)
        column.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self.overlay = DropOverlay(self)

        self._build_actions()
        self._build_toolbar()
        self._build_menus()
        self._build_status_bar()
        self._connect()
        self._restore_state()
        self._library_changed(str(service.library))

    # ---- construction ------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.add_files_action = a("Add &files…", self.choose_files, QKeySequence.Open,
                                  "Add audio or video files to the library")
        self.add_folder_action = a("Add fol&der…", self.choose_folder, "Ctrl+Shift+O",
                                   "Add every audio and video file in a folder (recursively)")
        self.export_action = a("&Export subtitles…", self.open_export_dialog, "Ctrl+E",
                               "Write SRT, WebVTT, JSON or text for the selected files")
        self.settings_action = a("&Settings…", self.open_settings, QKeySequence.Preferences)
        self.quit_action = a("&Quit", self.close, QKeySequence.Quit)
        self.play_action = a("&Play selected", self.play_selected, None,
                             "Play the selected file from the start")
        self.cancel_action = a("&Cancel indexing", self.cancel_selected, None)
        self.retry_action = a("&Retry failed", self.retry_selected, None)
        self.reveal_action = a("Open containing &folder", self.reveal_selected, None)
        self.search_action = a("&Search", self.focus_search, "Ctrl+K")
        self.image_search_action = a("Search by &image…", self.choose_image, "Ctrl+Shift+K",
                                     "Find the frames that look like a picture "
                                     "(or drop an image on the search box)")
        self.find_action = a("&Find in transcript", self.transcript.focus_find, QKeySequence.Find)
        # YouTube's convention: J/L jump 10 s, K toggles; arrows step 5 s.
        self.toggle_action = a("Play/&pause", self.player.toggle_play, "Space")
        self.toggle_k_action = a("Play/pause (K)", self.player.toggle_play, "K")
        self.back_action = a("Back 5 s", lambda: self.player.step(-5), "Left")
        self.forward_action = a("Forward 5 s", lambda: self.player.step(5), "Right")
        self.back_j_action = a("Back 10 s (J)", lambda: self.player.step(-10), "J")
        self.forward_l_action = a("Forward 10 s (L)", lambda: self.player.step(10), "L")
        self.about_action = a("&About and diagnostics", self.open_about)
        self.train_tag_action = a("&Train a tag…", lambda: self.open_tags_dialog(TRAIN_TAB),
                                  "Ctrl+T", "Teach a tag from example moments and tag the "
                                  "library with it; list and delete trained tags")
        self.groups_action = a("Motion &groups…", lambda: self.open_tags_dialog(GROUPS_TAB),
                               None, "Group the library's moments by how things move, and "
                               "name the groups")
        self.player_example_action = a("Use current &moment as tag example",
                                       self.add_player_example, "Ctrl+Shift+T",
                                       "The moment playing now (2 s either side) becomes an "
                                       "example in Train a tag")

    def _build_toolbar(self) -> None:
        bar = QToolBar("Main")
        bar.setMovable(False)
        bar.setObjectName("main-toolbar")
        bar.addAction(self.add_files_action)
        bar.addAction(self.add_folder_action)
        bar.addSeparator()
        bar.addWidget(QLabel(" Search: "))
        bar.addWidget(self.search_box)
        self.search_box.setMinimumWidth(420)
        bar.addAction(self.image_search_action)
        bar.addSeparator()
        bar.addAction(self.export_action)
        self.addToolBar(bar)

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for action in (self.add_files_action, self.add_folder_action, None, self.export_action,
                       None, self.settings_action, None, self.quit_action):
            file_menu.addSeparator() if action is None else file_menu.addAction(action)
        lib = menu.addMenu("&Library")
        for action in (self.play_action, self.reveal_action, None, self.cancel_action,
                       self.retry_action, None, self.search_action, self.image_search_action,
                       self.find_action):
            lib.addSeparator() if action is None else lib.addAction(action)
        play = menu.addMenu("&Playback")
        for action in (self.toggle_action, self.toggle_k_action, None, self.back_action,
                       self.forward_action, self.back_j_action, self.forward_l_action):
            play.addSeparator() if action is None else play.addAction(action)
        tools = menu.addMenu("&Tools")
        for action in (self.train_tag_action, self.groups_action, None,
                       self.player_example_action):
            tools.addSeparator() if action is None else tools.addAction(action)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.about_action)
        table = self.library_panel.table
        table.setContextMenuPolicy(Qt.ActionsContextMenu)
        for action in (self.play_action, self.export_action, self.reveal_action,
                       self.cancel_action, self.retry_action):
            table.addAction(action)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.progress_label = QLabel()
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFixedWidth(220)
        self.progress_bar.setFormat("%p%")
        self.device_label = QLabel()
        self.device_label.setStyleSheet("QLabel { padding: 0 6px; }")
        bar.addPermanentWidget(self.progress_label)
        bar.addPermanentWidget(self.progress_bar)
        bar.addPermanentWidget(self.device_label)
        self._update_overall()
        self._update_device_label()

    def _connect(self) -> None:
        s = self.service
        s.media_changed.connect(self._media_changed)
        s.job_event.connect(self._job_event)
        s.run_state_changed.connect(self._run_state_changed)
        s.indexing_paused.connect(self.disk_banner.show_message)
        s.indexing_resumed.connect(self.disk_banner.hide)
        self.disk_banner.resume_requested.connect(s.resume_indexing)
        s.files_added.connect(self._files_added)
        s.search_results.connect(self._search_results)
        s.example_results.connect(self._example_results)
        s.search_failed.connect(lambda text: self.results.show_failure("Search failed: " + text))
        s.tags_loaded.connect(self._tags_loaded)
        s.transcript_loaded.connect(self._transcript_loaded)
        s.speakers_loaded.connect(self.transcript.set_speakers)
        s.speakers_changed.connect(self._speakers_changed)
        s.voices_loaded.connect(self.results.set_voices)
        s.correction_saved.connect(self._correction_saved)
        s.export_finished.connect(self._export_finished)
        s.settings_changed.connect(lambda _: self._update_device_label())
        s.library_changed.connect(self._library_changed)
        s.message.connect(lambda text: self.statusBar().showMessage(text, 10000))
        s.error.connect(lambda text: self.statusBar().showMessage("Error: " + text, 15000))

        lp = self.library_panel
        lp.media_activated.connect(lambda mid: self.open_media(mid, 0.0, play=True))
        lp.selection_changed.connect(self._library_selection)
        lp.add_files_requested.connect(self.choose_files)
        lp.add_folder_requested.connect(self.choose_folder)
        self.jobs_panel.cancel_requested.connect(self.service.cancel)
        self.jobs_panel.retry_requested.connect(self.service.retry)
        self.jobs_panel.active_count_changed.connect(self._active_count)
        self.search_box.query_changed.connect(self._query_changed)
        self.search_box.submit.connect(self.results.activate_current)
        self.search_box.focus_results.connect(self.results.focus_table)
        self.results.hit_activated.connect(self.play_hit)
        self.results.more_like_requested.connect(self.more_like_this)
        self.results.add_example_requested.connect(self.add_hit_example)
        self.player.example_requested.connect(self.add_player_example)
        s.tags.tags_changed.connect(self._action_tags_changed)
        self.results.filters_changed.connect(lambda _: self._rerun_search())
        self.results.image_search_requested.connect(self.choose_image)
        self.search_box.image_dropped.connect(self.search_by_image)
        self.player.position_changed.connect(self.transcript.follow)
        self.transcript.seek_requested.connect(self._seek_from_transcript)
        self.transcript.correction_made.connect(self.service.correct)
        self.transcript.speaker_rename_requested.connect(self.service.name_speaker)
        self.transcript.speaker_merge_requested.connect(self.service.merge_speakers)
        self.transcript.voice_search_requested.connect(self.search_voice)
        self.results.voice_search_requested.connect(self.search_voice)
        self.results.voices_wanted.connect(self.service.voices)

        pv = self.people_view
        s.people_loaded.connect(pv.set_people)
        s.people_changed.connect(self._people_changed)
        s.appearances_loaded.connect(self._appearances_loaded)
        pv.rename_requested.connect(s.name_person)
        pv.merge_requested.connect(s.merge_people)
        pv.hide_requested.connect(s.hide_person)
        pv.people_wanted.connect(s.people)
        pv.appearances_requested.connect(self.show_person_appearances)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.results.person_more_requested.connect(self.more_of_person)
        self.player.more_of_person_requested.connect(
            lambda who: self.more_of_person(who, who.get("person_id")))

    # ---- adding files --------------------------------------------------------------------
    def add_paths(self, paths: list[str]) -> None:
        """What a drop and the File menu both do."""
        paths = [p for p in paths if p]
        if not paths:
            return
        self.service.add_paths(paths)
        self.statusBar().showMessage(f"Adding {len(paths)} item(s)…", 5000)

    def choose_files(self) -> None:
        exts = " ".join(f"*{e}" for e in self.service.media_extensions())
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Add files", self.qsettings.value("ui/last_dir", os.path.expanduser("~")),
            f"Audio and video ({exts});;All files (*)")
        if paths:
            self.qsettings.setValue("ui/last_dir", os.path.dirname(paths[0]))
            self.add_paths(paths)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Add folder", self.qsettings.value("ui/last_dir", os.path.expanduser("~")))
        if folder:
            self.qsettings.setValue("ui/last_dir", folder)
            self.add_paths([folder])

    @staticmethod
    def _local_paths(mime) -> list[str]:
        if not mime.hasUrls():
            return []
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]

    def dragEnterEvent(self, event):
        if self._local_paths(event.mimeData()):
            event.acceptProposedAction()
            self.overlay.setText("Drop to search by this picture" if image_paths(
                event.mimeData()) else "Drop to add to the library")
            self.overlay.cover()
        else:
            event.ignore()

    def dragMoveEvent(self, event):
        if self._local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dragLeaveEvent(self, event):
        self.overlay.hide()

    def dropEvent(self, event):
        self.overlay.hide()
        images = image_paths(event.mimeData())
        if images:                      # pictures are not media: search by them instead
            event.acceptProposedAction()
            self.search_by_image(images[0])
            return
        paths = self._local_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        if self.overlay.isVisible():
            self.overlay.cover()

    # ---- service feedback --------------------------------------------------------------
    def _media_changed(self, rows: list) -> None:
        self.library_panel.set_media(rows)
        self.jobs_panel.model.sync_media(rows)
        current = self.player.media_id
        statuses = {r["id"]: r["status"] for r in rows}
        if current is not None:
            if current not in statuses:
                self.player.unload()
                self.transcript.clear()
            elif statuses[current] != self._media_status.get(current):
                self.service.transcript(current)    # e.g. it just finished indexing
                self.service.tag_ranges(current)
                self.service.face_appearances(current)
        if self.tabs.currentIndex() == PEOPLE_TAB and statuses != self._media_status:
            self._refresh_people()
        self._media_status = statuses
        self._update_overall()

    def _job_event(self, event: dict) -> None:
        self.jobs_panel.model.apply_event(event)
        self._update_overall()

    def _run_state_changed(self, running: bool) -> None:
        if not running:
            self.jobs_panel.model.end_batch_if_idle()
        self._update_overall()

    def _files_added(self, intakes: list, problems: list) -> None:
        counts: dict[str, int] = {}
        for i in intakes:
            counts[i["action"]] = counts.get(i["action"], 0) + 1
        words = {"new": "new", "changed": "changed", "relinked": "moved (re-linked)",
                 "unchanged": "already indexed", "retry": "retried", "unreadable": "unreadable",
                 "subtitles": "subtitle file(s) read again for their media",
                 "no_media": "subtitle file(s) whose media is not in the library"}
        parts = [f"{n} {words.get(k, k)}" for k, n in counts.items()]
        if problems:
            parts.append(f"{len(problems)} not found")
        if not intakes and not problems:
            parts.append("no audio or video files found")
        self.statusBar().showMessage("Added: " + ", ".join(parts), 10000)
        if any(i["action"] in ("new", "changed", "retry", "unreadable", "subtitles")
               for i in intakes):
            self.tabs.setCurrentIndex(JOBS_TAB)

    def _update_overall(self) -> None:
        finished, total, fraction, running = self.jobs_panel.model.overall()
        active = total and finished < total
        self.progress_bar.setVisible(bool(active))
        if not active:
            self.progress_label.setText("")
            return
        self.progress_bar.setValue(int(fraction * 1000))
        text = "Indexing: " + self.jobs_panel.model.batch_summary()
        if running:
            text += (f" · {elided(file_name(running['path']), 40)}: {running['stage']} "
                     f"{running['fraction'] * 100:.0f}%")
            if running.get("eta") is not None:
                text += f" · {eta_text(running['eta'])}"
        self.progress_label.setText(text)

    def _active_count(self, n: int) -> None:
        self.tabs.setTabText(JOBS_TAB, f"Jobs ({n})" if n else "Jobs")

    def _update_device_label(self) -> None:
        settings = self.service.settings()
        device = self.service.device_label()
        self.device_label.setText(f"{device} · Whisper {settings.whisper_model}")
        self.device_label.setToolTip(f"Speech engine: {settings.asr_engine}, device setting: "
                                     f"{settings.device}, threads: {settings.threads or 'all'}")

    def _library_changed(self, path: str) -> None:
        self.setWindowTitle(f"avindex — {path}")
        self.player.unload()
        self.transcript.clear()
        self._update_device_label()
        self.service.voices()
        self.people_view.set_people([])
        if self.tabs.currentIndex() == PEOPLE_TAB:
            self._refresh_people()

    # ---- search and playback -------------------------------------------------------------
    def focus_search(self) -> None:
        self.search_box.setFocus()
        self.search_box.selectAll()

    def _query_changed(self, query: str) -> None:
        self._last_search = ("text", query)
        filters = self.results.filters()
        self.service.search(query, filters)
        if query.strip() or filters.get("speaker"):
            self.tabs.setCurrentIndex(SEARCH_TAB)

    def _search_results(self, query: str, hits: list) -> None:
        if query == self.search_box.text() and self._last_search == ("text", query):
            self.results.show_hits(query, hits)

    def search_voice(self, voice: dict) -> None:
        """The moments a voice speaks, across the library (the transcript's "Where else
        does this voice speak", a result's "More of this voice"): a speaker:… search,
        left in the search box to refine."""
        query = self.service.voice_query(voice.get("name"), voice.get("voice_id"))
        self.results.speaker_filter.set_value("", quiet=True)   # the query names the voice
        self.search_box.setText(query)
        self.search_box.cancel_pending()
        self.results.show_busy("Looking for the moments " + (
            f"“{voice['name']}” speaks…" if voice.get("name") else "this voice speaks…"))
        self._query_changed(query)

    def _speakers_changed(self, change: dict) -> None:
        """A speaker was named or merged: names change in every file with that voice."""
        if self.transcript.media_id is not None:
            self.service.transcript(self.transcript.media_id)
        mode, query = self._last_search or (None, None)
        filters = self.results.filters()
        if mode == "text" and (query.strip() or filters.get("speaker")):
            self.service.search(query, filters)   # results show who says each moment

    def choose_image(self) -> None:
        exts = " ".join(f"*{e}" for e in IMAGE_EXTENSIONS)
        path, _ = QFileDialog.getOpenFileName(
            self, "Search by image", self.qsettings.value("ui/last_image_dir",
                                                          os.path.expanduser("~")),
            f"Images ({exts});;All files (*)")
        if path:
            self.qsettings.setValue("ui/last_image_dir", os.path.dirname(path))
            self.search_by_image(path)

    def search_by_image(self, path: str) -> None:
        """Find the keyframes that look like a picture; results show as moments."""
        self._last_search = ("image", path)
        self.search_box.clear()
        self.search_box.cancel_pending()       # clearing the box must not search for ""
        self.results.show_busy(f"Looking for frames like {os.path.basename(path)}…")
        self.tabs.setCurrentIndex(SEARCH_TAB)
        self.service.search_image(path, self.results.filters())

    def more_like_this(self, hit: dict) -> None:
        """Moments like a result, in its own modality (speech or frames)."""
        self._last_search = ("similar", hit)
        self.results.show_busy(f"Looking for moments like {hit['name']} at "
                               f"{hit.get('seek', 0):.0f} s…")
        self.tabs.setCurrentIndex(SEARCH_TAB)
        self.service.more_like_this(hit, self.results.filters())

    # ---- people ------------------------------------------------------------------------
    def _tab_changed(self, index: int) -> None:
        if index == PEOPLE_TAB:
            self._refresh_people()

    def _refresh_people(self) -> None:
        self.service.people(self.people_view.show_hidden.isChecked())

    def show_person_appearances(self, person: dict) -> None:
        """The People view's "Show appearances": the person's moments as results."""
        self._last_search = ("person", person)
        label = person.get("name") or f"Person {person['id']}"
        self.results.show_busy(f"Looking for the moments {label} is on screen…")
        self.tabs.setCurrentIndex(SEARCH_TAB)
        self.service.person_appearances(person, self.results.filters())

    def more_of_person(self, moment: dict, person_id: int | None = None) -> None:
        """The other moments of who is on screen in a moment (a result, or the player's
        current second): the most prominent person there unless `person_id`."""
        self._last_search = ("more_person", (dict(moment), person_id))
        self.results.show_busy("Looking for more of this person…")
        self.tabs.setCurrentIndex(SEARCH_TAB)
        self.service.more_of_person(moment, person_id, self.results.filters())

    def _people_changed(self, change: dict) -> None:
        """A person was renamed, merged or hidden: names change in the timeline and in
        results that show who is on screen."""
        if self.player.media_id is not None:
            self.service.face_appearances(self.player.media_id)
        mode, what = self._last_search or (None, None)
        if mode == "text" and what.strip():
            self.service.search(what, self.results.filters())

    def _appearances_loaded(self, media_id: int, rows: list) -> None:
        row = self.library_panel.media(media_id)
        self.player.set_appearances(media_id, rows, row.get("duration") if row else None)

    def _example_results(self, request: dict, hits: list) -> None:
        # The service answers only the newest request; a text typed since has its own.
        if self._last_search and self._last_search[0] == request.get("mode"):
            self.results.show_examples(request, hits)

    def _rerun_search(self) -> None:
        mode, what = self._last_search or (None, None)
        if mode is None and self.results.filters().get("speaker"):
            self._query_changed(self.search_box.text())   # a speaker's moments, no words
        elif mode == "text":
            self._query_changed(what)
        elif mode == "image":
            self.search_by_image(what)
        elif mode == "similar":
            self.more_like_this(what)
        elif mode == "person":
            self.show_person_appearances(what)
        elif mode == "more_person":
            self.more_of_person(*what)

    def _tags_loaded(self, media_id: int, tags: list) -> None:
        row = self.library_panel.media(media_id)
        self.player.set_tags(media_id, tags, row.get("duration") if row else None)

    def play_hit(self, hit: dict) -> None:
        self.open_media(hit["media_id"], float(hit["seek"]), play=True, path=hit["path"])

    def open_media(self, media_id: int, position: float = 0.0, play: bool = False,
                   path: str | None = None) -> None:
        row = self.library_panel.media(media_id)
        path = path or (row["path"] if row else None)
        if path is None:
            return
        if not os.path.exists(path):
            self.statusBar().showMessage(f"{path} is gone (moved or deleted).", 10000)
            return
        changed = self.player.media_id != media_id
        self.player.load(media_id, path, position, play=play)
        if changed:
            self.service.tag_ranges(media_id)
            self.service.face_appearances(media_id)
        if changed or self.transcript.media_id != media_id:
            self.transcript.set_transcript(media_id, file_name(path), [],
                                           row["status"] if row else None)
            self.transcript.placeholder.setText("Loading transcript…")
            self.service.transcript(media_id)

    def _library_selection(self, ids: list) -> None:
        if len(ids) == 1 and ids[0] != self.player.media_id:
            self.open_media(ids[0], 0.0, play=False)

    def _seek_from_transcript(self, seconds: float) -> None:
        self.player.seek(seconds)

    def _transcript_loaded(self, media_id: int, segments: list) -> None:
        if media_id != self.player.media_id:
            return
        row = self.library_panel.media(media_id)
        self.transcript.set_transcript(media_id, file_name(self.player.path or ""), segments,
                                       row["status"] if row else None)
        self.transcript.follow(self.player.position_s())

    def _correction_saved(self, media_id: int, segment_id: int, text: str) -> None:
        self.transcript.apply_correction(segment_id, text)
        self.statusBar().showMessage("Correction saved; search and export use it.", 5000)
        if self.search_box.text().strip():
            self.service.search(self.search_box.text())

    # ---- selection commands -----------------------------------------------------------
    def _target_ids(self) -> list[int]:
        ids = self.library_panel.selected_ids()
        if not ids and self.player.media_id is not None:
            ids = [self.player.media_id]
        return ids

    def play_selected(self) -> None:
        ids = self.library_panel.selected_ids()
        if ids:
            self.open_media(ids[0], 0.0, play=True)

    def cancel_selected(self) -> None:
        ids = self.library_panel.selected_ids()
        if ids:
            self.service.cancel(ids)

    def retry_selected(self) -> None:
        self.service.retry(self.library_panel.selected_ids())

    def reveal_selected(self) -> None:
        for media_id in self._target_ids()[:1]:
            row = self.library_panel.media(media_id)
            if row:
                QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(row["path"])))

    # ---- dialogs -----------------------------------------------------------------------
    def open_export_dialog(self, media_ids: list[int] | None = None) -> ExportDialog | None:
        ids = media_ids or self._target_ids()
        media = [m for m in (self.library_panel.media(i) for i in ids) if m]
        if not media:
            self.statusBar().showMessage("Select the files to export in the library first.", 8000)
            return None
        dialog = ExportDialog(media, self.service.export_target,
                              fmt=self.qsettings.value("export/format", "srt"),
                              folder=self.qsettings.value("export/folder", ""),
                              speaker_names=self.qsettings.value("export/speaker_names", False,
                                                                 type=bool), parent=self)
        dialog.accepted.connect(lambda: self._export_accepted(dialog))
        dialog.finished.connect(dialog.deleteLater)
        self.export_dialog = dialog
        dialog.open()
        return dialog

    def _export_accepted(self, dialog: ExportDialog) -> None:
        self.qsettings.setValue("export/format", dialog.format())
        if dialog.folder():
            self.qsettings.setValue("export/folder", dialog.folder())
        if dialog.format() == "srt":
            self.qsettings.setValue("export/speaker_names", dialog.speaker_checked())
        self.service.export(dialog.media_ids(), dialog.format(), dialog.folder(),
                            speaker_names=dialog.speaker_names())

    def _export_finished(self, written: list, problems: list) -> None:
        self.last_export = (written, problems)
        text = f"Exported {len(written)} file(s)"
        if written:
            text += f": {written[0]}" + (" …" if len(written) > 1 else "")
        if problems:
            text += f". Skipped {len(problems)}: " + "; ".join(
                f"{file_name(p)} ({why})" for p, why in problems[:3])
        self.statusBar().showMessage(text, 15000)

    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.service.settings_dict(),
                                str(self.service.settings().resolved_models_dir()), self,
                                folder_problem=self.service.watch_folder_problem,
                                network_share=self.service.network_share)
        dialog.accepted.connect(lambda: self.apply_settings(dialog.values()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    def apply_settings(self, values: dict) -> None:
        for key, value in values.items():
            if key != "watched_folders":        # the library's own, saved in it
                self.qsettings.setValue(f"settings/{key}", value)
        self.qsettings.sync()
        self.service.set_settings(values)

    def open_about(self) -> AboutDialog:
        if self._about is None:
            self._about = AboutDialog(self.version, self)
            self.service.diagnostics_ready.connect(self._about.set_diagnostics)
        self.service.request_diagnostics()
        self._about.show()
        self._about.raise_()
        return self._about

    # ---- action tags -------------------------------------------------------------------
    def open_tags_dialog(self, tab: int = TRAIN_TAB) -> TagsDialog:
        if self.tags_dialog is None:
            self.tags_dialog = TagsDialog(self.service.tags, self.thumbnails,
                                          self.service.media_extensions(), self)
            self.tags_dialog.play_requested.connect(
                lambda mid, path, t: self.open_media(mid, t, play=True, path=path))
            self.tags_dialog.result_example_requested.connect(self.add_current_hit_example)
            self.tags_dialog.player_example_requested.connect(self.add_player_example)
        self.tags_dialog.tabs.setCurrentIndex(tab)
        self.tags_dialog.show()
        self.tags_dialog.raise_()
        self.tags_dialog.activateWindow()
        return self.tags_dialog

    def add_hit_example(self, hit: dict) -> None:
        """A search result's moment becomes an example in Train a tag."""
        self.open_tags_dialog(TRAIN_TAB).add_hit(hit)

    def add_current_hit_example(self) -> None:
        hit = self.results.current_hit()
        if hit is None:
            self.statusBar().showMessage("Select a moment in the search results first.", 8000)
            return
        self.add_hit_example(hit)

    def add_player_example(self) -> None:
        if self.player.media_id is None or not self.player.path:
            self.statusBar().showMessage("Play a video first, then add its moment.", 8000)
            return
        self.open_tags_dialog(TRAIN_TAB).add_player_moment(
            self.player.media_id, self.player.path, self.player.position_s())

    def _action_tags_changed(self) -> None:
        """A tag was trained, deleted or named: the timeline and the results change."""
        if self.player.media_id is not None:
            self.service.tag_ranges(self.player.media_id)
        mode, query = self._last_search or (None, None)
        if mode == "text" and query.strip():     # tags are searchable: refresh in place
            self.service.search(query, self.results.filters())

    # ---- window state ---------------------------------------------------------------------
    def _restore_state(self) -> None:
        geometry = self.qsettings.value("ui/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        for key, splitter in (("ui/splitter", self.splitter), ("ui/right", self.right)):
            state = self.qsettings.value(key)
            if state is not None:
                splitter.restoreState(state)
        if self.qsettings.value("ui/splitter") is None:
            QTimer.singleShot(0, self._default_sizes)

    def _default_sizes(self) -> None:
        width, height = self.splitter.width(), self.right.height()
        self.splitter.setSizes([width * 11 // 20, width * 9 // 20])
        self.right.setSizes([height * 11 // 20, height * 9 // 20])

    def showEvent(self, event):
        super().showEvent(event)
        if not self._warmed:
            self._warmed = True
            QTimer.singleShot(0, self._warm_up)

    def _warm_up(self) -> None:
        """Polish, lay out and render once, off screen, the widgets that first appear
        mid-work (the library table, the jobs and results tabs, the status-bar progress):
        the first show of each stalled the GUI thread visibly when the first dropped file
        arrived. Rendering into a pixmap does not touch the screen.
        Measured: benchmarks/README.md "GUI responsiveness while indexing"."""
        for model in (self.library_panel.model, self.results.model):
            for kind in ("audio", None):          # draw the audio and placeholder tiles
                model.thumbnail({"kind": kind, "media_kind": kind})
        for page in (self.library_panel.stack.widget(1), self.jobs_panel, self.results):
            if not page.isVisible():
                page.resize(self.tabs.size())     # laid out at about the size it will have
                page.grab()
        if not self.progress_bar.isVisible():
            self.progress_bar.grab()

    def closeEvent(self, event):
        self.qsettings.setValue("ui/geometry", self.saveGeometry())
        self.qsettings.setValue("ui/splitter", self.splitter.saveState())
        self.qsettings.setValue("ui/right", self.right.saveState())
        self.qsettings.sync()
        self.player.release()
        super().closeEvent(event)
