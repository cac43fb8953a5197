"""dlib's face descriptor network (dlib_face_recognition_resnet_model_v1.dat) run by torch.

    net = FaceResNet.from_dat(path)          # reads the same weights file dlib loads
    vecs = net.describe(chips)               # (n, 128) float32 from 150 px RGB face chips

Why: the `dlib-bin` wheel is built without BLAS, so its ResNet costs ~80-95 ms of CPU a face
here, most of the faces stage on a video with people in it. The same weights in torch's
convolutions give the same descriptors (within float rounding) several times faster.

The network is the one in dlib's dnn_face_recognition_ex.cpp, a ResNet-29 at 150 px:
con 7x7/2 (32) -> affine -> relu -> max_pool 3x3/2 -> 3 residual blocks of 32, then 4 of 64,
3 of 128, 3 of 256 (each level starting with a down-sampling block) and one more down block
of 256 -> global average -> fc 128, no bias. Batch norm is frozen into `affine` (scale and
shift per channel). Two dlib semantics are kept exactly: a convolution or pooling with a
stride of 2 has no padding, and `add_prev` adds tensors of different shapes as if the
smaller were zero-padded at its end (a down block's average-pooled shortcut is wider than
its strided convolution: 4x4 against 3x3 at the 256 level).

The file is dlib's serialisation of that network (dlib/serialize.h, dlib/dnn/core.h,
layers.h): integers are a control byte (length, sign) and little-endian bytes, floats a
mantissa and exponent in that integer form, tensors raw little-endian float32. It is read
layer by layer from the input up and checked against the expected layer sequence; any
surprise raises ValueError, and the caller falls back to dlib's own embedder. No DB, no Qt.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CHIP = 150
DIM = 128


class _Reader:
    """A cursor over dlib's serialisation format."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def int(self) -> int:
        control = self.data[self.pos]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise ValueError(f"not a dlib integer at byte {self.pos}")
        raw = self.data[self.pos + 1:self.pos + 1 + size]
        self.pos += 1 + size
        value = int.from_bytes(raw, "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return float(mantissa) * 2.0 ** exponent

    def bool(self) -> bool:
        ch = self.data[self.pos:self.pos + 1]
        if ch not in (b"0", b"1"):
            raise ValueError(f"not a dlib bool at byte {self.pos}")
        self.pos += 1
        return ch == b"1"

    def string(self) -> str:
        n = self.int()
        text = self.data[self.pos:self.pos + n]
        self.pos += n
        return text.decode("latin-1")

    def version(self, *allowed: int) -> int:
        v = self.int()
        if v not in allowed:
            raise ValueError(f"unexpected version {v} at byte {self.pos}")
        return v

    def tensor(self) -> np.ndarray:
        self.version(2)
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        end = self.pos + 4 * count
        if end > len(self.data):
            raise ValueError("the weights file ends inside a tensor")
        values = np.frombuffer(self.data, "<f4", count, self.pos).reshape(shape)
        self.pos = end
        return values

    def alias(self) -> tuple[int, int, int, int]:
        self.version(1)
        return tuple(self.int() for _ in range(4))


@dataclass
class _Layer:
    kind: str                      # con, affine, relu, max_pool, avg_pool, add_prev, fc
    arrays: dict = field(default_factory=dict)
    stride: int = 1
    padding: int = 0
    size: int = 0                  # filter or window size (0: the whole plane)


def _details(r: _Reader) -> _Layer:
    """One layer's own part of the stream (after its subnetwork)."""
    name = r.string()
    if name == "con_4":
        params = r.tensor().ravel()
        filters = r.int()
        nr, nc = r.int(), r.int()
        stride_y, stride_x = r.int(), r.int()
        pad_y, pad_x = r.int(), r.int()
        w_shape, b_shape = r.alias(), r.alias()
        for _ in range(4):
            r.float()              # learning-rate and weight-decay multipliers
        n_w = int(np.prod(w_shape))
        if nr != nc or stride_y != stride_x or pad_y != pad_x or w_shape[0] != filters:
            raise ValueError("an unexpected convolution")
        return _Layer("con", {"weight": params[:n_w].reshape(w_shape),
                              "bias": params[n_w:n_w + int(np.prod(b_shape))]},
                      stride=stride_y, padding=pad_y, size=nr)
    if name == "affine_":
        params = r.tensor().ravel()
        g_shape, b_shape = r.alias(), r.alias()
        r.int()                    # mode (per channel)
        n = int(np.prod(g_shape))
        if n != int(np.prod(b_shape)):
            raise ValueError("an unexpected affine layer")
        return _Layer("affine", {"gamma": params[:n], "beta": params[n:2 * n]})
    if name == "relu_":
        return _Layer("relu")
    if name in ("max_pool_2", "avg_pool_2"):
        nr, nc = r.int(), r.int()
        stride_y, stride_x = r.int(), r.int()
        pad_y, pad_x = r.int(), r.int()
        if nr != nc or stride_y != stride_x or pad_y != pad_x:
            raise ValueError("an unexpected pooling layer")
        return _Layer(name[:-2], stride=stride_y, padding=pad_y, size=nr)
    if name == "add_prev_":
        return _Layer("add_prev")
    if name == "fc_2":
        outputs, inputs = r.int(), r.int()
        params = r.tensor().ravel()
        r.alias()
        r.alias()
        r.int()                    # bias mode
        for _ in range(4):
            r.float()
        return _Layer("fc", {"weight": params[:inputs * outputs].reshape(inputs, outputs)})
    raise ValueError(f"unexpected layer {name!r}")


def _read_layers(data: bytes) -> tuple[list[_Layer], tuple[float, float, float]]:
    """The computing layers from the input up, and the input's channel means (R, G, B).

    The stream is nested: each add_layer writes its version, then its whole subnetwork,
    then its own details; tag and skip layers write a version and their subnetwork. So the
    file opens with a run of versions, one per layer from the top down, and the details
    follow from the bottom up. Tags and skips carry no details; the topology they encode is
    the fixed one of dnn_face_recognition_ex.cpp, rebuilt in FaceResNet."""
    r = _Reader(data)
    r.version(1)                                   # add_loss_layer
    loss = r.string()
    if loss == "loss_metric_2":
        r.float()                                  # margin and distance threshold
        r.float()
    elif loss != "loss_metric_":
        raise ValueError("not a metric-learning network")
    pending = []                                   # add_layer versions waiting for details
    while True:
        mark = r.pos
        v = r.int()
        # what follows a version: another version (control byte 1, then a small number)
        # or, at the bottom, the input layer's name as a string
        if data[r.pos] == 1 and data[r.pos + 2:r.pos + 7] == b"input":
            pending.append(v)
            break
        if v not in (1, 2):
            raise ValueError(f"unexpected version {v} at byte {mark}")
        pending.append(v)
    if r.string() != "input_rgb_image_sized":
        raise ValueError("not an RGB image network")
    means = (r.float(), r.float(), r.float())
    if (r.int(), r.int()) != (CHIP, CHIP):
        raise ValueError(f"not a {CHIP} px network")
    layers: list[_Layer] = []
    bottom = True
    for v in reversed(pending):
        if v == 1 and not bottom:                  # a tag or a skip: nothing of its own
            continue
        layers.append(_details(r))
        r.bool()
        r.bool()
        r.bool()
        r.tensor()                                 # x_grad
        r.tensor()                                 # cached output
        r.tensor()                                 # params_grad (grad_final at the bottom)
        if bottom and v >= 3:
            r.int()                                # sample expansion factor
        bottom = False
    if r.pos != len(data):
        raise ValueError(f"{len(data) - r.pos} bytes left after the network")
    return layers, means


# The layer kinds from the input up, as dnn_face_recognition_ex.cpp builds them.
def _block(down: bool) -> list[str]:
    inner = ["con", "affine", "relu", "con", "affine"]
    return inner + (["avg_pool", "add_prev", "relu"] if down else ["add_prev", "relu"])


LEVELS = [(32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True)]
EXPECTED = (["con", "affine", "relu", "max_pool"]
            + [k for _, n, down in LEVELS for i in range(n) for k in _block(down and i == 0)]
            + ["avg_pool", "fc"])


def _add_prev(a, b):
    """dlib's add_prev: the sum over the larger shape, each input zero beyond its own."""
    import torch.nn.functional as F
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def grow(t):
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))
    return grow(a) + grow(b)


