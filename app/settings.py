"""Where things live and how the engine is configured.

Precedence for the library file: --library PATH, then $AVINDEX_LIBRARY, then the
user's data directory (platformdirs). Everything that belongs to one library lives
beside its file and is named after it (for library.db: library.settings.json,
library.thumbnails/, library.log), so two libraries never share or prune each
other's files. The settings JSON is shared by the CLI and the GUI.
"""
from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import platformdirs

APP_NAME = "avindex"


def data_dir() -> Path:
    override = os.environ.get("AVINDEX_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def library_path(cli_value: str | os.PathLike | None = None) -> Path:
    if cli_value:
        return Path(cli_value).expanduser().resolve()
    env = os.environ.get("AVINDEX_LIBRARY")
    if env:
        return Path(env).expanduser().resolve()
    return data_dir() / "library.db"


# The choices the CLI, the settings dialog and the worker accept: (value, label).
WHISPER_MODELS = (("base", "base — multilingual, better (145 MB)"),
                  ("tiny.en", "tiny.en — English only, faster (75 MB)"))
ASR_ENGINES = (("faster-whisper", "faster-whisper (CTranslate2, recommended)"),
               ("openai-whisper", "openai-whisper (PyTorch)"))
DEVICES = (("auto", "Automatic (GPU when available)"), ("cpu", "CPU"), ("cuda", "GPU (CUDA)"))
# who speaks: models.speaker_encoder.encoder_for; benchmarks/README.md "CAM++ against GE2E"
SPEAKER_MODELS = (("auto", "Automatic — CAM++, or GE2E where the library's voices are GE2E's"),
                  ("campplus", "CAM++ — finer speaker turns, ~2x GE2E's time"),
                  ("ge2e", "GE2E — fastest"))


def _editable(default, label: str, choices=None):
    """A setting the GUI edits (its label, and its choices where it has them)."""
    return field(default=default, metadata={"editable": True, "label": label,
                                            "choices": choices})


@dataclass
class Settings:
    """Engine settings: the one typed definition the CLI, the GUI and the worker use.
    Every default works offline."""

    whisper_model: str = _editable("base", "Whisper model", WHISPER_MODELS)
    asr_engine: str = _editable("faster-whisper", "Speech engine", ASR_ENGINES)
    device: str = _editable("auto", "Device", DEVICES)
    threads: int = _editable(0, "CPU threads")                   # 0: all cores
    frame_interval_s: float = _editable(5.0, "Keyframe every")   # at least one per N s
    models_dir: str = _editable("", "Models folder")             # "": <data dir>/models
    # skip speech recognition for a file whose subtitle track covers its speech
    trust_existing_subtitles: bool = _editable(False, "Trust existing subtitles")
    # applies to files indexed after a change; a named voice is recognised in files whose
    # speakers the same model found
    # "auto": app.stages.speaker_model (CAM++, but GE2E in a library of GE2E voices)
    speaker_model: str = _editable("auto", "Speaker model", SPEAKER_MODELS)
    # where files are indexed: "" this machine's worker, "ray" a Ray on this machine,
    # "ray://HOST:PORT" a Ray cluster (the avindex[ray] extra; app.cluster_runner)
    cluster: str = _editable("", "Cluster")
    beam_size: int = 5
    max_attempts: int = 2                # a job that crashes its worker is retried once
    worker_recycle_jobs: int = 200       # restart the worker process after N jobs
    motion_auto_train: bool = True       # learn the library's motion encoder when due

    @classmethod
    def editable(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.metadata.get("editable"))

    @classmethod
    def coerce(cls, name: str, value):
        """`value` (e.g. a string from QSettings) as the field's type; ValueError if not
        one of its choices."""
        f = next(f for f in fields(cls) if f.name == name)
        kind = {"str": str, "int": int, "float": float, "bool": bool}[
            f.type if isinstance(f.type, str) else f.type.__name__]
        if kind is bool and isinstance(value, str):
            value = value.strip().lower() in ("1", "true", "yes")
        value = kind(value)
        if name == "cluster" and value not in ("", "local"):
            from indexer.cluster.connect import check_address
            check_address(value)                      # ValueError: not ray or ray://H:P
        choices = f.metadata.get("choices")
        if choices and value not in [c for c, _ in choices]:
            raise ValueError(f"{name} must be one of {[c for c, _ in choices]}, not {value!r}")
        return value

    def resolved_models_dir(self) -> Path:
        if self.models_dir:
            return Path(self.models_dir).expanduser()
        env = os.environ.get("AVINDEX_MODELS_DIR")
        return Path(env) if env else data_dir() / "models"

    @classmethod
    def load(cls, library: Path) -> "Settings":
        path = settings_file(library)
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if isinstance(raw.get("extra"), dict):      # settings files before the typed fields
            raw = {**raw.pop("extra"), **raw}
        values = {}
        for f in fields(cls):
            if f.name in raw:
                try:
                    values[f.name] = cls.coerce(f.name, raw[f.name])
                except (TypeError, ValueError):
                    pass                              # a bad value falls back to the default
        return cls(**values)

    def save(self, library: Path) -> None:
        path = settings_file(library)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        os.replace(tmp, path)


def _beside(library: Path, suffix: str) -> Path:
    library = Path(library)
    return library.with_name(library.stem + suffix)


def settings_file(library: Path) -> Path:
    return _beside(library, ".settings.json")


def thumbnail_dir(library: Path) -> Path:
    return _beside(library, ".thumbnails")


def log_file(library: Path) -> Path:
    return _beside(library, ".log")


def log_note(library: Path, what: str) -> None:
    """Append a line a person may want to read (a subtitle file that could not be read,
    speech recognition skipped); like log_error, a log that cannot be written is ignored."""
    try:
        with open(log_file(library), "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {what}\n")
    except OSError:
        pass


def log_error(library: Path, what: str, exc: BaseException) -> None:
    """Append `what` and the traceback to the library's log. A log that cannot be
    written (a full disk) must not turn one error into another, so that is ignored."""
    text = "".join(traceback.format_exception(exc))
    try:
        with open(log_file(library), "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {what}\n{text}\n")
    except OSError:
        pass
