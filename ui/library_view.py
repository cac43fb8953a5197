"""The library list: every file with its first keyframe (or an audio icon), duration,
language, status and tag count. A file gone from its path (media.missing_since) shows as
Missing, greyed: its index is kept until it is pruned or the file is back."""
from __future__ import annotations

from PySide6.QtCore import (QModelIndex, QSize, QSortFilterProxyModel, Qt,
                            QTimer, Signal)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QPushButton, QStackedWidget, QTableView, QVBoxLayout,
                               QWidget)
from . import roles
from .formatting import duration_text, file_name
from .table_model import ListTableModel
from .thumbnails import ThumbnailCache

MEDIA_ID_ROLE = roles.USER + 1
SORT_ROLE = roles.USER + 2

STATUS_TEXT = {"queued": "Queued", "indexing": "Indexing", "done": "Indexed",
               "failed": "Failed", "cancelled": "Cancelled", "missing": "Missing"}
THUMB_SIZE = QSize(64, 36)
ROW_HEIGHT = 42
STATUS_COLOR = {"failed": QColor("#b3261e"), "indexing": QColor("#1a62b5"),
                "cancelled": QColor("#7a7a7a")}
MISSING_COLOR = QColor("#8a8a8a")


def row_status(row: dict) -> str:
    """The status a row shows: "missing" while its file is gone, else its indexing status."""
    return "missing" if row.get("missing_since") else row["status"]


def missing_text(row: dict) -> str:
    since = (row.get("missing_since") or "").replace("T", " ")[:16]
    return (f"Missing since {since} UTC: the file is gone from this path. Its index is kept "
            "until the library is pruned (`avindex prune`), and it comes back if the file "
            "does (or is found moved).")


class LibraryModel(ListTableModel):
    COLUMNS = ("Name", "Duration", "Language", "Status", "Tags")

    def __init__(self, parent=None, thumbnails: ThumbnailCache | None = None):
        super().__init__(parent)
        self._rows: list[dict] = []
        self.thumbnails = thumbnails or ThumbnailCache(self)
        self.thumbnails.ready.connect(self._thumbnail_ready)

    def thumbnail(self, row: dict):
        """The first keyframe (cached, or loading), an audio icon, or a neutral tile."""
        if row.get("thumbnail"):
            pm = self.thumbnails.pixmap(row["thumbnail"], THUMB_SIZE)
            if pm is not None:
                return pm
        elif row.get("kind") == "audio":
            return self.thumbnails.audio_icon(THUMB_SIZE)
        return self.thumbnails.pending_icon(THUMB_SIZE)

    def _thumbnail_ready(self, path: str) -> None:
        for i, row in enumerate(self._rows):
            if row.get("thumbnail") == path:
                index = self.index(i, 0)
                self.dataChanged.emit(index, index, [roles.DECORATION])

    def data(self, index, role=roles.DISPLAY):
        if not index.isValid():
            return None
        row, col = self._rows[index.row()], index.column()
        status = row_status(row)
        if role == roles.DISPLAY:
            return (file_name(row["path"]), duration_text(row.get("duration")),
                    row.get("language") or "", STATUS_TEXT.get(status, status),
                    str(row.get("tag_count") or 0) if row["status"] == "done" else "")[col]
        if role == SORT_ROLE:
            return (file_name(row["path"]).lower(), row.get("duration") or 0.0,
                    row.get("language") or "", status, row.get("tag_count") or 0)[col]
        if role == MEDIA_ID_ROLE:
            return row["id"]
        if role == roles.DECORATION and col == 0:
            return self.thumbnail(row)
        if role == roles.TOOLTIP:
            tip = row["path"]
            if status == "missing":
                return f"{tip}\n{missing_text(row)}"
            return f"{tip}\n{row['error']}" if row.get("error") else tip
        if role == roles.FOREGROUND and status == "missing":
            return MISSING_COLOR
        if role == roles.FOREGROUND and col == 3:
            return STATUS_COLOR.get(status)
        if role == roles.ALIGNMENT and col in (1, 4):
            return roles.ALIGN_RIGHT_VCENTER
        return None

    def row_by_id(self, media_id: int) -> dict | None:
        return next((r for r in self._rows if r["id"] == media_id), None)

    def set_rows(self, rows: list[dict]) -> None:
        """Update in place by media id so selection and scroll position survive."""
        new = {r["id"]: r for r in rows}
        for i in reversed(range(len(self._rows))):
            if self._rows[i]["id"] not in new:
                self.beginRemoveRows(QModelIndex(), i, i)
                del self._rows[i]
                self.endRemoveRows()
        known = {}
        for i, old in enumerate(self._rows):
            known[old["id"]] = i
            fresh = new[old["id"]]
            if fresh != old:
                self._rows[i] = fresh
                self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.COLUMNS) - 1))
        added = [r for r in rows if r["id"] not in known]
        if added:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(added) - 1)
            self._rows.extend(added)
            self.endInsertRows()


