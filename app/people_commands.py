"""`avindex people`: who appears in the library's videos and images.

    avindex people list [FILE] [--hidden]     # the library's people, or who is in one file
    avindex people name PERSON NAME           # PERSON: an id ("3", "#3", "Person 3") or a name
    avindex people name PERSON ""             # remove the name
    avindex people merge PERSON PERSON        # one person: the second joins the first
    avindex people split PERSON [APPEARANCE ...]   # those faces (default: the half least
                                              # like the rest) become a new person
    avindex people hide PERSON [--unhide]     # out of lists and search; new faces still join
    avindex people where PERSON               # the files and times a person is on screen

A name given once holds in every file, and in files indexed later. A name another person
already has means they are one person: they merge. Exit codes as the rest of the CLI:
2 bad usage, 4 a file or person that is not there.
"""
from __future__ import annotations

from .cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, CliError, _emit, _open_store, \
    _resolve_media, hhmmss

USAGE = {
    "list": "avindex people list [FILE] [--hidden]",
    "name": "avindex people name PERSON NAME",
    "merge": "avindex people merge PERSON PERSON",
    "split": "avindex people split PERSON [APPEARANCE_ID ...]",
    "hide": "avindex people hide PERSON [--unhide]",
    "where": "avindex people where PERSON",
}
ACTIONS = tuple(USAGE)


def add_parser(sub, common) -> None:
    """The `people` subcommand (registered by app.cli.build_parser)."""
    s = sub.add_parser("people", parents=[common],
                       help="who appears: list the library's people or a file's; name, "
                            "merge, split or hide them; where a person is on screen")
    s.add_argument("action", choices=ACTIONS)
    s.add_argument("refs", nargs="*", metavar="ARG",
                   help="list [FILE] | name PERSON NAME | merge PERSON PERSON | split PERSON "
                        "[APPEARANCE_ID ...] | hide PERSON | where PERSON. PERSON: an id "
                        "from `people list` (3, #3, \"Person 3\") or a name")
    s.add_argument("--hidden", action="store_true",
                   help="list: include hidden people")
    s.add_argument("--unhide", action="store_true",
                   help="hide: show a hidden person again")
    s.set_defaults(func=cmd_people)


def cmd_people(args) -> int:
    refs = list(args.refs)
    store = _open_store(args)
    try:
        return {"list": _list, "name": _name, "merge": _merge, "split": _split,
                "hide": _hide, "where": _where}[args.action](args, store, refs)
    except ValueError as exc:          # a name too long, a face not of that person...
        raise CliError(str(exc), EXIT_USAGE)
    finally:
        store.close()


def _usage(action: str) -> CliError:
    return CliError(f"usage: {USAGE[action]}")


def _person(store, ref: str) -> dict:
    """A person by id ("3", "#3", "Person 3") or name."""
    from indexer.search.people import UnknownPerson, resolve_person
    text = ref.strip()
    try:
        return resolve_person(store, int(text) if text.isdigit() else text)
    except UnknownPerson as exc:
        raise CliError(f"{exc} `avindex people list --hidden` shows everyone.", EXIT_NOT_FOUND)


def _label(p: dict) -> str:
    from indexer.search.people import person_label
    return person_label(p)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def _person_row(p: dict) -> dict:
    return {"id": p["id"], "name": p["name"], "label": _label(p), "hidden": bool(p["hidden"]),
            "appearances": p["appearances"], "files": p["files"],
            "seconds": round(float(p["seconds"]), 2), "thumbnail": p["thumbnail"]}


# ---- list ----------------------------------------------------------------------------------
def _list(args, store, refs: list[str]) -> int:
    if len(refs) > 1:
        raise _usage("list")
    if refs:
        return _list_file(args, store, _resolve_media(store, refs[0]))
    people = store.list_people(include_hidden=args.hidden)
    rows = [_person_row(p) for p in people]
    if not rows:
        _emit(args, {"people": []}, "No people yet: faces are found as videos and images "
                                    "are indexed.")
        return EXIT_OK
    width = max(len(r["label"]) for r in rows)
    lines = [f"{len(rows)} {'person' if len(rows) == 1 else 'people'} in the library:"]
    for r in rows:
        lines.append(f"  {r['id']:<5} {r['label']:<{width}}  "
                     f"{_count(r['appearances'], 'appearance'):>15}  "
                     f"{_count(r['files'], 'file'):>9}  {r['seconds']:8.1f} s on screen"
                     + ("  (hidden)" if r["hidden"] else ""))
    lines.append("Name one with `avindex people name ID NAME`.")
    _emit(args, {"people": rows}, "\n".join(lines))
    return EXIT_OK


def _list_file(args, store, media: dict) -> int:
    rows = store.face_appearances(media["id"], include_hidden=args.hidden)
    people: dict[int, dict] = {}
    for a in rows:
        if a["person_id"] is None:
            continue
        p = people.setdefault(a["person_id"], {
            "id": a["person_id"], "name": a["name"], "hidden": bool(a["hidden"]),
            "appearances": 0, "seconds": 0.0, "first_start": a["start"], "spans": []})
        p["appearances"] += 1
        p["seconds"] += float(a["end"] - a["start"])
        p["spans"].append({"appearance_id": a["id"], "start": a["start"], "end": a["end"]})
    found = sorted(people.values(), key=lambda p: (-p["seconds"], p["id"]))
    for p in found:
        p["label"] = _label(p)
        p["seconds"] = round(p["seconds"], 2)
    data = {"media_id": media["id"], "path": media["path"], "people": found}
    if not found:
        why = ("not fully indexed yet" if media["status"] != "done"
               else "no face was found in it")
        _emit(args, data, f"{media['path']}: no people ({why}).")
        return EXIT_OK
    width = max(len(p["label"]) for p in found)
    lines = [f"{media['path']}: {len(found)} {'person' if len(found) == 1 else 'people'}"]
    for p in found:
        lines.append(f"  {p['id']:<5} {p['label']:<{width}}  {p['seconds']:7.1f} s  "
                     f"{_count(p['appearances'], 'appearance')}, first at "
                     f"{hhmmss(p['first_start'])}" + ("  (hidden)" if p["hidden"] else ""))
    _emit(args, data, "\n".join(lines))
    return EXIT_OK


