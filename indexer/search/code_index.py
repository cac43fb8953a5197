"""Binary codes in the library: fit, keep in step, and search with them.

Semantic hashing for the two vector spaces (`segment`: transcript windows in
`segment_vec`, 512-d; `keyframe`: frames in `keyframe_vec`, 1280-d):

    maintain(store)                        # fit when big enough, refit when grown, encode new rows
    hits = binary_knn(store, "segment", q, k=10, media_ids=..., kinds=..., language=...)

A search scans all codes (held in memory, word-major uint64) by Hamming distance,
keeps the best `k * oversample` that pass the filters, and re-ranks those with the
int8 copies of their vectors. The filters are applied to the scan itself, before
any cut, so a filtered search returns k rows whenever k rows match.

Why not sqlite-vec's own KNN over the `bit[N]` table: in sqlite-vec 0.1.9 its cost grows
with k and row-by-row reads are slow (measured: benchmarks/README.md, "Scale: 1M moments").
The codes are therefore stored in the vec0 table (the store of record, with metadata
columns, usable by any SQL client) but read in bulk from its chunk tables (`read_vec0`;
its output is checked against the row-by-row read) and scanned with numpy.

Keeping in step: triggers mark a media "dirty" when its segments, keywords or
keyframes change (vec0 tables cannot carry triggers) and drop codes with their
owners; `sync()` re-encodes the dirty media with the current coder and logs each
put/delete in `search_changes`, which the in-memory index replays. `maintain()`
also refits when the library has grown REFIT_GROWTH-fold since the last fit, and
reconciles the whole table (a safety net for changes no trigger saw).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from models.binary_codes import BinaryCoder, as_words, fit_coder, hamming, smallest, word_major
from models.loading import lazy, unload_all

from indexer.store.vec_codec import from_int8, int8_rows_to_float, to_int8

FIT_MIN_ROWS = 20000       # below this the exact float KNN is fast (and exact): no codes
REFIT_GROWTH = 2.0         # refit once the library holds this many times the fitted rows
FIT_SAMPLE = 30000         # vectors the coder is fitted on
DEFAULT_OVERSAMPLE = 3     # re-ranked candidates per wanted result, at least MIN_CANDIDATES
MIN_CANDIDATES = 300       # re-ranked with int8 vectors (k=10 -> 300)
HAMMING_FACTOR = 10        # Hamming candidates per re-ranked one (-> 3000 for k=10)
SELECTIVE = 0.25           # a filter passing fewer rows than this share is "selective"
SELECTIVE_BOOST = 3        # ... and gets this many times the re-ranked candidates
ENCODE_BATCH = 20000
LOG_MAX = 200000           # change-log entries kept per space before it is trimmed


@dataclass(frozen=True)
class Space:
    name: str
    vec_table: str          # vec0 int8 vectors (owned by indexer.stages.text / indexer.store)
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
                     256),
    "keyframe": Space("keyframe", "keyframe_vec", "keyframe_id", 1280, "keyframe_code",
                      "keyframe_rr", "keyframes", (("media_id", "int"), ("kind", "text")), 256),
}


def _conn(store):
    c = store.db.conn
    return getattr(c, "_raw", c)


def has_code_tables(store) -> bool:
    row = _conn(store).execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'search_codec'").fetchone()
    return row is not None


# ---- bulk reads of vec0 tables --------------------------------------------------------
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
        res = _read_vec0_sql(conn, table, vec_bytes, meta, ids)
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


def _read_vec0_sql(conn, table, vec_bytes, meta, ids) -> dict:
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


def vec_count(store, space: Space | str) -> int:
    sp = SPACES[space] if isinstance(space, str) else space
    conn = _conn(store)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {sp.vec_table}_rowids").fetchone()[0])
    except Exception:
        return int(conn.execute(f"SELECT count(*) FROM {sp.vec_table}").fetchone()[0])


def read_vectors(store, space: Space | str, ids=None) -> dict:
    """Vectors of a space (all, or by id; unit-length float32) with media_id/kind(/language)."""
    sp = SPACES[space] if isinstance(space, str) else space
    res = read_vec0(_conn(store), sp.vec_table, sp.dim, sp.meta, ids)
    res["vectors"] = int8_rows_to_float(res["vectors"], sp.dim)
    return res


# ---- fitting and keeping in step ------------------------------------------------------------
def load_coder(store, space: Space | str) -> tuple[BinaryCoder, dict] | None:
    sp = SPACES[space] if isinstance(space, str) else space
    if not has_code_tables(store):
        return None
    row = _conn(store).execute("SELECT model, n_fit, fitted_at FROM search_codec WHERE space=?",
                               (sp.name,)).fetchone()
    if row is None:
        return None
    return BinaryCoder.from_bytes(row[0]), {"n_fit": row[1], "fitted_at": row[2]}


def _write_codes(conn, sp: Space, coder: BinaryCoder, data: dict) -> None:
    """Insert codes and int8 vectors for rows (ids, vectors float, meta); caller holds the
    transaction and has deleted any previous rows of these ids."""
    n = len(data["ids"])
    cols = [m[0] for m in sp.meta]
    for b in range(0, n, ENCODE_BATCH):
        sl = slice(b, b + ENCODE_BATCH)
        vecs = data["vectors"][sl]
        codes = coder.encode(vecs)
        ids = data["ids"][sl].tolist()
        metas = [data[c][sl].tolist() for c in cols]
        conn.executemany(
            f"INSERT INTO {sp.code_table}({sp.id_col}, code, {', '.join(cols)}) "
            f"VALUES (?, vec_bit(?), {', '.join('?' * len(cols))})",
            [(i, c.tobytes(), *[m[j] for m in metas]) for j, (i, c) in enumerate(zip(ids, codes))])
        conn.executemany(f"INSERT INTO {sp.rr_table}({sp.id_col}, media_id, v) VALUES (?, ?, ?)",
                         zip(ids, data["media_id"][sl].tolist(), to_int8(vecs)))


def fit(store, space: Space | str, *, n_bits: int | None = None, family: str | None = None,
        sample: int = FIT_SAMPLE, seed: int = 0) -> dict:
    """Fit the coder on the library's own vectors and (re-)encode every row."""
    sp = SPACES[space] if isinstance(space, str) else space
    n_bits = n_bits or sp.n_bits
    t0 = time.perf_counter()
    data = read_vectors(store, sp)
    n = len(data["ids"])
    if n < 2:
        raise ValueError(f"{sp.vec_table} has {n} vectors; nothing to fit codes on")
    t_read = time.perf_counter() - t0
    coder = fit_coder(data["vectors"], n_bits, family=family or sp.family, sample=sample,
                      seed=seed)
    coder.n_fit = n
    t_fit = time.perf_counter() - t0 - t_read
    conn = _conn(store)
    with store.transaction():
        conn.execute(f"DELETE FROM {sp.code_table}")
        conn.execute(f"DELETE FROM {sp.rr_table}")
        conn.execute("DELETE FROM search_changes WHERE space = ?", (sp.name,))
        conn.execute("DELETE FROM search_dirty WHERE space = ?", (sp.name,))
        conn.execute("INSERT OR REPLACE INTO search_codec(space, family, n_bits, n_fit, model) "
                     "VALUES (?, ?, ?, ?, ?)", (sp.name, coder.family, coder.n_bits, n,
                                                coder.to_bytes()))
        _write_codes(conn, sp, coder, data)
        conn.execute("INSERT INTO search_changes(space, item_id, op) VALUES (?, 0, 'reset')",
                     (sp.name,))
    return {"space": sp.name, "rows": n, "bits": coder.n_bits, "family": coder.family,
            "read_s": round(t_read, 2), "fit_s": round(t_fit, 2),
            "total_s": round(time.perf_counter() - t0, 2)}


