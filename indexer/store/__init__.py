"""The library store: the only module that writes SQL.

Both the job runner (parent process) and the worker (child process) open their
own Store on the same file; WAL mode lets readers proceed while one writes.
A stage's results and its job's `done` are committed in one transaction, so a
kill at any moment leaves either both or neither. A write on a full disk raises
indexer.store.connection.DiskFull (and its transaction is rolled back).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import sqlean
import sqlite_utils

from indexer.store.connection import DiskFull, connect, is_disk_full
from indexer.store.migrations import migrate
from indexer.store.motion import MotionStoreMixin
from indexer.store.vec_codec import int8_blob

DERIVED_TABLES = ("segments", "keywords", "keyframes", "tags", "screen_text", "motion_windows")
FINAL_STATES = ("done", "failed", "cancelled")


class _JoiningConnection:
    """Wraps the DB-API connection so sqlite-utils' internal `with conn:` blocks join
    an enclosing Store.transaction() instead of committing it half-way, and so every
    statement on a full disk raises DiskFull."""

    def __init__(self, raw, path: Path):
        self._raw = raw
        self._path = path
        self._outer: list[bool] = []

    def __getattr__(self, name):
        return getattr(self._raw, name)

    def _call(self, method: str, *args):
        try:
            return getattr(self._raw, method)(*args)
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
        if self._raw.in_transaction:     # SQLite may have rolled back already (disk full)
            self._raw.rollback()

    def __enter__(self):
        self._outer.append(self._raw.in_transaction)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._outer.pop():
            return False
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        return False


class Store(MotionStoreMixin):
    def __init__(self, path: Path | str, *, migrate_to: int | None = None):
        self.path = Path(path)
        raw = connect(self.path).conn
        self.db = sqlite_utils.Database(_JoiningConnection(raw, self.path))
        self.migrated = migrate(self.db, self.path, upto=migrate_to)
        self._after_commit: list[Callable[[], None]] = []

    def close(self) -> None:
        self.db.conn._raw.close()

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

    # ---- media and identity -------------------------------------------------
    def media(self, media_id: int) -> dict | None:
        return self._one("SELECT * FROM media WHERE id = ?", (media_id,))

    def media_by_path(self, path: str) -> dict | None:
        return self._one("SELECT * FROM media WHERE path = ?", (path,))

    def media_by_fingerprint(self, fp: str) -> list[dict]:
        return self._rows("SELECT * FROM media WHERE fingerprint = ? ORDER BY id", (fp,))

    def add_media(self, path: str, fp: str | None, size: int, mtime_ns: int,
                  *, error: str | None = None) -> int:
        """A new file: a media row and its first job (probe). With `error` the file
        could not even be read, so the probe job is recorded as failed at once."""
        with self.transaction():
            media_id = self.db["media"].insert(
                {"path": path, "fingerprint": fp, "size": size, "mtime_ns": mtime_ns,
                 "status": "queued"}).last_pk
            self._queue(media_id, "probe")
            if error:
                job = self._one("SELECT id FROM jobs WHERE media_id=? AND stage='probe'",
                                (media_id,))
                self.finish_job(job["id"], "failed", error)
        return media_id

    def relink(self, media_id: int, path: str, size: int, mtime_ns: int) -> None:
        """The same content found at a new path: keep everything, update the path."""
        self.db["media"].update(media_id, {"path": path, "size": size, "mtime_ns": mtime_ns})

    def touch(self, media_id: int, size: int, mtime_ns: int) -> None:
        self.db["media"].update(media_id, {"size": size, "mtime_ns": mtime_ns})

    def reset_media(self, media_id: int, fp: str | None, size: int, mtime_ns: int,
                    *, error: str | None = None) -> None:
        """The file's content changed: drop what was derived from it and start over.
        User corrections are kept (they are keyed by time, not by segment)."""
        with self.transaction():
            for table in DERIVED_TABLES:
                self.db.execute(f"DELETE FROM {table} WHERE media_id = ?", (media_id,))
            self.db.execute("DELETE FROM jobs WHERE media_id = ?", (media_id,))
            self.db["media"].update(media_id, {
                "fingerprint": fp, "size": size, "mtime_ns": mtime_ns, "duration": None,
                "container": None, "streams": None, "kind": None, "language": None,
                "status": "queued", "error": None, "indexed_at": None})
            self._queue(media_id, "probe")
            if error:
                job = self._one("SELECT id FROM jobs WHERE media_id=? AND stage='probe'",
                                (media_id,))
                self.finish_job(job["id"], "failed", error)

    def all_media(self) -> list[dict]:
        return self._rows("""
            SELECT m.*, (SELECT count(*) FROM tags t WHERE t.media_id = m.id) AS tag_count,
                   (SELECT count(*) FROM segments s WHERE s.media_id = m.id) AS segment_count
            FROM media m ORDER BY m.path""")

    def delete_media(self, media_ids: Iterable[int]) -> int:
        ids = list(media_ids)
        with self.transaction():
            for mid in ids:
                self.db.execute("DELETE FROM media WHERE id = ?", (mid,))
        return len(ids)

    # ---- jobs ---------------------------------------------------------------
    def _queue(self, media_id: int, stage: str) -> None:
        self.db.execute("""
            INSERT INTO jobs(media_id, stage, state) VALUES (?, ?, 'queued')
            ON CONFLICT(media_id, stage) DO UPDATE SET state='queued', error=NULL,
                attempts=0, started_at=NULL, finished_at=NULL""", (media_id, stage))
        self._refresh_status(media_id)

    def queue_stage(self, media_id: int, stage: str) -> None:
        with self.transaction():
            self._queue(media_id, stage)

    def job(self, job_id: int) -> dict | None:
        return self._one("""SELECT j.*, m.path FROM jobs j JOIN media m ON m.id = j.media_id
                            WHERE j.id = ?""", (job_id,))

    def jobs(self, media_id: int | None = None, state: str | None = None) -> list[dict]:
        where, params = [], []
        if media_id is not None:
            where.append("j.media_id = ?"); params.append(media_id)
        if state is not None:
            where.append("j.state = ?"); params.append(state)
        sql = "SELECT j.*, m.path FROM jobs j JOIN media m ON m.id = j.media_id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._rows(sql + " ORDER BY j.id", params)

    def claim_next_job(self) -> dict | None:
        """Atomically move the oldest queued job to running (probe jobs first)."""
        with self.transaction():
            job = self._one("""SELECT id FROM jobs WHERE state='queued'
                               ORDER BY (stage != 'probe'), id LIMIT 1""")
            if job is None:
                return None
            self.db.execute("""UPDATE jobs SET state='running', attempts=attempts+1,
                    started_at=strftime('%Y-%m-%dT%H:%M:%fZ','now'), finished_at=NULL,
                    error=NULL WHERE id=?""", (job["id"],))
            claimed = self.job(job["id"])
            self._refresh_status(claimed["media_id"])
        return claimed

    def finish_job(self, job_id: int, state: str, error: str | None = None) -> None:
        assert state in FINAL_STATES or state == "queued", state
        with self.transaction():
            self.db.execute("""UPDATE jobs SET state=?, error=?,
                    finished_at=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id=?""",
                            (state, error, job_id))
            job = self._one("SELECT media_id FROM jobs WHERE id=?", (job_id,))
            if job:
                self._refresh_status(job["media_id"])

    def requeue_stale(self) -> int:
        """Jobs a crash left `running` go back to the queue; returns how many files had one."""
        with self.transaction():
            rows = self._rows("SELECT id, media_id FROM jobs WHERE state='running'")
            media_ids = {r["media_id"] for r in rows}
            if media_ids:                # no write at all otherwise (a full disk is fine)
                self.db.execute("UPDATE jobs SET state='queued', started_at=NULL "
                                "WHERE state='running'")
            for media_id in media_ids:
                self._refresh_status(media_id)
        return len(media_ids)

    def retry(self, media_ids: Iterable[int] | None = None) -> int:
        """Failed and cancelled jobs (of the given media, or all) go back to the queue."""
        with self.transaction():
            sql = "SELECT id, media_id FROM jobs WHERE state IN ('failed','cancelled')"
            rows = self._rows(sql)
            wanted = None if media_ids is None else set(media_ids)
            rows = [r for r in rows if wanted is None or r["media_id"] in wanted]
            for r in rows:
                self.db.execute("""UPDATE jobs SET state='queued', error=NULL, attempts=0,
                                   started_at=NULL, finished_at=NULL WHERE id=?""", (r["id"],))
            for media_id in {r["media_id"] for r in rows}:
                self._refresh_status(media_id)
        return len(rows)

    def cancel_queued(self, media_ids: Iterable[int] | None = None) -> int:
        with self.transaction():
            rows = self._rows("SELECT id, media_id FROM jobs WHERE state='queued'")
            wanted = None if media_ids is None else set(media_ids)
            rows = [r for r in rows if wanted is None or r["media_id"] in wanted]
            for r in rows:
                self.db.execute("UPDATE jobs SET state='cancelled', error='Cancelled by the user.' "
                                "WHERE id=?", (r["id"],))
            for media_id in {r["media_id"] for r in rows}:
                self._refresh_status(media_id)
        return len(rows)

    def open_jobs(self, media_id: int | None = None) -> int:
        """Queued or running jobs (of one media, or all)."""
        if media_id is None:
            return self._one("SELECT count(*) AS n FROM jobs "
                             "WHERE state IN ('queued','running')")["n"]
        return self._one("SELECT count(*) AS n FROM jobs WHERE media_id=? AND "
                         "state IN ('queued','running')", (media_id,))["n"]

    def open_media_count(self) -> int:
        return self._one("SELECT count(DISTINCT media_id) AS n FROM jobs "
                         "WHERE state IN ('queued','running')")["n"]

    def count_queued(self) -> int:
        return self._one("SELECT count(*) AS n FROM jobs WHERE state='queued'")["n"]

    def _refresh_status(self, media_id: int) -> None:
        states = [r["state"] for r in self._rows("SELECT state FROM jobs WHERE media_id=?",
                                                 (media_id,))]
        failed = self._one("""SELECT error FROM jobs WHERE media_id=? AND state='failed'
                              ORDER BY id LIMIT 1""", (media_id,))
        if failed:
            status = "failed"
        elif "running" in states:
            status = "indexing"
        elif "queued" in states:
            status = "queued"
        elif "cancelled" in states:
            status = "cancelled"
        else:
            status = "done"
        update = {"status": status, "error": failed["error"] if failed else None}
        if status == "done":
            update["indexed_at"] = self._one(
                "SELECT strftime('%Y-%m-%dT%H:%M:%fZ','now') AS t")["t"]
        self.db["media"].update(media_id, update)

    # ---- stage results --------------------------------------------------------
    def save_probe(self, media_id: int, probe: dict, next_stages: Iterable[str]) -> None:
        with self.transaction():
            self.db["media"].update(media_id, {
                "duration": probe["duration"], "container": probe["container"],
                "streams": json.dumps(probe["streams"]), "kind": probe["kind"]})
            for stage in next_stages:
                self._queue(media_id, stage)

    def save_transcript(self, media_id: int, language: str | None,
                        segments: list[dict]) -> None:
        """Replace the media's transcript. Each segment dict carries its words."""
        with self.transaction():
            self.db.execute("DELETE FROM segments WHERE media_id = ?", (media_id,))
            self.db["media"].update(media_id, {"language": language})
            for seg in segments:
                seg_id = self.db["segments"].insert({
                    "media_id": media_id, "start": seg["start"], "end": seg["end"],
                    "text": seg["text"], "language": seg.get("language") or language,
                    "confidence": seg.get("confidence")}).last_pk
                self.db["words"].insert_all(
                    ({"segment_id": seg_id, "start": w["start"], "end": w["end"],
                      "word": w["word"], "probability": w.get("probability")}
                     for w in seg.get("words", ())), batch_size=500)
            self._apply_corrections(media_id)

    def _apply_corrections(self, media_id: int) -> None:
        self.db.execute("""
            UPDATE segments SET text = c.text FROM corrections c
            WHERE segments.media_id = ? AND c.media_id = segments.media_id
              AND abs(c.start - segments.start) < 0.05""", (media_id,))

    def correct_segment(self, segment_id: int, text: str) -> None:
        """A user's edit: it wins over the ASR text in search and export, and is
        re-applied when the file is transcribed again."""
        with self.transaction():
            seg = self._one("SELECT * FROM segments WHERE id = ?", (segment_id,))
            if seg is None:
                raise KeyError(f"no segment {segment_id}")
            original = self._one("SELECT original FROM corrections WHERE media_id=? AND "
                                 "abs(start - ?) < 0.05", (seg["media_id"], seg["start"]))
            self.db.execute("DELETE FROM corrections WHERE media_id=? AND abs(start - ?) < 0.05",
                            (seg["media_id"], seg["start"]))
            self.db["corrections"].insert({
                "media_id": seg["media_id"], "start": seg["start"], "end": seg["end"],
                "original": original["original"] if original else seg["text"], "text": text})
            self.db.execute("UPDATE segments SET text = ? WHERE id = ?", (text, segment_id))

    def save_visual(self, media_id: int, keyframes: list[dict], tags: list[dict],
                    screen_text: list[dict], features, replace_sources=("imagenet",)) -> None:
        """Replace a media's keyframes (and their vectors), its tags of the given
        sources and its screen text. Tags of other sources (user, action, ...) stay.

        keyframes: time, shot, thumbnail, kind (keyframe_vec metadata); features: one
        1280-d vector per keyframe, or None; tags: start, end, label, source, score;
        screen_text: start, end, text, confidence.
        """
        features = list(features) if features is not None else []
        if features and len(features) != len(keyframes):
            raise ValueError(f"{len(features)} features for {len(keyframes)} keyframes")
        db = self.db
        with self.transaction():
            # the keyframes_vec_ad trigger removes the old vectors with their keyframes
            db.execute("DELETE FROM keyframes WHERE media_id = ?", (media_id,))
            sources = sorted({t["source"] for t in tags} | set(replace_sources))
            db.execute(f"DELETE FROM tags WHERE media_id = ? AND source IN "
                       f"({','.join('?' * len(sources))})", (media_id, *sources))
            db.execute("DELETE FROM screen_text WHERE media_id = ?", (media_id,))
            for i, kf in enumerate(keyframes):
                cur = db.execute("INSERT INTO keyframes(media_id, time, shot, thumbnail) "
                                 "VALUES (?, ?, ?, ?)", (media_id, float(kf["time"]),
                                                         kf.get("shot"), kf.get("thumbnail")))
                vec = features[i] if features else None
                if vec is not None:
                    db.execute("INSERT INTO keyframe_vec(keyframe_id, embedding, media_id, kind) "
                               "VALUES (?, vec_int8(?), ?, ?)", (cur.lastrowid, int8_blob(vec), media_id,
                                                       kf.get("kind", "video")))
            db["tags"].insert_all(({"media_id": media_id, "start": float(t["start"]),
                                    "end": float(t["end"]), "label": t["label"],
                                    "source": t["source"], "score": t.get("score")}
                                   for t in tags), batch_size=500)
            db["screen_text"].insert_all(({"media_id": media_id, "start": float(s["start"]),
                                           "end": float(s["end"]), "text": s["text"],
                                           "confidence": s.get("confidence")}
                                          for s in screen_text), batch_size=500)

    # ---- reads ---------------------------------------------------------------
    def transcript(self, media_id: int) -> list[dict]:
        """Segments (user corrections applied) with their words."""
        segs = self._rows("""
            SELECT s.id, s.start, s.end, s.language, s.confidence, s.text,
                   c.id IS NOT NULL AS corrected
            FROM segments s LEFT JOIN corrections c
              ON c.media_id = s.media_id AND abs(c.start - s.start) < 0.05
            WHERE s.media_id = ? ORDER BY s.start""", (media_id,))
        words: dict[int, list[dict]] = {}
        for w in self._rows("""SELECT w.segment_id, w.start, w.end, w.word, w.probability
                               FROM words w JOIN segments s ON s.id = w.segment_id
                               WHERE s.media_id = ? ORDER BY w.start""", (media_id,)):
            words.setdefault(w.pop("segment_id"), []).append(w)
        for s in segs:
            # Word timings of a corrected line no longer match its text.
            s["words"] = [] if s["corrected"] else words.get(s["id"], [])
        return segs

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
