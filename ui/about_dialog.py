"""About avindex, with the diagnostics a bug report needs."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QPushButton,
                               QVBoxLayout)


class AboutDialog(QDialog):
    def __init__(self, version: str, parent=None):
        super().__init__(parent)
        self.setWindowTitle("About avindex")
        self.info: dict = {}
        title = QLabel(f"<h2>avindex {version}</h2>"
                       "<p>Makes an audio and video library searchable by what is said in it — "
                       "locally and offline, in one SQLite file.</p>")
        title.setWordWrap(True)
        self.form = QFormLayout()
        self.form.addRow(QLabel("Collecting diagnostics…"))
        copy = QPushButton("Copy diagnostics")
        copy.clicked.connect(self.copy)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.addButton(copy, QDialogButtonBox.ActionRole)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(title)
        lay.addLayout(self.form)
        lay.addWidget(buttons)
        self.resize(620, 380)

    def set_diagnostics(self, info: dict) -> None:
        self.info = dict(info)
        while self.form.rowCount():
            self.form.removeRow(0)
        for key, value in info.items():
            label = QLabel(str(value))
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            self.form.addRow(f"{key}:", label)

    def text(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self.info.items())

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())
