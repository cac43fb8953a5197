"""The SQL of the binary-code tables (schema: indexer.store.schema_search) that
indexer.search.code_index fits, keeps in step and searches.

Per vector space: the code table (vec0 `bit[N]`, with the vectors' metadata columns),
the re-rank table (int8 copies, `vec_codec.to_int8`), the fitted coder
(`search_codec`), the media whose vectors changed since they were encoded
(`search_dirty`) and the log of code rows put and deleted (`search_changes`).
`conn` is a Store's `db.conn`; writers expect the caller's Store.transaction().
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from indexer.store.schema_search import KEYFRAME_CODE_BITS, SEGMENT_CODE_BITS


@dataclass(frozen=True)
class Space:
    name: str
    vec_table: str          # vec0 int8 vectors (written by Store.save_text_index / save_visual)
    id_col: str
    dim: int
    code_table: str
    rr_table: str
    owner: str              # the table whose rows the ids are
    meta: tuple             # ((column, "int"|"text"), ...) of the code table, in order
    n_bits: int
    family: str = "itq"


SPACES = {
    "segment": Space("segment", "segment_vec", "segment_id", 512, "segment_code", "segment_rr",
                     "segments", (("media_id", "int"), ("kind", "text"), ("language", "text")),
                     SEGMENT_CODE_BITS),
    "keyframe": Space("keyframe", "keyframe_vec", "keyframe_id", 1280, "keyframe_code",
                      "keyframe_rr", "keyframes", (("media_id", "int"), ("kind", "text")),
                      KEYFRAME_CODE_BITS),
}


def has_code_tables(conn) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'search_codec'"
                        ).fetchone() is not None


# ---- the coder -------------------------------------------------------------------------
def coder_row(conn, sp: Space) -> tuple[bytes, int, str] | None:
    """(model blob, n_fit, fitted_at) of the space's coder, or None when not fitted."""
    return conn.execute("SELECT model, n_fit, fitted_at FROM search_codec WHERE space=?",
                        (sp.name,)).fetchone()


def fitted_at(conn, sp: Space) -> str | None:
    """When the space's coder was fitted; None when it has none."""
    row = conn.execute("SELECT fitted_at FROM search_codec WHERE space = ?",
                       (sp.name,)).fetchone()
    return None if row is None else row[0]


def clear_space(conn, sp: Space) -> None:
    """Drop every code, re-rank row, change-log entry and dirty mark of the space."""
    conn.execute(f"DELETE FROM {sp.code_table}")
    conn.execute(f"DELETE FROM {sp.rr_table}")
    conn.execute("DELETE FROM search_changes WHERE space = ?", (sp.name,))
    conn.execute("DELETE FROM search_dirty WHERE space = ?", (sp.name,))


def save_coder(conn, sp: Space, family: str, n_bits: int, n_fit: int, model: bytes) -> None:
    conn.execute("INSERT OR REPLACE INTO search_codec(space, family, n_bits, n_fit, model) "
                 "VALUES (?, ?, ?, ?, ?)", (sp.name, family, n_bits, n_fit, model))


# ---- codes and re-rank rows -----------------------------------------------------------
def insert_codes(conn, sp: Space, ids: Sequence[int], codes, meta: dict[str, list],
                 media_ids: Sequence[int], rr: Sequence[bytes]) -> None:
    """Rows of the code table (ids, packed codes (n, n_bits/8), the meta columns) and the
    re-rank table (ids, media ids, `to_int8` blobs); none of the ids may be there yet."""
    cols = [m[0] for m in sp.meta]
    conn.executemany(
        f"INSERT INTO {sp.code_table}({sp.id_col}, code, {', '.join(cols)}) "
        f"VALUES (?, vec_bit(?), {', '.join('?' * len(cols))})",
        [(i, c.tobytes(), *[meta[col][j] for col in cols])
         for j, (i, c) in enumerate(zip(ids, codes))])
    conn.executemany(f"INSERT INTO {sp.rr_table}({sp.id_col}, media_id, v) VALUES (?, ?, ?)",
                     zip(ids, media_ids, rr))


def delete_codes(conn, sp: Space, ids: Iterable[int]) -> None:
    ids = list(ids)
    conn.executemany(f"DELETE FROM {sp.code_table} WHERE {sp.id_col} = ?", [(i,) for i in ids])
    conn.executemany(f"DELETE FROM {sp.rr_table} WHERE {sp.id_col} = ?", [(i,) for i in ids])


