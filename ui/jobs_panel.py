"""The job panel: one row per file being (or lately) indexed, with a progress bar
naming the stage, the time left, and the reason a file failed."""
from __future__ import annotations

import html
import time

from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QHBoxLayout, QHeaderView,
                               QLabel, QPushButton, QStyle, QStyledItemDelegate,
                               QStyleOptionProgressBar, QTableView, QVBoxLayout, QWidget)
from . import roles
from .formatting import eta_text, file_name
from .table_model import ListTableModel

MEDIA_ID_ROLE = roles.USER + 1
FRACTION_ROLE = roles.USER + 3
FAILED_COLOR = QColor("#b3261e")

ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "cancelled")
STATUS_TO_STATE = {"queued": "queued", "indexing": "running", "done": "done",
                   "failed": "failed", "cancelled": "cancelled"}
# Where each stage's work lies within a file, for the overall bar: (start, share).
# Speech dominates; stages after it (text, visual, ...) share the rest.
# A stage's share of a file's work, for the overall bar and the batch's time left. The
# stages of a file do not run in one order (visual may end before speech starts), so a
# file's share done is the weight of its stages done (and of the running one's fraction)
# over the weight of the stages its kind gets.
STAGE_WEIGHT = {"probe": 0.05, "subtitles": 0.01, "speech": 0.6, "speakers": 0.03,
                "text": 0.02, "visual": 0.25, "faces": 0.04}
KIND_STAGES = {"audio": ("probe", "subtitles", "speech", "speakers", "text"),
               "video": ("probe", "subtitles", "visual", "faces")}


