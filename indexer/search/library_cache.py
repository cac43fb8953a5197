"""Values search reads from the library (document frequencies, row counts, word forms),
kept per connection until the library changes."""
from __future__ import annotations

from contextlib import contextmanager

from indexer.store import Store
from indexer.store import search_reads as reads

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


def cached(store: Store, key: tuple, compute):
    """A value read from the library, cached per connection until the database changes
    (PRAGMA data_version and the connection's own total_changes)."""
    cache = _fresh_cache(store)
    if key not in cache:
        cache[key] = compute()
    return cache[key]
