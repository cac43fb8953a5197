"""The library's watched folders: checking a folder a person names, adding and
forgetting it, and applying the list the settings dialog edits. Each folder is kept as
an absolute, resolved path; a folder inside one already watched is covered by it."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from indexer.store import Store

from .mounts import network_fs


def normalise(path: str | os.PathLike) -> str:
    return str(Path(path).expanduser().absolute().resolve())


def folder_problem(path: str) -> str | None:
    """Why `path` cannot be watched, in words a person understands; None if it can."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"There is no folder at {path}."
    except PermissionError:
        return f"You do not have permission to open {path}."
    except OSError as exc:
        return f"{path} cannot be opened: {exc.strerror or exc}."
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is a file, not a folder; watch the folder that holds it."
    if not os.access(path, os.R_OK | os.X_OK):
        return f"You do not have permission to read the folder {path}."
    return None


def covering(path: str, folders: list[str]) -> str | None:
    """The watched folder that already holds `path` (itself excluded), if any."""
    for folder in folders:
        if folder != path and path.startswith(folder.rstrip("/") + "/"):
            return folder
    return None


def covered(path: str, folders: list[str]) -> list[str]:
    """The watched folders inside `path`."""
    base = path.rstrip("/") + "/"
    return [f for f in folders if f.startswith(base)]


@dataclass
class Added:
    path: str
    polling: bool
    network: str | None          # the network file system it lives on, if any
    new: bool                    # False: it was watched already
    covered_by: str | None = None    # not added: a watched folder holds it already
    replaced: list[str] = field(default_factory=list)   # watched folders it now covers


def add_folder(store: Store, raw: str | os.PathLike, *, poll: bool = False) -> Added:
    """Watch a folder. Polling is used when asked (`poll`) or when the folder is on a
    network share (detected from the mount table), and kept once chosen.
    Raises ValueError with a message for a path that is not a readable folder."""
    path = normalise(raw)
    problem = folder_problem(path)
    if problem:
        raise ValueError(problem)
    existing = {f["path"]: f for f in store.watched_folders()}
    network = network_fs(path)
    parent = covering(path, list(existing))
    if parent:
        return Added(path, bool(existing[parent]["polling"]), network, False, covered_by=parent)
    replaced = covered(path, list(existing))
    known = existing.get(path)
    polling = bool(poll or network or (known and known["polling"])
                   or any(existing[f]["polling"] for f in replaced))
    with store.transaction():
        for child in replaced:
            store.remove_watched_folder(child)
        new = store.add_watched_folder(path, polling)
    return Added(path, polling, network, new, replaced=replaced)


def forget_folder(store: Store, raw: str | os.PathLike) -> str:
    """Stop watching a folder (its files stay in the library); returns its path.
    Raises ValueError naming the watched folders when it is not one of them."""
    path = normalise(raw)
    if store.remove_watched_folder(path) or store.remove_watched_folder(str(raw)):
        return path
    folders = [f["path"] for f in store.watched_folders()]
    listed = "; ".join(folders) if folders else "none"
    raise ValueError(f"{path} is not a watched folder (watched: {listed}).")


def apply_folder_list(store: Store, wanted: list[dict]) -> list[str]:
    """Make the watched folders exactly `wanted` ({"path", "polling"} each), as the
    settings dialog edits them; returns the problems of folders that could not be added."""
    problems = []
    keep = {normalise(w["path"]): bool(w.get("polling")) for w in wanted}
    for folder in store.watched_folders():
        if folder["path"] not in keep:
            store.remove_watched_folder(folder["path"])
    for path, polling in keep.items():
        current = store.watched_folder(path)
        if current is not None:
            if bool(current["polling"]) != polling:
                store.add_watched_folder(path, polling)
            continue
        try:
            add_folder(store, path, poll=polling)
        except ValueError as exc:
            problems.append(str(exc))
    return problems
