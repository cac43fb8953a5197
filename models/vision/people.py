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

How it is computed cheaply (the margins of a window-by-window descriptor to float rounding:
build_people_detector.py checks them against OpenCV 4's on real pictures). Each pixel's two
orientation votes are scattered into per-bin planes, two tile rows at a time so that they
stay in cache; a block cell's weight for a pixel (Gaussian over the block times the
bilinear split between cells) is separable, so every block histogram of the image comes
from small matrix products (8 pixels of a tile -> (cell, half-block) sums, along y, then
along x) and four shifted adds. The linear SVM over a window's 105 blocks is one matrix
product of the block map with the weights of the 105 block positions and one strided sum.
The window is slid over an image pyramid, each level scaled from the frame itself; the
first is at most MAX_HEIGHT pixels high, which bounds the cost and the smallest person seen
(about 128/MAX_HEIGHT of the frame's height). BLAS runs on one thread: the visual stage
decodes on the other core. About 0.06 s of CPU per 720p frame, 0.07 s per 1080p.
"""
from __future__ import annotations

import functools
import threading
from pathlib import Path

import cv2
import numpy as np

DETECTOR_FILE = Path(__file__).with_name("people_detector.npy")
WIN_W, WIN_H = 64, 128
CELL, BINS = 8, 9
BLOCKS_X, BLOCKS_Y = WIN_W // CELL - 1, WIN_H // CELL - 1       # 7 x 15 blocks per window
BLOCK_LEN = 4 * BINS
MAX_HEIGHT = 576         # frames are scaled down to this height first (vtest.avi's own)
SCALE_STEP = 1.2         # between pyramid levels
THRESHOLD = 1.2          # best window margin that counts as a person (calibrated on dev)


def _axis_weights() -> np.ndarray:
    """(4, 8): row (cell c, half q) holds the weight pixel v of a block's half q gives to
    cell c along one axis: the Gaussian over the block (sigma 4) times the bilinear split
    between the block's two cells. A block's 2-d weight is the product of its two axes'."""
    idx = np.arange(2 * CELL)
    # OpenCV centres the Gaussian on pixel 8, not 7.5 (checked against its descriptor)
    gauss = np.exp(-(idx - CELL) ** 2 / (2 * 4.0 ** 2))
    pos = (idx + 0.5) / CELL - 0.5                     # position in cell units
    near = np.stack([np.clip(1 - np.abs(pos - c), 0, 1) for c in (0, 1)])   # (cell, 16)
    return (gauss * near).reshape(4, CELL).astype(np.float32)


_AXIS = _axis_weights()                                            # y: (cy, qy) x pixel
_AXIS_X = np.ascontiguousarray(_AXIS.reshape(2, 2, CELL).transpose(1, 2, 0))  # qx, pixel, cx
BAND = 2                 # tile rows voted at a time: the vote buffer stays in cache
_SQRT = np.sqrt(np.arange(256, dtype=np.float32))                  # square-root gamma
_BINS_PER_RADIAN = np.float32(BINS / np.pi)                         # unsigned: 0-180 deg


class Workspace:
    """Work arrays kept from call to call (one set per thread): a fresh array of a few
    megabytes costs its page faults every time, about 15 % of the detector's time."""

    def __init__(self):
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple, dtype=np.float32) -> np.ndarray:
        """An uninitialised C-contiguous array of `shape` (its contents are left over)."""
        n = int(np.prod(shape))
        buf = self._arrays.get(name)
        if buf is None or buf.size < n or buf.dtype != dtype:
            buf = self._arrays[name] = np.empty(n, dtype)
        return buf[:n].reshape(shape)


@functools.lru_cache(maxsize=16)
def _pixel_offsets(w: int) -> np.ndarray:
    """(BAND * CELL, w) int32: each pixel's offset at bin 0 in a (BAND * CELL, BINS + 1, w)
    vote array."""
    return (np.arange(BAND * CELL, dtype=np.int32)[:, None] * ((BINS + 1) * w)
            + np.arange(w, dtype=np.int32)[None, :])


@functools.lru_cache(maxsize=16)
def _bin_offsets(w: int) -> np.ndarray:
    """floor(orientation position) + 1 (0..2 BINS + 1 over 0-360 degrees) -> the offset of
    its lower bin (unsigned: modulo BINS) in a vote array row of width w."""
    return ((np.arange(2 * BINS + 2) - 1) % BINS * w).astype(np.int32)


