"""Action tags: train a tag from example moments, list and delete the trained tags, find
motion groups in the library and name them. All work goes through app.tag_controller
(signals both ways, plain data); nothing here touches the library file.

Example moments are dicts {"media_id", "path", "start", "end", "positive"}; start/end
None means the whole file. The window supplies them from a search result, the player's
position, or a clip picked with "Add clip…".
"""
from __future__ import annotations

import os

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QDialog, QDialogButtonBox,
                               QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView,
                               QInputDialog, QLabel, QLineEdit, QMessageBox, QProgressBar,
                               QPushButton, QSpinBox, QTabWidget, QTableWidget,
                               QTableWidgetItem, QTreeWidget, QTreeWidgetItem, QVBoxLayout,
                               QWidget)

from .formatting import duration_text, file_name
from .thumbnails import ThumbnailCache

TRAIN_TAB, GROUPS_TAB = range(2)
GROUP_THUMB = QSize(80, 45)
PLAYER_WINDOW_S = 2.0          # "use the current moment": this much either side
SOURCE_NAMES = {"action": "examples", "motion-group": "motion group"}
ROLE = Qt.UserRole


def moment_text(ex: dict) -> str:
    if ex.get("start") is None:
        return "whole file"
    end = ex.get("end")
    return f"{duration_text(ex['start'])}–{duration_text(end) if end is not None else 'end'}"


def negatives_text(origin: str | None) -> str:
    """Where the counter-example windows came from, in the dialog's words (the engine
    says "given", "12 sampled from the library" or both joined by " + ")."""
    if not origin:
        return "none"
    return origin.replace("given", "your counter-examples").replace(
        "sampled from the library", "sampled from the rest of the library")


def percent(value) -> str:
    return "—" if value is None else f"{float(value) * 100:.0f}%"


