"""Unsupervised motion groups: k-means (k-means++ seeding, a few restarts) on standardised
descriptors (motion blocks only by default, so groups are about how things move, not what
they look like)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .layout import standardiser

MOTION_BLOCKS = ("encoder", "flow")


@dataclass
class Groups:
    centroids: np.ndarray     # (k, d) in the standardised space
    labels: np.ndarray        # (N,) group of each window
    distances: np.ndarray     # (N,) distance to its centroid
    mean: np.ndarray
    scale: np.ndarray
    inertia: float

    def assign(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float32) - self.mean) * self.scale
        d = ((z[:, None, :] - self.centroids[None]) ** 2).sum(-1)
        return d.argmin(1)

    def examples(self, group: int, n: int = 5) -> np.ndarray:
        """Indices of the n windows closest to the group's centroid."""
        idx = np.flatnonzero(self.labels == group)
        return idx[np.argsort(self.distances[idx])[:n]]


def default_k(n: int) -> int:
    return int(min(12, max(2, round(math.sqrt(n / 4)))))


def _kmeans(z: np.ndarray, k: int, rng: np.random.Generator, iters: int = 60):
    n = len(z)
    c = [z[rng.integers(n)]]
    d2 = ((z - c[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1 / n)
        c.append(z[rng.choice(n, p=p)])
        d2 = np.minimum(d2, ((z - c[-1]) ** 2).sum(1))
    c = np.array(c)
    for _ in range(iters):
        d = ((z[:, None, :] - c[None]) ** 2).sum(-1)
        lab = d.argmin(1)
        new = np.array([z[lab == j].mean(0) if (lab == j).any() else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    d = ((z[:, None, :] - c[None]) ** 2).sum(-1)
    lab = d.argmin(1)
    return c, lab, d[np.arange(n), lab], float(d[np.arange(n), lab].sum())


def cluster(x: np.ndarray, k: int | None = None, *, blocks=MOTION_BLOCKS, restarts: int = 4,
            seed: int = 0) -> Groups:
    x = np.asarray(x, np.float32)
    if len(x) < 2:
        raise ValueError("need at least two windows to group")
    k = min(k or default_k(len(x)), len(x))
    mean, scale = standardiser(x, blocks)
    z = (x - mean) * scale
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(restarts):
        c, lab, dist, inertia = _kmeans(z, k, rng)
        if best is None or inertia < best[3]:
            best = (c, lab, dist, inertia)
    c, lab, dist, inertia = best
    return Groups(c.astype(np.float32), lab, dist, mean, scale, inertia)
