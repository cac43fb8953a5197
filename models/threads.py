"""torch on a set number of threads inside a block, then back to what it was.

Small networks (motion, the speaker encoder, the face descriptor ResNet) run far faster on
one thread than on two when the other core is busy, and torch's OpenMP threads spin at
barriers when they share a core. Switching is not free, so hold it around a batch or a
whole file, not one small call. No DB, no Qt here.
"""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """torch on `n` threads inside the block (0: leave it as it is)."""
    import torch
    before = torch.get_num_threads()
    if n and before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n and before != n:
            torch.set_num_threads(before)
