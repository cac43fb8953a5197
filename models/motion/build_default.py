"""Build the shipped default encoder (default_encoder.npz), used until a library has
trained its own:

    python -m models.motion.build_default          # ~15 s on 2 cores

Stacked ISA learnt, without labels, from 200 rendered clips (models.motion.synthetic: the
five kinds of motion on random textures, seeds 100000+ so they never coincide with the
tests' or the benchmark's clips). No downloaded data; rerunning gives the same file.
"""
from __future__ import annotations

import json
import sys

import numpy as np

from .encoder import DEFAULT_FILE, to_bytes
from .frames import MOTION_FPS, small_gray
from .synthetic import MOTIONS, render
from .train import Budget, train_encoder

SEED0 = 100000


def training_clips(n: int = 200, seed0: int = SEED0) -> list[np.ndarray]:
    return [np.stack([small_gray(f) for f in render(MOTIONS[i % len(MOTIONS)], seed0 + i,
                                                     seconds=2.25, fps=MOTION_FPS)])
            for i in range(n)]


def main() -> int:
    clips = training_clips()
    enc, report = train_encoder(clips, budget=Budget(seconds=60))
    DEFAULT_FILE.write_bytes(to_bytes(enc))
    print(json.dumps({k: (v if not isinstance(v, list) else [v[0], v[-1]])
                      for k, v in report.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
