"""Watching the library's folders with watchdog, and keeping the library in step.

One thread (`avindex-watch`) owns a Store and does all the work; watchdog's threads only
queue raw events for it. On start, and whenever a folder comes back, each folder is
scanned once, which catches what changed while nobody watched; then events are followed:

- a new or written file waits until its writes have settled (settle.Settler), then is
  taken: by indexer.intake.take here, or handed to `on_settled` (the GUI sends it
  through its own intake);
- a file renamed or moved inside the watched folders keeps its media row (store.relink);
  a delete followed by a create of the same content is re-linked by intake's fingerprint;
- a deleted file is marked missing (after `settle_s`, so a save-by-replace is not one),
  never purged: `avindex prune` forgets it;
- a watched folder that is itself gone, replaced or emptied while the library holds its
  files (an unplugged drive, an unmounted share) becomes 'unavailable' and nothing under
  it is marked; when it is back it is scanned again and is 'ok'.

What happened is reported as plain dicts through `on_event` (from the watcher thread):
  taken      path, action (new, changed, relinked, unreadable), media_id, detail
  moved      media_id, path, from
  missing    media_id, path
  reappeared media_id, path
  scanned    path, files, waiting, mode ('native' or 'polling')
  folder     path, state ('ok' or 'unavailable'), reason
  problem    path, error    (a path inside a folder that cannot be read)
  warning    path, message
  error      message        (the watcher goes on)
  disk_full  message
"""
from __future__ import annotations

import errno
import os
import queue
import stat
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirMovedEvent, EventsLostEvent,
                             FileClosedEvent, FileCreatedEvent, FileDeletedEvent,
                             FileModifiedEvent, FileMovedEvent, FileSystemEvent,
                             FileSystemEventHandler)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from indexer.intake import MEDIA_EXTENSIONS, discover, is_gone, take, take_sidecar
from indexer.subtitle_tracks import is_sidecar_name
from indexer.store import DiskFull, Store

from .settle import DEFAULT_SETTLE_S, Settler

TICK_S = 0.2             # how often settled files and pending deletions are looked at
CHECK_S = 1.0            # how often each watched folder is checked to be there
POLL_INTERVAL_S = 5.0    # polling observer: seconds between two looks at a share
MAX_BATCH = 2000         # raw events handled between two ticks

EVENT_TYPES = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent,
               FileDeletedEvent, DirCreatedEvent, DirMovedEvent, DirDeletedEvent,
               EventsLostEvent]

Event = dict


@dataclass
class _Folder:
    path: str
    polling: bool
    state: str                                  # as stored: 'ok' or 'unavailable'
    identity: tuple[int, int] | None = None     # (device, inode) when last scanned
    watch: ObservedWatch | None = None
    observer: BaseObserver | None = None
    scanned: bool = False

    @property
    def mode(self) -> str:
        return "polling" if self.polling else "native"


class _Handler(FileSystemEventHandler):
    """watchdog's thread: hand each event to the watcher thread, nothing more."""

    def __init__(self, root: str, events: queue.Queue):
        self.root, self.events = root, events

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.events.put((self.root, event))


