"""Engine and library settings, and the library's watched folders."""
from __future__ import annotations

import os
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDialog,
                               QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton,
                               QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from app.settings import ASR_ENGINES, DEVICES, SPEAKER_MODELS, WHISPER_MODELS


def _combo(items, current) -> QComboBox:
    combo = QComboBox()
    for key, text in items:
        combo.addItem(text, key)
    i = combo.findData(current)
    combo.setCurrentIndex(i if i >= 0 else 0)
    return combo


def _with_browse(edit: QLineEdit, on_browse) -> QWidget:
    row = QWidget()
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit, 1)
    button = QPushButton("Browse…")
    button.clicked.connect(on_browse)
    lay.addWidget(button)
    return row


STATE_TEXT = {"ok": "Watching", "unavailable": "Unavailable", None: "New"}
STATE_TIP = {"ok": "Followed while avindex is open.",
             "unavailable": "The folder is gone or empty (an unplugged drive or an unmounted "
                            "share?). Its files are kept, not marked missing; it is scanned "
                            "again when it is back.",
             None: "Watched once you press OK: its files are indexed, then kept current."}


class WatchedFolders(QGroupBox):
    """The watched folders: a row per folder with its "network share (polling)" box and
    its state. `folder_problem(path, listed)` says why a folder cannot be added (or None);
    `network_share(path)` names the network file system a folder is on (polled by default)."""

    COLUMNS = ("Folder", "Network share (polling)", "State")

    def __init__(self, folders: list[dict], folder_problem: Callable | None = None,
                 network_share: Callable | None = None, parent=None):
        super().__init__("Watched folders", parent)
        self._folder_problem = folder_problem or (lambda path, listed: None)
        self._network_share = network_share or (lambda path: None)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.ElideMiddle)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        for col in (1, 2):
            header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        self.add_button = QPushButton("Add folder…")
        self.add_button.clicked.connect(self._browse)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("QLabel { color: #b3261e; }")
        self.message.hide()
        hint = QLabel("New and changed audio and video in these folders (and their "
                      "subfolders) is indexed while avindex is open, or headless with "
                      "`avindex watch`. Removing a folder keeps its files in the library.")
        hint.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table)
        lay.addLayout(buttons)
        lay.addWidget(self.message)
        lay.addWidget(hint)
        for folder in folders:
            self._append(folder["path"], bool(folder.get("polling")), folder.get("state"))
        self._update_buttons()

    def _append(self, path: str, polling: bool, state: str | None) -> int:
        row = self.table.rowCount()
        self.table.insertRow(row)
        name = QTableWidgetItem(path)
        name.setToolTip(path)
        poll = QTableWidgetItem()
        poll.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled | Qt.ItemIsSelectable)
        poll.setCheckState(Qt.Checked if polling else Qt.Unchecked)
        poll.setToolTip("Look for changes every few seconds instead of waiting for change "
                        "events, which do not arrive from other machines on a network share.")
        status = QTableWidgetItem(STATE_TEXT.get(state, state))
        status.setToolTip(STATE_TIP.get(state, ""))
        status.setData(Qt.UserRole, state)
        for col, item in enumerate((name, poll, status)):
            self.table.setItem(row, col, item)
        return row

    def paths(self) -> list[str]:
        return [self.table.item(r, 0).text() for r in range(self.table.rowCount())]

    def add_folder(self, path: str, polling: bool | None = None) -> bool:
        """Add a folder (polling: as given, else whether it is on a network share).
        A folder that cannot be watched is refused with a message under the list."""
        path = os.path.abspath(os.path.expanduser(path))
        problem = self._folder_problem(path, self.paths())
        if problem:
            self.show_message(problem)
            return False
        if polling is None:
            polling = self._network_share(path) is not None
        row = self._append(path, polling, None)
        self.table.selectRow(row)
        self.show_message("")
        return True

    def remove_selected(self) -> None:
        for row in sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(row)
        self._update_buttons()

    def folders(self) -> list[dict]:
        return [{"path": self.table.item(r, 0).text(),
                 "polling": self.table.item(r, 1).checkState() == Qt.Checked}
                for r in range(self.table.rowCount())]

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def _browse(self) -> None:
        start = self.paths()[-1] if self.paths() else os.path.expanduser("~")
        folder = QFileDialog.getExistingDirectory(self, "Watch folder", start)
        if folder:
            self.add_folder(folder)

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(bool(self.table.selectedIndexes()))


