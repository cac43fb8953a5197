"""On-screen text: PP-OCRv6 small (multilingual), run by rapidocr-onnxruntime 1.4.4.

    reader = ScreenTextReader()
    if might_have_text(frame_bgr):             # a few ms; skips blank, flat and smooth frames
        for line in reader.read(frame_bgr):
            line.text, line.confidence, line.box   # box: 4 (x, y) corners in frame pixels

Cost is the text *detector*, which grows with the pixels it sees. So `read` detects on a
copy DET_WIDTH (640) px wide and recognises the found lines from the full-size frame (at
most REC_MAX_SIDE): that detector misses only small text in a 1080p frame, and it doubles
as the expensive half of a two-stage gate: frames where it finds nothing cost no
recognition at all.

`might_have_text` is the cheap first stage, tuned for recall: it looks for line-shaped
clusters of strong local contrast (morphological gradient, Otsu with a floor, horizontal
closing). It passes nearly every frame with rendered text and rejects blank, noise,
gradient, blurred and flat frames; busy natural frames mostly pass, which only costs the
detector's time.

The models: PP-OCRv6's small detector and multilingual recogniser (Chinese, Japanese,
English and 46 Latin-script languages: accents, ß, ñ, ¿; Vietnamese only in part, its
letters with two marks or a dot below are not in it; no Cyrillic), from the `rapidocr` 3.10.0
wheel, which carries them (Apache-2.0: PaddleOCR's weights, its MODEL_LICENSES.md says
so); only its model files are used (it is installed without its
dependencies and never imported). rapidocr-onnxruntime 1.4.4 runs them with its own
pre- and post-processing (the same DB detector and CTC recogniser family; the recogniser
carries its 18,708 characters in its metadata). Where those files are missing, its own
PP-OCRv4 (Chinese and English only: "Grüße" reads "GruBe") reads instead; it also reads
again a frame v6 shows to be Vietnamese (VIETNAMESE_ONLY).

Measured: benchmarks/README.md "Model costs and the OCR gate", "On-screen text in every
language: PP-OCRv6".
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..loading import LazyModel, lazy
from ..threads import quiet_session_options

log = logging.getLogger(__name__)

GATE_WIDTH = 640              # the cheap check looks at a frame this wide
DET_WIDTH = 640               # the text detector looks at a frame this wide
REC_MAX_SIDE = 1920           # recognition crops come from the frame shrunk to this at most
DEFAULT_MIN_CONFIDENCE = 0.6
# PP-OCRv6's files in the `rapidocr` wheel (models/ of the package, found without importing it)
V6_FILES = {"det_model_path": "PP-OCRv6_det_small.onnx",
            "rec_model_path": "PP-OCRv6_rec_small.onnx"}
# Letters only Vietnamese writes among PP-OCRv6's languages: a frame where v6 reads one holds
# Vietnamese, whose letters with two marks v6 lacks ("Bạn" -> "Bn"), so its lines are read
# again by PP-OCRv4, whose bare letters ("Ban") full-text search (diacritics folded) finds
VIETNAMESE_ONLY = frozenset("ơưƠƯ")


@dataclass
class TextLine:
    text: str
    confidence: float
    box: list[tuple[float, float]]    # corners clockwise from top-left, in input pixels


def _grey(image: np.ndarray, width: int) -> np.ndarray:
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape[:2]
    if w > width:
        gray = cv2.resize(gray, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return gray


def text_candidates(image_bgr: np.ndarray, width: int = GATE_WIDTH) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h at `width` scale) of blobs shaped like a line of characters."""
    gray = _grey(image_bgr, width)
    grad = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    # Otsu on the gradient, never below a floor: a flat or noisy frame must not turn its
    # faint texture into edges.
    otsu, _ = cv2.threshold(grad, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    _, bw = cv2.threshold(grad, max(otsu, 40.0), 255, cv2.THRESH_BINARY)
    joined = cv2.morphologyEx(bw, cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_RECT, (9, 1)))
    contours, _ = cv2.findContours(joined, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        if not (6 <= h <= 80 and w >= 2 * h and w >= 20):
            continue
        fill = cv2.countNonZero(bw[y:y + h, x:x + w]) / float(w * h)
        if 0.1 <= fill <= 0.85:
            boxes.append((x, y, w, h))
    return boxes


def might_have_text(image_bgr: np.ndarray, min_boxes: int = 1) -> bool:
    """Cheap gate before OCR: False means OCR would almost surely find nothing."""
    return len(text_candidates(image_bgr)) >= min_boxes


def frame_signature(image_bgr: np.ndarray) -> np.ndarray:
    """A small grey thumbnail (128x72) for "is this the same picture as last time" checks."""
    gray = image_bgr if image_bgr.ndim == 2 else cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    return cv2.resize(gray, (128, 72), interpolation=cv2.INTER_AREA).astype(np.int16)


def same_picture(a: np.ndarray | None, b: np.ndarray | None, tol: float = 6.0) -> bool:
    """True when no 8x8 tile of the signatures differs by more than `tol` grey levels on
    average: a subtitle appearing on a still background changes a few tiles a lot, which a
    whole-frame mean would dilute below any useful threshold."""
    if a is None or b is None or a.shape != b.shape:
        return False
    d = np.abs(a - b).astype(np.float32)
    h, w = (d.shape[0] // 8) * 8, (d.shape[1] // 8) * 8
    tiles = d[:h, :w].reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3))
    return float(tiles.max()) < tol


