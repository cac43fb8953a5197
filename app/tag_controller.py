"""Action tags and motion groups for the GUI: a `TagController` on the GUI thread that
hands each request to a `_TagWorker` on its own QThread (app.tag_service.TagService does
the work there, with its own Store per call) and emits the answers as plain data.

    ctl = TagController(library)
    ctl.trained.connect(show)              # result dict of TagService.train
    ctl.train("spinning", [{"path": "/v/a.mp4", "start": 3.0, "end": 9.0}])
    ctl.cancel()                           # between the training's steps

Failures a user can fix (too few examples, no motion descriptors yet) arrive as
`failed(operation, message)` with the engine's own sentence, never a traceback.
"""
from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from .tag_service import TagError, TagService

GROUP_THUMB_WITHIN_S = 3.0


class TrainingCancelled(Exception):
    """Raised from the progress callback, before the tag is saved."""


def example_spec(example: dict) -> str:
    """{"path", "start", "end"} (times in seconds, or None for the whole file) ->
    TagService's "PATH@START-END"."""
    path, start, end = str(example["path"]), example.get("start"), example.get("end")
    if start is None:
        return path
    return f"{path}@{float(start):.3f}-" + ("" if end is None else f"{float(end):.3f}")


def _message(exc: Exception) -> str:
    if isinstance(exc, TagError):
        return str(exc)
    text = str(exc)
    if "no such table" in text:
        return ("The library has no motion descriptors yet: add and index some video "
                f"first ({text}).")
    return f"{type(exc).__name__}: {text}"


class _TagWorker(QObject):
    """Lives on the tag thread; one request at a time."""

    listed = Signal(object)                 # tag dicts
    progress = Signal(float, str)
    trained = Signal(object)                # result dict
    deleted = Signal(str, int)              # label, rows removed
    groups_listed = Signal(object, bool)    # group dicts (examples carry "thumbnail"), made now
    named = Signal(object)                  # result dict of name_group
    cancelled = Signal(str)                 # operation
    failed = Signal(str, str)               # operation, message
    busy = Signal(bool)

    def __init__(self, library: Path, thumb_dir):
        super().__init__()
        self.library = Path(library)
        self._thumb_dir = thumb_dir
        self.cancel_flag = threading.Event()

    def _service(self) -> TagService:
        return TagService(self.library)

    def _run(self, op: str, fn) -> None:
        self.busy.emit(True)
        try:
            fn()
        except TrainingCancelled:
            self.cancelled.emit(op)
        except Exception as exc:   # shown in the dialog; the thread lives on
            self.failed.emit(op, _message(exc))
        finally:
            self.busy.emit(False)

    @Slot(str)
    def open_library(self, path: str) -> None:
        self.library = Path(path)

    @Slot()
    def list_tags(self) -> None:
        self._run("list", lambda: self.listed.emit(self._service().list_tags()))

    @Slot(str, object, object, bool)
    def train(self, label: str, examples: list, negatives: list,
              sample_negatives: bool = True) -> None:
        def report(fraction: float, message: str) -> None:
            if fraction < 1.0 and self.cancel_flag.is_set():
                raise TrainingCancelled()
            self.progress.emit(float(fraction), message)

        def work():
            svc = self._service()
            res = svc.train(label, [example_spec(e) for e in examples],
                            [example_spec(e) for e in negatives],
                            sample_negatives=sample_negatives, progress=report)
            self.trained.emit(res)
            self.listed.emit(svc.list_tags())
        self._run("train", work)

    @Slot(str)
    def delete(self, label: str) -> None:
        def work():
            svc = self._service()
            n = svc.delete(label)
            self.deleted.emit(label, n)
            self.listed.emit(svc.list_tags())
        self._run("delete", work)

    @Slot(bool, int)
    def groups(self, make: bool, k: int) -> None:
        def work():
            svc = self._service()
            if make:
                self.progress.emit(0.1, "grouping the library's motion windows")
            rows = svc.make_groups(k or None) if make else svc.groups()
            self._add_thumbnails(rows)
            self.groups_listed.emit(rows, make)
        self._run("groups", work)

    @Slot(int, str)
    def name_group(self, group_id: int, label: str) -> None:
        def work():
            svc = self._service()
            res = svc.name_group(group_id, label)
            rows = svc.groups()
            self._add_thumbnails(rows)
            self.groups_listed.emit(rows, False)
            self.listed.emit(svc.list_tags())
            self.named.emit(res)
        self._run("name", work)

    def _add_thumbnails(self, groups: list[dict]) -> None:
        """Each example window gets "thumbnail": the absolute path of the keyframe
        thumbnail nearest its middle (within a few seconds), or None."""
        from indexer.store.reads import thumbnail_near
        from indexer.store import Store
        folder = Path(self._thumb_dir(self.library))
        store = Store(self.library)
        try:
            for g in groups:
                for ex in g["examples"]:
                    mid = (ex["start"] + ex["end"]) / 2
                    rel = thumbnail_near(store, ex["media_id"], mid, GROUP_THUMB_WITHIN_S)
                    ex["thumbnail"] = str(folder / rel) if rel else None
        finally:
            store.close()


