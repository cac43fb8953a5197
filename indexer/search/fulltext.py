"""The full-text lists (FTS5, bm25) over what was said (transcript segments, keywords),
shown (on-screen text) and tagged.

All words must match; when fewer than the wanted number of rows do, relaxed matches
are added. Full-text-only search relaxes to any content word (stopwords dropped).
Hybrid search relaxes only to the query's rare words (in at most RARE_FRACTION of a
table's rows), which may surface a moment on their own; common words only support
moments the meaning side found (the windows are scored in Python, `relaxed_said`), so
an unrelated query finds nothing. A word matching more than FTS_RANK_ALL_MAX rows is
ranked over its newest FTS_SAMPLE matches only (see benchmarks/README.md "Search").
"""
from __future__ import annotations

import re
from contextlib import contextmanager

import numpy as np

from indexer.search.filters import Filters, media_conditions
from indexer.search.query_text import (fold, fts_query, matched_terms, query_patterns,
                                       relaxed_query)
from indexer.search.sources import BY_LIST, SOURCES
from indexer.search.speakers import voice_filter_condition
from indexer.search.types import Item
from indexer.store import Store
from indexer.store import search_reads as reads

FTS_RANK_ALL_MAX = 20000   # rank every match by bm25 up to this many (estimated) matches
FTS_SAMPLE = 2000          # beyond it, rank the newest FTS_SAMPLE matches only
RARE_FRACTION = 0.002      # a word in at most this share of a table's rows is "rare"
RARE_MIN_DOCS = 3          # ... or in at most this many
WINDOW_SEGMENTS = 8        # segments of a meaning window looked at by relaxed_said

_CACHE: dict = {}          # id(connection) -> (change stamp, {key: value})
_PINNED: set = set()       # connections whose cache was checked for the running search


def _fresh_cache(store: Store) -> dict:
    key_conn = id(store.db.conn)
    cache = _CACHE.get(key_conn)
    if key_conn in _PINNED and cache is not None:
        return cache[1]
    stamp = reads.change_stamp(store)
    if cache is None or cache[0] != stamp:
        if len(_CACHE) > 16:
            _CACHE.clear()
        cache = _CACHE[key_conn] = (stamp, {})
    return cache[1]


@contextmanager
def one_check(store: Store):
    """Within it (one search), the cache is checked against the library once, not on
    every read (a change stamp costs a PRAGMA)."""
    _fresh_cache(store)
    key_conn = id(store.db.conn)
    _PINNED.add(key_conn)
    try:
        yield
    finally:
        _PINNED.discard(key_conn)


def _cached(store: Store, key: tuple, compute):
    """A value read from the library, cached per connection until the database changes
    (PRAGMA data_version and the connection's own total_changes)."""
    cache = _fresh_cache(store)
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def doc_freq(store: Store, fts: str, term: str, prefix: bool) -> int:
    """Documents of an FTS table holding a term (or a prefix's terms, summed; an upper
    bound), cached until the library changes."""
    term = fold(term)
    return _cached(store, ("df", fts, term, prefix),
                   lambda: reads.doc_freq(store, fts, term, prefix))


def table_rows(store: Store, table: str) -> int:
    """A table's largest rowid (its row count when nothing was deleted), cached until the
    library changes."""
    return _cached(store, ("rows", table), lambda: reads.max_rowid(store, table))


def _estimated_matches(store: Store, fts: str, q: str) -> int:
    """Upper bound of an fts_query/relaxed_query's matches, from document frequencies:
    the rarest word of an AND (a phrase counts as its rarest word), the sum for an OR."""
    groups = []
    for part in q.split(" OR "):
        for tok in re.findall(r'"[^"]*"\*?', part):
            words = tok.strip("*").strip('"').split()
            groups.append(min(doc_freq(store, fts, w, tok.endswith("*") and i == len(words) - 1)
                              for i, w in enumerate(words)) if words else 0)
    if not groups:
        return 0
    return sum(groups) if " OR " in q else min(groups)


def fts_rows(store: Store, name: str, fts: str, table: str, q: str, n: int,
             f: Filters | None) -> list[Item]:
    """The n best rows of one FTS table by bm25. A query matching more than
    FTS_RANK_ALL_MAX rows (a very common word) is ranked over its newest FTS_SAMPLE
    matches only: ranking every row holding "the" in a big library is slow."""
    conds, params = media_conditions(f)
    said_by, said_by_params = voice_filter_condition(f)     # rows the voice speaks over
    conds += said_by
    params += said_by_params
    kind = BY_LIST[name].kind
    if f is not None and f.language is not None:
        if table == "segments":
            conds.append("coalesce(nullif(t.language, ''), m.language) = ?")
        else:
            conds.append("m.language = ?")
        params.append(f.language)
    rows_max = table_rows(store, table)
    sampled = rows_max > FTS_RANK_ALL_MAX and _estimated_matches(store, fts, q) > FTS_RANK_ALL_MAX
    if not conds:
        # No filter: rank in FTS alone, then fetch only the winners' rows.
        if sampled:
            rows = reads.fts_newest(store, fts, q, FTS_SAMPLE)
            ids = [r[0] for r in sorted(rows, key=lambda r: r[1])[:n]]
        else:
            ids = reads.fts_best(store, fts, q, n)
        if not ids:
            return []
        found = reads.spans(store, table, ids)
        out = []
        for rid in ids:
            if rid in found:
                mid, s, e = found[rid]
                out.append(Item(name, kind, mid, float(s), float(e), rowid=rid, fts=fts))
        return out
    if sampled:
        rows = reads.fts_filtered(store, fts, table, q, conds, params, FTS_SAMPLE, newest=True)
        rows = sorted(rows, key=lambda r: r[4])[:n]
    else:
        rows = reads.fts_filtered(store, fts, table, q, conds, params, n)
    return [Item(name, kind, mid, float(s), float(e), rowid=rid, fts=fts)
            for rid, mid, s, e, _ in rows]


