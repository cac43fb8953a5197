"""About avindex, with the diagnostics a bug report needs."""
from __future__ import annotations

import json
import sys

from PySide6.QtCore import QProcess, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QPlainTextEdit,
                               QPushButton, QVBoxLayout)


def self_test_command() -> tuple[str, list[str]]:
    """`avindex self-test --json` as a separate process (models never load into the GUI)."""
    if getattr(sys, "frozen", False):          # the PyInstaller bundle: the exe is the CLI
        return sys.executable, ["self-test", "--json"]
    return sys.executable, ["-m", "app", "self-test", "--json"]


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
        self.self_test_button = QPushButton("Run self-test")
        self.self_test_button.clicked.connect(self.run_self_test)
        self.self_test_view = QPlainTextEdit(readOnly=True)
        self.self_test_view.setVisible(False)
        self._proc: QProcess | None = None
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.addButton(copy, QDialogButtonBox.ActionRole)
        buttons.addButton(self.self_test_button, QDialogButtonBox.ActionRole)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(title)
        lay.addLayout(self.form)
        lay.addWidget(self.self_test_view)
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
        text = "\n".join(f"{k}: {v}" for k, v in self.info.items())
        if self.self_test_view.toPlainText():
            text += "\n\nSelf-test:\n" + self.self_test_view.toPlainText()
        return text

    def run_self_test(self) -> None:
        if self._proc is not None:
            return
        self.self_test_button.setEnabled(False)
        self.self_test_view.setVisible(True)
        self.self_test_view.setPlainText("Running self-test (loads every model; up to a minute)…")
        self._proc = QProcess(self)
        self._proc.finished.connect(self._self_test_done)
        self._proc.start(*self_test_command())

    def _self_test_done(self, *_args) -> None:
        proc, self._proc = self._proc, None
        self.self_test_button.setEnabled(True)
        raw = bytes(proc.readAllStandardOutput()).decode("utf-8", "replace")
        try:
            self.show_self_test(json.loads(raw))
        except ValueError:
            err = bytes(proc.readAllStandardError()).decode("utf-8", "replace")
            self.self_test_view.setPlainText(f"self-test did not run: {(err or raw)[-2000:]}")

    def show_self_test(self, result: dict) -> None:
        """One line per check, with the fix for each failure (from `avindex self-test --json`)."""
        lines = []
        for c in result.get("checks", []):
            mark = "ok" if c["ok"] else ("FAIL" if c["required"] else "warn")
            lines.append(f"[{mark}] {c['name']}: {c['detail']}")
            if not c["ok"] and c.get("fix"):
                lines.append(f"       fix: {c['fix']}")
        lines.append(result.get("summary", ""))
        self.self_test_view.setVisible(True)
        self.self_test_view.setPlainText("\n".join(lines))

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())
