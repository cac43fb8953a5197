"""The search service: one way in for the CLI and the GUI.

A text query goes two ways and the ranked lists are fused with weighted
reciprocal-rank fusion (RRF, score = sum_w w / (rrf_k + rank), `moments`):

- full text (FTS5, bm25) over what was said, shown and tagged (`fulltext`);
- meaning: KNN over transcript-window embeddings (`vectors`). Windows under the
  calibrated similarity floor (indexer.stages.text.MIN_SIMILARITY) are dropped, so an
  unrelated query finds nothing.

An image (a file, an array, a 1280-d feature or a keyframe id) adds a third list:
the nearest keyframes. `more_like_this(hit)` finds neighbours in the hit's own
modality (transcript windows for speech, keyframes for what is seen).

Hits from all lists that fall on the same stretch of the same file are one
*moment* (a `Hit`): file, start, end, the second it plays from (`seek`), what
matched (`kinds`), fused score, a snippet with matches in [brackets], and the
thumbnail of the keyframe nearest its start. `group_by_file(hits)` gives the
per-file view. Filters (`Filters`) apply before ranking, so a filtered search still
returns `limit` moments whenever that many match.

Who speaks: `speaker:"Anna"` in the query text (or `Filters(speaker="Anna")`, or a voice
id) keeps the moments that voice speaks, each played from its own speech; alone, it
lists the voice's turns. A name no voice has raises UnknownSpeaker (listing the named
voices). Every hit of said text carries who says it (`Hit.speaker`, `Hit.voice_id`).

Who is on screen: `person:"Anna"` (or `Filters(person=...)`, or a person id) keeps the
moments that person is seen, each played from a second they are on screen; alone, it
lists their appearances. A name no one has raises UnknownPerson. An example image that
holds a face adds a "face" list (the library's nearest faces, indexer.search.people)
weighted above whole-image similarity, so a face match beats a frame that merely looks
alike; it needs the face models (`face_model=`, or `models.face_model`). Every hit
carries the people on screen at its second to play (`Hit.people`).

Search loads no model itself: the query embedder and the image model are passed in,
loaded ones (`embedder=`, `image_model=`) or a `SearchModels` that loads them only
when a search needs them (`models=`, as the app builds it once per process).

    hits = search(store, "quarterly budget", filters=Filters(language="en"), models=models)
    hits = search(store, image="photo.jpg", models=models)
    hits = search(store, 'speaker:"Anna" budget', models=models)
    hits = search(store, 'person:"Anna"')                  # the moments Anna is seen
    hits = search(store, image="anna.jpg", models=models, face_model=face_models)
    more = more_like_this(store, hits[0])
    for group in group_by_file(hits): ...

Modules: types (Hit, SearchModels, ...), sources (the lists and their weights),
filters, query_text (query parsing, snippets, the word a query was said at),
fulltext, vectors, moments (fusion into Hits), speakers (the speaker filter, a voice's
moments, who said a hit), people (the person filter, search by a face, more of this
person, who is on screen); code_index (binary codes for KNN).
"""
from __future__ import annotations

import os
import time

from indexer.search.filters import Filters, allowed_media
from indexer.search.fulltext import fts_lists, group_weights, relaxed_said
from indexer.search.library_cache import one_check
from indexer.search.moments import fuse, to_hits
from indexer.search.people import (FACE_WEIGHT, PersonSpans, UnknownPerson, anyone_on_screen,
                                   attach_people, face_items, face_matches,
                                   more_of_this_person, person_moments, photo_faces,
                                   resolve_person, with_query_person)
from indexer.search.people import resolved as resolved_person
from indexer.search.query_text import (MARK_CLOSE, MARK_OPEN, STOPWORDS, content_groups,
                                       first_said, fts_query, make_snippet, person_term, relaxed_query,
                                       speaker_term, split_person, split_speaker)
from indexer.search.sources import COVERAGE_WEIGHT, RRF_K, WEIGHTS
from indexer.search.speakers import (UnknownSpeaker, VoiceTurns, attach_speakers,
                                     resolve_voice, resolved, voice_moments,
                                     with_query_speaker)
