"""Schema for a library that keeps itself current (migrations 0008 and 0009, listed in
indexer.store.migrations.MIGRATIONS).

- `watched_folders`: the folders the library watches (the GUI while it is open,
  `avindex watch` headless). `polling` 1 uses watchdog's polling observer (network
  shares, where native events do not arrive); `state` is 'ok' or 'unavailable' (the
  folder itself is gone: an unplugged drive is not a mass deletion).
- `media.missing_since`: when the file was found gone from its path (NULL while it is
  there). Missing files keep everything until `prune` removes them.
- `segments.source`: where a line of said text came from: 'speech' (speech recognition)
  or 'subtitles' (a subtitle track the file carries or a sidecar file beside it);
  `segments.track` names that track (e.g. "embedded #2 (subrip, en)", "movie.en.srt"),
  NULL for speech.
- `jobs.note`: what a person should know of a job that was done (a stage's saver
  returns it: a malformed subtitle track skipped, speech recognition skipped because
  the subtitles cover the speech).
"""
from __future__ import annotations

_WATCH = """
CREATE TABLE watched_folders (
    path TEXT PRIMARY KEY,
    polling INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'ok',
    added_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
ALTER TABLE media ADD COLUMN missing_since TEXT;
"""

_SOURCES = """
ALTER TABLE segments ADD COLUMN source TEXT NOT NULL DEFAULT 'speech';
ALTER TABLE segments ADD COLUMN track TEXT;
CREATE INDEX segments_media_source ON segments(media_id, source);
ALTER TABLE jobs ADD COLUMN note TEXT;
"""

MIGRATIONS: list[tuple[str, str]] = [("0008_watched_folders", _WATCH),
                                     ("0009_sources_and_notes", _SOURCES)]
