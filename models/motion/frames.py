"""The frames motion works on: small, grayscale, a few per second.

Motion reuses the frames the visual stage already decodes (indexer.stages.keyframes samples
DEFAULT_SAMPLE_FPS = 4 per second and downsizes each to 256 px wide for shot detection);
`small_gray` turns such a frame into a MOTION_WIDTH-wide grayscale float image.
"""
from __future__ import annotations

import cv2
import numpy as np

MOTION_WIDTH = 128          # px; flow and the encoder run on frames this wide
MOTION_FPS = 4.0            # frames per second (the visual stage's sampling rate)
LCN_SIGMA = 4.0             # px, local contrast normalisation neighbourhood


def small_gray(img: np.ndarray, width: int = MOTION_WIDTH) -> np.ndarray:
    """A BGR or gray uint8 frame as a `width`-wide float32 gray image in [0, 1]."""
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    h, w = gray.shape[:2]
    if w != width:
        height = max(8, int(round(h * width / w / 2)) * 2)
        gray = cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)
    return gray.astype(np.float32) * (1.0 / 255.0)


def contrast_normalise(gray: np.ndarray, sigma: float = LCN_SIGMA) -> np.ndarray:
    """Local contrast normalisation: subtract the local mean, divide by the local spread
    (so dim and bright, flat and busy textures give filter responses on one scale)."""
    mean = cv2.GaussianBlur(gray, (0, 0), sigma)
    centred = gray - mean
    spread = np.sqrt(cv2.GaussianBlur(centred * centred, (0, 0), sigma))
    return centred / (spread + max(0.02, float(spread.mean())))
