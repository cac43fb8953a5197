"""Faces into people, incrementally: pure functions over dlib's 128-d descriptors.

    result = assign(new_vecs, centroids, counts)
    result.labels          # per new face: an index into result.centroids
    result.centroids       # the old people's centroids (moved) then the new people's
    result.counts, result.created

A new face joins the person whose centroid is nearest, when that is under MATCH_DISTANCE
(Euclidean, dlib's metric), and moves the centroid (a running mean); otherwise it starts
a new person, which the following faces can join. So a file's faces join the people the
library already knows without recomputing anyone, and two faces of one new person in the
same file meet at once.

After a file's faces are placed, people whose centroids have come closer than
MATCH_DISTANCE become one (`join_close`, only among those the file touched): a person's
first faces may start two people when they arrive in an unlucky order (a grimace, then a
smile), and the centroids that the later faces move meet again. So the people found no
longer depend on the order files were indexed in (benchmarks/README.md "Faces").

MATCH_DISTANCE: dlib's model puts two faces of one person within 0.6 of each other (its
LFW calibration, 99.38 %); the distance to a centroid is smaller than to a single face, so
0.5 keeps the error on the side a user repairs with one merge (two people for one) rather
than a split (one person for two). The benchmark's dev split (benchmarks/faces_dev.py)
prefers 0.56-0.60 (pairwise F1 0.93-0.94 against 0.80 at 0.5), but on the test split 0.60
joins strangers (F1 0.70 against 0.88), so 0.5 stays: benchmarks/README.md "Faces".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MATCH_DISTANCE = 0.5          # a face joins a person whose centroid is nearer than this
SAME_FACE_DISTANCE = 0.6      # dlib's threshold for two single faces of one person


@dataclass
class Assignment:
    labels: np.ndarray        # (n,) int: index into centroids
    centroids: np.ndarray     # (k + created, 128) float32
    counts: np.ndarray        # (k + created,) int: faces each centroid is the mean of
    created: int              # how many people the new faces started (the last rows)
    distances: np.ndarray     # (n,) distance to the centroid each face joined (0: started it)


def _as_matrix(vecs, dim: int | None = None) -> np.ndarray:
    m = np.asarray(vecs, dtype=np.float32)
    if m.size == 0:
        return np.zeros((0, dim or (m.shape[-1] if m.ndim == 2 else 128)), np.float32)
    return m.reshape(len(m), -1)


def assign(vecs, centroids=None, counts=None, *, threshold: float = MATCH_DISTANCE,
           joinable=None) -> Assignment:
    """Each face in order joins the nearest centroid under `threshold` or starts a new one.
    `joinable` (bool per existing centroid) excludes some people from being joined."""
    vecs = _as_matrix(vecs)
    dim = vecs.shape[1] if len(vecs) else 128
    cents = _as_matrix(centroids if centroids is not None else [], dim).copy()
    n_old = len(cents)
    cnts = (np.asarray(counts, dtype=np.int64).copy() if counts is not None
            else np.ones(n_old, np.int64))
    if len(cnts) != n_old:
        raise ValueError(f"{len(cnts)} counts for {n_old} centroids")
    allowed = (np.ones(n_old, bool) if joinable is None
               else np.asarray(joinable, dtype=bool).copy())
    labels = np.empty(len(vecs), np.int64)
    dists = np.zeros(len(vecs), np.float32)
    rows, counts_l, allowed_l = list(cents), list(cnts), list(allowed)
    for i, v in enumerate(vecs):
        best = -1
        if rows:
            m = np.asarray(rows, np.float32)
            d = np.linalg.norm(m - v, axis=1)
            d[~np.asarray(allowed_l, bool)] = np.inf
            j = int(np.argmin(d))
            if d[j] < threshold:
                best, dists[i] = j, d[j]
        if best < 0:
            rows.append(v.copy())
            counts_l.append(1)
            allowed_l.append(True)
            labels[i] = len(rows) - 1
            continue
        n = counts_l[best]
        rows[best] = (rows[best] * n + v) / (n + 1)
        counts_l[best] = n + 1
        labels[i] = best
    out = np.asarray(rows, np.float32).reshape(len(rows), dim)
    return Assignment(labels, out, np.asarray(counts_l, np.int64), len(rows) - n_old, dists)


def join_close(centroids, counts, touched, *, threshold: float = MATCH_DISTANCE,
               may_join=None) -> list[tuple[int, int]]:
    """People to make one: (into, other) row pairs, in the order they are joined, closest
    first. A pair joins when its centroids (the running means, moved by each join) are
    nearer than `threshold` and one of them is `touched` (the people a file's faces just
    joined or started; a joined person counts as touched). `may_join(a, b)`: whether two
    rows may become one (a user's decisions keep some apart), asked just before they are
    joined, so a caller can carry what the two hold together to later pairs; `into` is
    the row with more faces (the earlier on a tie)."""
    cents = _as_matrix(centroids).copy()
    sq = np.einsum("ij,ij->i", cents, cents)        # distances from dot products: one
    cnts = np.asarray(counts, dtype=np.float64).copy()   # row of them per touched person
    alive = np.ones(len(cents), bool)
    todo = {int(t) for t in touched}
    refused: set[tuple[int, int]] = set()
    joins: list[tuple[int, int]] = []
    while todo:
        best = None
        for t in sorted(todo):
            if not alive[t]:
                continue
            d = np.sqrt(np.maximum(sq + sq[t] - 2.0 * (cents @ cents[t]), 0.0))
            d[~alive] = np.inf
            d[t] = np.inf
            for o in np.flatnonzero(d < threshold):
                pair = (min(t, int(o)), max(t, int(o)))
                if pair not in refused and (best is None or d[o] < best[0]):
                    best = (float(d[o]), *pair)
        if best is None:
            break
        _, a, b = best
        if may_join is not None and not may_join(a, b):
            refused.add((a, b))
            continue
        into, other = (a, b) if cnts[a] >= cnts[b] else (b, a)
        n = cnts[into] + cnts[other]
        cents[into] = (cents[into] * cnts[into] + cents[other] * cnts[other]) / n
        sq[into] = float(cents[into] @ cents[into])
        cnts[into] = n
        alive[other] = False
        todo.discard(other)
        todo.add(into)
        joins.append((into, other))
    return joins


def centroid(vecs, weights=None) -> np.ndarray:
    """The (weighted) mean descriptor."""
    m = _as_matrix(vecs)
    if not len(m):
        raise ValueError("no faces to average")
    w = np.ones(len(m), np.float32) if weights is None else np.asarray(weights, np.float32)
    return (m * w[:, None]).sum(axis=0) / max(float(w.sum()), 1e-12)


def link(vecs, threshold: float = SAME_FACE_DISTANCE) -> np.ndarray:
    """Group labels for faces of one file by single linkage under `threshold`: faces
    seen apart in time (a person who left the frame and came back) are tied together."""
    m = _as_matrix(vecs)
    n = len(m)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n > 1:
        d = np.linalg.norm(m[:, None, :] - m[None, :, :], axis=2)
        for i, j in zip(*np.nonzero(np.triu(d < threshold, 1))):
            parent[root(int(i))] = root(int(j))
    roots = [root(i) for i in range(n)]
    order = {r: k for k, r in enumerate(dict.fromkeys(roots))}
    return np.asarray([order[r] for r in roots], np.int64)


def two_groups(vecs) -> np.ndarray:
    """Split faces in two (0/1): seeded by the farthest pair, refined by 2-means; used to
    split a person when the user does not say which faces go."""
    m = _as_matrix(vecs)
    if len(m) < 2:
        return np.zeros(len(m), np.int64)
    d = np.linalg.norm(m[:, None, :] - m[None, :, :], axis=2)
    a, b = np.unravel_index(int(np.argmax(d)), d.shape)
    cents = m[[a, b]].copy()
    groups = np.zeros(len(m), np.int64)
    for it in range(20):
        new = np.argmin(np.linalg.norm(m[:, None, :] - cents[None], axis=2), axis=1)
        if it and (new == groups).all():
            break
        groups = new
        for g in (0, 1):
            if (groups == g).any():
                cents[g] = m[groups == g].mean(axis=0)
    if groups.min() == groups.max():
        groups = np.zeros(len(m), np.int64)
        groups[b] = 1
    return groups


def pairwise_f1(truth, labels) -> dict:
    """Pairwise precision, recall and F1 of a clustering against true identities."""
    truth, labels = np.asarray(truth), np.asarray(labels)
    same_t = truth[:, None] == truth[None, :]
    same_l = labels[:, None] == labels[None, :]
    iu = np.triu_indices(len(truth), 1)
    tp = int((same_t & same_l)[iu].sum())
    fp = int((~same_t & same_l)[iu].sum())
    fn = int((same_t & ~same_l)[iu].sum())
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "pairs_same": tp + fn}
