"""The job runner: feeds queued jobs to a worker process and turns what it says
into a stream of structured events. It survives the worker crashing or being
killed: the job in hand is retried once, then failed with a message. On a full
disk it stops and leaves every unfinished job queued."""
from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
import signal
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from indexer.store.connection import DiskFull
from indexer.stages.base import WHEN_DONE, WHEN_IDLE, LibraryTask
from indexer.store import Store

from .settings import Settings, log_error, log_file
from .stages import build_tasks
from .worker import worker_main

Event = dict
POLL_S = 0.25


class LibraryBusy(Exception):
    """Another process is already running jobs on this library."""


class LibraryLock:
    """One runner per library file (advisory lock beside it)."""

    def __init__(self, library: Path):
        self.path = library.with_name(library.name + ".lock")
        self.fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class _Worker:
    def __init__(self, library: Path, settings: Settings):
        ctx = mp.get_context("spawn")
        self.tasks_r, self.tasks_w = ctx.Pipe(duplex=False)
        self.events_r, self.events_w = ctx.Pipe(duplex=False)
        # The id of the job to cancel. Shared memory, not an Event: an Event's semaphores
        # are reported as "leaked" by multiprocessing when this process is killed.
        self.cancel = ctx.RawValue("q", 0)
        self.proc = ctx.Process(target=worker_main, name="avindex-worker", daemon=True,
                                args=(str(library), asdict(settings), self.tasks_r,
                                      self.events_w, self.cancel, os.getpid()))
        self.proc.start()
        # Close our copies of the child's ends so a dead child reads as EOF, not a hang.
        self.tasks_r.close()
        self.events_w.close()
        self.jobs_run = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        try:
            self.tasks_w.send(None)
        except (OSError, ValueError):
            pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        for conn in (self.tasks_w, self.events_r):
            conn.close()

    def exit_description(self) -> str:
        code = self.proc.exitcode
        if code is None:
            return "stopped responding"
        if code < 0:
            try:
                return f"was killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"


