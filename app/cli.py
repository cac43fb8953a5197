"""The avindex command line: the same engine as the GUI, headless.

Exit codes: 0 success, 1 some files failed, 2 bad usage, 3 library, model or cluster
problem (a missing library, a full disk, an unreachable cluster), 4 not found, 130
interrupted. Every command takes --json. Only `index`, `watch FOLDER` and `gui` create a library.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from .settings import (ASR_ENGINES, DEVICES, SPEAKER_MODELS, WHISPER_MODELS, Settings,
                       library_path, log_file)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LIBRARY, EXIT_NOT_FOUND, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def hhmmss(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _emit(args, data, text: str | None = None) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    elif text is not None:
        print(text)


def _open_store(args, create: bool = False):
    """The library's Store; only commands that index may create a new library."""
    from indexer.store.connection import LibraryError
    from indexer.store import Store
    path = args.library_path
    if path.is_dir():
        raise CliError(f"{path} is a folder; --library takes the library file "
                       f"(for example {path / 'library.db'}).", EXIT_LIBRARY)
    if not create and not path.exists():
        raise CliError(f"There is no library at {path}. Check --library (or $AVINDEX_LIBRARY); "
                       "`avindex index PATH` makes a new one.", EXIT_LIBRARY)
    try:
        return Store(path)
    except LibraryError as exc:
        raise CliError(str(exc), EXIT_LIBRARY)


# ---- index ----------------------------------------------------------------------
OUTCOMES = {"done": "indexed", "failed": "failed", "cancelled": "cancelled",
            "queued": "queued", "indexing": "queued"}


def cmd_index(args) -> int:
    from indexer.intake import discover, take
    runner = _cluster_runner(args)       # reached before anything is queued
    store = _open_store(args, create=True)
    actions, problems = {}, []
    for path, problem in discover(args.paths):
        if problem:
            problems.append({"path": str(path), "media_id": None, "outcome": "failed",
                             "action": "missing", "error": problem})
        else:
            intake = take(store, path)
            if intake.media_id is not None:
                actions[intake.media_id] = intake.action
            else:
                problems.append({"path": str(path), "media_id": None, "outcome": "failed",
                                 "action": intake.action, "error": intake.detail})
    return _run_batch(args, store, actions, problems, runner)


def _cluster_runner(args):
    """With --cluster (or the settings' cluster), a connected ClusterRunner; else None.
    An unreachable cluster is exit 3 with one message, before anything is queued."""
    address = getattr(args, "cluster", None)
    settings = _settings(args)
    if address is None:
        address = settings.cluster
    if not address or address == "local":
        return None
    from indexer.cluster.connect import ClusterUnreachable, check_address
    from indexer.cluster.transfer import PathMap
    try:
        check_address(address)
        path_map = PathMap.parse(args.path_map) if args.path_map else None
    except ValueError as exc:
        raise CliError(str(exc))
    from .cluster_runner import ClusterRunner
    runner = ClusterRunner(args.library_path, settings, address=address,
                           workers=args.workers, path_map=path_map,
                           stream=True if args.stream else None)
    try:
        runner.connect()
    except ClusterUnreachable as exc:
        raise CliError(str(exc), EXIT_LIBRARY)
    return runner


def _run_batch(args, store, actions: dict[int, str], problems: list[dict],
               runner=None) -> int:
    """Run the library's queue; report on the files of this command (`actions`: media
    id -> what intake did) and the paths that could not be taken (`problems`)."""
    from indexer.cluster.connect import ClusterUnreachable

    from .progress import ProgressView
    from .runner import LibraryBusy, Runner

    pending = {m for m in actions if store.open_jobs(m)}    # the files this run works on
    view = ProgressView(store, enabled=not args.json and not args.quiet)
    resumed = 0

    def on_event(event):
        nonlocal resumed
        if event["type"] == "run_started" and event["requeued"]:
            resumed = event["requeued"]
            print(f"Resumed {resumed} file{'s' * (resumed != 1)} left unfinished by an "
                  "interrupted run.", file=sys.stderr, flush=True)
        view.on_event(event)

    if runner is None:
        runner = Runner(args.library_path, _settings(args), on_event=on_event)
    else:
        runner.on_event = on_event
    interrupted = False

    def on_sigint(signum, frame):
        nonlocal interrupted
        interrupted = True
        runner.stop()
    previous = signal.signal(signal.SIGINT, on_sigint)
    busy = False
    try:
        runner.run()
    except LibraryBusy:
        busy = True
    except ClusterUnreachable as exc:     # its workers could not start: files stay queued
        store.close()
        raise CliError(str(exc), EXIT_LIBRARY)
    finally:
        signal.signal(signal.SIGINT, previous)
        view.close()

    if runner.disk_full:
        store.close()
        raise CliError(runner.disk_full, EXIT_LIBRARY)
    files = []
    for media_id in sorted(actions):
        m = store.media(media_id)
        outcome = OUTCOMES[m["status"]]
        if outcome == "indexed" and media_id not in pending:
            outcome = "relinked" if actions[media_id] == "relinked" else "skipped"
        files.append({"path": m["path"], "media_id": media_id, "outcome": outcome,
                      "action": actions[media_id], "error": m["error"],
                      "duration": m["duration"], "language": m["language"]})
    files += problems
    summary = {k: sum(f["outcome"] == k for f in files)
               for k in ("indexed", "skipped", "relinked", "failed", "cancelled", "queued")}
    store.close()
    result = {"library": str(args.library_path), "summary": summary, "files": files,
              "interrupted": interrupted, "busy": busy, "resumed": resumed}
    lines = [f"{len(files)} file(s): " + ", ".join(f"{v} {k}" for k, v in summary.items() if v)]
    for f in files:
        if f["outcome"] == "failed":
            lines.append(f"  FAILED  {f['path']}\n          {f['error']}")
    if summary["failed"] and log_file(args.library_path).exists():
        lines.append(f"Details of the failures are in {log_file(args.library_path)}.")
    if busy:
        lines.append("Another avindex process is indexing this library; "
                     "the files are queued and it will process them.")
    if interrupted:
        lines.append("Interrupted. Run `avindex index` again to finish the queued files.")
    _emit(args, result, "\n".join(lines))
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if summary["failed"] else EXIT_OK