def coded_ids(conn, sp: Space, media_ids: Sequence[int] | None = None) -> list[int]:
    """Ids that have codes (of the given media, or all)."""
    if media_ids is None:
        return [r[0] for r in conn.execute(f"SELECT {sp.id_col} FROM {sp.rr_table}")]
    return [r[0] for r in conn.execute(
        f"SELECT {sp.id_col} FROM {sp.rr_table} WHERE media_id IN "
        f"({','.join('?' * len(media_ids))})", list(media_ids))]


def coded_among(conn, sp: Space, ids: Iterable[int]) -> set[int]:
    """Those of `ids` that have codes (whatever media they are filed under)."""
    return {r[0] for r in conn.execute(
        f"SELECT {sp.id_col} FROM {sp.rr_table} WHERE {sp.id_col} IN "
        f"({','.join(map(str, ids))})")}


def media_of_coded(conn, sp: Space, ids: Iterable[int]) -> set[int]:
    """Media the codes of `ids` are filed under."""
    return {r[0] for r in conn.execute(
        f"SELECT DISTINCT media_id FROM {sp.rr_table} WHERE {sp.id_col} IN "
        f"({','.join(map(str, ids))})")}


def rerank_rows(conn, sp: Space, ids: Sequence[int]) -> list[tuple[int, int, bytes]]:
    """(id, media_id, int8 blob) of those of `ids` that have a re-rank row."""
    rows = []
    for part in range(0, len(ids), 30000):
        chunk = ids[part:part + 30000]
        rows += conn.execute(f"SELECT {sp.id_col}, media_id, v FROM {sp.rr_table} WHERE "
                             f"{sp.id_col} IN ({','.join(map(str, chunk))})").fetchall()
    return rows


def owner_ids(conn, sp: Space, media_ids: Sequence[int]) -> list[int]:
    """Ids of the owner table's rows (segments, keyframes) of the given media."""
    ids = []
    for part in range(0, len(media_ids), 500):
        chunk = list(media_ids[part:part + 500])
        ids += [r[0] for r in conn.execute(
            f"SELECT id FROM {sp.owner} WHERE media_id IN ({','.join('?' * len(chunk))})",
            chunk).fetchall()]
    return ids


# ---- dirty media -----------------------------------------------------------------------
def dirty_media(conn, sp: Space) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT media_id FROM search_dirty WHERE space = ?", (sp.name,)).fetchall()]


def mark_dirty(conn, sp: Space, media_ids: Iterable[int]) -> None:
    conn.executemany("INSERT OR IGNORE INTO search_dirty(space, media_id) VALUES (?, ?)",
                     [(sp.name, int(m)) for m in media_ids])


def clear_dirty(conn, sp: Space, media_ids: Sequence[int]) -> None:
    conn.execute(f"DELETE FROM search_dirty WHERE space = ? AND media_id IN "
                 f"({','.join('?' * len(media_ids))})", [sp.name, *media_ids])


# ---- the change log --------------------------------------------------------------------
def log_changes(conn, sp: Space, ids: Iterable[int], op: str) -> None:
    """One entry per id: op 'put' (written or rewritten) or 'del'."""
    conn.executemany("INSERT INTO search_changes(space, item_id, op) VALUES (?, ?, ?)",
                     [(sp.name, int(i), op) for i in ids])


def log_marker(conn, sp: Space, op: str) -> None:
    """An entry for the whole space: 'reset' (refitted) or 'trim' (log dropped)."""
    conn.execute("INSERT INTO search_changes(space, item_id, op) VALUES (?, 0, ?)",
                 (sp.name, op))


def clear_log(conn, sp: Space) -> None:
    conn.execute("DELETE FROM search_changes WHERE space = ?", (sp.name,))


def log_size(conn, sp: Space) -> int:
    return conn.execute("SELECT count(*) FROM search_changes WHERE space = ?",
                        (sp.name,)).fetchone()[0]


def last_change(conn) -> int:
    """The newest entry's sequence number, over every space (0 when none)."""
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM search_changes").fetchone()[0])


def changes_since(conn, sp: Space, seq: int) -> list[tuple[int, int, str]]:
    """(seq, item_id, op) of the space's entries after `seq`, oldest first."""
    return conn.execute("SELECT seq, item_id, op FROM search_changes WHERE seq > ? AND "
                        "space = ? ORDER BY seq", (seq, sp.name)).fetchall()
