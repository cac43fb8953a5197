"""The transcript of the file in the player: follows playback, a click seeks,
find-in-transcript, and lines can be corrected in place.

Each line shows who says it (the voice's name, else "Speaker N") in that voice's own
colour (ui.speaker_colors). Double-clicking the name, or "Rename speaker…" in the
line's context menu, names the voice, so every file with it follows; "Merge with…"
says two speakers of the file are one person; "Where else does this voice speak"
searches the library for its moments. The panel only asks (its signals); the window
hands the requests to the library service.

A file's said text may come from speech recognition and from the subtitle tracks it
carries; one source is shown at a time, picked in a combo box when there are several
("Speech recognition", "embedded #2 English (subrip)", "movie.en.srt"). Subtitle lines
are what their track says: they are shown, searched and played, not corrected.

A QListView with its own delegate, not a QTableView with rows resized to their
contents, which was slow on long transcripts.
Measured: benchmarks/README.md "GUI responsiveness while indexing"."""
from __future__ import annotations

import bisect

from PySide6.QtCore import QAbstractListModel, QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import (QAction, QColor, QFont, QFontMetrics, QKeySequence, QPalette,
                           QShortcut)
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QInputDialog, QLabel,
                               QLineEdit, QListView, QMenu, QStyle, QStyledItemDelegate,
                               QToolButton, QVBoxLayout, QWidget)

from . import roles
from .formatting import duration_text
from .speaker_colors import speaker_color

SEGMENT_ROLE = Qt.UserRole + 1
EDITABLE = Qt.ItemIsEditable
CURRENT_BG = QColor("#fff1b8")
MATCH_BG = QColor("#d7e8ff")
TIME_FG = QColor("#5f6368")
PAD = 3
SPEECH = ("speech", None)        # (source, track) of speech recognition's lines
NAME_MAX_WIDTH = 160             # px: a longer speaker name is elided (its tooltip is whole)


def source_of(seg: dict) -> tuple[str, str | None]:
    return (seg.get("source") or "speech", seg.get("track"))


def source_label(source: tuple[str, str | None]) -> str:
    return "Speech recognition" if source[0] == "speech" else f"Subtitles: {source[1]}"


def sources_in(segments: list[dict]) -> list[tuple[str, str | None]]:
    """The sources of a file's lines: speech first, then its subtitle tracks in the
    order they were read (their lines' ids)."""
    first: dict[tuple, float] = {}
    for i, seg in enumerate(segments):
        key = source_of(seg)
        order = seg.get("id", i)
        first[key] = min(first.get(key, order), order)
    return sorted(first, key=lambda k: (k != SPEECH, first[k]))


