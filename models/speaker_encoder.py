"""Who is speaking, as a vector: the GE2E speaker encoder (Wan et al. 2018) whose trained
weights ship in the `resemblyzer` 0.1.4 wheel (`resemblyzer/pretrained.pt`, Apache-2.0).

The package itself is not imported: its `__init__` pulls librosa and webrtcvad, which
avindex does not install (resemblyzer is installed `--no-deps`). Only the weights file is
read (models.torch_pickle: without torch), into the same small network (a 3-layer LSTM
over 40 mel bands, a linear layer to 256-d, ReLU, L2 norm; run by onnxruntime) with the
same front end, written here with numpy: a power mel
spectrogram (not log) of 25 ms Hann windows every 10 ms at 16 kHz, Slaney mel scale and
area-normalised filters, as librosa.feature.melspectrogram computes with resemblyzer's
settings.

    enc = SPEAKER_ENCODER.get()                   # models.loading: once per process
    mel = mel_frames(samples)                     # (frames, 40) float32, 100 frames/s
    vecs = enc.embed(np.stack([mel[0:160], mel[80:240]]))   # (2, 256), unit length
    vecs = enc.embed(window_mels(samples, [0, 8000]))         # the same windows' way, batched
    vecs = enc.embed_at(samples, [0, 8000])                   # the same, on every core

Whole clips of one voice score a cosine of about 0.75-0.9, of two voices about 0.4-0.7
(benchmarks/README.md, "Speakers"). No DB, no Qt here.
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
N_FFT = 400                  # 25 ms
HOP = 160                    # 10 ms: 100 mel frames per second
N_MELS = 40
FRAMES_PER_S = SAMPLE_RATE // HOP
PARTIAL_FRAMES = 160         # the 1.6 s the encoder was trained on
EMBEDDING_DIM = 256
# resemblyzer normalises every utterance to this loudness (raising it only) before the
# mel spectrogram; a window is scaled the same way here
TARGET_DBFS = -30.0
_INT16_MAX = 2 ** 15 - 1

# A batch's windows are embedded by up to this many threads at once, each given at least
# MIN_PART windows: on this 2-core machine, 64 windows 0.27 s on one thread, 0.14 s on two;
# 8 windows 0.034 and 0.018 s
# (benchmarks/README.md, "Speakers")
MAX_THREADS = 4
MIN_PART = 4

WEIGHTS_ENV = "AVINDEX_SPEAKER_WEIGHTS"   # another GE2E checkpoint in resemblyzer's format


class SpeakerWeightsMissing(RuntimeError):
    """The encoder's weights cannot be found; the message says what to install."""


def weights_path() -> Path:
    """resemblyzer's pretrained.pt (found without importing the package), or the file
    that $AVINDEX_SPEAKER_WEIGHTS names."""
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise SpeakerWeightsMissing(f"{WEIGHTS_ENV} names {path}, which is not a file.")
        return path
    spec = importlib.util.find_spec("resemblyzer")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "pretrained.pt"
        if path.is_file():
            return path
    raise SpeakerWeightsMissing(
        "Speaker recognition needs the voice encoder's weights from the resemblyzer "
        "package. Install them with: pip install --no-deps resemblyzer==0.1.4")


# ---------------------------------------------------------------- front end ---
def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz,
                    min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep,
                    hz / f_sp)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)),
                    f_sp * mel)


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS) triangular filters, 0 Hz to Nyquist, each of unit area."""
    fft_hz = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    widths = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return weights.T.astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)   # periodic Hann


def mel_frames(samples: np.ndarray) -> np.ndarray:
    """(frames, 40) float32 power mel spectrogram of 16 kHz mono `samples`; frame i is
    centred on sample i * 160 (zero-padded at both ends), so there are len // 160 + 1."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    half = N_FFT // 2
    padded = np.pad(samples, (half, half))
    n = 1 + (len(padded) - N_FFT) // HOP
    if n <= 0:
        return np.zeros((0, N_MELS), np.float32)
    with one_blas_thread():
        return _mels(np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n])