def cmd_retry(args) -> int:
    store = _open_store(args)
    try:
        runner = _cluster_runner(args)   # reached before anything is queued again
    except CliError:
        store.close()
        raise
    wanted = {_resolve_media(store, p)["id"] for p in args.paths} if args.paths else None
    ids = {j["media_id"] for state in ("failed", "cancelled") for j in store.jobs(state=state)
           if wanted is None or j["media_id"] in wanted}
    if not ids or not store.retry(ids):
        store.close()
        _emit(args, {"requeued": 0}, "Nothing to retry.")
        return EXIT_OK
    return _run_batch(args, store, dict.fromkeys(ids, "retry"), [], runner)


# ---- status / search / export / prune ----------------------------------------------
def cmd_status(args) -> int:
    from indexer.store.speakers import speaker_model_name
    from .stages import speaker_model
    store = _open_store(args)
    summary = store.status_summary()
    store.close()
    settings = _settings(args)
    # which model the next file's speakers come from ("auto" follows the library's voices)
    summary["speaker_model"] = speaker_model(settings, args.library_path)
    automatic = " (automatic)" if settings.speaker_model == "auto" else ""
    lines = [f"Library: {summary['library']}",
             f"{summary['media']} file(s), {summary['hours']:.2f} h, {summary['segments']} segments",
             "Status: " + (", ".join(f"{k} {v}" for k, v in sorted(summary["by_status"].items()))
                           or "empty"),
             f"Speaker model: {speaker_model_name(summary['speaker_model'])}{automatic}"]
    for f in summary["failures"]:
        lines.append(f"  FAILED [{f['stage']}] {f['path']}\n          {f['error']}")
    _emit(args, summary, "\n".join(lines))
    return EXIT_OK


def cmd_search(args) -> int:
    from indexer.search import (Filters, UnknownPerson, UnknownSpeaker, group_by_file,
                                search)
    from indexer.search.people import search_by_face
    from .search_requests import search_models
    if not (args.query or args.image or args.speaker or args.person or args.face or args.tag):
        raise CliError("give a query, --image PATH, --face PHOTO, --speaker NAME, "
                       "--person NAME, --tag TAG, or some of them")
    if args.face and (args.query or args.image):
        raise CliError("--face finds a photo's faces on its own (with filters); to mix a "
                       "picture with words, use --image PHOTO: a face in it ranks first")
    for photo in (args.image, args.face):
        if photo and not Path(photo).is_file():
            raise CliError(f"{photo}: no such image file", EXIT_NOT_FOUND)
    filters = Filters(kind=args.kind, language=args.lang, tag=args.tag, folder=args.folder,
                      since=args.since, until=args.until,
                      date_field="modified" if args.by_mtime else "added",
                      min_duration=args.min_duration, max_duration=args.max_duration,
                      speaker=_speaker_filter(args.speaker),
                      person=_speaker_filter(args.person))
    store = _open_store(args)
    try:
        if args.face:
            hits = search_by_face(store, args.face, _face_models(), filters, limit=args.limit)
            if hits is None:
                raise CliError(f"No face was found in {args.face} (a face should be at least "
                               "about 40 pixels high); --image compares the whole picture.",
                               EXIT_NOT_FOUND)
        else:
            models = search_models(_settings(args).resolved_models_dir() if args.image else None)
            hits = search(store, args.query or "", image=args.image, filters=filters,
                          limit=args.limit, mode=args.mode, models=models,
                          face_model=_face_models(required=False) if args.image else None)
    except (UnknownSpeaker, UnknownPerson) as exc:
        raise CliError(str(exc), EXIT_NOT_FOUND)
    except ValueError as exc:
        raise CliError(str(exc))
    except RuntimeError as exc:        # an image model that cannot be loaded
        raise CliError(str(exc), EXIT_LIBRARY)
    finally:
        store.close()
    if args.group:
        groups = group_by_file(hits)
        data = {"query": args.query, "image": args.image, "face": args.face,
                "files": [{"media_id": g.media_id, "path": g.path, "score": g.score,
                           "hits": [_hit_dict(h) for h in g.hits]} for g in groups]}
        lines = []
        for g in groups:
            lines.append(g.path)
            lines += [f"  {hhmmss(h.seek)}  [{', '.join(h.kinds)}{_said_from(h)}]  "
                      f"{_said_by(h)}{h.snippet}{_seen(h)}" for h in g.hits]
    else:
        data = {"query": args.query, "image": args.image, "face": args.face,
                "hits": [_hit_dict(h) for h in hits]}
        lines = [f"{h.path}  {hhmmss(h.seek)}  [{', '.join(h.kinds)}{_said_from(h)}]  "
                 f"{_said_by(h)}{h.snippet}{_seen(h)}" for h in hits]
    _emit(args, data, "\n".join(lines) if lines else "No matches.")
    return EXIT_OK if hits else EXIT_NOT_FOUND


