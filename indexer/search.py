"""Search over the library. Full-text (FTS5, bm25, highlighted snippets) over what
was said, shown and tagged."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from .store import Store

MARK_OPEN, MARK_CLOSE = "[", "]"

# (FTS table, content table, text column, match kind)
_SOURCES = (
    ("segments_fts", "segments", "text", "said"),
    ("screen_text_fts", "screen_text", "text", "shown"),
    ("tags_fts", "tags", "label", "tag"),
    ("keywords_fts", "keywords", "keyword", "said"),
)


@dataclass
class Hit:
    media_id: int
    path: str
    start: float
    end: float
    kind: str            # said, shown, tag, similar
    snippet: str
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


_TOKEN = re.compile(r'"[^"]*"|\S+')


def fts_query(text: str) -> str | None:
    """User text -> a safe FTS5 query. "Quoted phrases" stay phrases, a trailing *
    makes a prefix query, everything else is a literal token (ANDed)."""
    parts = []
    for tok in _TOKEN.findall(text.strip()):
        if tok.startswith('"') and tok.endswith('"') and len(tok) > 1:
            words = re.findall(r"\w+", tok[1:-1])
            if words:
                parts.append('"' + " ".join(words) + '"')
            continue
        prefix = tok.endswith("*")
        for word in re.findall(r"\w+", tok):
            parts.append(f'"{word}"')
        if prefix and parts:
            parts[-1] += "*"
    return " ".join(parts) or None


def search_text(store: Store, query: str, limit: int = 20) -> list[Hit]:
    q = fts_query(query)
    if q is None:
        return []
    hits: list[Hit] = []
    for fts, table, col, kind in _SOURCES:
        # Whole-file keywords have no time range: they point at the start.
        sql = f"""
            SELECT t.media_id, m.path, coalesce(t.start, 0) AS start,
                   coalesce(t.end, t.start, 0) AS end, bm25({fts}) AS score,
                   snippet({fts}, 0, '{MARK_OPEN}', '{MARK_CLOSE}', '…', 12) AS snippet
            FROM {fts} JOIN {table} t ON t.id = {fts}.rowid JOIN media m ON m.id = t.media_id
            WHERE {fts} MATCH ? ORDER BY bm25({fts}) LIMIT ?"""
        for row in store.db.execute(sql, (q, limit)).fetchall():
            media_id, path, start, end, score, snippet = row
            hits.append(Hit(media_id, path, float(start), float(end), kind, snippet, -score))
    hits.sort(key=lambda h: -h.score)
    return hits[:limit]
