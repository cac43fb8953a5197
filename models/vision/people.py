"""People on screen: the Dalal-Triggs HOG people detector, in numpy.

    detector = PeopleDetector()            # the packaged linear SVM (people_detector.npy)
    score = detector.score(frame_bgr)      # best window's SVM margin; None: nothing like a person
    detector.sees_person(frame_bgr)        # score >= the calibrated threshold

OpenCV 5 dropped cv2.HOGDescriptor, so the descriptor is computed here with OpenCV 4's
conventions (64x128 window, 16x16 blocks of 2x2 8-pixel cells, 9 unsigned orientation
bins, square-root gamma, Gaussian block weighting with sigma 4, trilinear voting, L2-Hys
block norm) and scored with the SVM OpenCV ships as getDefaultPeopleDetector(), dumped
once from the `opencv-python-headless` 4.10 wheel by models/vision/build_people_detector.py
(OpenCV: Apache-2.0; the model is Dalal and Triggs' INRIA person detector).

The window is slid over an image pyramid; instead of one histogram per block, every 8x8
tile's votes for each position it can hold in a block are made in one matrix product, and
each window's score is a sum of 105 shifted block-grid dot products. The frame is first
scaled to at most MAX_HEIGHT pixels high, which bounds the cost and the smallest person
seen (about 128/MAX_HEIGHT of the frame's height).
"""
from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

DETECTOR_FILE = Path(__file__).with_name("people_detector.npy")
WIN_W, WIN_H = 64, 128
CELL, BINS = 8, 9
BLOCKS_X, BLOCKS_Y = WIN_W // CELL - 1, WIN_H // CELL - 1       # 7 x 15 blocks per window
MAX_HEIGHT = 576         # frames are scaled down to this height first (vtest.avi's own)
SCALE_STEP = 1.2         # between pyramid levels
THRESHOLD = 1.2          # best window margin that counts as a person (calibrated on dev)


def _tile_weights() -> np.ndarray:
    """(16, 64): for each (quadrant of a block, cell of the block), the weight each pixel
    of an 8x8 tile in that quadrant gives to that cell: Gaussian over the block times the
    bilinear split between the cells around it."""
    idx = np.arange(2 * CELL)
    # OpenCV centres the Gaussian on pixel 8, not 7.5 (checked against its descriptor)
    gauss = np.exp(-((idx[:, None] - CELL) ** 2 + (idx[None, :] - CELL) ** 2) / (2 * 4.0 ** 2))
    pos = (idx + 0.5) / CELL - 0.5                     # position in cell units
    near = np.stack([np.clip(1 - np.abs(pos - c), 0, 1) for c in (0, 1)])   # (2 cells, 16)
    out = np.zeros((2, 2, 2, 2, CELL, CELL))           # qy, qx, cy, cx, v, u
    for qy in range(2):
        for qx in range(2):
            ys, xs = slice(qy * CELL, (qy + 1) * CELL), slice(qx * CELL, (qx + 1) * CELL)
            for cy in range(2):
                for cx in range(2):
                    out[qy, qx, cy, cx] = (gauss[ys, xs] * near[cy, ys][:, None]
                                           * near[cx, xs][None, :])
    # a block's 4 cells in OpenCV's order (x outer, y inner)
    return out.transpose(0, 1, 3, 2, 4, 5).reshape(16, CELL * CELL).astype(np.float32)


_WEIGHTS = _tile_weights()