class TranscriptModel(QAbstractListModel):
    correction_made = Signal(int, str)   # segment id, new text

    def __init__(self, parent=None):
        super().__init__(parent)
        self.segments: list[dict] = []
        self._starts: list[float] = []
        self.current = -1
        self.matches: set[int] = set()

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.segments)

    def flags(self, index):
        flags = super().flags(index)
        if index.isValid() and source_of(self.segments[index.row()]) == SPEECH:
            flags |= EDITABLE
        return flags

    def data(self, index, role=roles.DISPLAY):
        if not index.isValid():
            return None
        seg, row = self.segments[index.row()], index.row()
        if role == roles.DISPLAY or role == roles.EDIT:
            return seg["text"]
        if role == roles.BACKGROUND:
            if row == self.current:
                return CURRENT_BG
            if row in self.matches:
                return MATCH_BG
            return None
        if role == roles.TOOLTIP:
            tip = f"{duration_text(seg['start'])}–{duration_text(seg['end'])}"
            if seg.get("speaker"):
                tip = (f"{seg['speaker']} · {tip}\nDouble-click the name to rename this "
                       "voice in every file; right-click for more.\n")
            source = source_of(seg)
            if source != SPEECH:
                return (f"{tip} · from the subtitle track “{source[1]}”\n"
                        "Click to play from here. Subtitle lines are what the track says; "
                        "correct the subtitle file itself.")
            if seg.get("corrected"):
                tip += " · corrected by you"
            return (f"{tip} · from speech recognition\n"
                    "Click to play from here; double-click or F2 to correct.")
        if role == SEGMENT_ROLE:
            return seg
        return None

    def setData(self, index, value, role=roles.EDIT):
        if role != roles.EDIT or not index.isValid():
            return False
        text = " ".join(str(value).split())
        seg = self.segments[index.row()]
        if not text or text == seg["text"]:
            return False
        seg["text"] = text
        seg["corrected"] = True
        self.dataChanged.emit(index, index)
        self.correction_made.emit(seg["id"], text)
        return True

    def set_segments(self, segments: list[dict]) -> None:
        self.beginResetModel()
        self.segments = list(segments)
        self._starts = [s["start"] for s in self.segments]
        self.current = -1
        self.matches = set()
        self.endResetModel()

    def refresh_segments(self, segments: list[dict]) -> bool:
        """The same lines again with new details (who says them after a rename): updated
        in place, keeping the view's scroll, highlights and selection. False when the
        lines are not the same ones (then set_segments is needed)."""
        if [s.get("id") for s in segments] != [s.get("id") for s in self.segments]:
            return False
        self.layoutAboutToBeChanged.emit()
        self.segments = list(segments)
        self.layoutChanged.emit()
        return True

    def row_at(self, seconds: float) -> int:
        """The line being spoken at `seconds` (the last one started before it)."""
        return bisect.bisect_right(self._starts, seconds + 0.05) - 1

    # Highlights change without dataChanged: in a QListView that re-lays out every line.
    def set_current(self, row: int) -> list[int]:
        """Rows to repaint."""
        if row == self.current:
            return []
        old, self.current = self.current, row
        return [old, row]

    def set_matches(self, rows: set[int]) -> set[int]:
        changed = self.matches ^ rows
        self.matches = rows
        return changed


