"""The Store's media registry (mixed into indexer.store.Store): one row per file, and
what happens to it when it is added, moved, changed or removed."""
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
        self.db["media"].update(media_id, {"path": path, "size": size, "mtime_ns": mtime_ns})

    def touch(self, media_id: int, size: int, mtime_ns: int) -> None:
        self.db["media"].update(media_id, {"size": size, "mtime_ns": mtime_ns})

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
