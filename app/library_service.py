"""The GUI's one door into the engine.

`LibraryService` lives on the GUI thread and only emits typed signals; the work
happens elsewhere:
  - library reads, intake (which hashes files), corrections and exports run on a
    `_DbWorker` moved to its own QThread, with its own Store (one SQLite
    connection per thread);
  - indexing runs in a Python thread driving the existing `Runner`, which feeds a
    separate worker process, so a file that crashes a decoder cannot freeze or
    kill the window;
  - search (hybrid text, by image, more like this) runs in a search process of its
    own (app.search_process), driven from a `SearchWorker` on its own QThread: its
    Python and model work cannot hold the window's GIL;
  - the watched folders are followed by an indexer.watching.FolderWatcher on its own
    thread while the window is open; the files it finds settled come back here (a
    queued signal) and go through the DB thread's intake like added files;
  - who speaks (a transcript's speakers, naming and merging them, the library's
    voices) is read and written on the DB thread too.
Everything crossing to the UI is plain data (dicts, lists, str).
"""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

import ui.qt_compat  # noqa: F401  (PySide6 6.12 refcount bug on Python 3.11; see there)

from .cluster_runner import make_runner
from .diagnostics import diagnostics, lower_priority, resolved_device
from .runner import LibraryBusy, Runner
from .search_worker import SearchWorker
from .settings import Settings
from .stages import thumbnail_dir
from .tag_controller import TagController

REFRESH_DELAY_MS = 200
BUSY_RETRY_MS = 5000
LIBRARY_POLL_MS = 1500
# exceptions whose message is written for a person: a search failing with one shows it alone
_READABLE_FAILURES = ("UnknownSpeaker: ", "ValueError: ")


def export_target(media_path: str, fmt: str, folder: str | None) -> Path:
    media = Path(media_path)
    base = Path(folder) if folder else media.parent
    return base / f"{media.stem}.{fmt}"


def library_stamp(library: Path) -> tuple:
    """Changes whenever anyone commits to the library: SQLite in WAL mode appends each
    commit to the -wal file, and a checkpoint rewrites the main file. A few stat calls,
    so another process's writes (`avindex index`) can be noticed without a query."""
    stamp = []
    for path in (library, library.with_name(library.name + "-wal")):
        try:
            st = path.stat()
            stamp.append((st.st_mtime_ns, st.st_size))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


def _guarded(method):
    """A slot on the DB thread reports its failure instead of dying silently."""
    def wrapper(self, *args):
        from indexer.store.connection import DiskFull
        try:
            return method(self, *args)
        except DiskFull as exc:    # e.g. adding files to a library on a full disk
            self.disk_full.emit(str(exc))
        except Exception as exc:   # one bad request must not end the DB thread
            self.failed.emit(f"{type(exc).__name__}: {exc}")
    wrapper.__name__ = method.__name__
    return wrapper


