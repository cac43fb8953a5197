"""Watched folders: the library keeps itself current.

    mounts.py    which folders are network shares (polled: their events do not arrive)
    settle.py    waiting for a file's writes to end before it is taken
    folders.py   the library's list of watched folders: add, forget, apply an edited list
    watcher.py   FolderWatcher: watchdog observers, the scan on start, events -> library
"""
from indexer.watching.folders import (Added, add_folder, apply_folder_list, folder_problem,
                                      forget_folder, normalise)
from indexer.watching.mounts import network_fs
from indexer.watching.settle import DEFAULT_SETTLE_S, Settler
from indexer.watching.watcher import FolderWatcher

__all__ = ["Added", "DEFAULT_SETTLE_S", "FolderWatcher", "Settler", "add_folder",
           "apply_folder_list", "folder_problem", "forget_folder", "network_fs", "normalise"]