class JobsModel(ListTableModel):
    COLUMNS = ("File", "Progress", "Time left", "Details")
    PROGRESS_COL = 1

    def __init__(self, parent=None, clock=time.monotonic):
        super().__init__(parent)
        self._rows: list[dict] = []
        self._index: dict[int, int] = {}
        self.batch: set[int] = set()     # files of the current indexing run
        self.batch_started: float | None = None
        self.clock = clock

    # ---- Qt model --------------------------------------------------------------

    def data(self, index, role=roles.DISPLAY):
        if not index.isValid():
            return None
        row, col = self._rows[index.row()], index.column()
        if role == roles.DISPLAY:
            if col == 0:
                return file_name(row["path"])
            if col == 1:
                return self.progress_text(row)
            if col == 2:
                return eta_text(row.get("eta")) if row["state"] == "running" else ""
            return row.get("error") or ""
        if role == FRACTION_ROLE:
            return row["fraction"] if row["state"] == "running" else (
                1.0 if row["state"] == "done" else 0.0)
        if role == MEDIA_ID_ROLE:
            return row["media_id"]
        if role == roles.TOOLTIP:
            return row["path"] + (f"\n\n{row['error']}" if row.get("error") else "")
        if role == roles.FOREGROUND and row["state"] == "failed" and col in (1, 3):
            return FAILED_COLOR
        return None

    @staticmethod
    def progress_text(row: dict) -> str:
        state = row["state"]
        if state == "running":
            return f"{row['stage'].capitalize()} · {row['fraction'] * 100:.0f}%"
        if state == "queued":
            return "Queued" + (f" · {row['next']}" if row.get("next") else "")
        return {"done": "Done", "failed": f"Failed ({row['stage']})" if row.get("stage")
                else "Failed", "cancelled": "Cancelled"}[state]

    # ---- updates ------------------------------------------------------------------
    def row(self, media_id: int) -> dict | None:
        i = self._index.get(media_id)
        return None if i is None else self._rows[i]

    def rows(self) -> list[dict]:
        return list(self._rows)

    def _changed(self, media_id: int) -> None:
        i = self._index[media_id]
        self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.COLUMNS) - 1))

    def _ensure(self, media_id: int, path: str, state: str) -> dict:
        i = self._index.get(media_id)
        if i is not None:
            return self._rows[i]
        row = {"media_id": media_id, "path": path, "state": state, "stage": "", "fraction": 0.0,
               "eta": None, "error": None, "progress": 0.0, "kind": None, "done": set()}
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows))
        self._index[media_id] = len(self._rows)
        self._rows.append(row)
        self.endInsertRows()
        return row

    def _reindex(self) -> None:
        self._index = {r["media_id"]: i for i, r in enumerate(self._rows)}

    def sync_media(self, media: list[dict]) -> None:
        """Bring rows in line with the library: unfinished and failed files always
        show; finished ones stay until cleared."""
        by_id = {m["id"]: m for m in media}
        for i in reversed(range(len(self._rows))):
            if self._rows[i]["media_id"] not in by_id:
                self.beginRemoveRows(QModelIndex(), i, i)
                del self._rows[i]
                self.endRemoveRows()
        self._reindex()
        for m in media:
            state = STATUS_TO_STATE.get(m["status"], "queued")
            row = self.row(m["id"])
            if row is None:
                if state == "done":
                    continue
                row = self._ensure(m["id"], m["path"], state)
            before = dict(row, done=set(row["done"]))
            row["path"] = m["path"]
            row["kind"] = m.get("kind") or row["kind"]
            if state == "running" and row["state"] == "running":
                pass                                   # live events know more
            elif state != row["state"]:
                if row["state"] in FINAL and state in ACTIVE:     # retried
                    row.update(stage="", fraction=0.0, next=None, progress=0.0, done=set())
                row["state"] = state
                if state in FINAL:
                    row["eta"] = None
            row["error"] = m.get("error") if state == "failed" else None
            if state in ACTIVE:
                self._join_batch(m["id"])
            self._update_progress(row)
            if row != before:
                self._changed(m["id"])

    def apply_event(self, event: dict) -> None:
        kind = event.get("type")
        media_id = event.get("media_id")
        if media_id is None or kind not in ("job_started", "progress", "job_finished",
                                            "worker_crashed"):
            return
        row = self._ensure(media_id, event["path"], "running")
        self._join_batch(media_id)
        if kind in ("job_started", "progress"):
            if row["state"] in FINAL:                 # retried
                row.update(progress=0.0, done=set())
            row.update(state="running", stage=event["stage"], fraction=event["fraction"],
                       eta=event.get("eta"), error=None, next=None)
        elif kind == "job_finished":
            state = event["state"]
            row.update(stage=event["stage"], eta=None)
            if state == "done":
                row.update(fraction=1.0, state="queued", next=f"{event['stage']} done")
                row["done"].add(event["stage"])
            else:
                row.update(state=state, error=event.get("error"))
        elif kind == "worker_crashed" and event.get("retrying"):
            row.update(state="queued", next="retrying after a worker crash", eta=None)
        self._update_progress(row)
        self._changed(media_id)

    @staticmethod
    def _update_progress(row: dict) -> None:
        """The file's share done, for the overall bar; it never goes back (a queued
        file keeps what it had), except when a file is retried."""
        if row["state"] in FINAL:
            row["progress"] = 1.0
            return
        running = row["stage"] if row["state"] == "running" else None
        stages = set(KIND_STAGES.get(row.get("kind"), STAGE_WEIGHT)) | row["done"]
        if running:
            stages.add(running)
        total = sum(STAGE_WEIGHT.get(st, 0.01) for st in stages)
        done = sum(STAGE_WEIGHT.get(st, 0.01) for st in row["done"] if st != running)
        if running:
            done += STAGE_WEIGHT.get(running, 0.01) * row["fraction"]
        row["progress"] = max(row.get("progress", 0.0), min(0.99, done / total))

    def _join_batch(self, media_id: int) -> None:
        if not self.batch:
            self.batch_started = self.clock()
        self.batch.add(media_id)

    def clear_finished(self) -> None:
        keep = [r for r in self._rows if r["state"] not in ("done", "cancelled")]
        if len(keep) != len(self._rows):
            self.beginResetModel()
            self._rows = keep
            self._reindex()
            self.endResetModel()
        self.batch = {m for m in self.batch if m in self._index}

    def end_batch_if_idle(self) -> None:
        if not any(r["state"] in ACTIVE for r in self._rows):
            self.batch.clear()

    def overall(self) -> tuple[int, int, float, dict | None]:
        """(finished files, files in batch, fraction, the running row)."""
        rows = [self.row(m) for m in self.batch]
        rows = [r for r in rows if r is not None]
        if not rows:
            return 0, 0, 0.0, None
        finished = sum(r["state"] in FINAL for r in rows)
        fraction = sum(r["progress"] for r in rows) / len(rows)
        running = next((r for r in rows if r["state"] == "running"), None)
        return finished, len(rows), fraction, running

    def batch_eta(self) -> float | None:
        """Seconds left for the whole batch at its pace so far (None before it has one)."""
        _, total, fraction, _ = self.overall()
        if not total or self.batch_started is None or fraction < 0.01:
            return None
        return (self.clock() - self.batch_started) * (1 - fraction) / fraction

    def batch_summary(self) -> str:
        """'3 of 29 files done · about 12 min 05 s left', or '' when no batch runs."""
        finished, total, _, _ = self.overall()
        if not total or finished >= total:
            return ""
        eta = self.batch_eta()
        return f"{finished} of {total} files done" + (
            f" · about {eta_text(eta)}" if eta is not None else "")