def _owner_ids(conn, sp: Space, media_ids: Sequence[int]) -> list[int]:
    ids = []
    for part in range(0, len(media_ids), 500):
        chunk = list(media_ids[part:part + 500])
        ids += [r[0] for r in conn.execute(
            f"SELECT id FROM {sp.owner} WHERE media_id IN ({','.join('?' * len(chunk))})",
            chunk).fetchall()]
    return ids


def sync(store, space: Space | str, media_ids: Sequence[int] | None = None) -> int:
    """Re-encode the dirty media (or the given ones) with the current coder. Returns the
    number of code rows written. A no-op when the space has no coder yet."""
    sp = SPACES[space] if isinstance(space, str) else space
    loaded = load_coder(store, sp)
    if loaded is None:
        return 0
    coder = loaded[0]
    conn = _conn(store)
    if media_ids is None:
        media_ids = [r[0] for r in conn.execute(
            "SELECT media_id FROM search_dirty WHERE space = ?", (sp.name,)).fetchall()]
    if not media_ids:
        return 0
    written = 0
    with store.transaction():
        for part in range(0, len(media_ids), 200):
            mids = list(media_ids[part:part + 200])
            marks = ",".join("?" * len(mids))
            old = [r[0] for r in conn.execute(
                f"SELECT {sp.id_col} FROM {sp.rr_table} WHERE media_id IN ({marks})", mids)]
            data = read_vectors(store, sp, _owner_ids(conn, sp, mids))
            new = set(data["ids"].tolist())
            # codes under these ids but filed under another media (ids reused) go too
            old = sorted(set(old) | {r[0] for r in conn.execute(
                f"SELECT {sp.id_col} FROM {sp.rr_table} WHERE {sp.id_col} IN "
                f"({','.join(map(str, sorted(new)))})")}) if new else old
            if old:
                conn.executemany(f"DELETE FROM {sp.code_table} WHERE {sp.id_col} = ?",
                                 [(i,) for i in old])
                conn.executemany(f"DELETE FROM {sp.rr_table} WHERE {sp.id_col} = ?",
                                 [(i,) for i in old])
                conn.executemany("INSERT INTO search_changes(space, item_id, op) "
                                 "VALUES (?, ?, 'del')",
                                 [(sp.name, i) for i in old if i not in new])
            if len(data["ids"]):
                _write_codes(conn, sp, coder, data)
                conn.executemany("INSERT INTO search_changes(space, item_id, op) "
                                 "VALUES (?, ?, 'put')", [(sp.name, int(i)) for i in data["ids"]])
                written += len(data["ids"])
            conn.execute(f"DELETE FROM search_dirty WHERE space = ? AND media_id IN ({marks})",
                         [sp.name, *mids])
    return written


