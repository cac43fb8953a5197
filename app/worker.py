"""The worker process: loads models once, runs one job at a time.

It runs in a spawned child so a crash or kill in a decoder or a model never
takes the caller down. It talks to the parent over two one-way pipes: job ids
in, structured event dicts out.
"""
from __future__ import annotations

import os
import signal
import time
import traceback

from indexer.pipeline import Cancelled, StageContext
from indexer.store import Store

from .settings import Settings

PROGRESS_INTERVAL_S = 0.2


def human_error(stage: str, exc: BaseException) -> str:
    """A message a person can act on; internal details only as a last resort."""
    from indexer.probe import MediaError
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


def worker_main(library: str, settings: dict, tasks, events, cancel) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides about Ctrl-C
    from .stages import build_stages

    store = Store(library)
    stages = build_stages(Settings(**settings))
    events.send({"type": "worker_ready", "pid": os.getpid()})
    while True:
        try:
            job_id = tasks.recv()
        except (EOFError, OSError):
            break
        if job_id is None:
            break
        _run_job(store, stages, job_id, events, cancel)
    store.close()


def _run_job(store: Store, stages: dict, job_id: int, events, cancel) -> None:
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
    state, error = "done", None
    try:
        stage = stages[job["stage"]]
        saver = stage.run(media, StageContext(report=report, cancelled=cancel.is_set,
                                              store=store))
        with store.transaction():
            saver(store)
            store.finish_job(job_id, "done")
    except Cancelled:
        state, error = "cancelled", "Cancelled by the user."
    except KeyError as exc:
        state, error = "failed", f"Unknown stage {exc}: this library was made by a newer avindex."
    except BaseException as exc:  # one file's failure must not end the batch
        state, error = "failed", human_error(job["stage"], exc)
        if not getattr(exc, "message", None) and type(exc).__name__ != "ModelUnavailable":
            traceback.print_exc()
    if state != "done":
        store.finish_job(job_id, state, error)
    events.send({**base, "type": "job_finished", "state": state, "error": error,
                 "seconds": round(time.monotonic() - started, 3)})