def _rare_query(store: Store, fts: str, table: str, query: str) -> str | None:
    """An OR of the query's content words that are rare in this table (see RARE_*)."""
    _, terms = query_patterns(query, True)
    if not terms:
        return None
    rows = table_rows(store, table)
    limit = max(RARE_MIN_DOCS, RARE_FRACTION * rows)
    rare = [f'"{t}"' + ("*" if p else "") for t, p in terms
            if 0 < doc_freq(store, fts, t, p) <= limit]
    return " OR ".join(rare) or None


def fts_lists(store: Store, query: str, n: int, f: Filters | None, *,
              hybrid: bool = False) -> dict[str, list[Item]]:
    """Per FTS source: the strict matches (every word), topped up to n with relaxed ones.

    Full-text search alone relaxes to any content word. In hybrid search only the
    query's *rare* words (RARE_*) make relaxed matches here, and those may surface a
    moment by themselves (a rare word that was said is specific evidence); matches of
    common words are looked for in the meaning hits only (`relaxed_said`) and can only
    support them, so an unrelated query still finds nothing."""
    strict = fts_query(query)
    if strict is None:
        return {}
    lists: dict[str, list[Item]] = {}
    for src in SOURCES:
        try:
            items = fts_rows(store, src.list, src.fts, src.table, strict, n, f)
        except Exception as exc:            # a malformed query must not break search
            if "fts5" not in str(exc).lower() and "syntax" not in str(exc).lower():
                raise
            items = []
        relaxed = (_rare_query(store, src.fts, src.table, query) if hybrid
                   else relaxed_query(query))
        if relaxed and relaxed != strict and len(items) < n:
            seen = {it.rowid for it in items}
            try:
                more = fts_rows(store, src.list, src.fts, src.table, relaxed, n, f)
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
            lists[src.list] = items
    return lists


def said_weights(store: Store, terms) -> dict:
    """idf of each single term (folded word, is_prefix) over the transcript segments
    (0 for a word never said)."""
    total = table_rows(store, "segments") or 1
    idf = {}
    for t, prefix in terms:
        df = doc_freq(store, "segments_fts", t, prefix)
        idf[(t, prefix)] = np.log(1 + total / max(1, df)) if df else 0.0
    return idf


def relaxed_said(store: Store, query: str, sem: list[Item], said: list[Item]) -> list[Item]:
    """Relaxed transcript matches among the meaning hits: each window holding content
    words of the query, scored by the idf of the words it holds, as a relaxed "said"
    item on its best segment. In hybrid search a relaxed match can only support a
    moment found otherwise, so scoring the candidate windows directly gives the same
    support as a corpus-wide OR query, without its cost on common words."""
    if not sem:
        return []
    _, terms = query_patterns(query, True)
    if not terms:
        return []
    ids = sorted({it.segment_id + j for it in sem for j in range(WINDOW_SEGMENTS)})
    by_id = {r[0]: r for r in reads.segments_by_id(store, ids)}
    idf = said_weights(store, terms)
    have = {it.rowid for it in said}
    out = []
    for it in sem:
        first = by_id.get(it.segment_id)
        if first is None:
            continue
        best, best_seg, matched = 0.0, None, set()
        for j in range(WINDOW_SEGMENTS):
            r = by_id.get(it.segment_id + j)
            if (r is None or r[1] != first[1] or r[5:] != first[5:] or r[2] < first[2]
                    or r[2] > first[2] + 30.0):
                break                 # another file, source or track, or past the window
            here = matched_terms(r[4], terms)
            score = sum(idf[x] for x in here)
            matched |= here
            if score > best:
                best, best_seg = score, r
        if best_seg is None or best_seg[0] in have:
            continue
        total_score = sum(idf[x] for x in matched)
        out.append((total_score, Item("said", "said", best_seg[1], float(best_seg[2]),
                                      float(best_seg[3]), relaxed=True, rowid=best_seg[0],
                                      fts="segments_fts", creates=False)))
        have.add(best_seg[0])
    out.sort(key=lambda x: -x[0])
    return [it for _, it in out]