def reconcile(store, space: Space | str) -> int:
    """Mark dirty every media whose vectors and codes disagree in membership (a full
    anti-join; slow-ish at 1M rows, so `maintain` runs it, searches do not)."""
    sp = SPACES[space] if isinstance(space, str) else space
    conn = _conn(store)
    vec_ids = read_vec0(conn, sp.vec_table, sp.dim, (("media_id", "int"),),
                        with_vectors=False)
    have = np.array([r[0] for r in conn.execute(f"SELECT {sp.id_col} FROM {sp.rr_table}")],
                    np.int64)
    missing = np.setdiff1d(vec_ids["ids"], have)
    stale = np.setdiff1d(have, vec_ids["ids"])
    media = set(vec_ids["media_id"][np.isin(vec_ids["ids"], missing)].tolist())
    if len(stale):
        media |= {r[0] for r in conn.execute(
            f"SELECT DISTINCT media_id FROM {sp.rr_table} WHERE {sp.id_col} IN "
            f"({','.join(map(str, stale.tolist()))})")}
    if media:
        with store.transaction():
            conn.executemany("INSERT OR IGNORE INTO search_dirty(space, media_id) VALUES (?, ?)",
                             [(sp.name, int(m)) for m in media])
    return len(media)


def maintain(store, spaces: Sequence[str] = ("segment", "keyframe"), *,
             min_rows: int = FIT_MIN_ROWS, growth: float = REFIT_GROWTH,
             full_check: bool = True) -> list[dict]:
    """Fit codes once a space holds `min_rows` vectors, refit when it has grown `growth`
    times since, and encode what changed. Meant for after indexing (a pipeline step or
    an idle-time job), not for the query path. Returns what was done per space."""
    if not has_code_tables(store):
        return []
    report = []
    for name in spaces:
        sp = SPACES[name]
        n = vec_count(store, sp)
        loaded = load_coder(store, sp)
        if loaded is None and n < min_rows:
            report.append({"space": name, "rows": n, "action": "none (too few rows)"})
            continue
        if loaded is None or n >= growth * max(1, loaded[1]["n_fit"]):
            r = fit(store, sp)
            r["action"] = "fit" if loaded is None else "refit"
            report.append(r)
            continue
        if full_check:
            reconcile(store, sp)
        report.append({"space": name, "rows": n, "action": "sync",
                       "written": sync(store, sp)})
        trim_log(store, sp)
    return report


