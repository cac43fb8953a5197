"""The reads the search service (indexer.search) runs: full-text lists, document
frequencies, vector KNN, transcript windows, word timings, keyframes and thumbnails.
Plain functions taking the Store; nothing here writes library data (the fts5vocab
tables are temp tables of this connection)."""
from __future__ import annotations

from typing import Sequence

from indexer.store import Store


def _marks(n: int) -> str:
    return ",".join("?" * n)


# ---- media ------------------------------------------------------------------------------
def media_ids_where(store: Store, conditions: Sequence[str], params: Sequence) -> list[int]:
    """Ids of the media rows (alias m) meeting every SQL condition."""
    sql = "SELECT m.id FROM media m" + (" WHERE " + " AND ".join(conditions)
                                        if conditions else "")
    return [r[0] for r in store.db.execute(sql, list(params)).fetchall()]


def media_paths_durations(store: Store, ids: Sequence[int]
                          ) -> dict[int, tuple[str, float | None]]:
    """media id -> (path, duration) of the media rows with these ids (those that exist)."""
    ids = list(set(ids))
    if not ids:
        return {}
    return {r[0]: (r[1], r[2]) for r in store.db.execute(
        f"SELECT id, path, duration FROM media WHERE id IN ({_marks(len(ids))})", ids)}


# ---- full text -----------------------------------------------------------------------------
def max_rowid(store: Store, table: str) -> int:
    """The largest rowid of a table (its row count when nothing was deleted), 0 if empty."""
    return store.db.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0


def fts_best(store: Store, fts: str, query: str, n: int) -> list[int]:
    """Rowids of the n best matches of an FTS5 table by bm25."""
    return [r[0] for r in store.db.execute(f"SELECT rowid FROM {fts} WHERE {fts} MATCH ? "
                                           "ORDER BY rank LIMIT ?", (query, n)).fetchall()]


def fts_newest(store: Store, fts: str, query: str, n: int) -> list[tuple[int, float]]:
    """(rowid, bm25 rank) of the n newest matches of an FTS5 table."""
    return store.db.execute(f"SELECT rowid, rank FROM {fts} WHERE {fts} MATCH ? "
                            "ORDER BY rowid DESC LIMIT ?", (query, n)).fetchall()


def spans(store: Store, table: str, ids: Sequence[int]) -> dict[int, tuple[int, float, float]]:
    """id -> (media_id, start, end) of rows of a content table (a NULL start reads 0, a
    NULL end its start)."""
    if not ids:
        return {}
    rows = store.db.execute(
        f"SELECT t.id, t.media_id, coalesce(t.start, 0), coalesce(t.end, t.start, 0) "
        f"FROM {table} t WHERE t.id IN ({_marks(len(ids))})", list(ids)).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def fts_filtered(store: Store, fts: str, table: str, query: str, conditions: Sequence[str],
                 params: Sequence, n: int, *, newest: bool = False
                 ) -> list[tuple[int, int, float, float, float]]:
    """(id, media_id, start, end, bm25 rank) of the matches of an FTS5 table whose content
    rows (alias t) and media (alias m) meet the conditions: the n best by bm25, or with
    `newest` the n newest."""
    sql = (f"SELECT t.id, t.media_id, coalesce(t.start, 0), coalesce(t.end, t.start, 0), "
           f"{fts}.rank FROM {fts} JOIN {table} t ON t.id = {fts}.rowid "
           f"JOIN media m ON m.id = t.media_id WHERE {fts} MATCH ? AND "
           + " AND ".join(conditions))
    order = f" ORDER BY {fts}.rowid DESC LIMIT ?" if newest else " ORDER BY rank LIMIT ?"
    return store.db.execute(sql + order, [query, *params, n]).fetchall()


def rows_text(store: Store, table: str, column: str, ids: Sequence[int]) -> dict[int, str]:
    """id -> a text column of the rows of a table with these ids (those that exist)."""
    if not ids:
        return {}
    return {r[0]: r[1] or "" for r in store.db.execute(
        f"SELECT id, {column} FROM {table} WHERE id IN ({_marks(len(ids))})", list(ids))}


def _vocab_rows(store: Store, fts: str, sql: str, params: tuple) -> list:
    """Run `sql` ({v} = a temp fts5vocab table over `fts`, made on first use on this
    connection: document frequency per term) and return its rows."""
    name = f"temp.avindex_{fts}_vocab"
    try:
        return store.db.execute(sql.format(v=name), params).fetchall()
    except Exception as exc:
        if "no such table" not in str(exc):
            raise
    store.db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {name} "
                     f"USING fts5vocab(main, '{fts}', 'row')")
    return store.db.execute(sql.format(v=name), params).fetchall()