def _speaker_filter(value: str | None):
    """--speaker NAME, or a voice id as `avindex speakers list` shows it (3 or #3)."""
    if value is None:
        return None
    text = value.strip()
    return int(text.lstrip("#")) if text.lstrip("#").isdigit() else value


def _face_models(required: bool = True):
    """The face models for a search by a face (loaded once per process); not required,
    None when they are not installed (an --image search then compares whole pictures)."""
    from models.faces import shared_face_models
    from models.weights import ModelUnavailable
    try:
        return shared_face_models().get()
    except ModelUnavailable:
        if required:
            raise
        return None


def _hit_dict(hit) -> dict:
    """A hit as JSON, with the people on screen at its second to play."""
    return {**hit.to_dict(), "people": list(getattr(hit, "people", None) or [])}


def _seen(hit) -> str:
    """'  · on screen: Anna, Person 3' after the snippet of a moment someone is seen in."""
    people = getattr(hit, "people", None)
    if not people or (len(people) == 1 and hit.snippet.startswith(f"{people[0]} on screen")):
        return ""
    return f"  · on screen: {', '.join(people)}"


def _said_by(hit) -> str:
    """'Anna: ' before the snippet of a moment someone says."""
    return f"{hit.speaker}: " if hit.speaker else ""


def _said_from(hit) -> str:
    """' · subtitles (movie.en.srt)' when a moment's words came from a subtitle track."""
    if hit.source != "subtitles":
        return ""
    return f" · subtitles ({hit.track})" if hit.track else " · subtitles"


def _resolve_media(store, ref: str) -> dict:
    if ref.isdigit() and store.media(int(ref)):
        return store.media(int(ref))
    m = store.media_by_path(str(Path(ref).expanduser().resolve()))
    if m is None:
        raise CliError(f"{ref} is not in the library (index it first, or give its id "
                       "from `avindex status --json`).", EXIT_NOT_FOUND)
    return m


def cmd_export(args) -> int:
    from indexer.subtitles import render
    store = _open_store(args)
    try:
        media = _resolve_media(store, args.media)
        segments = store.export_transcript(media["id"], args.source)
        turns = store.speaker_turns(media["id"])
    except LookupError as exc:          # a subtitle track the file does not have
        raise CliError(f"{media['path']}: {exc}", EXIT_NOT_FOUND)
    finally:
        store.close()
    if not segments:
        what = {None: "transcript", "speech": "speech transcript",
                "subtitles": "subtitle track"}.get(args.source, "transcript")
        raise CliError(f"{media['path']} has no {what} (status: {media['status']}).",
                       EXIT_NOT_FOUND)
    text = render(args.format, segments, turns=turns, speaker_names=args.speaker_names)
    out = args.output
    if out is None:
        out = str(Path(media["path"]).with_suffix("." + args.format))
    if out == "-":
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(_cannot_write(Path(out), exc, Path(media["path"]).stem + "." + args.format))
    _emit(args, {"media": media["path"], "format": args.format, "output": out,
                 "segments": len(segments), "source": segments[0]["source"],
                 "track": segments[0]["track"],
                 "speakers": len({t["speaker_id"] for t in turns})}, f"Wrote {out}")
    return EXIT_OK


def _cannot_write(path: Path, exc: OSError, name: str) -> str:
    if path.is_dir():
        return f"cannot write {path}: it is a folder; give a file name, e.g. {path / name}."
    if not path.parent.is_dir():
        return f"cannot write {path}: the folder {path.parent} does not exist."
    return f"cannot write {path}: {exc.strerror or exc}."


