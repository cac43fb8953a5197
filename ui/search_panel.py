"""Search as you type: a debounced query box (that also takes a dropped image) and the
list of matching moments, each with its thumbnail, how it matched (with a small
"subtitles (track)" marker when the said text came from a subtitle track rather than
speech recognition, and who says it, in that voice's colour) and a snippet. A speaker
filter keeps the moments one voice speaks (as speaker:"Anna" in the query does), and
"More of this voice" on a result finds the others. Who is on screen at a moment shows in
its tooltip, and "More of this person" finds the others of the person seen there."""
from __future__ import annotations

import html
import os

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QMenu, QPushButton, QSizePolicy,
                               QTableView, QVBoxLayout, QWidget)

from . import roles
from .formatting import (MATCH_HINTS, MATCH_KINDS, duration_text, elided, file_name,
                         match_badges_html, snippet_html, snippet_plain)
from .rich_text_delegate import HTML_ROLE, RichTextDelegate
from .speaker_colors import speaker_color
from .table_model import ListTableModel
from .thumbnails import ThumbnailCache

DEBOUNCE_MS = 250
HIT_ROLE = roles.USER + 1
THUMB_SIZE = QSize(96, 54)
ROW_HEIGHT = 60
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
KIND_FILTERS = (("All media", None), ("Video", "video"), ("Audio only", "audio"))
MARKER_COLOR = "#5f6368"
ANY_SPEAKER = "Any speaker"
# a face match (search by a photo of a face, a person's appearances) beside the others
KIND_NAMES = {**MATCH_KINDS, "face": "Face"}
KIND_HINTS = {**MATCH_HINTS, "face": "this face is on screen"}


def source_marker(hit: dict) -> str | None:
    """"subtitles (movie.en.srt)" for a moment whose said text came from a subtitle
    track, None for speech recognition or no said text."""
    if hit.get("source") != "subtitles":
        return None
    return f"subtitles ({hit['track']})" if hit.get("track") else "subtitles"


def image_paths(mime) -> list[str]:
    """Local image files in a drag's data (none if anything else is in it)."""
    if not mime.hasUrls():
        return []
    paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
    if paths and all(p.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(p)
                     for p in paths):
        return paths
    return []


class SpeakerFilter(QComboBox):
    """The speaker filter: a named voice picked from the list, or a name typed; empty
    for any speaker. The list is asked for again (`wanted`) each time it opens, so a
    voice named elsewhere (the CLI) is offered too."""

    wanted = Signal()
    changed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.NoInsert)
        self.lineEdit().setPlaceholderText(ANY_SPEAKER)
        self.lineEdit().setClearButtonEnabled(True)
        self.setMinimumContentsLength(14)
        self.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.setToolTip("Only the moments this voice speaks (a name given in a transcript). "
                        "Also speaker:\"Anna\" in the search box.")
        self._value = ""
        self._quiet = False          # while the text is set from here, not typed
        self.activated.connect(lambda _: self._commit())
        self.lineEdit().editingFinished.connect(self._commit)
        self.lineEdit().textChanged.connect(lambda text: text or self._commit())

    def set_voices(self, voices: list[dict]) -> None:
        """Offer the named voices (dicts with "name"), keeping what is typed."""
        text = self.currentText()
        names = sorted({v["name"] for v in voices if v.get("name")}, key=str.casefold)
        if names == [self.itemText(i) for i in range(self.count())]:
            return
        self._quiet = True
        self.blockSignals(True)
        try:
            self.clear()
            self.addItems(names)
            self.setEditText(text)
        finally:
            self.blockSignals(False)
            self._quiet = False

    def value(self) -> str:
        return self._value

    def set_value(self, name: str, *, quiet: bool = False) -> None:
        """Filter by this voice ("" for any); `quiet`: without asking for a new search."""
        self._quiet = True
        try:
            self.setEditText(name)
        finally:
            self._quiet = False
        if quiet:
            self._value = " ".join(name.split())
        else:
            self._commit()

    def _commit(self) -> None:
        if self._quiet:
            return
        value = " ".join(self.currentText().split())
        if value != self._value:
            self._value = value
            self.changed.emit(value)

    def showPopup(self):
        self.wanted.emit()
        super().showPopup()


