"""Turning paths into media rows: discovery, identity, and what needs (re)processing.

A file is known by its content fingerprint, so a renamed or moved file is
re-linked (nothing re-processed), an unchanged one is skipped, and a changed one
is re-indexed from scratch.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from indexer.file_fingerprint import fingerprint
from indexer.subtitle_tracks import is_sidecar_name, sidecar_match
from indexer.stages import DERIVED_TABLES
from indexer.store import Store

MEDIA_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .webm .mov .avi .wmv .flv .mpg .mpeg .ts .mts .m2ts .3gp .ogv "
    ".mp3 .m4a .aac .wav .flac .ogg .oga .opus .wma .aiff .aif .amr".split())


@dataclass
class Intake:
    path: str
    action: str          # new, changed, relinked, unchanged, retry, unreadable,
                         # subtitles (read again for its media), no_media (a subtitle file
                         # whose media is not in the library)
    media_id: int | None
    detail: str = ""


def discover(paths: Iterable[str | os.PathLike]) -> Iterator[tuple[Path, str | None]]:
    """Yield (absolute path, problem). Files named explicitly are taken whatever their
    extension; folders are walked recursively for media extensions. Every bad path
    (missing, a broken or looping link, a folder that cannot be read) comes with a
    problem a person understands; links to folders are not followed in a walk."""
    for raw in paths:
        p = Path(raw).expanduser().absolute()
        problem = _path_problem(p)
        if problem:
            yield p, problem
        elif p.is_dir():
            yield from _walk(p.resolve())
        else:
            yield p.resolve(), None


def _path_problem(p: Path, *, folder: bool = False) -> str | None:
    try:
        os.stat(p)
        return None
    except OSError as exc:
        return _path_error(p, exc, folder=folder)


def _path_error(p: Path, exc: OSError, *, folder: bool = False) -> str:
    if exc.errno == errno.ELOOP:
        return "This is a link that leads back to itself (a symbolic link loop), not a file."
    if isinstance(exc, FileNotFoundError) and p.is_symlink():
        return f"This is a link to {os.readlink(p)}, which does not exist."
    if isinstance(exc, PermissionError) and folder:
        return "You do not have permission to open this folder, so its files were not indexed."
    if isinstance(exc, FileNotFoundError):
        return "The file does not exist (or was moved or deleted)."
    return _read_error(exc)


def _walk(folder: Path) -> Iterator[tuple[Path, str | None]]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        yield folder, _path_error(folder, exc, folder=True)
        return
    entries = [e for e in entries if not e.name.startswith(".")]
    for e in entries:
        if Path(e.name).suffix.lower() not in MEDIA_EXTENSIONS:
            continue
        try:
            is_dir, is_file = e.is_dir(), e.is_file()
        except OSError:              # a symbolic link loop
            is_dir = is_file = False
        path = Path(e.path)
        if is_file:
            yield path, None
        elif not is_dir:
            yield path, (_path_problem(path)
                         or "This is not a file that can be read (a device, pipe or socket).")
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            yield from _walk(Path(e.path))


def _read_error(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "You do not have permission to read this file."
    if isinstance(exc, FileNotFoundError):
        return "The file disappeared before it could be processed (moved or deleted during the batch)."
    if isinstance(exc, IsADirectoryError):
        return "This is a folder, not a file."
    return f"The file cannot be read: {exc.strerror or exc}."


def take(store: Store, path: Path, *, retry_failed: bool = True) -> Intake:
    """Decide what a file needs and record it in the store. An unchanged file that failed
    (or was cancelled) is queued again unless `retry_failed` is False (the watcher takes
    only what is new or changed). A file found again at its path loses its missing mark.
    A subtitle file is read again for the media it belongs to (take_sidecar)."""
    spath = str(path)
    if is_sidecar_name(spath):
        return take_sidecar(store, path)
    try:
        st = path.stat()
    except OSError as exc:
        return Intake(spath, "unreadable", None, _read_error(exc))
    size, mtime = st.st_size, st.st_mtime_ns
    known = store.media_by_path(spath)

    if known and known["size"] == size and known["mtime_ns"] == mtime and known["fingerprint"]:
        if known["missing_since"]:
            store.clear_missing(known["id"])
        return _unchanged_or_retry(store, known, retry_failed)
    try:
        fp = fingerprint(path)
    except OSError as exc:
        error = _read_error(exc)
        if known:
            store.reset_media(known["id"], None, size, mtime, derived=DERIVED_TABLES,
                              error=error)
            return Intake(spath, "unreadable", known["id"], error)
        return Intake(spath, "unreadable", store.add_media(spath, None, size, mtime, error=error),
                      error)

    if known:
        if known["fingerprint"] == fp:
            store.touch(known["id"], size, mtime)
            return _unchanged_or_retry(store, known, retry_failed)
        store.reset_media(known["id"], fp, size, mtime, derived=DERIVED_TABLES)
        return Intake(spath, "changed", known["id"])

    for twin in store.media_by_fingerprint(fp):
        if is_gone(twin["path"]):
            store.relink(twin["id"], spath, size, mtime)
            return Intake(spath, "relinked", twin["id"], f"moved from {twin['path']}")
    return Intake(spath, "new", store.add_media(spath, fp, size, mtime))


# what reads a file's subtitle lines: the subtitles stage, and the text index built on them
SIDECAR_READERS = ("subtitles", "text")


def take_sidecar(store: Store, path: Path) -> Intake:
    """A subtitle file beside media (new, changed or deleted): the files of the library it
    belongs to (movie.en.srt: movie.mkv) read their subtitles again and rebuild their text
    index; their speech recognition is not redone."""
    spath = str(path)
    folder = path.parent
    in_folder = [m for m in store.media_under(str(folder))
                 if os.path.dirname(m["path"]) == str(folder)]
    stems = {os.path.splitext(os.path.basename(m["path"]))[0].casefold() for m in in_folder}
    try:
        stems |= {os.path.splitext(e.name)[0].casefold() for e in os.scandir(folder)
                  if os.path.splitext(e.name)[1].lower() in MEDIA_EXTENSIONS}
    except OSError:
        pass
    owners = [m for m in in_folder if sidecar_match(
        os.path.splitext(os.path.basename(m["path"]))[0], path.name, stems)[0]]
    if not owners:
        return Intake(spath, "no_media", None,
                      "This is a subtitle file. It is read with the media file of the same "
                      "name beside it (movie.en.srt with movie.mkv), and none is in the library.")
    queued = [m for m in owners if store.rerun_finished(m["id"], SIDECAR_READERS)]
    first = (queued or owners)[0]
    return Intake(spath, "subtitles", first["id"],
                  f"{path.name} is read again for "
                  + ", ".join(os.path.basename(m["path"]) for m in owners))


def _unchanged_or_retry(store: Store, media: dict, retry_failed: bool = True) -> Intake:
    if retry_failed and media["status"] in ("failed", "cancelled"):
        store.retry([media["id"]])
        return Intake(media["path"], "retry", media["id"])
    return Intake(media["path"], "unchanged", media["id"])


def is_gone(path: str | os.PathLike) -> bool:
    """The path does not exist. A path that cannot be checked (a folder we may not read,
    a share that does not answer) is not taken for gone."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def missing_media(store: Store) -> list[dict]:
    """Media whose file is gone from its recorded path."""
    return [m for m in store.all_media() if is_gone(m["path"])]