def cmd_prune(args) -> int:
    from indexer.intake import forget_artifacts, is_gone, prune_candidates
    store = _open_store(args)
    found = prune_candidates(store, include_unavailable=args.include_unavailable)
    gone, held = found.gone, found.held
    removed = store.delete_media(m["id"] for m in gone) if (gone and args.yes) else 0
    dropped = 0
    if args.yes:                  # marks of files that are back since they were made
        for m in store.marked_missing():
            if not is_gone(m["path"]):
                store.clear_missing(m["id"])
        from .cluster_runner import artifact_dir
        dropped = forget_artifacts(store, artifact_dir(args.library_path))
    store.close()
    lines = [f"  {m['path']}" for m in gone]
    if not gone:
        text = "No file to forget." if held else "Every file in the library is still there."
    elif args.yes:
        text = f"Removed {removed} file(s) whose media is gone:\n" + "\n".join(lines)
    else:
        text = (f"{len(gone)} file(s) in the library are gone:\n" + "\n".join(lines)
                + "\nRun `avindex prune --yes` to remove them from the library.")
    if held:
        text += (f"\nKept {len(held)} file(s) that may only be out of reach (an unplugged "
                 "drive or an unmounted share):\n"
                 + "\n".join(f"  {m['path']}  ({m['reason']})" for m in held)
                 + "\n`avindex prune --include-unavailable` forgets them too.")
    if dropped:
        text += (f"\nDropped {dropped} cluster result(s) of files no longer in the library "
                 "from its artifact cache.")
    _emit(args, {"missing": [{"media_id": m["id"], "path": m["path"],
                              "missing_since": m["missing_since"]} for m in gone],
                 "removed": removed, "artifacts_removed": dropped,
                 "kept": [{"media_id": m["id"], "path": m["path"], "reason": m["reason"]}
                          for m in held]}, text)
    return EXIT_OK


# ---- list / watch -------------------------------------------------------------------
def cmd_list(args) -> int:
    from .file_list import file_rows, render
    store = _open_store(args)
    try:
        rows, folders = file_rows(store, failed=args.failed, missing=args.missing,
                                  watching=args.watching)
        empty = not rows and store.media_count() == 0
    finally:
        store.close()
    if args.json:
        _emit(args, rows)
    else:
        print(render(rows, folders, failed=args.failed, missing=args.missing,
                     watching=args.watching, library_empty=empty))
    return EXIT_OK


def cmd_watch(args) -> int:
    from indexer.watching import add_folder, forget_folder
    if (args.list or args.forget) and args.paths:
        raise CliError("--list and --forget do not take folders to watch; run "
                       "`avindex watch FOLDER` on its own.")
    if args.settle <= 0:
        raise CliError("--settle takes a number of seconds above 0 (for example 2).")
    store = _open_store(args, create=bool(args.paths))
    try:
        if args.forget:
            forgotten = []
            for raw in args.forget:
                try:
                    forgotten.append(forget_folder(store, raw))
                except ValueError as exc:
                    raise CliError(str(exc), EXIT_NOT_FOUND)
            _emit(args, {"forgotten": forgotten},
                  "\n".join(f"No longer watching {p} (its files stay in the library)."
                            for p in forgotten))
            return EXIT_OK
        if args.list:
            return _watch_list(args, store)
        for raw in args.paths:
            try:
                added = add_folder(store, raw, poll=args.poll)
            except ValueError as exc:
                raise CliError(str(exc), EXIT_NOT_FOUND)
            _print_added(args, added)
        if not store.watched_folders():
            raise CliError("No folders are watched yet. Name one or more: `avindex watch "
                           "FOLDER [FOLDER ...]` (they are remembered for the next time).")
        return _watch_foreground(args, store)
    finally:
        store.close()


def _print_added(args, added) -> None:
    if args.json:
        print(json.dumps({"event": "added", "path": added.path, "polling": added.polling,
                          "network": added.network, "new": added.new,
                          "covered_by": added.covered_by, "replaced": added.replaced}))
        return
    if added.covered_by:
        print(f"{added.path} is watched already, as part of {added.covered_by}.")
        return
    how = "polling" + (f" (a {added.network} network share)" if added.network else "") \
        if added.polling else "native change events"
    print(f"{'Watching' if added.new else 'Still watching'} {added.path} ({how}).")
    for child in added.replaced:
        print(f"  {child} is part of it now (no longer watched on its own).")


def _watch_list(args, store) -> int:
    from .file_list import folder_lines
    folders = store.watched_folders()
    counts = {f["path"]: len(store.media_under(f["path"])) for f in folders}
    rows = [{**f, "polling": bool(f["polling"]), "files": counts[f["path"]]} for f in folders]
    text = ("No folders are watched. `avindex watch FOLDER` adds one." if not folders else
            "Watched folders:\n" + "\n".join(
                f"{line}  {counts[f['path']]} file(s)"
                for f, line in zip(folders, folder_lines(folders))))
    _emit(args, {"folders": rows}, text)
    return EXIT_OK


