"""Opening the library file: sqlean (SQLite with FTS5 and extension loading) + sqlite-vec.

The stdlib sqlite3 on many Pythons cannot load extensions, so every connection
goes through here.
"""
from __future__ import annotations

from pathlib import Path

import sqlean
import sqlite_utils
import sqlite_vec


class LibraryError(Exception):
    """The library file cannot be opened or is not an avindex library."""


def connect(path: Path | str) -> sqlite_utils.Database:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlean.connect(str(path), timeout=30.0, isolation_level=None,
                              check_same_thread=False)
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
    except sqlean.DatabaseError as exc:
        raise LibraryError(f"cannot open library {path}: {exc}") from exc
    return sqlite_utils.Database(conn)