from indexer.search.types import FileHits, Hit, Item, Moment, SearchModels, group_by_file
from indexer.search.vectors import (has_vectors, image_feature, image_list, keyframe_item,
                                    keyframe_knn, keyframe_vector, segment_vector,
                                    semantic_list, vector_knn, window, window_key)
from indexer.search.tag_moments import tag_moments
from indexer.search.word_forms import merged, query_forms, tag_labels
from indexer.store import Store
from indexer.store import search_reads as reads

__all__ = ["search", "more_like_this", "Hit", "FileHits", "group_by_file", "Filters",
           "SearchModels", "allowed_media", "vector_knn", "keyframe_vector", "segment_vector",
           "fts_query", "relaxed_query", "make_snippet", "first_said", "STOPWORDS",
           "MARK_OPEN", "MARK_CLOSE", "RRF_K", "WEIGHTS", "CANDIDATES", "UnknownSpeaker",
           "resolve_voice", "speaker_term", "split_speaker", "UnknownPerson", "resolve_person",
           "person_term", "split_person", "more_of_this_person"]

CANDIDATES = 50          # rows taken from each list before fusing (at least `limit`)
# Hybrid search that finds nothing falls back to full-text lines holding at least this
# many of the query's content words (benchmarks/README.md, "Spoken search"); 0: never
FALLBACK_WORDS = 2
# ... counting the words a line holding one of them says in a near spelling (the
# recogniser's "жидайте" for "ждайте"): in that fallback only, where hybrid found nothing
FALLBACK_NEAR = True
VOICE_OVERSAMPLE = 4     # a speaker or person filter asks the lists for this many times more
IMAGE_MIN_SIMILARITY = None   # no floor for search by example: the nearest frames are asked for


def search(store: Store, query: str = "", *, image=None, **kw) -> list[Hit]:
    """Moments matching a text query and/or an example image, best first.

    mode: "hybrid" (full text + meaning), "text" (full text only) or "semantic".
    models: a SearchModels; embedder / image_model: loaded models, which win over it.
    The embedder is needed only when the library holds transcript vectors and the mode
    is not "text"; the image model only for an image given as a path or an array.
    image: a path, a BGR array or a 1280-d feature; keyframe_id: use that keyframe as
    the example. filters: Filters. stats, when given, receives per-step timings in ms.
    A speaker:… term in the query is a speaker filter, a person:… term a person filter.
    face_model: loaded face models (models.faces.FaceModels), which win over
    `models.face_model`; without either, an example image is compared as a whole only.
    See _search for the rest.
    """
    from models.threads import one_blas_thread
    with one_blas_thread(), one_check(store):
        return _search(store, query, image=image, **kw)


def _needed(given, models: SearchModels | None, name: str, what: str):
    """A model passed in, else a loader that gets it from `models` when called."""
    if given is not None:
        return lambda: given
    load = getattr(models, name, None) if models is not None else None
    if load is not None:
        return load

    def missing():
        raise ValueError(f"this search needs the {what}: pass {name}= or models=SearchModels(...)")
    return missing