class LibraryFilter(QSortFilterProxyModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self._status = ""
        self._needle = ""

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_needle", text.strip().lower()))

    def set_status(self, status: str) -> None:
        self._refilter(lambda: setattr(self, "_status", status))

    def _refilter(self, change) -> None:
        if hasattr(self, "endFilterChange"):       # Qt >= 6.10; invalidateFilter is deprecated
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row, source_parent):
        model = self.sourceModel()
        row = model._rows[source_row]
        if self._status and row_status(row) != self._status:
            return False
        return not self._needle or self._needle in row["path"].lower()


class LibraryPanel(QWidget):
    """Filterable, sortable table, with a drop hint while the library is empty."""

    media_activated = Signal(int)
    selection_changed = Signal(list)
    add_files_requested = Signal()
    add_folder_requested = Signal()

    def __init__(self, parent=None, thumbnails: ThumbnailCache | None = None):
        super().__init__(parent)
        self.model = LibraryModel(self, thumbnails)
        self.proxy = LibraryFilter(self)
        self.proxy.setSourceModel(self.model)

        self.filter_edit = QLineEdit(placeholderText="Filter by name or folder…",
                                     clearButtonEnabled=True)
        self.filter_edit.setAcceptDrops(False)
        self.filter_edit.textChanged.connect(self._set_filter_text)
        self.status_combo = QComboBox()
        self.status_combo.addItem("All statuses", "")
        for key, text in STATUS_TEXT.items():
            self.status_combo.addItem(text, key)
        self.status_combo.currentIndexChanged.connect(
            lambda: self.proxy.set_status(self.status_combo.currentData()))
        self.count_label = QLabel()

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.ElideMiddle)    # names of a series differ at the end
        self.table.setIconSize(THUMB_SIZE)
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        for col in range(1, 5):
            header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        self.table.activated.connect(self._activated)
        self.table.selectionModel().selectionChanged.connect(
            lambda *_: self.selection_changed.emit(self.selected_ids()))

        self.stack = QStackedWidget()
        self.stack.addWidget(self._empty_page())
        table_page = QWidget()
        lay = QVBoxLayout(table_page)
        lay.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        bar.addWidget(self.filter_edit, 1)
        bar.addWidget(self.status_combo)
        lay.addLayout(bar)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.count_label)
        self.stack.addWidget(table_page)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)
        # Once per event-loop pass, not per changed row (a refresh may change thousands).
        self._state_timer = QTimer(self, singleShot=True, interval=0)
        self._state_timer.timeout.connect(self._update_state)
        for signal in (self.model.rowsInserted, self.model.rowsRemoved, self.model.dataChanged,
                       self.proxy.layoutChanged, self.proxy.rowsInserted, self.proxy.rowsRemoved):
            signal.connect(self._state_timer.start)
        self._update_state()

    def _empty_page(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.addStretch(1)
        title = QLabel("Your library is empty")
        title.setAlignment(Qt.AlignCenter)
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        title.setFont(font)
        hint = QLabel("Drop audio or video files or folders anywhere on this window.\n"
                      "Their speech is transcribed and their frames tagged, so you can\n"
                      "search what was said, shown or seen (or drop a picture on the\n"
                      "search box) and play each file from the matching moment.")
        hint.setAlignment(Qt.AlignCenter)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        add_files = QPushButton("Add files…")
        add_files.clicked.connect(self.add_files_requested)
        add_folder = QPushButton("Add folder…")
        add_folder.clicked.connect(self.add_folder_requested)
        buttons.addWidget(add_files)
        buttons.addWidget(add_folder)
        buttons.addStretch(1)
        lay.addWidget(title)
        lay.addSpacing(8)
        lay.addWidget(hint)
        lay.addSpacing(12)
        lay.addLayout(buttons)
        lay.addStretch(2)
        return page

    def _set_filter_text(self, text: str) -> None:
        self.proxy.set_text(text)
        self._update_state()

    def _update_state(self, *args) -> None:
        total = self.model.rowCount()
        self.stack.setCurrentIndex(1 if total else 0)
        shown = self.proxy.rowCount()
        seconds = sum(r.get("duration") or 0 for r in self.model._rows)
        hours = f", {seconds / 3600:.1f} h" if seconds >= 360 else ""
        text = f"{total} file(s){hours}"
        if shown != total:
            text = f"{shown} of {text} shown"
        self.count_label.setText(text)

    def _activated(self, index) -> None:
        media_id = index.data(MEDIA_ID_ROLE)
        if media_id is not None:
            self.media_activated.emit(media_id)

    def set_media(self, rows: list[dict]) -> None:
        self.model.set_rows(rows)
        self._update_state()

    def selected_ids(self) -> list[int]:
        rows = self.table.selectionModel().selectedRows()
        return [r.data(MEDIA_ID_ROLE) for r in rows]

    def media(self, media_id: int) -> dict | None:
        return self.model.row_by_id(media_id)

    def all_media(self) -> list[dict]:
        return list(self.model._rows)
