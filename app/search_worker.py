"""Search for the GUI, on its own thread: hybrid text search, search by an example
image and "more like this", each answered as plain dicts (one per moment).

The worker owns its own Store (one SQLite connection per thread), so a search never
waits behind intake or a library refresh on the DB thread, and neither waits on it.
The text embedder and the image model load on first use, here, not on the GUI thread.
"""
from __future__ import annotations

import dataclasses
import re
import unicodedata
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

SEARCH_LIMIT = 50
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _fold(text: str) -> str:
    """Lower case without diacritics, like FTS5's unicode61 remove_diacritics."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def query_terms(query: str) -> list[tuple[str, bool]]:
    """(folded term, is_prefix) for each word of a search query."""
    terms = []
    for tok in re.findall(r'"[^"]*"|\S+', query):
        prefix = tok.endswith("*")
        words = re.findall(r"\w+", _fold(tok))
        terms += [(w, False) for w in words[:-1]]
        if words:
            terms.append((words[-1], prefix))
    return terms


def moment_time(query: str, segment_start: float, words: list[dict]) -> float:
    """The time of the first word of the segment that matches the query, so a hit in
    a long segment plays from the word said, not from the segment's start."""
    terms = query_terms(query)
    for w in words:
        word = "".join(re.findall(r"\w+", _fold(w["word"])))
        for term, prefix in terms:
            if word == term or (prefix and word.startswith(term)):
                return float(w["start"])
    return segment_start


def is_image_file(path: str) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def make_filters(values: dict | None):
    """indexer.search.Filters from the plain dict the UI sends (unknown keys ignored)."""
    from indexer.search import Filters
    if not values:
        return None
    known = {f.name for f in dataclasses.fields(Filters)}
    values = {k: v for k, v in values.items() if k in known and v not in (None, "")}
    return Filters(**values) if values else None


def hit_from_row(row: dict):
    """A hit dict (as sent to the UI) back into an indexer.search.Hit."""
    from indexer.search import Hit
    known = {f.name for f in dataclasses.fields(Hit)}
    return Hit(**{k: v for k, v in row.items() if k in known})


def hit_rows(store, hits, query: str, thumb_dir: Path) -> list[dict]:
    """Hits as dicts for the UI: the fields of indexer.search.Hit plus
    name, seek (where playback starts), match (the kind shown), thumb_path (absolute,
    or None), media_kind (audio, video, ...) and group (the file's rank in the
    per-file view of indexer.search.group_by_file)."""
    from indexer.queries import media_kinds, segment_words
    from indexer.search import group_by_file
    kinds = media_kinds(store, [h.media_id for h in hits])
    groups = {g.media_id: i for i, g in enumerate(group_by_file(hits))}
    rows = []
    for hit in hits:
        row = hit.to_dict()
        row["name"] = Path(hit.path).name
        row["seek"] = hit.start
        # A whole-file keyword has no moment of its own; say so rather than "said".
        row["match"] = "keyword" if set(row.get("ranks") or ()) == {"keyword"} else hit.kind
        if hit.kind == "said" and query and "said" in (row.get("ranks") or {}):
            words = segment_words(store, hit.media_id, hit.start)
            row["seek"] = moment_time(query, hit.start, words)
        row["thumb_path"] = str(Path(thumb_dir) / hit.thumbnail) if hit.thumbnail else None
        row["media_kind"] = kinds.get(hit.media_id)
        row["group"] = groups.get(hit.media_id, 0)
        rows.append(row)
    return rows


def _guarded(method):
    """A failing request is reported, not fatal to the thread."""
    def wrapper(self, generation, *args):
        try:
            return method(self, generation, *args)
        except Exception as exc:   # one bad request must not end the search thread
            self.failed.emit(generation, f"{type(exc).__name__}: {exc}")
    wrapper.__name__ = method.__name__
    return wrapper


class SearchWorker(QObject):
    """Lives on its own QThread. `current` is a callable giving the newest request's
    generation: a request overtaken by a newer one is dropped unanswered."""

    done = Signal(int, object, object)     # generation, request (dict), hits (dicts)
    failed = Signal(int, str)

    def __init__(self, library: Path, current, settings, thumb_dir):
        super().__init__()
        self._library = Path(library)
        self._current = current
        self._settings = settings          # callable -> app.settings.Settings
        self._thumb_dir = thumb_dir        # callable -> Path
        self._store = None

    @property
    def store(self):
        if self._store is None:
            from indexer.store import Store
            self._store = Store(self._library)
        return self._store

    @Slot(str)
    def open_library(self, path: str) -> None:
        self.close()
        self._library = Path(path)

    @Slot()
    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _stale(self, generation: int) -> bool:
        return generation != self._current()

    def _answer(self, generation: int, request: dict, hits, query: str = "") -> None:
        if self._stale(generation):
            return
        self.done.emit(generation, request, hit_rows(self.store, hits, query, self._thumb_dir()))

    @Slot(int, str, object)
    @_guarded
    def search(self, generation: int, query: str, filters: dict) -> None:
        """Hybrid search: full text (said, shown, tag) and meaning, fused."""
        if self._stale(generation):
            return
        from indexer.search import search
        hits = search(self.store, query, filters=make_filters(filters), limit=SEARCH_LIMIT,
                      models_dir=self._settings().resolved_models_dir())
        self._answer(generation, {"mode": "text", "query": query, "filters": filters}, hits,
                     query)

    @Slot(int, str, object)
    @_guarded
    def search_image(self, generation: int, path: str, filters: dict) -> None:
        """The keyframes nearest an example image, as moments."""
        if self._stale(generation):
            return
        from indexer.search import search
        hits = search(self.store, image=str(path), filters=make_filters(filters),
                      limit=SEARCH_LIMIT, models_dir=self._settings().resolved_models_dir())
        self._answer(generation, {"mode": "image", "image": str(path), "filters": filters}, hits)

    @Slot(int, object, object)
    @_guarded
    def more_like_this(self, generation: int, hit: dict, filters: dict) -> None:
        """Moments like one result, in its own modality (speech windows or keyframes)."""
        if self._stale(generation):
            return
        from indexer.search import more_like_this
        hits = more_like_this(self.store, hit_from_row(hit), limit=SEARCH_LIMIT,
                              filters=make_filters(filters))
        self._answer(generation, {"mode": "similar", "source": hit, "filters": filters}, hits)