def block_descriptors(gray: np.ndarray) -> np.ndarray:
    """(blocks_y, blocks_x, 36) L2-Hys normalised block histograms of a grey image whose
    sides are multiples of 8, one block every 8 pixels."""
    img = np.sqrt(gray.astype(np.float32))
    dx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=1, borderType=cv2.BORDER_REFLECT_101)
    dy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=1, borderType=cv2.BORDER_REFLECT_101)
    mag, ang = cv2.cartToPolar(dx, dy)
    ang = ang * (BINS / np.pi) - 0.5
    lo = np.floor(ang)
    frac = ang - lo
    lo = lo.astype(np.int64) % BINS
    h, w = gray.shape
    ty, tx = h // CELL, w // CELL
    hi = np.where(lo == BINS - 1, 0, lo + 1)
    at = np.arange(h * w) * BINS
    votes = np.zeros(h * w * BINS, np.float32)           # each pixel's share of its 2 bins
    votes[at + lo.ravel()] = (mag * (1 - frac)).ravel()
    votes[at + hi.ravel()] = (mag * frac).ravel()
    # (64 pixels of a tile, tiles x bins)
    tiles = votes.reshape(ty, CELL, tx, CELL, BINS).transpose(1, 3, 0, 2, 4)
    parts = _WEIGHTS @ tiles.reshape(CELL * CELL, -1)
    parts = parts.reshape(2, 2, 4, ty, tx, BINS)                   # qy, qx, cell, ty, tx, bin
    blocks = sum(parts[qy, qx, :, qy:ty - 1 + qy, qx:tx - 1 + qx]
                 for qy in range(2) for qx in range(2))            # cell, by, bx, bin
    blocks = blocks.transpose(1, 2, 0, 3).reshape(ty - 1, tx - 1, 4 * BINS)
    blocks /= np.sqrt((blocks ** 2).sum(-1, keepdims=True)) + 0.1 * 4 * BINS
    np.minimum(blocks, 0.2, out=blocks)
    blocks /= np.sqrt((blocks ** 2).sum(-1, keepdims=True)) + 1e-3
    return blocks


class PeopleDetector:
    """Whether a frame shows a standing or walking person (see module docstring)."""

    def __init__(self, path: str | Path = DETECTOR_FILE, threshold: float = THRESHOLD,
                 max_height: int = MAX_HEIGHT):
        svm = np.load(path).astype(np.float32).ravel()
        if svm.size != BLOCKS_X * BLOCKS_Y * 4 * BINS + 1:
            raise ValueError(f"{path}: {svm.size} coefficients")
        # OpenCV's window descriptor: blocks x outer, y inner
        self.weights = svm[:-1].reshape(BLOCKS_X, BLOCKS_Y, 4 * BINS).transpose(1, 0, 2)
        self._flat = np.ascontiguousarray(self.weights.reshape(-1, 4 * BINS))
        self.bias = float(svm[-1])
        self.threshold, self.max_height = threshold, max_height

    def window_scores(self, gray: np.ndarray) -> np.ndarray:
        """(rows, cols) SVM margins of the 64x128 windows every 8 pixels of one image."""
        blocks = block_descriptors(gray)
        by, bx = blocks.shape[:2]
        ny, nx = by - BLOCKS_Y + 1, bx - BLOCKS_X + 1
        if ny <= 0 or nx <= 0:
            return np.zeros((0, 0), np.float32)
        # score[y, x] = sum over the window's blocks of <w[i, j], blocks[y + i, x + j]>
        per_block = (blocks.reshape(-1, 4 * BINS) @ self._flat.T).reshape(by, bx, BLOCKS_Y,
                                                                          BLOCKS_X)
        out = np.full((ny, nx), self.bias, np.float32)
        for i in range(BLOCKS_Y):
            for j in range(BLOCKS_X):
                out += per_block[i:i + ny, j:j + nx, i, j]
        return out

    def score(self, image: np.ndarray) -> float | None:
        """The best window margin over the pyramid, None when the frame is too small."""
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        h, w = gray.shape
        s = min(1.0, self.max_height / h)
        best = None
        while h * s >= WIN_H and w * s >= WIN_W:
            sw, sh = int(w * s) // CELL * CELL, int(h * s) // CELL * CELL
            level = gray if (sw, sh) == (w, h) else cv2.resize(gray, (sw, sh),
                                                               interpolation=cv2.INTER_AREA)
            scores = self.window_scores(level)
            if scores.size:
                top = float(scores.max())
                best = top if best is None else max(best, top)
            s /= SCALE_STEP
        return best

    def sees_person(self, image: np.ndarray) -> tuple[bool, float]:
        """(whether a person is seen, the best margin or -inf)."""
        score = self.score(image)
        if score is None:
            return False, float("-inf")
        return score >= self.threshold, score


@functools.lru_cache(maxsize=1)
def shared_detector() -> PeopleDetector:
    return PeopleDetector()
