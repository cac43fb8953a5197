"""Action tags: an L2-regularised logistic regression on standardised window descriptors.

    model = train_tag(positives, negatives, reference=library_descriptors)
    model.cv_accuracy, model.threshold      # balanced accuracy of k-fold CV; cut-off
    p = model.probability(X)                 # per window
    p = model.tagged(X)                      # p where p >= model.threshold and the window
                                             # is near the examples (open set), else 0

Standardisation (models.motion.descriptor.standardiser) is fitted on `reference` (the
library's descriptors of the same encoder, unlabelled) so that each block (encoder, flow,
appearance) counts equally whatever its size. Positives and negatives are weighted to equal
total weight. Cross-validation folds keep each example clip whole (its windows are alike).
How much each block counts is chosen per tag by the same cross-validation
among BLOCK_WEIGHTS (a tag about how things move leans on flow; one about what moves, on
appearance); ties go to the first, which leans on motion, since an action tag is about how
things move (measured: benchmarks/README.md, 'A "walking" tag on vtest.avi'). The threshold maximises the balanced
accuracy of the out-of-fold probabilities (midpoint between neighbouring scores), kept in
[0.2, 0.8].

Open set: the logistic rule only says which side of the examples' boundary a window lies
on, so motion unlike anything it was trained on lands on either side. A window is tagged
only when it is also near the tag's own examples: its distance to the nearest example
window is at most `radius`. That distance is measured in a space standardised on the
examples (positives and negatives) alone, blocks weighted equally, so that nothing the
library holds besides them moves it (the block weights are chosen in the library's space,
so they would): on the library, an action common there but never trained (a third of the
clips walking) widens exactly the dimensions in which it differs, and its windows come out
near the examples. On the examples, the dimensions in which every example agrees weigh
most, which is where motion of another kind stands out. The radius is the smaller of
 * OPEN_SET_MARGIN x the farthest any example window is from the nearest window of another
   example (how far apart two genuine instances were), and
 * the OPEN_SET_FPR quantile of the negatives' (the given ones and the windows sampled from
   the library's other videos) distances, so that at most that share of them would pass
   (those the logistic rule rejects anyway; the test is for what no example showed).
Measured on real footage: benchmarks/README.md, "Open-set action tags".
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from .layout import standardiser

OPEN_SET_MARGIN = 1.5
OPEN_SET_FPR = 0.35
# where the open-set distance is standardised: "examples" (above), "examples-weighted"
# (with the tag's block weights) or "library" (the logistic rule's space: the rule before)
OPEN_SET_SPACE = "examples"
MAX_PROTOTYPES = 256     # example windows kept for the distance test (a motion group has 300)
DEFAULT_L2 = 0.1         # on block-weighted z-scores (measured: benchmarks/README.md, "Descriptor quality on a labelled generated set")
# (encoder, flow, appearance) relative weights tried by cross-validation
BLOCK_WEIGHTS = ((0.5, 1.0, 0.25), (1.0, 1.0, 1.0), (0.5, 1.0, 0.5), (1.0, 1.0, 0.25),
                 (0.5, 0.5, 1.0), (1.0, 1.0, 0.0))


def _fit(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 30) -> tuple[np.ndarray, float]:
    """Weighted logistic regression by Newton steps (IRLS); returns weights and bias.
    With fewer windows than dimensions (the usual few-shot case) each step is solved in the
    n-dimensional dual (Woodbury), so a fit costs O(n^2 d), not O(d^3)."""
    n, d = x.shape
    sw = np.where(y > 0, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1)) * n
    a = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 1e-6
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(a @ w, -30, 30)))
        g = a.T @ (sw * (p - y)) + reg * w
        s = np.maximum(sw * p * (1 - p), 1e-10)
        if n < d + 1:
            # (A^T S A + R)^-1 g = R^-1 g - R^-1 A^T (S^-1 + A R^-1 A^T)^-1 A R^-1 g
            rg = g / reg
            ar = a / reg
            inner = np.diag(1 / s) + ar @ a.T
            step = rg - ar.T @ np.linalg.solve(inner, a @ rg)
        else:
            step = np.linalg.solve((a * s[:, None]).T @ a + np.diag(reg), g)
        w -= step
        if np.abs(step).max() < 1e-5:
            break
    return w[:-1], float(w[-1])


def _folds(y: np.ndarray, groups: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Stratified k folds that keep each group (an example clip) whole: windows of one clip
    are alike, so splitting them would make cross-validation optimistic."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), int)
    for cls in (0, 1):
        ids = np.unique(groups[y == cls])
        rng.shuffle(ids)
        for i, g in enumerate(ids):
            fold[(groups == g) & (y == cls)] = i % k
    return fold


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[y == c] == c) for c in (0, 1) if (y == c).any()]))


def choose_threshold(y: np.ndarray, p: np.ndarray) -> float:
    order = np.unique(p)
    cands = np.concatenate([[0.5], (order[1:] + order[:-1]) / 2])
    cands = cands[(cands >= 0.2) & (cands <= 0.8)]
    if not len(cands):
        return 0.5
    scores = [balanced_accuracy(y, (p >= c).astype(int)) - 1e-3 * abs(c - 0.5) for c in cands]
    return float(cands[int(np.argmax(scores))])


@dataclass
class TagModel:
    mean: np.ndarray
    scale: np.ndarray
    w: np.ndarray
    b: float
    threshold: float = 0.5
    cv_accuracy: float | None = None
    folds: int = 0
    n_pos: int = 0
    n_neg: int = 0
    weights: tuple = (1.0, 1.0, 1.0)
    prototypes: np.ndarray | None = None   # example windows, in the open-set space
    radius: float = float("inf")
    # the open-set space's standardisation (None: the logistic rule's, as tags stored
    # before it had their own)
    open_mean: np.ndarray | None = None
    open_scale: np.ndarray | None = None

    def probability(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float32) - self.mean) * self.scale
        return 1 / (1 + np.exp(-np.clip(z @ self.w + self.b, -30, 30)))

    def known(self, x: np.ndarray) -> np.ndarray:
        """Per window: near enough to the tag's examples (tags trained before the open-set
        rule have no prototypes and accept every window)."""
        x = np.asarray(x, np.float32)
        if self.prototypes is None or not len(self.prototypes) or not np.isfinite(self.radius):
            return np.ones(len(x), bool)
        mean = self.mean if self.open_mean is None else self.open_mean
        scale = self.scale if self.open_scale is None else self.open_scale
        return _nearest(((x - mean) * scale), self.prototypes) <= self.radius

    def tagged(self, x: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Per window: the probability where the tag applies, else 0."""
        p = self.probability(x)
        thr = self.threshold if threshold is None else threshold
        return np.where((p >= thr) & self.known(x), p, 0.0)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, mean=self.mean, scale=self.scale, w=self.w,
                 meta=np.array([self.b, self.threshold,
                                np.nan if self.cv_accuracy is None else self.cv_accuracy,
                                self.folds, self.n_pos, self.n_neg, *self.weights]),
                 prototypes=np.zeros((0, len(self.mean)), np.float32)
                 if self.prototypes is None else self.prototypes.astype(np.float32),
                 radius=np.array([self.radius]),
                 **({} if self.open_mean is None else
                    {"open_mean": self.open_mean, "open_scale": self.open_scale}))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "TagModel":
        a = np.load(io.BytesIO(blob))
        b, thr, acc, folds, npos, nneg, *weights = a["meta"].tolist()
        open_set = "radius" in a.files
        return cls(a["mean"], a["scale"], a["w"], b, thr, None if np.isnan(acc) else acc,
                   int(folds), int(npos), int(nneg), tuple(weights),
                   a["prototypes"] if open_set else None,
                   float(a["radius"][0]) if open_set else float("inf"),
                   a["open_mean"] if "open_mean" in a.files else None,
                   a["open_scale"] if "open_scale" in a.files else None)


