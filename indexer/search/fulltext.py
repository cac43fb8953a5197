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

import numpy as np

from indexer.search.filters import Filters, media_conditions
from indexer.search.library_cache import cached
from indexer.search.query_text import (STOPWORDS, content_groups, covered, fold, fts_query,
                                       near_groups, relaxed_query)
from indexer.search.sources import BY_FTS, BY_LIST, SOURCES, TENTATIVE_LISTS
from indexer.search.word_forms import merged, tag_labels
from indexer.search.speakers import voice_filter_condition
from indexer.search.types import Item
from indexer.store import Store
from indexer.store import search_reads as reads

FTS_RANK_ALL_MAX = 20000   # rank every match by bm25 up to this many (estimated) matches
FTS_SAMPLE = 2000          # beyond it, rank the newest FTS_SAMPLE matches only
RARE_FRACTION = 0.002      # a word in at most this share of a table's rows is "rare"
RARE_MIN_DOCS = 3          # ... or in at most this many
# In hybrid search a file keyword holding some of the query's words (rare among the
# keywords) supports a moment but does not make one: every keyword was said in a line,
# which the transcript's own lists place at its second (benchmarks/README.md)
KEYWORDS_CREATE = False
WINDOW_SEGMENTS = 8        # segments of a meaning window looked at by relaxed_said
# A relaxed line holding one of several query words, and that only in another form (a
# stem shared across languages: "starter" as "start", "taper" as French "tapé"), supports a
# moment but never makes one, in full-text search too (spoken_search dev: the unrelated
# queries with a hit 1 -> 0 hybrid, 2 -> 0 text; P@1 up in both).
FORMS_ALONE_SUPPORT_ONLY = True
# Among matches holding the same query words, those holding more of them as typed (not
# only in another form) come first
TYPED_FIRST = True
# A word rare as typed is specific evidence even when its other forms are common: a line
# holding it as typed makes a moment in hybrid search ("espere", said in one line, where
# "espera", "esperar" are said in many)
RARE_AS_TYPED = True
# In hybrid search a line holding two or more of a query's three or more content words
# makes a moment, however common the words ("presione engrasar número": "Presione 1 para
# ingresar un número")
TWO_WORDS_CREATE = True


def doc_freq(store: Store, fts: str, term: str, prefix: bool) -> int:
    """Documents of an FTS table holding a term (or a prefix's terms, summed; an upper
    bound), cached until the library changes."""
    term = fold(term)
    return cached(store, ("df", fts, term, prefix),
                   lambda: reads.doc_freq(store, fts, term, prefix))


def table_rows(store: Store, table: str) -> int:
    """A table's largest rowid (its row count when nothing was deleted), cached until the
    library changes."""
    return cached(store, ("rows", table), lambda: reads.max_rowid(store, table))


def _token_docs(store: Store, fts: str, tok: str) -> int:
    """Upper bound of the rows one "word", "a phrase" or "prefix"* token matches (a
    phrase counts as its rarest word)."""
    words = tok.strip("*").strip('"').split()
    return min(doc_freq(store, fts, w, tok.endswith("*") and i == len(words) - 1)
               for i, w in enumerate(words)) if words else 0


def _estimated_matches(store: Store, fts: str, q: str) -> int:
    """Upper bound of an fts_query/relaxed_query's matches, from document frequencies:
    the rarest part of an AND (a ("word" OR "form") group counts as its words' sum),
    the sum for an OR."""
    if " OR " in q and not q.startswith("(") and "(" not in q:
        return sum(_token_docs(store, fts, tok) for tok in re.findall(r'"[^"]*"\*?', q))
    parts = [sum(_token_docs(store, fts, tok) for tok in re.findall(r'"[^"]*"\*?', part))
             for part in re.findall(r'\([^)]*\)|"[^"]*"\*?', q)]
    return min(parts) if parts else 0


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


def _rare_groups(store: Store, fts: str, table: str, groups: tuple
                 ) -> tuple[frozenset, frozenset]:
    """The indices of the query's content words rare in this table (see RARE_*): counted
    with their forms, and (RARE_AS_TYPED) those rare only as typed."""
    limit = max(RARE_MIN_DOCS, RARE_FRACTION * table_rows(store, table))
    rare, typed = set(), set()
    for i, alts in enumerate(groups):
        if alts[0][0] in STOPWORDS:
            continue
        as_typed = doc_freq(store, fts, *alts[0])
        if 0 < as_typed + sum(doc_freq(store, fts, t, p) for t, p in alts[1:]) <= limit:
            rare.add(i)
        elif RARE_AS_TYPED and 0 < as_typed <= limit:
            typed.add(i)
    return frozenset(rare), frozenset(typed)


