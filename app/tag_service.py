"""Action tags and motion groups for any front end (CLI now, a GUI dialog later); no Qt.

    svc = TagService(library)
    svc.train("walking", ["/v/a.mp4@12-20", "/v/b.mp4"], progress=lambda f, msg: ...)
        -> {"label", "cv_accuracy", "threshold", "positives", "negatives", "ranges", ...}
    svc.train_folder("/clips")            # one subfolder per label -> {label: result}
    svc.list_tags() / svc.delete("walking")
    svc.make_groups(k=None) / svc.groups() / svc.name_group(group_id, "waving")
    svc.encoder_status() / svc.train_encoder(progress=..., budget_s=60)

Examples are "PATH" (the whole file) or "PATH@START-END" (seconds, or [h:]mm:ss) of files
already in the library. Every call opens and closes its own Store, so it may run on any
thread (one call at a time per service). Errors a user can fix raise TagError.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from indexer.library_tasks.action_tags import Example, TagError
from indexer.store import Store

Progress = Callable[[float, str], None]
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".wmv",
                  ".flv", ".ts", ".m2ts", ".3gp", ".ogv"}

__all__ = ["TagService", "TagError", "parse_example"]


def _seconds(text: str) -> float:
    parts = [float(p) for p in text.strip().split(":")]
    value = 0.0
    for p in parts:
        value = value * 60 + p
    return value


def parse_example(spec: str) -> tuple[str, float | None, float | None]:
    """"PATH", "PATH@START-END" or "PATH@START-" -> (path, start, end)."""
    m = re.match(r"^(.*)@([\d:.]+)-([\d:.]*)$", spec)
    if not m:
        return spec, None, None
    start = _seconds(m.group(2))
    end = _seconds(m.group(3)) if m.group(3) else None
    if end is not None and end <= start:
        raise TagError(f"{spec}: the end must come after the start")
    return m.group(1), start, end


class TagService:
    def __init__(self, library: Path | str):
        self.library = Path(library)

    def _store(self) -> Store:
        return Store(self.library)

    def _examples(self, store: Store, specs, positive: bool = True) -> list[Example]:
        out = []
        for spec in specs:
            path, start, end = parse_example(str(spec))
            media = store.media_by_path(str(Path(path).expanduser().resolve()))
            if media is None and path.isdigit():
                media = store.media(int(path))
            if media is None:
                raise TagError(f"{path} is not in the library; index it first "
                               "(avindex index PATH)")
            out.append(Example(media["id"], start, end, positive))
        return out

    # ---- tags --------------------------------------------------------------------------
    def list_tags(self) -> list[dict]:
        """Trained tags: label, source, ranges, cv_accuracy, threshold, encoder_version, ..."""
        store = self._store()
        try:
            rows = store.tag_models()
        finally:
            store.close()
        for r in rows:
            r["examples"] = len(r["examples"])
        return rows

    def train(self, label: str, examples, negatives=(), *, sample_negatives: bool = True,
              progress: Progress | None = None) -> dict:
        from indexer.library_tasks.action_tags import train_action_tag
        store = self._store()
        try:
            pos = self._examples(store, examples, True)
            neg = self._examples(store, negatives, False)
            res = train_action_tag(store, label, pos, neg, sample_negatives=sample_negatives,
                                   progress=progress or (lambda f, m: None))
        finally:
            store.close()
        res.pop("tags", None)
        return res

    def train_folder(self, folder: Path | str, *, progress: Progress | None = None) -> dict:
        """One tag per subfolder of `folder` (its video files are the positives; the other
        subfolders' files the negatives, and only those)."""
        folder = Path(folder)
        labels = {d.name: sorted(str(f) for f in d.rglob("*")
                                 if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
                  for d in sorted(folder.iterdir()) if d.is_dir()}
        labels = {k: v for k, v in labels.items() if v}
        if len(labels) < 2:
            raise TagError(f"{folder} needs at least two subfolders (one per label) of videos")
        out = {}
        for i, (label, files) in enumerate(labels.items()):
            others = [f for k, v in labels.items() if k != label for f in v]
            step = (lambda f, m, i=i: progress((i + f) / len(labels), f"{label}: {m}")) \
                if progress else None
            out[label] = self.train(label, files, others, sample_negatives=False, progress=step)
        return out

    def delete(self, label: str) -> int:
        store = self._store()
        try:
            if store.tag_model(label) is None:
                raise TagError(f"no trained tag called {label!r}")
            return store.delete_tag(label)
        finally:
            store.close()

    def tag_ranges(self, label: str) -> list[dict]:
        store = self._store()
        try:
            return store.tag_rows(label)
        finally:
            store.close()

    # ---- motion groups -------------------------------------------------------------------
    def make_groups(self, k: int | None = None) -> list[dict]:
        from indexer.library_tasks.action_tags import make_groups
        store = self._store()
        try:
            return make_groups(store, k)
        finally:
            store.close()

    def groups(self) -> list[dict]:
        from indexer.library_tasks.action_tags import groups
        store = self._store()
        try:
            return groups(store)
        finally:
            store.close()

    def name_group(self, group_id: int, label: str) -> dict:
        from indexer.library_tasks.action_tags import name_group
        store = self._store()
        try:
            return name_group(store, int(group_id), label)
        finally:
            store.close()

    # ---- the encoder -------------------------------------------------------------------
    def encoder_status(self) -> dict:
        store = self._store()
        try:
            cur = store.current_encoder()
            return {"current": None if cur is None else
                    {k: cur[k] for k in ("version", "kind", "fingerprint", "trained_at")},
                    "encoders": store.encoders(), "windows": store.motion_window_count(),
                    "stale_jobs": len(store.jobs(state="queued"))}
        finally:
            store.close()

    def train_encoder(self, *, progress: Progress | None = None, budget_s: float = 60.0,
                      sample_s: float = 30.0, cancelled: Callable[[], bool] | None = None) -> dict:
        """Learn the library's encoder in a background process; blocks until it ends (call
        from a worker thread). Returns its report; raises TagError if it failed."""
        from .motion_jobs import EncoderTraining
        job = EncoderTraining(self.library, budget_s=budget_s, sample_s=sample_s).start()
        for event in job.events():
            if cancelled is not None and cancelled():
                job.cancel()
            if event["type"] == "progress" and progress is not None:
                progress(event["fraction"], event["message"])
        result = job.result or {}
        if result.get("type") != "finished":
            raise TagError(result.get("error", "encoder training failed"))
        return result["report"]
