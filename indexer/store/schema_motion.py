"""Schema for motion: encoders, per-window clip descriptors, action-tag models and motion
groups (migration 0006_motion, listed in indexer.store.migrations.MIGRATIONS).

- `motion_encoders`: every encoder this library has used, as a blob (models.motion.encoder
  to_bytes), with a version number; version 0 is the shipped default; exactly one row is
  `current`. Kept in the library so it travels with it and two libraries never clash.
- `motion_windows`: one row per time window of a video (media, start, end), with the
  version of the encoder that described it and its motion group of the last clustering.
- `motion_vec`: the descriptors (vec0, cosine), keyed by window, with media_id and
  encoder_version as metadata so a KNN filters inside the scan.
- `tag_models`: one trained tag per label (source 'action' from examples, 'motion-group'
  from a named group): the classifier blob, its threshold, cross-validated accuracy, the
  encoder version it was trained on and its examples (to retrain after a new encoder).
- `motion_groups`: the groups of the last clustering, with the label a user gave them.
Tag rows themselves go in the existing `tags` table (FTS and tag filters find them).
"""
from __future__ import annotations

from models.motion.layout import DESCRIPTOR_DIM

_TABLES = f"""
CREATE TABLE motion_encoders (
    version INTEGER PRIMARY KEY,          -- 0: shipped default; 1, 2, ...: trained here
    kind TEXT NOT NULL,                   -- isa, conv3d
    fingerprint TEXT NOT NULL,
    model BLOB NOT NULL,
    report TEXT,                          -- JSON: objectives, seconds, memory, sample
    current INTEGER NOT NULL DEFAULT 0,
    trained_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE motion_windows (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    start REAL NOT NULL,
    end REAL NOT NULL,
    encoder_version INTEGER NOT NULL,
    group_id INTEGER
);
CREATE INDEX motion_windows_media ON motion_windows(media_id, start);
CREATE INDEX motion_windows_version ON motion_windows(encoder_version);
CREATE VIRTUAL TABLE motion_vec USING vec0(
    window_id INTEGER PRIMARY KEY,
    descriptor float[{DESCRIPTOR_DIM}] distance_metric=cosine,
    media_id INTEGER,
    encoder_version INTEGER
);
CREATE TRIGGER motion_windows_vec_ad AFTER DELETE ON motion_windows BEGIN
    DELETE FROM motion_vec WHERE window_id = old.id;
END;
CREATE TABLE tag_models (
    label TEXT PRIMARY KEY COLLATE NOCASE,
    source TEXT NOT NULL,                 -- action, motion-group
    encoder_version INTEGER NOT NULL,
    threshold REAL NOT NULL,
    cv_accuracy REAL,
    folds INTEGER,
    n_pos INTEGER,
    n_neg INTEGER,
    examples TEXT NOT NULL,               -- JSON: [[media_id, start, end, positive], ...]
    model BLOB NOT NULL,
    trained_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE motion_groups (
    id INTEGER PRIMARY KEY,
    encoder_version INTEGER NOT NULL,
    size INTEGER NOT NULL,
    examples TEXT,                        -- JSON: ids of the windows nearest its centre
    label TEXT,
    made_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
"""

MIGRATIONS: list[tuple[str, str]] = [("0006_motion", _TABLES)]
