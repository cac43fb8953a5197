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


@dataclass
class Settings:
    """Engine settings. Every default works offline."""

    whisper_model: str = "base"          # "base" (multilingual) or "tiny.en" (fast English)
    asr_engine: str = "faster-whisper"   # or "openai-whisper"
    device: str = "auto"                 # "auto", "cpu" or "cuda"
    threads: int = 0                     # 0: all cores
    beam_size: int = 5
    frame_interval_s: float = 5.0        # at least one keyframe every N seconds
    models_dir: str = ""                 # "" means <data dir>/models
    max_attempts: int = 2                # a job that crashes its worker is retried once
    worker_recycle_jobs: int = 200       # restart the worker process after N jobs
    extra: dict = field(default_factory=dict)

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
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

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


def log_error(library: Path, what: str, exc: BaseException) -> None:
    """Append `what` and the traceback to the library's log. A log that cannot be
    written (a full disk) must not turn one error into another, so that is ignored."""
    text = "".join(traceback.format_exception(exc))
    try:
        with open(log_file(library), "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {what}\n{text}\n")
    except OSError:
        pass