def _any_of(groups: tuple, which) -> str | None:
    """An FTS5 OR of these content groups' alternatives."""
    words = [f'"{t}"' + ("*" if p else "") for i in sorted(which) for t, p in groups[i]]
    return " OR ".join(words) or None


def _two_of(groups: tuple) -> str | None:
    """An FTS5 query for rows holding at least two of three or more content groups
    (TWO_WORDS_CREATE), None otherwise."""
    if not TWO_WORDS_CREATE or len(groups) < 3:
        return None
    ors = [_any_of(groups, [i]) for i in range(len(groups))]
    return " OR ".join(f"(({a}) AND ({b}))" for i, a in enumerate(ors) for b in ors[i + 1:])


def _typed_only(groups: tuple) -> tuple:
    """The content groups with each word as typed only (its other forms left out)."""
    return tuple(alts[:1] for alts in groups)


def _covering(store: Store, items: list[Item], groups: tuple, near: bool = False
              ) -> dict[int, frozenset]:
    """Each item's `covers`: the query's content words its row holds (one read per
    table); with `near`, also those a row holding some of them says in a near spelling
    (`Item.near`). Returns, by row id, the words held as typed (not only in another form)."""
    by_fts: dict[str, list[Item]] = {}
    for it in items:
        by_fts.setdefault(it.fts, []).append(it)
    typed = _typed_only(groups)
    as_typed = {}
    for fts, its in by_fts.items():
        src = BY_FTS[fts]
        texts = reads.rows_text(store, src.table, src.column, [it.rowid for it in its])
        for it in its:
            text = texts.get(it.rowid, "")
            it.covers = covered(text, groups)
            if near and it.covers:
                it.near = near_groups(text, groups, it.covers)
                it.covers |= it.near
            as_typed[it.rowid] = covered(text, typed)
    return as_typed


def fts_lists(store: Store, query: str, n: int, f: Filters | None, *,
              hybrid: bool = False, forms: dict | None = None, near: bool = False
              ) -> dict[str, list[Item]]:
    """Per FTS source: the strict matches (every word, in any of its `forms`: folded
    word -> other forms, indexer.search.word_forms), topped up to n with relaxed ones.

    Full-text search alone relaxes to any content word. In hybrid search the query's
    *rare* words (RARE_*) make relaxed matches here, and those may surface a moment by
    themselves (a rare word that was said is specific evidence); matches of common
    words are looked for in the meaning hits only (`relaxed_said`) and can only support
    them, so an unrelated query still finds nothing. What is shown and tagged is short
    text: there any content word makes a *tentative* match, which stands only where a
    moment ends up holding every word of the query ("people walking": a "person" tag
    and a "walking" tag on the same shot). `near`: relaxed lines also hold the words they
    say in a near spelling (query_text.near_groups)."""
    if fts_query(query) is None:
        return {}
    seen_as = tag_labels(query)
    groups = content_groups(query, merged(forms or {}, seen_as))
    everyone = frozenset(range(len(groups)))
    pairs = _two_of(groups)      # lines holding two of the words (TWO_WORDS_CREATE)
    lists: dict[str, list[Item]] = {}
    for src in SOURCES:
        src_forms = merged(forms or {}, seen_as) if src.list == "tag" else forms
        strict = fts_query(query, src_forms)
        try:
            items = fts_rows(store, src.list, src.fts, src.table, strict, n, f)
        except Exception as exc:            # a malformed query must not break search
            if "fts5" not in str(exc).lower() and "syntax" not in str(exc).lower():
                raise
            items = []
        if TYPED_FIRST and len(items) > 1:
            # every word held, fewer of them only in another form first ("dell" before
            # "della"), then bm25's order (the sort is stable)
            as_typed = _covering(store, items, groups)
            items.sort(key=lambda it: -len(as_typed.get(it.rowid, ())))
        for it in items:
            it.covers = everyone
        tentative = hybrid and src.list in TENTATIVE_LISTS
        rare, rare_typed = (_rare_groups(store, src.fts, src.table, groups) if hybrid
                            else (frozenset(), frozenset()))
        if not hybrid:
            relaxed = relaxed_query(query, src_forms)
        elif tentative:
            relaxed = _any_of(groups, range(len(groups)))
        else:   # a word rare only as typed: as typed (its other forms are for relaxed_said)
            relaxed = " OR ".join(filter(None, (_any_of(groups, rare), _any_of(
                _typed_only(groups), rare_typed), pairs))) or None
        if relaxed and relaxed != strict and len(items) < n:
            seen = {it.rowid for it in items}
            try:
                more = fts_rows(store, src.list, src.fts, src.table, relaxed, n, f)
            except Exception:
                more = []
            more = [it for it in more if it.rowid not in seen][:n - len(items)]
            as_typed = _covering(store, more, groups, near)
            # more of the query's words first (by their idf), then bm25's order
            idf = group_weights(store, groups, src.fts, src.table)
            more.sort(key=lambda it: (-sum(idf[g] for g in it.covers),
                                      -len(as_typed.get(it.rowid, ())) if TYPED_FIRST else 0))
            for it in more:
                it.relaxed = True
                it.typed = as_typed.get(it.rowid, frozenset())
                it.creates = not hybrid or (
                    bool(it.covers & rare or as_typed.get(it.rowid, frozenset()) & rare_typed
                         or (pairs is not None and len(it.covers) >= 2))
                    and (src.list != "keyword" or KEYWORDS_CREATE))
                # some of several words, none of them as typed ("starter" only as "start",
                # English "taper" only as French "tapé"): too weak to make a moment
                if (FORMS_ALONE_SUPPORT_ONLY and src.list not in TENTATIVE_LISTS
                        and len(groups) > len(it.covers) == 1 and not as_typed.get(it.rowid)):
                    it.creates, it.weak = False, True
                it.tentative = not it.creates
            items += more
        for r, it in enumerate(items, 1):
            it.rank = r
        if items:
            lists[src.list] = items
    return lists