class SearchBox(QLineEdit):
    """Emits `query_changed` once typing pauses; Enter/Down hand over to the results.
    An image file dropped on it asks for a search by that image (`image_dropped`);
    any other drop goes on to the window (which adds media files to the library)."""

    query_changed = Signal(str)
    submit = Signal()
    focus_results = Signal()
    image_dropped = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setPlaceholderText("Search what was said, shown or tagged…  "
                                "(\"exact phrase\", prefix*, speaker:\"Anna\", or drop an "
                                "image)")
        self.setClearButtonEnabled(True)
        self.setAcceptDrops(True)
        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(lambda: self.query_changed.emit(self.text()))
        self.textEdited.connect(lambda _: self._timer.start())
        self.textChanged.connect(self._cleared)

    def _cleared(self, text: str) -> None:
        if not text:             # the clear button does not emit textEdited
            self._timer.start()

    def flush(self) -> None:
        """Run the pending query now (Enter pressed before the pause ended)."""
        if self._timer.isActive():
            self._timer.stop()
            self.query_changed.emit(self.text())

    def cancel_pending(self) -> None:
        self._timer.stop()

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key_Return, Qt.Key_Enter):
            self.flush()
            self.submit.emit()
            return
        if event.key() == Qt.Key_Down:
            self.focus_results.emit()
            return
        super().keyPressEvent(event)

    # ---- an image dropped here searches by that image ---------------------------------
    def _highlight(self, on: bool) -> None:
        self.setStyleSheet("QLineEdit { border: 2px solid #1a62b5; background: #e8f0fe; }"
                           if on else "")

    def dragEnterEvent(self, event):
        if image_paths(event.mimeData()):
            event.acceptProposedAction()
            self._highlight(True)
        elif event.mimeData().hasUrls():
            event.ignore()                  # media files: the window adds them
        else:
            super().dragEnterEvent(event)   # plain text, as any line edit

    def dragMoveEvent(self, event):
        if image_paths(event.mimeData()):
            event.acceptProposedAction()
        elif event.mimeData().hasUrls():
            event.ignore()
        else:
            super().dragMoveEvent(event)

    def dragLeaveEvent(self, event):
        self._highlight(False)
        super().dragLeaveEvent(event)

    def dropEvent(self, event):
        self._highlight(False)
        paths = image_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.image_dropped.emit(paths[0])
        elif event.mimeData().hasUrls():
            event.ignore()
        else:
            super().dropEvent(event)


