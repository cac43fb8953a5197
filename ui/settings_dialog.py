"""Engine and library settings."""
from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QSpinBox, QVBoxLayout, QWidget)

from app.settings import ASR_ENGINES, DEVICES, WHISPER_MODELS


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


class SettingsDialog(QDialog):
    """Edits a plain dict: library, models_dir, whisper_model, asr_engine, device,
    threads, frame_interval_s, trust_existing_subtitles."""

    def __init__(self, values: dict, default_models_dir: str = "", parent=None):
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

        form = QFormLayout()
        form.addRow("Library file:", _with_browse(self.library_edit, self._browse_library))
        form.addRow("Models folder:", _with_browse(self.models_edit, self._browse_models))
        form.addRow("Whisper model:", self.model_combo)
        form.addRow("Speech engine:", self.engine_combo)
        form.addRow("Device:", self.device_combo)
        form.addRow("CPU threads:", self.threads_spin)
        form.addRow("Keyframe every:", self.interval_spin)
        form.addRow("Existing subtitles:", self.trust_subtitles_check)
        note = QLabel("Model, engine and device changes apply from the next file indexed. "
                      "Changing the library file switches to that library (indexing of the "
                      "current one stops; its queue is kept).")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(buttons)
        self.resize(560, self.sizeHint().height())

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
                "trust_existing_subtitles": self.trust_subtitles_check.isChecked()}