# ---- name, merge, split, hide ----------------------------------------------------------------
def _name(args, store, refs: list[str]) -> int:
    if len(refs) != 2:
        raise _usage("name")
    person = _person(store, refs[0])
    kept = store.name_person(person["id"], refs[1])
    now = store.person(kept)
    was = _label(person)
    data = {"person_id": kept, "name": now["name"] if now else None,
            "merged_into": kept if kept != person["id"] else None,
            "person": _person_row(now) if now else None}
    if now is None:                   # unnamed and seen nowhere any more
        text = f"{was} has no name now."
    elif now["name"] is None:
        text = f"{was} has no name now: shown as “{_label(now)}”."
    elif kept != person["id"]:
        text = (f"“{now['name']}” was the name of person {kept} already: {was} is that "
                f"person now, seen in {_count(now['files'], 'file')}.")
    else:
        text = f"{was} is now “{now['name']}”, in {_count(now['files'], 'file')}."
    _emit(args, data, text)
    return EXIT_OK


def _merge(args, store, refs: list[str]) -> int:
    if len(refs) != 2:
        raise _usage("merge")
    keep, other = _person(store, refs[0]), _person(store, refs[1])
    if keep["id"] == other["id"]:
        raise CliError(f"“{refs[0]}” and “{refs[1]}” are the same person.")
    kept = store.merge_people(keep["id"], [other["id"]])
    now = store.person(kept)
    _emit(args, {"person_id": kept, "merged": other["id"], "person": _person_row(now)},
          f"{_label(other)} joined {_label(now)}: {_count(now['appearances'], 'appearance')} "
          f"in {_count(now['files'], 'file')}.")
    return EXIT_OK


def _split(args, store, refs: list[str]) -> int:
    if not refs:
        raise _usage("split")
    person = _person(store, refs[0])
    ids = None
    if len(refs) > 1:
        try:
            ids = [int(r.strip().lstrip("#")) for r in refs[1:]]
        except ValueError:
            raise CliError("split takes appearance ids (numbers, from `avindex people where "
                           f"{refs[0]} --json`), not “{' '.join(refs[1:])}”.")
        theirs = {a["id"] for a in store.appearances_of(person["id"])}
        strangers = sorted(set(ids) - theirs)
        if strangers:
            raise CliError(f"{_label(person)} has no appearance {', '.join(map(str, strangers))} "
                           f"(theirs: `avindex people where {refs[0]}`).", EXIT_NOT_FOUND)
    new_id = store.split_person(person["id"], ids)
    new, old = store.person(new_id), store.person(person["id"])
    _emit(args, {"person_id": person["id"], "new_person_id": new_id,
                 "person": _person_row(old) if old else None, "new_person": _person_row(new),
                 "moved": [a["id"] for a in store.appearances_of(new_id)]},
          f"{_count(new['appearances'], 'appearance')} of {_label(person)} "
          f"{'is' if new['appearances'] == 1 else 'are'} now {_label(new)}, a person of "
          f"their own (in {_count(new['files'], 'file')}).")
    return EXIT_OK


def _hide(args, store, refs: list[str]) -> int:
    if len(refs) != 1:
        raise _usage("hide")
    person = _person(store, refs[0])
    store.hide_person(person["id"], not args.unhide)
    now = store.person(person["id"])
    data = {"person_id": person["id"], "hidden": not args.unhide,
            "person": _person_row(now) if now else None}
    if args.unhide:
        text = f"{_label(person)} shows in lists and search again."
    else:
        text = (f"{_label(person)} is hidden from lists and search; their new faces still "
                f"join them (`avindex people hide {person['id']} --unhide` shows them again).")
    _emit(args, data, text)
    return EXIT_OK


# ---- where -----------------------------------------------------------------------------------
def _where(args, store, refs: list[str]) -> int:
    if len(refs) != 1:
        raise _usage("where")
    person = _person(store, refs[0])
    files: dict[int, dict] = {}
    for a in store.appearances_of(person["id"]):
        f = files.setdefault(a["media_id"], {"media_id": a["media_id"], "path": a["path"],
                                             "seconds": 0.0, "spans": []})
        f["seconds"] += float(a["end"] - a["start"])
        f["spans"].append({"appearance_id": a["id"], "start": a["start"], "end": a["end"],
                           "time": a["time"]})
    out = sorted(files.values(), key=lambda f: f["path"])
    for f in out:
        f["seconds"] = round(f["seconds"], 2)
    label = _label(person)
    data = {"person_id": person["id"], "name": person["name"], "label": label,
            "hidden": bool(person["hidden"]), "files": out}
    if not out:
        _emit(args, data, f"{label} is not on screen in any file of the library now.")
        return EXIT_NOT_FOUND
    total = sum(f["seconds"] for f in out)
    lines = [f"{label} is on screen in {_count(len(out), 'file')}, {total:.1f} s in all:"]
    for f in out:
        lines.append(f"  {f['path']}  {f['seconds']:.1f} s")
        lines += [f"    {hhmmss(s['start'])} – {hhmmss(s['end'])}  "
                  f"(appearance {s['appearance_id']})" for s in f["spans"]]
    _emit(args, data, "\n".join(lines))
    return EXIT_OK
