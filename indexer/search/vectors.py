"""The meaning and image lists: KNN over transcript-window embeddings (`segment_vec`)
and keyframe features (`keyframe_vec`), through the binary-code index of
indexer.search.code_index when the library has one, else the exact int8 KNN of
sqlite-vec; and the transcript window a `segment_vec` key stands for.

Search by example image takes the keyframes nearest by plain cosine and re-ranks them by
their cosine in the library's own whitened space (models.whitening, kept current by
code_index.maintain_whitening) when the library has one: measured in
benchmarks/README.md, "Search by example image"."""
from __future__ import annotations

import os
from typing import Callable, Iterable, NamedTuple

import numpy as np

from indexer.search import code_index
from indexer.search.filters import Filters, allowed_media
from indexer.search.types import Item
from indexer.store import Store
from indexer.store import search_reads as reads
from indexer.store.vec_codec import int8_blob
from models.whitening import Whitening

RERANK_CANDIDATES = 300   # keyframes nearest by cosine re-ranked in the whitened space


def has_vectors(store: Store, vec_table: str) -> bool:
    return reads.has_vectors(store, vec_table)


def _exact_knn(store: Store, table: str, id_col: str, q: np.ndarray, k: int,
               media_ids: list[int] | None, kinds: list[str] | None, language: str | None,
               exclude: Iterable[int] = ()) -> list[tuple[int, int, float]]:
    """The exact float KNN in sqlite-vec, filters inside the KNN (metadata columns)."""
    from indexer.stages.text import MAX_K
    exclude = set(exclude)
    if media_ids is not None and not media_ids:
        return []
    rows = reads.vec_knn(store, table, id_col, int8_blob(q), min(MAX_K, k + len(exclude)),
                         media_ids, kinds, language)
    return [(int(i), int(m), 1.0 - float(d)) for i, m, d in rows if int(i) not in exclude][:k]


def vector_knn(store: Store, space: str, q: np.ndarray, k: int, f: Filters | None = None, *,
               path: str = "auto", exclude: Iterable[int] = (),
               oversample: int | None = None, hamming_factor: int | None = None,
               whitening: Whitening | None = None, candidates: int | None = None
               ) -> list[tuple[int, int, float]]:
    """[(id, media_id, cosine)] of the k nearest vectors of a space ("segment" or
    "keyframe") passing the filters, best first. path: "auto" (binary codes when the
    library has them, else exact), "binary" or "exact". With a `whitening`
    (models.whitening), the nearest candidates are re-ranked by their cosine in the
    whitened space, which is the cosine returned: those the codes' re-rank step reads
    anyway, or the exact `candidates` nearest (default RERANK_CANDIDATES)."""
    from models.threads import one_blas_thread
    with one_blas_thread():
        return _vector_knn(store, space, q, k, f, path=path, exclude=exclude,
                           oversample=oversample, hamming_factor=hamming_factor,
                           whitening=whitening, candidates=candidates)


def _vector_knn(store, space, q, k, f, *, path, exclude, oversample, hamming_factor,
                whitening, candidates):
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
                                    language=language, exclude=exclude, whitening=whitening,
                                    **kw)
        if res is not None:
            return res
        if path == "binary":
            raise RuntimeError(f"no binary codes for {space} yet "
                               "(run indexer.search.code_index.maintain)")
    want = k if whitening is None else max(k, RERANK_CANDIDATES if candidates is None
                                           else candidates)
    if media_ids is not None and len(media_ids) > 30000:
        # Too many for one IN list: filter after a wide KNN instead.
        allowed = set(media_ids)
        rows = _exact_knn(store, sp.vec_table, sp.id_col, q, 4096, None, kinds, language, exclude)
        rows = [r for r in rows if r[1] in allowed][:want]
    else:
        rows = _exact_knn(store, sp.vec_table, sp.id_col, q, want, media_ids, kinds, language,
                          exclude)
    if whitening is None or not rows:
        return rows
    vecs = code_index.vectors_of(store, sp, [r[0] for r in rows])
    rows = [r for r in rows if r[0] in vecs]
    sims = code_index.similarities(np.stack([vecs[r[0]] for r in rows]), q, whitening)
    order = np.argsort(-sims, kind="stable")[:k]
    return [(rows[j][0], rows[j][1], float(sims[j])) for j in order]


class Window(NamedTuple):
    media_id: int
    start: float
    end: float
    text: str
    segments: list        # (id, start, end, text) of the window's segments


