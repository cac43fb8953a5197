"""The library schema as ordered, named migrations.

Each migration is (name, SQL) or (name, function of the connection) for data
migrations. The applied ones are recorded in the `migrations` table; never edit
one that has shipped, append a new one.
"""
from __future__ import annotations

SEGMENT_DIM = 512     # multilingual Universal Sentence Encoder v3
KEYFRAME_DIM = 1280   # EfficientNet-Lite0 pooled features

_CORE = """
CREATE TABLE media (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    fingerprint TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    mtime_ns INTEGER NOT NULL DEFAULT 0,
    duration REAL,
    container TEXT,
    streams TEXT,                     -- JSON list of stream descriptions
    kind TEXT,                        -- audio, video, audio+video
    language TEXT,
    status TEXT NOT NULL DEFAULT 'queued',  -- queued, indexing, done, failed, cancelled
    error TEXT,
    added_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    indexed_at TEXT
);
CREATE INDEX media_fingerprint ON media(fingerprint);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued','running','done','failed','cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    started_at TEXT,
    finished_at TEXT,
    UNIQUE (media_id, stage)
);
CREATE INDEX jobs_state ON jobs(state);

CREATE TABLE segments (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    start REAL NOT NULL,
    end REAL NOT NULL,
    text TEXT NOT NULL,
    language TEXT,
    confidence REAL
);
CREATE INDEX segments_media ON segments(media_id, start);

CREATE TABLE words (
    id INTEGER PRIMARY KEY,
    segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    start REAL NOT NULL,
    end REAL NOT NULL,
    word TEXT NOT NULL,
    probability REAL
);
CREATE INDEX words_segment ON words(segment_id, start);

CREATE TABLE keywords (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    start REAL,                       -- NULL for a whole-file keyword
    end REAL,
    keyword TEXT NOT NULL,
    score REAL
);
CREATE INDEX keywords_media ON keywords(media_id);

CREATE TABLE keyframes (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    time REAL NOT NULL,
    shot INTEGER,
    thumbnail TEXT                    -- path of a cached JPEG, relative to the thumbnail dir
);
CREATE INDEX keyframes_media ON keyframes(media_id, time);

CREATE TABLE tags (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    start REAL NOT NULL,
    end REAL NOT NULL,
    label TEXT NOT NULL,
    source TEXT NOT NULL,             -- imagenet, action, motion-group, user
    score REAL
);
CREATE INDEX tags_media ON tags(media_id, start);
CREATE INDEX tags_label ON tags(label);

CREATE TABLE screen_text (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    start REAL NOT NULL,
    end REAL NOT NULL,
    text TEXT NOT NULL,
    confidence REAL
);
CREATE INDEX screen_text_media ON screen_text(media_id, start);
"""


# The tables with an FTS5 index ("<table>_fts") over one text column
FULLTEXT_TABLES = (("segments", "text"), ("keywords", "keyword"), ("tags", "label"),
                   ("screen_text", "text"))


def fts_triggers(table: str, column: str, function: str | None = None) -> list[str]:
    """The triggers keeping table_fts in step with table.column, the column's value passed
    through an SQL `function` first when given (migration 0013: schema_fulltext)."""
    fts = f"{table}_fts"

    def value(row: str) -> str:
        return f"{function}({row}.{column})" if function else f"{row}.{column}"
    return [
        f"""CREATE TRIGGER {table}_ai AFTER INSERT ON {table} BEGIN
    INSERT INTO {fts}(rowid, {column}) VALUES (new.id, {value("new")});
END""",
        f"""CREATE TRIGGER {table}_ad AFTER DELETE ON {table} BEGIN
    INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.id, {value("old")});
END""",
        f"""CREATE TRIGGER {table}_au AFTER UPDATE OF {column} ON {table} BEGIN
    INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.id, {value("old")});
    INSERT INTO {fts}(rowid, {column}) VALUES (new.id, {value("new")});
END"""]


_TRIGGERS_JOIN = ";\n"     # the migration splits a script line by line (migrations._statements)


def _fts(table: str, column: str) -> str:
    """An external-content FTS5 index over table.column, kept in step by triggers."""
    fts = f"{table}_fts"
    return f"""
CREATE VIRTUAL TABLE {fts} USING fts5(
    {column}, content='{table}', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
{_TRIGGERS_JOIN.join(fts_triggers(table, column))};
INSERT INTO {fts}({fts}) VALUES ('rebuild');
"""


_FTS = "".join(_fts(table, column) for table, column in FULLTEXT_TABLES)

# Metadata columns (media_id, kind, language) are filtered inside the KNN, so a
# filtered query still returns k rows whenever k matching rows exist.
_VECTORS = f"""
CREATE VIRTUAL TABLE segment_vec USING vec0(
    segment_id INTEGER PRIMARY KEY,
    embedding float[{SEGMENT_DIM}] distance_metric=cosine,
    media_id INTEGER,
    kind TEXT,
    language TEXT
);
CREATE VIRTUAL TABLE keyframe_vec USING vec0(
    keyframe_id INTEGER PRIMARY KEY,
    embedding float[{KEYFRAME_DIM}] distance_metric=cosine,
    media_id INTEGER,
    kind TEXT
);
"""

# vec0 rows have no foreign keys; these triggers drop them with their owners.
_VECTOR_CLEANUP = """
CREATE TRIGGER segments_vec_ad AFTER DELETE ON segments BEGIN
    DELETE FROM segment_vec WHERE segment_id = old.id;
END;
CREATE TRIGGER keyframes_vec_ad AFTER DELETE ON keyframes BEGIN
    DELETE FROM keyframe_vec WHERE keyframe_id = old.id;
END;
"""

# A user's edit of a transcript line wins over the ASR text and survives
# re-indexing, so it is keyed by media and time, not by segment id.
_CORRECTIONS = """
CREATE TABLE corrections (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    start REAL NOT NULL,
    end REAL NOT NULL,
    original TEXT NOT NULL,
    text TEXT NOT NULL,
    edited_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    UNIQUE (media_id, start)
);
"""

MIGRATIONS: list[tuple[str, str]] = [     # the rest: indexer.store.migrations.MIGRATIONS
    ("0001_core_tables", _CORE),
    ("0002_fulltext", _FTS),
    ("0003_vectors", _VECTORS + _VECTOR_CLEANUP),
    ("0004_corrections", _CORRECTIONS),
]
