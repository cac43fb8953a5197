"""Encoder training as a background job: a spawned child process that learns the library's
motion encoder and streams progress events, like the indexing worker.

    job = EncoderTraining(library, budget_s=60)
    job.start()
    for event in job.events():          # {"type": "progress", "fraction", "message"} ...
        ...                             # ... then {"type": "finished", "report"} or "failed"
    job.cancel()                        # from any thread

The child holds at most the sampled clips and blocks (see indexer.library_tasks.motion_encoder); when it
ends, all its memory (torch included) goes back to the system.
"""
from __future__ import annotations

import multiprocessing as mp
import signal
import time
from pathlib import Path
from typing import Iterator

from indexer.stages.base import WHEN_IDLE

AUTO_TRAIN_MIN_VIDEO_S = 600.0      # the default encoder is replaced once 10 min of video is in


def _child(library: str, budget_s: float, sample_s: float, events, cancel) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from indexer.library_tasks.motion_encoder import train_library_encoder
    from indexer.stages.base import Cancelled
    from indexer.store import Store
    from models.motion.train import Budget

    def check() -> None:
        if cancel.is_set():
            raise Cancelled()
    last = [0.0]

    def progress(fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.2 or fraction >= 1.0:
            last[0] = now
            events.send({"type": "progress", "stage": "motion-train",
                         "fraction": round(fraction, 4), "message": message})
    store = Store(library)
    try:
        report = train_library_encoder(store, budget=Budget(seconds=budget_s),
                                       sample_seconds=sample_s, progress=progress, check=check)
        events.send({"type": "finished", "report": report})
    except Cancelled:
        events.send({"type": "failed", "error": "Cancelled by the user.", "cancelled": True})
    except Exception as exc:  # noqa: BLE001  (reported, not raised, across the process)
        events.send({"type": "failed", "error": f"{type(exc).__name__}: {exc}"})
    finally:
        store.close()


class EncoderTraining:
    def __init__(self, library: Path, *, budget_s: float = 60.0, sample_s: float = 30.0):
        self.library, self.budget_s, self.sample_s = Path(library), budget_s, sample_s
        ctx = mp.get_context("spawn")
        self._r, self._w = ctx.Pipe(duplex=False)
        self._cancel = ctx.Event()
        self._proc = ctx.Process(target=_child, name="avindex-motion-train", daemon=True,
                                 args=(str(self.library), budget_s, sample_s, self._w,
                                       self._cancel))
        self.result: dict | None = None

    def start(self) -> "EncoderTraining":
        self._proc.start()
        self._w.close()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def events(self) -> Iterator[dict]:
        while True:
            try:
                if self._r.poll(0.25):
                    event = self._r.recv()
                    yield event
                    if event["type"] in ("finished", "failed"):
                        self.result = event
                        break
                    continue
            except (EOFError, OSError):
                pass
            if not self._proc.is_alive():
                self.result = {"type": "failed",
                               "error": f"the training process ended (exit code "
                                        f"{self._proc.exitcode})"}
                yield self.result
                break
        self._proc.join(10)

    def run(self) -> dict:
        """Start, wait, return the last event (finished with its report, or failed)."""
        self.start()
        for _ in self.events():
            pass
        return self.result or {"type": "failed", "error": "no result"}


def should_auto_train(store) -> bool:
    """True while the library still uses the shipped encoder and holds enough video."""
    cur = store.current_encoder()
    if cur is not None and cur["version"] != 0:
        return False
    if not store.motion_window_count():
        return False
    total = sum((v.get("duration") or 0.0) for v in store.video_media())
    return total >= AUTO_TRAIN_MIN_VIDEO_S


class EncoderTrainingTask:
    """The library-wide task: learn the library's own motion encoder once it is due (in a
    child process); the videos it redescribes are queued as `motion` jobs, which the
    runner then runs in the same run."""

    name = "motion-encoder"
    when = WHEN_IDLE

    def __init__(self, library: Path, enabled: bool = True):
        self.library, self.enabled = Path(library), enabled
        self._job: EncoderTraining | None = None

    def run(self, store, emit) -> int:
        try:
            if not self.enabled or not should_auto_train(store):
                return 0
        except Exception:  # noqa: BLE001  (an unreadable encoder table: try next run)
            return 0
        self._job = job = EncoderTraining(self.library).start()
        try:
            for event in job.events():
                kind = "" if event["type"] == "progress" else "_" + event["type"]
                emit({**event, "type": "motion_training" + kind})
        finally:
            self._job = None
        result = job.result or {}
        return result["report"].get("queued", 0) if result.get("type") == "finished" else 0

    def cancel(self) -> None:
        job = self._job
        if job is not None:
            job.cancel()