def _watch_foreground(args, store) -> int:
    from .watch_session import WatchSession, install_stop_signals, restore_signals
    session = WatchSession(args.library_path, _settings(args), settle_s=args.settle,
                           as_json=args.json)
    previous = install_stop_signals(session)
    try:
        summary = session.run(store)
    finally:
        restore_signals(previous)
    if summary["disk_full"]:
        raise CliError(summary["disk_full"], EXIT_LIBRARY)
    if args.json:
        print(json.dumps({"event": "stopped", "summary": summary}, ensure_ascii=False))
    else:
        done = ", ".join(f"{summary[k]} {k}" for k in
                         ("taken", "indexed", "failed", "moved", "missing") if summary[k])
        text = f"Stopped watching after {hhmmss(summary['seconds'])}: {done or 'no changes'}."
        if summary["left_queued"]:
            text += (f" {summary['left_queued']} file(s) stay queued for the next "
                     "`avindex watch` (or the GUI).")
        print(text)
    return EXIT_OK


def cmd_models(args) -> int:
    from models.weights import ModelUnavailable, available_models, import_model
    settings = _settings(args)
    models_dir = settings.resolved_models_dir()
    if args.action == "import":
        if not args.dir:
            raise CliError("usage: avindex models import DIR")
        try:
            dest = import_model(Path(args.dir), models_dir)
        except (ModelUnavailable, ValueError, OSError) as exc:
            raise CliError(str(exc), EXIT_LIBRARY)
        _emit(args, {"imported": str(dest.path), "name": dest.name},
              f"Imported {dest.name} into {dest.path}")
        return EXIT_OK
    found = available_models(models_dir)
    rows = [m.to_dict() if hasattr(m, "to_dict") else vars(m) for m in found]
    _emit(args, {"models_dir": str(models_dir), "models": rows},
          "\n".join(f"{r['name']:10} {r.get('origin', '')}: {r.get('path', '')}" for r in rows)
          or "No Whisper models found.")
    return EXIT_OK


def cmd_self_test(args) -> int:
    from . import selftest
    live = None if args.json else (lambda c: print(selftest.format_line(c), flush=True))
    checks = selftest.run_checks(_settings(args), on_check=live)
    code = selftest.exit_code(checks)
    if args.json:
        _emit(args, {"ok": code == 0, "summary": selftest.summary(checks),
                     "checks": [c.to_dict() for c in checks]})
    else:
        print(selftest.summary(checks))
    return code


# ---- action tags and motion ----------------------------------------------------------
def _tag_service(args):
    from .tag_service import TagService
    _open_store(args).close()            # a clear error for a bad library path
    return TagService(args.library_path)


def _tag_call(fn, *a, **kw):
    from .tag_service import TagError
    try:
        return fn(*a, **kw)
    except TagError as exc:
        raise CliError(str(exc), EXIT_NOT_FOUND if "not in the library" in str(exc)
                       or "no trained tag" in str(exc) or "no motion group" in str(exc)
                       else EXIT_USAGE)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _train_lines(label: str, r: dict) -> list[str]:
    acc = (f"cross-validated accuracy {_pct(r['cv_accuracy'])} ({r['folds']}-fold)"
           if r["cv_accuracy"] is not None else "too few examples to cross-validate")
    return [f"{label}: {acc}, threshold {r['threshold']:.3f}",
            f"  {r['positives']} example window(s), {r['negatives']} negative(s) "
            f"({r['negatives_from']}); tagged {r['tagged_windows']} of {r['windows']} "
            f"window(s) in {r['ranges']} range(s)"]