class HitsModel(ListTableModel):
    COLUMNS = ("File", "Time", "Match", "What matched")
    MATCH_COL, SNIPPET_COL = 2, 3

    def __init__(self, parent=None, thumbnails: ThumbnailCache | None = None):
        super().__init__(parent)
        self.hits: list[dict] = []
        self.grouped = False
        self.thumbnails = thumbnails or ThumbnailCache(self)
        self.thumbnails.ready.connect(self._thumbnail_ready)

    def _items(self) -> list:
        return self.hits

    @staticmethod
    def kinds(hit: dict) -> list[str]:
        """How the moment matched: the kind shown first, then the others."""
        first = hit.get("match") or hit["kind"]
        return [first] + [k for k in hit.get("kinds") or () if k != first and
                          not (first == "keyword" and k == "said")]

    def thumbnail(self, hit: dict):
        if hit.get("thumb_path"):
            pm = self.thumbnails.pixmap(hit["thumb_path"], THUMB_SIZE)
            if pm is not None:
                return pm
        elif hit.get("media_kind") == "audio":
            return self.thumbnails.audio_icon(THUMB_SIZE)
        return self.thumbnails.pending_icon(THUMB_SIZE)

    def data(self, index, role=roles.DISPLAY):
        if not index.isValid():
            return None
        hit, col = self.hits[index.row()], index.column()
        if role == roles.DISPLAY:
            if col == 0:
                return hit["name"]
            if col == 1:
                return duration_text(hit["seek"])
            if col == 2:
                marker = source_marker(hit)
                return " + ".join(KIND_NAMES.get(k, k) for k in self.kinds(hit)) + (
                    f" · {marker}" if marker else "") + (
                    f" · {hit['speaker']}" if hit.get("speaker") else "")
            return snippet_plain(hit["snippet"])
        if role == HTML_ROLE and col == self.SNIPPET_COL:
            return snippet_html(hit["snippet"])
        if role == HTML_ROLE and col == self.MATCH_COL:
            marker = source_marker(hit)
            said_by = (f'<br><span style="color:{speaker_color(hit.get("voice_id"))}; '
                       f'font-weight:bold;">{html.escape(hit["speaker"])}</span>'
                       if hit.get("speaker") else "")
            return match_badges_html(self.kinds(hit)) + (
                f'&nbsp;<span style="color:{MARKER_COLOR}; font-size:small;">'
                f'{html.escape(marker)}</span>' if marker else "") + said_by
        if role == roles.DECORATION and col == 0:
            return self.thumbnail(hit)
        if role == HIT_ROLE:
            return hit
        if role == roles.TOOLTIP:
            how = "; ".join(f"{KIND_NAMES.get(k, k)}: {KIND_HINTS.get(k, '')}"
                            for k in self.kinds(hit))
            sim = hit.get("similarity")
            if sim is not None:
                how += f" (similarity {sim:.2f})"
            if hit.get("source") == "subtitles":
                how += f"\nThe words are from the subtitle track “{hit.get('track')}”."
            elif hit.get("source") == "speech":
                how += "\nThe words are from speech recognition."
            if hit.get("speaker"):
                how += f"\nSaid by {hit['speaker']}."
            if hit.get("people"):
                how += f"\nOn screen: {', '.join(hit['people'])}."
            return (f"{snippet_plain(hit['snippet'])}\n\n{how}\n"
                    f"{hit['path']} at {duration_text(hit['seek'])}")
        return None

    def set_hits(self, hits: list[dict]) -> None:
        self.beginResetModel()
        self.hits = self._ordered(hits)
        self.endResetModel()

    def set_grouped(self, grouped: bool) -> None:
        if grouped != self.grouped:
            self.grouped = grouped
            self.set_hits(sorted(self.hits, key=lambda h: h.get("rank", 0)))

    def _ordered(self, hits: list[dict]) -> list[dict]:
        """Best first; grouped: files by their best moment, each file's moments by time."""
        for i, h in enumerate(hits):
            h.setdefault("rank", i)
        if not self.grouped:
            return sorted(hits, key=lambda h: h["rank"])
        return sorted(hits, key=lambda h: (h.get("group", 0), h["seek"]))

    def _thumbnail_ready(self, path: str) -> None:
        for i, hit in enumerate(self.hits):
            if hit.get("thumb_path") == path:
                index = self.index(i, 0)
                self.dataChanged.emit(index, index, [roles.DECORATION])


