"""Stacked convolutional Independent Subspace Analysis (Le, Zou, Yeung, Ng, CVPR 2011),
in torch, sized for tiny frames.

Layer 1 sees space-time blocks of T1 frames x S1 x S1 px (4 x 10 x 10 at 4 fps and
128 px wide: one second). Each block loses its mean, is PCA-whitened to L1_PCA dimensions,
and goes through an ISA layer: K units whose responses are squared, summed in subspaces of
GROUP and square-rooted (an energy model: invariant within the subspace, e.g. to phase).
Layer 2 is convolutional over layer 1: the layer-1 outputs of 2 x 2 x 2 overlapping
sub-blocks (offsets of 2 frames and 2 layer-1 steps = 8 px) are concatenated, PCA-whitened
and fed to a second ISA layer. Both layers' outputs describe a window (as in the paper).

ISA learns W (orthonormal rows, W W^T = I) minimising the sum over samples of the
subspace energies sum_i sqrt(sum_{j in subspace i} (W_j z)^2): projected gradient descent,
each step followed by symmetric orthonormalisation W <- (W W^T)^(-1/2) W (via the SVD).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

T1, S1, STRIDE1 = 4, 10, 4          # layer-1 block and its spatial step (px)
L1_PCA, L1_UNITS = 120, 64
L2_KERNEL, L2_DILATION = 2, 2       # 2x2x2 sub-blocks, 2 steps apart (time, y, x)
L2_PCA, L2_UNITS = 96, 64
GROUP = 2
EPS = 1e-4

Progress = Callable[[float], None]


@dataclass
class ISALayer:
    mean: np.ndarray       # (n,) input mean
    pca: np.ndarray        # (d, n) whitening
    W: np.ndarray          # (k, d) orthonormal rows
    group: int = GROUP

    @property
    def outputs(self) -> int:
        return self.W.shape[0] // self.group

    def filters(self, remove_dc: bool) -> tuple[np.ndarray, np.ndarray]:
        """(k, n) effective linear filters and (k,) bias: W P (x - mean) [of x - its DC]."""
        f = self.W @ self.pca
        if remove_dc:
            f = f - f.mean(1, keepdims=True)
        return f.astype(np.float32), (-(self.W @ self.pca) @ self.mean).astype(np.float32)

    def responses(self, x: np.ndarray) -> np.ndarray:
        """(N, n) inputs -> (N, outputs) pooled subspace energies (inputs already DC-free)."""
        z = (x - self.mean) @ self.pca.T @ self.W.T
        return np.sqrt((z * z).reshape(len(x), -1, self.group).sum(-1) + EPS)


def fit_pca(x: np.ndarray, dims: int, eps: float = 1e-3) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, (dims, n) PCA-whitening matrix and the fraction of variance kept."""
    mean = x.mean(0, dtype=np.float64)
    c = np.zeros((x.shape[1], x.shape[1]), np.float64)
    for i in range(0, len(x), 4096):                  # chunked: no full float64 copy of x
        part = x[i:i + 4096] - mean.astype(np.float32)
        c += (part.T @ part).astype(np.float64)
    c /= max(len(x) - 1, 1)
    vals, vecs = np.linalg.eigh(c)
    order = np.argsort(vals)[::-1][:dims]
    vals, vecs = vals[order], vecs[:, order]
    kept = float(vals.sum() / max(np.trace(c), 1e-12))
    reg = eps * float(vals[0])
    return mean.astype(np.float32), (vecs / np.sqrt(vals + reg)).T.astype(np.float32), kept


def _orthonormalise(w: torch.Tensor) -> torch.Tensor:
    u, _, vt = torch.linalg.svd(w, full_matrices=False)
    return u @ vt


def isa_objective(w: torch.Tensor, z: torch.Tensor, group: int = GROUP) -> torch.Tensor:
    """Mean over samples of the summed subspace energies (lower = sparser, more independent)."""
    r = z @ w.T
    return torch.sqrt((r * r).reshape(len(z), -1, group).sum(-1) + EPS).sum(1).mean()