def block_features(gray: np.ndarray, work: Workspace | None = None) -> np.ndarray:
    """(36, blocks_y, blocks_x) L2-Hys normalised block histograms of a grey image (cut to
    multiples of 8), one block every 8 pixels; the 36 are (cell y, cell x, bin). With
    `work` the result lives in its arrays, until the next call with it."""
    work = work or Workspace()
    h, w = gray.shape[0] // CELL * CELL, gray.shape[1] // CELL * CELL
    ty, tx = h // CELL, w // CELL
    if gray.dtype == np.uint8:
        img = cv2.LUT(gray[:h, :w], _SQRT, dst=work.get("img", (h, w)))
    else:
        img = np.sqrt(gray[:h, :w], out=work.get("img", (h, w)), dtype=np.float32)
    dx = cv2.Sobel(img, cv2.CV_32F, 1, 0, dst=work.get("dx", (h, w)), ksize=1,
                   borderType=cv2.BORDER_REFLECT_101)
    dy = cv2.Sobel(img, cv2.CV_32F, 0, 1, dst=work.get("dy", (h, w)), ksize=1,
                   borderType=cv2.BORDER_REFLECT_101)
    mag, ang = cv2.cartToPolar(dx, dy, magnitude=work.get("mag", (h, w)),
                               angle=work.get("ang", (h, w)))
    # votes[y, b, x], BAND tile rows at a time (all of it stays in cache); bin BINS is bin
    # 0 again (the upper neighbour of bin 8), folded in below. Along y then along x: the 8
    # pixels of a tile -> (cell, half of the block), the two halves being the two blocks
    # the tile is in; one product per half along x, so that the shifted sums below run
    # over whole rows.
    sums = work.get("sums", (2, ty, 2, 2, BINS + 1, tx, 2))        # qx ty cy qy bin tx cx
    votes = work.get("votes", (BAND * CELL * (BINS + 1) * w,))
    bin_at, pixel_at = _bin_offsets(w), _pixel_offsets(w)
    for t0 in range(0, ty, BAND):
        t1 = min(ty, t0 + BAND)
        r0, r1 = t0 * CELL, t1 * CELL
        # bin b is centred on (b + 0.5) * 20 degrees: pos = 1 + orientation in bins - 0.5
        pos = ang[r0:r1]
        pos *= _BINS_PER_RADIAN
        pos += 0.5
        lower_bin = np.floor(pos)
        upper = np.subtract(pos, lower_bin, out=pos)        # the upper bin's share
        idx = bin_at.take(lower_bin.astype(np.int32))
        idx += pixel_at[:r1 - r0]
        upper *= mag[r0:r1]
        v = votes[:(r1 - r0) * (BINS + 1) * w]
        v.fill(0)
        v[idx] = mag[r0:r1] - upper
        idx += w
        v[idx] = upper
        part = np.matmul(_AXIS, v.reshape(t1 - t0, CELL, -1)).reshape(-1, CELL)
        for qx in range(2):
            np.matmul(part, _AXIS_X[qx], out=sums[qx, t0:t1].reshape(-1, 2))
    # block (by, bx) = the tiles (by + qy, bx + qx), each its half (qy, qx) of the block
    blocks = work.get("blocks", (ty - 1, 2, BINS + 1, tx - 1, 2))   # by cy bin bx cx
    np.add(sums[0, :-1, :, 0, :, :-1], sums[1, :-1, :, 0, :, 1:], out=blocks)
    blocks += sums[0, 1:, :, 1, :, :-1]
    blocks += sums[1, 1:, :, 1, :, 1:]
    blocks[:, :, 0] += blocks[:, :, BINS]
    out = work.get("features", (2, 2, BINS, ty - 1, tx - 1))        # cy cx bin by bx
    out[...] = blocks[:, :, :BINS].transpose(1, 4, 2, 0, 3)
    flat = out.reshape(BLOCK_LEN, -1)
    flat /= np.sqrt(np.einsum("ij,ij->j", flat, flat)) + 0.1 * BLOCK_LEN
    np.minimum(flat, 0.2, out=flat)
    flat /= np.sqrt(np.einsum("ij,ij->j", flat, flat)) + 1e-3
    return out.reshape(BLOCK_LEN, ty - 1, tx - 1)


