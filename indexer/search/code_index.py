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

The SQL lives in the store: indexer.store.codes (code tables, coder, change log) and
indexer.store.vec0 (bulk reads of vec0 tables).
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Iterable, Sequence

import numpy as np

from models.binary_codes import BinaryCoder, as_words, fit_coder, hamming, smallest, word_major
from models.loading import lazy, unload_all
from models.whitening import MIN_ROWS as WHITEN_MIN_ROWS
from models.whitening import Whitening, fit_whitening

from indexer.store import codes as sql
from indexer.store.codes import SPACES, Space
from indexer.store.vec0 import read_vec0, vec0_count
from indexer.store.vec_codec import from_int8, int8_rows_to_float, to_int8

__all__ = ["SPACES", "Space", "CodeIndex", "binary_knn", "code_index", "dirty_media",
           "drop_cached_indexes", "exact_over_media", "fit", "has_code_tables", "load_coder",
           "maintain", "read_vec0", "read_vectors", "reconcile", "rerank", "sync", "trim_log",
           "vec_count", "vectors_of", "whitening", "fit_whitening_of", "maintain_whitening"]

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
WHITEN_REFIT = 1.25        # refit the keyframe whitening once the keyframes grew (or shrank)
                           # this many times since it was fitted

# The keyframe whitening (models.whitening) is kept in `search_codec` beside the coders,
# under a name of its own: one row, refitted by `maintain`, read by searches.
WHITENED = dataclasses.replace(SPACES["keyframe"], name="keyframe-whitening")


def _space(space: Space | str) -> Space:
    return SPACES[space] if isinstance(space, str) else space


def has_code_tables(store) -> bool:
    return sql.has_code_tables(store.db.conn)


def vec_count(store, space: Space | str) -> int:
    return vec0_count(store.db.conn, _space(space).vec_table)


def read_vectors(store, space: Space | str, ids=None) -> dict:
    """Vectors of a space (all, or by id; unit-length float32) with media_id/kind(/language)."""
    sp = _space(space)
    res = read_vec0(store.db.conn, sp.vec_table, sp.dim, sp.meta, ids)
    res["vectors"] = int8_rows_to_float(res["vectors"], sp.dim)
    return res


# ---- fitting and keeping in step ------------------------------------------------------------
def load_coder(store, space: Space | str) -> tuple[BinaryCoder, dict] | None:
    sp = _space(space)
    if not has_code_tables(store):
        return None
    row = sql.coder_row(store.db.conn, sp)
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
        sql.insert_codes(conn, sp, data["ids"][sl].tolist(), coder.encode(vecs),
                         {c: data[c][sl].tolist() for c in cols},
                         data["media_id"][sl].tolist(), to_int8(vecs))


def fit(store, space: Space | str, *, n_bits: int | None = None, family: str | None = None,
        sample: int = FIT_SAMPLE, seed: int = 0) -> dict:
    """Fit the coder on the library's own vectors and (re-)encode every row."""
    sp = _space(space)
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
    conn = store.db.conn
    with store.transaction():
        sql.clear_space(conn, sp)
        sql.save_coder(conn, sp, coder.family, coder.n_bits, n, coder.to_bytes())
        _write_codes(conn, sp, coder, data)
        sql.log_marker(conn, sp, "reset")
    return {"space": sp.name, "rows": n, "bits": coder.n_bits, "family": coder.family,
            "read_s": round(t_read, 2), "fit_s": round(t_fit, 2),
            "total_s": round(time.perf_counter() - t0, 2)}


