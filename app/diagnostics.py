"""What a bug report needs (versions, GPU, ffmpeg, weights found), the device in use,
and the indexing worker's CPU priority. No Qt, no SQL."""
from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .settings import Settings


def diagnostics(library: Path, settings: Settings) -> dict:
    """Versions, GPU and ffmpeg availability: what a bug report needs."""
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    try:
        import ctranslate2
        gpus = ctranslate2.get_cuda_device_count()
        gpu = f"{gpus} CUDA device(s)" if gpus else "none (CPU only)"
    except Exception as exc:   # a broken CUDA install must not break the About page
        gpus, gpu = 0, f"unknown ({type(exc).__name__}: {exc})"
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg:
        try:
            first = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True,
                                   timeout=10).stdout.splitlines()[:1]
            ffmpeg_text = f"{ffmpeg} ({first[0] if first else 'version unknown'})"
        except (OSError, subprocess.SubprocessError):
            ffmpeg_text = f"{ffmpeg} (does not run)"
    else:
        ffmpeg_text = "not found on PATH (not needed for indexing; PyAV decodes audio)"
    try:
        from models.weights import available_models
        models = [f"{m.name} ({m.format}, {m.origin})"
                  for m in available_models(settings.resolved_models_dir())]
    except Exception as exc:
        models = [f"could not list: {exc}"]
    return {
        "Python": sys.version.split()[0],
        "PySide6": version("PySide6"),
        "torch": version("torch"),
        "faster-whisper": version("faster-whisper"),
        "CTranslate2": version("ctranslate2"),
        "GPU": gpu,
        "Device in use": resolved_device(settings.device, gpus),
        "Whisper model": settings.whisper_model,
        "Whisper weights found": ", ".join(models) or "none",
        "ffmpeg": ffmpeg_text,
        "Library": str(library),
        "Models folder": str(settings.resolved_models_dir()),
    }


def resolved_device(device: str, cuda_devices: int) -> str:
    if device == "cuda":
        return "GPU (CUDA)" if cuda_devices else "GPU requested, none found"
    if device == "auto" and cuda_devices:
        return "GPU (CUDA)"
    return "CPU"


WORKER_NICENESS = 10


def lower_priority(pid: int, niceness: int = WORKER_NICENESS) -> None:
    """Let the indexing worker yield the CPU to the window (and the rest of the desktop).
    Linux keeps a nice value per thread, so every thread of the process is lowered;
    threads it starts later inherit it."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
        except (OSError, AttributeError):    # gone already, or no setpriority (Windows)
            pass
