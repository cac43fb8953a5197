"""`avindex speakers`: who speaks in each file, and the library's voices.

    avindex speakers list [FILE]                 # a file's speakers, or the library's voices
    avindex speakers name VOICE NAME             # VOICE: a voice id ("3") or its name
    avindex speakers name FILE SPEAKER NAME      # SPEAKER: "Speaker 2", 2, or its name there
    avindex speakers merge VOICE VOICE           # one person: the second voice joins the first
    avindex speakers merge FILE SPEAKER SPEAKER  # one person in one file
    avindex speakers split FILE SPEAKER [--at SECONDS ...]   # a speaker that is two people
    avindex speakers split VOICE [--files FILE ...]          # a voice that is two people
    avindex speakers where VOICE                 # the files that voice speaks in

Naming a speaker names its voice, so every file with that voice follows (and new files
that match it). A name another voice has already means they are one person: the voices
merge. Exit codes as the rest of the CLI: 2 bad usage, 4 a file, speaker or voice that
is not there.
"""
from __future__ import annotations

import re

from indexer.store.speakers import speaker_model_name

from .cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, CliError, _emit, _open_store, \
    _resolve_media, hhmmss

USAGE = {
    "list": "avindex speakers list [FILE]",
    "name": "avindex speakers name VOICE NAME  or  avindex speakers name FILE SPEAKER NAME",
    "merge": "avindex speakers merge VOICE VOICE  or  avindex speakers merge FILE SPEAKER SPEAKER",
    "split": "avindex speakers split FILE SPEAKER [--at SECONDS ...]  or  "
             "avindex speakers split VOICE [--files FILE ...]",
    "where": "avindex speakers where VOICE",
}
_SPEAKER_LABEL = re.compile(r"^\s*speaker\s*#?\s*(\d+)\s*$", re.IGNORECASE)


def cmd_speakers(args) -> int:
    refs = list(args.refs)
    store = _open_store(args)
    try:
        if args.action == "list":
            return _list(args, store, refs)
        if args.action == "name":
            return _name(args, store, refs)
        if args.action == "merge":
            return _merge(args, store, refs)
        if args.action == "split":
            return _split(args, store, refs)
        return _where(args, store, refs)
    except KeyError as exc:            # a speaker or voice gone meanwhile
        raise CliError(str(exc.args[0] if exc.args else exc), EXIT_NOT_FOUND)
    except ValueError as exc:          # a name too long, nothing to split...
        raise CliError(str(exc), EXIT_USAGE)
    finally:
        store.close()


def _usage(action: str) -> CliError:
    return CliError(f"usage: {USAGE[action]}")


# ---- resolving what the user named ------------------------------------------------------
def _voice(store, ref: str) -> dict:
    """A voice by its id ("3", "#3") or its name."""
    from indexer.search import UnknownSpeaker, resolve_voice
    text = ref.strip()
    try:
        return resolve_voice(store, int(text.lstrip("#")) if text.lstrip("#").isdigit() else text)
    except UnknownSpeaker as exc:
        raise CliError(str(exc) + " `avindex speakers list` shows every voice; a file's "
                       "speakers: `avindex speakers list FILE`.", EXIT_NOT_FOUND)
    except ValueError as exc:
        raise CliError(str(exc))


def _media(store, ref: str) -> dict | None:
    """The library file `ref` names (a path), or None when it names none."""
    try:
        return _resolve_media(store, ref) if not ref.strip().lstrip("#").isdigit() else None
    except CliError:
        return None


def _file_speaker(store, media: dict, ref: str) -> dict:
    """A speaker of a file: by its number ("2", "Speaker 2") or its name there."""
    speakers = store.list_speakers(media["id"])
    if not speakers:
        why = ("it is not fully indexed yet" if media["status"] != "done"
               else "no one speaks in it, as far as the speakers stage could tell")
        raise CliError(f"{media['path']} has no speakers ({why}).", EXIT_NOT_FOUND)
    m = _SPEAKER_LABEL.match(ref) or re.match(r"^\s*(\d+)\s*$", ref)
    if m:
        found = next((s for s in speakers if s["label"] == int(m.group(1))), None)
    else:
        wanted = " ".join(ref.split()).casefold()
        found = next((s for s in speakers if s["name"].casefold() == wanted), None)
    if found is None:
        have = ", ".join(s["name"] if s["voice_name"] is None
                         else f"{s['name']} (Speaker {s['label']})" for s in speakers)
        raise CliError(f"{media['path']} has no speaker “{ref}” (its speakers: {have}).",
                       EXIT_NOT_FOUND)
    return found


def _speaker_row(s: dict) -> dict:
    return {k: s[k] for k in ("id", "label", "name", "voice_id", "voice_name", "seconds",
                              "turns", "first_start", "matched")}


def _files(n: int) -> str:
    return f"{n} file{'s' * (n != 1)}"


