"""The Store's job queue (mixed into indexer.store.Store): one job per media and stage,
claimed by the worker, and the media's status that follows from its jobs."""
from __future__ import annotations

from typing import Iterable

FINAL_STATES = ("done", "failed", "cancelled")


class JobsMixin:
    def _queue(self, media_id: int, stage: str) -> None:
        self.db.execute("""
            INSERT INTO jobs(media_id, stage, state) VALUES (?, ?, 'queued')
            ON CONFLICT(media_id, stage) DO UPDATE SET state='queued', error=NULL,
                attempts=0, started_at=NULL, finished_at=NULL, resume_at=NULL""",
                        (media_id, stage))
        self._refresh_status(media_id)

    def queue_stage(self, media_id: int, stage: str) -> None:
        with self.transaction():
            self._queue(media_id, stage)

    def rerun_finished(self, media_id: int, stages: Iterable[str]) -> list[str]:
        """Queue again those of `stages` that already ended for the file (done, failed
        or cancelled), in one transaction; a queued or running one will read the new
        input anyway. Returns the stages queued."""
        wanted = list(stages)
        with self.transaction():
            ended = {r["stage"] for r in self._rows(
                f"SELECT stage FROM jobs WHERE media_id = ? AND stage IN "
                f"({','.join('?' * len(wanted))}) AND state IN ('done','failed','cancelled')",
                (media_id, *wanted))} if wanted else set()
            queued = [st for st in wanted if st in ended]
            for st in queued:
                self._queue(media_id, st)
        return queued

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

    def claim_next_job(self, *, only: Iterable[str] | None = None,
                       skip: Iterable[str] = ()) -> dict | None:
        """Atomically move the oldest queued job to running (probe jobs first); `only`
        those stages' jobs, or none of `skip`'s (the cluster runner keeps its workers
        and its local worker busy side by side)."""
        where, params = ["state='queued'"], []
        for stages, op in ((only, "IN"), (skip, "NOT IN")):
            if stages is not None and (stages := list(stages)):
                where.append(f"stage {op} ({','.join('?' * len(stages))})")
                params += stages
            elif stages is not None and op == "IN":
                return None
        with self.transaction():
            job = self._one(f"""SELECT id FROM jobs WHERE {' AND '.join(where)}
                               ORDER BY (stage != 'probe'), id LIMIT 1""", params)
            if job is None:
                return None
            self.db.execute("""UPDATE jobs SET state='running', attempts=attempts+1,
                    started_at=strftime('%Y-%m-%dT%H:%M:%fZ','now'), finished_at=NULL,
                    error=NULL WHERE id=?""", (job["id"],))
            claimed = self.job(job["id"])
            self._refresh_status(claimed["media_id"])
        return claimed

    def finish_job(self, job_id: int, state: str, error: str | None = None,
                   note: str | None = None) -> None:
        """`error`: why it failed; `note`: what a person should know of a job done (a
        subtitle file that could not be read, speech recognition skipped)."""
        assert state in FINAL_STATES or state == "queued", state
        with self.transaction():
            # a job that ends keeps no resume point; one queued again after a crash does
            self.db.execute(f"""UPDATE jobs SET state=?, error=?, note=?,
                    finished_at=strftime('%Y-%m-%dT%H:%M:%fZ','now')
                    {", resume_at=NULL" if state in FINAL_STATES else ""} WHERE id=?""",
                            (state, error, note, job_id))
            job = self._one("SELECT media_id FROM jobs WHERE id=?", (job_id,))
            if job:
                self._refresh_status(job["media_id"])

    def set_resume_point(self, job_id: int, seconds: float) -> None:
        """The job has committed its rows up to `seconds` of the file (call inside the
        transaction that commits them)."""
        self.db.execute("UPDATE jobs SET resume_at=? WHERE id=?", (seconds, job_id))

    def requeue_interrupted(self, job_id: int) -> None:
        """A job stopped by its runner (Ctrl-C, the GUI closing), not by the user's cancel:
        queued again, keeping what it committed (its resume point); the stop does not
        count as an attempt."""
        with self.transaction():
            self.db.execute("UPDATE jobs SET state='queued', started_at=NULL, "
                            "attempts=max(attempts - 1, 0) WHERE id=?", (job_id,))
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