class _DbWorker(QObject):
    """Runs on its own QThread; owns that thread's Store. Payloads are declared
    `object`: a `list`/`dict` signal converts through QVariant, which is slow for long lists
    (measured: benchmarks/README.md "GUI responsiveness while indexing")."""

    media_listed = Signal(object)
    intake_progress = Signal(int)         # files taken so far
    intake_done = Signal(object, object)  # intakes, problems (dicts)
    tags_done = Signal(int, object)       # media id, tag ranges
    transcript_done = Signal(int, object)
    speakers_done = Signal(int, object)   # media id, its speakers (dicts)
    speakers_changed = Signal(object)     # {"media_id", "voice_id", "text"} after a change
    voices_done = Signal(object)          # the library's voices (dicts)
    people_done = Signal(object)          # the library's people (dicts, with thumb_path)
    people_changed = Signal(object)       # {"person_id", "text"} after a change
    appearances_done = Signal(int, object)   # media id, its face appearances (dicts)
    person_hits_done = Signal(object, object)  # request (dict), hits (dicts)
    correction_done = Signal(int, int, str)  # media id, segment id, text
    export_done = Signal(object, object)  # written paths, (path, error) problems
    retried = Signal(int)
    diagnostics_done = Signal(object)
    watched_listed = Signal(object, object)   # watched folders (dicts), problems (str)
    watched_intake_done = Signal(object, object)  # intakes, problems (dicts)
    failed = Signal(str)
    disk_full = Signal(str)               # the message; the service pauses indexing

    def __init__(self, library: Path, service: "LibraryService"):
        super().__init__()
        self._library = library
        self._service = service
        self._store = None

    @property
    def store(self):
        if self._store is None:
            from indexer.store import Store
            self._store = Store(self._library)
        return self._store

    @Slot(str)
    @_guarded
    def open_library(self, path: str) -> None:
        self.close()
        self._library = Path(path)
        self.media_listed.emit(self._media_rows())

    @Slot()
    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @Slot()
    @_guarded
    def list_media(self) -> None:
        self.media_listed.emit(self._media_rows())

    @Slot(object)
    @_guarded
    def add_paths(self, paths: list) -> None:
        intakes, problems = self._take(paths, retry_failed=True)
        self.intake_done.emit(intakes, problems)

    @Slot(object)
    @_guarded
    def add_watched_files(self, paths: list) -> None:
        """Files of a watched folder whose writes have settled: only what is new or
        changed is queued (an unchanged file that failed is not retried each time)."""
        intakes, problems = self._take(paths, retry_failed=False)
        # subtitles of a file not (yet) in the library are read when that file comes
        intakes = [i for i in intakes if i["action"] != "no_media"]
        self.watched_intake_done.emit(intakes, problems)

    def _take(self, paths: list, *, retry_failed: bool) -> tuple[list, list]:
        from indexer.intake import discover, take
        intakes, problems = [], []
        for n, (path, problem) in enumerate(discover(paths), 1):
            if problem:
                problems.append({"path": str(path), "error": problem})
                continue
            intakes.append(dataclasses.asdict(take(self.store, path, retry_failed=retry_failed)))
            if n == 1 or n % 25 == 0:
                self.intake_progress.emit(n)   # lets indexing start while a big folder is taken
            if n % 250 == 0:
                self.media_listed.emit(self._media_rows())
        self.media_listed.emit(self._media_rows())
        return intakes, problems

    @Slot()
    @_guarded
    def list_watched(self) -> None:
        self.watched_listed.emit(self.store.watched_folders(), [])

    @Slot(object)
    @_guarded
    def set_watched(self, folders: list) -> None:
        from indexer.watching import apply_folder_list
        problems = apply_folder_list(self.store, folders)
        self.watched_listed.emit(self.store.watched_folders(), problems)

    def _media_rows(self) -> list[dict]:
        """Store.all_media plus `thumbnail`: the absolute path of the file's first
        keyframe thumbnail, or None (audio, not analysed yet)."""
        from indexer.store.reads import first_thumbnails
        rows = self.store.all_media()
        thumbs = first_thumbnails(self.store)
        folder = thumbnail_dir(self._library)
        for row in rows:
            thumb = thumbs.get(row["id"])
            row["thumbnail"] = str(folder / thumb) if thumb else None
        return rows

    @Slot(int)
    @_guarded
    def tag_ranges(self, media_id: int) -> None:
        from indexer.store.reads import tag_ranges
        self.tags_done.emit(media_id, tag_ranges(self.store, media_id))

    @Slot(int)
    @_guarded
    def transcript(self, media_id: int) -> None:
        """The file's lines, each with who says most of it (speaker_id, speaker: the
        name, voice_id; None where no one was found), then the file's speakers."""
        segments = self.store.transcript(media_id)
        speakers = self.store.list_speakers(media_id)
        who = (self.store.speakers_over(media_id, [(s["start"], s["end"]) for s in segments])
               if speakers else [None] * len(segments))
        for seg, w in zip(segments, who):
            seg.update(speaker_id=w and w["speaker_id"], speaker=w and w["name"],
                       voice_id=w and w["voice_id"])
        self.speakers_done.emit(media_id, speakers)
        self.transcript_done.emit(media_id, segments)

    @Slot(int, str)
    def name_speaker(self, speaker_id: int, name: str) -> None:
        """Name a file's speaker: its voice, so every file with that voice follows."""
        def change():
            before = self.store.speaker(speaker_id)
            if before is None:
                raise KeyError("that speaker is gone (the file was indexed again)")
            voice_id = self.store.name_speaker(speaker_id, name)
            voice = self.store.voice(voice_id)
            files = len(self.store.files_of_voice(voice_id))
            where = f"in {files} file{'s' * (files != 1)}"
            if voice["name"] is None:
                text = f"{before['name']} has no name now: “Speaker N” in each file."
            elif voice_id != before["voice_id"]:
                text = (f"{before['name']} is “{voice['name']}”, a voice known already: "
                        f"now heard {where}.")
            else:
                text = f"{before['name']} is now “{voice['name']}” {where}."
            return before["media_id"], voice_id, text
        self._speaker_change("Could not rename the speaker", change)

    @Slot(int, int)
    def merge_speakers(self, keep_id: int, other_id: int) -> None:
        """Two speakers of one file are one person: the other's turns become keep's."""
        def change():
            keep, other = self.store.speaker(keep_id), self.store.speaker(other_id)
            if keep is None or other is None:
                raise KeyError("that speaker is gone (the file was indexed again)")
            self.store.merge_speakers(keep_id, other_id)
            return keep["media_id"], keep["voice_id"], f"{other['name']} joined {keep['name']}."
        self._speaker_change("Could not merge the speakers", change)

    def _change(self, what: str, change):
        """Run a user's edit of the library; its result, or None when it failed (the
        failure said through `failed` / `disk_full`)."""
        from indexer.store.connection import DiskFull
        try:
            return change()
        except (KeyError, ValueError) as exc:
            self.failed.emit(f"{what}: {exc.args[0] if exc.args else exc}")
        except DiskFull as exc:
            self.disk_full.emit(str(exc))
        except Exception as exc:
            self.failed.emit(f"{what}: {type(exc).__name__}: {exc}")
        return None

    def _speaker_change(self, what: str, change) -> None:
        done = self._change(what, change)
        if done is None:
            return
        media_id, voice_id, text = done
        self.speakers_changed.emit({"media_id": media_id, "voice_id": voice_id, "text": text})
        self.voices_done.emit(self.store.voices())

    @Slot()
    @_guarded
    def voices(self) -> None:
        self.voices_done.emit(self.store.voices())

    # ---- who appears -----------------------------------------------------------------------
    @Slot(bool)
    @_guarded
    def people(self, include_hidden: bool) -> None:
        thumbs = thumbnail_dir(self._library)
        self.people_done.emit([dict(p, thumb_path=str(thumbs / p["thumbnail"])
                                    if p["thumbnail"] else None)
                               for p in self.store.list_people(include_hidden=include_hidden)])

    @Slot(int)
    @_guarded
    def face_appearances(self, media_id: int) -> None:
        self.appearances_done.emit(media_id, self.store.face_appearances(media_id))

    @Slot(int, str)
    def name_person(self, person_id: int, name: str) -> None:
        """Name a person everywhere; a name someone has already merges the two."""
        def change():
            from indexer.search.people import person_label
            before = self._person(person_id)
            kept = self.store.name_person(person_id, name)
            now = self.store.person(kept)
            if now is None or now["name"] is None:
                return kept, f"{person_label(before)} has no name now."
            if kept != person_id:
                return kept, (f"{person_label(before)} is “{now['name']}”, someone known "
                              f"already: now seen in {now['files']} file(s).")
            return kept, f"{person_label(before)} is now “{now['name']}”."
        self._people_change("Could not rename the person", change)

    @Slot(int, object)
    def merge_people(self, into: int, others: list) -> None:
        def change():
            from indexer.search.people import person_label
            target = self._person(into)
            gone = [person_label(self._person(o)) for o in others]
            self.store.merge_people(into, others)
            return into, f"{', '.join(gone)} joined {person_label(target)}."
        self._people_change("Could not merge the people", change)

    @Slot(int, bool)
    def hide_person(self, person_id: int, hidden: bool) -> None:
        def change():
            from indexer.search.people import person_label
            person = self._person(person_id)
            self.store.hide_person(person_id, hidden)
            return person_id, (f"{person_label(person)} is hidden from lists and search."
                               if hidden else f"{person_label(person)} shows again.")
        self._people_change("Could not hide the person" if hidden
                            else "Could not show the person", change)

    def _person(self, person_id: int) -> dict:
        person = self.store.person(person_id)
        if person is None:
            raise KeyError(f"person {person_id} is gone (merged, or their files removed)")
        return person

    def _people_change(self, what: str, change) -> None:
        done = self._change(what, change)
        if done is None:
            return
        person_id, text = done
        self.people_changed.emit({"person_id": person_id, "text": text})

    @Slot(object)
    @_guarded
    def person_hits(self, request: dict) -> None:
        """A person's appearances (request mode "person": {"person": {"id", ...}}) or the
        other appearances of who is on screen in a moment (mode "more_person": "source",
        a hit dict or {"media_id", "seek"}, and maybe "person_id"), as hits."""
        from indexer.search import Hit
        from indexer.search.people import (more_of_this_person, person_label,
                                           person_moments, resolve_person)
        from indexer.search.speakers import resolved
        from .search_requests import SEARCH_LIMIT, hit_rows, make_filters
        filters = resolved(self.store, make_filters(request.get("filters")))
        request = dict(request)
        if request["mode"] == "person":
            person = resolve_person(self.store, int(request["person"]["id"]))
            hits = person_moments(self.store, person["id"], filters, SEARCH_LIMIT)
            request["label"] = person_label(person)
        else:
            src = request["source"]
            seek = float(src.get("seek") or src.get("start") or 0.0)
            moment = Hit(int(src["media_id"]), src.get("path") or "", float(src.get("start",
                         seek)), float(src.get("end", seek)), "face", "", 0.0, seek=seek)
            try:
                hits = more_of_this_person(self.store, moment, SEARCH_LIMIT,
                                           person_id=request.get("person_id"),
                                           filters=filters)
            except LookupError as exc:
                self.failed.emit(str(exc.args[0] if exc.args else exc))
                return
            pid = request.get("person_id")
            if pid is None:
                from indexer.search.people import people_in
                here = people_in(self.store, moment.media_id, moment.start, moment.end, seek)
                pid = here[0]["id"] if here else None
            person = self.store.person(pid) if pid is not None else None
            request["label"] = person_label(person) if person else "this person"
        rows = hit_rows(self.store, hits, thumbnail_dir(self._library))
        for row, hit in zip(rows, hits):
            row["people"] = list(getattr(hit, "people", None) or [])
        self.person_hits_done.emit(request, rows)

    @Slot(int, str)
    @_guarded
    def correct(self, segment_id: int, text: str) -> None:
        from indexer.store.reads import segment_media
        self.store.correct_segment(segment_id, text)
        self.correction_done.emit(segment_media(self.store, segment_id), segment_id, text)

    @Slot(object, str, str, bool)
    @_guarded
    def export(self, media_ids: list, fmt: str, folder: str, speaker_names: bool) -> None:
        from indexer.subtitles import render
        written, problems = [], []
        for media_id in media_ids:
            media = self.store.media(media_id)
            if media is None:
                continue
            segments = self.store.export_transcript(media_id)
            if not segments:
                problems.append((media["path"], f"no transcript yet (status: {media['status']})"))
                continue
            target = export_target(media["path"], fmt, folder or None)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(render(fmt, segments, turns=self.store.speaker_turns(media_id),
                                         speaker_names=speaker_names), encoding="utf-8")
            except OSError as exc:
                problems.append((media["path"], f"cannot write {target}: {exc.strerror or exc}"))
                continue
            written.append(str(target))
        self.export_done.emit(written, problems)

    @Slot(object)
    @_guarded
    def cancel(self, media_ids: list) -> None:
        self._service._cancel_in_engine(self.store, media_ids)
        self.media_listed.emit(self._media_rows())

    @Slot(object)
    @_guarded
    def retry(self, media_ids: list) -> None:
        n = self.store.retry(media_ids or None)
        self.media_listed.emit(self._media_rows())
        self.retried.emit(n)

    @Slot()
    @_guarded
    def diagnostics(self) -> None:
        self.diagnostics_done.emit(diagnostics(self._library, self._service.settings()))


