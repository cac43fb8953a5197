"""Search as you type: a debounced query box and the list of matching moments."""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QLineEdit, QTableView,
                               QVBoxLayout, QWidget)
from .formatting import MATCH_KINDS, hhmmss, snippet_html, snippet_plain
from .rich_text_delegate import HTML_ROLE, RichTextDelegate
from .table_model import ListTableModel

DEBOUNCE_MS = 250
HIT_ROLE = Qt.UserRole + 1


class SearchBox(QLineEdit):
    """Emits `query_changed` once typing pauses; Enter/Down hand over to the results."""

    query_changed = Signal(str)
    submit = Signal()
    focus_results = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setPlaceholderText("Search what was said…  (\"exact phrase\", prefix*)")
        self.setClearButtonEnabled(True)
        self.setAcceptDrops(False)
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

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key_Return, Qt.Key_Enter):
            self.flush()
            self.submit.emit()
            return
        if event.key() == Qt.Key_Down:
            self.focus_results.emit()
            return
        super().keyPressEvent(event)


class HitsModel(ListTableModel):
    COLUMNS = ("File", "Time", "Match", "What matched")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.hits: list[dict] = []

    def _items(self) -> list:
        return self.hits

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        hit, col = self.hits[index.row()], index.column()
        if role == Qt.DisplayRole:
            match = hit.get("match") or hit["kind"]
            return (hit["name"], hhmmss(hit["seek"]), MATCH_KINDS.get(match, match),
                    snippet_plain(hit["snippet"]))[col]
        if role == HTML_ROLE and col == 3:
            return snippet_html(hit["snippet"])
        if role == HIT_ROLE:
            return hit
        if role == Qt.ToolTipRole:
            return f"{snippet_plain(hit['snippet'])}\n\n{hit['path']} at {hhmmss(hit['seek'])}"
        return None

    def set_hits(self, hits: list[dict]) -> None:
        self.beginResetModel()
        self.hits = list(hits)
        self.endResetModel()


class SearchResults(QWidget):
    hit_activated = Signal(dict)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = HitsModel(self)
        self.summary = QLabel("Type in the search box to find moments in your library.")
        self.summary.setWordWrap(True)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(3, RichTextDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.Stretch)
        self.table.setColumnWidth(0, 150)
        self.table.activated.connect(self._activate)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.summary)
        lay.addWidget(self.table, 1)

    def show_hits(self, query: str, hits: list[dict]) -> None:
        self.model.set_hits(hits)
        if not query.strip():
            self.summary.setText("Type in the search box to find moments in your library.")
        elif not hits:
            self.summary.setText(f"No moments match “{query}”.")
        else:
            files = len({h["media_id"] for h in hits})
            self.summary.setText(f"{len(hits)} moment(s) in {files} file(s) for “{query}”. "
                                 "Enter or double-click plays from that moment.")
        if hits:
            self.table.selectRow(0)

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

    def focus_table(self) -> None:
        self.table.setFocus()
        if not self.table.currentIndex().isValid() and self.model.rowCount():
            self.table.selectRow(0)
