"""Opening the library file: sqlean (SQLite with FTS5 and extension loading) + sqlite-vec.

The stdlib sqlite3 on many Pythons cannot load extensions, so every connection
goes through here. A Store wraps its connection in JoiningConnection.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import sqlean
import sqlite_utils
import sqlite_vec

from indexer.unspaced_text import FTS_TEXT_FUNCTION, spaced

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
        # the full-text tables' triggers call it (indexer.unspaced_text)
        conn.create_function(FTS_TEXT_FUNCTION, 1, spaced, deterministic=True)
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


class JoiningConnection:
    """Wraps the DB-API connection so sqlite-utils' internal `with conn:` blocks join
    an enclosing Store.transaction() instead of committing it half-way, and so every
    statement on a full disk raises DiskFull.

    Everything else (in_transaction, create_function, ...) is the wrapped connection's;
    nobody outside this class needs the wrapped connection itself."""

    def __init__(self, dbapi, path: Path):
        self._dbapi = dbapi
        self._path = path
        self._outer: list[bool] = []

    def __getattr__(self, name):
        return getattr(self._dbapi, name)

    def _call(self, method: str, *args):
        try:
            return getattr(self._dbapi, method)(*args)
        except sqlean.DatabaseError as exc:
            if is_disk_full(exc, self._path):
                raise DiskFull(self._path) from exc
            raise

    def execute(self, *args):
        return self._call("execute", *args)

    def executemany(self, *args):
        return self._call("executemany", *args)

    def executescript(self, *args):
        return self._call("executescript", *args)

    def commit(self):
        return self._call("commit")

    def rollback(self):
        if self._dbapi.in_transaction:     # SQLite may have rolled back already (disk full)
            self._dbapi.rollback()

    def close(self) -> None:
        self._dbapi.close()

    def data_version(self) -> int:
        """PRAGMA data_version: changes when another connection commits to the file."""
        return self.execute("PRAGMA data_version").fetchone()[0]

    @property
    def total_changes(self) -> int:
        """Rows changed through this connection since it was opened."""
        return self._dbapi.total_changes

    def change_stamp(self) -> tuple[int, int]:
        """Differs whenever the database has changed, through this connection or another
        (a cache key for values read from it)."""
        return self.data_version(), self.total_changes

    def __enter__(self):
        self._outer.append(self._dbapi.in_transaction)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._outer.pop():
            return False
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        return False


# ---- the self-test's checks that the extensions work (on a scratch database) ----------
def vec0_knn_check(db: sqlite_utils.Database) -> tuple[str, int]:
    """sqlite-vec's version, and the row a 1-nearest query over three unit vectors
    returns (2 when vec0 KNN works). Creates table `v`."""
    conn = db.conn
    version = conn.execute("select vec_version()").fetchone()[0]
    conn.execute("create virtual table v using vec0(e float[4])")
    for i in range(3):
        conn.execute("insert into v(rowid, e) values (?, ?)",
                     (i + 1, np.eye(4, dtype=np.float32)[i].tobytes()))
    near = conn.execute("select rowid from v where e match ? and k = 1",
                        (np.eye(4, dtype=np.float32)[1].tobytes(),)).fetchone()[0]
    return version, near


def fts5_check(db: sqlite_utils.Database) -> int:
    """Rows an FTS5 match finds among two (1 when FTS5 works). Creates table `t`."""
    conn = db.conn
    conn.execute("create virtual table t using fts5(body)")
    conn.execute("insert into t(body) values ('the quarterly budget'), ('lunch menu')")
    return conn.execute("select count(*) from t where t match 'budget'").fetchone()[0]


def sqlite_version(db: sqlite_utils.Database) -> str:
    return db.conn.execute("select sqlite_version()").fetchone()[0]
