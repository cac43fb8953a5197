"""Schema for jobs that commit as they go (migration 0012, listed in
indexer.store.migrations.MIGRATIONS).

- `jobs.resume_at`: how far (in seconds of the file) a running job has committed its
  rows: the speech stage commits a long file window by window, so its first words are
  searchable within seconds and a crash or kill resumes from the last committed window.
  NULL while nothing is committed; queueing a job afresh, and a job that ends, clear it.
"""
from __future__ import annotations

_RESUME = """
ALTER TABLE jobs ADD COLUMN resume_at REAL;
"""

MIGRATIONS: list[tuple[str, str]] = [("0012_job_resume", _RESUME)]