def _shrink(img: np.ndarray, max_width: int, max_side: int | None = None) -> tuple[np.ndarray, float]:
    h, w = img.shape[:2]
    s = max_width / w
    if max_side is not None:
        s = min(s, max_side / max(h, w))
    if s >= 1:
        return img, 1.0
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))),
                      interpolation=cv2.INTER_AREA), s


def _quiet_sessions(engine, threads: int) -> None:
    """Rebuild rapidocr's CPU sessions with quiet_session_options (same model files, so the
    same numbers); leaves them as they are when this rapidocr is laid out differently."""
    try:
        import onnxruntime as ort
        holders = [getattr(getattr(engine, "text_det", None), "infer", None),
                   getattr(getattr(engine, "text_rec", None), "session", None),
                   getattr(getattr(engine, "text_cls", None), "infer", None)]
        for h in holders:
            sess = getattr(h, "session", None)
            path = getattr(sess, "_model_path", None)
            if sess is None or not path or sess.get_providers() != ["CPUExecutionProvider"]:
                continue
            h.session = ort.InferenceSession(path, quiet_session_options(threads, arena=False),
                                             providers=["CPUExecutionProvider"])
    except Exception as exc:                     # keep rapidocr's own sessions
        log.debug("rapidocr sessions left as built: %s", exc)


def v6_model_files() -> dict[str, str] | None:
    """{"det_model_path": ..., "rec_model_path": ...} of PP-OCRv6 in the installed `rapidocr`
    wheel (or where a desktop bundle put them), or None where a file is missing."""
    try:
        spec = importlib.util.find_spec("rapidocr")
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec else []
    if getattr(sys, "frozen", False):
        folders.append(str(Path(getattr(sys, "_MEIPASS", "")) / "rapidocr"))
    for folder in folders:
        files = {k: Path(folder) / "models" / name for k, name in V6_FILES.items()}
        if all(f.is_file() for f in files.values()):
            return {k: str(f) for k, f in files.items()}
    return None


