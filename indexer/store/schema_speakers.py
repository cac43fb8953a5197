"""Schema for who speaks (migration 0010_speakers, listed in
indexer.store.migrations.MIGRATIONS).

- `voices`: a person's voice across the library. `name` is NULL until a user names it
  (unique, case-insensitive). `centroid` is the mean of its file speakers' centroids
  (float32: 256-d by GE2E, models.speaker_encoder; 192-d by CAM++, models.campplus),
  kept when their files go, so a named voice is still recognised in new files; `encoder`
  says which encoder made it (a voice is matched only to speakers of the same encoder).
- `speakers`: one row per speaker of a file ("Speaker <label>", numbered in the order
  they first speak), with its centroid, its speech time and its voice. `matched` is the
  cosine at which it was matched to an existing voice (NULL: a new voice, or set by hand).
- `speaker_turns`: who speaks when; `embedding` is the turn's own mean embedding
  (float16, NULL for a turn too short to have one), used to split a speaker.
Deleting a file's speakers (a changed file, `prune`) drops their turns; a voice left
with no speaker is deleted unless it has a name.
"""
from __future__ import annotations

_TABLES = """
CREATE TABLE voices (
    id INTEGER PRIMARY KEY,
    name TEXT UNIQUE COLLATE NOCASE,
    centroid BLOB NOT NULL,
    encoder TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    named_at TEXT
);
CREATE TABLE speakers (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    label INTEGER NOT NULL,
    voice_id INTEGER REFERENCES voices(id) ON DELETE SET NULL,
    centroid BLOB NOT NULL,
    seconds REAL NOT NULL,
    windows INTEGER NOT NULL DEFAULT 0,
    matched REAL,
    UNIQUE (media_id, label)
);
CREATE INDEX speakers_voice ON speakers(voice_id);
CREATE TABLE speaker_turns (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    speaker_id INTEGER NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,
    start REAL NOT NULL,
    end REAL NOT NULL,
    embedding BLOB
);
CREATE INDEX speaker_turns_media ON speaker_turns(media_id, start);
CREATE INDEX speaker_turns_speaker ON speaker_turns(speaker_id);
CREATE TRIGGER speakers_unnamed_voice_ad AFTER DELETE ON speakers
WHEN old.voice_id IS NOT NULL BEGIN
    DELETE FROM voices WHERE id = old.voice_id AND name IS NULL
      AND NOT EXISTS (SELECT 1 FROM speakers WHERE voice_id = old.voice_id);
END;
CREATE TRIGGER speakers_unnamed_voice_au AFTER UPDATE OF voice_id ON speakers
WHEN old.voice_id IS NOT NULL AND old.voice_id IS NOT new.voice_id BEGIN
    DELETE FROM voices WHERE id = old.voice_id AND name IS NULL
      AND NOT EXISTS (SELECT 1 FROM speakers WHERE voice_id = old.voice_id);
END;
"""

MIGRATIONS: list[tuple[str, str]] = [("0010_speakers", _TABLES)]