class LineDelegate(QStyledItemDelegate):
    """Paints "hh:mm:ss  Name  text" with the text wrapped (the name column only when
    the file has speakers); sizes come from font metrics, cached per text and width (a
    re-layout asks for every line again)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._heights: dict[tuple, int] = {}
        self.name_width = 0          # px of the name column; 0: the file has no speakers

    def _time_width(self, option) -> int:
        return QFontMetrics(option.font).horizontalAdvance("00:00:00") + 3 * PAD

    def name_rect(self, rect: QRect, font) -> QRect:
        """Where a line's speaker name is drawn, within the line's rect."""
        left = rect.left() + QFontMetrics(font).horizontalAdvance("00:00:00") + 3 * PAD
        return QRect(left, rect.top() + PAD, self.name_width, max(rect.height() - 2 * PAD, 1))

    def _text_rect(self, option) -> QRect:
        left = self._time_width(option) + (self.name_width + PAD if self.name_width else 0)
        return option.rect.adjusted(left, PAD, -PAD, -PAD)

    @staticmethod
    def name_font(font) -> QFont:
        bold = QFont(font)
        bold.setBold(True)
        return bold

    def _font(self, option, seg) -> QFont:
        font = QFont(option.font)
        font.setItalic(bool(seg.get("corrected")))
        return font

    def paint(self, painter, option, index):
        seg = index.data(SEGMENT_ROLE)
        painter.save()
        selected = option.state & QStyle.State_Selected
        background = index.data(Qt.BackgroundRole)
        if selected:
            painter.fillRect(option.rect, option.palette.color(QPalette.Highlight))
        elif background is not None:
            painter.fillRect(option.rect, background)
        text_color = option.palette.color(QPalette.HighlightedText if selected else QPalette.Text)
        painter.setFont(option.font)
        painter.setPen(text_color if selected else TIME_FG)
        time_rect = option.rect.adjusted(PAD, PAD, 0, -PAD)
        time_rect.setWidth(self._time_width(option) - 2 * PAD)
        painter.drawText(time_rect, Qt.AlignLeft | Qt.AlignTop, duration_text(seg["start"]))
        if self.name_width and seg.get("speaker"):
            font = self.name_font(option.font)
            painter.setFont(font)
            painter.setPen(text_color if selected else QColor(speaker_color(seg.get("voice_id"))))
            rect = self.name_rect(option.rect, option.font)
            painter.drawText(rect, Qt.AlignLeft | Qt.AlignTop, QFontMetrics(font).elidedText(
                seg["speaker"], Qt.ElideRight, rect.width()))
        painter.setFont(self._font(option, seg))
        painter.setPen(text_color)
        painter.drawText(self._text_rect(option), Qt.AlignLeft | Qt.AlignTop | Qt.TextWordWrap,
                         seg["text"])
        painter.restore()

    def sizeHint(self, option, index):
        seg = index.data(SEGMENT_ROLE)
        view = option.widget
        width = view.viewport().width() if view is not None else 400
        key = (seg["text"], bool(seg.get("corrected")), width, self.name_width,
               option.font.key())
        height = self._heights.get(key)
        if height is None:
            if len(self._heights) > 20000:
                self._heights.clear()
            text_width = max(80, width - self._time_width(option) - PAD
                             - (self.name_width + PAD if self.name_width else 0))
            metrics = QFontMetrics(self._font(option, seg))
            height = metrics.boundingRect(QRect(0, 0, text_width, 10 ** 6),
                                          Qt.TextWordWrap, seg["text"]).height()
            self._heights[key] = height
        return QSize(width, height + 2 * PAD)

    def createEditor(self, parent, option, index):
        return QLineEdit(parent)

    def updateEditorGeometry(self, editor, option, index):
        rect = self._text_rect(option)
        rect.setHeight(max(rect.height(), editor.sizeHint().height()))
        editor.setGeometry(rect.adjusted(-PAD, -PAD, 0, 0))


class TranscriptView(QListView):
    """The lines; a double-click on a speaker's name asks to rename it (anywhere else on
    a line it edits the line, as before)."""

    name_double_clicked = Signal(int)        # row

    def mouseDoubleClickEvent(self, event):
        index = self.indexAt(event.position().toPoint())
        delegate = self.itemDelegate()
        if (index.isValid() and isinstance(delegate, LineDelegate) and delegate.name_width
                and (index.data(SEGMENT_ROLE) or {}).get("speaker_id") is not None
                and delegate.name_rect(self.visualRect(index), self.font()).contains(
                    event.position().toPoint())):
            event.accept()
            self.name_double_clicked.emit(index.row())
            return
        super().mouseDoubleClickEvent(event)


class TranscriptPanel(QWidget):
    seek_requested = Signal(float)
    correction_made = Signal(int, str)
    speaker_rename_requested = Signal(int, str)     # speaker id, the name for its voice
    speaker_merge_requested = Signal(int, int)      # the speaker kept, the one joining it
    voice_search_requested = Signal(dict)           # {"voice_id", "name" (None: unnamed)}

    def __init__(self, parent=None):
        super().__init__(parent)
        self.media_id: int | None = None
        self.speakers: list[dict] = []         # the file's speakers (Store.list_speakers)
        self.rename_dialog: QInputDialog | None = None
        self.model = TranscriptModel(self)
        self.model.correction_made.connect(self.correction_made)
        self.title = QLabel("Transcript")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.find_edit = QLineEdit(placeholderText="Find in transcript…", clearButtonEnabled=True)
        self.find_edit.setAcceptDrops(False)
        self.find_edit.textChanged.connect(self._find)
        self.find_edit.returnPressed.connect(lambda: self.next_match(1))
        QShortcut(QKeySequence("Shift+Return"), self.find_edit, lambda: self.next_match(-1))
        self.prev_button = QToolButton(text="▲", toolTip="Previous match (Shift+Enter)")
        self.prev_button.clicked.connect(lambda: self.next_match(-1))
        self.next_button = QToolButton(text="▼", toolTip="Next match (Enter)")
        self.next_button.clicked.connect(lambda: self.next_match(1))
        self.match_label = QLabel()
        self.source_combo = QComboBox()
        self.source_combo.setToolTip("Which said text to show: speech recognition, or one of "
                                     "the subtitle tracks the file carries")
        self.source_combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.source_combo.currentIndexChanged.connect(self._source_picked)
        self.source_label = QLabel()           # the one source, when there is no choice
        self.source_label.setStyleSheet("color: #5f6368;")
        self._all: list[dict] = []             # every line of the file, any source
        self._sources: list[tuple] = []        # the combo box's (source, track), in order
        self._picked: dict[int, tuple] = {}    # media id -> the source the user picked
        self.placeholder = QLabel("The transcript of the file in the player appears here.")
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setWordWrap(True)

        self.view = TranscriptView()
        self.view.setModel(self.model)
        self.delegate = LineDelegate(self.view)
        self.view.setItemDelegate(self.delegate)
        self.view.name_double_clicked.connect(self.ask_rename)
        self.view.setContextMenuPolicy(Qt.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.setSelectionMode(QAbstractItemView.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.DoubleClicked |
                                  QAbstractItemView.EditKeyPressed)
        self.view.setResizeMode(QListView.Adjust)          # re-wrap lines on resize
        self.view.setLayoutMode(QListView.Batched)
        self.view.setBatchSize(200)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.view.clicked.connect(self._clicked)
        self._match_rows: list[int] = []
        self._match_pos = -1

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.source_combo)
        top.addWidget(self.source_label)
        top.addWidget(self.find_edit, 1)
        top.addWidget(self.prev_button)
        top.addWidget(self.next_button)
        top.addWidget(self.match_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.placeholder, 1)
        lay.addWidget(self.view, 1)
        self._show_lines(False)
        self._set_sources([])

    def _show_lines(self, show: bool) -> None:
        self.view.setVisible(show)
        self.placeholder.setVisible(not show)

    def set_transcript(self, media_id: int, title: str, segments: list[dict],
                       status: str | None = None) -> None:
        """Show a file's lines (any source: each carries `source` and `track`, and
        `speaker`, `speaker_id`, `voice_id` when someone was found saying it)."""
        if media_id != self.media_id:
            self.speakers = []
        self.media_id = media_id
        self.title.setText(f"Transcript · {title}")
        self._all = list(segments)
        sources = sources_in(self._all)
        self._set_sources(sources)
        picked = self._picked.get(media_id)
        self._show_source(picked if picked in sources else (sources[0] if sources else SPEECH),
                          status)

    def _set_sources(self, sources: list[tuple]) -> None:
        self._sources = list(sources)
        self.source_combo.blockSignals(True)
        self.source_combo.clear()
        self.source_combo.addItems([source_label(s) for s in sources])
        self.source_combo.blockSignals(False)
        self.source_combo.setVisible(len(sources) > 1)
        self.source_label.setText(source_label(sources[0]) if len(sources) == 1 else "")
        self.source_label.setVisible(len(sources) == 1)

    def sources(self) -> list[tuple]:
        """The (source, track) pairs the combo box offers, in its order."""
        return list(self._sources)

    def current_source(self) -> tuple | None:
        i = self.source_combo.currentIndex()
        return self._sources[i] if 0 <= i < len(self._sources) else None

    def show_source(self, source: tuple) -> None:
        """Show the lines of one source, as picking it in the combo box does."""
        self.source_combo.setCurrentIndex(self._sources.index(tuple(source)))

    def _source_picked(self, index: int) -> None:
        if not 0 <= index < len(self._sources):
            return
        source = self._sources[index]
        if self.media_id is not None:
            self._picked[self.media_id] = source
        self._show_source(source)

    def _show_source(self, source: tuple, status: str | None = None) -> None:
        i = self._sources.index(source) if source in self._sources else -1
        if i >= 0 and self.source_combo.currentIndex() != i:
            self.source_combo.blockSignals(True)
            self.source_combo.setCurrentIndex(i)
            self.source_combo.blockSignals(False)
        segments = [s for s in self._all if source_of(s) == source]
        self._fit_names(segments)
        if not (segments and self.model.refresh_segments(segments)):
            self.model.set_segments(segments)
        if segments:
            self._show_lines(True)
        else:
            self.placeholder.setText({
                "queued": "Not transcribed yet: the file is queued for indexing.",
                "indexing": "Being transcribed now; the transcript appears when it is done.",
                "failed": "Indexing this file failed; see the Jobs tab for why.",
                "cancelled": "Indexing this file was cancelled.",
            }.get(status or "", "No speech was found in this file."))
            self._show_lines(False)
        self._find(self.find_edit.text())

    def clear(self) -> None:
        self.media_id = None
        self.speakers = []
        self.title.setText("Transcript")
        self._all = []
        self._set_sources([])
        self.model.set_segments([])
        self.placeholder.setText("The transcript of the file in the player appears here.")
        self._show_lines(False)

    def follow(self, seconds: float) -> None:
        """Highlight the line being played and keep it in view."""
        row = self.model.row_at(seconds)
        changed = self.model.set_current(row)
        self._repaint(changed)
        if changed and row >= 0 and self.view.state() != QAbstractItemView.EditingState:
            self.view.scrollTo(self.model.index(row), QAbstractItemView.EnsureVisible)

    def _repaint(self, rows) -> None:
        for row in rows:
            if 0 <= row < self.model.rowCount():
                self.view.viewport().update(self.view.visualRect(self.model.index(row)))

    def _clicked(self, index) -> None:
        seg = index.data(SEGMENT_ROLE)
        if seg is not None:
            self.seek_requested.emit(float(seg["start"]))

    def _find(self, text: str) -> None:
        needle = text.strip().lower()
        rows = [i for i, s in enumerate(self.model.segments)
                if needle and needle in s["text"].lower()]
        self._match_rows = rows
        self._match_pos = -1
        self._repaint(self.model.set_matches(set(rows)))
        if not needle:
            self.match_label.setText("")
        elif not rows:
            self.match_label.setText("no match")
        else:
            self.next_match(1)

    def next_match(self, direction: int) -> None:
        if not self._match_rows:
            return
        self._match_pos = (self._match_pos + direction) % len(self._match_rows)
        row = self._match_rows[self._match_pos]
        self.view.setCurrentIndex(self.model.index(row))
        self.view.scrollTo(self.model.index(row), QAbstractItemView.PositionAtCenter)
        self.match_label.setText(f"{self._match_pos + 1} of {len(self._match_rows)}")

    def focus_find(self) -> None:
        self.find_edit.setFocus()
        self.find_edit.selectAll()

    # ---- who speaks ------------------------------------------------------------------------
    def set_speakers(self, media_id: int, speakers: list[dict]) -> None:
        """The file's speakers (id, label, name, voice_id, voice_name...): what "Merge
        with…" offers."""
        if media_id == self.media_id:
            self.speakers = list(speakers)

    def _fit_names(self, segments: list[dict]) -> None:
        """The name column: as wide as the widest name of the lines shown (capped)."""
        names = {s["speaker"] for s in segments if s.get("speaker")}
        metrics = QFontMetrics(LineDelegate.name_font(self.view.font()))
        width = max((metrics.horizontalAdvance(n) for n in names), default=0)
        self.delegate.name_width = min(width + PAD, NAME_MAX_WIDTH) if names else 0

    def speaker_of_row(self, row: int) -> dict | None:
        """The speaker (as in `speakers`) who says the line at `row`, or None."""
        if not 0 <= row < self.model.rowCount():
            return None
        sid = self.model.segments[row].get("speaker_id")
        if sid is None:
            return None
        return next((s for s in self.speakers if s["id"] == sid), {
            "id": sid, "name": self.model.segments[row].get("speaker"),
            "voice_id": self.model.segments[row].get("voice_id"), "voice_name": None})

    def speaker_menu_for(self, row: int) -> QMenu:
        """The context menu of a line (also used by tests): rename its speaker, merge it
        with another speaker of the file, find where else its voice speaks."""
        menu = QMenu(self)
        speaker = self.speaker_of_row(row)
        rename = QAction("Rename speaker…", menu)
        rename.setToolTip("Name this voice: every file it speaks in shows the name")
        rename.triggered.connect(lambda: self.ask_rename(row))
        merge = menu.addMenu("Merge with…")
        merge.setToolTipsVisible(True)
        others = [s for s in self.speakers if speaker and s["id"] != speaker["id"]]
        for other in others:
            action = QAction(other["name"], merge)
            action.setToolTip(f"{speaker['name']} and {other['name']} are one person")
            action.triggered.connect(lambda _=False, o=other: self.merge_with(speaker, o))
            merge.addAction(action)
        where = QAction("Where else does this voice speak", menu)
        where.setToolTip("Search the library for the moments this voice speaks")
        where.triggered.connect(lambda: self.search_voice(speaker))
        menu.insertAction(merge.menuAction(), rename)
        menu.addAction(where)
        for action in (rename, where):
            action.setEnabled(speaker is not None)
        merge.setEnabled(bool(others))
        if speaker is None:
            menu.setToolTip("No one was found speaking this line.")
        return menu

    def _context_menu(self, pos) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid():
            return
        menu = self.speaker_menu_for(index.row())
        menu.exec(self.view.viewport().mapToGlobal(pos))
        menu.deleteLater()

    def ask_rename(self, row: int) -> QInputDialog | None:
        """Ask for the name of the speaker of the line at `row` (a dialog that does not
        block: its answer renames)."""
        speaker = self.speaker_of_row(row)
        if speaker is None:
            return None
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Rename speaker")
        dialog.setLabelText(f"Name for {speaker['name']}; every file this voice speaks in "
                            "shows it (leave it empty for “Speaker N” again):")
        dialog.setTextValue(speaker.get("voice_name") or "")
        dialog.textValueSelected.connect(lambda text: self.rename_speaker(speaker["id"], text))
        dialog.finished.connect(dialog.deleteLater)
        self.rename_dialog = dialog
        dialog.open()
        return dialog

    def rename_speaker(self, speaker_id: int, name: str) -> None:
        """Name a speaker's voice: shown at once on this file's lines, then asked of the
        service (which answers with the names of every file)."""
        name = " ".join((name or "").split())
        speaker = next((s for s in self.speakers if s["id"] == speaker_id), None)
        if speaker is not None and (speaker.get("voice_name") or "") == name:
            return
        if name:
            voice = speaker["voice_id"] if speaker else None
            for seg in self._all:
                if seg.get("speaker_id") == speaker_id or (
                        voice is not None and seg.get("voice_id") == voice):
                    seg["speaker"] = name
            self._fit_names(self.model.segments)
            self.view.viewport().update()
        self.speaker_rename_requested.emit(speaker_id, name)

    def merge_with(self, speaker: dict, other: dict) -> None:
        """Two speakers of this file are one person. The one with a named voice is kept
        (when only one is), else the one asked about."""
        keep, join = speaker, other
        if other.get("voice_name") and not speaker.get("voice_name"):
            keep, join = other, speaker
        self.speaker_merge_requested.emit(keep["id"], join["id"])

    def search_voice(self, speaker: dict | None) -> None:
        if speaker is not None:
            self.voice_search_requested.emit({"voice_id": speaker["voice_id"],
                                              "name": speaker.get("voice_name")})

    def apply_correction(self, segment_id: int, text: str) -> None:
        for seg in self._all:
            if seg.get("id") == segment_id:
                seg.update(text=text, corrected=True)
        for i, seg in enumerate(self.model.segments):
            if seg["id"] == segment_id and seg["text"] != text:
                seg.update(text=text, corrected=True)
                index = self.model.index(i)
                self.model.dataChanged.emit(index, index)