@dataclass
class PruneCandidates:
    gone: list[dict]        # media to forget
    held: list[dict]        # media kept: each with "reason"


def prune_candidates(store: Store, *, include_unavailable: bool = False) -> PruneCandidates:
    """What `prune` forgets: files marked missing (by the watcher, which checks that their
    watched folder is there when it marks them) and files gone from folders that still
    exist. Held back, unless `include_unavailable`: files under a watched folder that is
    unavailable (an unplugged drive, an unmounted share: not a mass deletion), and files
    not marked missing whose own folder is gone too (the same, for unwatched folders)."""
    folders = store.watched_folders()
    down = {f["path"] for f in folders if f["state"] == "unavailable" or is_gone(f["path"])}
    gone, held = [], []
    for m in missing_media(store):
        root = containing_folder(m["path"], [f["path"] for f in folders])
        reason = None
        if root in down:
            reason = f"its watched folder {root} is unavailable"
        elif not m["missing_since"] and root is None and is_gone(os.path.dirname(m["path"])):
            reason = f"its folder {os.path.dirname(m['path'])} is gone too"
        if reason and not include_unavailable:
            held.append({**m, "reason": reason})
        else:
            gone.append(m)
    return PruneCandidates(gone, held)


def forget_artifacts(store: Store, folder) -> int:
    """`prune --yes` for a cluster's artifact cache (indexer.cluster.artifacts): the
    results of files no longer in the library go. Returns how many went."""
    from indexer.cluster.artifacts import ArtifactCache
    return ArtifactCache(folder).prune(
        {m["fingerprint"] for m in store.all_media() if m["fingerprint"]})


def containing_folder(path: str, folders: Iterable[str]) -> str | None:
    """The deepest of `folders` that holds `path` (at any depth), or None."""
    best = None
    for folder in folders:
        base = folder.rstrip("/") + "/"
        if path.startswith(base) and (best is None or len(folder) > len(best)):
            best = folder
    return best