@lru_cache(maxsize=1)
def _windowed_dft() -> np.ndarray:
    """(N_FFT, 2 * bins) float32: the Hann window times the real DFT's cosines and sines."""
    angles = 2 * np.pi * np.outer(np.arange(N_FFT), np.arange(N_FFT // 2 + 1)) / N_FFT
    basis = np.concatenate([np.cos(angles), np.sin(angles)], axis=1)
    return (basis * _window().astype(np.float64)[:, None]).astype(np.float32)


def _mels(frames: np.ndarray) -> np.ndarray:
    """Power mel bands of (..., N_FFT) sample frames: Hann window, DFT, the filters. The
    DFT of 400 points is one float32 matrix product (~1/3 less CPU than numpy's FFT, which
    works in float64 here; the bands agree to ~1e-6 of the largest)."""
    bins = N_FFT // 2 + 1
    flat = np.ascontiguousarray(frames, dtype=np.float32).reshape(-1, N_FFT)
    z = flat @ _windowed_dft()
    power = z[:, :bins] ** 2
    power += z[:, bins:] ** 2
    return (power @ mel_filters()).reshape(*frames.shape[:-1], N_MELS)


def window_mels(samples: np.ndarray, starts: np.ndarray, frames: int = PARTIAL_FRAMES
                ) -> np.ndarray:
    """(n, frames, 40) mel windows of `samples`, window i being the `frames` * 10 ms from
    sample starts[i] (zero-padded past the end), each as `mel_frames(piece)[:frames] *
    loudness_gain(piece)` gives it (to float32 rounding), for all windows at once: one
    FFT over every frame of every window and one matrix product."""
    with one_blas_thread():
        return _window_mels(np.asarray(samples, dtype=np.float32).reshape(-1), starts, frames)


def _window_mels(samples: np.ndarray, starts: np.ndarray, frames: int) -> np.ndarray:
    length, half = frames * HOP, N_FFT // 2
    padded = np.zeros((len(starts), length + 2 * half), np.float32)
    for i, a in enumerate(np.asarray(starts, dtype=np.int64)):
        piece = samples[max(0, a): max(0, a) + length]
        padded[i, half: half + len(piece)] = piece
    power_mean = np.mean(np.square(padded[:, half: half + length], dtype=np.float64), axis=1)
    gains = np.array([_gain(p) for p in power_mean], np.float32)
    mels = _mels(np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=1)
                 [:, ::HOP][:, :frames])
    mels *= gains[:, None, None]
    return mels


def _gain(power_mean: float) -> float:
    rms = float(np.sqrt(power_mean))
    if rms <= 1e-9:
        return 1.0
    change_db = TARGET_DBFS - 20 * np.log10(rms)
    return float(10 ** (change_db / 10)) if change_db > 0 else 1.0


def loudness_gain(samples: np.ndarray) -> float:
    """The power gain that raises `samples` to TARGET_DBFS (never lowers; 1.0 for
    digital silence). Mel power scales with it, so it can be applied to mel frames."""
    return _gain(float(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 1.0


# ------------------------------------------------------------------ network ---
def _ge2e_model(state: dict) -> bytes:
    """resemblyzer's network as an ONNX graph (models.onnx_writer): three LSTM layers over
    the mel frames (sequence first), the last one's final hidden state through the linear
    layer and ReLU; the L2 norm is done in numpy. ONNX's LSTM takes the gate rows as
    (i, o, f, c), PyTorch stores them as (i, f, g, o)."""
    from .onnx_writer import node, onnx_model, value
    hd = 256

    def iofc(a: np.ndarray) -> np.ndarray:
        q = [a[g * hd:(g + 1) * hd] for g in range(4)]
        return np.concatenate([q[0], q[3], q[1], q[2]]).astype(np.float32)
    inits, nodes, prev = {}, [], "mels"
    for k in range(3):
        w, r = (iofc(state[f"lstm.{n}_l{k}"]) for n in ("weight_ih", "weight_hh"))
        if r.shape != (4 * hd, hd) or w.shape[0] != 4 * hd or w.shape[1] != (N_MELS if k == 0
                                                                           else hd):
            raise KeyError(f"lstm layer {k} has the shape {w.shape}")
        inits[f"W{k}"], inits[f"R{k}"] = w[None], r[None]
        inits[f"B{k}"] = np.concatenate([iofc(state[f"lstm.bias_ih_l{k}"]),
                                         iofc(state[f"lstm.bias_hh_l{k}"])])[None]
        nodes.append(node("LSTM", [prev, f"W{k}", f"R{k}", f"B{k}"], [f"Y{k}", f"H{k}"],
                          hidden_size=hd))
        if k < 2:                   # Y: (steps, 1 direction, n, 256) -> (steps, n, 256)
            nodes.append(node("Squeeze", [f"Y{k}", "axis1"], [f"S{k}"]))
            prev = f"S{k}"
    inits["axis0"], inits["axis1"] = np.array([0], np.int64), np.array([1], np.int64)
    inits["LW"] = np.ascontiguousarray(state["linear.weight"].T, np.float32)
    inits["LB"] = state["linear.bias"].astype(np.float32)
    nodes += [node("Squeeze", ["H2", "axis0"], ["last"]),      # (1, n, 256) -> (n, 256)
              node("MatMul", ["last", "LW"], ["lin"]), node("Add", ["lin", "LB"], ["biased"]),
              node("Relu", ["biased"], ["raw"])]
    return onnx_model(nodes, [value("mels", ["steps", "n", N_MELS])],
                      [value("raw", ["n", EMBEDDING_DIM])], inits, name="ge2e")


class SpeakerEncoder:
    """The GE2E network on CPU; `embed` takes a batch of mel windows. Run by onnxruntime
    (which the speech stage's VAD has loaded already), not torch: the same vectors (to
    float32 rounding) at the same speed, without torch's 1.2 s of CPU and ~200 MB a
    process that an audio-only worker would load for this network alone."""

    version = "ge2e-resemblyzer-0.1.4"

    def __init__(self, path: Path | None = None):
        from .threads import checkpoint_session
        from .torch_pickle import read_legacy_checkpoint

        def build(p: Path) -> bytes:
            checkpoint = read_legacy_checkpoint(p)
            return _ge2e_model(checkpoint.get("model_state", checkpoint))
        self.path = Path(path) if path is not None else weights_path()
        # one intra-op thread: the LSTM's small per-step products lose to a second one's
        # barriers; cores are used by running parts of a batch at once instead (`embed`)
        self.session = checkpoint_session(self.path, build, SpeakerWeightsMissing, "GE2E",
                                          "resemblyzer==0.1.4")
        self._parts = PartRunner("avindex-ge2e", MAX_THREADS, MIN_PART)

    def embed(self, mels: np.ndarray, batch: int = 64, threads: int = 0) -> np.ndarray:
        """(n, frames, 40) mel windows -> (n, 256) float32 unit vectors."""
        mels = np.asarray(mels, dtype=np.float32)
        if mels.ndim != 3 or mels.shape[2] != N_MELS:
            raise ValueError(f"expected (n, frames, {N_MELS}) mel windows, got {mels.shape}")
        return self._embed_parts(len(mels), lambda i, j: mels[i:j], batch, threads)

    def embed_at(self, samples: np.ndarray, starts: np.ndarray, frames: int = PARTIAL_FRAMES,
                 batch: int = 64, threads: int = 0) -> np.ndarray:
        """The vectors of `window_mels(samples, starts, frames)`: the front end and the
        network run together, part by part, on the threads."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        starts = np.asarray(starts, dtype=np.int64)
        with one_blas_thread():         # held here: the limit is the process's, not a thread's
            return self._embed_parts(
                len(starts), lambda i, j: _window_mels(samples, starts[i:j], frames), batch,
                threads)

    def _embed_parts(self, n: int, mels_of, batch: int, threads: int) -> np.ndarray:
        """Unit vectors of n windows whose mels `mels_of(i, j)` gives. A batch is cut into
        up to `threads` parts (0: one per core, at most MAX_THREADS) of at least MIN_PART
        windows, run at once on the one session (numpy and onnxruntime let go of the GIL;
        a window's vector does not depend on its batch)."""
        out = np.zeros((n, EMBEDDING_DIM), np.float32)

        def run(i: int, j: int) -> None:
            steps_first = np.ascontiguousarray(mels_of(i, j).transpose(1, 0, 2))
            out[i:j] = self.session.run(None, {"mels": steps_first})[0]

        self._parts.run(n, run, batch, threads)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed_samples(self, samples: np.ndarray) -> np.ndarray:
        """One 256-d vector for a stretch of 16 kHz audio: the normalised mean of its
        1.6 s windows (every 0.8 s), as resemblyzer's embed_utterance does."""
        samples = np.asarray(samples, dtype=np.float32)
        mel = mel_frames(samples) * loudness_gain(samples)
        if len(mel) < PARTIAL_FRAMES:
            mel = np.pad(mel, ((0, PARTIAL_FRAMES - len(mel)), (0, 0)))
        starts = range(0, len(mel) - PARTIAL_FRAMES + 1, PARTIAL_FRAMES // 2)
        vecs = self.embed(np.stack([mel[s:s + PARTIAL_FRAMES] for s in starts]))
        mean = vecs.mean(axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12)


SPEAKER_ENCODER: LazyModel[SpeakerEncoder] = lazy(f"speaker-encoder:{SpeakerEncoder.version}",
                                                  SpeakerEncoder)


MODEL_ENV = "AVINDEX_SPEAKER_MODEL"   # a stage built without settings (benchmarks): its model


def encoder_for(name: str) -> LazyModel:
    """The speaker encoder a setting names: "ge2e" (this module) or "campplus"
    (models.campplus: finer turns at ~2x the cost)."""
    if name == "campplus":
        from .campplus import CAMPLUS
        return CAMPLUS
    if name != "ge2e":
        raise ValueError(f"unknown speaker model {name!r}: ge2e or campplus")
    return SPEAKER_ENCODER


def default_model() -> str:
    """The model of a speakers stage built without settings: GE2E, or MODEL_ENV's."""
    return os.environ.get(MODEL_ENV, "").lower() or "ge2e"


def default_encoder() -> LazyModel:
    return encoder_for(default_model())