def train_isa(z: np.ndarray, units: int, *, group: int = GROUP, iters: int = 300,
              batch: int = 2048, lr: float = 0.02, seed: int = 0, deadline: float | None = None,
              progress: Progress = lambda f: None, check: Callable[[], None] = lambda: None
              ) -> tuple[np.ndarray, list[float]]:
    """ISA weights (units, d) learnt on whitened samples z (N, d); returns them with the
    held-out objective measured every few steps (its first entry is the random start)."""
    g = torch.Generator().manual_seed(seed)
    zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    n_hold = min(2000, max(1, len(zt) // 5))
    perm = torch.randperm(len(zt), generator=g)
    hold, train = zt[perm[:n_hold]], zt[perm[n_hold:]] if len(zt) > n_hold else zt
    w = _orthonormalise(torch.randn(units, z.shape[1], generator=g))
    w.requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    history = [float(isa_objective(w.detach(), hold, group))]
    for it in range(iters):
        idx = torch.randint(len(train), (min(batch, len(train)),), generator=g)
        opt.zero_grad()
        loss = isa_objective(w, train[idx], group)
        loss.backward()
        opt.step()
        with torch.no_grad():
            w.copy_(_orthonormalise(w))
        if it % 10 == 9 or it == iters - 1:
            with torch.no_grad():
                history.append(float(isa_objective(w, hold, group)))
            progress((it + 1) / iters)
            check()
            if deadline is not None and time.monotonic() > deadline:
                break
    return w.detach().numpy().astype(np.float32), history


class StackedISA:
    """The two-layer convolutional ISA encoder applied to a stack of frames."""

    kind = "isa"

    def __init__(self, layer1: ISALayer, layer2: ISALayer):
        self.layer1, self.layer2 = layer1, layer2
        f1, b1 = layer1.filters(remove_dc=True)
        self._w1 = torch.from_numpy(f1.reshape(-1, 1, T1, S1, S1))
        self._b1 = torch.from_numpy(b1)
        f2, b2 = layer2.filters(remove_dc=False)
        k = L2_KERNEL
        self._w2 = torch.from_numpy(f2.reshape(-1, layer1.outputs, k, k, k))
        self._b2 = torch.from_numpy(b2)

    @staticmethod
    def _pool(r: torch.Tensor, group: int) -> torch.Tensor:
        n, k = r.shape[:2]
        return torch.sqrt((r * r).reshape(n, k // group, group, *r.shape[2:]).sum(2) + EPS)

    def layer1_map(self, clip: torch.Tensor) -> torch.Tensor:
        """(1, 1, T, H, W) contrast-normalised frames -> (1, C1, T', H', W')."""
        return self._pool(F.conv3d(clip, self._w1, self._b1, stride=(1, STRIDE1, STRIDE1)),
                          self.layer1.group)

    def maps(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = self.layer1_map(clip)
        h2 = self._pool(F.conv3d(h1, self._w2, self._b2, dilation=L2_DILATION), self.layer2.group)
        return h1, h2

    def arrays(self) -> dict:
        out = {"kind": np.array("isa")}
        for name, layer in (("l1", self.layer1), ("l2", self.layer2)):
            out.update({f"{name}_mean": layer.mean, f"{name}_pca": layer.pca, f"{name}_W": layer.W,
                        f"{name}_group": np.array(layer.group)})
        return out

    @classmethod
    def from_arrays(cls, a) -> "StackedISA":
        layers = [ISALayer(a[f"{n}_mean"], a[f"{n}_pca"], a[f"{n}_W"], int(a[f"{n}_group"]))
                  for n in ("l1", "l2")]
        return cls(*layers)


def layer1_blocks(clips: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """n random T1 x S1 x S1 blocks (flattened, DC removed) from contrast-normalised clips."""
    out = np.empty((n, T1 * S1 * S1), np.float32)
    usable = [c for c in clips if c.shape[0] >= T1 and c.shape[1] >= S1 and c.shape[2] >= S1]
    if not usable:
        raise ValueError("no clip is long and large enough for a block")
    which = rng.integers(len(usable), size=n)
    for i, ci in enumerate(which):
        c = usable[ci]
        t = rng.integers(c.shape[0] - T1 + 1)
        y = rng.integers(c.shape[1] - S1 + 1)
        x = rng.integers(c.shape[2] - S1 + 1)
        out[i] = c[t:t + T1, y:y + S1, x:x + S1].ravel()
    return out - out.mean(1, keepdims=True)


def layer2_inputs(h1: torch.Tensor, n: int, rng: np.random.Generator) -> np.ndarray:
    """n random 2x2x2 dilated neighbourhoods of one layer-1 map (1, C, T, H, W), flattened
    in conv3d weight order (channel, time, y, x)."""
    span = (L2_KERNEL - 1) * L2_DILATION + 1
    h = h1[0]
    if min(h.shape[1:]) < span or n <= 0:
        return np.zeros((0, h.shape[0] * L2_KERNEL ** 3), np.float32)
    idx = np.arange(L2_KERNEL) * L2_DILATION
    out = np.empty((n, h.shape[0] * L2_KERNEL ** 3), np.float32)
    for i in range(n):
        t, y, x = (rng.integers(s - span + 1) for s in h.shape[1:])
        out[i] = h[:, t + idx][:, :, y + idx][:, :, :, x + idx].reshape(-1).numpy()
    return out