def cmd_tags(args) -> int:
    svc = _tag_service(args)
    progress = None if args.json else (lambda f, m: None)
    if args.action == "train":
        if args.folder:
            res = _tag_call(svc.train_folder, args.folder, progress=progress)
            lines = [ln for label, r in res.items() for ln in _train_lines(label, r)]
            _emit(args, {"tags": res}, "\n".join(lines))
            return EXIT_OK
        if not args.label or not args.examples:
            raise CliError("usage: avindex tags train LABEL --examples CLIP [CLIP ...] "
                           "(CLIP: a file, or FILE@START-END in seconds), or --folder DIR")
        res = _tag_call(svc.train, args.label, args.examples, args.negatives or (),
                        sample_negatives=not args.only_given, progress=progress)
        _emit(args, res, "\n".join(_train_lines(res["label"], res)))
        return EXIT_OK
    if args.action == "list":
        rows = svc.list_tags()
        lines = [f"{'label':20} {'source':13} {'ranges':>6} {'accuracy':>9} {'threshold':>9}"]
        lines += [f"{r['label'][:20]:20} {r['source']:13} {r['ranges']:6d} "
                  f"{_pct(r['cv_accuracy']):>9} {r['threshold']:9.3f}" for r in rows]
        _emit(args, {"tags": rows}, "\n".join(lines) if rows else "No trained tags.")
        return EXIT_OK
    if args.action == "delete":
        if not args.label:
            raise CliError("usage: avindex tags delete LABEL")
        n = _tag_call(svc.delete, args.label)
        _emit(args, {"deleted": args.label, "rows": n}, f"Deleted tag {args.label!r}.")
        return EXIT_OK
    if args.action == "groups":
        groups = svc.groups()
        if args.refresh or args.k or not groups or all(g["stale"] for g in groups):
            groups = _tag_call(svc.make_groups, args.k)
        lines = []
        for g in groups:
            name = f" = {g['label']!r}" if g["label"] else ""
            lines.append(f"group {g['id']}{name}: {g['size']} window(s)")
            lines += [f"  {e['path']}  {hhmmss(e['start'])}-{hhmmss(e['end'])}"
                      for e in g["examples"]]
        lines.append("Name one with `avindex tags name GROUP LABEL`.")
        _emit(args, {"groups": groups}, "\n".join(lines))
        return EXIT_OK
    if args.action == "name":
        if not args.label or not args.examples or len(args.examples) != 1 \
                or not args.label.isdigit():
            raise CliError("usage: avindex tags name GROUP LABEL")
        res = _tag_call(svc.name_group, int(args.label), args.examples[0])
        _emit(args, res, f"Group {res['group']} is now the tag {res['label']!r}: "
                         f"{res['windows']} window(s) in {res['ranges']} range(s).")
        return EXIT_OK
    raise CliError(f"unknown tags action {args.action}")


def cmd_motion(args) -> int:
    svc = _tag_service(args)
    if args.action == "status":
        st = svc.encoder_status()
        cur = st["current"]
        text = ("No encoder yet (the shipped default is used at the first video)." if cur is None
                else f"Encoder v{cur['version']} ({cur['kind']}, "
                     f"{'shipped default' if cur['version'] == 0 else 'trained ' + cur['trained_at']})"
                     f"; windows per version: {st['windows']}")
        _emit(args, st, text)
        return EXIT_OK
    show = not args.json and not getattr(args, "quiet", False)

    def progress(f: float, msg: str) -> None:
        if show:
            print(f"\r{100 * f:5.1f}%  {msg[:60]:60}", end="", file=sys.stderr, flush=True)
    report = _tag_call(svc.train_encoder, progress=progress, budget_s=args.budget)
    if show:
        print(file=sys.stderr)
    text = (f"Encoder v{report['version']} learnt from {report['clips']} clip(s) in "
            f"{report['total_seconds']:.1f} s (peak {report['peak_rss_mb']:.0f} MB); "
            f"{report['queued']} video(s) queued for new descriptors")
    report["recomputed"] = None
    if report["queued"] and not args.no_recompute:
        from .progress import ProgressView
        from .runner import LibraryBusy, Runner
        store = _open_store(args)
        view = ProgressView(store, enabled=show)
        try:
            report["recomputed"] = Runner(args.library_path, _settings(args),
                                          on_event=view.on_event).run()
            text += ", recomputed (tags retrained)."
        except LibraryBusy:
            text += "; another avindex process is indexing and will compute them."
        finally:
            view.close()
            store.close()
    else:
        text += "."
    _emit(args, report, text)
    return EXIT_OK


def cmd_speakers(args) -> int:
    from .speaker_commands import cmd_speakers as run
    return run(args)


def cmd_gui(args) -> int:
    from .gui import launch
    return launch(args.library_path, _settings(args))


def _settings(args) -> Settings:
    s = Settings.load(args.library_path)
    if getattr(args, "model", None):
        s.whisper_model = args.model
    if getattr(args, "engine", None):
        s.asr_engine = args.engine
    if getattr(args, "device", None):
        s.device = args.device
    if getattr(args, "speaker_model", None):
        s.speaker_model = args.speaker_model
    return s


