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

from indexer.store.schema import FULLTEXT_TABLES, fts_triggers
from indexer.unspaced_text import FTS_TEXT_FUNCTION, has_unspaced, spaced


def spaced_fulltext(conn) -> None:
    """The triggers passing the text through FTS_TEXT_FUNCTION, and the rows holding such
    letters indexed again spaced."""
    for table, column in FULLTEXT_TABLES:
        for suffix in ("ai", "ad", "au"):
            conn.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix}")
        for stmt in fts_triggers(table, column, FTS_TEXT_FUNCTION):
            conn.execute(stmt)
        fts = f"{table}_fts"
        rows = [(rid, text) for rid, text in conn.execute(f"SELECT id, {column} FROM {table}")
                if isinstance(text, str) and has_unspaced(text)]
        for rid, text in rows:
            conn.execute(f"INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', ?, ?)",
                         (rid, text))
            conn.execute(f"INSERT INTO {fts}(rowid, {column}) VALUES (?, ?)", (rid, spaced(text)))


MIGRATIONS: list[tuple[str, object]] = [("0013_fulltext_unspaced", spaced_fulltext)]