class Runner:
    """Runs every queued job of a library, one worker process at a time.

    `on_event` receives dicts with "type" in: run_started, worker_started,
    job_started, progress, partial_saved (a job committed its rows up to "upto" s of
    the file: already searchable), job_finished, worker_crashed, disk_full (with
    "message", also kept in `disk_full`), run_finished.
    Thread-safe controls: cancel_media(), cancel_current(), stop().
    """

    def __init__(self, library: Path, settings: Settings,
                 on_event: Callable[[Event], None] | None = None):
        self.library = Path(library)
        self.settings = settings
        self.on_event = on_event or (lambda e: None)
        self._stop = threading.Event()
        self._worker: _Worker | None = None
        self._current: dict | None = None
        self.worker_pids: list[int] = []
        self.disk_full: str | None = None
        self.tasks: list[LibraryTask] = build_tasks(settings, self.library)
        self._task: LibraryTask | None = None

    # ---- controls (any thread) ------------------------------------------------
    def stop(self) -> None:
        """Finish nothing more: stop the running job (it stays queued, keeping what it
        committed, and goes on at the next run), leave the rest queued."""
        self._stop.set()
        self.cancel_current(requeue=True)

    def cancel_current(self, requeue: bool = False) -> None:
        worker, current = self._worker, self._current
        if worker is not None and current is not None:
            worker.cancel.value = -current["id"] if requeue else current["id"]
        task = self._task
        if task is not None:
            task.cancel()

    def cancel_media(self, media_ids: list[int]) -> None:
        store = Store(self.library)
        try:
            store.cancel_queued(media_ids)
        finally:
            store.close()
        cur = self._current
        if cur is not None and cur["media_id"] in media_ids:
            self.cancel_current()

    @property
    def current_worker_pid(self) -> int | None:
        w = self._worker
        return w.pid if w is not None and w.alive() else None

    # ---- the loop ---------------------------------------------------------------
    def run(self) -> dict:
        lock = LibraryLock(self.library)
        if not lock.acquire():
            raise LibraryBusy(f"another avindex process is indexing {self.library}")
        store = None
        counts = {"done": 0, "failed": 0, "cancelled": 0, "crashed": 0}
        try:
            store = Store(self.library)
            requeued = store.requeue_stale()
            self.on_event({"type": "run_started", "requeued": requeued,
                           "queued": store.count_queued()})
            self._loop(store, counts)
            if self._stop.is_set():
                store.requeue_stale()   # nothing stays 'running' after we return
            elif counts["done"]:
                for task in self.tasks:
                    if task.when == WHEN_DONE:
                        self._run_task(task, store)
        except DiskFull as exc:
            self._stop.set()
            self.disk_full = str(exc)
            self.on_event({"type": "disk_full", "message": self.disk_full})
            try:
                if store is not None:
                    store.requeue_stale()
            except DiskFull:
                pass                    # still 'running': requeued at the next start
        finally:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None
            if store is not None:
                store.close()
            lock.release()
        self.on_event({"type": "run_finished", **counts, "stopped": self._stop.is_set()})
        return counts

    def _loop(self, store: Store, counts: dict) -> None:
        idle_done: set[str] = set()
        while True:
            self._drain(store, counts)
            # the queue ran dry: each idle task once per run (the motion encoder, when due,
            # queues the recomputation, which the drain above then runs)
            if self._stop.is_set() or not counts["done"]:
                return
            queued = 0
            for task in self.tasks:
                if task.when == WHEN_IDLE and task.name not in idle_done:
                    idle_done.add(task.name)
                    queued += self._run_task(task, store)
            if not queued:
                return

    def _drain(self, store: Store, counts: dict) -> None:
        """Run queued jobs until none is left or the runner stops (app.cluster_runner
        drains to a cluster instead)."""
        while not self._stop.is_set():
            job = store.claim_next_job()
            if job is None:
                break
            state = self._run_one(store, job)
            counts[state] = counts.get(state, 0) + 1

    def _run_task(self, task: LibraryTask, store: Store) -> int:
        """One library-wide task; its failure is reported and the run goes on."""
        self._task = task
        try:
            return task.run(store, self.on_event) or 0
        except DiskFull:
            raise
        except Exception as exc:  # noqa: BLE001
            log_error(self.library, f"the library task {task.name!r} failed", exc)
            self.on_event({"type": "task_failed", "task": task.name,
                           "error": f"{type(exc).__name__}: {exc}"})
            return 0
        finally:
            self._task = None

    def _ensure_worker(self) -> _Worker:
        w = self._worker
        if w is not None and (not w.alive() or w.jobs_run >= self.settings.worker_recycle_jobs):
            w.stop()
            w = self._worker = None
        if w is None:
            w = self._worker = _Worker(self.library, self.settings)
            self.worker_pids.append(w.pid)
            self.on_event({"type": "worker_started", "pid": w.pid})
        return w

    def _run_one(self, store: Store, job: dict) -> str:
        worker = self._ensure_worker()
        worker.cancel.value = 0
        self._current = job
        try:
            worker.tasks_w.send(job["id"])
        except (OSError, ValueError):
            pass  # the worker died between jobs; handled below as a crash
        worker.jobs_run += 1
        try:
            while True:
                try:
                    if worker.events_r.poll(POLL_S):
                        event = worker.events_r.recv()
                        if event.get("type") == "worker_ready":
                            continue
                        if event.get("type") == "disk_full":
                            raise DiskFull(self.library)  # the job is left unrecorded
                        self.on_event(event)
                        if event.get("type") == "job_finished" and event["job_id"] == job["id"]:
                            return event["state"]
                        continue
                except (EOFError, OSError):
                    worker.proc.join(5)
                if not worker.alive():
                    return self._worker_died(store, worker, job)
        finally:
            self._current = None

    def _worker_died(self, store: Store, worker: _Worker, job: dict) -> str:
        self._worker = None
        worker.stop(timeout=1)
        how = worker.exit_description()
        current = store.job(job["id"])
        if current and current["state"] in ("done", "failed", "cancelled"):
            return current["state"]         # it finished just before dying
        if current["attempts"] < self.settings.max_attempts and not self._stop.is_set():
            store.finish_job(job["id"], "queued")
            state, error = "queued", None
        else:
            error = (f"avindex's worker process {how} while running the {job['stage']} "
                     f"stage on this file (tried {current['attempts']} times).")
            if (worker.proc.exitcode or 0) > 0:
                error += f" Details are in {log_file(self.library)}."
            store.finish_job(job["id"], "failed", error)
            state = "failed"
        self.on_event({"type": "worker_crashed", "job_id": job["id"], "media_id": job["media_id"],
                       "path": job["path"], "stage": job["stage"], "how": how,
                       "retrying": state == "queued"})
        if state == "failed":
            self.on_event({"type": "job_finished", "job_id": job["id"],
                           "media_id": job["media_id"], "path": job["path"],
                           "stage": job["stage"], "state": "failed", "error": error})
        return "crashed" if state == "queued" else "failed"
