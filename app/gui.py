"""Desktop app entry point: the QApplication, the library service and the window."""
from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import sys
from pathlib import Path

from .settings import Settings, library_path, settings_file

ORG = APP = "avindex"


def app_version() -> str:
    try:
        return importlib.metadata.version("avindex")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


def remembered_library(library: Path, qsettings) -> Path:
    """--library and $AVINDEX_LIBRARY win; otherwise the location chosen in Settings."""
    explicit = library != library_path(None) or os.environ.get("AVINDEX_LIBRARY")
    saved = qsettings.value("settings/library", "")
    if not explicit and saved:
        return Path(saved).expanduser().resolve()
    return library


def settings_for(library: Path, settings: Settings, qsettings) -> Settings:
    """The JSON beside the library is shared with the CLI and wins; a library without
    one (new, or just moved to) starts from what the GUI last saved."""
    if settings_file(library).exists():
        return settings
    s = dataclasses.replace(settings)
    for key in Settings.editable():
        value = qsettings.value(f"settings/{key}")
        if value is not None and value != "":
            try:
                setattr(s, key, Settings.coerce(key, value))
            except (TypeError, ValueError):
                pass
    return s


def build(library: Path, settings: Settings, qsettings=None):
    """Service and window, without running the event loop (used by tests and benchmarks)."""
    from PySide6.QtCore import QSettings

    from ui.main_window import MainWindow

    from .library_service import LibraryService

    qsettings = qsettings or QSettings(ORG, APP)
    chosen = remembered_library(Path(library), qsettings)
    if chosen != Path(library):
        settings = Settings.load(chosen)
    library = chosen
    settings = settings_for(library, settings, qsettings)
    service = LibraryService(library, settings)
    window = MainWindow(service, qsettings, version=app_version())
    return service, window


def launch(library: Path, settings: Settings) -> int:
    os.environ.setdefault("QT_MEDIA_BACKEND", "ffmpeg")
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    app.setApplicationDisplayName("avindex")
    service, window = build(library, settings)
    app.aboutToQuit.connect(service.shutdown)
    _quit_on_sigterm(app)
    window.show()
    service.start()
    code = app.exec()
    from .child_processes import end_child_processes
    end_child_processes()   # no helper process outlives the app
    return code


def _quit_on_sigterm(app) -> None:
    """SIGTERM (logout, `kill`) closes the window the normal way, so the running job is
    cancelled and the worker stopped. Python only sees signals while it runs code, hence
    the idle timer."""
    import signal

    from PySide6.QtCore import QTimer
    signal.signal(signal.SIGTERM, lambda *_: app.quit())
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(250)
