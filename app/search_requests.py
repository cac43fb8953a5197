"""What the GUI's search requests are and how one is answered: hybrid text search
(speaker:"Anna" and a "speaker" filter included), search by an example image and
"more like this", each answered as plain dicts (one per moment), ready to cross a
process boundary; and the models a search may load
(`search_models`, the CLI's too). No Qt here: this runs in the search process
(app.search_process).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

SEARCH_LIMIT = 50


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


def hit_rows(store, hits, thumb_dir: Path) -> list[dict]:
    """Hits as dicts for the UI: the fields of indexer.search.Hit (`seek`, the second
    playback starts at, included) plus name, match (the kind shown), thumb_path
    (absolute, or None), media_kind (audio, video, ...), group (the file's rank in
    the per-file view of indexer.search.group_by_file) and voice_name (the name of the
    speaker's voice, None while it has none: `speaker` is then "Speaker N" of the file)."""
    from indexer.store.reads import media_kinds
    from indexer.search import group_by_file
    kinds = media_kinds(store, [h.media_id for h in hits])
    groups = {g.media_id: i for i, g in enumerate(group_by_file(hits))}
    voices = {v: (store.voice(v) or {}).get("name")
              for v in {h.voice_id for h in hits if h.voice_id is not None}}
    rows = []
    for hit in hits:
        row = hit.to_dict()
        row["name"] = Path(hit.path).name
        # A whole-file keyword has no moment of its own; say so rather than "said".
        row["match"] = "keyword" if set(row.get("ranks") or ()) == {"keyword"} else hit.kind
        row["thumb_path"] = str(Path(thumb_dir) / hit.thumbnail) if hit.thumbnail else None
        row["media_kind"] = kinds.get(hit.media_id)
        row["group"] = groups.get(hit.media_id, 0)
        row["voice_name"] = voices.get(hit.voice_id)
        rows.append(row)
    return rows


def search_models(models_dir):
    """The models search may need (indexer.search.SearchModels), each loaded on first
    need and once per process (models.loading): the query embedder (the library's
    embedder with one BLAS thread), the image feature model of `models_dir`, and the
    face models (None when they are not installed)."""
    from indexer.search import SearchModels

    def embedder():
        from models.text_embed import load_query_embedder
        return load_query_embedder()

    def image_model():
        from models.vision.image_features import shared_classifier
        return shared_classifier(models_dir).get()

    def face_model():
        from models.faces import shared_face_models
        from models.weights import ModelUnavailable
        try:
            return shared_face_models(models_dir).get()
        except ModelUnavailable:
            return None

    return SearchModels(embedder=embedder, image_model=image_model, face_model=face_model)


def answer(store, request: dict, models, thumb_dir) -> list[dict]:
    """The hits (dicts, see hit_rows) for one request, `models` a SearchModels:
    {"mode": "text", "query": str} | {"mode": "image", "image": path}
    | {"mode": "similar", "source": hit dict}; each may carry "filters" (dict)."""
    from indexer.search import more_like_this, search
    filters = make_filters(request.get("filters"))
    mode = request["mode"]
    if mode == "text":
        hits = search(store, request["query"], filters=filters, limit=SEARCH_LIMIT,
                      models=models)
    elif mode == "image":
        hits = search(store, image=str(request["image"]), filters=filters, limit=SEARCH_LIMIT,
                      models=models)
    elif mode == "similar":
        hits = more_like_this(store, hit_from_row(request["source"]), limit=SEARCH_LIMIT,
                              filters=filters)
    else:
        raise ValueError(f"unknown search mode {mode!r}")
    return hit_rows(store, hits, thumb_dir)


def warm_up(models) -> None:
    """Load the query embedder of a SearchModels before the first search needs it."""
    models.embedder().embed(["warm up"], kind="query")