class FaceResNet:
    """The descriptor network in torch (inference only)."""

    def __init__(self, layers: list[_Layer], means: tuple[float, float, float]):
        import torch
        kinds = [l.kind for l in layers]
        if kinds != EXPECTED:
            raise ValueError("the weights file is not dlib's face recognition ResNet v1")
        self._torch = torch
        self.layers = layers
        for l in layers:
            l.arrays = {k: torch.from_numpy(np.array(v, np.float32)) for k, v in l.arrays.items()}
            if l.kind == "affine":
                l.arrays = {k: v.reshape(1, -1, 1, 1) for k, v in l.arrays.items()}
        self.means = torch.tensor(means, dtype=torch.float32).reshape(1, 3, 1, 1)

    @classmethod
    def from_dat(cls, path: str | Path) -> "FaceResNet":
        try:
            layers, means = _read_layers(Path(path).read_bytes())
        except (IndexError, UnicodeDecodeError) as e:    # a file cut short or garbled
            raise ValueError(f"not dlib's face descriptor network: {e}") from e
        return cls(layers, means)

    def _con(self, x, l: _Layer):
        import torch.nn.functional as F
        return F.conv2d(x, l.arrays["weight"], l.arrays["bias"], stride=l.stride,
                        padding=l.padding)

    def _pool(self, x, l: _Layer):
        import torch.nn.functional as F
        if l.size == 0:                            # avg_pool_everything
            return x.mean(dim=(2, 3), keepdim=True)
        pool = F.max_pool2d if l.kind == "max_pool" else F.avg_pool2d
        return pool(x, l.size, l.stride, l.padding)

    def forward(self, x):
        """x: (n, 3, 150, 150) float32 RGB in 0-255 -> (n, 128)."""
        x = (x - self.means) / 256.0
        layers = iter(self.layers)
        x = self._affine(self._con(x, next(layers)), next(layers))
        next(layers)                               # relu
        x = self._pool(x.relu_(), next(layers))
        for _, n, down in LEVELS:
            for i in range(n):
                shortcut = x
                y = self._affine(self._con(x, next(layers)), next(layers))
                next(layers)                       # relu
                y = self._affine(self._con(y.relu_(), next(layers)), next(layers))
                if down and i == 0:
                    shortcut = self._pool(shortcut, next(layers))
                next(layers)                       # add_prev
                next(layers)                       # relu
                x = _add_prev(y, shortcut).relu_()
        x = self._pool(x, next(layers)).flatten(1)
        return x @ next(layers).arrays["weight"]

    @staticmethod
    def _affine(x, l: _Layer):
        return x * l.arrays["gamma"] + l.arrays["beta"]

    def describe(self, chips: list[np.ndarray]) -> np.ndarray:
        """(n, 128) float32 descriptors of aligned RGB chips (150 x 150 x 3, uint8)."""
        if not chips:
            return np.zeros((0, DIM), np.float32)
        torch = self._torch
        batch = torch.from_numpy(np.stack(chips).astype(np.float32)).permute(0, 3, 1, 2)
        with torch.inference_mode():
            return self.forward(batch).numpy().astype(np.float32)