def _vocab_row(store: Store, fts: str, sql: str, params: tuple):
    rows = _vocab_rows(store, fts, sql, params)
    return rows[0] if rows else None


def doc_freq(store: Store, fts: str, term: str, prefix: bool) -> int:
    """Rows of an FTS table holding a (folded) term, or the terms starting with it summed
    (an upper bound); a term of several words (a CJK word's characters, "北 京") is
    counted as a phrase, up to 5000."""
    if " " in term:
        return int(store.db.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {fts} WHERE {fts} MATCH ? LIMIT 5000)",
            ('"' + term.replace('"', " ") + '"' + ("*" if prefix else ""),)).fetchone()[0])
    if prefix:
        row = _vocab_row(store, fts, "SELECT sum(doc) FROM (SELECT doc FROM {v} WHERE term >= ? "
                         "AND term < ? LIMIT 5000)", (term, term + "\U0010ffff"))
    else:
        row = _vocab_row(store, fts, "SELECT doc FROM {v} WHERE term = ?", (term,))
    return int(row[0] or 0) if row else 0


def vocabulary(store: Store, fts: str, prefix: str, n: int) -> list[str]:
    """Up to n (folded) terms of an FTS table starting with `prefix`, in order."""
    return [r[0] for r in _vocab_rows(store, fts, "SELECT term FROM {v} WHERE term >= ? "
                                      "AND term < ? LIMIT ?", (prefix, prefix + "\U0010ffff", n))]


def media_languages(store: Store) -> list[str]:
    """The languages the library's files were found to speak."""
    return [r[0] for r in store.db.execute(
        "SELECT DISTINCT language FROM media WHERE coalesce(language, '') != ''")]


def change_stamp(store: Store) -> tuple[int, int]:
    """Differs whenever the library has changed, through this connection or another."""
    return store.db.conn.change_stamp()


# ---- transcripts -------------------------------------------------------------------------------
# A file's said text may come from several sources (speech recognition, each subtitle
# track; segments.source and .track): a transcript window is read within one of them.
def segments_by_id(store: Store, ids: Sequence[int]
                   ) -> list[tuple[int, int, float, float, str, str, str | None]]:
    """(id, media_id, start, end, text, source, track) of the segments with these ids."""
    if not ids:
        return []
    return store.db.execute(f"SELECT id, media_id, start, end, text, source, track FROM segments "
                            f"WHERE id IN ({_marks(len(ids))})", list(ids)).fetchall()


