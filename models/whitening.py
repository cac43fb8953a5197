"""A PCA whitening of image features learnt from the library's own keyframes. No DB, no Qt.

Pooled CNN features share a few strong directions (what most frames of a collection have
in common: dark borders, sky, faces, compression texture), and plain cosine similarity is
dominated by them. Centring on the library's mean and scaling its principal directions
down by their variance lets the directions that tell this library's pictures apart
count. Measured on real photos (benchmarks/image_search.py): dev P@1 0.727 -> 0.818.

    w = fit_whitening(vectors)                 # (n, d) float32, the library's features
    z = w.transform(x)                         # (m, dims) float32, unit rows
    blob = w.to_bytes(); w = Whitening.from_bytes(blob)

Each of the top `dims` principal directions is scaled by (variance + shrink * mean
variance) ** -power: power 0.5 is full whitening, which on a few hundred keyframes blows up
noise directions (dev P@1 0.485 at 128 dims); the shrinkage and the gentler power 0.25
were chosen on the dev split of that benchmark.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np

DIMS = 128          # principal directions kept
POWER = 0.25        # scale by variance ** -POWER (0.5 = full whitening)
SHRINK = 0.5        # variance + SHRINK * mean variance, before the power
MIN_ROWS = 100      # fewer vectors than this: no whitening (plain cosine)


@dataclass
class Whitening:
    mean: np.ndarray                 # (d,)
    projection: np.ndarray           # (d, dims): principal directions, scaled
    n_fit: int = 0
    info: dict = field(default_factory=dict)

    @property
    def dims(self) -> int:
        return int(self.projection.shape[1])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(m, d) or (d,) -> (m, dims) whitened, L2-normalised float32 rows."""
        x = np.asarray(x, np.float32)
        if x.ndim == 1:
            x = x[None]
        z = (x - self.mean) @ self.projection
        return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = {"n_fit": self.n_fit, "info": self.info}
        np.savez(buf, mean=self.mean.astype(np.float32),
                 projection=self.projection.astype(np.float32),
                 meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "Whitening":
        z = np.load(io.BytesIO(blob), allow_pickle=False)
        meta = json.loads(z["meta"].tobytes().decode())
        return cls(z["mean"], z["projection"], int(meta["n_fit"]), meta.get("info", {}))


def fit_whitening(vectors: np.ndarray, *, dims: int = DIMS, power: float = POWER,
                  shrink: float = SHRINK, sample: int = 30000, seed: int = 0) -> Whitening:
    """Fit on (a sample of) the library's feature vectors (at most `dims` directions, and
    fewer than the rows: the shrinkage keeps a small library's weakest ones tame)."""
    from models.threads import one_blas_thread
    x = np.asarray(vectors, np.float32)
    if x.ndim != 2 or len(x) < 4:
        raise ValueError("need at least four vectors to fit a whitening")
    n = len(x)
    if n > sample:
        x = x[np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))]
    with one_blas_thread():
        mean = x.mean(axis=0)
        xc = (x - mean).astype(np.float64)
        cov = xc.T @ xc / max(1, len(x) - 1)
        evals, evecs = np.linalg.eigh(cov)
    keep = min(dims, len(x) - 1, x.shape[1])
    order = np.argsort(evals)[::-1][:keep]
    var = np.maximum(evals[order], 0)
    scale = (var + shrink * var.mean()) ** -power
    proj = (evecs[:, order] * scale).astype(np.float32)
    return Whitening(mean.astype(np.float32), proj, n,
                     {"dims": int(keep), "power": power, "shrink": shrink,
                      "explained": float(var.sum() / max(evals.clip(0).sum(), 1e-12))})