def opencv_block_order(features: np.ndarray) -> np.ndarray:
    """block_features' (36, by, bx) as OpenCV lays a block out: (by, bx, 36) with the 4
    cells x outer, y inner, 9 bins each."""
    _, by, bx = features.shape
    return features.reshape(2, 2, BINS, by, bx).transpose(3, 4, 1, 0, 2).reshape(by, bx,
                                                                                 BLOCK_LEN)


class PeopleDetector:
    """Whether a frame shows a standing or walking person (see module docstring)."""

    def __init__(self, path: str | Path = DETECTOR_FILE, threshold: float = THRESHOLD,
                 max_height: int = MAX_HEIGHT):
        svm = np.load(path).astype(np.float32).ravel()
        if svm.size != BLOCKS_X * BLOCKS_Y * BLOCK_LEN + 1:
            raise ValueError(f"{path}: {svm.size} coefficients")
        # OpenCV's window descriptor: blocks x outer, y inner; in a block cells x outer, y
        # inner. Here (block row, block column) x (cell y, cell x, bin), as block_features.
        w = svm[:-1].reshape(BLOCKS_X, BLOCKS_Y, 2, 2, BINS).transpose(1, 0, 3, 2, 4)
        self._weights = np.ascontiguousarray(w.reshape(BLOCKS_Y * BLOCKS_X, BLOCK_LEN))
        self.bias = float(svm[-1])
        self.threshold, self.max_height = threshold, max_height
        self._local = threading.local()

    @property
    def _work(self) -> Workspace:
        work = getattr(self._local, "work", None)
        if work is None:
            work = self._local.work = Workspace()
        return work

    def window_scores(self, gray: np.ndarray) -> np.ndarray:
        """(rows, cols) SVM margins of the 64x128 windows every 8 pixels of one grey image
        (cut to multiples of 8)."""
        with _one_blas_thread():
            return self._window_scores(gray).copy()

    def _window_scores(self, gray: np.ndarray) -> np.ndarray:
        by, bx = gray.shape[0] // CELL - 1, gray.shape[1] // CELL - 1
        ny, nx = by - BLOCKS_Y + 1, bx - BLOCKS_X + 1
        if ny <= 0 or nx <= 0:
            return np.zeros((0, 0), np.float32)
        work = self._work
        feats = block_features(gray, work).reshape(BLOCK_LEN, -1)
        # per_block[i, j, y, x] = <weights of block (i, j) of a window, block at (y, x)>
        per_block = work.get("per_block", (BLOCKS_Y, BLOCKS_X, by, bx))
        np.matmul(self._weights, feats, out=per_block.reshape(BLOCKS_Y * BLOCKS_X, -1))
        # score[y, x] = bias + sum over (i, j) of per_block[i, j, y + i, x + j], as one sum
        # over a view whose (i, j, y, x) element is that one
        si, sj, sy, sx = per_block.strides
        windows = np.lib.stride_tricks.as_strided(
            per_block, (BLOCKS_Y, BLOCKS_X, ny, nx), (si + sy, sj + sx, sy, sx), writeable=False)
        out = windows.sum(axis=(0, 1), out=work.get("scores", (ny, nx)))
        out += np.float32(self.bias)
        return out

    def score(self, image: np.ndarray) -> float | None:
        """The best window margin over the pyramid, None when the frame is too small."""
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        h, w = gray.shape
        s = min(1.0, self.max_height / h)
        if h * s >= WIN_H and w * s >= WIN_W and gray.min() == gray.max():
            return self.bias        # one grey level (a black frame): no gradient anywhere
        best = None
        with _one_blas_thread():
            while h * s >= WIN_H and w * s >= WIN_W:
                sw, sh = int(w * s) // CELL * CELL, int(h * s) // CELL * CELL
                level = gray if (sw, sh) == (w, h) else cv2.resize(
                    gray, (sw, sh), dst=self._work.get("level", (sh, sw), np.uint8),
                    interpolation=cv2.INTER_AREA)
                scores = self._window_scores(level)
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


def _one_blas_thread():
    from models.threads import one_blas_thread
    return one_blas_thread()


@functools.lru_cache(maxsize=1)
def shared_detector() -> PeopleDetector:
    return PeopleDetector()