def group_weights(store: Store, groups: tuple, fts: str = "segments_fts",
                  table: str = "segments") -> list[float]:
    """idf of each content group (content_groups) over an FTS table's rows (by default
    the transcript segments), its alternatives' documents summed (0 for a word the
    table never holds)."""
    total = table_rows(store, table) or 1
    out = []
    for alts in groups:
        df = sum(doc_freq(store, fts, t, p) for t, p in alts)
        out.append(float(np.log(1 + total / df)) if df else 0.0)
    return out


def relaxed_said(store: Store, groups: tuple, sem: list[Item], said: list[Item]
                 ) -> list[Item]:
    """Relaxed transcript matches among the meaning hits: each window holding content
    words of the query (`groups`, query_text.content_groups), scored by the idf of the
    words it holds, as a relaxed "said" item on its best segment. In hybrid search a
    relaxed match can only support a moment found otherwise, so scoring the candidate
    windows directly gives the same support as a corpus-wide OR query, without its cost
    on common words. Each window's item learns the words the window holds (`covers`)."""
    if not sem or not groups:
        return []
    ids = sorted({it.segment_id + j for it in sem for j in range(WINDOW_SEGMENTS)})
    by_id = {r[0]: r for r in reads.segments_by_id(store, ids)}
    idf = group_weights(store, groups)
    typed_groups = _typed_only(groups)
    have = {it.rowid for it in said}
    out = []
    for it in sem:
        first = by_id.get(it.segment_id)
        if first is None:
            continue
        best, best_seg, best_here, matched = 0.0, None, frozenset(), frozenset()
        for j in range(WINDOW_SEGMENTS):
            r = by_id.get(it.segment_id + j)
            if (r is None or r[1] != first[1] or r[5:] != first[5:] or r[2] < first[2]
                    or r[2] > first[2] + 30.0):
                break                 # another file, source or track, or past the window
            here = covered(r[4], groups)
            score = sum(idf[g] for g in here)
            matched |= here
            if score > best:
                best, best_seg, best_here = score, r, here
        it.covers = matched
        if best_seg is None or best_seg[0] in have:
            continue
        typed = covered(best_seg[4], typed_groups)
        total_score = sum(idf[g] for g in matched)
        out.append((total_score, Item("said", "said", best_seg[1], float(best_seg[2]),
                                      float(best_seg[3]), relaxed=True, rowid=best_seg[0],
                                      fts="segments_fts", creates=False, covers=best_here,
                                      typed=typed, window=it)))
        have.add(best_seg[0])
    out.sort(key=lambda x: -x[0])
    return [it for _, it in out]
