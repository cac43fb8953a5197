"""Learned binary codes for embeddings (semantic hashing). No DB, no Qt.

A `BinaryCoder` is fitted on the library's own vectors and turns each vector into
`n_bits` bits whose Hamming distance tracks cosine distance, so a search can
scan a million codes in a few milliseconds and re-rank only the best few hundred
with real vectors.

Two code families (benchmarks/search_scale.py compares them at equal bit budgets):

- ``"itq"`` (default): centre, project on the top ``n_bits`` principal directions,
  then rotate with Iterative Quantization (Gong & Lazebnik 2011) so that taking
  the sign loses as little as possible; one bit per rotated direction.
- ``"pca-var"``: no rotation; the bit budget is spread over the principal
  directions by variance (greedy rate allocation: a direction gets another bit
  while that lowers the total quantisation error most), and a direction with
  b bits is cut at b quantiles into a *thermometer* code, so the Hamming
  distance between two codes is the L1 distance between their quantised
  projections. This is "more bits for higher-variance directions".

    coder = fit_coder(vectors, n_bits=256)           # vectors: (n, d) float32, unit rows
    codes = coder.encode(vectors)                    # (n, n_bits // 8) uint8, packed
    d = hamming(word_major(codes), as_words(coder.encode(q[None]))[0])
    blob = coder.to_bytes(); coder = BinaryCoder.from_bytes(blob)

Codes are packed little-endian within each byte (numpy ``bitorder="little"``);
Hamming distance does not depend on the bit order, so the same bytes can be
stored in a sqlite-vec ``bit[N]`` column and scanned here.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np

from .threads import one_blas_thread

FAMILIES = ("itq", "pca-var")


@dataclass
class BinaryCoder:
    mean: np.ndarray                 # (d,)
    projection: np.ndarray           # (d, c): principal directions (times rotation for itq)
    bits_per_dim: np.ndarray         # (c,) int: 1 for itq; >= 1 for pca-var
    thresholds: np.ndarray           # (n_bits,) threshold of each bit on its direction
    bit_dims: np.ndarray             # (n_bits,) which of the c directions each bit reads
    family: str = "itq"
    n_fit: int = 0                   # rows it was fitted on
    info: dict = field(default_factory=dict)

    @property
    def n_bits(self) -> int:
        return int(len(self.thresholds))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def project(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        return (x - self.mean) @ self.projection

    def bits(self, x: np.ndarray) -> np.ndarray:
        """(n, n_bits) bool."""
        p = self.project(x)
        return p[:, self.bit_dims] > self.thresholds

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, n_bits // 8) uint8 packed codes."""
        return np.packbits(self.bits(x), axis=1, bitorder="little")

    # ---- persistence (a blob in the library) ----------------------------------------
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = {"family": self.family, "n_fit": self.n_fit, "info": self.info}
        np.savez(buf, mean=self.mean.astype(np.float32),
                 projection=self.projection.astype(np.float32),
                 bits_per_dim=self.bits_per_dim.astype(np.int16),
                 thresholds=self.thresholds.astype(np.float32),
                 bit_dims=self.bit_dims.astype(np.int32),
                 meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "BinaryCoder":
        z = np.load(io.BytesIO(blob), allow_pickle=False)
        meta = json.loads(z["meta"].tobytes().decode())
        return cls(z["mean"], z["projection"], z["bits_per_dim"].astype(np.int64),
                   z["thresholds"], z["bit_dims"].astype(np.int64), meta["family"],
                   int(meta["n_fit"]), meta.get("info", {}))


# ---- fitting -------------------------------------------------------------------------
def _pca(x: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    xc = x - mean
    cov = (xc.T @ xc) / max(1, len(x) - 1)
    evals, evecs = np.linalg.eigh(cov.astype(np.float64))
    order = np.argsort(evals)[::-1][:c]
    return mean.astype(np.float32), evecs[:, order].astype(np.float32), \
        np.maximum(evals[order], 0).astype(np.float64)


def _itq_rotation(v: np.ndarray, n_iter: int, rng: np.random.Generator) -> np.ndarray:
    """Orthogonal R minimising ||sign(VR) - VR||_F (Gong & Lazebnik)."""
    c = v.shape[1]
    r, _ = np.linalg.qr(rng.standard_normal((c, c)))
    v = v.astype(np.float32)
    for _ in range(n_iter):
        b = np.where(v @ r >= 0, 1.0, -1.0).astype(np.float32)
        u, _, wt = np.linalg.svd(v.T @ b)          # c x c
        r = (u @ wt).astype(np.float32)
    return r


def allocate_bits(variances: np.ndarray, n_bits: int, max_bits: int = 8) -> np.ndarray:
    """Greedy rate allocation: each next bit goes to the direction whose quantisation
    error (variance / levels^2, levels = bits + 1 for a thermometer code) drops most."""
    var = np.asarray(variances, dtype=np.float64)
    bits = np.zeros(len(var), dtype=np.int64)
    for _ in range(n_bits):
        gain = var / (bits + 1) ** 2 - var / (bits + 2) ** 2
        gain[bits >= max_bits] = -1
        bits[int(np.argmax(gain))] += 1
    return bits


def fit_coder(vectors: np.ndarray, n_bits: int = 256, *, family: str = "itq",
              n_iter: int = 30, sample: int = 30000, seed: int = 0) -> BinaryCoder:
    """Fit codes on (a sample of) the library's vectors. `n_bits` must be a multiple of 8;
    for itq it is at most the vector dimension."""
    with one_blas_thread():
        return _fit(vectors, n_bits, family, n_iter, sample, seed)


def _fit(vectors, n_bits, family, n_iter, sample, seed) -> BinaryCoder:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}")
    if n_bits <= 0 or n_bits % 8:
        raise ValueError("n_bits must be a positive multiple of 8")
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError("need at least two vectors to fit codes")
    rng = np.random.default_rng(seed)
    if len(x) > sample:
        x = x[np.sort(rng.choice(len(x), sample, replace=False))]
    d = x.shape[1]
    if family == "itq":
        if n_bits > d:
            raise ValueError(f"itq gives at most {d} bits for {d}-d vectors")
        mean, comps, evals = _pca(x, n_bits)
        v = (x - mean) @ comps
        r = _itq_rotation(v, n_iter, rng)
        proj = (comps @ r).astype(np.float32)
        return BinaryCoder(mean, proj, np.ones(n_bits, np.int64), np.zeros(n_bits, np.float32),
                           np.arange(n_bits), "itq", int(len(vectors)),
                           {"explained": float(evals.sum())})
    c = min(d, n_bits)
    mean, comps, evals = _pca(x, c)
    bits = allocate_bits(evals, n_bits)
    keep = np.flatnonzero(bits)
    comps, bits = comps[:, keep], bits[keep]
    p = (x - mean) @ comps
    thresholds, dims = [], []
    for j, b in enumerate(bits):
        qs = np.quantile(p[:, j], np.arange(1, b + 1) / (b + 1))
        thresholds.extend(qs.tolist())
        dims.extend([j] * int(b))
    return BinaryCoder(mean, comps.astype(np.float32), bits, np.asarray(thresholds, np.float32),
                       np.asarray(dims, np.int64), "pca-var", int(len(vectors)),
                       {"directions": int(len(bits)), "max_bits": int(bits.max())})


# ---- scanning ------------------------------------------------------------------------
def as_words(codes: np.ndarray) -> np.ndarray:
    """Packed uint8 codes (n, B) -> (n, B/8) uint64 words (B a multiple of 8 bytes),
    padded with zero bytes otherwise."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if codes.ndim == 1:
        codes = codes[None]
    pad = (-codes.shape[1]) % 8
    if pad:
        codes = np.concatenate([codes, np.zeros((len(codes), pad), np.uint8)], axis=1)
    return codes.view(np.uint64)


def word_major(codes: np.ndarray) -> np.ndarray:
    """Packed uint8 codes (n, B) -> (W, n) uint64, one contiguous row per code word: the
    layout `hamming` scans fastest."""
    return np.ascontiguousarray(as_words(codes).T)


def hamming(cols: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamming distances (n,) uint16 between word-major codes (W, n) uint64 and one code
    (W,) uint64 (see `word_major`, `as_words`)."""
    q = np.asarray(q, dtype=np.uint64).reshape(-1)
    if cols.shape[0] != len(q):
        raise ValueError(f"codes have {cols.shape[0]} words, the query {len(q)}")
    out = np.bitwise_count(cols[0] ^ q[0]).astype(np.uint16)
    for i in range(1, len(q)):
        out += np.bitwise_count(cols[i] ^ q[i])
    return out


def smallest(dist: np.ndarray, k: int, max_value: int | None = None) -> np.ndarray:
    """Indices of the k smallest small-integer distances, nearest first (ties by index).
    Uses a histogram for the cut-off radius, so it is linear and cheap for 1M rows."""
    n = len(dist)
    if k <= 0 or n == 0:
        return np.zeros(0, np.int64)
    if k >= n:
        return np.argsort(dist, kind="stable")
    hist = np.bincount(dist, minlength=(max_value or 0) + 1)
    radius = int(np.searchsorted(np.cumsum(hist), k))
    idx = np.flatnonzero(dist <= radius)
    order = np.argsort(dist[idx], kind="stable")[:k]
    return idx[order]
