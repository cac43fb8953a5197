"""StageWorker: the per-file work of a cluster, one Ray actor per worker slot.

It builds the pipeline once (its stages load their models lazily, once per process, as
in the local worker) and runs one stage on one file at a time; a second thread answers
`progress` and `cancel` while it works (the actor runs with max_concurrency > 1). What
the stage's saver would write comes back as an Artifact; nothing is written here.
"""
from __future__ import annotations

import os
import threading
import time
import traceback

from indexer.stages.base import Cancelled, StageContext

from .artifacts import MEDIA_ID, Artifact, SnapshotStore
from .transfer import Spool


class StageWorker:
    def __init__(self, make_pipeline, settings: dict, library: str, spool_name: str):
        self._make = (make_pipeline, settings, library)
        self._pipeline = None
        self._lock = threading.Lock()
        self._current: dict | None = None       # {"key", "fraction"}
        self._cancelled: set[str] = set()
        self.spool = Spool(spool_name)

    def pid(self) -> int:
        return os.getpid()

    @property
    def pipeline(self):
        with self._lock:
            if self._pipeline is None:
                make, settings, library = self._make
                self._pipeline = make(settings, library)
            return self._pipeline

    def receive(self, job_key: str, filename: str, offset: int, data: bytes) -> int:
        """One streamed piece of a file (see transfer.py)."""
        self.spool.write(job_key, filename, offset, data)
        return len(data)

    def progress(self) -> dict | None:
        cur = self._current
        return None if cur is None else {**cur, "pid": os.getpid()}

    def cancel(self, job_key: str) -> None:
        self._cancelled.add(job_key)

    def run(self, job_key: str, stage_name: str, media: dict, streamed: bool,
            reads: dict | None = None) -> dict:
        """{"state": "done", "artifact": bytes} or {"state": "failed"|"cancelled", ...}.
        `media` is the library's row with the id replaced by MEDIA_ID and the path by
        where this worker reads the file; `reads`: the library reads the stage makes,
        made by the writer (None: the stage runs with no library, ctx.store None)."""
        started = time.monotonic()
        self._current = {"key": job_key, "fraction": 0.0}
        media = {**media, "id": MEDIA_ID}
        if streamed:
            media["path"] = str(self.spool.path(job_key, media["path"]))

        def report(fraction: float) -> None:
            self._current = {"key": job_key, "fraction": round(float(fraction), 4)}

        try:
            stage = self.pipeline.get(stage_name)
            if stage is None:
                raise LookupError(f"this worker's avindex has no stage {stage_name!r}: "
                                  "workers need the same avindex version as the writer")
            if not os.path.exists(media["path"]):
                raise FileNotFoundError(
                    f"{media['path']} is not readable on the worker (shared storage not "
                    "mounted there? see --path-map, or let the bytes be streamed)")
            ctx = StageContext(report=report,
                               cancelled=lambda: job_key in self._cancelled,
                               store=None if not reads else SnapshotStore(reads))
            saver = stage.run(media, ctx)
            artifact = Artifact.record(stage_name, saver, time.monotonic() - started)
            return {"state": "done", "artifact": artifact.dumps(), "pid": os.getpid()}
        except Cancelled:
            return {"state": "cancelled", "pid": os.getpid()}
        except Exception as exc:   # noqa: BLE001  one file's failure ends only its job
            return {"state": "failed", "error": exc if _picklable(exc) else
                    RuntimeError(f"{type(exc).__name__}: {exc}"),
                    "traceback": traceback.format_exc(), "pid": os.getpid()}
        finally:
            self._current = None
            self._cancelled.discard(job_key)
            if streamed:
                self.spool.discard(job_key)


def _picklable(exc: BaseException) -> bool:
    import pickle
    try:
        pickle.loads(pickle.dumps(exc))
        return True
    except Exception:   # noqa: BLE001
        return False
