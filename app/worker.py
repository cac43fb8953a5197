"""The worker process: loads models once, runs one job at a time.

It runs in a spawned child so a crash or kill in a decoder or a model never
takes the caller down. It talks to the parent over two one-way pipes (job ids
in, structured event dicts out) and reads a shared slot holding the id of the
job to cancel. Tracebacks go to the library's log file, never to the terminal.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from indexer.store.connection import DiskFull, is_disk_full
from indexer.stages import Cancelled, Pipeline, StageContext
from indexer.store import Store

from .settings import Settings, log_error, log_note

PROGRESS_INTERVAL_S = 0.2
# a job that ran longer than this is followed by a heap trim (models.asr.release_memory:
# 3-60 ms); the probe and subtitle jobs of small files allocate too little to matter
TRIM_AFTER_S = 0.5
PR_SET_PDEATHSIG = 1


class ParentGone(BaseException):
    """The runner that started this worker is gone (killed): stop at once and record
    nothing, so the job in hand stays `running` and is queued again at the next start.
    A BaseException so that no stage's `except Exception` swallows it."""


def human_error(stage: str, exc: BaseException) -> str:
    """A message a person can act on; internal details only as a last resort."""
    from indexer.stages.probe import MediaError
    if isinstance(exc, MediaError):
        return exc.message
    if isinstance(exc, FileNotFoundError):
        return ("The file disappeared before it could be processed "
                "(moved or deleted during the batch).")
    if isinstance(exc, PermissionError):
        return "You do not have permission to read this file."
    if isinstance(exc, MemoryError):
        return f"Ran out of memory during {stage}."
    name = type(exc).__name__
    if name == "ModelUnavailable":
        return str(exc)
    return f"Unexpected error during {stage}: {name}: {exc}"


class _RunnerLink:
    """The worker's view of its runner: `send` events, `is_set` for the job in hand's
    cancel flag (the slot holds the job's id for a cancel, minus it for a stop: the
    runner stopping, the job to run again later), `stopping` for a stop. Both raise
    ParentGone once the runner has died."""

    def __init__(self, events, cancel_slot, parent_pid: int):
        self.events, self.cancel_slot, self.parent_pid = events, cancel_slot, parent_pid
        self.job_id = 0

    def _check(self) -> None:
        if os.getppid() != self.parent_pid:
            raise ParentGone

    def send(self, event: dict) -> None:
        self._check()
        try:
            self.events.send(event)
        except OSError:              # the pipe broke: nobody reads any more
            raise ParentGone from None

    def is_set(self) -> bool:
        self._check()
        return abs(self.cancel_slot.value) == self.job_id

    def stopping(self) -> bool:
        return self.cancel_slot.value == -self.job_id


def _die_with_parent(parent_pid: int) -> None:
    """On Linux the kernel kills this worker the moment its runner dies, even by kill -9;
    elsewhere the runner's death is noticed at the next event or cancel check."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:   # it died before the line above
        os._exit(0)


def worker_main(library: str, settings: dict, tasks, events, cancel_slot,
                parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides about Ctrl-C
    _die_with_parent(parent_pid)
    # importing models.asr turns MKL's buffer pool off (see there)
    from models.asr import limit_malloc_arenas, release_memory
    limit_malloc_arenas()            # off unless AVINDEX_MALLOC_ARENAS asks (see there)
    # tqdm (which faster-whisper uses) would make a multiprocessing lock: a named semaphore
    # that, when this worker is killed with its runner, is reported as leaked.
    import tqdm
    tqdm.tqdm.set_lock(threading.RLock())
    from .stages import build_pipeline

    runner = _RunnerLink(events, cancel_slot, parent_pid)
    store = None
    try:
        store = Store(library)
        pipeline = build_pipeline(Settings(**settings), Path(library))
        runner.send({"type": "worker_ready", "pid": os.getpid()})
        while True:
            try:
                job_id = tasks.recv()
            except (EOFError, OSError):
                break
            if job_id is None:
                break
            runner.job_id = job_id
            started = time.monotonic()
            _run_job(store, pipeline, job_id, runner, runner)
            if time.monotonic() - started > TRIM_AFTER_S:
                release_memory()     # what this job freed is not held under the next one's peak
        from models.loading import unload_all
        unload_all()                 # asked to stop (or recycled): give the models back first
    except ParentGone:
        pass
    except DiskFull as exc:          # while recording a failure, or opening the library
        try:
            runner.send({"type": "disk_full", "message": str(exc)})
        except ParentGone:
            pass
    except Exception as exc:         # the runner reports the exit code; details to the log
        log_error(Path(library), "the worker process failed", exc)
        raise SystemExit(1)
    finally:
        if store is not None:
            store.close()


def _run_job(store: Store, pipeline: Pipeline, job_id: int, events, cancel) -> None:
    job = store.job(job_id)
    media = store.media(job["media_id"])
    base = {"job_id": job_id, "media_id": media["id"], "path": media["path"],
            "stage": job["stage"]}
    last = [0.0]
    started = time.monotonic()

    def report(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_INTERVAL_S and fraction < 1.0:
            return
        last[0] = now
        elapsed = now - started
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
        events.send({**base, "type": "progress", "fraction": round(fraction, 4),
                     "eta": None if eta is None else round(eta, 1)})

    events.send({**base, "type": "job_started", "fraction": 0.0, "eta": None})
    state, error, note = "done", None, None
    stage = pipeline.get(job["stage"])
    if stage is None:
        state, error = "failed", (f"Unknown stage {job['stage']!r}: this library was made "
                                  "by a newer avindex.")
    else:
        def save_partial(saver, upto: float) -> None:
            with store.transaction():      # these rows and the resume point: all or none
                saver(store)
                store.set_resume_point(job_id, upto)
            events.send({**base, "type": "partial_saved", "upto": round(upto, 3)})

        try:
            saver = stage.run(media, StageContext(report=report, cancelled=cancel.is_set,
                                                  store=store, save_partial=save_partial,
                                                  resume_at=job.get("resume_at") or 0.0))
            with store.transaction():      # results, what follows, and the job: all or none
                note = saver(store)        # a stage may say what a person should know
                pipeline.queue_followers(store, media["id"], stage.name)
                store.finish_job(job_id, "done", note=note)
            if note:
                log_note(store.path, f"{media['path']}: the {job['stage']} stage: {note}")
        except ParentGone:
            raise
        except Cancelled:
            if cancel.stopping():          # not the user's choice: it runs again next time
                state, note = "queued", "Stopped; it goes on at the next run."
            else:
                state, error = "cancelled", "Cancelled by the user."
        except BaseException as exc:  # one file's failure must not end the batch
            if is_disk_full(exc, store.path):
                # nothing recorded: the job stays `running` and the runner queues it again
                events.send({**base, "type": "disk_full", "message": str(DiskFull(store.path))})
                return
            state, error = "failed", human_error(job["stage"], exc)
            log_error(store.path, f"{media['path']}: the {job['stage']} stage failed", exc)
    if state == "queued":
        store.requeue_interrupted(job_id)   # what it committed stays: it resumes there
    elif state != "done":
        with store.transaction():
            if store.job(job_id).get("resume_at") is not None and \
                    hasattr(stage, "discard_partial"):
                stage.discard_partial(store, media["id"])   # an ended job: all rows or none
            store.finish_job(job_id, state, error)
    events.send({**base, "type": "job_finished", "state": state, "error": error, "note": note,
                 "seconds": round(time.monotonic() - started, 3)})