def _search(store: Store, query: str = "", *, image=None, keyframe_id: int | None = None,
            filters: Filters | None = None, limit: int = 20, mode: str = "hybrid",
            models: SearchModels | None = None, embedder=None, image_model=None,
            face_model=None, min_similarity: float | None = None,
            image_min_similarity: float | None = IMAGE_MIN_SIMILARITY, rrf_k: float = RRF_K,
            weights: dict | None = None, candidates: int = CANDIDATES, vector_path: str = "auto",
            stats: dict | None = None) -> list[Hit]:
    from indexer.stages.text import MIN_SIMILARITY
    if mode not in ("hybrid", "text", "semantic"):
        raise ValueError("mode must be hybrid, text or semantic")
    floor = MIN_SIMILARITY if min_similarity is None else min_similarity
    weights = {**WEIGHTS, "coverage": COVERAGE_WEIGHT, **(weights or {})}
    n = max(candidates, limit)
    timing = stats if stats is not None else {}
    t0 = time.perf_counter()
    lists: dict[str, list[Item]] = {}
    query, spoken = split_speaker(query or "")
    query, seen = split_person(query)
    filters = with_query_person(store, with_query_speaker(store, filters, spoken), seen)
    voice = filters.speaker if filters is not None else None
    turns = VoiceTurns(store, voice) if voice is not None else None
    person = filters.person if filters is not None else None
    spans = PersonSpans(store, person) if person is not None else None
    alone = not query and image is None and keyframe_id is None
    if alone and (voice is not None or person is not None):
        if voice is not None:
            hits = voice_moments(store, voice, filters,
                                 limit if spans is None else limit * VOICE_OVERSAMPLE)
            if spans is not None:
                hits = [h for h in hits if spans.overlaps(h.media_id, h.start, h.end)][:limit]
        else:
            hits = person_moments(store, person, filters, limit)
            attach_speakers(store, hits)
        _on_screen(store, hits, spans)
        timing["total_ms"] = (time.perf_counter() - t0) * 1000
        return hits
    if alone and filters is not None and filters.tag:
        hits = tag_moments(store, filters, limit)
        attach_speakers(store, hits)
        _on_screen(store, hits, None)
        timing["total_ms"] = (time.perf_counter() - t0) * 1000
        return hits
    narrowed = voice is not None or person is not None
    k_vec = n * VOICE_OVERSAMPLE if narrowed else n
    semantic = bool(query) and mode in ("hybrid", "semantic") and has_vectors(store, "segment_vec")
    forms = query_forms(store, query) if query and mode in ("hybrid", "text") else {}
    words_seen = merged(forms, tag_labels(query)) if query else {}
    groups = content_groups(query, words_seen)
    if query and mode in ("hybrid", "text"):
        lists.update(fts_lists(store, query, n * VOICE_OVERSAMPLE if spans is not None else n,
                               filters, hybrid=semantic, forms=forms))
        faces = anyone_on_screen(store, groups, filters, n)
        if faces:
            lists["tag"] = lists.get("tag", []) + faces
            for r, it in enumerate(lists["tag"], 1):
                it.rank = r
    t1 = time.perf_counter()
    timing["fts_ms"] = (t1 - t0) * 1000
    if semantic:
        qvec = _needed(embedder, models, "embedder", "text embedder")().embed(
            [query], kind="query")[0]
        t2 = time.perf_counter()
        timing["embed_ms"] = (t2 - t1) * 1000
        sem = semantic_list(store, qvec, k_vec, filters, floor, vector_path)
        for narrow in (turns, spans):
            if narrow is not None:
                sem = narrow.keep(sem)[:n]
        if sem:
            lists["similar"] = sem
        timing["semantic_ms"] = (time.perf_counter() - t2) * 1000
        if mode == "hybrid" and sem:
            t2 = time.perf_counter()
            said = lists.get("said", [])
            more = relaxed_said(store, groups, sem, said)
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
        faces = _face_list(store, image, face_model, models, filters, n)
        if faces:
            lists["face"] = faces
            weights.setdefault("face", FACE_WEIGHT)
        feat = image_feature(image, _needed(image_model, models, "image_model", "image model"))
    if feat is not None:
        img = image_list(store, feat, k_vec, filters, image_min_similarity, vector_path,
                         exclude)
        for narrow in (turns, spans):
            if narrow is not None:
                img = narrow.keep(img)[:n]
        if img:
            lists["image"] = img
    timing["image_ms"] = (time.perf_counter() - t3) * 1000
    t4 = time.perf_counter()
    word_weights = group_weights(store, groups) if groups else ()
    scored = fuse(_narrowed(lists, turns, spans), rrf_k, weights,
                  relaxed_creates=(mode == "text"), word_weights=word_weights)
    if (not scored and semantic and mode == "hybrid" and FALLBACK_WORDS
            and len(groups) >= FALLBACK_WORDS):
        # nothing met hybrid's gates (no meaning window near enough, no rare word): the
        # lines holding FALLBACK_WORDS of the query's words, as full-text search finds them
        text = fts_lists(store, query, n * VOICE_OVERSAMPLE if spans is not None else n,
                         filters, hybrid=False, forms=forms, near=FALLBACK_NEAR)
        scored = [(score, m) for score, m in fuse(_narrowed(text, turns, spans), rrf_k,
                                                  weights, relaxed_creates=True,
                                                  word_weights=word_weights)
                  if len(m.held()) >= FALLBACK_WORDS]
    hits = to_hits(store, scored, limit, query, turns, words_seen)
    attach_speakers(store, hits, voice)
    _on_screen(store, hits, spans)
    timing["fuse_ms"] = (time.perf_counter() - t4) * 1000
    timing["total_ms"] = (time.perf_counter() - t0) * 1000
    return hits