def segment_spans(store: Store, ids: Sequence[int]) -> dict[int, tuple[float, float]]:
    """id -> (start, end) of the segments with these ids."""
    if not ids:
        return {}
    rows = store.db.execute(f"SELECT id, start, end FROM segments WHERE id IN "
                            f"({_marks(len(ids))})", list(ids)).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def segment_sources(store: Store, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    """id -> (source, track) of the segments with these ids."""
    ids = list(set(ids))
    if not ids:
        return {}
    rows = store.db.execute(f"SELECT id, source, track FROM segments WHERE id IN "
                            f"({_marks(len(ids))})", ids).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def segment_start(store: Store, segment_id: int
                  ) -> tuple[int, float, str, str | None] | None:
    """(media_id, start, source, track) of one segment."""
    row = store.db.execute("SELECT media_id, start, source, track FROM segments WHERE id = ?",
                           (segment_id,)).fetchone()
    return (row[0], row[1], row[2], row[3]) if row else None


def segments_from(store: Store, media_id: int, start: float, n: int, source: str = "speech",
                  track: str | None = None) -> list[tuple[int, float, float, str]]:
    """(id, start, end, text) of the first n segments of one source (and track) of a file
    starting at or after `start`."""
    return store.db.execute(
        "SELECT id, start, end, text FROM segments WHERE media_id = ? AND source = ? "
        "AND track IS ? AND start >= ? ORDER BY start, id LIMIT ?",
        (media_id, source, track, start, n)).fetchall()


def lines_before(store: Store, media_id: int, start: float, n: int, source: str,
                 track: str | None) -> list[tuple[int, float, float, str]]:
    """(id, start, end, text) of the n segments of one source (and track) of a file that
    start before `start`, latest first."""
    return store.db.execute(
        "SELECT id, start, end, text FROM segments WHERE media_id = ? AND source = ? "
        "AND track IS ? AND start < ? ORDER BY start DESC, id DESC LIMIT ?",
        (media_id, source, track, start, n)).fetchall()


def segments_before(store: Store, media_id: int, t: float, n: int) -> list[int]:
    """Ids of a file's last n segments (any source) starting at or before t, latest first."""
    return [r[0] for r in store.db.execute(
        "SELECT id FROM segments WHERE media_id = ? AND start <= ? ORDER BY start DESC, id DESC "
        "LIMIT ?", (media_id, t, n)).fetchall()]


_UNCORRECTED = """NOT EXISTS (SELECT 1 FROM corrections c
                  WHERE c.media_id = s.media_id AND abs(c.start - s.start) < 0.05)"""


def segments_word_times(store: Store, segment_ids: Sequence[int]
                        ) -> dict[int, list[tuple[float, str, float]]]:
    """segment id -> (start, word, end) of its words in order, for the segments given that
    have timed words and that the user did not correct (their words no longer match
    their text)."""
    if not segment_ids:
        return {}
    out: dict[int, list[tuple[float, str]]] = {}
    for sid, start, word, end in store.db.execute(f"""
            SELECT w.segment_id, w.start, w.word, w.end FROM words w
            JOIN segments s ON s.id = w.segment_id
            WHERE s.id IN ({_marks(len(segment_ids))}) AND {_UNCORRECTED}
            ORDER BY w.segment_id, w.start""", list(segment_ids)):
        out.setdefault(sid, []).append((start, word, end))
    return out


def word_times_between(store: Store, media_id: int, start: float, end: float
                       ) -> list[tuple[float, str]]:
    """(start, word) of the words of a file's uncorrected segments starting within
    [start, end], in order."""
    return store.db.execute(f"""
        SELECT w.start, w.word FROM segments s JOIN words w ON w.segment_id = s.id
        WHERE s.media_id = ? AND s.start >= ? AND s.start <= ? AND {_UNCORRECTED}
        ORDER BY w.start""", (media_id, start, end)).fetchall()


# ---- vectors -----------------------------------------------------------------------------------
def has_rows(store: Store, table: str) -> bool:
    """Whether a table holds any row (one index probe)."""
    return store.db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None


def has_vectors(store: Store, vec_table: str) -> bool:
    """Whether a vec0 table holds any row."""
    try:
        return store.db.execute(f"SELECT 1 FROM {vec_table}_rowids LIMIT 1").fetchone() is not None
    except Exception:
        return store.db.execute(f"SELECT 1 FROM {vec_table} LIMIT 1").fetchone() is not None


def vec_knn(store: Store, table: str, id_col: str, query_blob: bytes, k: int,
            media_ids: Sequence[int] | None, kinds: Sequence[str] | None,
            language: str | None) -> list[tuple[int, int, float]]:
    """(id, media_id, cosine distance) of the k nearest int8 vectors of a vec0 table,
    nearest first, the metadata filters applied inside the KNN."""
    sql = (f"SELECT {id_col}, media_id, distance FROM {table} "
           "WHERE embedding MATCH vec_int8(?) AND k = ?")
    params: list = [query_blob, k]
    if media_ids is not None:
        sql += f" AND media_id IN ({_marks(len(media_ids))})"
        params += list(media_ids)
    if kinds:
        sql += f" AND kind IN ({_marks(len(kinds))})"
        params += list(kinds)
    if language is not None:
        sql += " AND language = ?"
        params.append(language)
    return store.db.execute(sql + " ORDER BY distance", params).fetchall()


# ---- keyframes, tags, on-screen text ---------------------------------------------------------
def keyframe_time(store: Store, keyframe_id: int) -> float | None:
    row = store.db.execute("SELECT time FROM keyframes WHERE id = ?", (keyframe_id,)).fetchone()
    return row[0] if row else None


def next_keyframe_time(store: Store, media_id: int, t: float) -> float | None:
    """The time of the file's first keyframe after t."""
    return store.db.execute("SELECT min(time) FROM keyframes WHERE media_id = ? AND time > ?",
                            (media_id, t)).fetchone()[0]


def nearest_keyframe(store: Store, media_id: int, t: float) -> int | None:
    row = store.db.execute("SELECT id FROM keyframes WHERE media_id = ? ORDER BY abs(time - ?) "
                           "LIMIT 1", (media_id, t)).fetchone()
    return row[0] if row else None


def nearest_thumbnail(store: Store, media_id: int, t: float) -> str | None:
    """The thumbnail of the keyframe nearest t (two index seeks: at or before, after)."""
    rows = store.db.execute(
        "SELECT * FROM (SELECT time, thumbnail FROM keyframes WHERE media_id = ? AND time <= ? "
        "AND thumbnail IS NOT NULL ORDER BY time DESC LIMIT 1) UNION ALL "
        "SELECT * FROM (SELECT time, thumbnail FROM keyframes WHERE media_id = ? AND time > ? "
        "AND thumbnail IS NOT NULL ORDER BY time LIMIT 1)", (media_id, t, media_id, t)).fetchall()
    if not rows:
        return None
    return min(rows, key=lambda r: abs(r[0] - t))[1]


def tags_at(store: Store, media_id: int, t: float, n: int = 4) -> list[str]:
    """Labels of the file's n best-scored tags holding at t."""
    return [r[0] for r in store.db.execute(
        "SELECT label FROM tags WHERE media_id = ? AND start <= ? AND end >= ? "
        "ORDER BY score DESC LIMIT ?", (media_id, t, t, n)).fetchall()]


def tag_spans(store: Store, labels: Sequence[str]) -> list[tuple[int, float, float, str, float]]:
    """(media_id, start, end, label, score) of every span carrying one of these tags
    (case-insensitive)."""
    if not labels:
        return []
    return store.db.execute(
        f"SELECT media_id, start, end, label, coalesce(score, 0) FROM tags "
        f"WHERE lower(label) IN ({_marks(len(labels))}) ORDER BY media_id, start",
        [x.lower() for x in labels]).fetchall()


def largest_faces(store: Store, n: int) -> list[tuple[int, float, float]]:
    """(media_id, start, end) of the n face appearances of people not hidden that fill
    most of the frame the longest (face area x time on screen)."""
    return store.db.execute(
        "SELECT a.media_id, a.start, a.end FROM face_appearances a "
        "LEFT JOIN people p ON p.id = a.person_id WHERE coalesce(p.hidden, 0) = 0 "
        "ORDER BY a.w * a.h * (a.end - a.start + 1.0) DESC LIMIT ?", (n,)).fetchall()


def screen_text_at(store: Store, media_id: int, t: float) -> list[str]:
    """The file's on-screen text shown at t (one line at most)."""
    return [r[0] for r in store.db.execute(
        "SELECT text FROM screen_text WHERE media_id = ? AND start <= ? AND end >= ? LIMIT 1",
        (media_id, t, t)).fetchall()]


# ---- who speaks ------------------------------------------------------------------------------
def voice_speaks_condition(voice_id: int, alias: str = "t") -> tuple[str, list]:
    """An SQL condition (and its parameters) on a content row (alias `alias`: media_id,
    start, end) that holds when one of the voice's turns overlaps it."""
    return (f"""EXISTS (SELECT 1 FROM speaker_turns st JOIN speakers sp ON sp.id = st.speaker_id
                 WHERE sp.voice_id = ? AND st.media_id = {alias}.media_id
                   AND st.start < coalesce({alias}.end, {alias}.start, 0) + 0.01
                   AND st.end > coalesce({alias}.start, 0) - 0.01)""", [voice_id])


def said_during(store: Store, media_id: int, start: float, end: float, n: int = 80
                ) -> tuple[str, int | None, str | None, str | None]:
    """(text, segment id, source, track) of what was said in [start, end]: the first n
    timed words of uncorrected speech lines starting in it, else the lines (any source,
    speech first) overlapping it. ("", None, None, None) when nothing was."""
    rows = store.db.execute(f"""
        SELECT w.word, s.id FROM words w JOIN segments s ON s.id = w.segment_id
        WHERE s.media_id = ? AND s.source = 'speech' AND w.start >= ? AND w.start < ?
          AND {_UNCORRECTED} ORDER BY w.start LIMIT ?""", (media_id, start, end, n)).fetchall()
    if rows:
        return " ".join("".join(r[0] for r in rows).split()), rows[0][1], "speech", None
    lines = store.db.execute("""
        SELECT text, id, source, track FROM segments WHERE media_id = ? AND start < ? AND end > ?
        ORDER BY source != 'speech', track, start LIMIT 8""", (media_id, end, start)).fetchall()
    if not lines:
        return "", None, None, None
    source, track = lines[0][2], lines[0][3]
    text = " ".join(" ".join((r[0] or "").split()) for r in lines
                    if (r[2], r[3]) == (source, track))
    return text, lines[0][1], source, track
