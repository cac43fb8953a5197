"""Terminal progress for `avindex index`: one bar for the current file and stage,
one for the whole batch, both driven by the runner's structured events."""
from __future__ import annotations

import os
import sys

from tqdm import tqdm


class ProgressView:
    def __init__(self, store, enabled: bool = True):
        self.store = store
        self.enabled = enabled
        self.overall = self.current = None
        self.finished: set[int] = set()

    def on_event(self, event: dict) -> None:
        if not self.enabled:
            return
        kind = event["type"]
        if kind == "run_started":
            self.overall = tqdm(total=self.store.open_media_count(), desc="overall", unit="file", position=0,
                                file=sys.stderr, leave=True, dynamic_ncols=True)
            self.current = tqdm(total=100, position=1, file=sys.stderr, leave=False,
                                bar_format="{desc} {percentage:3.0f}%|{bar}|{postfix}",
                                dynamic_ncols=True)
        elif kind in ("job_started", "progress") and self.current is not None:
            name = os.path.basename(event["path"])
            self.current.set_description_str(f"{name[:40]} · {event['stage']}", refresh=False)
            self.current.n = int(event["fraction"] * 100)
            eta = event.get("eta")
            self.current.set_postfix_str("" if eta is None else f"ETA {eta:.0f}s")
        elif kind == "job_finished" and self.overall is not None:
            media_id = event["media_id"]
            if event["state"] != "done" or self.store.open_jobs(media_id) == 0:
                if media_id not in self.finished:
                    self.finished.add(media_id)
                    self.overall.update(1)
            if event["state"] == "failed":
                self.overall.write(f"failed: {event['path']}: {event['error']}")
        elif kind == "worker_crashed" and self.overall is not None:
            self.overall.write(f"worker {event['how']} on {event['path']}"
                               + ("; retrying" if event["retrying"] else ""))

    def close(self) -> None:
        for bar in (self.current, self.overall):
            if bar is not None:
                bar.close()