class ScreenTextReader:
    """Text detection on a DET_WIDTH copy, recognition on full-size crops; PP-OCRv6 where
    its files are installed (`model` says which: "pp-ocrv6" or "pp-ocrv4")."""

    def __init__(self, *, det_width: int = DET_WIDTH, rec_max_side: int = REC_MAX_SIDE,
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE, threads: int = 0,
                 v6: bool | None = None):
        if v6 is None:              # AVINDEX_OCR=pp-ocrv4: the old models (benchmarks' before)
            v6 = os.environ.get("AVINDEX_OCR", "").lower() != "pp-ocrv4"
        files = v6_model_files() if v6 else None
        self.model = "pp-ocrv6" if files else "pp-ocrv4"
        self.min_confidence, self._threads = min_confidence, threads
        self._engine = self._rapidocr(files or {})
        self._v4 = None                      # PP-OCRv4, made on the first Vietnamese frame
        self.det_width, self.rec_max_side = det_width, rec_max_side
        e = self._engine
        self._split = all(hasattr(e, a) for a in ("text_det", "text_rec", "get_crop_img_list",
                                                   "sorted_boxes"))

    def read(self, image_bgr: np.ndarray) -> list[TextLine]:
        """Text lines, top to bottom, with confidence and box in `image_bgr` pixels."""
        if image_bgr.ndim == 2:
            image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
        if not self._split:                               # another rapidocr version
            return self._read_whole(image_bgr)
        e = self._engine
        small, s_det = _shrink(image_bgr, self.det_width)
        boxes, _ = e.text_det(small)
        if boxes is None or len(boxes) == 0:
            return []
        boxes = e.sorted_boxes(boxes)
        rec_img, s_rec = _shrink(image_bgr, 10 ** 6, self.rec_max_side)
        k = s_rec / s_det
        scaled = [np.ascontiguousarray(np.asarray(b, np.float32) * k) for b in boxes]
        crops = e.get_crop_img_list(rec_img, scaled)
        texts, _ = e.text_rec(crops)
        if self.model == "pp-ocrv6" and any(VIETNAMESE_ONLY & set(str(t)) for t, _ in texts):
            texts, _ = self._v4_engine().text_rec(crops)
        lines = []
        for box, (text, score) in zip(scaled, texts):
            text = " ".join(str(text).split())
            if not text or float(score) < self.min_confidence:
                continue
            lines.append(TextLine(text, float(score),
                                  [(float(x) / s_rec, float(y) / s_rec) for x, y in box]))
        return lines

    def _rapidocr(self, files: dict):
        """rapidocr-onnxruntime's engine on these model files ({}: its own PP-OCRv4), with
        quiet sessions."""
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise RuntimeError("OCR needs rapidocr-onnxruntime: "
                               "pip install rapidocr-onnxruntime==1.4.4") from exc
        # det_limit_side_len=32 with the default "min" limit type: the detector keeps the
        # size it is given (rounded to /32) instead of enlarging small frames to 736 px.
        kwargs = {"text_score": self.min_confidence, "det_limit_side_len": 32, **files}
        if self._threads:
            kwargs.update(intra_op_num_threads=self._threads, inter_op_num_threads=1)
        engine = RapidOCR(**kwargs)
        _quiet_sessions(engine, self._threads)
        return engine

    def _v4_engine(self):
        """rapidocr-onnxruntime's own PP-OCRv4 (for its recogniser), made once."""
        if self._v4 is None:
            self._v4 = self._rapidocr({})
        return self._v4

    def _read_whole(self, image_bgr: np.ndarray) -> list[TextLine]:
        img, s = _shrink(image_bgr, 10 ** 6, self.rec_max_side)
        result, _ = self._engine(img, use_cls=False)
        lines = []
        for box, text, score in result or ():
            text = " ".join(str(text).split())
            if text and float(score) >= self.min_confidence:
                lines.append(TextLine(text, float(score), [(float(x) / s, float(y) / s) for x, y in box]))
        return lines


def shared_reader(*, threads: int = 0) -> LazyModel[ScreenTextReader]:
    """The process's one ScreenTextReader (PP-OCRv6 from the rapidocr wheel, else PP-OCRv4
    from rapidocr-onnxruntime's own) for this thread count (models.loading), loaded on
    first `get()`."""
    return lazy(f"ocr:pp-ocr@rapidocr-onnxruntime:threads={threads}",
                lambda: ScreenTextReader(threads=threads))