class LibraryService(QObject):
    media_changed = Signal(object)        # every media row (dicts from Store.all_media)
    job_event = Signal(object)            # the runner's events, unchanged
    run_state_changed = Signal(bool)      # indexing or idle
    indexing_paused = Signal(str)         # why (the disk is full); until resume_indexing()
    indexing_resumed = Signal()
    files_added = Signal(object, object)  # intakes, problems
    search_results = Signal(str, object)  # query, hits (dicts; "seek" is the moment's time)
    # search by image / more like this: (request: mode "image" or "similar", hits)
    example_results = Signal(object, object)
    search_failed = Signal(str)
    tags_loaded = Signal(int, object)     # media id, tag ranges (dicts)
    transcript_loaded = Signal(int, object)  # media id, lines (with speaker, speaker_id, voice_id)
    speakers_loaded = Signal(int, object)   # media id, its speakers (before its transcript)
    # a speaker was named or merged: {"media_id", "voice_id", "text"}; names may have
    # changed in every file with that voice
    speakers_changed = Signal(object)
    voices_loaded = Signal(object)          # the library's voices: id, name, files, seconds
    people_loaded = Signal(object)          # the library's people (dicts with thumb_path)
    # a person was named, merged, hidden or shown: {"person_id", "text"}
    people_changed = Signal(object)
    appearances_loaded = Signal(int, object)  # media id, who is on screen when (dicts)
    correction_saved = Signal(int, int, str)
    export_finished = Signal(object, object)
    diagnostics_ready = Signal(object)
    # the watched folders (dicts: path, polling, state, added_at), after every change
    watched_folders_changed = Signal(object)
    settings_changed = Signal(object)
    library_changed = Signal(str)
    message = Signal(str)                 # something for the status bar
    error = Signal(str)

    # requests to the DB thread (queued connections)
    _req_list = Signal()
    _req_add = Signal(object)
    _req_search = Signal(int, str, object)
    _req_search_image = Signal(int, str, object)
    _req_more_like = Signal(int, object, object)
    _req_tags = Signal(int)
    _req_warm_search = Signal()
    _req_transcript = Signal(int)
    _req_correct = Signal(int, str)
    _req_export = Signal(object, str, str, bool)
    _req_name_speaker = Signal(int, str)
    _req_merge_speakers = Signal(int, int)
    _req_voices = Signal()
    _req_people = Signal(bool)
    _req_appearances = Signal(int)
    _req_name_person = Signal(int, str)
    _req_merge_people = Signal(int, object)
    _req_hide_person = Signal(int, bool)
    _req_person_hits = Signal(object)
    _req_cancel = Signal(object)
    _req_retry = Signal(object)
    _req_diagnostics = Signal()
    _req_open = Signal(str)
    _req_watched = Signal()
    _req_set_watched = Signal(object)
    _req_add_watched = Signal(object)
    _runner_event = Signal(object)        # emitted on the runner thread, delivered here
    # emitted on the watcher's thread, delivered here: (watcher generation, event) and
    # (watcher generation, paths whose writes have settled)
    _watch_event = Signal(object)
    _watch_settled = Signal(object)

    def __init__(self, library: Path, settings: Settings | None = None, parent=None):
        super().__init__(parent)
        self._library = Path(library)
        self._settings = settings or Settings.load(self._library)
        self._search_generation = 0
        self._run_lock = threading.Lock()
        self._running = False
        self._rerun = False
        self._paused = False      # after the runner reported a full disk
        self._stopping = False
        self._runner: Runner | None = None
        self._run_thread: threading.Thread | None = None
        self._cancel_requested: set[int] = set()
        self._pending_library: Path | None = None
        self._people_hidden = False           # the People view lists hidden people too
        self._busy_reported = False
        self._cuda_devices: int | None = None
        self._worker_pid: int | None = None
        self._watcher = None                  # indexer.watching.FolderWatcher while started
        self._watch_generation = 0            # which watcher a queued word comes from
        self._watched: list[dict] | None = None   # the library's watched folders, once listed

        self._db_thread = QThread(self)
        self._db_thread.setObjectName("avindex-db")
        self._db = _DbWorker(self._library, self)
        self._db.moveToThread(self._db_thread)
        self._db_thread.finished.connect(self._db.deleteLater)
        for req, slot in ((self._req_list, self._db.list_media), (self._req_add, self._db.add_paths),
                          (self._req_tags, self._db.tag_ranges),
                          (self._req_transcript, self._db.transcript),
                          (self._req_correct, self._db.correct), (self._req_export, self._db.export),
                          (self._req_cancel, self._db.cancel), (self._req_retry, self._db.retry),
                          (self._req_diagnostics, self._db.diagnostics),
                          (self._req_open, self._db.open_library),
                          (self._req_watched, self._db.list_watched),
                          (self._req_set_watched, self._db.set_watched),
                          (self._req_add_watched, self._db.add_watched_files),
                          (self._req_name_speaker, self._db.name_speaker),
                          (self._req_merge_speakers, self._db.merge_speakers),
                          (self._req_voices, self._db.voices),
                          (self._req_people, self._db.people),
                          (self._req_appearances, self._db.face_appearances),
                          (self._req_name_person, self._db.name_person),
                          (self._req_merge_people, self._db.merge_people),
                          (self._req_hide_person, self._db.hide_person),
                          (self._req_person_hits, self._db.person_hits)):
            req.connect(slot)
        self._db.media_listed.connect(self.media_changed)
        self._db.intake_progress.connect(self._on_intake_progress)
        self._db.intake_done.connect(self._on_intake_done)
        self._db.tags_done.connect(self.tags_loaded)
        self._db.transcript_done.connect(self.transcript_loaded)
        self._db.speakers_done.connect(self.speakers_loaded)
        self._db.speakers_changed.connect(self._on_speakers_changed)
        self._db.voices_done.connect(self.voices_loaded)
        self._db.people_done.connect(self.people_loaded)
        self._db.people_changed.connect(self._on_people_changed)
        self._db.appearances_done.connect(self.appearances_loaded)
        self._db.person_hits_done.connect(self._on_person_hits)
        self._db.correction_done.connect(self._on_correction_done)
        self._db.export_done.connect(self.export_finished)
        self._db.retried.connect(self._on_retried)
        self._db.diagnostics_done.connect(self.diagnostics_ready)
        self._db.watched_listed.connect(self._on_watched_listed)
        self._db.watched_intake_done.connect(self._on_watched_intake_done)
        self._db.failed.connect(self.error)
        self._db.disk_full.connect(lambda message: self._from_runner(
            {"type": "disk_full", "message": message}))
        self._runner_event.connect(self._on_runner_event)
        self._watch_event.connect(self._on_watch_event)
        self._watch_settled.connect(self._on_watch_settled)

        # Search has its own thread and connection: it never queues behind intake.
        self._search_thread = QThread(self)
        self._search_thread.setObjectName("avindex-search")
        self._searcher = SearchWorker(self._library, lambda: self._search_generation,
                                      self.settings, thumbnail_dir)
        self._searcher.moveToThread(self._search_thread)
        self._search_thread.finished.connect(self._searcher.deleteLater)
        self._req_search.connect(self._searcher.search)
        self._req_search_image.connect(self._searcher.search_image)
        self._req_more_like.connect(self._searcher.more_like_this)
        self._req_warm_search.connect(self._searcher.warm_up)
        self._req_open.connect(self._searcher.open_library)
        self._searcher.done.connect(self._on_search_done)
        self._searcher.failed.connect(self._on_search_failed)

        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self._req_list)
        self._busy_timer = QTimer(self, singleShot=True, interval=BUSY_RETRY_MS)
        self._busy_timer.timeout.connect(self._retry_after_busy)
        self._stamp = library_stamp(self._library)
        self._poll_timer = QTimer(self, interval=LIBRARY_POLL_MS)
        self._poll_timer.timeout.connect(self._poll_library)
        self._db_thread.start()
        self._search_thread.start()
        # Action tags and motion groups: their own thread (training takes seconds).
        self.tags = TagController(self._library, thumbnail_dir, self)

    # ---- life cycle --------------------------------------------------------------
    def start(self) -> None:
        """List the library and resume whatever is queued (also jobs a crash left)."""
        self._req_list.emit()
        self._req_warm_search.emit()
        self._req_watched.emit()
        self._poll_timer.start()
        self._start_watching()
        self.ensure_running()

    def shutdown(self, timeout: float = 20.0) -> None:
        self._stop_watching()
        self._poll_timer.stop()
        self._busy_timer.stop()
        self._refresh_timer.stop()
        thread = self._run_thread
        self._stop_runner()
        if thread is not None:
            thread.join(timeout)
        self._search_generation += 1        # whatever is queued is dropped unanswered
        self._searcher.close()              # stops the search process; a wait there ends
        self.tags.shutdown(int(timeout * 1000))
        for thread, worker in ((self._db_thread, self._db),
                               (self._search_thread, self._searcher)):
            thread.quit()
            if thread.wait(int(timeout * 1000)):
                worker.close()  # its thread has ended; a queued close might never run

    @property
    def library(self) -> Path:
        return self._library

    @property
    def is_running(self) -> bool:
        return self._running

    # ---- requests (GUI thread; all return at once) -------------------------------------
    def add_paths(self, paths: list[str]) -> None:
        paths = [str(p) for p in paths if str(p)]
        if paths:
            self._req_add.emit(paths)

    def refresh(self) -> None:
        """List the library again within REFRESH_DELAY_MS. Not restarted by later calls:
        a batch of short jobs sends events faster than that, and a debounce would then
        hold the list (and the files-done count) back until the batch ended."""
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def cancel(self, media_ids: list[int]) -> None:
        self._cancel_requested.update(media_ids)
        self._req_cancel.emit(list(media_ids))

    def retry(self, media_ids: list[int]) -> None:
        """Failed and cancelled jobs of these media (or of all, with []) run again."""
        self._cancel_requested.difference_update(media_ids)
        if not media_ids:
            self._cancel_requested.clear()
        self._req_retry.emit(list(media_ids))

    def search(self, query: str, filters: dict | None = None) -> None:
        """Hybrid search (words said, shown or tagged, and meaning); answered by
        `search_results`. filters: keys of indexer.search.Filters (kind, language, speaker
        ...). With a speaker and no words: the moments that voice speaks."""
        self._search_generation += 1
        if not query.strip() and not (filters or {}).get("speaker"):
            self.search_results.emit(query, [])
            return
        self._req_search.emit(self._search_generation, query, dict(filters or {}))

    def search_image(self, path: str, filters: dict | None = None) -> None:
        """Moments whose frames look like the image; answered by `example_results`."""
        self._search_generation += 1
        self._req_search_image.emit(self._search_generation, str(path), dict(filters or {}))

    def more_like_this(self, hit: dict, filters: dict | None = None) -> None:
        """Moments like a result, in its own modality; answered by `example_results`."""
        self._search_generation += 1
        self._req_more_like.emit(self._search_generation, dict(hit), dict(filters or {}))

    def tag_ranges(self, media_id: int) -> None:
        """The file's tag ranges (every source); answered by `tags_loaded`."""
        self._req_tags.emit(media_id)

    def transcript(self, media_id: int) -> None:
        self._req_transcript.emit(media_id)

    def correct(self, segment_id: int, text: str) -> None:
        self._req_correct.emit(segment_id, text)

    def export(self, media_ids: list[int], fmt: str, folder: str | None = None,
               speaker_names: bool = False) -> None:
        """Write each file's transcript as `fmt`; with the file's speakers (WebVTT voices,
        JSON fields, text names, and with `speaker_names` "Name: " in SRT cues)."""
        self._req_export.emit(list(media_ids), fmt, folder or "", bool(speaker_names))

    # ---- who speaks ----------------------------------------------------------------------
    def name_speaker(self, speaker_id: int, name: str) -> None:
        """Name a file's speaker, that is its voice: every file with that voice follows
        (a blank name makes it "Speaker N" again; a name another voice has merges them).
        Answered by `speakers_changed` (and `voices_loaded`), or `error`."""
        self._req_name_speaker.emit(int(speaker_id), name or "")

    def merge_speakers(self, keep_id: int, other_id: int) -> None:
        """Two speakers of one file are one person (keep's voice stays); answered by
        `speakers_changed`, or `error`."""
        self._req_merge_speakers.emit(int(keep_id), int(other_id))

    def voices(self) -> None:
        """The library's voices; answered by `voices_loaded`."""
        self._req_voices.emit()

    # ---- who appears ----------------------------------------------------------------------
    def people(self, include_hidden: bool = False) -> None:
        """The library's people; answered by `people_loaded`."""
        self._people_hidden = bool(include_hidden)
        self._req_people.emit(self._people_hidden)

    def face_appearances(self, media_id: int) -> None:
        """Who is on screen when in a file; answered by `appearances_loaded`."""
        self._req_appearances.emit(int(media_id))

    def name_person(self, person_id: int, name: str) -> None:
        """Name a person in every file (blank: "Person N" again; a name someone has
        merges them); answered by `people_changed` (and `people_loaded`), or `error`."""
        self._req_name_person.emit(int(person_id), name or "")

    def merge_people(self, into: int, others: list[int]) -> None:
        """These people are one person: `into` keeps its name; as name_person."""
        self._req_merge_people.emit(int(into), [int(o) for o in others])

    def hide_person(self, person_id: int, hidden: bool = True) -> None:
        """Keep a person out of lists and search (or show them again); as name_person."""
        self._req_hide_person.emit(int(person_id), bool(hidden))

    def person_appearances(self, person: dict, filters: dict | None = None) -> None:
        """A person's moments (the People view's "Show appearances"); answered by
        `example_results` with request mode "person"."""
        self._search_generation += 1
        self._req_person_hits.emit({"mode": "person", "person": dict(person),
                                    "filters": dict(filters or {}),
                                    "generation": self._search_generation})

    def more_of_person(self, moment: dict, person_id: int | None = None,
                       filters: dict | None = None) -> None:
        """The other moments of who is on screen in a moment (a hit, or {"media_id",
        "seek"}); the most prominent person unless `person_id`. Answered by
        `example_results` with request mode "more_person", or `error`."""
        self._search_generation += 1
        self._req_person_hits.emit({"mode": "more_person", "source": dict(moment),
                                    "person_id": person_id, "filters": dict(filters or {}),
                                    "generation": self._search_generation})

    def _on_person_hits(self, request: dict, hits: list) -> None:
        if request.get("generation") == self._search_generation:
            self.example_results.emit(request, hits)

    def _on_people_changed(self, change: dict) -> None:
        self.people_changed.emit(change)
        self.message.emit(change["text"])
        self._req_people.emit(self._people_hidden)

    @staticmethod
    def person_query(name: str | None, person_id: int | None) -> str:
        """The search text for the moments a person is seen: person:"Anna", or person:#12."""
        from indexer.search.query_text import person_term
        return person_term(name, person_id)

    @staticmethod
    def voice_query(name: str | None, voice_id: int | None) -> str:
        """The search text for the moments a voice speaks: speaker:"Anna", or
        speaker:#12 for a voice with no name."""
        from indexer.search.query_text import speaker_term
        return speaker_term(name, voice_id)

    export_target = staticmethod(export_target)   # the file `export` writes for a media file

    @staticmethod
    def media_extensions() -> list[str]:
        from indexer.intake import MEDIA_EXTENSIONS
        return sorted(MEDIA_EXTENSIONS)

    def request_diagnostics(self) -> None:
        self._req_diagnostics.emit()

    # ---- settings ----------------------------------------------------------------------
    def settings(self) -> Settings:
        return dataclasses.replace(self._settings)

    def settings_dict(self) -> dict:
        values = {k: getattr(self._settings, k) for k in Settings.editable()}
        values["library"] = str(self._library)
        if self._watched is not None:       # not before the library has been read
            values["watched_folders"] = self.watched_folders()
        return values

    def set_settings(self, values: dict) -> None:
        """Apply and persist (JSON beside the library, shared with the CLI). A running
        batch keeps its loaded model; the next run uses the new settings. The watched
        folders ("watched_folders": dicts with path and polling) are the library's own:
        they are saved in it (before a change of library file takes effect)."""
        if "watched_folders" in values:
            self.set_watched_folders(values["watched_folders"])
        library = values.get("library")
        changes = {k: v for k, v in values.items() if k in Settings.editable()}
        self._settings = dataclasses.replace(self._settings, **changes)
        if library and Path(library).expanduser().resolve() != self._library:
            self.set_library(Path(library).expanduser().resolve())
        else:
            self._save_settings()
            self.settings_changed.emit(self.settings_dict())

    def _save_settings(self) -> None:
        try:
            self._settings.save(self._library)
        except OSError as exc:
            self.error.emit(f"Could not save settings beside {self._library}: {exc}")

    def set_library(self, library: Path) -> None:
        """Switch to another library file; a running batch is stopped first (its
        unfinished jobs stay queued in the old library)."""
        self._pending_library = Path(library)
        if self._running and self._runner is not None:
            self.message.emit("Stopping indexing to switch library…")
            self._stop_runner()
        else:
            self._switch_library()

    def _switch_library(self) -> None:
        library, self._pending_library = self._pending_library, None
        watching = self._watcher is not None
        self._stop_watching()
        self._library = library
        self._save_settings()
        self._req_open.emit(str(library))
        self._watched = None
        self._req_watched.emit()
        if watching:
            self._start_watching()
        self.tags.open_library(library)
        self.library_changed.emit(str(library))
        self.settings_changed.emit(self.settings_dict())
        self.resume_indexing()          # a full disk was the old library's

    def device_label(self) -> str:
        if self._cuda_devices is None:
            try:
                import ctranslate2
                self._cuda_devices = ctranslate2.get_cuda_device_count()
            except Exception:
                self._cuda_devices = 0
        return resolved_device(self._settings.device, self._cuda_devices)

    # ---- watched folders -------------------------------------------------------------------
    def watched_folders(self) -> list[dict]:
        """The library's watched folders as last listed (path, polling, state, added_at);
        empty until they have been read."""
        return [dict(f) for f in self._watched or []]

    def set_watched_folders(self, folders: list[dict]) -> None:
        """Make the library's watched folders exactly these ({"path", "polling"} each);
        answered by `watched_folders_changed` (and `error` for a folder that cannot be
        watched). While the window is open, they are watched."""
        wanted = [{"path": str(f["path"]), "polling": bool(f.get("polling"))} for f in folders]
        current = [{"path": f["path"], "polling": bool(f["polling"])}
                   for f in self._watched or []]
        if wanted != current:
            self._req_set_watched.emit(wanted)

    @staticmethod
    def watch_folder_problem(path: str, watched: list[str]) -> str | None:
        """Why a folder cannot be added to the watched ones (a message), or None."""
        from indexer.watching import folder_problem, normalise
        from indexer.watching.folders import covering
        folder = normalise(path)
        problem = folder_problem(folder)
        if problem:
            return problem
        normalised = [normalise(p) for p in watched]
        if folder in normalised:
            return f"{folder} is watched already."
        parent = covering(folder, normalised)
        return f"{folder} is watched already, as part of {parent}." if parent else None

    @staticmethod
    def network_share(path: str) -> str | None:
        """The network file system a folder is on ("nfs4", "cifs"...), polled by default."""
        from indexer.watching import network_fs, normalise
        return network_fs(normalise(path))

    def _start_watching(self) -> None:
        from indexer.watching import FolderWatcher
        if self._watcher is None:
            self._watch_generation += 1
            gen = self._watch_generation
            self._watcher = FolderWatcher(
                self._library, on_event=lambda e: self._watch_event.emit((gen, e)),
                on_settled=lambda paths: self._watch_settled.emit((gen, paths)))
            self._watcher.start()

    def _stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    @Slot(object, object)
    def _on_watched_listed(self, folders: list, problems: list) -> None:
        changed = [(f["path"], f["polling"]) for f in folders] != \
            [(f["path"], f["polling"]) for f in self._watched or []]
        self._watched = list(folders)
        if changed and self._watcher is not None:
            self._watcher.reload()
        for problem in problems:
            self.error.emit("Cannot watch: " + problem)
        self.watched_folders_changed.emit(self.watched_folders())

    @Slot(object, object)
    def _on_watched_intake_done(self, intakes: list, problems: list) -> None:
        self.ensure_running()
        news = [i for i in intakes if i["action"] in ("new", "changed", "relinked")]
        if len(news) == 1:
            what = {"new": "new", "changed": "changed", "relinked": "moved"}[news[0]["action"]]
            self.message.emit(f"Watched folder: {what} file {Path(news[0]['path']).name}")
        elif news:
            self.message.emit(f"Watched folders: {len(news)} new or changed files")

    @Slot(object)
    def _on_watch_settled(self, message: tuple) -> None:
        gen, paths = message
        if self._watcher is not None and gen == self._watch_generation:  # not a stopped one's
            self._req_add_watched.emit(list(paths))

    @Slot(object)
    def _on_watch_event(self, message: tuple) -> None:
        gen, event = message
        if gen != self._watch_generation:
            return
        kind = event.get("type")
        if kind in ("moved", "missing", "reappeared", "folder", "taken"):
            self.refresh()
        if kind == "folder":
            self._req_watched.emit()             # its state changed
            self.message.emit(f"{event['path']}: {event['reason']}")
        elif kind == "missing":
            self.message.emit(f"Missing (kept until pruned): {event['path']}")
        elif kind == "moved":
            self.message.emit(f"Moved: {event['from']} → {event['path']}")
        elif kind in ("error", "disk_full", "warning"):
            self.error.emit("Watching folders: " + event["message"])

    # ---- indexing ----------------------------------------------------------------------
    def ensure_running(self) -> None:
        with self._run_lock:
            if self._paused:
                return                  # queued work waits for resume_indexing()
            if self._running:
                self._rerun = True      # the loop looks again before it ends
                return
            self._running = True
            self._rerun = False
            self._stopping = False
        self._runner = make_runner(self._library, self.settings(), self._from_runner)
        self._run_thread = threading.Thread(target=self._run_loop, args=(self._runner,),
                                            name="avindex-runner", daemon=True)
        self.run_state_changed.emit(True)
        self._run_thread.start()

    def _run_loop(self, runner: Runner) -> None:
        """Runner thread. Runs until nothing is queued, including files added meanwhile."""
        while True:
            try:
                runner.run()
            except LibraryBusy as exc:
                self._runner_event.emit({"type": "library_busy", "message": str(exc)})
            except Exception as exc:   # the GUI must learn of it, not lose its runner
                self._runner_event.emit({"type": "run_error",
                                         "message": f"{type(exc).__name__}: {exc}"})
            with self._run_lock:
                if self._rerun and not self._stopping and not self._paused:
                    self._rerun = False
                    continue
                self._running = False
                break
        self._runner_event.emit({"type": "runner_idle", "runner": id(runner)})

    def _from_runner(self, event: dict) -> None:
        """Runner thread: the runner's events, on their way to the GUI thread."""
        if event.get("type") == "disk_full":
            with self._run_lock:
                self._paused = True     # before the run loop looks for more work
        self._runner_event.emit(event)

    def resume_indexing(self) -> None:
        """After a full disk: run what is queued again."""
        with self._run_lock:
            self._paused = False
        self.indexing_resumed.emit()
        self.ensure_running()

    def _stop_runner(self) -> None:
        with self._run_lock:
            self._stopping = True
        if self._runner is not None:
            self._runner.stop()

    def _cancel_in_engine(self, store, media_ids: list[int]) -> None:
        """DB thread: cancel queued jobs, and the running one if it is one of these."""
        runner = self._runner
        if self._running and runner is not None:
            runner.cancel_media(media_ids)
        else:
            store.cancel_queued(media_ids)

    @Slot(object)
    def _on_runner_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "worker_started":
            self._worker_pid = event.get("pid")
        if kind in ("worker_started", "job_started") and self._worker_pid:
            lower_priority(self._worker_pid)     # again per job: threads a model load started
        if kind == "job_started" and event.get("media_id") in self._cancel_requested:
            # A stage that finished just as the user cancelled may have queued the next one.
            self._req_cancel.emit([event["media_id"]])
        if kind == "library_busy":
            if not self._busy_reported:
                self._busy_reported = True
                self.message.emit("Another avindex process is indexing this library; "
                                  "queued files will be processed when it is done.")
            self._busy_timer.start()
        elif kind == "run_started":
            self._busy_reported = False
        elif kind == "run_error":
            self.error.emit("Indexing stopped: " + event["message"])
        elif kind == "disk_full":
            self.indexing_paused.emit(event.get("message") or "The library's disk is full.")
        if kind != "progress":
            self.refresh()
        if kind == "runner_idle":
            if self._running and event["runner"] != id(self._runner):
                return              # an earlier run's goodbye; a new run is under way
            self.run_state_changed.emit(False)
            if self._pending_library is not None:
                self._switch_library()
        self.job_event.emit(event)

    def _poll_library(self) -> None:
        """Another process (the CLI) may write the library: list it again when it changed."""
        stamp = library_stamp(self._library)
        if stamp != self._stamp:
            self._stamp = stamp
            if not self._running:    # while our runner writes, its events refresh already
                self.refresh()

    def _retry_after_busy(self) -> None:
        self._req_list.emit()
        self.ensure_running()

    # ---- replies from the DB thread ----------------------------------------------------
    @Slot(int)
    def _on_intake_progress(self, n: int) -> None:
        self.ensure_running()

    @Slot(object, object)
    def _on_intake_done(self, intakes: list, problems: list) -> None:
        self.ensure_running()
        self.files_added.emit(intakes, problems)

    @Slot(int)
    def _on_retried(self, n: int) -> None:
        if n:
            self.ensure_running()
        else:
            self.message.emit("Nothing to retry.")

    @Slot(int, object, object)
    def _on_search_done(self, generation: int, request: dict, hits: list) -> None:
        if generation != self._search_generation:
            return
        if request["mode"] == "text":
            self.search_results.emit(request["query"], hits)
        else:
            self.example_results.emit(request, hits)

    @Slot(int, str)
    def _on_search_failed(self, generation: int, message: str) -> None:
        if generation == self._search_generation:
            readable = next((message[len(p):] for p in _READABLE_FAILURES
                             if message.startswith(p)), message)
            self.search_failed.emit(readable)
            self.error.emit("Search failed: " + readable)

    @Slot(object)
    def _on_speakers_changed(self, change: dict) -> None:
        self.message.emit(change["text"])
        self.speakers_changed.emit(change)

    @Slot(int, int, str)
    def _on_correction_done(self, media_id: int, segment_id: int, text: str) -> None:
        self.correction_saved.emit(media_id, segment_id, text)