# ---- list ----------------------------------------------------------------------------
def _list(args, store, refs: list[str]) -> int:
    if len(refs) > 1:
        raise _usage("list")
    if refs:
        media = _resolve_media(store, refs[0])
        speakers = store.list_speakers(media["id"])
        data = {"media_id": media["id"], "path": media["path"],
                "speakers": [_speaker_row(s) for s in speakers]}
        if not speakers:
            why = ("not fully indexed yet" if media["status"] != "done"
                   else "no one speaks in it, as far as the speakers stage could tell")
            _emit(args, data, f"{media['path']}: no speakers ({why}).")
            return EXIT_OK
        width = max(len(s["name"]) for s in speakers)
        lines = [f"{media['path']}: {len(speakers)} speaker{'s' * (len(speakers) != 1)}"]
        for s in speakers:
            lines.append(f"  {s['name']:<{width}}  {s['seconds']:7.1f} s  {s['turns']:3d} "
                         f"turn{'s' * (s['turns'] != 1)}  first at {hhmmss(s['first_start'] or 0)}"
                         f"  voice {s['voice_id']}"
                         + (f" (Speaker {s['label']})" if s["voice_name"] else ""))
        lines.append('Name one with `avindex speakers name FILE "Speaker N" NAME`.')
        _emit(args, data, "\n".join(lines))
        return EXIT_OK
    voices = store.voices()
    rows = []
    for v in voices:
        heard = store.files_of_voice(v["id"])
        rows.append({**v, "heard_as": [{"media_id": f["media_id"], "path": f["path"],
                                        "label": f["label"]} for f in heard[:3]]})
    if not rows:
        _emit(args, {"voices": []}, "No voices yet: speakers are found as files with "
                                    "speech are indexed.")
        return EXIT_OK
    width = max(len(r["name"] or "(unnamed)") for r in rows)
    lines = [f"{len(rows)} voice{'s' * (len(rows) != 1)} in the library:"]
    # a library indexed with both speaker models holds voices of each (never joined)
    models = len({r["encoder"] for r in rows}) > 1
    for r in rows:
        where = ""
        if r["name"] is None and r["heard_as"]:
            first = r["heard_as"][0]
            where = f"  e.g. Speaker {first['label']} of {first['path']}"
        model = f"  [{speaker_model_name(r['encoder'])}]" if models else ""
        lines.append(f"  voice {r['id']:<4} {(r['name'] or '(unnamed)'):<{width}}  "
                     f"{_files(r['files']):>9}  {r['seconds']:8.1f} s{model}{where}")
    lines.append("Name one with `avindex speakers name VOICE NAME`.")
    _emit(args, {"voices": rows}, "\n".join(lines))
    return EXIT_OK


# ---- name ----------------------------------------------------------------------------
def _name(args, store, refs: list[str]) -> int:
    if len(refs) == 3:
        media = _resolve_media(store, refs[0])
        speaker = _file_speaker(store, media, refs[1])
        voice_id, name = speaker["voice_id"], refs[2]
        what = f"{speaker['name']} of {media['path']}"
    elif len(refs) == 2:
        media = _media(store, refs[0])
        if media is not None and store.voice_by_name(refs[0]) is None:
            raise CliError(f"Which speaker of {media['path']}? `avindex speakers name FILE "
                           f"\"Speaker N\" NAME` (its speakers: `avindex speakers list "
                           f"{refs[0]}`).")
        voice = _voice(store, refs[0])
        voice_id, name = voice["id"], refs[1]
        what = f"voice {voice['id']}" + (f" (“{voice['name']}”)" if voice["name"] else "")
    else:
        raise _usage("name")
    kept = store.name_voice(voice_id, name)
    voice = store.voice(kept)
    files = store.files_of_voice(kept)
    data = {"voice_id": kept, "name": voice["name"], "merged_into": kept if kept != voice_id
            else None, "files": [{"media_id": f["media_id"], "path": f["path"]} for f in files]}
    if voice["name"] is None:
        text = f"{what} has no name now: it shows as “Speaker N” in each file."
    elif kept != voice_id:
        text = (f"“{voice['name']}” was the name of voice {kept} already: {what} is that "
                f"person now, heard in {_files(len(files))}.")
    else:
        text = f"{what} is now “{voice['name']}”, in {_files(len(files))}."
    _emit(args, data, text)
    return EXIT_OK


