"""The writer's handle on its StageWorker actors.

Each actor takes one job at a time. An actor that dies (killed, out of memory, its node
lost) is restarted by Ray (max_restarts=-1, on any node with room) and loads its models
again; the call it was running fails with a RayError, which `wait` hands back as the
job's outcome so the writer queues the file again (its own attempt count, as locally):
Ray itself never re-runs a call (max_task_retries=0), so nothing is computed or applied
twice behind the writer's back. For the same reason a restarted actor gets no job until it
answers again: a call sent while it restarts fails, and would cost the file an attempt.
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass

from .actor import StageWorker
from .remote_stages import NO_FILE_STAGES
from .transfer import WINDOW, PathMap, read_chunks, spool_key

START_TIMEOUT_S = 300.0


@dataclass
class _Slot:
    index: int
    actor: object
    pid: int | None = None
    job_id: int | None = None
    key: str | None = None
    ref: object = None
    progress_ref: object = None
    restart_ref: object = None         # the restarted actor's first answer, awaited
    restart_since: float = 0.0
    spooled: str | None = None         # the spool key of the file it last received


class WorkerPool:
    def __init__(self, workers: int, make_pipeline, settings: dict, library: str, *,
                 cpus_per_worker: float = 1.0, stream: bool = False,
                 path_map: PathMap | None = None):
        import ray
        self.ray = ray
        self.stream, self.path_map = stream, path_map
        self.stats = {"sent": 0, "sends_saved": 0}     # streamed files, and sends spared
        run = uuid.uuid4().hex[:8]
        cls = ray.remote(StageWorker).options(
            num_cpus=cpus_per_worker, max_restarts=-1, max_task_retries=0,
            max_concurrency=4)
        self.slots = [_Slot(i, cls.remote(make_pipeline, settings, library, f"{run}-{i}"))
                      for i in range(workers)]
        # an actor the cluster cannot place (no node with the CPUs) would wait for ever
        pids = ray.get([s.actor.pid.remote() for s in self.slots], timeout=START_TIMEOUT_S)
        for s, pid in zip(self.slots, pids):
            s.pid = pid

    # ---- jobs ---------------------------------------------------------------------
    def free(self, media: dict | None = None) -> _Slot | None:
        """A slot with no job; with `media`, streamed, the one whose worker last received
        that file if it is free (its next stage then needs no byte sent)."""
        free = [s for s in self.slots if s.job_id is None and self._answers(s)]
        if media is not None and self.stream:
            key = spool_key(media)
            return next((s for s in free if s.spooled == key), free[0] if free else None)
        return free[0] if free else None

    @property
    def restarting(self) -> bool:
        """An actor that died is being restarted (and has not yet answered)."""
        return any(not self._answers(s) for s in self.slots)

    def _answers(self, s: _Slot) -> bool:
        if s.restart_ref is None:
            return True
        if time.monotonic() - s.restart_since > START_TIMEOUT_S:
            s.restart_ref = None               # given up waiting: a call tells the rest
            return True
        ready, _ = self.ray.wait([s.restart_ref], timeout=0)
        if not ready:
            return False
        try:
            s.pid = self.ray.get(s.restart_ref)
            s.restart_ref = None
            return True
        except self.ray.exceptions.RayError:   # still restarting: ask again
            s.restart_ref = s.actor.pid.remote()
            return False

    @property
    def busy(self) -> list[_Slot]:
        return [s for s in self.slots if s.job_id is not None]

    def submit(self, slot: _Slot, job_id: int, stage: str, media: dict,
               reads: dict | None = None) -> None:
        """Start `stage` on the file; streamed, its bytes are sent first (WINDOW pieces
        in flight at most)."""
        key = f"{job_id}-{uuid.uuid4().hex[:6]}"
        media = dict(media)
        spooled = None
        needs_file = stage not in NO_FILE_STAGES                 # text reads no file
        if needs_file and self.stream:
            spooled = self._send(slot, media)
            media["path"] = os.path.basename(media["path"])
        elif needs_file and self.path_map is not None:
            media["path"] = self.path_map.apply(media["path"])
        slot.job_id, slot.key = job_id, key
        if spooled:
            slot.spooled = spooled
        slot.ref = slot.actor.run.remote(key, stage, media, spooled, reads)

    def _send(self, slot: _Slot, media: dict) -> str:
        """The file's bytes to the slot's worker, unless it holds them from an earlier
        stage of the file; returns the file's spool key there."""
        key, path = spool_key(media), media["path"]
        size = os.path.getsize(path)
        if self.ray.get(slot.actor.has.remote(key, path, size)):
            self.stats["sends_saved"] += 1
            return key
        pending = []
        for offset, data in read_chunks(path):
            pending.append(slot.actor.receive.remote(key, path, offset, data))
            if len(pending) >= WINDOW:
                done, pending = self.ray.wait(pending, num_returns=1)
                self.ray.get(done)            # raises if the actor died meanwhile
        self.ray.get(pending)
        if not self.ray.get(slot.actor.complete.remote(key, path, size)):
            raise OSError(f"{path} changed while it was sent to a worker")
        self.stats["sent"] += 1
        return key

    def wait(self, timeout: float) -> list[tuple[_Slot, int, dict]]:
        """The jobs that ended within `timeout` s: (slot, job id, outcome). An outcome
        is the actor's answer, or {"state": "died", "how": ...} when it died."""
        busy = {s.ref: s for s in self.busy}
        if not busy:
            return []
        ready, _ = self.ray.wait(list(busy), num_returns=len(busy), timeout=timeout)
        out = []
        for ref in ready:
            slot = busy[ref]
            try:
                outcome = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:
                outcome = {"state": "died", "how": _how(exc)}
                slot.restart_ref = slot.actor.pid.remote()
                slot.restart_since = time.monotonic()
            out.append((slot, slot.job_id, outcome))
            slot.job_id = slot.key = slot.ref = slot.progress_ref = None
            slot.pid = outcome.get("pid", slot.pid)
        return out

    def progress(self) -> dict[int, float]:
        """job id -> fraction done, for the jobs whose actors answer at once."""
        out = {}
        for s in self.busy:
            if s.progress_ref is not None:
                ready, _ = self.ray.wait([s.progress_ref], timeout=0)
                if ready:
                    try:
                        p = self.ray.get(s.progress_ref)
                    except self.ray.exceptions.RayError:
                        p = None
                    s.progress_ref = None
                    if p and p["key"] == s.key:
                        out[s.job_id] = p["fraction"]
                        s.pid = p["pid"]
            if s.progress_ref is None:
                s.progress_ref = s.actor.progress.remote()
        return out

    def cancel(self, job_ids=None) -> None:
        for s in self.busy:
            if job_ids is None or s.job_id in job_ids:
                s.actor.cancel.remote(s.key)

    def pids(self) -> list[int]:
        return [s.pid for s in self.slots if s.pid is not None]

    def shutdown(self) -> None:
        for s in self.slots:
            try:
                self.ray.kill(s.actor, no_restart=True)
            except Exception:   # noqa: BLE001  already gone
                pass
        self.slots = []


def _how(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = next((ln for ln in text if ln.strip()), type(exc).__name__)
    return f"died ({type(exc).__name__}: {first[:200]})"