class SearchResults(QWidget):
    hit_activated = Signal(dict)
    more_like_requested = Signal(dict)
    voice_search_requested = Signal(dict)    # {"voice_id", "name"}: "More of this voice"
    person_more_requested = Signal(dict)     # a hit: "More of this person" (who is seen there)
    voices_wanted = Signal()                 # the speaker filter's list is opening
    add_example_requested = Signal(dict)     # "Add to tag examples…"
    filters_changed = Signal(dict)
    image_search_requested = Signal()

    def __init__(self, parent=None, thumbnails: ThumbnailCache | None = None):
        super().__init__(parent)
        self.model = HitsModel(self, thumbnails)
        self.summary = QLabel("Type in the search box to find moments in your library, "
                              "or drop an image on it to find frames that look alike.")
        self.summary.setWordWrap(True)
        # It shows the query: a word too long to wrap must not widen the window.
        self.summary.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.kind_combo = QComboBox()
        for text, value in KIND_FILTERS:
            self.kind_combo.addItem(text, value)
        self.kind_combo.setToolTip("Search only video files, or only audio files")
        self.kind_combo.currentIndexChanged.connect(lambda: self.filters_changed.emit(
            self.filters()))
        self.speaker_filter = SpeakerFilter()
        self.speaker_filter.changed.connect(lambda _: self.filters_changed.emit(self.filters()))
        self.speaker_filter.wanted.connect(self.voices_wanted)
        self.group_check = QCheckBox("Group by file")
        self.group_check.setToolTip("Show each file's moments together, in time order")
        self.group_check.toggled.connect(self.model.set_grouped)
        self.more_button = QPushButton("More like this")
        self.more_button.setToolTip("Find moments like the selected one: what was said "
                                    "for speech, what was seen for a frame")
        self.more_button.clicked.connect(self.request_more_like_current)
        self.image_button = QPushButton("Search by image…")
        self.image_button.setToolTip("Find the frames that look like a picture "
                                     "(or drop an image on the search box)")
        self.image_button.clicked.connect(self.image_search_requested)

        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(HitsModel.MATCH_COL, RichTextDelegate(self.table))
        self.table.setItemDelegateForColumn(HitsModel.SNIPPET_COL,
                                            RichTextDelegate(self.table, follow_match=True))
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        self.table.setIconSize(THUMB_SIZE)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.Interactive)
        header.setSectionResizeMode(3, QHeaderView.Stretch)
        self.table.setColumnWidth(0, 250)
        self.table.setColumnWidth(2, 130)
        self.table.activated.connect(self._activate)
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._update_buttons())
        self.model.modelReset.connect(self._update_buttons)

        bar = QHBoxLayout()
        bar.addWidget(self.kind_combo)
        bar.addWidget(self.speaker_filter)
        bar.addWidget(self.group_check)
        bar.addStretch(1)
        bar.addWidget(self.image_button)
        bar.addWidget(self.more_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.summary)
        lay.addLayout(bar)
        lay.addWidget(self.table, 1)
        self._update_buttons()

    def filters(self) -> dict:
        kind = self.kind_combo.currentData()
        out = {"kind": kind} if kind else {}
        if self.speaker_filter.value():
            out["speaker"] = self.speaker_filter.value()
        return out

    def set_voices(self, voices: list[dict]) -> None:
        """The library's voices: the named ones are offered by the speaker filter."""
        self.speaker_filter.set_voices(voices)

    # ---- showing results --------------------------------------------------------------
    def show_hits(self, query: str, hits: list[dict]) -> None:
        """Results of a text search (with no words, of the speaker filter alone)."""
        speaker = self.speaker_filter.value()
        what = f"“{elided(query)}”" if query.strip() else (
            f"{elided(speaker, 40)} speaking" if speaker else "")
        if speaker and query.strip():
            what += f", said by {elided(speaker, 40)}"
        if not what:
            self._show([], "Type in the search box to find moments in your library, "
                           "or drop an image on it to find frames that look alike.")
        elif not hits:
            self._show([], f"No moments match {what}." if query.strip() else
                       f"No moments of {what}.")
        else:
            how = "for" if query.strip() else "of"
            self._show(hits, f"{self._count(hits)} {how} {what}. "
                             "Enter or double-click plays from that moment.")

    def show_examples(self, request: dict, hits: list[dict]) -> None:
        """Results of a search by image or of "more like this"."""
        if request.get("mode") == "image":
            what = f"frames like {file_name(request['image'])}"
        elif request.get("mode") == "person":
            what = f"moments {request.get('label', 'this person')} is on screen"
        elif request.get("mode") == "more_person":
            src = request.get("source") or {}
            what = (f"other moments of {request.get('label', 'this person')} (seen in "
                    f"{src.get('name') or file_name(src.get('path') or '')} at "
                    f"{duration_text(src.get('seek'))})")
        else:
            src = request.get("source") or {}
            what = f"moments like {src.get('name', '')} at {duration_text(src.get('seek'))}"
        if not hits:
            self._show([], f"No {what} were found.")
        else:
            self._show(hits, f"{self._count(hits)}: {what}. "
                             "Enter or double-click plays from that moment.")

    def show_busy(self, text: str) -> None:
        self.summary.setText(text)

    def show_failure(self, text: str) -> None:
        """A search that could not run (an unknown speaker...): no results, and why."""
        self._show([], text)

    @staticmethod
    def _count(hits: list[dict]) -> str:
        files = len({h["media_id"] for h in hits})
        return f"{len(hits)} moment(s) in {files} file(s)"

    def _show(self, hits: list[dict], text: str) -> None:
        self.model.set_hits([dict(h, rank=i) for i, h in enumerate(hits)])
        self.summary.setText(text)
        if hits:
            self.table.selectRow(0)
        self._update_buttons()

    # ---- acting on a result --------------------------------------------------------------
    def current_hit(self) -> dict | None:
        index = self.table.currentIndex()
        return index.data(HIT_ROLE) if index.isValid() else None

    def _activate(self, index) -> None:
        hit = index.data(HIT_ROLE)
        if hit is not None:
            self.hit_activated.emit(hit)

    def activate_current(self) -> bool:
        index = self.table.currentIndex()
        if not index.isValid() and self.model.rowCount():
            index = self.model.index(0, 0)
        if index.isValid():
            self._activate(index)
            return True
        return False

    def request_more_like(self, row: int) -> None:
        if 0 <= row < self.model.rowCount():
            self.more_like_requested.emit(self.model.hits[row])

    def request_more_like_current(self) -> None:
        index = self.table.currentIndex()
        if index.isValid():
            self.request_more_like(index.row())

    def context_menu_for(self, row: int) -> QMenu:
        """The menu a right-click on a result opens (also used by tests)."""
        menu = QMenu(self)
        hit = self.model.hits[row]
        play = QAction(f"Play from {duration_text(hit['seek'])}", menu)
        play.triggered.connect(lambda: self.hit_activated.emit(hit))
        more = QAction("More like this", menu)
        more.setToolTip(self.more_button.toolTip())
        more.triggered.connect(lambda: self.more_like_requested.emit(hit))
        example = QAction("Add to tag examples…", menu)
        example.setToolTip("Use this moment as an example of an action tag")
        example.triggered.connect(lambda: self.add_example_requested.emit(hit))
        menu.addAction(play)
        menu.addAction(more)
        if hit.get("voice_id") is not None:
            voice = QAction(f"More of this voice ({hit.get('speaker')})", menu)
            voice.setToolTip("The moments this voice speaks, across the library")
            voice.triggered.connect(lambda: self.request_voice(hit))
            menu.addAction(voice)
        seen = hit.get("people") or []
        person = QAction(f"More of this person ({seen[0]})" if seen else "More of this person",
                         menu)
        person.setToolTip("The other moments of the person on screen here (the most "
                          "prominent one when there are several)")
        person.setEnabled(hit.get("media_kind") != "audio")
        person.triggered.connect(lambda: self.person_more_requested.emit(hit))
        menu.addAction(person)
        menu.addSeparator()
        menu.addAction(example)
        return menu

    def request_voice(self, hit: dict) -> None:
        """"More of this voice": by its name when it has one, else by its id."""
        self.voice_search_requested.emit({"voice_id": hit["voice_id"],
                                          "name": hit.get("voice_name")})

    def _context_menu(self, pos) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        self.table.selectRow(index.row())
        menu = self.context_menu_for(index.row())
        menu.exec(self.table.viewport().mapToGlobal(pos))
        menu.deleteLater()

    def _update_buttons(self) -> None:
        self.more_button.setEnabled(self.table.currentIndex().isValid())

    def focus_table(self) -> None:
        self.table.setFocus()
        if not self.table.currentIndex().isValid() and self.model.rowCount():
            self.table.selectRow(0)
