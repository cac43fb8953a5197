"""The alternative encoder: a small 3-D conv net trained self-supervised (frame-order
verification, after Misra et al. 2016: is this stack of frames in its true order, or were
some frames shuffled?). Same receptive fields and output size as the stacked ISA, so the
two are compared like for like (benchmarks/motion_quality.py --compare-encoders).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .isa import L2_DILATION, L2_KERNEL, S1, STRIDE1, T1

CHANNELS = 32
CLIP_FRAMES = 9


class Conv3dEncoder(nn.Module):
    kind = "conv3d"

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv3d(1, CHANNELS, (T1, S1, S1), stride=(1, STRIDE1, STRIDE1))
        self.c2 = nn.Conv3d(CHANNELS, CHANNELS, L2_KERNEL, dilation=L2_DILATION)
        self.head = nn.Linear(4 * CHANNELS, 1)

    def maps(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = F.relu(self.c1(clip))
        return h1, F.relu(self.c2(h1))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.maps(clip)
        pooled = [h.mean((2, 3, 4)) for h in (h1, h2)] + [h.amax((3, 4)).mean(2) for h in (h1, h2)]
        return self.head(torch.cat(pooled, 1)).squeeze(1)

    def arrays(self) -> dict:
        out = {"kind": np.array("conv3d")}
        out.update({k: v.detach().numpy() for k, v in self.state_dict().items()})
        return out

    @classmethod
    def from_arrays(cls, a) -> "Conv3dEncoder":
        m = cls()
        m.load_state_dict({k: torch.from_numpy(np.array(a[k])) for k in m.state_dict()})
        m.eval()
        return m


def _shuffled(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The same clips with their middle frames out of order (reversed or swapped)."""
    out = x.clone()
    for i in range(len(x)):
        a = int(torch.randint(1, CLIP_FRAMES - 3, (1,), generator=g))
        b = a + int(torch.randint(2, 4, (1,), generator=g))
        out[i, :, a:b] = torch.flip(x[i, :, a:b], dims=(1,))
    return out


def train_conv3d(clips: list[np.ndarray], *, iters: int = 400, batch: int = 32, crop: int = 48,
                 seed: int = 0, deadline: float | None = None,
                 progress: Callable[[float], None] = lambda f: None,
                 check: Callable[[], None] = lambda: None) -> tuple[Conv3dEncoder, list[float]]:
    """Train on random CLIP_FRAMES x crop x crop pieces of contrast-normalised clips;
    returns the model and its loss every 10 steps."""
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    usable = [c for c in clips if c.shape[0] >= CLIP_FRAMES and min(c.shape[1:]) >= crop]
    if not usable:
        raise ValueError("no clip is long and large enough")
    model = Conv3dEncoder()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    history: list[float] = []
    running = []
    for it in range(iters):
        pieces = []
        for ci in rng.integers(len(usable), size=batch):
            c = usable[ci]
            t = rng.integers(c.shape[0] - CLIP_FRAMES + 1)
            y, x = rng.integers(c.shape[1] - crop + 1), rng.integers(c.shape[2] - crop + 1)
            pieces.append(c[t:t + CLIP_FRAMES, y:y + crop, x:x + crop])
        pos = torch.from_numpy(np.stack(pieces)[:, None].astype(np.float32))
        x = torch.cat([pos, _shuffled(pos, g)])
        y = torch.cat([torch.ones(len(pos)), torch.zeros(len(pos))])
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
        running.append(float(loss.detach()))
        if it % 10 == 9:
            history.append(float(np.mean(running)))
            running.clear()
            progress((it + 1) / iters)
            check()
            if deadline is not None and time.monotonic() > deadline:
                break
    model.eval()
    return model, history
