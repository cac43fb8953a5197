"""Terminal progress for `avindex index`, driven by the runner's structured events.

On a terminal: one bar for the current file and stage, one for the whole batch.
Into a pipe or a log file: plain lines, no control codes (one per file finished,
and the current file's stage and percentage every PLAIN_EVERY_S seconds)."""
from __future__ import annotations

import os
import sys
import time

from tqdm import tqdm

PLAIN_EVERY_S = 10.0


class ProgressView:
    def __init__(self, store, enabled: bool = True, plain: bool | None = None):
        self.store = store
        self.enabled = enabled
        self.plain = not sys.stderr.isatty() if plain is None else plain
        self.overall = self.current = None
        self.finished: set[int] = set()
        self.total = 0
        self.last_line = 0.0

    def on_event(self, event: dict) -> None:
        if not self.enabled:
            return
        kind = event["type"]
        if kind == "run_started":
            self.total = self.store.open_media_count()
            if not self.plain:
                self.overall = tqdm(total=self.total, desc="overall", unit="file", position=0,
                                    file=sys.stderr, leave=True, dynamic_ncols=True)
                self.current = tqdm(total=100, position=1, file=sys.stderr, leave=False,
                                    bar_format="{desc} {percentage:3.0f}%|{bar}|{postfix}",
                                    dynamic_ncols=True)
            self.last_line = time.monotonic()
        elif kind in ("job_started", "progress"):
            self._progress(event)
        elif kind == "job_finished":
            media_id, state = event["media_id"], event["state"]
            if media_id in self.finished or (state == "done" and self.store.open_jobs(media_id)):
                return                   # the file has more stages to run
            self.finished.add(media_id)
            error = f": {event['error']}" if state == "failed" else ""
            if self.overall is not None:
                self.overall.update(1)
                if error:
                    self._line(f"failed: {event['path']}{error}")
            else:
                self._line(f"[{len(self.finished)}/{self.total}] "
                           f"{'indexed' if state == 'done' else state}: {event['path']}{error}")
        elif kind == "worker_crashed":
            self._line(f"worker {event['how']} on {event['path']}"
                       + ("; retrying" if event["retrying"] else ""))

    def _progress(self, event: dict) -> None:
        name = os.path.basename(event["path"])
        pct = int(event["fraction"] * 100)
        if self.current is not None:
            self.current.set_description_str(f"{name[:40]} · {event['stage']}", refresh=False)
            self.current.n = pct
            eta = event.get("eta")
            self.current.set_postfix_str("" if eta is None else f"ETA {eta:.0f}s")
        elif time.monotonic() - self.last_line >= PLAIN_EVERY_S:
            self._line(f"{name} · {event['stage']} {pct}%")

    def _line(self, text: str) -> None:
        if self.overall is not None:
            self.overall.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)
            self.last_line = time.monotonic()

    def close(self) -> None:
        for bar in (self.current, self.overall):
            if bar is not None:
                bar.close()
