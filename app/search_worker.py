"""Search for the GUI: a QObject on its own QThread that hands each request to the
search process (app.search_process) and emits the answer.

Only the newest request is answered: while one search runs, newer ones queue here,
and each checks its generation before it is sent, so a burst of keystrokes costs one
search, not one per key. Waiting for the child happens on this thread, never on the
GUI thread.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from .search_process import SearchProcess


class SearchWorker(QObject):
    """`current` gives the newest request's generation; `settings` the current
    app.settings.Settings; `thumb_dir` the thumbnail folder."""

    done = Signal(int, object, object)     # generation, request (dict), hits (dicts)
    failed = Signal(int, str)

    def __init__(self, library: Path, current, settings, thumb_dir):
        super().__init__()
        self._current = current
        self._settings = settings
        self._process = SearchProcess(library, settings().resolved_models_dir(), thumb_dir(library))

    def _run(self, generation: int, request: dict) -> None:
        if generation != self._current():
            return                     # a newer request was made meanwhile
        request = dict(request, models_dir=str(self._settings().resolved_models_dir()))
        reply = self._process.call(request)
        if reply is None or generation != self._current():
            return
        status, payload = reply
        if status == "done":
            self.done.emit(generation, request, payload)
        else:
            self.failed.emit(generation, payload)

    @Slot()
    def warm_up(self) -> None:
        """Start the search process and load the query embedder while the window
        opens, not on the first search after the first transcript is indexed."""
        self._process.call({"mode": "warm"})

    @Slot(str)
    def open_library(self, path: str) -> None:
        self._process.call({"mode": "open", "library": str(path)})

    @Slot()
    def close(self) -> None:
        self._process.close()

    @Slot(int, str, object)
    def search(self, generation: int, query: str, filters: dict) -> None:
        """Hybrid search: full text (said, shown, tag) and meaning, fused."""
        self._run(generation, {"mode": "text", "query": query, "filters": filters})

    @Slot(int, str, object)
    def search_image(self, generation: int, path: str, filters: dict) -> None:
        """The keyframes nearest an example image, as moments."""
        self._run(generation, {"mode": "image", "image": str(path), "filters": filters})

    @Slot(int, object, object)
    def more_like_this(self, generation: int, hit: dict, filters: dict) -> None:
        """Moments like one result, in its own modality (speech windows or keyframes)."""
        self._run(generation, {"mode": "similar", "source": hit, "filters": filters})