class SettingsDialog(QDialog):
    """Edits a plain dict: library, models_dir, whisper_model, asr_engine, device,
    threads, frame_interval_s, trust_existing_subtitles, speaker_model, cluster, and
    watched_folders (dicts with path and polling; see WatchedFolders for the two callables)."""

    def __init__(self, values: dict, default_models_dir: str = "", parent=None, *,
                 folder_problem: Callable | None = None,
                 network_share: Callable | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._values = dict(values)
        self.library_edit = QLineEdit(values.get("library", ""))
        self.models_edit = QLineEdit(values.get("models_dir", ""))
        self.models_edit.setPlaceholderText(default_models_dir or "default")
        self.model_combo = _combo(WHISPER_MODELS, values.get("whisper_model"))
        self.engine_combo = _combo(ASR_ENGINES, values.get("asr_engine"))
        self.device_combo = _combo(DEVICES, values.get("device"))
        self.threads_spin = QSpinBox()
        self.threads_spin.setRange(0, 256)
        self.threads_spin.setSpecialValueText("All cores")
        self.threads_spin.setValue(int(values.get("threads") or 0))
        self.interval_spin = QDoubleSpinBox()
        self.interval_spin.setRange(0.5, 600.0)
        self.interval_spin.setDecimals(1)
        self.interval_spin.setSuffix(" s")
        self.interval_spin.setValue(float(values.get("frame_interval_s") or 5.0))
        self.trust_subtitles_check = QCheckBox(
            "Skip speech recognition where a file's subtitles cover its speech")
        self.trust_subtitles_check.setChecked(bool(values.get("trust_existing_subtitles")))
        self.speaker_combo = _combo(SPEAKER_MODELS, values.get("speaker_model"))
        self.speaker_combo.setToolTip(
            "Who speaks: CAM++ finds speaker turns and counts speakers better than GE2E "
            "(benchmarks/README.md) at about twice its time. A named voice is recognised "
            "in the files whose speakers the same model found, so Automatic keeps GE2E in "
            "a library whose voices GE2E found.")
        self.cluster_edit = QLineEdit(values.get("cluster") or "")
        self.cluster_edit.setPlaceholderText("this computer (or: ray, ray://HOST:10001)")
        self.cluster_edit.setToolTip(
            "Where speech recognition runs: empty for this computer; 'ray' for a Ray on "
            "this computer; ray://HOST:PORT for a Ray cluster (needs avindex[ray] here and "
            "the same avindex and models on its workers). The library is written here only.")

        form = QFormLayout()
        form.addRow("Library file:", _with_browse(self.library_edit, self._browse_library))
        form.addRow("Models folder:", _with_browse(self.models_edit, self._browse_models))
        form.addRow("Whisper model:", self.model_combo)
        form.addRow("Speech engine:", self.engine_combo)
        form.addRow("Device:", self.device_combo)
        form.addRow("CPU threads:", self.threads_spin)
        form.addRow("Keyframe every:", self.interval_spin)
        form.addRow("Existing subtitles:", self.trust_subtitles_check)
        form.addRow("Speaker model:", self.speaker_combo)
        form.addRow("Cluster:", self.cluster_edit)
        note = QLabel("Model, engine, device and speaker model changes apply from the next "
                      "file indexed. "
                      "Changing the library file switches to that library (indexing of the "
                      "current one stops; its queue is kept).")
        note.setWordWrap(True)
        # absent while the library is still being read: shown, not editable, not saved
        self._has_watched = "watched_folders" in values
        self.watched = WatchedFolders(values.get("watched_folders") or [], folder_problem,
                                      network_share)
        if not self._has_watched:
            self.watched.setEnabled(False)
            self.watched.setTitle("Watched folders (reading the library…)")
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(self.watched, 1)
        lay.addWidget(buttons)
        self.resize(640, self.sizeHint().height())

    def _browse_library(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Library file", self.library_edit.text(), "avindex library (*.db);;All files (*)",
            options=QFileDialog.DontConfirmOverwrite)
        if path:
            self.library_edit.setText(path)

    def _browse_models(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Models folder", self.models_edit.text())
        if folder:
            self.models_edit.setText(folder)

    def values(self) -> dict:
        return {**self._values,
                "library": self.library_edit.text().strip() or self._values.get("library", ""),
                "models_dir": self.models_edit.text().strip(),
                "whisper_model": self.model_combo.currentData(),
                "asr_engine": self.engine_combo.currentData(),
                "device": self.device_combo.currentData(),
                "threads": self.threads_spin.value(),
                "frame_interval_s": self.interval_spin.value(),
                "trust_existing_subtitles": self.trust_subtitles_check.isChecked(),
                "speaker_model": self.speaker_combo.currentData(),
                "cluster": self.cluster_edit.text().strip(),
                **({"watched_folders": self.watched.folders()} if self._has_watched else {})}
