"""The library store: the only package that writes SQL.

`Store` is the façade; its methods come from one module per concern:
media.py (the media registry), jobs.py (the job queue), results.py (each stage's
results), motion.py (motion windows, encoders, tag models), speakers.py (speakers, turns
and the library's voices), faces.py (face appearances and people); codes.py and vec0.py hold
the binary-code and vector-table SQL the search's code index uses, reads.py the GUI's
extra reads, connection.py the connection itself.

Both the job runner (parent process) and the worker (child process) open their
own Store on the same file; WAL mode lets readers proceed while one writes.
A stage's results and its job's `done` are committed in one transaction, so a
kill at any moment leaves either both or neither. A write on a full disk raises
indexer.store.connection.DiskFull (and its transaction is rolled back).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import sqlite_utils

from indexer.store.connection import DiskFull, JoiningConnection, connect
from indexer.store.jobs import FINAL_STATES, JobsMixin
from indexer.store.media import MediaMixin
from indexer.store.migrations import migrate
from indexer.store.motion import MotionStoreMixin
from indexer.store.results import ResultsMixin
from indexer.store.faces import FacesMixin
from indexer.store.speakers import SpeakersMixin

__all__ = ["DiskFull", "FINAL_STATES", "Store"]


class Store(MediaMixin, JobsMixin, ResultsMixin, MotionStoreMixin, SpeakersMixin,
            FacesMixin):
    def __init__(self, path: Path | str, *, migrate_to: int | None = None):
        self.path = Path(path)
        dbapi = connect(self.path).conn
        self.db = sqlite_utils.Database(JoiningConnection(dbapi, self.path))
        self.migrated = migrate(self.db, self.path, upto=migrate_to)
        self._after_commit: list[Callable[[], None]] = []

    def close(self) -> None:
        self.db.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self.db.conn
        if conn.in_transaction:          # nested: the outermost one commits
            yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            self._after_commit.clear()
            conn.rollback()
            raise
        done, self._after_commit = self._after_commit, []
        for fn in done:
            fn()

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run `fn` (deleting files the old rows pointed to) once the enclosing
        transaction has committed; never if it is rolled back. Outside one: now."""
        if self.db.conn.in_transaction:
            self._after_commit.append(fn)
        else:
            fn()

    def _rows(self, sql: str, params: Iterable = ()) -> list[dict]:
        return list(self.db.query(sql, tuple(params) if not isinstance(params, dict) else params))

    def _one(self, sql: str, params: Iterable = ()) -> dict | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def status_summary(self) -> dict:
        counts = {r["status"]: r["n"] for r in
                  self._rows("SELECT status, count(*) AS n FROM media GROUP BY status")}
        jobs = {r["state"]: r["n"] for r in
                self._rows("SELECT state, count(*) AS n FROM jobs GROUP BY state")}
        failures = self._rows("""
            SELECT m.id AS media_id, m.path, j.stage, j.error, j.attempts, j.finished_at
            FROM jobs j JOIN media m ON m.id = j.media_id
            WHERE j.state = 'failed' ORDER BY m.path""")
        totals = self._one("""SELECT count(*) AS media, coalesce(sum(duration),0) AS seconds,
                              (SELECT count(*) FROM segments) AS segments FROM media""")
        return {"library": str(self.path), "media": totals["media"],
                "hours": round(totals["seconds"] / 3600, 3), "segments": totals["segments"],
                "by_status": counts, "jobs": jobs, "failures": failures}

    def integrity_check(self) -> str:
        return self._one("PRAGMA integrity_check")["integrity_check"]
