"""The part every list-backed table model in the window shares."""
from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex

from . import roles


class ListTableModel(QAbstractTableModel):
    """A table over a Python list of rows; subclasses set COLUMNS and implement data()."""

    COLUMNS: tuple[str, ...] = ()

    def _items(self) -> list:
        return self._rows

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._items())

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=roles.DISPLAY):
        if role == roles.DISPLAY and orientation is roles.HORIZONTAL:
            return self.COLUMNS[section]
        return None