def sync(store, space: Space | str, media_ids: Sequence[int] | None = None) -> int:
    """Re-encode the dirty media (or the given ones) with the current coder. Returns the
    number of code rows written. A no-op when the space has no coder yet."""
    sp = _space(space)
    loaded = load_coder(store, sp)
    if loaded is None:
        return 0
    coder = loaded[0]
    conn = store.db.conn
    if media_ids is None:
        media_ids = sql.dirty_media(conn, sp)
    if not media_ids:
        return 0
    written = 0
    with store.transaction():
        for part in range(0, len(media_ids), 200):
            mids = list(media_ids[part:part + 200])
            old = sql.coded_ids(conn, sp, mids)
            data = read_vectors(store, sp, sql.owner_ids(conn, sp, mids))
            new = set(data["ids"].tolist())
            # codes under these ids but filed under another media (ids reused) go too
            old = sorted(set(old) | sql.coded_among(conn, sp, sorted(new))) if new else old
            if old:
                sql.delete_codes(conn, sp, old)
                sql.log_changes(conn, sp, [i for i in old if i not in new], "del")
            if len(data["ids"]):
                _write_codes(conn, sp, coder, data)
                sql.log_changes(conn, sp, data["ids"].tolist(), "put")
                written += len(data["ids"])
            sql.clear_dirty(conn, sp, mids)
    return written


def reconcile(store, space: Space | str) -> int:
    """Mark dirty every media whose vectors and codes disagree in membership (a full
    anti-join; slow-ish at 1M rows, so `maintain` runs it, searches do not)."""
    sp = _space(space)
    conn = store.db.conn
    vec_ids = read_vec0(conn, sp.vec_table, sp.dim, (("media_id", "int"),),
                        with_vectors=False)
    have = np.array(sql.coded_ids(conn, sp), np.int64)
    missing = np.setdiff1d(vec_ids["ids"], have)
    stale = np.setdiff1d(have, vec_ids["ids"])
    media = set(vec_ids["media_id"][np.isin(vec_ids["ids"], missing)].tolist())
    if len(stale):
        media |= sql.media_of_coded(conn, sp, stale.tolist())
    if media:
        with store.transaction():
            sql.mark_dirty(conn, sp, media)
    return len(media)


def maintain(store, spaces: Sequence[str] = ("segment", "keyframe"), *,
             min_rows: int = FIT_MIN_ROWS, growth: float = REFIT_GROWTH,
             full_check: bool = True) -> list[dict]:
    """Fit codes once a space holds `min_rows` vectors, refit when it has grown `growth`
    times since, and encode what changed; with "keyframe", keep the keyframe whitening
    current too (`maintain_whitening`, reported last). Meant for after indexing (a
    pipeline step or an idle-time job), not for the query path. Returns what was done per
    space."""
    if not has_code_tables(store):
        return []
    report = _maintain_codes(store, spaces, min_rows, growth, full_check)
    if "keyframe" in spaces:
        report.append(maintain_whitening(store))
    return report


def _maintain_codes(store, spaces, min_rows, growth, full_check) -> list[dict]:
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


# ---- the keyframe whitening -----------------------------------------------------------------
def fit_whitening_of(store, **kw) -> dict:
    """Fit the whitening on (a sample of FIT_SAMPLE of) the library's keyframe features and
    keep it (kw: fit_whitening's)."""
    t0 = time.perf_counter()
    sp = SPACES["keyframe"]
    ids = read_vec0(store.db.conn, sp.vec_table, sp.dim, (), with_vectors=False)["ids"]
    if len(ids) > FIT_SAMPLE:            # read only the sample's vectors, not a million
        ids = np.random.default_rng(0).choice(ids, FIT_SAMPLE, replace=False)
    w = fit_whitening(read_vectors(store, sp, ids)["vectors"], **kw)
    w.n_fit = vec_count(store, sp)
    with store.transaction():
        sql.save_coder(store.db.conn, WHITENED, "pca-whiten", w.dims, w.n_fit, w.to_bytes())
    return {"space": WHITENED.name, "rows": w.n_fit, "dims": w.dims,
            "total_s": round(time.perf_counter() - t0, 2)}


