"""Subtitle/transcript export for one file or a selection. Files with speakers say who
speaks (WebVTT voices, JSON fields, names in text); SRT cues start with "Name: " when
asked (the "Speaker names" box)."""
from __future__ import annotations

import os
from typing import Callable

from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox,
                               QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QMessageBox, QPushButton, QRadioButton, QVBoxLayout, QWidget)

from .formatting import file_name

FORMATS = (("srt", "SubRip (.srt)"), ("vtt", "WebVTT (.vtt)"),
           ("json", "JSON with word timings (.json)"), ("txt", "Plain text (.txt)"))


class ExportDialog(QDialog):
    """`target(media_path, fmt, folder or None)` names the file an export writes (the
    service's rule); the dialog previews it and asks before overwriting one."""

    def __init__(self, media: list[dict], target: Callable[[str, str, str | None], object],
                 fmt: str = "srt", folder: str = "", speaker_names: bool = False, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export subtitles")
        self.media = media
        self._target = target
        names = [os.path.basename(m["path"]) for m in media]
        summary = names[0] if len(names) == 1 else (
            f"{len(names)} files: " + ", ".join(names[:3]) + (", …" if len(names) > 3 else ""))
        self.files_label = QLabel(summary)
        self.files_label.setWordWrap(True)
        not_ready = [m for m in media if m.get("status") != "done"]
        self.warning = QLabel(f"{len(not_ready)} of them are not fully indexed yet; they are "
                              "exported with what is transcribed so far, or skipped."
                              if not_ready else "")
        self.warning.setWordWrap(True)
        self.warning.setVisible(bool(not_ready))

        self.format_combo = QComboBox()
        for key, text in FORMATS:
            self.format_combo.addItem(text, key)
        self.format_combo.setCurrentIndex(max(0, [k for k, _ in FORMATS].index(fmt)
                                              if fmt in dict(FORMATS) else 0))
        self.speaker_check = QCheckBox("Speaker names (“Anna: …” at the start of each cue)")
        self.speaker_check.setChecked(bool(speaker_names))
        self.speaker_check.setToolTip(
            "For files where speakers were found. WebVTT always says who speaks (as a "
            "voice), JSON gives the speaker of each line and word, and text names the "
            "speaker at each change.")
        self.beside = QRadioButton("Beside each media file (same folder, same name)")
        self.elsewhere = QRadioButton("In this folder:")
        group = QButtonGroup(self)
        group.addButton(self.beside)
        group.addButton(self.elsewhere)
        self.folder_edit = QLineEdit(folder or (os.path.dirname(media[0]["path"]) if media else ""))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.beside.setChecked(True)
        self.beside.toggled.connect(self._update)
        self.format_combo.currentIndexChanged.connect(self._update)
        self.speaker_check.toggled.connect(self._update)
        self.folder_edit.textChanged.connect(self._update)
        self.preview = QLabel()
        self.preview.setWordWrap(True)

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        where = QVBoxLayout()
        where.addWidget(self.beside)
        where.addWidget(self.elsewhere)
        where.addLayout(folder_row)
        where_box = QWidget()
        where_box.setLayout(where)
        form = QFormLayout()
        form.addRow("Files:", self.files_label)
        form.addRow("", self.warning)
        form.addRow("Format:", self.format_combo)
        form.addRow("", self.speaker_check)
        form.addRow("Save to:", where_box)
        form.addRow("", self.preview)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(buttons)
        self.resize(520, self.sizeHint().height())
        self._update()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)
            self.elsewhere.setChecked(True)

    def _update(self) -> None:
        self.folder_edit.setEnabled(self.elsewhere.isChecked())
        self.speaker_check.setVisible(self.format() == "srt")
        if len(self.media) == 1:
            self.preview.setText(f"Writes {self.targets()[0]}")
        else:
            self.preview.setText(f"Writes one .{self.format()} file per media file.")

    def targets(self) -> list[str]:
        return [str(self._target(m["path"], self.format(), self.folder())) for m in self.media]

    def accept(self) -> None:
        existing = [t for t in self.targets() if os.path.exists(t)]
        if existing:
            names = ", ".join(file_name(t) for t in existing[:3]) + (
                f" and {len(existing) - 3} more" if len(existing) > 3 else "")
            one = len(existing) == 1
            answer = QMessageBox.question(
                self, "Replace existing files?",
                f"{names} already exist{'s' if one else ''} in {os.path.dirname(existing[0])}. "
                f"Replace {'it' if one else 'them'}?",
                QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
            if answer != QMessageBox.Yes:
                return                  # stays open: another folder or format, or Cancel
        super().accept()

    def format(self) -> str:
        return self.format_combo.currentData()

    def speaker_names(self) -> bool:
        """SRT cues start with their speaker's name."""
        return self.format() == "srt" and self.speaker_check.isChecked()

    def speaker_checked(self) -> bool:
        """The box itself (remembered for the next SRT export)."""
        return self.speaker_check.isChecked()

    def folder(self) -> str | None:
        if not self.elsewhere.isChecked():
            return None
        return self.folder_edit.text().strip() or None

    def media_ids(self) -> list[int]:
        return [m["id"] for m in self.media]