def window(store: Store, segment_id: int) -> Window | None:
    """The transcript window stored under segment_id: the first window
    indexer.stages.text.transcript_windows builds from that segment on (the same growth
    rules, applied to the next few segments of the same source and track only)."""
    from indexer.stages.text import (WINDOW_GAP_S, WINDOW_MAX_S, WINDOW_MAX_SEGMENTS,
                                     WINDOW_MIN_SEGMENTS, WINDOW_TARGET_S)
    first = reads.segment_start(store, segment_id)
    if first is None:
        return None
    media_id, start, source, track = first
    segs = [r for r in reads.segments_from(store, media_id, start, WINDOW_MAX_SEGMENTS + 4,
                                           source, track)
            if (r[0] == segment_id or r[1] > start) and (r[3] or "").strip()]
    if not segs:
        return Window(media_id, float(start), float(start), "", [])
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
    return Window(media_id, float(win[0][1]), max(float(r[2]) for r in win),
                  " ".join(" ".join(r[3].split()) for r in win), list(win))


def semantic_list(store: Store, qvec: np.ndarray, n: int, f: Filters | None,
                  min_similarity: float | None, path: str) -> list[Item]:
    rows = [r for r in vector_knn(store, "segment", qvec, n, f, path=path)
            if min_similarity is None or r[2] >= min_similarity]
    if not rows:
        return []
    # Where each window starts (its first segment) is enough to fuse; the window's full
    # extent and text are worked out for the moments that are shown (moments.to_hits).
    seg = reads.segment_spans(store, [r[0] for r in rows])
    out = []
    for seg_id, media_id, sim in rows:
        if seg_id in seg:
            s, e = seg[seg_id]
            out.append(Item("similar", "similar", media_id, float(s), float(e),
                            segment_id=seg_id, similarity=sim))
    for r, it in enumerate(out, 1):
        it.rank = r
    return out


def keyframe_item(store: Store, kf_id: int, media_id: int, sim: float) -> Item | None:
    t = reads.keyframe_time(store, kf_id)
    if t is None:
        return None
    t = float(t)
    nxt = reads.next_keyframe_time(store, media_id, t)
    end = float(nxt) if nxt is not None else t
    return Item("image", "similar", media_id, t, max(t, end), keyframe_id=kf_id, similarity=sim)


def keyframe_knn(store: Store, feat: np.ndarray, n: int, f: Filters | None = None, *,
                 path: str = "auto", exclude: Iterable[int] = (),
                 candidates: int | None = None) -> list[tuple[int, int, float]]:
    """[(keyframe id, media_id, similarity)] of the n keyframes nearest an image feature,
    re-ranked by their cosine in the library's whitened space (which is the similarity
    returned) when the library has a whitening; plain cosine otherwise, or with
    candidates=0 (default: RERANK_CANDIDATES, or what the codes' re-rank step reads)."""
    candidates = RERANK_CANDIDATES if candidates is None else candidates
    w = code_index.whitening(store) if candidates else None
    return vector_knn(store, "keyframe", feat, n, f, path=path, exclude=exclude,
                      whitening=w, candidates=candidates)


def image_list(store: Store, feat: np.ndarray, n: int, f: Filters | None,
               min_similarity: float | None, path: str, exclude: Iterable[int] = ()
               ) -> list[Item]:
    rows = keyframe_knn(store, feat, n, f, path=path, exclude=exclude)
    out = []
    for kf_id, media_id, sim in rows:
        if min_similarity is not None and sim < min_similarity:
            continue
        it = keyframe_item(store, kf_id, media_id, sim)
        if it is not None:
            out.append(it)
    for r, it in enumerate(out, 1):
        it.rank = r
    return out


def image_feature(image, image_model: Callable[[], object]) -> np.ndarray:
    """A 1280-d EfficientNet-Lite0 feature from a path, a BGR image array, or a feature
    (returned as is; the model, got from `image_model()`, is needed for the others)."""
    arr = None if isinstance(image, (str, os.PathLike)) else np.asarray(image)
    if arr is not None and arr.ndim == 1:
        return arr.astype(np.float32)
    model = image_model()
    if arr is None:
        return model.features_of_file(image)
    return model.features([arr])[0]


def keyframe_vector(store: Store, keyframe_id: int) -> np.ndarray | None:
    data = code_index.read_vectors(store, "keyframe", [keyframe_id])
    return data["vectors"][0].copy() if len(data["ids"]) else None


def segment_vector(store: Store, segment_id: int) -> np.ndarray | None:
    data = code_index.read_vectors(store, "segment", [segment_id])
    return data["vectors"][0].copy() if len(data["ids"]) else None


def window_key(store: Store, media_id: int, t: float, segment_id: int | None) -> int | None:
    """The segment_vec key (a window's first segment) of the window holding time t of a
    file, trying `segment_id` first."""
    cands = reads.segments_before(store, media_id, t + 0.01, 8)
    if segment_id is not None:
        cands = [segment_id] + [c for c in cands if c != segment_id]
    if not cands:
        return None
    have = set(code_index.read_vectors(store, "segment", cands)["ids"].tolist())
    return next((c for c in cands if c in have), None)