def maintain_whitening(store, *, min_rows: int = WHITEN_MIN_ROWS,
                       growth: float = WHITEN_REFIT) -> dict:
    """Fit the keyframe whitening once the library holds `min_rows` keyframes, refit it when
    their number has changed `growth`-fold since; drop it when too few are left."""
    n = vec_count(store, "keyframe")
    row = sql.coder_row(store.db.conn, WHITENED)
    active = row is not None and Whitening.from_bytes(row[0]).dims > 0
    if n < min_rows:
        if active:
            # what it was learnt from is mostly gone: kept as "none" (no dims), not deleted
            d = SPACES["keyframe"].dim
            off = Whitening(np.zeros(d, np.float32), np.zeros((d, 0), np.float32), n)
            with store.transaction():
                sql.save_coder(store.db.conn, WHITENED, "pca-whiten", 0, n, off.to_bytes())
            return {"space": WHITENED.name, "rows": n, "action": "dropped (too few rows)"}
        return {"space": WHITENED.name, "rows": n, "action": "none (too few rows)"}
    if active and row[1] / growth < n < row[1] * growth:
        return {"space": WHITENED.name, "rows": n, "action": "kept"}
    r = fit_whitening_of(store)
    r["action"] = "fit" if row is None else "refit"
    return r


def whitening(store) -> Whitening | None:
    """The library's keyframe whitening (read once per fit and process), or None."""
    if not has_code_tables(store):
        return None
    at = sql.fitted_at(store.db.conn, WHITENED)
    if at is None:
        return None
    holder = lazy(f"keyframe-whitening@{store.path}", lambda: {}).get()
    if holder.get("at") != at:
        row = sql.coder_row(store.db.conn, WHITENED)
        if row is None:
            return None
        w = Whitening.from_bytes(row[0])
        holder.update(at=at, whitening=w if w.dims else None)
    return holder["whitening"]


def trim_log(store, space: Space | str, keep: int = LOG_MAX) -> bool:
    """Drop a space's change log once it holds more than `keep` entries, leaving a 'trim'
    marker: an in-memory index that has not replayed them reloads instead."""
    sp = _space(space)
    conn = store.db.conn
    if sql.log_size(conn, sp) <= keep:
        return False
    with store.transaction():
        sql.clear_log(conn, sp)
        sql.log_marker(conn, sp, "trim")
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
        conn = store.db.conn
        loaded = load_coder(store, self.space)
        self.coder, info = loaded if loaded else (None, {})
        self.fitted_at = info.get("fitted_at")
        self.last_seq = sql.last_change(conn)
        data = read_vec0(conn, self.space.code_table, self.space.n_bits // 8, self.space.meta,
                         text_codes=True)
        self.vocab = {}
        self.ids = data["ids"]
        self.cols, self.media, self.meta_codes = self._rows(data)
        self.alive = np.ones(len(self.ids), bool)
        self._rows_version += 1

    def refresh(self, store) -> None:
        conn = store.db.conn
        fitted_at = sql.fitted_at(conn, self.space)
        if fitted_at is None:               # not fitted (or dropped): nothing to scan
            self.coder, self.fitted_at = None, None
            return
        if fitted_at != self.fitted_at or self.coder is None:
            self.load(store)
            return
        changes = sql.changes_since(conn, self.space, self.last_seq)
        top = sql.last_change(conn)
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

    MASK_CACHE = 8  # a live search repeats one filter per keystroke

    def mask(self, media_ids: Iterable[int] | None = None, **text_filters) -> np.ndarray | None:
        """Rows passing the filters (None = all rows alive), read-only. text_filters:
        column -> allowed values (a str or a list). The last few masks are cached until
        the rows change (why: benchmarks/README.md, "Scale: 1M moments")."""
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
        """uint16 per row: 0 where the mask passes, cap where not, so that one np.maximum
        applies the filter to Hamming distances."""
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
    sp = _space(space)
    if not has_code_tables(store):
        return None
    idx = lazy(f"code-index:{sp.name}@{store.path}", lambda: CodeIndex(sp)).get()
    with idx.lock:
        idx.refresh(store)
        return idx if idx.coder is not None else None


def drop_cached_indexes() -> None:
    unload_all("code-index:")


def similarities(vecs: np.ndarray, q: np.ndarray, whitening: Whitening | None = None
                 ) -> np.ndarray:
    """Cosine of each row of vecs with the unit query, in the whitened space if given."""
    if whitening is not None:
        return whitening.transform(vecs) @ whitening.transform(q)[0]
    return (vecs @ q) / np.maximum(np.linalg.norm(vecs, axis=1), 1e-12)