class TagsDialog(QDialog):
    """Non-modal; one per window. `play_requested(media_id, path, seconds)` asks the
    window to play a group's example; `result_example_requested` /
    `player_example_requested` ask it for the current search result / player moment
    (it answers with add_example)."""

    play_requested = Signal(int, str, float)
    result_example_requested = Signal()
    player_example_requested = Signal()

    def __init__(self, controller, thumbnails: ThumbnailCache | None = None,
                 media_extensions=(), parent=None):
        super().__init__(parent)
        self.setWindowTitle("Action tags")
        self.setModal(False)
        self.resize(900, 620)
        self.controller = controller
        self.thumbnails = thumbnails or ThumbnailCache(self)
        self.thumbnails.ready.connect(self._thumbnail_ready)
        self.media_extensions = list(media_extensions)
        self.examples: list[dict] = []
        self.tags: list[dict] = []
        self.groups: list[dict] = []
        self.last_result: dict | None = None
        self.last_error: str | None = None
        self._op: str | None = None

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_train_tab(), "Train a tag")
        self.tabs.addTab(self._build_groups_tab(), "Motion groups")
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.close)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(buttons)

        for button in self.findChildren(QPushButton):   # Enter trains; nothing else
            button.setAutoDefault(button is self.train_button)
        c = controller
        c.tags_listed.connect(self.set_tags)
        c.train_progress.connect(self._progress)
        c.trained.connect(self._trained)
        c.deleted.connect(self._deleted)
        c.groups_listed.connect(self.set_groups)
        c.group_named.connect(self._named)
        c.cancelled.connect(self._cancelled)
        c.failed.connect(self._failed)
        c.busy_changed.connect(self._busy_changed)
        self._update_buttons()

    # ---- construction -------------------------------------------------------------------
    def _build_train_tab(self) -> QWidget:
        self.label_edit = QLineEdit()
        self.label_edit.setPlaceholderText("What the moments show, e.g. “spinning”")
        self.label_edit.textChanged.connect(lambda _: self._update_buttons())

        self.examples_table = QTableWidget(0, 3)
        self.examples_table.setHorizontalHeaderLabels(("Kind", "File", "Moment"))
        self.examples_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.examples_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.examples_table.verticalHeader().hide()
        header = self.examples_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeToContents)
        self.examples_table.itemSelectionChanged.connect(self._update_buttons)
        self.examples_table.doubleClicked.connect(lambda i: self._play_example(i.row()))

        self.add_result_button = QPushButton("Add search result")
        self.add_result_button.setToolTip("The moment selected in the search results")
        self.add_result_button.clicked.connect(self.result_example_requested)
        self.add_player_button = QPushButton("Add player moment")
        self.add_player_button.setToolTip(f"{PLAYER_WINDOW_S:.0f} s either side of where "
                                          "the player is")
        self.add_player_button.clicked.connect(self.player_example_requested)
        self.add_clip_button = QPushButton("Add clip…")
        self.add_clip_button.setToolTip("A whole file of the library as an example")
        self.add_clip_button.clicked.connect(self.choose_clips)
        self.flip_button = QPushButton("Example / counter-example")
        self.flip_button.setToolTip("A counter-example shows what the tag is not; without "
                                    "any, moments from the rest of the library are used")
        self.flip_button.clicked.connect(self.flip_selected)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        ex_buttons = QHBoxLayout()
        for b in (self.add_result_button, self.add_player_button, self.add_clip_button):
            ex_buttons.addWidget(b)
        ex_buttons.addStretch(1)
        ex_buttons.addWidget(self.flip_button)
        ex_buttons.addWidget(self.remove_button)

        self.only_given = QCheckBox("Learn only from my counter-examples")
        self.only_given.setToolTip(
            "Otherwise moments sampled from the rest of the library count as counter-"
            "examples too. Turn this on when much of the library shows the action, so "
            "that none of it is learnt as what the tag is not.")
        self.train_button = QPushButton("Train and tag the library")
        self.train_button.setDefault(True)
        self.train_button.clicked.connect(self.train)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.controller.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p%")
        self.status = QLabel("Add at least two example moments, then train.")
        self.status.setWordWrap(True)
        self.result_label = QLabel()
        self.result_label.setWordWrap(True)
        self.result_label.setTextFormat(Qt.RichText)
        train_row = QHBoxLayout()
        train_row.addWidget(self.train_button)
        train_row.addWidget(self.cancel_button)
        train_row.addWidget(self.progress, 1)

        form = QFormLayout()
        form.addRow("Tag name:", self.label_edit)
        examples_box = QGroupBox("Example moments")
        eb = QVBoxLayout(examples_box)
        eb.addWidget(self.examples_table, 1)
        eb.addLayout(ex_buttons)
        eb.addWidget(self.only_given)

        self.tags_table = QTableWidget(0, 5)
        self.tags_table.setHorizontalHeaderLabels(("Tag", "Learnt from", "Ranges", "Accuracy",
                                                   "Examples"))
        self.tags_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.tags_table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.tags_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.tags_table.verticalHeader().hide()
        th = self.tags_table.horizontalHeader()
        th.setSectionResizeMode(0, QHeaderView.Stretch)
        for col in range(1, 5):
            th.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        self.tags_table.itemSelectionChanged.connect(self._update_buttons)
        self.tags_table.doubleClicked.connect(lambda i: self.load_tag(i.row()))
        self.delete_button = QPushButton("Delete tag")
        self.delete_button.setToolTip("Forget the tag and remove it from every file")
        self.delete_button.clicked.connect(self.delete_selected)
        tags_box = QGroupBox("Trained tags")
        tb = QVBoxLayout(tags_box)
        tb.addWidget(self.tags_table, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Double-click a tag to retrain it; search finds tagged "
                             "moments by it."))
        row.addStretch(1)
        row.addWidget(self.delete_button)
        tb.addLayout(row)

        page = QWidget()
        lay = QVBoxLayout(page)
        lay.addLayout(form)
        lay.addWidget(examples_box, 3)
        lay.addLayout(train_row)
        lay.addWidget(self.status)
        lay.addWidget(self.result_label)
        lay.addWidget(tags_box, 2)
        return page

    def _build_groups_tab(self) -> QWidget:
        self.k_spin = QSpinBox()
        self.k_spin.setRange(0, 50)
        self.k_spin.setSpecialValueText("automatic")
        self.k_spin.setToolTip("How many groups (automatic: chosen from the data)")
        self.find_button = QPushButton("Find groups")
        self.find_button.setToolTip("Group every described moment of the library's video "
                                    "by how things move (replaces the last grouping)")
        self.find_button.clicked.connect(self.find_groups)
        self.name_button = QPushButton("Name group…")
        self.name_button.setToolTip("Turn the selected group into a tag")
        self.name_button.clicked.connect(lambda: self.name_selected_group())
        self.groups_status = QLabel("Find groups of moments that move alike, look at their "
                                    "examples, and name the ones that mean something.")
        self.groups_status.setWordWrap(True)
        self.groups_tree = QTreeWidget()
        self.groups_tree.setHeaderLabels(("Group / example", "Moment"))
        self.groups_tree.setIconSize(GROUP_THUMB)
        self.groups_tree.header().setSectionResizeMode(0, QHeaderView.Stretch)
        self.groups_tree.header().setSectionResizeMode(1, QHeaderView.ResizeToContents)
        self.groups_tree.itemSelectionChanged.connect(self._update_buttons)
        self.groups_tree.itemDoubleClicked.connect(self._group_item_activated)
        top = QHBoxLayout()
        top.addWidget(QLabel("Groups:"))
        top.addWidget(self.k_spin)
        top.addWidget(self.find_button)
        top.addStretch(1)
        top.addWidget(self.name_button)
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.addLayout(top)
        lay.addWidget(self.groups_status)
        lay.addWidget(self.groups_tree, 1)
        return page

    # ---- examples ------------------------------------------------------------------------
    def add_example(self, media_id: int | None, path: str, start: float | None = None,
                    end: float | None = None, positive: bool = True) -> bool:
        """Add a moment (None times: the whole file); False if it is already listed."""
        ex = {"media_id": media_id, "path": str(path),
              "start": None if start is None else max(0.0, float(start)),
              "end": None if end is None else float(end), "positive": bool(positive)}
        key = (ex["path"], ex["start"], ex["end"])
        if any((e["path"], e["start"], e["end"]) == key for e in self.examples):
            self.status.setText(f"{file_name(path)} {moment_text(ex)} is already listed.")
            return False
        self.examples.append(ex)
        self._fill_examples()
        self.tabs.setCurrentIndex(TRAIN_TAB)
        self.status.setText(f"Added {file_name(path)} {moment_text(ex)}.")
        return True

    def add_hit(self, hit: dict) -> bool:
        """A search result's moment: its own range, or a window around where it plays."""
        start, end = hit.get("start"), hit.get("end")
        seek = float(hit.get("seek", start or 0.0))
        if start is None or end is None or end - start < 1.0:
            start, end = seek - PLAYER_WINDOW_S, seek + PLAYER_WINDOW_S
        return self.add_example(hit.get("media_id"), hit["path"], start, end)

    def add_player_moment(self, media_id: int, path: str, seconds: float) -> bool:
        start = max(0.0, seconds - PLAYER_WINDOW_S)
        return self.add_example(media_id, path, start, start + 2 * PLAYER_WINDOW_S)

    def choose_clips(self) -> None:
        exts = " ".join(f"*{e}" for e in self.media_extensions) or "*"
        paths, _ = QFileDialog.getOpenFileNames(self, "Example clips (files in the library)",
                                                os.path.expanduser("~"),
                                                f"Video ({exts});;All files (*)")
        for p in paths:
            self.add_example(None, p)

    def _fill_examples(self) -> None:
        t = self.examples_table
        t.setRowCount(len(self.examples))
        for row, ex in enumerate(self.examples):
            kind = QTableWidgetItem("Example" if ex["positive"] else "Counter-example")
            if not ex["positive"]:
                kind.setForeground(Qt.darkRed)
            name = QTableWidgetItem(file_name(ex["path"]))
            name.setToolTip(ex["path"])
            for col, item in enumerate((kind, name, QTableWidgetItem(moment_text(ex)))):
                t.setItem(row, col, item)
        self._update_buttons()

    def _selected_rows(self, table) -> list[int]:
        return sorted({i.row() for i in table.selectionModel().selectedRows()})

    def remove_selected(self) -> None:
        for row in reversed(self._selected_rows(self.examples_table)):
            del self.examples[row]
        self._fill_examples()

    def flip_selected(self) -> None:
        rows = self._selected_rows(self.examples_table)
        for row in rows:
            self.examples[row]["positive"] = not self.examples[row]["positive"]
        self._fill_examples()
        for row in rows:
            self.examples_table.selectRow(row)

    def _play_example(self, row: int) -> None:
        ex = self.examples[row]
        if ex.get("media_id") is not None:
            self.play_requested.emit(ex["media_id"], ex["path"], ex.get("start") or 0.0)

    # ---- training ------------------------------------------------------------------------
    def train(self) -> None:
        label = self.label_edit.text().strip()
        positives = [e for e in self.examples if e["positive"]]
        if not label:
            self._show_error("Give the tag a name first.")
            return
        if not positives:
            self._show_error("Add at least one example moment (not a counter-example).")
            return
        self.last_result = self.last_error = None
        self.result_label.clear()
        self.progress.setValue(0)
        self.status.setText(f"Training “{label}” on {len(positives)} example(s)…")
        self._op = "train"
        negatives = [e for e in self.examples if not e["positive"]]
        if self.only_given.isChecked() and not negatives:
            self._show_error("Add a counter-example, or let the dialog sample them from "
                             "the rest of the library.")
            return
        self.controller.train(label, positives, negatives,
                              sample_negatives=not self.only_given.isChecked())

    def _progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        if self._op == "train":
            self.status.setText(f"Training: {message}…" if fraction < 1 else "Done.")
        elif self._op == "groups":
            self.groups_status.setText(message[:1].upper() + message[1:] + "…")

    def _trained(self, res: dict) -> None:
        self._op = None
        self.last_result = res
        self.progress.setValue(1000)
        self.status.setText(f"Trained “{res['label']}” and tagged the library.")
        self.result_label.setText(self.result_text(res))

    @staticmethod
    def result_text(res: dict) -> str:
        acc = res.get("cv_accuracy")
        acc_text = (f"<b>Accuracy {percent(acc)}</b> (cross-validated, {res.get('folds')} "
                    "folds)" if acc is not None else "<b>Accuracy not measured</b> "
                    "(too few examples to cross-validate)")
        return (f"{acc_text} · threshold {float(res['threshold']):.2f} · "
                f"{res['positives']} example windows, {res['negatives']} counter-example "
                f"windows ({negatives_text(res.get('negatives_from'))})"
                f"<br><b>{res['ranges']} range(s)</b> of "
                f"the library tagged “{res['label']}” "
                f"({res.get('tagged_windows', 0)} of {res.get('windows', 0)} windows).")

    def _cancelled(self, op: str) -> None:
        self._op = None
        self.progress.setValue(0)
        self.status.setText("Training cancelled; nothing was changed.")

    def _failed(self, op: str, message: str) -> None:
        self._op = None
        self.progress.setValue(0)
        if op == "list":
            self.status.setText(f"Could not list the tags: {message}")
            return
        self._show_error(message, groups=op in ("groups", "name"))

    def _show_error(self, message: str, groups: bool = False) -> None:
        self.last_error = message
        label = self.groups_status if groups else self.status
        label.setText(f"<span style='color:#b00020'>{message}</span>")

    def _busy_changed(self, busy: bool) -> None:
        self._update_buttons()

    # ---- trained tags ----------------------------------------------------------------------
    def set_tags(self, tags: list[dict]) -> None:
        self.tags = list(tags)
        t = self.tags_table
        t.setRowCount(len(self.tags))
        for row, tag in enumerate(self.tags):
            cells = (tag["label"], SOURCE_NAMES.get(tag["source"], tag["source"]),
                     str(tag.get("ranges", 0)), percent(tag.get("cv_accuracy")),
                     str(tag.get("examples", "")))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if col == 0:
                    item.setToolTip(f"threshold {float(tag.get('threshold') or 0):.2f}, "
                                    f"encoder v{tag.get('encoder_version')}, "
                                    f"trained {tag.get('trained_at', '')}")
                t.setItem(row, col, item)
        self._update_buttons()

    def tag_labels(self) -> list[str]:
        return [t["label"] for t in self.tags]

    def load_tag(self, row: int) -> None:
        if 0 <= row < len(self.tags):
            self.label_edit.setText(self.tags[row]["label"])

    def delete_selected(self, confirm: bool = True) -> None:
        rows = self._selected_rows(self.tags_table)
        if not rows:
            return
        label = self.tags[rows[0]]["label"]
        if confirm and QMessageBox.question(
                self, "Delete tag", f"Delete the tag “{label}” and remove it from every "
                "file?") != QMessageBox.Yes:
            return
        self.delete_tag(label)

    def delete_tag(self, label: str) -> None:
        self._op = "delete"
        self.controller.delete(label)

    def _deleted(self, label: str, n: int) -> None:
        self._op = None
        self.status.setText(f"Deleted “{label}”.")

    # ---- motion groups ---------------------------------------------------------------------
    def find_groups(self) -> None:
        self._op = "groups"
        self.groups_status.setText("Grouping the library's moments by motion…")
        self.controller.make_groups(self.k_spin.value() or None)

    def set_groups(self, groups: list[dict], made: bool = False) -> None:
        self.groups = list(groups)
        if self._op == "groups":
            self._op = None
        tree = self.groups_tree
        tree.clear()
        for n, g in enumerate(self.groups, 1):
            name = f"“{g['label']}”" if g.get("label") else "unnamed"
            top = QTreeWidgetItem((f"Group {n} · {name}", f"{g['size']} moment(s)"))
            top.setData(0, ROLE, {"group": g["id"]})
            if g.get("label"):
                font = top.font(0)
                font.setBold(True)
                top.setFont(0, font)
            for ex in g["examples"]:
                child = QTreeWidgetItem((file_name(ex["path"]), moment_text(ex)))
                child.setToolTip(0, f"{ex['path']}\nDouble-click to play")
                child.setData(0, ROLE, dict(ex, group=g["id"]))
                self._set_icon(child, ex)
                top.addChild(child)
            tree.addTopLevelItem(top)
            top.setExpanded(True)
        if made or self.groups:
            self.groups_status.setText(
                f"{len(self.groups)} group(s). Double-click an example to play it; select a "
                "group and name it to make it a tag." if self.groups else "No groups.")
        self._update_buttons()

    def _set_icon(self, item: QTreeWidgetItem, ex: dict) -> None:
        if ex.get("thumbnail"):
            pm = self.thumbnails.pixmap(ex["thumbnail"], GROUP_THUMB)
            item.setIcon(0, pm if pm is not None else self.thumbnails.pending_icon(GROUP_THUMB))

    def _thumbnail_ready(self, path: str) -> None:
        root = self.groups_tree.invisibleRootItem()
        for i in range(root.childCount()):
            top = root.child(i)
            for j in range(top.childCount()):
                ex = top.child(j).data(0, ROLE)
                if ex and ex.get("thumbnail") == path:
                    self._set_icon(top.child(j), ex)

    def _group_item_activated(self, item: QTreeWidgetItem, column: int = 0) -> None:
        data = item.data(0, ROLE) or {}
        if "media_id" in data:
            self.play_requested.emit(int(data["media_id"]), data["path"], float(data["start"]))

    def selected_group(self) -> int | None:
        items = self.groups_tree.selectedItems()
        if not items:
            return None
        return (items[0].data(0, ROLE) or {}).get("group")

    def select_group(self, group_id: int) -> None:
        root = self.groups_tree.invisibleRootItem()
        for i in range(root.childCount()):
            if (root.child(i).data(0, ROLE) or {}).get("group") == group_id:
                self.groups_tree.setCurrentItem(root.child(i))

    def name_selected_group(self, label: str | None = None) -> None:
        group_id = self.selected_group()
        if group_id is None:
            return
        if label is None:
            current = next((g.get("label") for g in self.groups if g["id"] == group_id), "")
            label, ok = QInputDialog.getText(self, "Name group", "Tag name for this group:",
                                             text=current or "")
            if not ok:
                return
        label = label.strip()
        if not label:
            self._show_error("A tag needs a name.", groups=True)
            return
        self._op = "name"
        self.groups_status.setText(f"Naming the group “{label}”…")
        self.controller.name_group(group_id, label)

    def _named(self, res: dict) -> None:
        self._op = None
        acc = res.get("cv_accuracy")
        self.groups_status.setText(
            f"Named “{res['label']}”: {res['windows']} moment(s) in {res['ranges']} range(s) "
            f"tagged; videos indexed later are tagged too (accuracy {percent(acc)}).")

    # ---- state ----------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        busy = bool(getattr(self.controller, "busy", False))
        has_ex = bool(self._selected_rows(self.examples_table))
        self.remove_button.setEnabled(has_ex)
        self.flip_button.setEnabled(has_ex)
        self.train_button.setEnabled(not busy and bool(self.label_edit.text().strip())
                                     and any(e["positive"] for e in self.examples))
        self.cancel_button.setEnabled(busy and self._op == "train")
        self.delete_button.setEnabled(not busy and bool(self._selected_rows(self.tags_table)))
        self.find_button.setEnabled(not busy)
        self.name_button.setEnabled(not busy and self.selected_group() is not None)

    def showEvent(self, event):
        super().showEvent(event)
        self.label_edit.setFocus()
        self.controller.list_tags()
        if not self.groups:
            self.controller.load_groups()
