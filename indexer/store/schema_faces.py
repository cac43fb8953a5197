"""Schema for who appears (migration 0011_faces, listed in
indexer.store.migrations.MIGRATIONS).

- `people`: a person across the library. `name` is NULL until a user names them (unique,
  case-insensitive); `hidden` keeps them out of lists and search while their new faces
  still join them (so hiding holds). `centroid` is the mean 128-d descriptor (float32,
  models.faces) of the `faces` appearances it was made from; `stale` says appearances went
  since, so it is recomputed before the next file's faces are matched. A person left with
  no appearance is deleted unless named or hidden (their centroid keeps recognising them).
- `face_appearances`: one row per appearance: a face tracked within a shot, from `start`
  to `end`, with the moment of its best sighting (`time`, its box as fractions of the
  frame, the detector's `score`) and that face's aligned crop (`thumbnail`, relative to the
  thumbnail folder). `by_user` marks a row a user moved (merge, split, move).
- `face_vec`: each appearance's descriptor (vec0, L2 distance as dlib defines it).
"""
from __future__ import annotations

FACE_DIM = 128               # models.faces.EMBED_DIM: dlib's descriptor

_TABLES = f"""
CREATE TABLE people (
    id INTEGER PRIMARY KEY,
    name TEXT UNIQUE COLLATE NOCASE,
    hidden INTEGER NOT NULL DEFAULT 0,
    centroid BLOB NOT NULL,
    faces INTEGER NOT NULL DEFAULT 1,
    stale INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    named_at TEXT
);
CREATE TABLE face_appearances (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    person_id INTEGER REFERENCES people(id) ON DELETE SET NULL,
    start REAL NOT NULL,
    end REAL NOT NULL,
    time REAL NOT NULL,
    x REAL NOT NULL,
    y REAL NOT NULL,
    w REAL NOT NULL,
    h REAL NOT NULL,
    score REAL NOT NULL,
    sightings INTEGER NOT NULL DEFAULT 1,
    thumbnail TEXT,
    by_user INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX face_appearances_media ON face_appearances(media_id, start);
CREATE INDEX face_appearances_person ON face_appearances(person_id);
CREATE VIRTUAL TABLE face_vec USING vec0(
    appearance_id INTEGER PRIMARY KEY,
    embedding float[{FACE_DIM}],
    media_id INTEGER
);
CREATE TRIGGER face_appearances_vec_ad AFTER DELETE ON face_appearances BEGIN
    DELETE FROM face_vec WHERE appearance_id = old.id;
END;
CREATE TRIGGER face_appearances_person_ad AFTER DELETE ON face_appearances
WHEN old.person_id IS NOT NULL BEGIN
    UPDATE people SET stale = 1 WHERE id = old.person_id;
    DELETE FROM people WHERE id = old.person_id AND name IS NULL AND hidden = 0
      AND NOT EXISTS (SELECT 1 FROM face_appearances WHERE person_id = old.person_id);
END;
CREATE TRIGGER face_appearances_person_au AFTER UPDATE OF person_id ON face_appearances
WHEN old.person_id IS NOT NULL AND old.person_id IS NOT new.person_id BEGIN
    UPDATE people SET stale = 1 WHERE id = old.person_id;
    DELETE FROM people WHERE id = old.person_id AND name IS NULL AND hidden = 0
      AND NOT EXISTS (SELECT 1 FROM face_appearances WHERE person_id = old.person_id);
END;
"""

MIGRATIONS: list[tuple[str, str]] = [("0011_faces", _TABLES)]
