"""Full text for scripts written without spaces (migration 0013, listed in
indexer.store.migrations.MIGRATIONS).

The four full-text tables (segments, keywords, tags, screen_text) are external-content
FTS5 indexes kept in step by triggers. From here on the triggers index
`avindex_fts_text(column)`: the text with each letter of a script written without spaces
(Chinese, Japanese, Thai, Lao, Burmese, Khmer) spaced out (indexer.unspaced_text), the
same text as before for every other script. Rows already holding
such characters are indexed again that way; nothing else changes. The function is
registered on every connection the library opens (indexer.store.connection)."""
from __future__ import annotations

from indexer.unspaced_text import FTS_TEXT_FUNCTION, has_unspaced, spaced

FULLTEXT_TABLES = (("segments", "text"), ("keywords", "keyword"), ("tags", "label"),
                   ("screen_text", "text"))


def _triggers(table: str, column: str) -> list[str]:
    fts, f = f"{table}_fts", FTS_TEXT_FUNCTION
    return [
        f"DROP TRIGGER IF EXISTS {table}_ai",
        f"DROP TRIGGER IF EXISTS {table}_ad",
        f"DROP TRIGGER IF EXISTS {table}_au",
        f"""CREATE TRIGGER {table}_ai AFTER INSERT ON {table} BEGIN
            INSERT INTO {fts}(rowid, {column}) VALUES (new.id, {f}(new.{column}));
        END""",
        f"""CREATE TRIGGER {table}_ad AFTER DELETE ON {table} BEGIN
            INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.id, {f}(old.{column}));
        END""",
        f"""CREATE TRIGGER {table}_au AFTER UPDATE OF {column} ON {table} BEGIN
            INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.id, {f}(old.{column}));
            INSERT INTO {fts}(rowid, {column}) VALUES (new.id, {f}(new.{column}));
        END""",
    ]


def spaced_fulltext(conn) -> None:
    """The triggers above, and the rows holding such letters indexed again spaced."""
    for table, column in FULLTEXT_TABLES:
        for stmt in _triggers(table, column):
            conn.execute(stmt)
        fts = f"{table}_fts"
        rows = [(rid, text) for rid, text in conn.execute(f"SELECT id, {column} FROM {table}")
                if isinstance(text, str) and has_unspaced(text)]
        for rid, text in rows:
            conn.execute(f"INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', ?, ?)",
                         (rid, text))
            conn.execute(f"INSERT INTO {fts}(rowid, {column}) VALUES (?, ?)", (rid, spaced(text)))


MIGRATIONS: list[tuple[str, object]] = [("0013_fulltext_unspaced", spaced_fulltext)]
