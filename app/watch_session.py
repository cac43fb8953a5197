"""`avindex watch` in the foreground: a FolderWatcher keeps the library in step with the
watched folders, and the same Runner as `avindex index` indexes whatever it queues.

The main thread owns a Store and prints one line per file (taken, indexed, failed,
moved, missing) and per folder change; the watcher and the runner each run on a thread
of their own and send their events here through one queue. SIGINT (Ctrl-C) and SIGTERM
stop it cleanly: observers stopped and joined, the running job stopped as `index` does
(and queued again for the next run), a short summary, exit 0."""
from __future__ import annotations

import json
import queue
import signal
import sys
import threading
import time
from pathlib import Path

from indexer.watching import FolderWatcher

from .runner import LibraryBusy, Runner
from .settings import Settings

BUSY_RETRY_S = 5.0
STOP_JOIN_S = 60.0
TAKEN_WORDS = {"new": "new", "changed": "changed", "relinked": "moved",
               "unreadable": "unreadable", "retry": "retry"}


class _RunnerThread:
    """Runs the library's queue on a thread; `kick` again while it runs and it looks for
    more work before it ends (as the GUI's service does)."""

    def __init__(self, library: Path, settings: Settings, on_event):
        self.runner = Runner(library, settings, on_event=on_event)
        self.on_event = on_event
        self._lock = threading.Lock()
        self._running = self._again = self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._running

    def kick(self) -> None:
        with self._lock:
            if self._stopping:
                return
            if self._running:
                self._again = True
                return
            self._running, self._again = True, False
        self._thread = threading.Thread(target=self._loop, name="avindex-runner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                self.runner.run()
            except LibraryBusy as exc:
                self.on_event({"type": "library_busy", "message": str(exc)})
            except Exception as exc:  # noqa: BLE001  (reported; the watching goes on)
                self.on_event({"type": "run_error", "message": f"{type(exc).__name__}: {exc}"})
            with self._lock:
                if self._again and not self._stopping:
                    self._again = False
                    continue
                self._running = False
                return

    def stop(self, timeout: float) -> bool:
        """Stop the running job (it stays queued) and wait; False if it did not end."""
        with self._lock:
            self._stopping = True
        self.runner.stop()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True


class WatchSession:
    def __init__(self, library: Path, settings: Settings, *, settle_s: float,
                 as_json: bool = False, out=None):
        self.library = Path(library)
        self.settings = settings
        self.settle_s = settle_s
        self.as_json = as_json
        self.out = out or sys.stdout
        self.events: queue.Queue = queue.Queue()
        self.stop_requested = threading.Event()
        self.counts = dict.fromkeys(("taken", "indexed", "failed", "moved", "missing",
                                     "reappeared"), 0)
        self.disk_full: str | None = None
        self._reported: set[int] = set()        # media whose outcome was printed this round
        self._stopped: set[int] = set()         # media whose job our stop cancelled
        self._busy_until = 0.0
        self._busy_said = False

    # ---- output --------------------------------------------------------------------------
    def say(self, word: str, text: str, data: dict) -> None:
        if self.as_json:
            print(json.dumps({"event": word, **data}, ensure_ascii=False), file=self.out,
                  flush=True)
        else:
            print(f"{time.strftime('%H:%M:%S')}  {word:<11} {text}", file=self.out, flush=True)

    # ---- the loop -----------------------------------------------------------------------
    def run(self, store) -> dict:
        """Until stop(): returns the summary."""
        started = time.monotonic()
        watcher = FolderWatcher(self.library, settle_s=self.settle_s,
                                on_event=lambda e: self.events.put(("watch", e)))
        runner = _RunnerThread(self.library, self.settings,
                               on_event=lambda e: self.events.put(("run", e)))
        folders = store.watched_folders()
        self.say("watching", f"{len(folders)} folder(s); Ctrl-C stops",
                 {"folders": [f["path"] for f in folders]})
        watcher.start()
        if store.open_jobs():
            runner.kick()                       # what an earlier run left queued
        try:
            while not self.stop_requested.is_set():
                try:
                    source, event = self.events.get(timeout=0.25)
                except queue.Empty:
                    self._retry_if_busy(store, runner)
                    continue
                if source == "watch":
                    self._on_watch(store, event, runner)
                else:
                    self._on_run(store, event)
                if self.disk_full:
                    break
        finally:
            watcher.stop()
            stopped = runner.stop(STOP_JOIN_S)
            while not self.events.empty():   # the stopped job's last events
                source, event = self.events.get_nowait()
                if source == "run":
                    self._on_run(store, event, stopping=True)
            left = self._requeue_stopped(store)
        alive = [t for t in watcher.observer_threads() if t.is_alive()]
        return {"seconds": round(time.monotonic() - started, 1), **self.counts,
                "left_queued": left, "runner_stopped": stopped,
                "observers_running": len(alive), "disk_full": self.disk_full}

    def stop(self) -> None:
        self.stop_requested.set()

    def _retry_if_busy(self, store, runner: _RunnerThread) -> None:
        if self._busy_until and time.monotonic() >= self._busy_until and not runner.running:
            self._busy_until = 0.0
            if store.open_jobs():
                runner.kick()

    # ---- what the watcher says ----------------------------------------------------------
    def _on_watch(self, store, e: dict, runner: _RunnerThread) -> None:
        kind = e["type"]
        if kind == "taken":
            self.counts["taken"] += 1
            self._reported.discard(e["media_id"])
            detail = f"  ({e['detail']})" if e.get("detail") else ""
            self.say(TAKEN_WORDS.get(e["action"], e["action"]), e["path"] + detail, e)
            if e["media_id"] is not None and store.open_jobs(e["media_id"]):
                runner.kick()
        elif kind == "moved":
            self.counts["moved"] += 1
            self.say("moved", f"{e['from']} -> {e['path']}", e)
        elif kind == "missing":
            self.counts["missing"] += 1
            self.say("missing", e["path"], e)
        elif kind == "reappeared":
            self.counts["reappeared"] += 1
            self.say("back", e["path"], e)
        elif kind == "scanned":
            self.say("scanned", f"{e['path']}: {e['files']} file(s), {e['waiting']} "
                     f"settling  [{'polling' if e['mode'] == 'polling' else 'native events'}]", e)
        elif kind == "folder":
            word = "available" if e["state"] == "ok" else "unavailable"
            self.say(word, f"{e['path']}: {e['reason']}", e)
        elif kind == "problem":
            self.say("unreadable", f"{e['path']}: {e['error']}", e)
        elif kind == "warning":
            self.say("warning", f"{e['path']}: {e['message']}", e)
        elif kind == "disk_full":
            self.disk_full = e["message"]
        elif kind == "error":
            self.say("error", e["message"], e)

    # ---- what the runner says -----------------------------------------------------------
    def _on_run(self, store, e: dict, stopping: bool = False) -> None:
        kind = e["type"]
        if kind == "job_finished":
            media_id, state = e["media_id"], e["state"]
            if state == "cancelled":       # only our stop cancels this runner's jobs
                self._stopped.add(media_id)
                return
            if media_id in self._reported:
                return
            if state == "failed":
                self._reported.add(media_id)
                self.counts["failed"] += 1
                self.say("failed", f"{e['path']}: {e['error']}", e)
            elif state == "done" and not store.open_jobs(media_id):
                self._reported.add(media_id)
                self.counts["indexed"] += 1
                m = store.media(media_id) or {}
                facts = ", ".join(x for x in (_duration(m.get("duration")), m.get("language"))
                                  if x)
                self.say("indexed", e["path"] + (f"  ({facts})" if facts else ""),
                         {**e, "duration": m.get("duration"), "language": m.get("language")})
        elif kind == "run_started" and e.get("requeued"):
            n = e["requeued"]
            self.say("resumed", f"{n} file(s) left unfinished by an interrupted run", e)
        elif kind == "worker_crashed":
            self.say("crashed", f"{e['path']}: the worker {e['how']}"
                     + ("; retrying" if e["retrying"] else ""), e)
        elif kind == "library_busy" and not stopping:
            self._busy_until = time.monotonic() + BUSY_RETRY_S
            if not self._busy_said:
                self._busy_said = True
                self.say("busy", "another avindex process is indexing this library; it "
                         "indexes the files queued here (checked again every "
                         f"{BUSY_RETRY_S:.0f} s)", e)
        elif kind == "run_finished":
            self._busy_said = False
        elif kind == "disk_full":
            self.disk_full = e["message"]
        elif kind in ("run_error", "task_failed"):
            self.say("error", e.get("message") or f"{e.get('task')}: {e.get('error')}", e)

    def _requeue_stopped(self, store) -> int:
        """The job stopped by Ctrl-C ended 'cancelled': it is queued again (nobody asked to
        cancel that file). Returns how many files wait for the next run."""
        if self._stopped:
            store.retry(self._stopped)
        return store.open_media_count()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def install_stop_signals(session: WatchSession) -> dict:
    """SIGINT and SIGTERM ask the session to stop; a second one ends it at once.
    Returns the previous handlers (restore them with restore_signals)."""
    def handler(signum, frame):
        if session.stop_requested.is_set():
            raise KeyboardInterrupt
        session.stop()
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
