"""What the GUI's search requests are and how one is answered: hybrid text search,
search by an example image and "more like this", each answered as plain dicts (one
per moment), ready to cross a process boundary. No Qt here: this runs in the search
process (app.search_process).
"""
from __future__ import annotations

import dataclasses
import re
import unicodedata
from pathlib import Path

SEARCH_LIMIT = 50


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
    from indexer.store.reads import media_kinds, segment_words
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


def answer(store, request: dict, models_dir, thumb_dir) -> list[dict]:
    """The hits (dicts, see hit_rows) for one request:
    {"mode": "text", "query": str} | {"mode": "image", "image": path}
    | {"mode": "similar", "source": hit dict}; each may carry "filters" (dict)."""
    from indexer.search import more_like_this, search
    filters = make_filters(request.get("filters"))
    mode = request["mode"]
    if mode == "text":
        hits = search(store, request["query"], filters=filters, limit=SEARCH_LIMIT,
                      models_dir=models_dir)
        return hit_rows(store, hits, request["query"], thumb_dir)
    if mode == "image":
        hits = search(store, image=str(request["image"]), filters=filters, limit=SEARCH_LIMIT,
                      models_dir=models_dir)
    elif mode == "similar":
        hits = more_like_this(store, hit_from_row(request["source"]), limit=SEARCH_LIMIT,
                              filters=filters)
    else:
        raise ValueError(f"unknown search mode {mode!r}")
    return hit_rows(store, hits, "", thumb_dir)


def warm_up() -> None:
    """Load the query embedder before the first search needs it."""
    from indexer.search import query_embedder
    query_embedder().embed(["warm up"], kind="query")
