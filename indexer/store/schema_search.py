"""Schema for the search service's binary codes (indexer.search.code_index), as named migrations.

Listed in `indexer.store.migrations.MIGRATIONS`, so every Store opens with them applied.

What is here:
- `segment_code` / `keyframe_code`: vec0 `bit[N]` tables of learned binary codes, keyed
  like `segment_vec` / `keyframe_vec`, with the same metadata columns, so a Hamming KNN
  filters inside the scan.
- `segment_rr` / `keyframe_rr`: int8 copies of the vectors (4-byte float32 scale + one
  signed byte per dimension) used to re-rank the Hamming candidates. vec0 reads a whole
  chunk (1024 vectors, 2 MiB at 512-d float) to return one vector by id, so re-ranking 300
  candidates from `segment_vec` itself took ~370 ms; from this plain table, 3 ms.
- `search_codec`: the fitted coder of each space (models.binary_codes.BinaryCoder blob).
- `search_dirty`: media whose vectors changed since they were last encoded (triggers;
  vec0 tables cannot carry triggers, so the owners' tables are watched instead).
- `search_changes`: an append-only log of code rows put and deleted, so a process that
  holds the codes in memory catches up without reloading a million rows.
"""
from __future__ import annotations

SEGMENT_CODE_BITS = 256
KEYFRAME_CODE_BITS = 256

_TABLES = f"""
CREATE TABLE search_codec (
    space TEXT PRIMARY KEY,               -- 'segment' or 'keyframe'
    family TEXT NOT NULL,                 -- itq, pca-var
    n_bits INTEGER NOT NULL,
    n_fit INTEGER NOT NULL,               -- vectors in the library when it was fitted
    fitted_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    model BLOB NOT NULL
);
CREATE TABLE search_dirty (
    space TEXT NOT NULL,
    media_id INTEGER NOT NULL,
    PRIMARY KEY (space, media_id)
) WITHOUT ROWID;
CREATE TABLE search_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    space TEXT NOT NULL,
    item_id INTEGER NOT NULL,
    op TEXT NOT NULL                      -- put, del, reset
);
CREATE VIRTUAL TABLE segment_code USING vec0(
    segment_id INTEGER PRIMARY KEY,
    code bit[{SEGMENT_CODE_BITS}],
    media_id INTEGER,
    kind TEXT,
    language TEXT
);
CREATE TABLE segment_rr (
    segment_id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL,
    v BLOB NOT NULL
);
CREATE INDEX segment_rr_media ON segment_rr(media_id);
CREATE VIRTUAL TABLE keyframe_code USING vec0(
    keyframe_id INTEGER PRIMARY KEY,
    code bit[{KEYFRAME_CODE_BITS}],
    media_id INTEGER,
    kind TEXT
);
CREATE TABLE keyframe_rr (
    keyframe_id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL,
    v BLOB NOT NULL
);
CREATE INDEX keyframe_rr_media ON keyframe_rr(media_id);
"""

_TRIGGERS = """
CREATE TRIGGER search_segments_ai AFTER INSERT ON segments BEGIN
    INSERT OR IGNORE INTO search_dirty(space, media_id) VALUES ('segment', new.media_id);
END;
CREATE TRIGGER search_segments_au AFTER UPDATE OF text ON segments BEGIN
    INSERT OR IGNORE INTO search_dirty(space, media_id) VALUES ('segment', new.media_id);
END;
CREATE TRIGGER search_keywords_ai AFTER INSERT ON keywords BEGIN
    INSERT OR IGNORE INTO search_dirty(space, media_id) VALUES ('segment', new.media_id);
END;
CREATE TRIGGER search_keywords_ad AFTER DELETE ON keywords BEGIN
    INSERT OR IGNORE INTO search_dirty(space, media_id) VALUES ('segment', old.media_id);
END;
CREATE TRIGGER search_keyframes_ai AFTER INSERT ON keyframes BEGIN
    INSERT OR IGNORE INTO search_dirty(space, media_id) VALUES ('keyframe', new.media_id);
END;
CREATE TRIGGER search_segments_ad AFTER DELETE ON segments
WHEN EXISTS (SELECT 1 FROM segment_rr WHERE segment_id = old.id) BEGIN
    DELETE FROM segment_code WHERE segment_id = old.id;
    DELETE FROM segment_rr WHERE segment_id = old.id;
    INSERT INTO search_changes(space, item_id, op) VALUES ('segment', old.id, 'del');
END;
CREATE TRIGGER search_keyframes_ad AFTER DELETE ON keyframes
WHEN EXISTS (SELECT 1 FROM keyframe_rr WHERE keyframe_id = old.id) BEGIN
    DELETE FROM keyframe_code WHERE keyframe_id = old.id;
    DELETE FROM keyframe_rr WHERE keyframe_id = old.id;
    INSERT INTO search_changes(space, item_id, op) VALUES ('keyframe', old.id, 'del');
END;
"""

MIGRATIONS: list[tuple[str, str]] = [
    ("0005_search_codes", _TABLES + _TRIGGERS),
]