def _narrowed(lists: dict[str, list[Item]], turns: VoiceTurns | None,
              spans: PersonSpans | None) -> dict[str, list[Item]]:
    """The lists kept to a voice's turns and a person's spans (a voice's full-text lists
    were narrowed in SQL already)."""
    for narrow in (turns, spans):
        if narrow is not None:
            lists = {name: kept for name, items in lists.items() if (kept := narrow.keep(items))}
    return lists


def _face_list(store: Store, image, face_model, models, filters, n: int) -> list[Item]:
    """The "face" list of an example picture: the library's faces nearest the faces it
    holds (none without face models, for a feature vector, or a picture with no face)."""
    if face_model is None:
        load = getattr(models, "face_model", None) if models is not None else None
        face_model = load() if load is not None else None
        if face_model is None:          # not installed: the picture is compared as a whole
            return []
    if not isinstance(image, (str, os.PathLike)) and getattr(image, "ndim", 0) != 3:
        return []
    vecs = photo_faces(image, face_model)
    return face_items(face_matches(store, vecs, filters, limit=n)) if len(vecs) else []


def _on_screen(store: Store, hits: list[Hit], spans: PersonSpans | None) -> None:
    """With a person filter, play each hit from a second the person is seen; every hit
    names the people on screen."""
    if spans is not None:
        for h in hits:
            spans.seek_within(h)
    attach_people(store, hits)


def more_like_this(store: Store, hit: Hit, limit: int = 20, *, filters: Filters | None = None,
                   vector_path: str = "auto") -> list[Hit]:
    """Moments like `hit`, in its own modality: transcript windows near its window for
    what was said (or meant), keyframes near its frame for what was seen. The moment
    itself (and anything overlapping it in the same file) is left out."""
    from models.threads import one_blas_thread
    with one_blas_thread():
        return _more_like_this(store, hit, limit,
                               resolved_person(store, resolved(store, filters)), vector_path)


def _more_like_this(store, hit, limit, filters, vector_path):
    voice = filters.speaker if filters is not None else None
    turns = VoiceTurns(store, voice) if voice is not None else None
    person = filters.person if filters is not None else None
    spans = PersonSpans(store, person) if person is not None else None
    narrowed = voice is not None or person is not None
    n = (max(CANDIDATES, limit) + 10) * (VOICE_OVERSAMPLE if narrowed else 1)
    if hit.kind in ("said", "similar") and hit.keyframe_id is None:
        seg = window_key(store, hit.media_id, hit.start, hit.segment_id)
        vec = segment_vector(store, seg) if seg is not None else None
        if vec is None:
            return []
        rows = vector_knn(store, "segment", vec, n, filters, path=vector_path, exclude=[seg])
        items = []
        for sid, mid, sim in rows:
            w = window(store, sid)
            if w is None:
                continue
            items.append(Item("similar", "similar", mid, w.start, w.end, segment_id=sid,
                              similarity=sim, text=w.text))
    else:
        kf = hit.keyframe_id or reads.nearest_keyframe(store, hit.media_id, hit.start)
        vec = keyframe_vector(store, kf) if kf is not None else None
        if vec is None:
            return []
        rows = keyframe_knn(store, vec, n, filters, path=vector_path, exclude=[kf])
        items = [it for it in (keyframe_item(store, i, m, s) for i, m, s in rows) if it]
    src = Moment(hit.media_id, hit.start, max(hit.end, hit.start))
    items = [it for it in items if not src.overlaps(it)]
    for r, it in enumerate(items, 1):
        it.rank = r
    for narrow in (turns, spans):
        if narrow is not None:
            items = narrow.keep(items)
    scored = fuse({items[0].list: items} if items else {}, RRF_K, WEIGHTS, True)
    hits = to_hits(store, scored, limit, "", turns)
    attach_speakers(store, hits, voice)
    _on_screen(store, hits, spans)
    return hits