def trim_log(store, space: Space | str, keep: int = LOG_MAX) -> bool:
    """Drop a space's change log once it holds more than `keep` entries, leaving a 'trim'
    marker: an in-memory index that has not replayed them reloads instead."""
    sp = SPACES[space] if isinstance(space, str) else space
    conn = _conn(store)
    n = conn.execute("SELECT count(*) FROM search_changes WHERE space = ?", (sp.name,)).fetchone()[0]
    if n <= keep:
        return False
    with store.transaction():
        conn.execute("DELETE FROM search_changes WHERE space = ?", (sp.name,))
        conn.execute("INSERT INTO search_changes(space, item_id, op) VALUES (?, 0, 'trim')",
                     (sp.name,))
    return True


# ---- the in-memory code index ----------------------------------------------------------------
class CodeIndex:
    """All codes of one space in memory (word-major), with their ids and metadata, kept
    current by replaying `search_changes`."""

    def __init__(self, space: Space):
        self.space = space
        self.coder: BinaryCoder | None = None
        self.fitted_at = None
        self.last_seq = -1
        self.ids = np.zeros(0, np.int64)
        self.cols = np.zeros((space.n_bits // 64, 0), np.uint64)
        self.media = np.zeros(0, np.int64)
        self.alive = np.zeros(0, bool)
        self.meta_codes: dict[str, np.ndarray] = {}
        self.vocab: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self._rows_version = 0      # bumped whenever rows, or which are alive, change
        self._masks: dict = {}
        self._penalties: dict = {}

    def __len__(self) -> int:
        return int(self.alive.sum())

    def _text_codes(self, name: str, codes: np.ndarray, vocab: list) -> np.ndarray:
        """Codes into a read's vocab -> codes into this index's vocab for the column."""
        mine = self.vocab.setdefault(name, [])
        index = {v: i for i, v in enumerate(mine)}
        remap = np.empty(max(1, len(vocab)), np.int32)
        for i, v in enumerate(vocab):
            v = v or ""
            if v not in index:
                index[v] = len(mine)
                mine.append(v)
            remap[i] = index[v]
        return remap[codes] if len(codes) else np.zeros(0, np.int32)

    def _rows(self, data: dict) -> tuple:
        cols = word_major(data["vectors"])
        metas = {name: self._text_codes(name, data[name], data[name + "_vocab"])
                 for name, typ in self.space.meta if typ == "text"}
        return cols, data["media_id"].astype(np.int64), metas

    def load(self, store) -> None:
        conn = _conn(store)
        loaded = load_coder(store, self.space)
        self.coder, info = loaded if loaded else (None, {})
        self.fitted_at = info.get("fitted_at")
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM search_changes").fetchone()
        self.last_seq = int(row[0])
        data = read_vec0(conn, self.space.code_table, self.space.n_bits // 8, self.space.meta,
                         text_codes=True)
        self.vocab = {}
        self.ids = data["ids"]
        self.cols, self.media, self.meta_codes = self._rows(data)
        self.alive = np.ones(len(self.ids), bool)
        self._rows_version += 1

    def refresh(self, store) -> None:
        conn = _conn(store)
        row = conn.execute("SELECT fitted_at FROM search_codec WHERE space = ?",
                           (self.space.name,)).fetchone()
        if row is None:                     # not fitted (or dropped): nothing to scan
            self.coder, self.fitted_at = None, None
            return
        fitted_at = row[0]
        if fitted_at != self.fitted_at or self.coder is None:
            self.load(store)
            return
        changes = conn.execute("SELECT seq, item_id, op FROM search_changes WHERE seq > ? AND "
                               "space = ? ORDER BY seq", (self.last_seq, self.space.name)
                               ).fetchall()
        top = conn.execute("SELECT coalesce(max(seq), 0) FROM search_changes").fetchone()[0]
        if not changes:
            self.last_seq = max(self.last_seq, int(top))
            return
        if any(op in ("reset", "trim") for _, _, op in changes):
            self.load(store)
            return
        touched = np.array(sorted({int(i) for _, i, _ in changes}), np.int64)
        self.alive &= ~np.isin(self.ids, touched)       # every change replaces or removes
        self._rows_version += 1
        puts = sorted({int(i) for _, i, op in changes if op == "put"})
        if puts:
            data = read_vec0(conn, self.space.code_table, self.space.n_bits // 8,
                             self.space.meta, puts, text_codes=True)
            cols, media, metas = self._rows(data)
            self.ids = np.concatenate([self.ids, data["ids"]])
            self.cols = np.ascontiguousarray(np.concatenate([self.cols, cols], axis=1))
            self.media = np.concatenate([self.media, media])
            self.alive = np.concatenate([self.alive, np.ones(len(data["ids"]), bool)])
            for name in metas:
                self.meta_codes[name] = np.concatenate([self.meta_codes[name], metas[name]])
        self.last_seq = int(top)
        if self.alive.size and (~self.alive).sum() > 0.2 * self.alive.size:
            self._compact()

    def _compact(self) -> None:
        keep = self.alive
        self.ids, self.media = self.ids[keep], self.media[keep]
        self.cols = np.ascontiguousarray(self.cols[:, keep])
        self.meta_codes = {k: v[keep] for k, v in self.meta_codes.items()}
        self.alive = np.ones(len(self.ids), bool)
        self._rows_version += 1

    MASK_CACHE = 8  # filters repeat (live search re-runs one filter per keystroke): ~1 MB each

    def mask(self, media_ids: Iterable[int] | None = None, **text_filters) -> np.ndarray | None:
        """Rows passing the filters (None = all rows alive), read-only. text_filters:
        column -> allowed values (a str or a list). The last few masks are cached until
        the rows change: building one costs a gather over every row (~3 ms at 1M)."""
        media_key = None if media_ids is None else tuple(sorted({int(i) for i in media_ids}))
        key = (self._rows_version, media_key,
               tuple(sorted((k, (v,) if isinstance(v, str) else tuple(v))
                            for k, v in text_filters.items() if v is not None)))
        cache = self._masks
        if key in cache:
            return cache[key]
        m = self._mask(media_key, **text_filters)
        if m is not None:
            m.setflags(write=False)
        if len(cache) >= self.MASK_CACHE:
            cache.pop(next(iter(cache)))
        cache[key] = m
        return m

    def _penalty(self, mask: np.ndarray, cap: int) -> np.ndarray:
        """uint16 per row: 0 where the mask passes, cap where not (one np.maximum applies a
        filter to Hamming distances; a boolean-index assignment took ~3 ms at 1M rows)."""
        hit = self._penalties.get(id(mask))
        if hit is None or hit[0] is not mask:
            hit = (mask, np.where(mask, np.uint16(0), np.uint16(cap)))
            if len(self._penalties) >= self.MASK_CACHE:
                self._penalties.pop(next(iter(self._penalties)))
            self._penalties[id(mask)] = hit
        return hit[1]

    def _mask(self, media_ids, **text_filters) -> np.ndarray | None:
        m = None
        if media_ids is not None:
            allowed = np.fromiter((int(i) for i in media_ids), np.int64)
            top = int(max(allowed.max(initial=0), self.media.max(initial=0))) + 1
            table = np.zeros(top, bool)
            table[allowed[allowed >= 0]] = True
            m = table[self.media]
        for name, values in text_filters.items():
            if values is None:
                continue
            values = [values] if isinstance(values, str) else list(values)
            vocab = self.vocab.get(name, [])
            table = np.zeros(len(vocab) + 1, bool)
            table[[vocab.index(v) for v in values if v in vocab]] = True
            sel = table[self.meta_codes[name]]
            if m is None:
                m = sel
            else:
                m &= sel
        if m is None:
            return None if self.alive.all() else self.alive
        return m & self.alive

    def candidates(self, q: np.ndarray, n: int, mask: np.ndarray | None,
                   n_hamming: int | None = None) -> np.ndarray:
        """Ids of about the n codes nearest the query vector among the masked rows.

        Two steps: the `n_hamming` nearest by Hamming distance (query binarised), then
        the best n of those by the asymmetric score (the query's real-valued projection
        against each candidate's bits, an inner-product estimate that keeps what the
        query's sign threw away). Measured on 1M generated vectors, 256 bits: Hamming
        top-300 alone holds 89% of the true top-10, Hamming top-3000 -> asymmetric
        top-300 holds 97%, at the same re-rank cost."""
        coder = self.coder
        p = coder.project(q)[0]
        qw = as_words(np.packbits(p[coder.bit_dims] > coder.thresholds,
                                  bitorder="little")[None])[0]
        n_hamming = max(n, n_hamming or 0)
        cap = coder.n_bits + 1
        if mask is not None:
            rows = np.flatnonzero(mask)
            if len(rows) < 0.25 * len(mask):          # selective filter: scan only those
                cols = np.ascontiguousarray(self.cols[:, rows])
                pick = rows[smallest(hamming(cols, qw), n_hamming, coder.n_bits)]
            else:
                d = hamming(self.cols, qw)
                np.maximum(d, self._penalty(mask, cap), out=d)   # filtered-out rows -> cap
                pick = smallest(d, min(n_hamming, len(rows)), cap)
        else:
            pick = smallest(hamming(self.cols, qw), n_hamming, coder.n_bits)
        if len(pick) > n and coder.family == "itq":
            # score = sum_i p_i * (+1 if bit i else -1), a byte at a time via a lookup table
            codes = np.ascontiguousarray(self.cols[:, pick].T).view(np.uint8)
            lut = _SIGNS @ p.reshape(-1, 8).T                        # (256, bytes)
            score = lut[codes, np.arange(codes.shape[1])].sum(axis=1)
            pick = pick[np.argpartition(-score, n)[:n]]
        return self.ids[pick[:n]] if len(pick) > n else self.ids[pick]


# +-1 for the 8 bits of each byte value, little-endian like np.packbits(bitorder="little")
_SIGNS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1,
                       bitorder="little").astype(np.float32) * 2 - 1

def code_index(store, space: Space | str) -> CodeIndex | None:
    """The process-wide in-memory index of a library's codes (loaded on first use through
    models.loading, refreshed from the change log on every later call), or None when not
    fitted."""
    sp = SPACES[space] if isinstance(space, str) else space
    if not has_code_tables(store):
        return None
    idx = lazy(f"code-index:{sp.name}@{store.path}", lambda: CodeIndex(sp)).get()
    with idx.lock:
        idx.refresh(store)
        return idx if idx.coder is not None else None


def drop_cached_indexes() -> None:
    unload_all("code-index:")


def rerank(store, space: Space | str, q: np.ndarray, ids: Sequence[int], k: int
           ) -> list[tuple[int, int, float]]:
    """[(id, media_id, cosine)] of the k best of `ids` by their int8 vectors."""
    sp = SPACES[space] if isinstance(space, str) else space
    ids = [int(i) for i in ids]
    if not ids:
        return []
    rows = []
    conn = _conn(store)
    for part in range(0, len(ids), 30000):
        chunk = ids[part:part + 30000]
        rows += conn.execute(f"SELECT {sp.id_col}, media_id, v FROM {sp.rr_table} WHERE "
                             f"{sp.id_col} IN ({','.join(map(str, chunk))})").fetchall()
    if not rows:
        return []
    vecs = from_int8([r[2] for r in rows], sp.dim)
    norms = np.linalg.norm(vecs, axis=1)
    sims = (vecs @ q) / np.maximum(norms, 1e-12)
    order = np.argsort(-sims, kind="stable")[:k]
    return [(int(rows[i][0]), int(rows[i][1]), float(sims[i])) for i in order]


def dirty_media(store, space: Space | str) -> list[int]:
    sp = SPACES[space] if isinstance(space, str) else space
    return [r[0] for r in _conn(store).execute(
        "SELECT media_id FROM search_dirty WHERE space = ?", (sp.name,)).fetchall()]


def exact_over_media(store, space: Space | str, q: np.ndarray, media_ids: Sequence[int], k: int,
                     kinds: Sequence[str] | None = None, language: str | None = None,
                     exclude: Iterable[int] = ()) -> list[tuple[int, int, float]]:
    """Exact cosine KNN over the stored vectors of a few media, in numpy (their vectors
    are read by chunk, not by scanning the whole vec0 table)."""
    sp = SPACES[space] if isinstance(space, str) else space
    if not media_ids:
        return []
    data = read_vectors(store, sp, _owner_ids(_conn(store), sp, list(media_ids)))
    keep = np.ones(len(data["ids"]), bool)
    if kinds is not None:
        keep &= np.isin(data["kind"].astype(str), list(kinds))
    if language is not None and "language" in data:
        keep &= data["language"].astype(str) == language
    exclude = set(int(e) for e in exclude)
    if exclude:
        keep &= ~np.isin(data["ids"], list(exclude))
    if not keep.any():
        return []
    vecs = data["vectors"][keep]
    sims = vecs @ q / np.maximum(np.linalg.norm(vecs, axis=1), 1e-12)
    order = np.argsort(-sims, kind="stable")[:k]
    ids, media = data["ids"][keep], data["media_id"][keep]
    return [(int(ids[i]), int(media[i]), float(sims[i])) for i in order]


def binary_knn(store, space: Space | str, q: np.ndarray, k: int = 10, *,
               media_ids: Iterable[int] | None = None, kinds: Sequence[str] | None = None,
               language: str | None = None, oversample: int = DEFAULT_OVERSAMPLE,
               hamming_factor: int = HAMMING_FACTOR, exclude: Iterable[int] = ()
               ) -> list[tuple[int, int, float]] | None:
    """The k nearest rows by Hamming prefilter + int8 re-rank: [(id, media_id, cosine)],
    best first; None when the space has no codes (use the exact path).

    Media changed since their codes were written (`search_dirty`, until `sync` or
    `maintain` runs) are left out of the code scan and searched exactly instead, so a
    search never misses or mis-scores what was just indexed, and never writes."""
    sp = SPACES[space] if isinstance(space, str) else space
    idx = code_index(store, sp)
    if idx is None:
        return None
    q = np.asarray(q, np.float32).reshape(-1)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    text = {}
    if kinds is not None:
        text["kind"] = list(kinds)
    if language is not None and any(n == "language" for n, _ in sp.meta):
        text["language"] = language
    else:
        language = None
    exclude = set(int(e) for e in exclude)
    media_ids = None if media_ids is None else [int(m) for m in media_ids]
    dirty = dirty_media(store, sp)
    if media_ids is not None:
        allowed = set(media_ids)
        dirty = [m for m in dirty if m in allowed]
    with idx.lock:
        mask = idx.mask(media_ids, **text)
        if dirty:
            clean = ~np.isin(idx.media, dirty)
            mask = clean & (idx.alive if mask is None else mask)
        want = max(MIN_CANDIDATES, k * oversample) + len(exclude)
        if mask is not None and mask.sum() < SELECTIVE * len(mask):
            # Under a selective filter the true neighbours are farther away and closer
            # together (near-ties), where codes rank worst; the scan is cheaper, so
            # re-rank more (measured: benchmarks/README.md, "Scale: 1M moments").
            want *= SELECTIVE_BOOST
        cand = idx.candidates(q, want, mask, want * hamming_factor)
    cand = [c for c in cand.tolist() if c not in exclude]
    res = rerank(store, sp, q, cand, k)
    if dirty:
        res += exact_over_media(store, sp, q, dirty, k, kinds, language, exclude)
        res.sort(key=lambda r: -r[2])
        res = res[:k]
    return res
