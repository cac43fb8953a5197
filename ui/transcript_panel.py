"""The transcript of the file in the player: follows playback, a click seeks,
find-in-transcript, and lines can be corrected in place.

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
from PySide6.QtGui import QColor, QFont, QFontMetrics, QKeySequence, QPalette, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QLabel, QLineEdit,
                               QListView, QStyle, QStyledItemDelegate, QToolButton, QVBoxLayout,
                               QWidget)

from . import roles
from .formatting import duration_text

SEGMENT_ROLE = Qt.UserRole + 1
EDITABLE = Qt.ItemIsEditable
CURRENT_BG = QColor("#fff1b8")
MATCH_BG = QColor("#d7e8ff")
TIME_FG = QColor("#5f6368")
PAD = 3
SPEECH = ("speech", None)        # (source, track) of speech recognition's lines


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
    """Paints "hh:mm:ss  text" with the text wrapped; sizes come from font metrics,
    cached per text and width (a re-layout asks for every line again)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._heights: dict[tuple, int] = {}

    def _time_width(self, option) -> int:
        return QFontMetrics(option.font).horizontalAdvance("00:00:00") + 3 * PAD

    def _text_rect(self, option) -> QRect:
        left = self._time_width(option)
        return option.rect.adjusted(left, PAD, -PAD, -PAD)

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
        painter.setFont(self._font(option, seg))
        painter.setPen(text_color)
        painter.drawText(self._text_rect(option), Qt.AlignLeft | Qt.AlignTop | Qt.TextWordWrap,
                         seg["text"])
        painter.restore()

    def sizeHint(self, option, index):
        seg = index.data(SEGMENT_ROLE)
        view = option.widget
        width = view.viewport().width() if view is not None else 400
        key = (seg["text"], bool(seg.get("corrected")), width, option.font.key())
        height = self._heights.get(key)
        if height is None:
            if len(self._heights) > 20000:
                self._heights.clear()
            text_width = max(80, width - self._time_width(option) - PAD)
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


class TranscriptPanel(QWidget):
    seek_requested = Signal(float)
    correction_made = Signal(int, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.media_id: int | None = None
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

        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setItemDelegate(LineDelegate(self.view))
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
        """Show a file's lines (any source: each carries `source` and `track`)."""
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

    def apply_correction(self, segment_id: int, text: str) -> None:
        for seg in self._all:
            if seg.get("id") == segment_id:
                seg.update(text=text, corrected=True)
        for i, seg in enumerate(self.model.segments):
            if seg["id"] == segment_id and seg["text"] != text:
                seg.update(text=text, corrected=True)
                index = self.model.index(i)
                self.model.dataChanged.emit(index, index)
