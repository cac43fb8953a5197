"""`avindex list`: one row per file (path, duration, language, status, stages done, why
it failed, since when it is missing), as an aligned table or as plain dicts."""
from __future__ import annotations

from indexer.intake import containing_folder
from indexer.stages import STAGE_TYPES

STATUS_WORDS = {"done": "indexed", "queued": "queued", "indexing": "indexing",
                "failed": "failed", "cancelled": "cancelled"}
_STAGE_ORDER = {t.name: i for i, t in enumerate(STAGE_TYPES)}


def file_rows(store, *, failed: bool = False, missing: bool = False,
              watching: bool = False) -> tuple[list[dict], list[dict]]:
    """(rows, watched folders). Each row: id, path, duration, language, kind, status,
    stages_done (in the pipeline's order), failed_stage, error, notes (what done jobs
    want a person to know, e.g. a malformed subtitle track skipped), missing_since,
    watched_folder, folder_state."""
    folders = store.watched_folders()
    states = {f["path"]: f["state"] for f in folders}
    rows = []
    for r in store.file_list():
        if failed and r["status"] != "failed":
            continue
        if missing and not r["missing_since"]:
            continue
        root = containing_folder(r["path"], states)
        if watching and root is None:
            continue
        stages = sorted((r["stages_done"] or "").split(",") if r["stages_done"] else [],
                        key=lambda s: (_STAGE_ORDER.get(s, len(_STAGE_ORDER)), s))
        rows.append({"id": r["id"], "path": r["path"], "duration": r["duration"],
                     "language": r["language"], "kind": r["kind"], "status": r["status"],
                     "stages_done": stages, "failed_stage": r["failed_stage"],
                     "error": r["error"] if r["status"] == "failed" else None,
                     "notes": (r["notes"] or "").splitlines(),
                     "missing_since": r["missing_since"], "watched_folder": root,
                     "folder_state": states.get(root)})
    return rows, folders


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _status(row: dict) -> str:
    if row["missing_since"]:
        return "missing"
    return STATUS_WORDS.get(row["status"], row["status"])


def _table(rows: list[dict]) -> list[str]:
    header = ("STATUS", "DURATION", "LANG", "STAGES DONE", "PATH")
    cells = [(_status(r), _duration(r["duration"]), r["language"] or "-",
              ",".join(r["stages_done"]) or "-", r["path"]) for r in rows]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header) - 1)]
    lines = []
    for i, c in enumerate([header, *cells]):
        line = "  ".join(c[j].ljust(widths[j]) if j < len(widths) else c[j]
                         for j in range(len(c)))
        lines.append(line.rstrip())
        if i == 0:
            continue
        row = rows[i - 1]
        indent = " " * (widths[0] + 2)
        if row["status"] == "failed" and row["error"]:
            where = f" at {row['failed_stage']}" if row["failed_stage"] else ""
            lines.append(f"{indent}failed{where}: {row['error']}")
        for note in row["notes"]:
            lines.append(f"{indent}note: {note}")
        if row["missing_since"]:
            was = STATUS_WORDS.get(row["status"], row["status"])
            lines.append(f"{indent}missing since {_when(row['missing_since'])} "
                         f"(was {was}); `avindex prune` forgets it")
    return lines


def _when(stamp: str) -> str:
    return stamp.replace("T", " ")[:19] + " UTC"


def folder_lines(folders: list[dict]) -> list[str]:
    lines = []
    for f in folders:
        mode = "polling" if f["polling"] else "native events"
        state = "ok" if f["state"] == "ok" else "UNAVAILABLE (its files are kept)"
        lines.append(f"  {f['path']}  [{mode}; {state}]")
    return lines


def render(rows: list[dict], folders: list[dict], *, failed: bool, missing: bool,
           watching: bool, library_empty: bool) -> str:
    lines = []
    if watching:
        if not folders:
            return "No folders are watched. `avindex watch FOLDER` adds one."
        lines += ["Watched folders:", *folder_lines(folders), ""]
    if not rows:
        if library_empty:
            lines.append("The library is empty. Add files with `avindex index PATH` or "
                         "watch a folder with `avindex watch FOLDER`.")
        elif failed:
            lines.append("No file failed.")
        elif missing:
            lines.append("No file is missing.")
        else:
            lines.append("No files under the watched folders yet.")
        return "\n".join(lines)
    lines += _table(rows)
    seconds = sum(r["duration"] or 0 for r in rows)
    lines.append(f"{len(rows)} file(s), {_duration(seconds)} in all")
    return "\n".join(lines)