class ProgressDelegate(QStyledItemDelegate):
    """Draws the Progress column as a progress bar with the stage written on it."""

    def paint(self, painter, option, index):
        opt = QStyleOptionProgressBar()
        opt.rect = option.rect.adjusted(2, 3, -2, -3)
        opt.minimum, opt.maximum = 0, 1000
        opt.progress = int((index.data(FRACTION_ROLE) or 0.0) * 1000)
        opt.text = index.data(roles.DISPLAY) or ""
        opt.textVisible = True
        opt.state = option.state | QStyle.State_Horizontal
        opt.palette = option.palette
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.CE_ProgressBar, opt, painter, option.widget)


class JobsPanel(QWidget):
    cancel_requested = Signal(list)
    retry_requested = Signal(list)      # [] means every failed or cancelled file
    active_count_changed = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = JobsModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(JobsModel.PROGRESS_COL, ProgressDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.ElideMiddle)    # names of a series differ at the end
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(26)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.Interactive)
        header.setSectionResizeMode(1, QHeaderView.Interactive)
        header.setSectionResizeMode(2, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.Stretch)
        self.table.setColumnWidth(0, 180)
        self.table.setColumnWidth(1, 170)

        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop indexing the selected files")
        self.cancel_button.clicked.connect(lambda: self.cancel_requested.emit(self._selected()))
        self.retry_button = QPushButton("Retry")
        self.retry_button.setToolTip("Index the selected failed or cancelled files again")
        self.retry_button.clicked.connect(lambda: self.retry_requested.emit(self._selected()))
        self.retry_all_button = QPushButton("Retry all failed")
        self.retry_all_button.clicked.connect(lambda: self.retry_requested.emit([]))
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.clicked.connect(self.model.clear_finished)
        self.summary = QLabel()             # the whole batch: files done, time left
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.empty_label = QLabel("No files are being indexed. Drop files or folders on the "
                                  "window to add them.")
        self.empty_label.setAlignment(Qt.AlignCenter)
        self.empty_label.setWordWrap(True)

        buttons = QHBoxLayout()
        for b in (self.cancel_button, self.retry_button, self.retry_all_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.clear_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.empty_label)
        lay.addWidget(self.summary)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.detail)
        lay.addLayout(buttons)

        # Once per event-loop pass, not per progress event of every row.
        self._buttons_timer = QTimer(self, singleShot=True, interval=0)
        self._buttons_timer.timeout.connect(self._update_buttons)
        self.table.selectionModel().selectionChanged.connect(self._buttons_timer.start)
        for signal in (self.model.dataChanged, self.model.rowsInserted, self.model.rowsRemoved,
                       self.model.modelReset):
            signal.connect(self._buttons_timer.start)
        self._update_buttons()

    def _selected(self) -> list[int]:
        return [i.data(MEDIA_ID_ROLE) for i in self.table.selectionModel().selectedRows()]

    def _update_buttons(self, *args) -> None:
        rows = [self.model.row(m) for m in self._selected()]
        rows = [r for r in rows if r]
        all_rows = self.model.rows()
        self.cancel_button.setEnabled(any(r["state"] in ACTIVE for r in rows))
        self.retry_button.setEnabled(any(r["state"] in ("failed", "cancelled") for r in rows))
        self.retry_all_button.setEnabled(any(r["state"] == "failed" for r in all_rows))
        self.clear_button.setEnabled(any(r["state"] in ("done", "cancelled") for r in all_rows))
        failed = [r for r in (rows or all_rows) if r["state"] == "failed"]
        if rows and len(rows) == 1 and rows[0].get("error"):
            r = rows[0]
            self.detail.setText(f"<b>{file_name(r['path'])}</b>: {html.escape(r['error'], quote=False)}")
        elif failed:
            self.detail.setText(f"{len(failed)} file(s) failed. Select one to read why, or "
                                "hover over it.")
        else:
            self.detail.setText("")
        self.detail.setVisible(bool(self.detail.text()))
        self.summary.setText(self.model.batch_summary())
        self.summary.setVisible(bool(self.summary.text()))
        self.empty_label.setVisible(not all_rows)
        self.table.setVisible(bool(all_rows))
        self.active_count_changed.emit(sum(r["state"] in ACTIVE for r in all_rows))

    def select_media(self, media_id: int) -> None:
        i = self.model._index.get(media_id)
        if i is not None:
            self.table.selectRow(i)
        self._update_buttons()

    def detail_text(self) -> str:
        self._update_buttons()
        return self.detail.text()

