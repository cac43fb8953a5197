"""The search service: one way in for the CLI and the GUI.

A text query goes two ways and the ranked lists are fused with weighted
reciprocal-rank fusion (RRF, score = sum_w w / (rrf_k + rank)):

- full text (FTS5, bm25) over what was said (transcript segments, keywords), shown
  (on-screen text) and tagged. All words must match; when fewer than the wanted
  number of rows do, relaxed matches are added. Full-text-only search relaxes to any
  content word (stopwords dropped). Hybrid search relaxes only to the query's rare
  words (in at most RARE_FRACTION of a table's rows), which may surface a moment on
  their own; common words only support moments the meaning side found (the windows
  are scored in Python, `_relaxed_said`), so an unrelated query finds nothing. A word
  matching more than FTS_RANK_ALL_MAX rows is ranked over its newest FTS_SAMPLE
  matches only (bm25 over 100k rows of "the" took 240 ms at 1M moments).
- meaning: KNN over transcript-window embeddings (`segment_vec`, via the binary-code
  index of indexer.search.code_index when the library is big enough, else the exact float
  KNN). Windows under the calibrated similarity floor (indexer.stages.text.MIN_SIMILARITY)
  are dropped, so an unrelated query finds nothing.

An image (a file, an array, a 1280-d feature or a keyframe id) adds a third list:
the nearest keyframes. `more_like_this(hit)` finds neighbours in the hit's own
modality (transcript windows for speech, keyframes for what is seen).

Hits from all lists that fall on the same stretch of the same file are one
*moment* (a `Hit`): file, start, end, what matched (`kinds`), fused score, a snippet
with matches in [brackets], and the thumbnail of the keyframe nearest its start.
`group_by_file(hits)` gives the per-file view.

Filters (`Filters`: media kind, language, tag, folder, added/modified date,
duration) apply before ranking: inside the FTS query (a join) and inside the vector
scan, so a filtered search still returns `limit` moments whenever that many match.
Tag filters are per file (a file carrying the tag anywhere).

A moment is placed in time by its strongest precise evidence: a strict text match,
else the meaning window (or keyframe), else a relaxed text match, else a long range
(a 60 s keyword window, a tag's span). Every timestamp is clamped into its file.

    hits = search(store, "quarterly budget", filters=Filters(language="en"), limit=20)
    hits = search(store, image="photo.jpg", models_dir=settings.resolved_models_dir())
    more = more_like_this(store, hits[0])
    for group in group_by_file(hits): ...
"""
from __future__ import annotations

import datetime as _dt
import functools
import os
import re
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

from indexer.store import Store
from indexer.store.vec_codec import int8_blob

MARK_OPEN, MARK_CLOSE = "[", "]"

# The RRF constant and list weights were tuned on the dev split of
# benchmarks/search_quality.py (spoken content, paraphrased and keyword queries; see
# benchmarks/README.md "Search"): transcript word matches ("said") at half the weight of
# meaning matches; many settings tie on 34 dev queries, and ties went, by a rule fixed in
# advance, to the one nearest the usual rrf_k=60. "shown", "tag" and "image" had no
# evaluation data and keep weight 1.
RRF_K = 60.0
WEIGHTS = {"said": 0.5, "keyword": 0.5, "shown": 1.0, "tag": 1.0, "similar": 1.0,
           "image": 1.0}
CANDIDATES = 50          # rows taken from each list before fusing (at least `limit`)
MOMENT_SPAN_S = 30.0     # a hit joins a moment when their first 30 s overlap
SNIPPET_TOKENS = 20
WINDOW_SNIPPET_TOKENS = 36
IMAGE_MIN_SIMILARITY = None   # no floor for search by example: the nearest frames are asked for

# (list name, FTS table, content table, text column, match kind)
_SOURCES = (
    ("said", "segments_fts", "segments", "text", "said"),
    ("shown", "screen_text_fts", "screen_text", "text", "shown"),
    ("tag", "tags_fts", "tags", "label", "tag"),
    ("keyword", "keywords_fts", "keywords", "keyword", "said"),
)

_EXACT_KINDS = ("said", "shown", "tag")


@dataclass
class Hit:
    media_id: int
    path: str
    start: float
    end: float
    kind: str            # said, shown, tag, similar (the strongest of `kinds`)
    snippet: str
    score: float
    kinds: list = field(default_factory=list)      # every way this moment matched
    thumbnail: str | None = None                   # relative to the thumbnail folder
    segment_id: int | None = None                  # a transcript segment / window start
    keyframe_id: int | None = None
    similarity: float | None = None                # cosine of the best vector match
    ranks: dict = field(default_factory=dict)      # list name -> rank (1 = best)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FileHits:
    media_id: int
    path: str
    score: float
    hits: list


def group_by_file(hits: Sequence[Hit]) -> list[FileHits]:
    """Moments grouped per file; files ordered by their best moment, moments by time."""
    groups: dict[int, FileHits] = {}
    for h in hits:
        g = groups.get(h.media_id)
        if g is None:
            g = groups[h.media_id] = FileHits(h.media_id, h.path, h.score, [])
        g.hits.append(h)
        g.score = max(g.score, h.score)
    out = sorted(groups.values(), key=lambda g: -g.score)
    for g in out:
        g.hits.sort(key=lambda h: h.start)
    return out


# ---- filters -------------------------------------------------------------------------------
@dataclass
class Filters:
    kind: str | Sequence[str] | None = None     # audio, video (= any file with video), audio+video
    language: str | None = None                 # ISO code as Whisper reports it ("en")
    tag: str | None = None                      # files carrying this tag (case-insensitive)
    folder: str | os.PathLike | None = None     # path prefix
    since: str | float | _dt.date | None = None  # date or epoch seconds, inclusive
    until: str | float | _dt.date | None = None  # exclusive
    date_field: str = "added"                   # "added" (to the library) or "modified" (file)
    min_duration: float | None = None           # seconds
    max_duration: float | None = None

    def media_level(self) -> bool:
        return any(v is not None for v in (self.tag, self.folder, self.since, self.until,
                                          self.min_duration, self.max_duration))

    def kinds(self) -> list[str] | None:
        if self.kind is None:
            return None
        out: list[str] = []
        for k in ([self.kind] if isinstance(self.kind, str) else self.kind):
            k = k.lower()
            out += ["video", "audio+video"] if k == "video" else [k]
        return sorted(set(out))

    def is_empty(self) -> bool:
        return self.kind is None and self.language is None and not self.media_level()