class FolderWatcher:
    def __init__(self, library: Path | str, *, settle_s: float = DEFAULT_SETTLE_S,
                 on_event: Callable[[Event], None] | None = None,
                 on_settled: Callable[[list[str]], None] | None = None,
                 poll_interval_s: float = POLL_INTERVAL_S, check_s: float = CHECK_S):
        self.library = Path(library)
        self.settle_s = settle_s
        self.on_event = on_event or (lambda e: None)
        self.on_settled = on_settled
        self.poll_interval_s = poll_interval_s
        self.check_s = check_s
        self._raw: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._thread: threading.Thread | None = None
        self._folders: dict[str, _Folder] = {}
        self._observers: dict[bool, BaseObserver] = {}     # polling? -> observer
        self._settler = Settler(settle_s)
        self._deleted: dict[str, tuple[bool, float]] = {}  # path -> (was a folder, when)
        self._rescan: set[str] = set()
        self._last_error = ""
        self._lock = threading.Lock()
        self.ready = threading.Event()     # set once every folder had its first scan

    # ---- controls (any thread) ------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="avindex-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following events; the observers are stopped and joined."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def reload(self) -> None:
        """The watched folders changed in the library: follow the new list."""
        self._reload.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def folders(self) -> list[dict]:
        """The folders followed now: path, state, mode."""
        with self._lock:
            return [{"path": f.path, "state": f.state, "mode": f.mode}
                    for f in self._folders.values()]

    def observer_threads(self) -> list[threading.Thread]:
        """watchdog's threads (observers and their emitters), for a caller that checks they
        are all gone after stop()."""
        threads: list[threading.Thread] = []
        for observer in self._observers.values():
            threads.append(observer)
            threads.extend(observer.emitters)
        return threads

    # ---- the watcher thread -------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        try:
            self.on_event(event)
        except Exception:       # a listener's bug must not stop the watching
            pass

    def _run(self) -> None:
        store = None
        try:
            store = Store(self.library)
            self._guarded(self._load, store)
            self.ready.set()
            last_check = time.monotonic()
            while not self._stop.is_set():
                self._guarded(self._drain, store)
                self._guarded(self._settle, store)
                self._guarded(self._flush_deletions, store)
                if self._reload.is_set():
                    self._reload.clear()
                    self._guarded(self._load, store)
                if self._rescan:
                    for path in list(self._rescan):
                        self._rescan.discard(path)
                        folder = self._folders.get(path)
                        if folder is not None:
                            self._guarded(self._scan, store, folder)
                if time.monotonic() - last_check >= self.check_s:
                    last_check = time.monotonic()
                    for folder in list(self._folders.values()):
                        self._guarded(self._check, store, folder)
        except Exception as exc:          # the library cannot be opened
            self._emit({"type": "error", "message": f"Watching stopped: {exc}"})
        finally:
            self.ready.set()
            for folder in list(self._folders.values()):
                self._unschedule(folder)
            for observer in self._observers.values():
                observer.stop()
            for observer in self._observers.values():
                if observer.is_alive():
                    observer.join(5)
            if store is not None:
                store.close()

    def _guarded(self, fn, *args) -> None:
        """One failure (a locked library, a full disk) is reported; the watching goes on."""
        try:
            fn(*args)
            self._last_error = ""
        except DiskFull as exc:
            self._report_once({"type": "disk_full", "message": str(exc)})
        except Exception as exc:  # noqa: BLE001
            self._report_once({"type": "error", "message": f"{type(exc).__name__}: {exc}"})

    def _report_once(self, event: Event) -> None:
        if event["message"] != self._last_error:      # not once per tick
            self._last_error = event["message"]
            self._emit(event)

    # ---- the folder list ------------------------------------------------------------------
    def _load(self, store: Store) -> None:
        rows = {f["path"]: f for f in store.watched_folders()}
        for path in [p for p in self._folders if p not in rows]:
            with self._lock:
                folder = self._folders.pop(path)
            self._unschedule(folder)
            self._settler.forget_under(path)
            self._forget_deletions_under(path)
        for path, row in rows.items():
            folder = self._folders.get(path)
            if folder is not None and folder.polling != bool(row["polling"]):
                self._unschedule(folder)
                folder.polling = bool(row["polling"])
                folder.scanned = False
            if folder is None:
                folder = _Folder(path, bool(row["polling"]), row["state"])
                with self._lock:
                    self._folders[path] = folder
            if not folder.scanned:
                self._scan(store, folder)

    def _observer(self, polling: bool) -> BaseObserver:
        observer = self._observers.get(polling)
        if observer is None:
            observer = (PollingObserver(timeout=self.poll_interval_s) if polling else Observer())
            observer.daemon = True
            observer.start()
            self._observers[polling] = observer
        return observer

    def _schedule(self, folder: _Folder) -> None:
        if folder.watch is not None:
            return
        handler = _Handler(folder.path, self._raw)
        observer = self._observer(folder.polling)
        try:
            folder.watch = observer.schedule(handler, folder.path, recursive=True,
                                             event_filter=EVENT_TYPES)
        except OSError as exc:
            if folder.polling or exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            # the system's limit on inotify watches is reached: poll this one instead
            self._emit({"type": "warning", "path": folder.path, "message":
                        "Too many folders to follow change events for (the system's inotify "
                        "limit, fs.inotify.max_user_watches); this folder is polled instead."})
            folder.polling = True
            observer = self._observer(True)
            folder.watch = observer.schedule(handler, folder.path, recursive=True,
                                             event_filter=EVENT_TYPES)
        folder.observer = observer

    def _unschedule(self, folder: _Folder) -> None:
        watch, observer = folder.watch, folder.observer
        folder.watch = folder.observer = None
        if watch is not None and observer is not None:
            try:
                observer.unschedule(watch)
            except (KeyError, RuntimeError, OSError):
                pass                      # its emitter had stopped (the folder was deleted)

    # ---- availability -----------------------------------------------------------------------
    def _check(self, store: Store, folder: _Folder) -> None:
        identity = _identity(folder.path)
        if folder.state == "ok":
            if identity is None:
                self._unavailable(store, folder, "The folder is gone (an unplugged drive or "
                                  "an unmounted share?); its files are kept.")
            elif folder.identity is not None and identity != folder.identity:
                self._unschedule(folder)   # another folder (or drive) is there now
                self._scan(store, folder)
        elif identity is not None:
            self._scan(store, folder)

    def _unavailable(self, store: Store, folder: _Folder, reason: str) -> None:
        self._unschedule(folder)
        self._settler.forget_under(folder.path)
        self._forget_deletions_under(folder.path)
        folder.identity = None
        folder.scanned = True
        if folder.state != "unavailable":
            store.set_watched_folder_state(folder.path, "unavailable")
            with self._lock:
                folder.state = "unavailable"
            self._emit({"type": "folder", "path": folder.path, "state": "unavailable",
                        "reason": reason})

    def _scan(self, store: Store, folder: _Folder) -> None:
        """Look at everything in the folder once: what is new or changed waits to settle
        (or is taken at once when it was last written longer than the settle time ago),
        what is back loses its missing mark, what is gone is marked missing."""
        path = folder.path
        identity = _identity(path)
        if identity is None:
            self._unavailable(store, folder, "The folder is gone (an unplugged drive or an "
                              "unmounted share?); its files are kept.")
            return
        known_here = {m["path"]: m for m in store.media_under(path)}
        present = [m for m in known_here.values() if not m["missing_since"]]
        if present and _empty(path):
            self._unavailable(store, folder, f"The folder is empty while the library holds "
                              f"{len(present)} file(s) from it (an unplugged drive or an "
                              "unmounted share?); they are kept.")
            return
        self._schedule(folder)      # before the walk: what changes during it is seen
        seen: set[str] = set()
        ready, waiting = [], 0
        now = time.time()
        for p, problem in discover([path]):
            if self._stop.is_set():
                return                        # scanned again at the next start
            spath = str(p)
            if problem:
                self._emit({"type": "problem", "path": spath, "error": problem})
                continue
            if not self._wanted(spath):
                continue
            seen.add(spath)
            try:
                st = os.stat(spath)
            except OSError:
                continue
            known = known_here.get(spath)
            if (known and known["fingerprint"] and known["size"] == st.st_size
                    and known["mtime_ns"] == st.st_mtime_ns):
                if known["missing_since"]:
                    store.clear_missing(known["id"])
                    self._emit({"type": "reappeared", "media_id": known["id"], "path": spath})
                continue
            if now - st.st_mtime >= self.settle_s and not folder.polling:
                ready.append(spath)           # written long enough ago: settled already
            else:
                self._settler.touch(spath)
                waiting += 1
        self._take(store, ready)              # first, so a moved file is re-linked, not missing
        gone = [m for m in store.media_under(path)    # again: taking may have re-linked some
                if m["path"] not in seen and not m["missing_since"] and is_gone(m["path"])]
        self._mark_missing(store, gone)
        folder.identity = identity
        folder.scanned = True
        self._emit({"type": "scanned", "path": path, "files": len(seen), "waiting": waiting,
                    "mode": folder.mode})
        if folder.state != "ok":
            store.set_watched_folder_state(path, "ok")
            with self._lock:
                folder.state = "ok"
            self._emit({"type": "folder", "path": path, "state": "ok",
                        "reason": "The folder is back; it was scanned again."})

    # ---- events ---------------------------------------------------------------------------
    def _drain(self, store: Store) -> None:
        try:
            item = self._raw.get(timeout=TICK_S)
        except queue.Empty:
            return
        for _ in range(MAX_BATCH):
            self._on_raw(store, *item)
            try:
                item = self._raw.get_nowait()
            except queue.Empty:
                return

    def _on_raw(self, store: Store, root: str, event: FileSystemEvent) -> None:
        folder = self._folders.get(root)
        if folder is None or folder.state != "ok" or folder.watch is None:
            return                      # a late event of a folder no longer followed
        src = os.fsdecode(event.src_path)
        if isinstance(event, EventsLostEvent):
            self._rescan.add(root)      # the kernel dropped events: look at everything
        elif event.event_type == "moved":
            dest = os.fsdecode(event.dest_path)
            if event.is_directory:
                self._folder_moved(store, src, dest)
            else:
                self._file_moved(store, src, dest)
        elif event.event_type == "deleted":
            if src == root:
                self._check(store, folder)
            else:
                self._note_deleted(src, event.is_directory)
        elif event.is_directory:
            if event.event_type == "created":      # a folder made or moved in: its files
                for p, problem in discover([src]):
                    if not problem and self._wanted(str(p)):
                        self._appeared(str(p))
        elif self._wanted(src):
            self._appeared(src)

    def _appeared(self, path: str) -> None:
        self._deleted.pop(path, None)
        self._settler.touch(path)

    def _note_deleted(self, path: str, is_dir: bool) -> None:
        if is_dir:
            self._settler.forget_under(path)
        self._settler.forget(path)
        self._deleted[path] = (is_dir, time.monotonic())

    def _file_moved(self, store: Store, src: str, dest: str) -> None:
        wanted = self._wanted(dest)
        if self._settler.move(src, dest):
            if not wanted:
                self._settler.forget(dest)
            return
        known = store.media_by_path(src)
        if known is None:
            if wanted:
                self._appeared(dest)      # e.g. a download renamed from .part when complete
            return
        if not wanted or store.media_by_path(dest) is not None:
            # moved out of sight, or over another file: src is gone, dest is looked at anew
            self._note_deleted(src, False)
            if wanted:
                self._appeared(dest)
            return
        self._relink(store, known, dest)

    def _folder_moved(self, store: Store, src: str, dest: str) -> None:
        for media in store.media_under(src):
            new = dest + media["path"][len(src):]
            if self._wanted(new) and store.media_by_path(new) is None:
                self._relink(store, media, new)
            else:
                self._note_deleted(media["path"], False)
        base = src.rstrip("/") + "/"
        for path in [p for p in list(self._deleted) if p.startswith(base)]:
            del self._deleted[path]
        for p, problem in discover([dest]):           # what waited there, and anything new
            if not problem and self._wanted(str(p)) and store.media_by_path(str(p)) is None:
                self._appeared(str(p))
        self._settler.forget_under(src)

    def _relink(self, store: Store, media: dict, dest: str) -> None:
        try:
            st = os.stat(dest)
        except OSError:
            self._note_deleted(media["path"], False)
            return
        if st.st_size != media["size"]:           # not the same content after all
            self._note_deleted(media["path"], False)
            self._appeared(dest)
            return
        store.relink(media["id"], dest, st.st_size, st.st_mtime_ns)
        self._deleted.pop(dest, None)
        self._emit({"type": "moved", "media_id": media["id"], "path": dest,
                    "from": media["path"]})

    # ---- settled files and deletions --------------------------------------------------------
    def _settle(self, store: Store) -> None:
        due = self._settler.due()
        if due:
            self._take(store, due)

    def _take(self, store: Store, paths: list[str]) -> None:
        if not paths:
            return
        if self.on_settled is not None:
            self.on_settled(list(paths))
            return
        for i, path in enumerate(paths):
            if self._stop.is_set():
                return                        # what is left is found by the next scan
            try:
                intake = take(store, Path(path), retry_failed=False)
            except DiskFull:
                for rest in paths[i:]:
                    self._settler.touch(rest)       # taken once there is room again
                raise
            # no_media: subtitles of a file not (yet) in the library, read when it comes
            if intake.action not in ("unchanged", "no_media"):
                self._emit({"type": "taken", **asdict(intake)})

    def _flush_deletions(self, store: Store) -> None:
        """Mark missing what was deleted at least `settle_s` ago and is still gone, if its
        watched folder is there (a folder that is gone is not a deletion of its files)."""
        if not self._deleted:
            return
        now = time.monotonic()
        gone = []
        for path, (is_dir, when) in list(self._deleted.items()):
            if now - when < self.settle_s:
                continue
            del self._deleted[path]
            folder = self._folder_of(path)
            if folder is None or folder.state != "ok" or _identity(folder.path) != folder.identity:
                if folder is not None:
                    self._check(store, folder)
                continue
            if not is_gone(path):
                continue                              # it is back (saved by replacing)
            if not is_dir and is_sidecar_name(path):  # its media drop that track's lines
                intake = take_sidecar(store, Path(path))
                if intake.action != "no_media":
                    self._emit({"type": "taken", **asdict(intake)})
                continue
            rows = store.media_under(path) if is_dir else []
            row = store.media_by_path(path)
            rows += [row] if row else []
            gone += [m for m in rows if not m["missing_since"] and is_gone(m["path"])]
        self._mark_missing(store, gone)

    def _mark_missing(self, store: Store, media: list[dict]) -> None:
        if not media:
            return
        store.mark_missing(m["id"] for m in media)
        for m in media:
            self._emit({"type": "missing", "media_id": m["id"], "path": m["path"]})

    def _forget_deletions_under(self, folder: str) -> None:
        base = folder.rstrip("/") + "/"
        for path in [p for p in self._deleted if p.startswith(base)]:
            del self._deleted[path]

    # ---- paths --------------------------------------------------------------------------------
    def _folder_of(self, path: str) -> _Folder | None:
        best = None
        for folder in self._folders.values():
            if path.startswith(folder.path.rstrip("/") + "/") and (
                    best is None or len(folder.path) > len(best.path)):
                best = folder
        return best

    def _wanted(self, path: str) -> bool:
        """A media or subtitle file (by extension) inside a followed folder, hidden nowhere
        on the way."""
        folder = self._folder_of(path)
        if folder is None:
            return False
        rel = path[len(folder.path.rstrip("/")) + 1:]
        if any(part.startswith(".") for part in rel.split("/")):
            return False
        return (os.path.splitext(path)[1].lower() in MEDIA_EXTENSIONS
                or is_sidecar_name(path))     # a subtitle file: its media read it again


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of a folder that can be read; None if it is gone or unreadable."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or not os.access(path, os.R_OK | os.X_OK):
        return None
    return st.st_dev, st.st_ino


def _empty(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:
        return False