class TagController(QObject):
    """The GUI's door to action tags. Every request returns at once; answers arrive
    as signals. `tags_changed` fires whenever tag rows in the library changed (train,
    delete, name a group): the player's timeline and the search should refresh."""

    tags_listed = Signal(object)
    train_progress = Signal(float, str)     # fraction 0..1, what is being done
    trained = Signal(object)
    deleted = Signal(str, int)
    groups_listed = Signal(object, bool)
    group_named = Signal(object)
    cancelled = Signal(str)
    failed = Signal(str, str)               # operation, message for the user
    busy_changed = Signal(bool)
    tags_changed = Signal()

    _req_list = Signal()
    _req_train = Signal(str, object, object, bool)
    _req_delete = Signal(str)
    _req_groups = Signal(bool, int)
    _req_name = Signal(int, str)
    _req_open = Signal(str)

    def __init__(self, library: Path, thumb_dir=None, parent=None):
        super().__init__(parent)
        if thumb_dir is None:
            from .stages import thumbnail_dir as thumb_dir
        self._busy = False
        self._thread = QThread(self)
        self._thread.setObjectName("avindex-tags")
        self._worker = _TagWorker(Path(library), thumb_dir)
        self._worker.moveToThread(self._thread)
        self._thread.finished.connect(self._worker.deleteLater)
        for req, slot in ((self._req_list, self._worker.list_tags),
                          (self._req_train, self._worker.train),
                          (self._req_delete, self._worker.delete),
                          (self._req_groups, self._worker.groups),
                          (self._req_name, self._worker.name_group),
                          (self._req_open, self._worker.open_library)):
            req.connect(slot)
        w = self._worker
        w.listed.connect(self.tags_listed)
        w.progress.connect(self.train_progress)
        w.trained.connect(self._changed_then(self.trained))
        w.deleted.connect(lambda label, n: (self.deleted.emit(label, n), self.tags_changed.emit()))
        w.groups_listed.connect(self.groups_listed)
        w.named.connect(self._changed_then(self.group_named))
        w.cancelled.connect(self.cancelled)
        w.failed.connect(self.failed)
        w.busy.connect(self._set_busy)
        self._thread.start()

    def _changed_then(self, signal):
        def relay(payload):
            signal.emit(payload)
            self.tags_changed.emit()
        return relay

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.busy_changed.emit(busy)

    @property
    def busy(self) -> bool:
        return self._busy

    # ---- requests (GUI thread) ------------------------------------------------------------
    def open_library(self, path) -> None:
        self._req_open.emit(str(path))

    def list_tags(self) -> None:
        self._req_list.emit()

    def train(self, label: str, examples: list[dict], negatives: list[dict] = (), *,
              sample_negatives: bool = True) -> None:
        """examples/negatives: {"path", "start", "end"} dicts (None times: whole file);
        sample_negatives: also windows of the library's other videos as negatives."""
        self._worker.cancel_flag.clear()      # here, so a cancel right after it counts
        self._req_train.emit(label, [dict(e) for e in examples], [dict(e) for e in negatives],
                             sample_negatives)

    def cancel(self) -> None:
        """Stop a training at its next step; nothing is saved."""
        self._worker.cancel_flag.set()

    def delete(self, label: str) -> None:
        self._req_delete.emit(label)

    def make_groups(self, k: int | None = None) -> None:
        self._req_groups.emit(True, int(k or 0))

    def load_groups(self) -> None:
        self._req_groups.emit(False, 0)

    def name_group(self, group_id: int, label: str) -> None:
        self._req_name.emit(int(group_id), label)

    def shutdown(self, timeout_ms: int = 20000) -> None:
        self._worker.cancel_flag.set()
        self._thread.quit()
        self._thread.wait(timeout_ms)