def rerank(store, space: Space | str, q: np.ndarray, ids: Sequence[int], k: int,
           whitening: Whitening | None = None) -> list[tuple[int, int, float]]:
    """[(id, media_id, cosine)] of the k best of `ids` by their int8 vectors (the cosine
    in the whitened space with `whitening`)."""
    sp = _space(space)
    ids = [int(i) for i in ids]
    if not ids:
        return []
    rows = sql.rerank_rows(store.db.conn, sp, ids)
    if not rows:
        return []
    sims = similarities(from_int8([r[2] for r in rows], sp.dim), q, whitening)
    order = np.argsort(-sims, kind="stable")[:k]
    return [(int(rows[i][0]), int(rows[i][1]), float(sims[i])) for i in order]


def vectors_of(store, space: Space | str, ids: Sequence[int]) -> dict[int, np.ndarray]:
    """id -> float32 vector of the given rows: from the int8 re-rank table when the space
    has codes (rows of media changed since, from the vectors), else from the vectors (a
    small library, whose vec0 chunks are few)."""
    sp = _space(space)
    ids = [int(i) for i in ids]
    out: dict[int, np.ndarray] = {}
    if has_code_tables(store) and sql.fitted_at(store.db.conn, sp) is not None:
        rows = sql.rerank_rows(store.db.conn, sp, ids)
        if rows:
            vecs = from_int8([r[2] for r in rows], sp.dim)
            out = {int(r[0]): v for r, v in zip(rows, vecs)}
    missing = [i for i in ids if i not in out]
    if missing:
        data = read_vectors(store, sp, missing)
        out.update(zip(data["ids"].tolist(), data["vectors"]))
    return out


def dirty_media(store, space: Space | str) -> list[int]:
    return sql.dirty_media(store.db.conn, _space(space))


def exact_over_media(store, space: Space | str, q: np.ndarray, media_ids: Sequence[int], k: int,
                     kinds: Sequence[str] | None = None, language: str | None = None,
                     exclude: Iterable[int] = (), whitening: Whitening | None = None
                     ) -> list[tuple[int, int, float]]:
    """Exact cosine KNN over the stored vectors of a few media, in numpy (their vectors
    are read by chunk, not by scanning the whole vec0 table); whitened with `whitening`."""
    sp = _space(space)
    if not media_ids:
        return []
    data = read_vectors(store, sp, sql.owner_ids(store.db.conn, sp, list(media_ids)))
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
    sims = similarities(vecs, q, whitening)
    order = np.argsort(-sims, kind="stable")[:k]
    ids, media = data["ids"][keep], data["media_id"][keep]
    return [(int(ids[i]), int(media[i]), float(sims[i])) for i in order]


def binary_knn(store, space: Space | str, q: np.ndarray, k: int = 10, *,
               media_ids: Iterable[int] | None = None, kinds: Sequence[str] | None = None,
               language: str | None = None, oversample: int = DEFAULT_OVERSAMPLE,
               hamming_factor: int = HAMMING_FACTOR, exclude: Iterable[int] = (),
               whitening: Whitening | None = None
               ) -> list[tuple[int, int, float]] | None:
    """The k nearest rows by Hamming prefilter + int8 re-rank: [(id, media_id, cosine)],
    best first; None when the space has no codes (use the exact path). With `whitening`,
    the candidates are re-ranked by (and carry) their cosine in the whitened space.

    Media changed since their codes were written (`search_dirty`, until `sync` or
    `maintain` runs) are left out of the code scan and searched exactly instead, so a
    search never misses or mis-scores what was just indexed, and never writes."""
    sp = _space(space)
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
    res = rerank(store, sp, q, cand, k, whitening)
    if dirty:
        res += exact_over_media(store, sp, q, dirty, k, kinds, language, exclude, whitening)
        res.sort(key=lambda r: -r[2])
        res = res[:k]
    return res
