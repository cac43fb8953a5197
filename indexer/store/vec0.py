"""Bulk reads of sqlite-vec vec0 tables, straight from their chunk tables.

sqlite-vec 0.1.x keeps a vec0 table's rows in chunks (`<table>_chunks`: validity bitmap
and rowids; `<table>_vector_chunks00`: the vectors; `<table>_metadatachunksNN`: one
column each). Reading those in bulk is far faster than row-by-row SELECTs (measured:
benchmarks/README.md, "Scale: 1M moments"); `read_vec0_sql` is the slow path, used when
the layout is not the one known here, and the reference the fast path is tested against.
`conn` is a Store's `db.conn` (or any DB-API connection to the library).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def vec0_count(conn, table: str) -> int:
    """Rows of a vec0 table (from its rowid table when it has one: no vector reads)."""
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}_rowids").fetchone()[0])
    except Exception:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _vec0_chunks_ok(conn, table: str) -> bool:
    try:
        version = conn.execute(f"SELECT value FROM {table}_info WHERE key='CREATE_VERSION'"
                               ).fetchone()
    except Exception:
        return False
    return bool(version) and str(version[0]).startswith("v0.1.")


def read_vec0(conn, table: str, vec_bytes: int, meta: Sequence[tuple] = (),
              ids: Iterable[int] | None = None, *, with_vectors: bool = True,
              text_codes: bool = False) -> dict:
    """All rows (or the rows with the given ids) of a vec0 table, read from its chunk
    tables: {"ids": int64 (n,), "vectors": uint8 (n, vec_bytes), <meta column>: array}.
    Text metadata comes back as an object array, or with text_codes as int32 codes into
    the list under "<column>_vocab". Falls back to SELECTs when the chunk layout is not
    the one this reader knows (sqlite-vec 0.1.x)."""
    if not _vec0_chunks_ok(conn, table):
        res = read_vec0_sql(conn, table, vec_bytes, meta, ids)
        return _encode_text(res, meta) if text_codes else res
    if ids is not None:
        ids = np.unique(np.fromiter((int(i) for i in ids), dtype=np.int64))
        if not len(ids):
            return _empty(vec_bytes, meta)
        where = {}
        for part in range(0, len(ids), 30000):
            chunk = ids[part:part + 30000]
            q = (f"SELECT rowid, chunk_id, chunk_offset FROM {table}_rowids WHERE rowid IN "
                 f"({','.join(map(str, chunk.tolist()))})")
            for rid, cid, off in conn.execute(q).fetchall():
                if cid is not None:
                    where.setdefault(int(cid), []).append((int(off), int(rid)))
        chunk_ids = sorted(where)
    else:
        chunk_ids = None
    out_ids, out_vecs, out_meta = [], [], {m[0]: [] for m in meta}
    chunk_rows = conn.execute(f"SELECT chunk_id, size, validity, rowids FROM {table}_chunks "
                              "ORDER BY chunk_id").fetchall() if chunk_ids is None else [
        conn.execute(f"SELECT chunk_id, size, validity, rowids FROM {table}_chunks "
                     "WHERE chunk_id = ?", (c,)).fetchone() for c in chunk_ids]
    for cid, size, validity, rowids in chunk_rows:
        valid = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")[:size]
        rid = np.frombuffer(rowids, np.int64)[:size]
        if chunk_ids is None:
            sel = np.flatnonzero(valid)
        else:
            wanted = {off for off, r in where[cid]}
            sel = np.array(sorted(o for o in wanted if o < size and valid[o]), dtype=np.int64)
        if not len(sel):
            continue
        out_ids.append(rid[sel])
        if with_vectors:
            vblob = conn.execute(f"SELECT vectors FROM {table}_vector_chunks00 WHERE rowid = ?",
                                 (cid,)).fetchone()[0]
            out_vecs.append(np.frombuffer(vblob, np.uint8).reshape(size, vec_bytes)[sel])
        for j, (name, typ) in enumerate(meta):
            blob = conn.execute(f"SELECT data FROM {table}_metadatachunks{j:02d} WHERE rowid = ?",
                                (cid,)).fetchone()[0]
            if typ == "int":
                out_meta[name].append(np.frombuffer(blob, np.int64)[:size][sel])
            else:
                # 16-byte slots: int32 length + the first 12 bytes; longer text is kept
                # in the _metadatatext table. Each distinct slot is decoded once.
                slots = np.ascontiguousarray(np.frombuffer(blob, np.uint8).reshape(size, 16)[sel])
                out_meta[name].append((slots, rid[sel]))
    if not out_ids:
        res = _empty(vec_bytes, meta)
        return _encode_text(res, meta) if text_codes else res
    for j, (name, typ) in enumerate(meta):
        if typ != "text":
            continue
        slots = np.concatenate([s_ for s_, _ in out_meta[name]])
        rids = np.concatenate([r_ for _, r_ in out_meta[name]])
        uniq, inverse = np.unique(slots.view(np.dtype((np.void, 16))).reshape(-1),
                                  return_inverse=True)
        vocab, long_rows = [], []
        codes = inverse.reshape(-1).astype(np.int32)
        for u, raw in enumerate(uniq):
            raw = bytes(raw)
            n = int.from_bytes(raw[:4], "little", signed=True)
            if n <= 12:
                vocab.append(raw[4:4 + max(0, n)].decode("utf-8", "replace"))
            else:
                vocab.append("")                      # resolved per row below
                long_rows.append(u)
        if long_rows:
            index: dict = {}
            for r in np.flatnonzero(np.isin(codes, long_rows)):
                row = conn.execute(f"SELECT data FROM {table}_metadatatext{j:02d} "
                                   "WHERE rowid = ?", (int(rids[r]),)).fetchone()
                text = row[0] if row else ""
                if text not in index:
                    index[text] = len(vocab)
                    vocab.append(text)
                codes[r] = index[text]
        if text_codes:
            out_meta[name] = [codes]
            out_meta[name + "_vocab"] = vocab
        else:
            out_meta[name] = [np.array(vocab, dtype=object)[codes]]
    res = {"ids": np.concatenate(out_ids),
           "vectors": np.concatenate(out_vecs) if with_vectors
           else np.zeros((sum(map(len, out_ids)), 0), np.uint8)}
    for name, typ in meta:
        res[name] = np.concatenate(out_meta[name])
        if typ == "text" and text_codes:
            res[name + "_vocab"] = out_meta[name + "_vocab"]
    return res


def _encode_text(res: dict, meta) -> dict:
    for name, typ in meta:
        if typ == "text":
            vocab = sorted(set(res[name].tolist()))
            index = {v: i for i, v in enumerate(vocab)}
            res[name] = np.array([index[v] for v in res[name].tolist()], np.int32)
            res[name + "_vocab"] = vocab
    return res


def _empty(vec_bytes, meta) -> dict:
    res = {"ids": np.zeros(0, np.int64), "vectors": np.zeros((0, vec_bytes), np.uint8)}
    for name, typ in meta:
        res[name] = np.zeros(0, np.int64) if typ == "int" else np.zeros(0, dtype=object)
    return res


def read_vec0_sql(conn, table, vec_bytes, meta, ids) -> dict:
    """What read_vec0 returns (text metadata as object arrays), by plain SELECTs."""
    pk = conn.execute(f"SELECT * FROM {table} LIMIT 0").description[0][0]
    vcol = conn.execute(f"SELECT * FROM {table} LIMIT 0").description[1][0]
    cols = ", ".join([pk, vcol] + [m[0] for m in meta])
    if ids is None:
        rows = conn.execute(f"SELECT {cols} FROM {table}").fetchall()
    else:
        ids = [int(i) for i in ids]
        rows = []
        for part in range(0, len(ids), 500):
            chunk = ids[part:part + 500]
            rows += conn.execute(f"SELECT {cols} FROM {table} WHERE {pk} IN "
                                 f"({','.join('?' * len(chunk))})", chunk).fetchall()
    if not rows:
        return _empty(vec_bytes, meta)
    rows.sort(key=lambda r: r[0])
    res = {"ids": np.array([r[0] for r in rows], np.int64),
           "vectors": np.frombuffer(b"".join(r[1] for r in rows), np.uint8).reshape(
               len(rows), vec_bytes)}
    for j, (name, typ) in enumerate(meta):
        vals = [r[2 + j] for r in rows]
        res[name] = (np.array([v if v is not None else 0 for v in vals], np.int64) if typ == "int"
                     else np.array([v or "" for v in vals], dtype=object))
    return res