# ---- merge ---------------------------------------------------------------------------
def _merge(args, store, refs: list[str]) -> int:
    if len(refs) == 3:
        media = _resolve_media(store, refs[0])
        keep = _file_speaker(store, media, refs[1])
        other = _file_speaker(store, media, refs[2])
        if keep["id"] == other["id"]:
            raise CliError(f"“{refs[1]}” and “{refs[2]}” are the same speaker of "
                           f"{media['path']}.")
        store.merge_speakers(keep["id"], other["id"])
        merged = store.speaker(keep["id"])
        _emit(args, {"media_id": media["id"], "path": media["path"],
                     "speaker": _speaker_row(merged), "merged": other["id"]},
              f"{other['name']} joined {merged['name']} in {media['path']}: "
              f"{merged['turns']} turns, {merged['seconds']:.1f} s.")
        return EXIT_OK
    if len(refs) != 2:
        raise _usage("merge")
    keep, other = _voice(store, refs[0]), _voice(store, refs[1])
    if keep["id"] == other["id"]:
        raise CliError(f"“{refs[0]}” and “{refs[1]}” are the same voice.")
    kept = store.merge_voices(keep["id"], other["id"])
    voice = store.voice(kept)
    files = store.files_of_voice(kept)
    label = f"voice {kept}" + (f" (“{voice['name']}”)" if voice["name"] else "")
    _emit(args, {"voice_id": kept, "name": voice["name"], "merged": other["id"],
                 "files": [{"media_id": f["media_id"], "path": f["path"]} for f in files]},
          f"Voice {other['id']} joined {label}: heard in {_files(len(files))}.")
    return EXIT_OK


# ---- split ---------------------------------------------------------------------------
def _split(args, store, refs: list[str]) -> int:
    if len(refs) == 2:
        if args.files:
            raise CliError("--files splits a voice: `avindex speakers split VOICE --files "
                           "FILE ...`.")
        media = _resolve_media(store, refs[0])
        speaker = _file_speaker(store, media, refs[1])
        turn_ids = None
        if args.at:
            turns = [t for t in store.speaker_turns(media["id"])
                     if t["speaker_id"] == speaker["id"]]
            turn_ids = []
            for t in args.at:
                turn = next((x for x in turns if x["start"] <= t <= x["end"]), None)
                if turn is None:
                    raise CliError(f"{speaker['name']} does not speak at {hhmmss(t)} "
                                   f"({t:g} s) in {media['path']}.", EXIT_NOT_FOUND)
                turn_ids.append(turn["id"])
        new_id = store.split_speaker(speaker["id"], turn_ids)
        new = store.speaker(new_id)
        _emit(args, {"media_id": media["id"], "path": media["path"],
                     "speaker": _speaker_row(store.speaker(speaker["id"])),
                     "new_speaker": _speaker_row(new)},
              f"{new['turns']} turn{'s' * (new['turns'] != 1)} ({new['seconds']:.1f} s) of "
              f"{speaker['name']} in {media['path']} {'is' if new['turns'] == 1 else 'are'} "
              f"now {new['name']}, a voice of its own (voice {new['voice_id']}).")
        return EXIT_OK
    if len(refs) != 1:
        raise _usage("split")
    if args.at:
        raise CliError("--at picks turns of a file's speaker: `avindex speakers split FILE "
                       "SPEAKER --at SECONDS`.")
    voice = _voice(store, refs[0])
    speaker_ids = None
    if args.files:
        members = {f["media_id"]: f for f in store.files_of_voice(voice["id"])}
        speaker_ids = []
        for ref in args.files:
            media = _resolve_media(store, ref)
            if media["id"] not in members:
                raise CliError(f"Voice {voice['id']} does not speak in {media['path']}.",
                               EXIT_NOT_FOUND)
            speaker_ids.append(members[media["id"]]["speaker_id"])
    new_voice = store.split_voice(voice["id"], speaker_ids)
    moved = store.files_of_voice(new_voice)
    _emit(args, {"voice_id": voice["id"], "new_voice_id": new_voice,
                 "moved": [{"media_id": f["media_id"], "path": f["path"],
                            "speaker_id": f["speaker_id"]} for f in moved]},
          f"{_files(len(moved))} of voice {voice['id']} moved to a new voice {new_voice} "
          "(unnamed):\n" + "\n".join(f"  {f['path']}" for f in moved))
    return EXIT_OK


# ---- where ---------------------------------------------------------------------------
def _where(args, store, refs: list[str]) -> int:
    if len(refs) != 1:
        raise _usage("where")
    voice = _voice(store, refs[0])
    files = store.files_of_voice(voice["id"])
    label = voice["name"] or f"Voice {voice['id']}"
    data = {"voice_id": voice["id"], "name": voice["name"],
            "files": [{"media_id": f["media_id"], "path": f["path"], "speaker_id":
                       f["speaker_id"], "label": f["label"], "seconds": f["seconds"],
                       "turns": f["turns"], "first_start": f["first_start"]} for f in files]}
    if not files:
        _emit(args, data, f"{label} is not heard in any file of the library now.")
        return EXIT_NOT_FOUND
    total = sum(f["seconds"] for f in files)
    lines = [f"{label} speaks in {_files(len(files))}, {total:.1f} s in all:"]
    lines += [f"  {f['path']}  {f['seconds']:.1f} s, {f['turns']} turn"
              f"{'s' * (f['turns'] != 1)}, first at {hhmmss(f['first_start'] or 0)}"
              for f in files]
    _emit(args, data, "\n".join(lines))
    return EXIT_OK