# ---- parser -----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--library", metavar="PATH", default=argparse.SUPPRESS,
                        help="library file (default: $AVINDEX_LIBRARY or the user data dir)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output")
    p = argparse.ArgumentParser(prog="avindex", parents=[common],
                                description="Search audio and video by what is said in them.")
    sub = p.add_subparsers(dest="command", required=True)

    engine = argparse.ArgumentParser(add_help=False)
    engine.add_argument("--model", choices=[c for c, _ in WHISPER_MODELS], help="Whisper model")
    engine.add_argument("--engine", choices=[c for c, _ in ASR_ENGINES])
    engine.add_argument("--device", choices=[c for c, _ in DEVICES])
    engine.add_argument("--speaker-model", choices=[c for c, _ in SPEAKER_MODELS],
                        help="who speaks: campplus (finer turns), ge2e (faster), or auto "
                             "(the default: campplus, but ge2e in a library of GE2E voices)")

    cluster = argparse.ArgumentParser(add_help=False)
    cluster.add_argument(
        "--cluster", metavar="ADDRESS",
        help="index on Ray: 'ray' (a Ray on this machine, bound to 127.0.0.1) or "
             "ray://HOST:PORT (a running cluster); 'local' for no cluster "
             "(default: the settings' choice)")
    cluster.add_argument(
        "--workers", type=int, metavar="N",
        help="with --cluster: how many Ray workers (default, and at most: one per CPU of "
             "the cluster)")
    cluster.add_argument(
        "--path-map", metavar="SRC=DST",
        help="with --cluster: the media under SRC here is under DST on the workers")
    cluster.add_argument(
        "--stream", action="store_true",
        help="with --cluster: send the files' bytes through Ray's object store (the "
             "default for ray:// without --path-map)")

    s = sub.add_parser("index", parents=[common, engine, cluster],
                       help="index files and folders")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_index)

    s = sub.add_parser("retry", parents=[common, engine, cluster], help="run failed jobs again")
    s.add_argument("paths", nargs="*", metavar="MEDIA")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_retry)

    s = sub.add_parser("status", parents=[common], help="what is indexed, queued and failed")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("search", parents=[common],
                       help="find moments by what was said, shown or meant, or by an image")
    s.add_argument("query", nargs="?", default="",
                   help='words ("quoted phrase", prefix*, speaker:"Anna" for what she says) '
                        'or a description')
    s.add_argument("--image", metavar="PATH", help="find frames that look like this image")
    s.add_argument("--tag", metavar="T",
                   help="only files carrying this tag; alone, the moments it is seen")
    s.add_argument("--lang", metavar="L", help="only speech in this language (e.g. en)")
    s.add_argument("--in", dest="folder", metavar="FOLDER", help="only files under this folder")
    s.add_argument("--kind", choices=["audio", "video", "audio+video"],
                   help="only this kind of file (video: any file with a picture)")
    s.add_argument("--since", metavar="DATE", help="only files added on or after (YYYY-MM-DD)")
    s.add_argument("--until", metavar="DATE", help="only files added before (YYYY-MM-DD)")
    s.add_argument("--by-mtime", action="store_true",
                   help="--since/--until compare the file's modification time instead")
    s.add_argument("--min-duration", type=float, metavar="S", help="only files at least S s long")
    s.add_argument("--max-duration", type=float, metavar="S", help="only files at most S s long")
    s.add_argument("--speaker", metavar="NAME",
                   help='only moments this voice speaks (its name, or its id from `avindex '
                        'speakers list`); alone, lists them. Also speaker:"Anna" in the query')
    s.add_argument("--person", metavar="NAME",
                   help='only moments this person is on screen (their name, or their id from '
                        '`avindex people list`); alone, lists them. Also person:"Anna" in the '
                        'query')
    s.add_argument("--face", metavar="PHOTO",
                   help="find the moments where a face of this photo is seen (an --image "
                        "with a face also ranks face matches first)")
    s.add_argument("--mode", choices=["hybrid", "text", "semantic"], default="hybrid",
                   help="full text and meaning (default), or one of them")
    s.add_argument("--group", action="store_true", help="group the moments per file")
    s.add_argument("--limit", type=int, default=20)
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("export", parents=[common], help="write subtitles or a transcript")
    s.add_argument("media", help="a media file's path or library id")
    s.add_argument("--format", "-f", choices=["srt", "vtt", "json", "txt"], default="srt")
    s.add_argument("--output", "-o", help="output file ('-' for stdout; default: beside the media)")
    s.add_argument("--source", metavar="SOURCE",
                   help="what to export: 'speech' (speech recognition), 'subtitles' (the "
                        "file's first subtitle track) or a subtitle track by its name, e.g. "
                        "'movie.en.srt' or 'embedded #2 French (subrip)' (default: speech "
                        "when the file has any, else its first subtitle track)")
    s.add_argument("--speaker-names", action="store_true",
                   help='SRT: start each cue with "Name: " (WebVTT always says who speaks, '
                        "as <v Name>; JSON per segment and word; text at each change)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("prune", parents=[common], help="forget files that are gone")
    s.add_argument("--yes", action="store_true", help="remove them (otherwise only list)")
    s.add_argument("--include-unavailable", action="store_true",
                   help="also files under a watched folder that is unavailable (an "
                        "unplugged drive, an unmounted share) or whose folder is gone too")
    s.set_defaults(func=cmd_prune)

    s = sub.add_parser("list", parents=[common], help="every file: duration, language, "
                       "status, stages done, why it failed, since when it is missing")
    which = s.add_mutually_exclusive_group()
    which.add_argument("--failed", action="store_true", help="only files that failed")
    which.add_argument("--missing", action="store_true",
                       help="only files gone from their path (kept until `prune`)")
    which.add_argument("--watching", action="store_true",
                       help="only files under watched folders (with the folders' state)")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("watch", parents=[common, engine],
                       help="watch folders and index what changes in them (foreground; "
                            "Ctrl-C stops)")
    s.add_argument("paths", nargs="*", metavar="FOLDER",
                   help="folders to add to the library's watched folders (remembered)")
    s.add_argument("--poll", action="store_true",
                   help="poll these folders instead of native change events (network shares "
                        "are detected and polled anyway)")
    s.add_argument("--settle", type=float, default=2.0, metavar="SECONDS",
                   help="a file is taken once it has not changed for this long (default 2)")
    s.add_argument("--forget", action="append", metavar="FOLDER",
                   help="stop watching a folder (its files stay in the library)")
    s.add_argument("--list", action="store_true", help="show the watched folders and their state")
    s.set_defaults(func=cmd_watch)

    s = sub.add_parser("models", parents=[common], help="list or import Whisper models")
    s.add_argument("action", nargs="?", choices=["list", "import"], default="list")
    s.add_argument("dir", nargs="?")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("self-test", parents=[common],
                       help="check that every model, decoder and library loads here, offline")
    s.set_defaults(func=cmd_self_test)

    s = sub.add_parser("tags", parents=[common], help="action tags learnt from examples; "
                       "motion groups")
    s.add_argument("action", choices=["train", "list", "delete", "groups", "name"])
    s.add_argument("label", nargs="?", help="the tag (train, delete) or GROUP (name)")
    s.add_argument("examples", nargs="*", default=[], help=argparse.SUPPRESS)
    s.add_argument("--examples", dest="examples", nargs="+", metavar="CLIP",
                   help="example clips: FILE or FILE@START-END (seconds or [h:]mm:ss)")
    s.add_argument("--negatives", nargs="+", metavar="CLIP",
                   help="clips without the action (default: a sample of the library)")
    s.add_argument("--only-given", action="store_true",
                   help="use only the --negatives given (no windows sampled from the library)")
    s.add_argument("--folder", metavar="DIR", help="train one tag per subfolder of DIR")
    s.add_argument("--k", type=int, help="groups: how many (default: from the library size)")
    s.add_argument("--refresh", action="store_true", help="groups: cluster again")
    s.set_defaults(func=cmd_tags)

    s = sub.add_parser("motion", parents=[common],
                       help="learn the library's motion encoder (background job) or show it")
    s.add_argument("action", nargs="?", choices=["train", "status"], default="status")
    s.add_argument("--budget", type=float, default=60.0, metavar="S",
                   help="seconds of learning at most (default 60)")
    s.add_argument("--no-recompute", action="store_true",
                   help="only queue the new descriptors (the next `avindex index` computes them)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_motion)

    s = sub.add_parser("speakers", parents=[common],
                       help="who speaks: list a file's speakers or the library's voices; "
                            "name, merge or split them; where a voice speaks")
    s.add_argument("action", choices=["list", "name", "merge", "split", "where"])
    s.add_argument("refs", nargs="*", metavar="ARG",
                   help='list [FILE] | name VOICE NAME | name FILE SPEAKER NAME | merge VOICE '
                        'VOICE | merge FILE SPEAKER SPEAKER | split FILE SPEAKER | split VOICE '
                        '| where VOICE. VOICE: a voice id (from `speakers list`) or its name; '
                        'SPEAKER: "Speaker 2", 2, or its name in that file')
    s.add_argument("--at", nargs="+", type=float, metavar="SECONDS",
                   help="split FILE SPEAKER: the turns at these seconds become the new "
                        "speaker (default: the turns least like the rest)")
    s.add_argument("--files", nargs="+", metavar="FILE",
                   help="split VOICE: the files whose speaker becomes a new voice (default: "
                        "the group least like the rest)")
    s.set_defaults(func=cmd_speakers)

    from .people_commands import add_parser as add_people_parser
    add_people_parser(sub, common)

    s = sub.add_parser("gui", parents=[common], help="open the desktop app")
    s.set_defaults(func=cmd_gui)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Whoever read our output has gone (`avindex search ... | head`): that is not an
        # error. Point stdout at devnull so the flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _main(argv: list[str] | None) -> int:
    from indexer.store.connection import LibraryError
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    args.json = getattr(args, "json", False)
    args.library_path = library_path(getattr(args, "library", None))
    try:
        return args.func(args)
    except LibraryError as exc:        # a full disk (indexer.store.connection.DiskFull), a broken library
        error = CliError(str(exc), EXIT_LIBRARY)
    except CliError as exc:
        error = exc
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if args.json:
        print(json.dumps({"error": str(error), "exit_code": error.code}))
    else:
        print(f"avindex: {error}", file=sys.stderr)
    return error.code
