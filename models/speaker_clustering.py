"""Spectral clustering of speaker embeddings with the number of speakers found from the
eigengap, self-tuned per file: NME-SC (Park et al. 2020, "Auto-Tuning Spectral Clustering
for Speaker Diarization Using Normalized Maximum Eigengap"), on the cosine affinity of
GE2E window vectors as in Wang et al. 2018. Pure numpy; no DB, no Qt.

    labels = spectral_labels(unit_vectors, min_k=1, max_k=8)

For each candidate p, every row of the affinity keeps its p most similar other rows (1,
the rest 0), the graph is symmetrised and its Laplacian's smallest eigenvalues read: a
clear gap after the k-th says k groups. The p whose largest gap, normalised by the
largest eigenvalue, is widest relative to p is chosen (few neighbours and a clear gap);
the rows of the first k eigenvectors are then grouped by k-means.
"""
from __future__ import annotations

import numpy as np

MAX_K = 8                  # the most speakers looked for in a file unless told
P_CANDIDATES = 24          # neighbour counts tried per file, spread over [2, p_max_frac * n]


def kmeans(x: np.ndarray, k: int, iters: int = 50) -> np.ndarray:
    """k-means labels of the rows of `x`, seeded deterministically by farthest-first
    traversal from the row farthest from the mean."""
    n = len(x)
    if k <= 1 or n <= k:
        return np.arange(n) if n <= k and k > 1 else np.zeros(n, int)
    seeds = [int(np.argmax(((x - x.mean(axis=0)) ** 2).sum(axis=1)))]
    near = ((x - x[seeds[0]]) ** 2).sum(axis=1)
    for _ in range(1, k):
        seeds.append(int(np.argmax(near)))
        near = np.minimum(near, ((x - x[seeds[-1]]) ** 2).sum(axis=1))
    cents = x[seeds].copy()
    labels = np.full(n, -1)
    for _ in range(iters):
        dist = ((x[:, None, :] - cents[None, :, :]) ** 2).sum(axis=2)
        new = np.argmin(dist, axis=1)
        if (new == labels).all():
            break
        labels = new
        for c in range(k):
            if (labels == c).any():
                cents[c] = x[labels == c].mean(axis=0)
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def _binarized(affinity: np.ndarray, p: int) -> np.ndarray:
    """Each row's p largest off-diagonal entries as 1, the rest 0, symmetrised."""
    a = affinity.copy()
    np.fill_diagonal(a, -np.inf)
    top = np.argpartition(-a, p - 1, axis=1)[:, :p]
    b = np.zeros_like(affinity)
    np.put_along_axis(b, top, 1.0, axis=1)
    return (b + b.T) / 2


def _laplacian(a: np.ndarray) -> np.ndarray:
    return np.diag(a.sum(axis=1)) - a


def silhouette(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of `labels` on the cosine distance of unit rows (0 for one group)."""
    ks = np.unique(labels)
    if len(ks) < 2:
        return 0.0
    d = 1.0 - np.asarray(vectors, np.float64) @ np.asarray(vectors, np.float64).T
    member = labels[None, :] == ks[:, None]                       # (k, n)
    counts = member.sum(axis=1).astype(np.float64)
    mean_to = (d @ member.T.astype(np.float64))                   # (n, k) distance sums
    own = member.T
    a = (mean_to * own).sum(axis=1) / np.maximum(counts[np.argmax(own, axis=1)] - 1, 1)
    b = np.where(own, np.inf, mean_to / counts[None, :]).min(axis=1)
    sil = (b - a) / np.maximum(np.maximum(a, b), 1e-12)
    sil[counts[np.argmax(own, axis=1)] == 1] = 0.0
    return float(sil.mean())


def spectral_labels(vectors: np.ndarray, *, min_k: int = 1, max_k: int | None = None,
                    count: str = "eigengap", over_k: int = 0, p_max_frac: float = 0.5,
                    gap_tolerance: float = 1.0) -> np.ndarray:
    """A group label (0..k-1) per row of `vectors` (unit rows; cosine affinity), with k
    in [min_k, max_k] from the normalised maximum eigengap; with count="silhouette", a k
    of 2 or more is chosen instead as the one whose grouping of the spectral embedding has
    the best silhouette on the vectors themselves (the eigengap still decides 1 or more).
    `over_k`: when the eigengap finds more than one group, at least this many are cut (an
    over-segmentation for a later merge of groups of one voice to undo). `p_max_frac`:
    the largest neighbour count tried, as a share of the rows. `gap_tolerance` below 1:
    the largest k whose gap is at least that share of the widest gap (more groups when
    two gaps are nearly as wide)."""
    n = len(vectors)
    if n < 3:
        return np.zeros(n, int)
    hi = max(1, min(max_k or MAX_K, n - 1))
    lo = max(1, min(min_k, hi))
    affinity = np.asarray(vectors, np.float64) @ np.asarray(vectors, np.float64).T
    ps = np.unique(np.linspace(2, max(2, int(n * p_max_frac)), P_CANDIDATES).astype(int))
    ps = ps[ps < n]
    best = None
    for p in ps:
        lam = np.linalg.eigvalsh(_laplacian(_binarized(affinity, int(p))))
        gaps = np.diff(lam[: hi + 1])              # gaps[k - 1]: after the k-th smallest
        span = gaps[lo - 1: hi]
        g = float(span.max()) / (float(lam[-1]) + 1e-10)
        ratio = (p / n) / (g + 1e-10)
        if best is None or ratio < best[0]:
            wide = np.flatnonzero(span >= gap_tolerance * span.max())
            best = (ratio, int(p), lo + int(wide[-1] if gap_tolerance < 1 else np.argmax(span)))
    _, p, k = best
    if k <= 1:
        return np.zeros(n, int)
    _, vecs = np.linalg.eigh(_laplacian(_binarized(affinity, p)))

    def grouped(k: int) -> np.ndarray:
        emb = vecs[:, :k]
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return kmeans(emb, k)

    if count != "silhouette":
        return grouped(max(k, min(over_k, hi, n - 1)))
    options = [grouped(j) for j in range(max(2, lo), hi + 1)]
    return max(options, key=lambda lab: silhouette(vectors, lab))
