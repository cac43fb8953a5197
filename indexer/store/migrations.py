"""The one ordered registry of the library's migrations, and applying them (backing up
the file first). Each schema module holds its own steps; the order lives here only."""
from __future__ import annotations

import time
from pathlib import Path

import sqlite_utils

from indexer.store.schema import MIGRATIONS as _CORE              # 0001-0004: media, jobs, text, vectors
from indexer.store.schema_motion import MIGRATIONS as _MOTION     # 0006: motion windows, tags, groups
from indexer.store.schema_search import MIGRATIONS as _SEARCH     # 0005: binary codes, re-rank rows
from indexer.store.schema_vectors import MIGRATIONS as _VECTORS   # 0007: vec0 tables as int8
from indexer.store.schema_currency import MIGRATIONS as _CURRENCY # 0008-0009: watching, sources
from indexer.store.schema_speakers import MIGRATIONS as _SPEAKERS # 0010: voices, speakers, turns
from indexer.store.schema_faces import MIGRATIONS as _FACES       # 0011: people, face appearances
from indexer.store.schema_progress import MIGRATIONS as _PROGRESS # 0012: jobs that commit as they go
from indexer.store.schema_fulltext import MIGRATIONS as _FULLTEXT # 0013: unspaced scripts spaced for FTS5

MIGRATIONS: list[tuple[str, object]] = [*_CORE, *_SEARCH, *_MOTION, *_VECTORS, *_CURRENCY,
                                        *_SPEAKERS, *_FACES, *_PROGRESS, *_FULLTEXT]

KEEP_BACKUPS = 3


def applied(db: sqlite_utils.Database) -> list[str]:
    if "migrations" not in db.table_names():
        return []
    return [r["name"] for r in db.query("SELECT name FROM migrations ORDER BY id")]


def pending(db: sqlite_utils.Database, upto: int | None = None) -> list[tuple[str, str]]:
    done = set(applied(db))
    todo = MIGRATIONS if upto is None else MIGRATIONS[:upto]
    return [(n, sql) for n, sql in todo if n not in done]


def migrate(db: sqlite_utils.Database, path: Path | None, upto: int | None = None) -> list[str]:
    """Run pending migrations (all, or the first `upto`). Returns their names.

    A library that already holds data is copied to `<name>.bak-<stamp>` first, with
    SQLite's online backup, so a failed migration never costs the user their index.
    """
    if not pending(db, upto):
        return []
    if path is not None and applied(db):
        backup(db, path)
    conn = db.conn
    # One write transaction for the lot: concurrent openers (the CLI, its worker,
    # the GUI) wait here, and the loser finds nothing left to do.
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("""CREATE TABLE IF NOT EXISTS migrations (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
            applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))""")
        names = []
        for name, step in pending(db, upto):
            if callable(step):  # a data migration written in Python
                step(conn)
            else:
                for stmt in _statements(step):
                    conn.execute(stmt)
            conn.execute("INSERT INTO migrations(name) VALUES (?)", (name,))
            names.append(name)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return names


def backup(db: sqlite_utils.Database, path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.bak-{stamp}")
    import sqlean
    dest = sqlean.connect(str(target))
    try:
        db.conn.backup(dest)
    finally:
        dest.close()
    old = sorted(path.parent.glob(f"{path.name}.bak-*"))
    for stale in old[:-KEEP_BACKUPS]:
        stale.unlink(missing_ok=True)
    return target


def _statements(sql: str):
    """Split a script into complete statements (trigger bodies contain ';')."""
    import sqlean
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlean.complete_statement(buf):
            if buf.strip():
                yield buf.strip()
            buf = ""
    if buf.strip():
        yield buf.strip()
