"""The People view: everyone the faces stage found, as a grid of face thumbnails with
their name (else "Person N") and how often they are seen.

Actions, from the buttons above the grid, the context menu or the keyboard: rename
(F2), merge (select two or more: they join the first one picked), hide / unhide, and
"Show appearances" (a double-click or Enter: their moments in the search results
list). The view only asks, through its signals; the window hands the requests to the
library service and calls `set_people` with fresh rows (plain dicts as
Store.list_people gives them, with `thumb_path`, the thumbnail's absolute path).
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QHBoxLayout, QInputDialog, QLabel,
                               QListWidget, QListWidgetItem, QMenu, QPushButton, QVBoxLayout,
                               QWidget)

from .thumbnails import ThumbnailCache

FACE_SIZE = QSize(96, 96)
CELL = QSize(128, 150)
PERSON_ROLE = Qt.UserRole + 1


def person_label(person: dict) -> str:
    return person.get("name") or f"Person {person['id']}"


def person_caption(person: dict) -> str:
    n, files = person.get("appearances", 0), person.get("files", 0)
    return (f"{person_label(person)}\n{n} appearance{'s' * (n != 1)}, "
            f"{files} file{'s' * (files != 1)}")


class PeopleView(QWidget):
    rename_requested = Signal(int, str)          # person id, new name ("" removes it)
    merge_requested = Signal(int, list)          # into, [others]
    hide_requested = Signal(int, bool)           # person id, hidden
    appearances_requested = Signal(dict)         # the person's row: show their moments
    people_wanted = Signal(bool)                 # refresh, hidden people included or not

    def __init__(self, parent=None, thumbnails: ThumbnailCache | None = None):
        super().__init__(parent)
        self.people: list[dict] = []
        self._picked: list[int] = []             # selection order: the first is kept on merge
        self.thumbnails = thumbnails or ThumbnailCache(self)
        self.thumbnails.ready.connect(self._thumbnail_ready)

        self.grid = QListWidget(self)
        self.grid.setViewMode(QListWidget.IconMode)
        self.grid.setIconSize(FACE_SIZE)
        self.grid.setGridSize(CELL)
        self.grid.setResizeMode(QListWidget.Adjust)
        self.grid.setMovement(QListWidget.Static)
        self.grid.setWordWrap(True)
        self.grid.setUniformItemSizes(True)
        self.grid.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.grid.setContextMenuPolicy(Qt.CustomContextMenu)
        self.grid.customContextMenuRequested.connect(self._menu)
        self.grid.itemSelectionChanged.connect(self._selection_changed)
        self.grid.itemActivated.connect(lambda item: self.show_appearances(self._id(item)))
        self.grid.setAccessibleName("People")

        self.rename_button = QPushButton("Rename…", self)
        self.merge_button = QPushButton("Merge", self)
        self.merge_button.setToolTip("Select two or more people who are one person: they "
                                     "join the first one selected.")
        self.hide_button = QPushButton("Hide", self)
        self.show_button = QPushButton("Show appearances", self)
        self.show_hidden = QCheckBox("Show hidden", self)
        self.rename_button.clicked.connect(self._ask_rename)
        self.merge_button.clicked.connect(self.merge_selected)
        self.hide_button.clicked.connect(self.toggle_hidden_selected)
        self.show_button.clicked.connect(lambda: self.show_appearances(self._current_id()))
        self.show_hidden.toggled.connect(self.people_wanted.emit)
        self.empty = QLabel("No people yet: faces are found as videos and images are "
                            "indexed.", self)
        self.empty.setAlignment(Qt.AlignCenter)
        self.empty.setWordWrap(True)

        bar = QHBoxLayout()
        for w in (self.rename_button, self.merge_button, self.hide_button, self.show_button):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.show_hidden)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.empty, 1)
        self.set_people([])

    # ---- data -----------------------------------------------------------------------------
    def set_people(self, people: list[dict]) -> None:
        """Show these people (Store.list_people rows with `thumb_path`), keeping the
        selection of those still there."""
        kept = [pid for pid in self._picked if any(p["id"] == pid for p in people)]
        self.people = [dict(p) for p in people]
        self.grid.blockSignals(True)
        self.grid.clear()
        for p in self.people:
            item = QListWidgetItem(self._face(p), person_caption(p))
            item.setData(PERSON_ROLE, p["id"])
            item.setTextAlignment(Qt.AlignHCenter | Qt.AlignTop)
            item.setToolTip(self._tooltip(p))
            if p.get("hidden"):
                item.setForeground(QColor("#80868b"))
            self.grid.addItem(item)
            item.setSelected(p["id"] in kept)
        self.grid.blockSignals(False)
        self._picked = kept
        self.grid.setVisible(bool(self.people))
        self.empty.setVisible(not self.people)
        self._update_buttons()

    def person(self, person_id: int) -> dict | None:
        return next((p for p in self.people if p["id"] == person_id), None)

    def item_of(self, person_id: int) -> QListWidgetItem | None:
        for i in range(self.grid.count()):
            if self.grid.item(i).data(PERSON_ROLE) == person_id:
                return self.grid.item(i)
        return None

    def select(self, person_ids: list[int]) -> None:
        """Select these people, in this order (the first is kept on a merge)."""
        self.grid.clearSelection()
        for pid in person_ids:
            item = self.item_of(pid)
            if item is not None:
                item.setSelected(True)
        self._picked = [pid for pid in person_ids if self.item_of(pid) is not None]
        self._update_buttons()

    def selected_ids(self) -> list[int]:
        return list(self._picked)

    # ---- actions ----------------------------------------------------------------------------
    def rename(self, person_id: int, name: str) -> None:
        self.rename_requested.emit(int(person_id), " ".join(name.split()))

    def merge_selected(self) -> None:
        ids = self.selected_ids()
        if len(ids) >= 2:
            self.merge_requested.emit(ids[0], ids[1:])

    def toggle_hidden_selected(self) -> None:
        for pid in self.selected_ids():
            person = self.person(pid)
            if person is not None:
                self.hide_requested.emit(pid, not person.get("hidden"))

    def show_appearances(self, person_id: int | None) -> None:
        person = self.person(person_id) if person_id is not None else None
        if person is not None:
            self.appearances_requested.emit(dict(person))

    def _ask_rename(self) -> None:
        pid = self._current_id()
        person = self.person(pid) if pid is not None else None
        if person is None:
            return
        name, ok = QInputDialog.getText(
            self, "Rename person", f"Name for {person_label(person)} (a name someone else "
            "has merges the two; empty removes the name):", text=person.get("name") or "")
        if ok:
            self.rename(pid, name)

    def _menu(self, pos) -> None:
        item = self.grid.itemAt(pos)
        if item is None:
            return
        pid = self._id(item)
        if pid not in self._picked:
            self.select([pid])
        person = self.person(pid)
        menu = QMenu(self)
        menu.addAction("Show appearances", lambda: self.show_appearances(pid))
        menu.addAction("Rename…", self._ask_rename)
        merge = menu.addAction("Merge selected", self.merge_selected)
        merge.setEnabled(len(self._picked) >= 2)
        menu.addAction("Unhide" if person.get("hidden") else "Hide",
                       self.toggle_hidden_selected)
        menu.exec(self.grid.viewport().mapToGlobal(pos))

    def keyPressEvent(self, event):
        if event.key() == Qt.Key_F2:
            self._ask_rename()
            return
        super().keyPressEvent(event)

    # ---- internals ----------------------------------------------------------------------------
    @staticmethod
    def _id(item: QListWidgetItem | None) -> int | None:
        return item.data(PERSON_ROLE) if item is not None else None

    def _current_id(self) -> int | None:
        return self._picked[0] if self._picked else self._id(self.grid.currentItem())

    def _selection_changed(self) -> None:
        now = [self._id(i) for i in self.grid.selectedItems()]
        self._picked = [pid for pid in self._picked if pid in now] + \
            [pid for pid in now if pid not in self._picked]
        self._update_buttons()

    def _update_buttons(self) -> None:
        n = len(self._picked)
        self.rename_button.setEnabled(n == 1)
        self.merge_button.setEnabled(n >= 2)
        self.hide_button.setEnabled(n >= 1)
        self.show_button.setEnabled(n == 1)
        everyone_hidden = n >= 1 and all((self.person(pid) or {}).get("hidden")
                                         for pid in self._picked)
        self.hide_button.setText("Unhide" if everyone_hidden else "Hide")

    def _tooltip(self, p: dict) -> str:
        seconds = float(p.get("seconds") or 0.0)
        return (f"{person_label(p)}: {p.get('appearances', 0)} appearances in "
                f"{p.get('files', 0)} files, {seconds:.0f} s on screen"
                + (" (hidden)" if p.get("hidden") else "")
                + "\nDouble-click: show appearances; F2: rename")

    def _face(self, p: dict) -> QPixmap:
        pm = self.thumbnails.pixmap(p.get("thumb_path"), FACE_SIZE)
        return pm if pm is not None else self._blank(p)

    def _blank(self, p: dict) -> QPixmap:
        pm = QPixmap(FACE_SIZE)
        pm.fill(QColor("#202124"))
        painter = QPainter(pm)
        painter.setPen(QColor("#9aa0a6"))
        painter.drawText(pm.rect(), Qt.AlignCenter, person_label(p)[:1].upper() or "?")
        painter.end()
        return pm

    def _thumbnail_ready(self, path: str) -> None:
        for p in self.people:
            if p.get("thumb_path") == path:
                item = self.item_of(p["id"])
                pm = self.thumbnails.pixmap(path, FACE_SIZE)
                if item is not None and pm is not None:
                    item.setIcon(pm)
