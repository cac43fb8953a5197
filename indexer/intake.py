"""Turning paths into media rows: discovery, identity, and what needs (re)processing.

A file is known by its content fingerprint, so a renamed or moved file is
re-linked (nothing re-processed), an unchanged one is skipped, and a changed one
is re-indexed from scratch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .fingerprint import fingerprint
from .store import Store

MEDIA_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .webm .mov .avi .wmv .flv .mpg .mpeg .ts .mts .m2ts .3gp .ogv "
    ".mp3 .m4a .aac .wav .flac .ogg .oga .opus .wma .aiff .aif .amr".split())


@dataclass
class Intake:
    path: str
    action: str          # new, changed, relinked, unchanged, retry, unreadable
    media_id: int | None
    detail: str = ""


def discover(paths: Iterable[str | os.PathLike]) -> Iterator[tuple[Path, str | None]]:
    """Yield (absolute path, problem). Files named explicitly are taken whatever their
    extension; folders are walked recursively for media extensions."""
    for raw in paths:
        p = Path(raw).expanduser()
        try:
            p = p.resolve()
        except OSError:
            pass
        if p.is_dir():
            for root, dirs, files in os.walk(p, onerror=None):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if Path(name).suffix.lower() in MEDIA_EXTENSIONS and not name.startswith("."):
                        yield Path(root) / name, None
        elif p.exists():
            yield p, None
        else:
            yield p, "The file does not exist (or was moved or deleted)."


def _read_error(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "You do not have permission to read this file."
    if isinstance(exc, FileNotFoundError):
        return "The file disappeared before it could be processed (moved or deleted during the batch)."
    if isinstance(exc, IsADirectoryError):
        return "This is a folder, not a file."
    return f"The file cannot be read: {exc.strerror or exc}."


def take(store: Store, path: Path) -> Intake:
    """Decide what a file needs and record it in the store."""
    spath = str(path)
    try:
        st = path.stat()
    except OSError as exc:
        return Intake(spath, "unreadable", None, _read_error(exc))
    size, mtime = st.st_size, st.st_mtime_ns
    known = store.media_by_path(spath)

    if known and known["size"] == size and known["mtime_ns"] == mtime and known["fingerprint"]:
        return _unchanged_or_retry(store, known)
    try:
        fp = fingerprint(path)
    except OSError as exc:
        error = _read_error(exc)
        if known:
            store.reset_media(known["id"], None, size, mtime, error=error)
            return Intake(spath, "unreadable", known["id"], error)
        return Intake(spath, "unreadable", store.add_media(spath, None, size, mtime, error=error),
                      error)

    if known:
        if known["fingerprint"] == fp:
            store.touch(known["id"], size, mtime)
            return _unchanged_or_retry(store, known)
        store.reset_media(known["id"], fp, size, mtime)
        return Intake(spath, "changed", known["id"])

    for twin in store.media_by_fingerprint(fp):
        if not os.path.exists(twin["path"]):
            store.relink(twin["id"], spath, size, mtime)
            return Intake(spath, "relinked", twin["id"], f"moved from {twin['path']}")
    return Intake(spath, "new", store.add_media(spath, fp, size, mtime))


def _unchanged_or_retry(store: Store, media: dict) -> Intake:
    if media["status"] in ("failed", "cancelled"):
        store.retry([media["id"]])
        return Intake(media["path"], "retry", media["id"])
    return Intake(media["path"], "unchanged", media["id"])


def missing_media(store: Store) -> list[dict]:
    """Media whose file is gone from its recorded path."""
    return [m for m in store.all_media() if not os.path.exists(m["path"])]
