"""The Store's media registry (mixed into indexer.store.Store): one row per file, and
what happens to it when it is added, moved, changed, found missing or removed; and the
folders the library watches."""
from __future__ import annotations

from typing import Iterable


class MediaMixin:
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
        self.db["media"].update(media_id, {"path": path, "size": size, "mtime_ns": mtime_ns,
                                           "missing_since": None})

    def touch(self, media_id: int, size: int, mtime_ns: int) -> None:
        self.db["media"].update(media_id, {"size": size, "mtime_ns": mtime_ns,
                                           "missing_since": None})

    def reset_media(self, media_id: int, fp: str | None, size: int, mtime_ns: int,
                    *, derived: Iterable[str], error: str | None = None) -> None:
        """The file's content changed: drop what was derived from it (the `derived` tables:
        what the stages declare, indexer.stages.DERIVED_TABLES) and start over.
        User corrections are kept (they are keyed by time, not by segment)."""
        with self.transaction():
            for table in derived:
                self.db.execute(f"DELETE FROM {table} WHERE media_id = ?", (media_id,))
            self.db.execute("DELETE FROM jobs WHERE media_id = ?", (media_id,))
            self.db["media"].update(media_id, {
                "fingerprint": fp, "size": size, "mtime_ns": mtime_ns, "duration": None,
                "container": None, "streams": None, "kind": None, "language": None,
                "status": "queued", "error": None, "indexed_at": None, "missing_since": None})
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

    def media_count(self) -> int:
        return self._one("SELECT count(*) AS n FROM media")["n"]

    def delete_media(self, media_ids: Iterable[int]) -> int:
        ids = list(media_ids)
        with self.transaction():
            for mid in ids:
                self.db.execute("DELETE FROM media WHERE id = ?", (mid,))
        return len(ids)

    # ---- missing files (media.missing_since) -------------------------------------------
    def media_under(self, folder: str) -> list[dict]:
        """Media whose path lies inside `folder` (an absolute path), at any depth."""
        base = folder.rstrip("/") + "/"
        # `/` + 1 is `0`: the range [base, base-with-0) is exactly the paths under it
        return self._rows("SELECT * FROM media WHERE path >= ? AND path < ? ORDER BY path",
                          (base, base[:-1] + "0"))

    def mark_missing(self, media_ids: Iterable[int]) -> int:
        """The files are gone from their paths: keep everything, note since when.
        Files already marked keep their first date; returns how many were marked now."""
        ids = list(media_ids)
        with self.transaction():
            n = 0
            for mid in ids:
                n += self.db.execute(
                    "UPDATE media SET missing_since = strftime('%Y-%m-%dT%H:%M:%fZ','now') "
                    "WHERE id = ? AND missing_since IS NULL", (mid,)).rowcount
        return n

    def clear_missing(self, media_id: int) -> None:
        self.db.execute("UPDATE media SET missing_since = NULL WHERE id = ?", (media_id,))

    def marked_missing(self) -> list[dict]:
        return self._rows("SELECT * FROM media WHERE missing_since IS NOT NULL ORDER BY path")

    def file_list(self) -> list[dict]:
        """Every file with what `avindex list` shows: its stages done (comma-separated, in
        the order they finished), the first failed job's stage and error, missing_since,
        and the notes its done jobs left ("stage: note" lines)."""
        return self._rows("""
            SELECT m.id, m.path, m.duration, m.language, m.kind, m.status, m.missing_since,
                   m.added_at, m.indexed_at,
                   (SELECT group_concat(stage) FROM
                       (SELECT j.stage FROM jobs j WHERE j.media_id = m.id AND j.state = 'done'
                        ORDER BY j.finished_at, j.id)) AS stages_done,
                   f.stage AS failed_stage, coalesce(f.error, m.error) AS error,
                   (SELECT group_concat(j.stage || ': ' || j.note, char(10)) FROM jobs j
                    WHERE j.media_id = m.id AND j.note IS NOT NULL) AS notes
            FROM media m
            LEFT JOIN jobs f ON f.id = (SELECT j.id FROM jobs j WHERE j.media_id = m.id
                                        AND j.state = 'failed' ORDER BY j.id LIMIT 1)
            ORDER BY m.path""")

    # ---- watched folders -----------------------------------------------------------------
    def watched_folders(self) -> list[dict]:
        return self._rows("SELECT path, polling, state, added_at FROM watched_folders "
                          "ORDER BY path")

    def watched_folder(self, path: str) -> dict | None:
        return self._one("SELECT path, polling, state, added_at FROM watched_folders "
                         "WHERE path = ?", (path,))

    def add_watched_folder(self, path: str, polling: bool = False) -> bool:
        """Watch `path` (an absolute, resolved folder); an already watched one takes the
        new `polling`. Returns whether it was new."""
        with self.transaction():
            known = self.watched_folder(path) is not None
            self.db.execute("""
                INSERT INTO watched_folders(path, polling) VALUES (?, ?)
                ON CONFLICT(path) DO UPDATE SET polling = excluded.polling""",
                            (path, int(bool(polling))))
        return not known

    def remove_watched_folder(self, path: str) -> bool:
        """Stop watching; the folder's files stay in the library."""
        return self.db.execute("DELETE FROM watched_folders WHERE path = ?",
                               (path,)).rowcount > 0

    def set_watched_folder_state(self, path: str, state: str) -> None:
        assert state in ("ok", "unavailable"), state
        self.db.execute("UPDATE watched_folders SET state = ? WHERE path = ?", (state, path))
