"""StageWorker: the per-file work of a cluster, one Ray actor per worker slot.

It builds the pipeline once (its stages load their models lazily, once per process, as
in the local worker) and runs one stage on one file at a time; a second thread answers
`progress` and `cancel` while it works (the actor runs with max_concurrency > 1). What
the stage's saver would write comes back as an Artifact; nothing is written here but
the thumbnails of visual and faces, into a scratch folder the artifact carries them from.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
import traceback
from pathlib import Path

from indexer.stages.base import Cancelled, StageContext

from .artifacts import MEDIA_ID, Artifact, SnapshotStore
from .remote_stages import NO_FILE_STAGES, THUMB_STAGES
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

    def receive(self, key: str, filename: str, offset: int, data: bytes) -> int:
        """One streamed piece of a file (see transfer.py; `key`: its spool_key)."""
        self.spool.write(key, filename, offset, data)
        return len(data)

    def complete(self, key: str, filename: str, size: int) -> bool:
        return self.spool.complete(key, filename, size)

    def has(self, key: str, filename: str, size: int) -> bool:
        return self.spool.has(key, filename, size)

    def progress(self) -> dict | None:
        cur = self._current
        return None if cur is None else {**cur, "pid": os.getpid()}

    def cancel(self, job_key: str) -> None:
        self._cancelled.add(job_key)

    def run(self, job_key: str, stage_name: str, media: dict, spooled: str | None,
            reads: dict | None = None) -> dict:
        """{"state": "done", "artifact": bytes} or {"state": "failed"|"cancelled", ...}.
        `media` is the library's row with the id replaced by MEDIA_ID and the path by
        where this worker reads the file, or with `spooled` (its spool_key) the file's
        name in the spool; `reads`: the library reads the stage makes, made by the
        writer (None: the stage runs with no library, ctx.store None)."""
        started = time.monotonic()
        self._current = {"key": job_key, "fraction": 0.0}
        media = {**media, "id": MEDIA_ID}
        if spooled:
            media["path"] = str(self.spool.path(spooled, media["path"]))

        def report(fraction: float) -> None:
            self._current = {"key": job_key, "fraction": round(float(fraction), 4)}

        try:
            stage = self.pipeline.get(stage_name)
            if stage is None:
                raise LookupError(f"this worker's avindex has no stage {stage_name!r}: "
                                  "workers need the same avindex version as the writer")
            if stage_name not in NO_FILE_STAGES and not os.path.exists(media["path"]):
                raise FileNotFoundError(
                    f"{media['path']} is not readable on the worker (shared storage not "
                    "mounted there? see --path-map, or let the bytes be streamed)")
            ctx = StageContext(report=report,
                               cancelled=lambda: job_key in self._cancelled,
                               store=None if not reads else SnapshotStore(reads))
            with _scratch_thumbnails(stage, stage_name) as (thumb_dir, folder):
                saver = stage.run(media, ctx)
                artifact = Artifact.record(stage_name, saver, time.monotonic() - started,
                                           thumb_dir=thumb_dir, thumb_folder=folder)
            return {"state": "done", "artifact": artifact.dumps(), "pid": os.getpid()}
        except Cancelled:
            return {"state": "cancelled", "pid": os.getpid()}
        except Exception as exc:   # noqa: BLE001  one file's failure ends only its job
            return {"state": "failed", "error": exc if _picklable(exc) else
                    RuntimeError(f"{type(exc).__name__}: {exc}"),
                    "traceback": traceback.format_exc(), "pid": os.getpid()}
        finally:
            self._current = None
            self._cancelled.discard(job_key)       # a spooled file stays for its next stage


@contextlib.contextmanager
def _scratch_thumbnails(stage, stage_name: str):
    """A stage that writes thumbnails writes this job's into a fresh scratch folder (the
    library's folder is the writer's, maybe on another machine); yields (folder, the
    stage's thumbnail folder for the file), or (None, None) for the other stages."""
    if stage_name not in THUMB_STAGES:
        yield None, None
        return
    own = stage.thumb_dir
    with tempfile.TemporaryDirectory(prefix="avindex-thumbs-") as tmp:
        stage.thumb_dir = Path(tmp)        # one job at a time per actor
        try:
            yield Path(tmp), stage.thumb_folder.format(media_id=MEDIA_ID)
        finally:
            stage.thumb_dir = own


def _picklable(exc: BaseException) -> bool:
    import pickle
    try:
        pickle.loads(pickle.dumps(exc))
        return True
    except Exception:   # noqa: BLE001
        return False
