"""Opening the library file: sqlean (SQLite with FTS5 and extension loading) + sqlite-vec.

The stdlib sqlite3 on many Pythons cannot load extensions, so every connection
goes through here.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import sqlean
import sqlite_utils
import sqlite_vec

SQLITE_FULL = 13
SQLITE_IOERR = 10
# SQLite reports some writes on a full disk as I/O errors (growing the -shm file at
# open), so an I/O error with almost nothing free is taken for a full disk too.
NEARLY_FULL_BYTES = 1 << 20


class LibraryError(Exception):
    """The library file cannot be opened or is not an avindex library."""


class DiskFull(LibraryError):
    """The disk holding the library is full: nothing more can be saved until space is freed."""

    def __init__(self, library: Path | str):
        self.library = Path(library)
        folder = self.library.parent
        mount = folder
        while not os.path.ismount(mount) and mount != mount.parent:
            mount = mount.parent
        super().__init__(
            f"The disk holding the library is full ({folder}, on the disk mounted at {mount}). "
            "Free some space on it (or move the library to a bigger disk), "
            "then start indexing again: what was indexed is kept and the rest stays queued.")


def is_disk_full(exc: BaseException, library: Path | str) -> bool:
    if isinstance(exc, DiskFull):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if not isinstance(exc, sqlean.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == SQLITE_FULL:
        return True
    if (code is None or code & 0xFF == SQLITE_IOERR) and "disk I/O error" in str(exc):
        try:
            return shutil.disk_usage(Path(library).parent).free < NEARLY_FULL_BYTES
        except OSError:
            return False
    return "database or disk is full" in str(exc)


def connect(path: Path | str) -> sqlite_utils.Database:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlean.connect(str(path), timeout=30.0, isolation_level=None,
                              check_same_thread=False)
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
    except (sqlean.DatabaseError, OSError) as exc:
        if is_disk_full(exc, path):
            raise DiskFull(path) from exc
        if isinstance(exc, OSError):
            raise
        raise LibraryError(f"cannot open library {path}: {exc}") from exc
    return sqlite_utils.Database(conn)