def _epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, _dt.datetime):
        d = value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
        return d.timestamp()
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day,
                            tzinfo=_dt.timezone.utc).timestamp()
    text = str(value).strip().replace("Z", "+00:00")
    d = _dt.datetime.fromisoformat(text)
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


def _iso(value) -> str:
    d = _dt.datetime.fromtimestamp(_epoch(value), tz=_dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _folder_prefix(folder) -> str:
    p = os.path.abspath(os.path.expanduser(str(folder)))
    return p if p.endswith(os.sep) else p + os.sep


def _media_sql(f: Filters | None, alias: str = "m") -> tuple[list[str], list]:
    """SQL conditions on the media table for the file-level filters."""
    if f is None:
        return [], []
    conds, params = [], []
    kinds = f.kinds()
    if kinds:
        conds.append(f"{alias}.kind IN ({','.join('?' * len(kinds))})")
        params += kinds
    if f.tag is not None:
        conds.append(f"{alias}.id IN (SELECT media_id FROM tags WHERE lower(label) = lower(?))")
        params.append(f.tag.strip())
    if f.folder is not None:
        prefix = _folder_prefix(f.folder)
        conds.append(f"substr({alias}.path, 1, ?) = ?")
        params += [len(prefix), prefix]
    if f.date_field not in ("added", "modified"):
        raise ValueError("date_field must be 'added' or 'modified'")
    for value, op in ((f.since, ">="), (f.until, "<")):
        if value is None:
            continue
        if f.date_field == "added":
            conds.append(f"{alias}.added_at {op} ?")
            params.append(_iso(value))
        else:
            conds.append(f"{alias}.mtime_ns {op} ?")
            params.append(int(_epoch(value) * 1e9))
    if f.min_duration is not None:
        conds.append(f"{alias}.duration >= ?")
        params.append(float(f.min_duration))
    if f.max_duration is not None:
        conds.append(f"{alias}.duration <= ?")
        params.append(float(f.max_duration))
    return conds, params


def allowed_media(store: Store, f: Filters | None) -> list[int] | None:
    """Ids of the files passing the file-level filters, or None when there are none."""
    if f is None or not f.media_level():
        return None
    conds, params = _media_sql(f)
    sql = "SELECT m.id FROM media m" + (" WHERE " + " AND ".join(conds) if conds else "")
    return [r[0] for r in store.db.execute(sql, params).fetchall()]


# ---- full text ------------------------------------------------------------------------------
_TOKEN = re.compile(r'"[^"]*"|\S+')

# Words too common to make a relaxed (any-word) match mean anything: en, fr, de, es, it, pt.
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me more most my myself no nor not now of off on once only or other our ours ourselves out
over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which while
who whom why will with would you your yours yourself yourselves said say says talk talked talking
tell told thing things something anything part bit someone somebody people one ones get got
le la les un une des du de d l et ou en au aux ce cet cette ces il elle ils elles on nous vous je
tu me te se sa son ses leur leurs mon ma mes ton ta tes qui que quoi dont où est sont était être
avoir a ai as avons avez ont pas ne plus pour par avec dans sur sous chez comme mais donc ni car
y quand parle parlé dit
der die das den dem des ein eine einen einem einer eines und oder aber nicht ist sind war waren
ich du er sie es wir ihr mit von zu zum zur im in am an auf aus bei für über unter um wie was wer
wo wann warum dass hat haben wird werden sich auch noch nur so sagt gesagt
el la los las un una unos unas y o pero no es son era fue ser estar está de del al en con por para
sobre como que qué quien cuando donde se su sus lo le les me te mi tu nos dijo habla hablan
il lo gli i una uno e non è sono di da con per su tra fra che chi come dove quando
o os as um uma é são do da dos das no na nos nas em com por para que
""".split())


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


def relaxed_query(text: str) -> str | None:
    """Any content word (stopwords and 1-letter words dropped), ORed; None when that would
    be the same as the strict query or nothing is left."""
    if '"' in text:
        return None                           # the user asked for a phrase: keep it strict
    words, seen = [], set()
    for tok in _TOKEN.findall(text.strip()):
        prefix = tok.endswith("*")
        ws = re.findall(r"\w+", tok)
        for i, w in enumerate(ws):
            lw = w.lower()
            if lw in STOPWORDS or len(lw) < 2 or lw in seen:
                continue
            seen.add(lw)
            words.append(f'"{w}"' + ("*" if prefix and i == len(ws) - 1 else ""))
    if len(words) < 2 and words == [p for p in (fts_query(text) or "").split(" ") if p]:
        return None
    return " OR ".join(words) or None


@dataclass
class _Item:
    list: str
    kind: str
    media_id: int
    start: float
    end: float
    rank: int = 0
    relaxed: bool = False
    rowid: int | None = None          # FTS row (for the snippet)
    fts: str | None = None
    segment_id: int | None = None
    keyframe_id: int | None = None
    similarity: float | None = None
    text: str | None = None
    creates: bool = True              # may start a moment of its own (see _fuse)


FTS_RANK_ALL_MAX = 20000   # rank every match by bm25 up to this many (estimated) matches
FTS_SAMPLE = 2000          # beyond it, rank the newest FTS_SAMPLE matches only

def _vocab_row(store: Store, fts: str, sql: str, params: tuple):
    """Run `sql` ({v} = a temp fts5vocab table over `fts`, made on first use on this
    connection: document frequency per term) and return its first row."""
    name = f"temp.avindex_{fts}_vocab"
    try:
        return store.db.execute(sql.format(v=name), params).fetchone()
    except Exception as exc:
        if "no such table" not in str(exc):
            raise
    store.db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {name} "
                     f"USING fts5vocab(main, '{fts}', 'row')")
    return store.db.execute(sql.format(v=name), params).fetchone()


_DF_CACHE: dict = {}


def _doc_freq(store: Store, fts: str, term: str, prefix: bool) -> int:
    """Documents of an FTS table holding a term (or a prefix's terms, summed; an upper
    bound). Cached per connection until the database changes (PRAGMA data_version and
    the connection's own total_changes)."""
    term = _fold(term)
    conn = store.db.conn
    raw = getattr(conn, "_raw", conn)
    stamp = (raw.execute("PRAGMA data_version").fetchone()[0], raw.total_changes)
    cache = _DF_CACHE.get(id(raw))
    if cache is None or cache[0] != stamp:
        if len(_DF_CACHE) > 16:
            _DF_CACHE.clear()
        cache = _DF_CACHE[id(raw)] = (stamp, {})
    key = (fts, term, prefix)
    if key not in cache[1]:
        cache[1][key] = _doc_freq_uncached(store, fts, term, prefix)
    return cache[1][key]


def _doc_freq_uncached(store: Store, fts: str, term: str, prefix: bool) -> int:
    if prefix:
        row = _vocab_row(store, fts, "SELECT sum(doc) FROM (SELECT doc FROM {v} WHERE term >= ? "
                         "AND term < ? LIMIT 5000)", (term, term + "\U0010ffff"))
    else:
        row = _vocab_row(store, fts, "SELECT doc FROM {v} WHERE term = ?", (term,))
    return int(row[0] or 0) if row else 0


def _estimated_matches(store: Store, fts: str, q: str) -> int:
    """Upper bound of an fts_query/relaxed_query's matches, from document frequencies:
    the rarest word of an AND (a phrase counts as its rarest word), the sum for an OR."""
    groups = []
    for part in q.split(" OR "):
        for tok in re.findall(r'"[^"]*"\*?', part):
            words = tok.strip("*").strip('"').split()
            groups.append(min(_doc_freq(store, fts, w, tok.endswith("*") and i == len(words) - 1)
                              for i, w in enumerate(words)) if words else 0)
    if not groups:
        return 0
    return sum(groups) if " OR " in q else min(groups)


def _fts_rows(store: Store, name: str, fts: str, table: str, q: str, n: int,
              f: Filters | None) -> list[_Item]:
    """The n best rows of one FTS table by bm25. A query matching more than
    FTS_RANK_ALL_MAX rows (a very common word) is ranked over its newest FTS_SAMPLE
    matches only: ranking all 100k rows holding "the" in a 1M-row table took 240 ms."""
    conds, params = _media_sql(f)
    kind = dict((s[0], s[4]) for s in _SOURCES)[name]
    if f is not None and f.language is not None:
        if table == "segments":
            conds.append("coalesce(nullif(t.language, ''), m.language) = ?")
        else:
            conds.append("m.language = ?")
        params.append(f.language)
    start = "coalesce(t.start, 0)"
    end = "coalesce(t.end, t.start, 0)"
    rows_max = store.db.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
    sampled = rows_max > FTS_RANK_ALL_MAX and _estimated_matches(store, fts, q) > FTS_RANK_ALL_MAX
    if not conds:
        # No filter: rank in FTS alone, then fetch only the winners' rows.
        if sampled:
            rows = store.db.execute(f"SELECT rowid, rank FROM {fts} WHERE {fts} MATCH ? "
                                    "ORDER BY rowid DESC LIMIT ?", (q, FTS_SAMPLE)).fetchall()
            ids = [r[0] for r in sorted(rows, key=lambda r: r[1])[:n]]
        else:
            ids = [r[0] for r in store.db.execute(f"SELECT rowid FROM {fts} WHERE {fts} MATCH ? "
                                                  "ORDER BY rank LIMIT ?", (q, n)).fetchall()]
        if not ids:
            return []
        rows = {r[0]: r[1:] for r in store.db.execute(
            f"SELECT t.id, t.media_id, {start}, {end} FROM {table} t WHERE t.id IN "
            f"({','.join('?' * len(ids))})", ids).fetchall()}
        out = []
        for rid in ids:
            if rid in rows:
                mid, s, e = rows[rid]
                out.append(_Item(name, kind, mid, float(s), float(e), rowid=rid, fts=fts))
        return out
    sql = (f"SELECT t.id, t.media_id, {start}, {end}, {fts}.rank FROM {fts} JOIN {table} t "
           f"ON t.id = {fts}.rowid JOIN media m ON m.id = t.media_id WHERE {fts} MATCH ? AND "
           + " AND ".join(conds))
    if sampled:
        rows = store.db.execute(sql + f" ORDER BY {fts}.rowid DESC LIMIT ?",
                                [q, *params, FTS_SAMPLE]).fetchall()
        rows = sorted(rows, key=lambda r: r[4])[:n]
    else:
        rows = store.db.execute(sql + " ORDER BY rank LIMIT ?", [q, *params, n]).fetchall()
    return [_Item(name, kind, mid, float(s), float(e), rowid=rid, fts=fts)
            for rid, mid, s, e, _ in rows]


RARE_FRACTION = 0.002      # a word in at most this share of a table's rows is "rare"
RARE_MIN_DOCS = 3          # ... or in at most this many


def _rare_query(store: Store, fts: str, table: str, query: str) -> str | None:
    """An OR of the query's content words that are rare in this table (see RARE_*)."""
    _, terms = _query_patterns(query, True)
    if not terms:
        return None
    rows = store.db.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
    limit = max(RARE_MIN_DOCS, RARE_FRACTION * rows)
    rare = [f'"{t}"' + ("*" if p else "") for t, p in terms
            if 0 < _doc_freq(store, fts, t, p) <= limit]
    return " OR ".join(rare) or None


def _fts_lists(store: Store, query: str, n: int, f: Filters | None, *,
               hybrid: bool = False) -> dict[str, list[_Item]]:
    """Per FTS source: the strict matches (every word), topped up to n with relaxed ones.

    Full-text search alone relaxes to any content word. In hybrid search only the
    query's *rare* words (RARE_*) make relaxed matches here, and those may surface a
    moment by themselves (a rare word that was said is specific evidence); matches of
    common words are looked for in the meaning hits only (`_relaxed_said`) and can only
    support them, so an unrelated query still finds nothing."""
    strict = fts_query(query)
    if strict is None:
        return {}
    lists: dict[str, list[_Item]] = {}
    for name, fts, table, _col, _kind in _SOURCES:
        try:
            items = _fts_rows(store, name, fts, table, strict, n, f)
        except Exception as exc:            # a malformed query must not break search
            if "fts5" not in str(exc).lower() and "syntax" not in str(exc).lower():
                raise
            items = []
        relaxed = _rare_query(store, fts, table, query) if hybrid else relaxed_query(query)
        if relaxed and relaxed != strict and len(items) < n:
            seen = {it.rowid for it in items}
            try:
                more = _fts_rows(store, name, fts, table, relaxed, n, f)
            except Exception:
                more = []
            for it in more:
                if it.rowid not in seen and len(items) < n:
                    it.relaxed = True
                    it.creates = True
                    items.append(it)
        for r, it in enumerate(items, 1):
            it.rank = r
        if items:
            lists[name] = items
    return lists


def _relaxed_said(store: Store, query: str, sem: list[_Item], said: list[_Item]) -> list[_Item]:
    """Relaxed transcript matches among the meaning hits: each window holding content
    words of the query, scored by the idf of the words it holds, as a relaxed "said"
    item on its best segment. In hybrid search a relaxed match can only support a
    moment found otherwise, so scoring the candidate windows directly gives the same
    support as a corpus-wide OR query, without its cost on common words."""
    if not sem:
        return []
    _, terms = _query_patterns(query, True)
    if not terms:
        return []
    ids = sorted({it.segment_id + j for it in sem for j in range(8)})
    rows = store.db.execute(
        f"SELECT id, media_id, start, end, text FROM segments WHERE id IN "
        f"({','.join('?' * len(ids))})", ids).fetchall()
    by_id = {r[0]: r for r in rows}
    total = store.db.execute("SELECT max(rowid) FROM segments").fetchone()[0] or 1
    idf = {}
    for t, prefix in terms:
        df = _doc_freq(store, "segments_fts", t, prefix)
        idf[(t, prefix)] = np.log(1 + total / max(1, df)) if df else 0.0
    have = {it.rowid for it in said}
    out = []
    for it in sem:
        first = by_id.get(it.segment_id)
        if first is None:
            continue
        best, best_seg, matched = 0.0, None, set()
        for j in range(8):
            r = by_id.get(it.segment_id + j)
            if r is None or r[1] != first[1] or r[2] < first[2] or r[2] > first[2] + 30.0:
                break
            words = {w if w.isascii() else _fold(w) for w in _WORD.findall(r[4].lower())}
            here = {(t, p) for t, p in terms
                    if (t in words) or (p and any(w.startswith(t) for w in words))}
            score = sum(idf[x] for x in here)
            matched |= here
            if score > best:
                best, best_seg = score, r
        if best_seg is None or best_seg[0] in have:
            continue
        total_score = sum(idf[x] for x in matched)
        out.append((total_score, _Item("said", "said", best_seg[1], float(best_seg[2]),
                                       float(best_seg[3]), relaxed=True, rowid=best_seg[0],
                                       fts="segments_fts", creates=False)))
        have.add(best_seg[0])
    out.sort(key=lambda x: -x[0])
    return [it for _, it in out]


# ---- vectors ------------------------------------------------------------------------------
def _has_rows(store: Store, vec_table: str) -> bool:
    try:
        return store.db.execute(f"SELECT 1 FROM {vec_table}_rowids LIMIT 1").fetchone() is not None
    except Exception:
        return store.db.execute(f"SELECT 1 FROM {vec_table} LIMIT 1").fetchone() is not None


def _exact_knn(store: Store, table: str, id_col: str, q: np.ndarray, k: int,
               media_ids: list[int] | None, kinds: list[str] | None, language: str | None,
               exclude: Iterable[int] = ()) -> list[tuple[int, int, float]]:
    """The exact float KNN in sqlite-vec, filters inside the KNN (metadata columns)."""
    from indexer.stages.text import MAX_K
    exclude = set(exclude)
    sql = (f"SELECT {id_col}, media_id, distance FROM {table} "
           "WHERE embedding MATCH vec_int8(?) AND k = ?")
    params: list = [int8_blob(q), min(MAX_K, k + len(exclude))]
    if media_ids is not None:
        if not media_ids:
            return []
        sql += f" AND media_id IN ({','.join('?' * len(media_ids))})"
        params += list(media_ids)
    if kinds:
        sql += f" AND kind IN ({','.join('?' * len(kinds))})"
        params += kinds
    if language is not None:
        sql += " AND language = ?"
        params.append(language)
    rows = store.db.execute(sql + " ORDER BY distance", params).fetchall()
    return [(int(i), int(m), 1.0 - float(d)) for i, m, d in rows if int(i) not in exclude][:k]


def vector_knn(store: Store, space: str, q: np.ndarray, k: int, f: Filters | None = None, *,
               path: str = "auto", exclude: Iterable[int] = (),
               oversample: int | None = None, hamming_factor: int | None = None
               ) -> list[tuple[int, int, float]]:
    """[(id, media_id, cosine)] of the k nearest vectors of a space ("segment" or
    "keyframe") passing the filters, best first. path: "auto" (binary codes when the
    library has them, else exact), "binary" or "exact"."""
    from models.binary_codes import one_blas_thread
    with one_blas_thread():
        return _vector_knn(store, space, q, k, f, path=path, exclude=exclude,
                           oversample=oversample, hamming_factor=hamming_factor)


def _vector_knn(store, space, q, k, f, *, path, exclude, oversample, hamming_factor):
    from indexer.search import code_index
    sp = code_index.SPACES[space]
    q = np.asarray(q, np.float32).reshape(-1)
    if q.shape[0] != sp.dim:
        raise ValueError(f"{space} vectors have {sp.dim} dims, the query {q.shape[0]}")
    norm = float(np.linalg.norm(q))
    if norm == 0 or not np.isfinite(norm):
        return []
    q = q / norm
    media_ids = allowed_media(store, f)
    if media_ids is not None and not media_ids:
        return []
    kinds = f.kinds() if f else None
    language = f.language if (f and space == "segment") else None
    if path in ("auto", "binary"):
        kw = {k: v for k, v in (("oversample", oversample), ("hamming_factor", hamming_factor))
              if v is not None}
        res = code_index.binary_knn(store, sp, q, k, media_ids=media_ids, kinds=kinds,
                                 language=language, exclude=exclude, **kw)
        if res is not None:
            return res
        if path == "binary":
            raise RuntimeError(f"no binary codes for {space} yet (run indexer.search.code_index.maintain)")
    if media_ids is not None and len(media_ids) > 30000:
        # Too many for one IN list: filter after a wide KNN instead.
        allowed = set(media_ids)
        rows = _exact_knn(store, sp.vec_table, sp.id_col, q, 4096, None, kinds, language, exclude)
        return [r for r in rows if r[1] in allowed][:k]
    return _exact_knn(store, sp.vec_table, sp.id_col, q, k, media_ids, kinds, language, exclude)


def _window(store: Store, segment_id: int) -> tuple[int, float, float, str] | None:
    """(media_id, start, end, text) of the transcript window stored under segment_id: the
    first window indexer.stages.text.transcript_windows builds from that segment on (the
    same growth rules, applied to the next few segments only)."""
    from indexer.stages.text import (WINDOW_GAP_S, WINDOW_MAX_S, WINDOW_MAX_SEGMENTS,
                           WINDOW_MIN_SEGMENTS, WINDOW_TARGET_S)
    first = store.db.execute("SELECT media_id, start FROM segments WHERE id = ?",
                             (segment_id,)).fetchone()
    if first is None:
        return None
    media_id, start = first
    segs = [r for r in store.db.execute(
        "SELECT id, start, end, text FROM segments WHERE media_id = ? AND start >= ? "
        "ORDER BY start, id LIMIT ?", (media_id, start, WINDOW_MAX_SEGMENTS + 4)).fetchall()
        if (r[0] == segment_id or r[1] > start) and (r[3] or "").strip()]
    if not segs:
        return media_id, float(start), float(start), ""
    j = 1
    while j < len(segs) and j < WINDOW_MAX_SEGMENTS:
        span = float(segs[j - 1][2]) - float(segs[0][1])
        if span >= WINDOW_TARGET_S and j >= WINDOW_MIN_SEGMENTS:
            break
        if float(segs[j][1]) - float(segs[j - 1][2]) > WINDOW_GAP_S:
            break
        if float(segs[j][2]) - float(segs[0][1]) > WINDOW_MAX_S:
            break
        j += 1
    win = segs[:j]
    return (media_id, float(win[0][1]), max(float(r[2]) for r in win),
            " ".join(" ".join(r[3].split()) for r in win))


def _semantic_list(store: Store, qvec: np.ndarray, n: int, f: Filters | None,
                   min_similarity: float | None, path: str) -> list[_Item]:
    rows = [r for r in vector_knn(store, "segment", qvec, n, f, path=path)
            if min_similarity is None or r[2] >= min_similarity]
    if not rows:
        return []
    # Where each window starts (its first segment) is enough to fuse; the window's full
    # extent and text are worked out for the moments that are shown (_to_hits).
    ids = [r[0] for r in rows]
    seg = {r[0]: r[1:] for r in store.db.execute(
        f"SELECT id, start, end FROM segments WHERE id IN ({','.join('?' * len(ids))})",
        ids).fetchall()}
    out = []
    for seg_id, media_id, sim in rows:
        if seg_id in seg:
            s, e = seg[seg_id]
            out.append(_Item("similar", "similar", media_id, float(s), float(e),
                             segment_id=seg_id, similarity=sim))
    for r, it in enumerate(out, 1):
        it.rank = r
    return out


def _keyframe_item(store: Store, kf_id: int, media_id: int, sim: float) -> _Item | None:
    row = store.db.execute("SELECT time FROM keyframes WHERE id = ?", (kf_id,)).fetchone()
    if row is None:
        return None
    t = float(row[0])
    nxt = store.db.execute("SELECT min(time) FROM keyframes WHERE media_id = ? AND time > ?",
                           (media_id, t)).fetchone()[0]
    end = float(nxt) if nxt is not None else t
    return _Item("image", "similar", media_id, t, max(t, end), keyframe_id=kf_id, similarity=sim)


def _image_list(store: Store, feat: np.ndarray, n: int, f: Filters | None,
                min_similarity: float | None, path: str, exclude: Iterable[int] = ()
                ) -> list[_Item]:
    rows = vector_knn(store, "keyframe", feat, n, f, path=path, exclude=exclude)
    out = []
    for kf_id, media_id, sim in rows:
        if min_similarity is not None and sim < min_similarity:
            continue
        it = _keyframe_item(store, kf_id, media_id, sim)
        if it is not None:
            out.append(it)
    for r, it in enumerate(out, 1):
        it.rank = r
    return out


def image_feature(image, *, models_dir=None, classifier=None) -> np.ndarray:
    """A 1280-d EfficientNet-Lite0 feature from a path, a BGR image array, or a feature."""
    arr = None if isinstance(image, (str, os.PathLike)) else np.asarray(image)
    if arr is not None and arr.ndim == 1:
        return arr.astype(np.float32)
    if classifier is None:
        classifier = _classifier(models_dir)
    if arr is None:
        return classifier.features_of_file(image)
    return classifier.features([arr])[0]


def query_embedder():
    """The text embedder for search queries (models.text_embed.load_query_embedder: the
    library's embedder with one BLAS thread), loaded once per process."""
    from models.text_embed import load_query_embedder
    return load_query_embedder()


def _classifier(models_dir):
    from models.vision.image_features import shared_classifier
    return shared_classifier(models_dir).get()


def keyframe_vector(store: Store, keyframe_id: int) -> np.ndarray | None:
    from indexer.search.code_index import read_vectors
    data = read_vectors(store, "keyframe", [keyframe_id])
    return data["vectors"][0].copy() if len(data["ids"]) else None


def segment_vector(store: Store, segment_id: int) -> np.ndarray | None:
    from indexer.search.code_index import read_vectors
    data = read_vectors(store, "segment", [segment_id])
    return data["vectors"][0].copy() if len(data["ids"]) else None


# ---- fusion -------------------------------------------------------------------------------
@dataclass
class _Moment:
    media_id: int
    start: float
    end: float
    items: list = field(default_factory=list)

    def overlaps(self, it: _Item) -> bool:
        if it.media_id != self.media_id:
            return False
        s, e = it.start, min(it.end, it.start + MOMENT_SPAN_S)
        return s <= min(self.end, self.start + MOMENT_SPAN_S) + 1.0 and e >= self.start - 1.0


def _fuse(lists: dict[str, list[_Item]], rrf_k: float, weights: dict, relaxed_creates: bool
          ) -> list[tuple[float, _Moment]]:
    moments: list[_Moment] = []
    by_media: dict[int, list[_Moment]] = {}

    def place(it: _Item, create: bool) -> None:
        for m in by_media.get(it.media_id, ()):
            if m.overlaps(it):
                m.items.append(it)
                return
        if create:
            m = _Moment(it.media_id, it.start, it.end, [it])
            moments.append(m)
            by_media.setdefault(it.media_id, []).append(m)

    # Best ranks first, across lists, so the strongest hits define the moments.
    strict = sorted((it for items in lists.values() for it in items if not it.relaxed),
                    key=lambda it: (it.rank, -weights.get(it.list, 1.0)))
    for it in strict:
        place(it, True)
    for it in sorted((it for items in lists.values() for it in items if it.relaxed),
                     key=lambda it: it.rank):
        place(it, relaxed_creates or it.creates)
    scored = []
    for m in moments:
        best: dict[str, int] = {}
        for it in m.items:
            best[it.list] = min(best.get(it.list, 10 ** 9), it.rank)
        score = sum(weights.get(name, 1.0) / (rrf_k + r) for name, r in best.items())
        scored.append((score, m))
    scored.sort(key=lambda sm: -sm[0])
    return scored


def _fold(text: str) -> str:
    """Lower case without diacritics, like FTS5's unicode61 remove_diacritics."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=256)
def _query_patterns(query: str, relaxed: bool) -> tuple[tuple, tuple]:
    """(phrases as folded word lists, single terms as (folded word, is_prefix))."""
    phrases, terms = [], []
    for tok in _TOKEN.findall(query.strip()):
        if tok.startswith('"') and tok.endswith('"') and len(tok) > 1:
            words = [_fold(w) for w in re.findall(r"\w+", tok[1:-1])]
            if len(words) > 1:
                phrases.append(words)
            elif words:
                terms.append((words[0], False))
            continue
        words = [_fold(w) for w in re.findall(r"\w+", tok)]
        for i, w in enumerate(words):
            if relaxed and (w in STOPWORDS or len(w) < 2):
                continue
            terms.append((w, tok.endswith("*") and i == len(words) - 1))
    return tuple(tuple(p) for p in phrases), tuple(terms)


def make_snippet(text: str, query: str, *, relaxed: bool = False,
                 tokens: int = SNIPPET_TOKENS) -> str:
    """The text (or `tokens` words of it around the first match) with the words that
    match the query in [brackets]; a matched phrase is one bracket. Matching folds case
    and diacritics and honours prefix* terms, as the FTS5 query did. (FTS5's own
    snippet() re-runs the query per row: 0.3 ms a hit on a 100k-row library.)"""
    low = text.lower()
    toks = [(m.start(), m.end(), w if w.isascii() else _fold(w))
            for m in _WORD.finditer(low) for w in (m.group(0),)]
    if not toks:
        return text
    phrases, terms = _query_patterns(query, relaxed)
    if not phrases and not terms:
        hi = min(len(toks), tokens)
        return text[:toks[hi - 1][1]] + ("…" if hi < len(toks) else text[toks[hi - 1][1]:])
    hit = [False] * len(toks)
    joined = [False] * len(toks)          # token continues the span of the one before
    for words in phrases:
        n = len(words)
        for i in range(len(toks) - n + 1):
            if all(toks[i + j][2] == words[j] for j in range(n)):
                for j in range(n):
                    hit[i + j] = True
                    joined[i + j] = j > 0
    for i, (_, _, w) in enumerate(toks):
        for t, prefix in terms:
            if w == t or (prefix and w.startswith(t)):
                hit[i] = True
    first = next((i for i, h in enumerate(hit) if h), 0)
    lo = max(0, min(first - 4, len(toks) - tokens)) if len(toks) > tokens else 0
    hi = min(len(toks), lo + tokens)
    out, pos = [], toks[lo][0]
    prefix = "…" if lo > 0 else text[:toks[0][0]]
    i = lo
    while i < hi:
        s, e, _ = toks[i]
        if hit[i]:
            j = i
            while j + 1 < hi and hit[j + 1] and joined[j + 1]:
                j += 1
            out.append(text[pos:s] + MARK_OPEN + text[s:toks[j][1]] + MARK_CLOSE)
            pos, i = toks[j][1], j + 1
        else:
            out.append(text[pos:e])
            pos, i = e, i + 1
    suffix = "…" if hi < len(toks) else text[pos:]
    return prefix + "".join(out) + suffix


_FTS_COLUMN = {fts: (table, col) for _, fts, table, col, _ in _SOURCES}


def _snippet(store: Store, it: _Item, query: str) -> str:
    if it.fts is not None:
        table, col = _FTS_COLUMN[it.fts]
        row = store.db.execute(f"SELECT {col} FROM {table} WHERE id = ?", (it.rowid,)).fetchone()
        if row:
            return make_snippet(row[0] or "", query, relaxed=it.relaxed)
    return it.text or ""


def _thumbnail(store: Store, media_id: int, t: float) -> str | None:
    """The thumbnail of the keyframe nearest t (two index seeks: at or before, after)."""
    rows = store.db.execute(
        "SELECT * FROM (SELECT time, thumbnail FROM keyframes WHERE media_id = ? AND time <= ? "
        "AND thumbnail IS NOT NULL ORDER BY time DESC LIMIT 1) UNION ALL "
        "SELECT * FROM (SELECT time, thumbnail FROM keyframes WHERE media_id = ? AND time > ? "
        "AND thumbnail IS NOT NULL ORDER BY time LIMIT 1)", (media_id, t, media_id, t)).fetchall()
    if not rows:
        return None
    return min(rows, key=lambda r: abs(r[0] - t))[1]


def _frame_snippet(store: Store, media_id: int, t: float) -> str:
    tags = [r[0] for r in store.db.execute(
        "SELECT label FROM tags WHERE media_id = ? AND start <= ? AND end >= ? "
        "ORDER BY score DESC LIMIT 4", (media_id, t, t)).fetchall()]
    text = [r[0] for r in store.db.execute(
        "SELECT text FROM screen_text WHERE media_id = ? AND start <= ? AND end >= ? LIMIT 1",
        (media_id, t, t)).fetchall()]
    parts = (["seen: " + ", ".join(tags)] if tags else []) + [f"“{x}”" for x in text]
    return "; ".join(parts) or "similar frame"


def _anchor(store: Store, m: _Moment) -> _Item:
    """The item that places a moment in time and gives its snippet: a strict text match
    (exact words, precise time), else the vector match (its whole window or frame),
    else a relaxed text match on a segment, else a long range (keyword window, tag)."""
    def order(it: _Item):
        if it.kind in _EXACT_KINDS and not it.relaxed and it.list not in ("keyword", "tag"):
            tier = 0
        elif it.similarity is not None:
            tier = 1
        elif it.list not in ("keyword", "tag"):
            tier = 2
        else:
            tier = 3
        return (tier, it.rank, -(it.similarity or 0.0))
    lead = min(m.items, key=order)
    if lead.list == "similar" and lead.text is None and lead.segment_id is not None:
        w = _window(store, lead.segment_id)
        if w is not None:
            lead.start, lead.end, lead.text = w[1], w[2], w[3]
    return lead


def _to_hits(store: Store, scored: list[tuple[float, _Moment]], limit: int, query: str
             ) -> list[Hit]:
    hits = []
    paths: dict[int, tuple[str, float | None]] = {}
    for score, m in scored[:limit]:
        if m.media_id not in paths:
            row = store.db.execute("SELECT path, duration FROM media WHERE id = ?",
                                   (m.media_id,)).fetchone()
            if row is None:
                continue
            paths[m.media_id] = (row[0], row[1])
        path, duration = paths[m.media_id]
        lead = _anchor(store, m)
        start, end = lead.start, max(lead.end, lead.start)
        vec = sorted((it for it in m.items if it.similarity is not None),
                     key=lambda it: -it.similarity)
        if duration:
            start = min(max(0.0, start), float(duration))
            end = min(max(start, end), float(duration))
        kinds = []
        for it in sorted(m.items, key=lambda it: it.rank):
            if it.kind not in kinds:
                kinds.append(it.kind)
        if lead.fts is not None:
            snippet = _snippet(store, lead, query)
        elif lead.keyframe_id is not None:
            snippet = _frame_snippet(store, m.media_id, lead.start)
        else:
            snippet = make_snippet(lead.text or "", query, relaxed=True,
                                   tokens=WINDOW_SNIPPET_TOKENS)
        seg = next((it.segment_id for it in m.items if it.segment_id is not None), None)
        if seg is None and lead.fts == "segments_fts":
            seg = lead.rowid
        kf = next((it.keyframe_id for it in m.items if it.keyframe_id is not None), None)
        ranks: dict[str, int] = {}
        for it in m.items:
            ranks[it.list] = min(ranks.get(it.list, 10 ** 9), it.rank)
        hits.append(Hit(m.media_id, path, float(start), float(end), lead.kind, snippet,
                        float(score), kinds, None, seg, kf,
                        vec[0].similarity if vec else None, ranks))
    for h in hits:
        h.thumbnail = _thumbnail(store, h.media_id, h.start)
    return hits


# ---- the service ------------------------------------------------------------------------------
def search(store: Store, query: str = "", *, image=None, **kw) -> list[Hit]:
    """Moments matching a text query and/or an example image, best first.

    mode: "hybrid" (full text + meaning), "text" (full text only) or "semantic".
    embedder: a models.text_embed embedder (loaded on first need otherwise; not loaded
    at all when the library holds no transcript vectors). image: a path, a BGR array or
    a 1280-d feature; keyframe_id: use that keyframe as the example. filters: Filters.
    stats, when given, receives per-step timings in ms. See _search for the rest.
    """
    from models.binary_codes import one_blas_thread
    with one_blas_thread():
        return _search(store, query, image=image, **kw)


def _search(store: Store, query: str = "", *, image=None, keyframe_id: int | None = None,
           filters: Filters | None = None, limit: int = 20, mode: str = "hybrid",
           embedder=None, models_dir=None, classifier=None, min_similarity: float | None = None,
           image_min_similarity: float | None = IMAGE_MIN_SIMILARITY, rrf_k: float = RRF_K,
           weights: dict | None = None, candidates: int = CANDIDATES, vector_path: str = "auto",
           stats: dict | None = None) -> list[Hit]:
    from indexer.stages.text import MIN_SIMILARITY
    if mode not in ("hybrid", "text", "semantic"):
        raise ValueError("mode must be hybrid, text or semantic")
    floor = MIN_SIMILARITY if min_similarity is None else min_similarity
    weights = {**WEIGHTS, **(weights or {})}
    n = max(candidates, limit)
    timing = stats if stats is not None else {}
    t0 = time.perf_counter()
    lists: dict[str, list[_Item]] = {}
    query = (query or "").strip()
    semantic = bool(query) and mode in ("hybrid", "semantic") and _has_rows(store, "segment_vec")
    if query and mode in ("hybrid", "text"):
        lists.update(_fts_lists(store, query, n, filters, hybrid=semantic))
    t1 = time.perf_counter()
    timing["fts_ms"] = (t1 - t0) * 1000
    if semantic:
        qvec = (embedder or query_embedder()).embed([query], kind="query")[0]
        t2 = time.perf_counter()
        timing["embed_ms"] = (t2 - t1) * 1000
        sem = _semantic_list(store, qvec, n, filters, floor, vector_path)
        if sem:
            lists["similar"] = sem
        timing["semantic_ms"] = (time.perf_counter() - t2) * 1000
        if mode == "hybrid" and sem:
            t2 = time.perf_counter()
            said = lists.get("said", [])
            more = _relaxed_said(store, query, sem, said)
            if more:
                lists["said"] = said + more
                for r, it in enumerate(lists["said"], 1):
                    it.rank = r
            timing["fts_ms"] += (time.perf_counter() - t2) * 1000
    t3 = time.perf_counter()
    exclude: list[int] = []
    feat = None
    if keyframe_id is not None:
        feat = keyframe_vector(store, keyframe_id)
        exclude = [keyframe_id]
        if feat is None:
            raise KeyError(f"keyframe {keyframe_id} has no vector")
    elif image is not None:
        feat = image_feature(image, models_dir=models_dir, classifier=classifier)
    if feat is not None:
        img = _image_list(store, feat, n, filters, image_min_similarity, vector_path, exclude)
        if img:
            lists["image"] = img
    timing["image_ms"] = (time.perf_counter() - t3) * 1000
    t4 = time.perf_counter()
    scored = _fuse(lists, rrf_k, weights, relaxed_creates=(mode == "text"))
    hits = _to_hits(store, scored, limit, query)
    timing["fuse_ms"] = (time.perf_counter() - t4) * 1000
    timing["total_ms"] = (time.perf_counter() - t0) * 1000
    return hits


def more_like_this(store: Store, hit: Hit, limit: int = 20, *, filters: Filters | None = None,
                   vector_path: str = "auto") -> list[Hit]:
    """Moments like `hit`, in its own modality: transcript windows near its window for
    what was said (or meant), keyframes near its frame for what was seen. The moment
    itself (and anything overlapping it in the same file) is left out."""
    from models.binary_codes import one_blas_thread
    with one_blas_thread():
        return _more_like_this(store, hit, limit, filters, vector_path)


def _more_like_this(store, hit, limit, filters, vector_path):
    n = max(CANDIDATES, limit) + 10
    if hit.kind in ("said", "similar") and hit.keyframe_id is None:
        seg = _window_key(store, hit)
        vec = segment_vector(store, seg) if seg is not None else None
        if vec is None:
            return []
        rows = vector_knn(store, "segment", vec, n, filters, path=vector_path, exclude=[seg])
        items = []
        for sid, mid, sim in rows:
            w = _window(store, sid)
            if w is None:
                continue
            items.append(_Item("similar", "similar", mid, w[1], w[2], segment_id=sid,
                               similarity=sim, text=w[3]))
    else:
        kf = hit.keyframe_id or _nearest_keyframe(store, hit.media_id, hit.start)
        vec = keyframe_vector(store, kf) if kf is not None else None
        if vec is None:
            return []
        rows = vector_knn(store, "keyframe", vec, n, filters, path=vector_path, exclude=[kf])
        items = [it for it in (_keyframe_item(store, i, m, s) for i, m, s in rows) if it]
    src = _Moment(hit.media_id, hit.start, max(hit.end, hit.start))
    items = [it for it in items if not src.overlaps(it)]
    for r, it in enumerate(items, 1):
        it.rank = r
    scored = _fuse({items[0].list: items} if items else {}, RRF_K, WEIGHTS, True)
    return _to_hits(store, scored, limit, "")


def _window_key(store: Store, hit: Hit) -> int | None:
    """The segment_vec key (a window's first segment) of the window holding the hit."""
    from indexer.search.code_index import SPACES, read_vec0
    cands = [r[0] for r in store.db.execute(
        "SELECT id FROM segments WHERE media_id = ? AND start <= ? ORDER BY start DESC, id DESC "
        "LIMIT 8", (hit.media_id, hit.start + 0.01)).fetchall()]
    if hit.segment_id is not None:
        cands = [hit.segment_id] + [c for c in cands if c != hit.segment_id]
    if not cands:
        return None
    have = set(read_vec0(store.db.conn._raw if hasattr(store.db.conn, "_raw") else store.db.conn,
                         "segment_vec", SPACES["segment"].dim, (), cands)["ids"].tolist())
    return next((c for c in cands if c in have), None)


def _nearest_keyframe(store: Store, media_id: int, t: float) -> int | None:
    row = store.db.execute("SELECT id FROM keyframes WHERE media_id = ? ORDER BY abs(time - ?) "
                           "LIMIT 1", (media_id, t)).fetchone()
    return row[0] if row else None