def _nearest(z: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """Each row's Euclidean distance to its nearest prototype."""
    d2 = (z * z).sum(1)[:, None] - 2 * z @ prototypes.T + (prototypes * prototypes).sum(1)[None]
    return np.sqrt(np.maximum(d2.min(1), 0))


def open_set_radius(zpos: np.ndarray, pos_groups: np.ndarray, zneg: np.ndarray,
                    margin: float | None = None, fpr: float | None = None) -> float:
    """How near to an example window a window must be to be tagged (see the module doc);
    infinite when the rule is off (fpr None)."""
    margin = OPEN_SET_MARGIN if margin is None else margin
    fpr = OPEN_SET_FPR if fpr is None else fpr
    if fpr is None or len(zpos) < 2:
        return float("inf")
    d = np.sqrt(np.maximum(((zpos[:, None] - zpos[None]) ** 2).sum(-1), 0))
    other = pos_groups[:, None] != pos_groups[None]
    if not other.any(axis=1).all():       # one example clip: its windows' nearest neighbours
        other = ~np.eye(len(zpos), dtype=bool)
    spread = float(np.where(other, d, np.inf).min(1).max())
    radius = margin * spread
    if len(zneg):
        radius = min(radius, float(np.quantile(_nearest(zneg, zpos), fpr)))
    return radius


def train_tag(positives: np.ndarray, negatives: np.ndarray, **kw) -> TagModel:
    """See _train_tag. Small matrices: one BLAS thread (several only contend on 2 cores)."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        return _train_tag(positives, negatives, **kw)


def _train_tag(positives: np.ndarray, negatives: np.ndarray, *,
               reference: np.ndarray | None = None, blocks=("encoder", "flow", "appearance"),
               l2: float = DEFAULT_L2, block_weights=BLOCK_WEIGHTS, seed: int = 0,
               pos_groups=None, neg_groups=None) -> TagModel:
    """pos_groups/neg_groups: which example (clip) each window comes from; folds never split
    one (default: every window its own)."""
    pos, neg = np.asarray(positives, np.float32), np.asarray(negatives, np.float32)
    if not len(pos) or not len(neg):
        raise ValueError("a tag needs at least one positive and one negative window")
    x = np.vstack([pos, neg])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    pg = np.arange(len(pos)) if pos_groups is None else np.asarray(pos_groups)
    ng = np.arange(len(neg)) if neg_groups is None else np.asarray(neg_groups)
    # positives' and negatives' group ids live in separate namespaces
    groups = np.concatenate([np.unique(pg, return_inverse=True)[1],
                             len(pg) + np.unique(ng, return_inverse=True)[1]])
    ref = x if reference is None or not len(reference) else np.vstack([reference, x])
    names = ("encoder", "flow", "appearance")
    # Up to 5 folds, as many as the larger class has clips (a fold may hold clips of one
    # class only): with 2 example clips against 3, 2 folds would train each fit on half the
    # examples and under-state the accuracy a tag trained on all of them reaches.
    n_pg, n_ng = len(np.unique(pg)), len(np.unique(ng))
    k = int(min(5, max(n_pg, n_ng))) if min(n_pg, n_ng) >= 2 else 1
    candidates = list(block_weights) if k >= 2 else [block_weights[0]]
    best = None
    for weights in candidates:
        mean, scale = standardiser(ref, blocks, dict(zip(names, weights)))
        z = ((x - mean) * scale).astype(np.float64)
        cv, thr = None, 0.5
        if k >= 2:
            fold = _folds(y, groups, k, seed)
            oof = np.empty(len(y))
            for f in range(k):
                tr = fold != f
                w, b = _fit(z[tr], y[tr], l2)
                oof[~tr] = 1 / (1 + np.exp(-np.clip(z[~tr] @ w + b, -30, 30)))
            cv = balanced_accuracy(y, (oof >= 0.5).astype(int))
            thr = choose_threshold(y, oof)
        if best is None or (cv is not None and cv > best[0] + 1e-9):
            best = (cv, thr, weights, mean, scale, z)
    cv, thr, weights, mean, scale, z = best
    w, b = _fit(z, y, l2)
    # the open-set space: standardised on the examples alone (see the module doc)
    open_mean, open_scale = {
        "examples": lambda: standardiser(x, blocks),
        "examples-weighted": lambda: standardiser(x, blocks, dict(zip(names, weights))),
        "library": lambda: (mean, scale)}[OPEN_SET_SPACE]()
    zo = (x - open_mean) * open_scale
    zpos, zneg = zo[y > 0].astype(np.float32), zo[y == 0].astype(np.float32)
    radius = open_set_radius(zpos, groups[y > 0], zneg)
    if len(zpos) > MAX_PROTOTYPES:
        zpos = zpos[np.random.default_rng(seed).choice(len(zpos), MAX_PROTOTYPES, replace=False)]
    return TagModel(mean, scale, w.astype(np.float32), b, thr, cv, k if k >= 2 else 0,
                    len(pos), len(neg), tuple(weights), zpos, radius, open_mean, open_scale)


def merge_ranges(windows: list[tuple[float, float, float]], gap: float = 0.05
                 ) -> list[tuple[float, float, float]]:
    """(start, end, score) of tagged windows -> merged time ranges scored with their max."""
    out: list[list[float]] = []
    for s, e, p in sorted(windows):
        if out and s <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], e)
            out[-1][2] = max(out[-1][2], p)
        else:
            out.append([s, e, p])
    return [tuple(r) for r in out]
