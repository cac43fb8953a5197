"""Who is on screen, in search: the person filter, search by a photo of a face, "more of
this person" from a moment, and the people on screen at each hit.

A person filter (`Filters.person`, or `person:"Anna"` in the query text) names a person
of the library (indexer/store/faces.py) by name or id; `resolve_person` turns it into
the person (UnknownPerson, listing the named people, when none has it). `PersonSpans`
keeps the moments that overlap one of the person's appearances and plays each from a
second the person is on screen; with no other words, `person_moments` lists the
appearances themselves. `face_matches` finds the faces of a query photo in the library:
when a photo holds a face, its matches come before whole-image similarity.
`more_of_this_person` lists the other appearances of who is on screen in a moment;
`attach_people` names the people on screen at each hit.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterable

import numpy as np

from indexer.search.filters import Filters, media_conditions
from indexer.search.query_text import make_snippet
from indexer.search.spans import TimeSpans
from indexer.search.types import Hit, Item
from indexer.store import Store
from indexer.store import search_reads as reads
from indexer.store.schema_faces import FACE_DIM

FACE_MATCH_DISTANCE = 0.6     # dlib's threshold for two faces of one person (face_clustering)
FACE_CANDIDATES = 200         # appearances asked of the face index per face of the photo
# The "face" list's weight in fusion, against 1 for whole-image similarity: with
# rrf_k = 60, a face match ranked 150th still outscores the most similar frame alone.
FACE_WEIGHT = 4.0
SNIPPET_TOKENS = 36


class UnknownPerson(LookupError):
    """A person filter that names no person of the library (the message lists them)."""


def person_label(person: dict) -> str:
    """A person's name, else "Person N" (N: their id), as lists and timelines show them."""
    return person.get("name") or f"Person {person['id']}"


def resolve_person(store: Store, spec: str | int) -> dict:
    """The person (id, name, ...) a person filter names: their id (an int, "#12" or
    "Person 12") or their name (case and spacing do not matter)."""
    if isinstance(spec, str):
        text = " ".join(spec.split())
        low = text.casefold()
        digits = text[1:] if text.startswith("#") else (
            text[len("person "):] if low.startswith("person ") else None)
        if digits is not None and digits.strip().isdigit() and store.person_by_name(text) is None:
            spec = int(digits)
    if isinstance(spec, int):
        person = store.person(spec)
        if person is None:
            raise UnknownPerson(f"There is no person #{spec} in the library (merged into "
                                "another since, or their files removed?).")
        return person
    name = " ".join(str(spec).split())
    if not name:
        raise ValueError('A person filter needs a name: person:"Anna".')
    person = store.person_by_name(name)
    if person is None:
        named = [p["name"] for p in store.list_people(named_only=True)]
        known = (f"(named people: {', '.join(f'“{n}”' for n in named)})." if named else
                 "(no one has a name yet: name a person in the People view, or with "
                 "`avindex people name ID NAME`).")
        raise UnknownPerson(f"No person in the library is named “{name}” {known}")
    return person


def resolved(store: Store, f: Filters | None) -> Filters | None:
    """The filters with a person given by name replaced by their id."""
    person = getattr(f, "person", None)
    if f is None or person is None or isinstance(person, int):
        return f
    return dataclasses.replace(f, person=resolve_person(store, person)["id"])


def with_query_person(store: Store, f: Filters | None, seen: str | int | None
                      ) -> Filters | None:
    """The filters, resolved, with the person named in the query text (person:"Anna")
    added; the query and the filter cannot ask for two different people."""
    f = resolved(store, f)
    if seen is None:
        return f
    person = resolve_person(store, seen)
    if f is not None and getattr(f, "person", None) not in (None, person["id"]):
        raise ValueError(f"The query asks for person:{seen} and the person filter for "
                         "someone else: give one person.")
    return dataclasses.replace(f or Filters(), person=person["id"])


class PersonSpans(TimeSpans):
    """One person's appearances, per file."""

    def __init__(self, store: Store, person_id: int, media_ids: Iterable[int] | None = None):
        self.person_id = person_id
        wanted = None if media_ids is None else set(media_ids)
        super().__init__((a["media_id"], a["start"], a["end"])
                         for a in store.appearances_of(person_id)
                         if wanted is None or a["media_id"] in wanted)


def _allowed(store: Store, f: Filters | None) -> set[int] | None:
    """Ids of the files the filters allow (None: every file)."""
    if f is None or f.is_empty():
        return None
    conds, params = media_conditions(f)
    if f.language is not None:
        conds.append("m.language = ?")
        params.append(f.language)
    return set(reads.media_ids_where(store, conds, params))


def _appearance_hit(store: Store, a: dict, label: str, rank: int, kind: str,
                    score: float, paths: dict) -> Hit | None:
    media_id = a["media_id"]
    if media_id not in paths:
        return None
    start, end = float(a["start"]), float(a["end"])
    text, seg, source, track = reads.said_during(store, media_id, start, end)
    # what is said while the person is seen, else who is seen and how long
    snippet = (make_snippet(text, "", tokens=SNIPPET_TOKENS) if text else
               f"{label or 'A face'} on screen for {end - start:.1f} s")
    seek = min(max(float(a.get("time", start)), start), end)
    thumb = reads.nearest_thumbnail(store, media_id, seek) or a.get("thumbnail")
    hit = Hit(media_id, paths[media_id][0], start, end, kind, snippet, score, [kind], thumb,
              seg, None, None, {kind: rank}, seek, source, track)
    hit.people = [label] if label else []
    return hit


def person_moments(store: Store, person_id: int, f: Filters | None, limit: int, *,
                   exclude: Iterable[int] = ()) -> list[Hit]:
    """A person's appearances as moments, for a person filter with no other words: the
    first appearance in each file, then the second of each, and so on (files where the
    person is seen longest first), so a short list still shows every file."""
    person = store.person(person_id)
    if person is None:
        return []
    allowed = _allowed(store, f)
    skip = set(exclude)
    by_file: dict[int, list[dict]] = {}
    for a in store.appearances_of(person_id):
        if a["id"] not in skip and (allowed is None or a["media_id"] in allowed):
            by_file.setdefault(a["media_id"], []).append(a)
    files = sorted(by_file, key=lambda m: (-sum(a["end"] - a["start"] for a in by_file[m]), m))
    order = sorted(((i, fi, a) for fi, m in enumerate(files)
                    for i, a in enumerate(sorted(by_file[m], key=lambda a: a["start"]))),
                   key=lambda r: (r[0], r[1]))[:max(0, int(limit))]
    paths = reads.media_paths_durations(store, [a["media_id"] for _, _, a in order])
    label = person_label(person)
    hits = []
    for rank, (_, _, a) in enumerate(order, 1):
        hit = _appearance_hit(store, a, label, rank, "face", 1.0 / rank, paths)
        if hit is not None:
            hits.append(hit)
    return hits


# ---- "people", "person": anyone on screen ------------------------------------------------------
PERSON_LABEL = "person"     # the tag the visual stage gives people it sees (models.vision.people)


def anyone_on_screen(store: Store, groups: tuple, f: Filters | None, n: int) -> list[Item]:
    """For a query word that means a person ("people", "person": its alternatives hold
    the person tag, query_text.content_groups), the faces on screen as tag items holding
    that word, largest and longest first: the people detector looks for whole bodies, a
    close-up is a face. An item may start a moment alone when that word is the query's
    only one, else only with the rest of the query's words there (Item.tentative)."""
    which = [i for i, alts in enumerate(groups) if (PERSON_LABEL, False) in alts
             or alts[0][0] == PERSON_LABEL]
    if not which or not reads.has_rows(store, "face_appearances"):
        return []
    allowed = _allowed(store, f)
    alone = len(groups) == 1
    out = []
    for media_id, start, end in reads.largest_faces(store, n * 4 if allowed else n):
        if allowed is not None and media_id not in allowed:
            continue
        out.append(Item("tag", "tag", media_id, float(start), float(end), relaxed=True,
                        text="a person on screen", covers=frozenset(which), creates=alone,
                        tentative=not alone))
        if len(out) >= n:
            break
    return out


# ---- search by a photo of a face ------------------------------------------------------------
def photo_faces(image, face_models) -> np.ndarray:
    """Descriptors of the faces in a query photo (a path or a BGR array), largest first;
    empty when it holds none. ValueError for a file that is not a picture."""
    from models.faces import read_photo
    if isinstance(image, (str, os.PathLike)):
        picture = read_photo(image)
    else:
        picture = np.asarray(image)
        if picture.ndim != 3 or picture.shape[2] != 3:
            return np.zeros((0, FACE_DIM), np.float32)     # a feature vector, not a picture
    faces, vecs = face_models.faces_in_photo(picture)
    return np.asarray(vecs, np.float32).reshape(len(faces), FACE_DIM)


def face_matches(store: Store, descriptors, f: Filters | None = None, *, limit: int = 20,
                 max_distance: float = FACE_MATCH_DISTANCE) -> list[dict]:
    """Appearances of the faces in a photo, nearest first: each face's matches under
    `max_distance`, the faces of the photo taken in turn (its largest face first); one
    row per appearance, with its distance and which face of the photo it matched."""
    allowed = _allowed(store, f)
    person = getattr(f, "person", None) if f is not None else None
    per_face = []
    for i, vec in enumerate(np.asarray(descriptors, np.float32).reshape(-1, FACE_DIM)):
        rows = store.nearest_faces(vec, FACE_CANDIDATES, max_distance=max_distance)
        per_face.append([dict(r, face=i) for r in rows
                         if (allowed is None or r["media_id"] in allowed)
                         and (person is None or r["person_id"] == person)])
    seen: set[int] = set()
    out: list[dict] = []
    for depth in range(max((len(rows) for rows in per_face), default=0)):
        layer = sorted((rows[depth] for rows in per_face if depth < len(rows)),
                       key=lambda r: r["distance"])
        for r in layer:
            if r["appearance_id"] not in seen:
                seen.add(r["appearance_id"])
                out.append(r)
    return out[:max(0, int(limit))]


def face_items(matches: list[dict]) -> list[Item]:
    """Face matches as a ranked list ("face") for fusion with the other lists."""
    return [Item("face", "face", m["media_id"], float(m["start"]), float(m["end"]), rank=r,
                 similarity=1.0 - float(m["distance"]),
                 text=person_label({"id": m["person_id"], "name": m["name"]})
                 if m["person_id"] is not None else "a face")
            for r, m in enumerate(matches, 1)]


def face_hits(store: Store, matches: list[dict]) -> list[Hit]:
    """Face matches as moments, nearest first (a search by a photo with nothing else)."""
    paths = reads.media_paths_durations(store, [m["media_id"] for m in matches])
    hits = []
    for rank, m in enumerate(matches, 1):
        a = {"media_id": m["media_id"], "start": m["start"], "end": m["end"],
             "time": m["time"], "thumbnail": m["thumbnail"]}
        label = person_label({"id": m["person_id"], "name": m["name"]}) \
            if m["person_id"] is not None else ""
        hit = _appearance_hit(store, a, label, rank, "face", 1.0 - float(m["distance"]),
                              paths)
        if hit is not None:
            hit.similarity = 1.0 - float(m["distance"])
            hits.append(hit)
    return hits


def search_by_face(store: Store, image, face_models, f: Filters | None = None, *,
                   limit: int = 20) -> list[Hit] | None:
    """Moments where a face of the photo is seen, nearest first; None when the photo
    holds no face (then whole-image similarity is what is left)."""
    vecs = photo_faces(image, face_models)
    if not len(vecs):
        return None
    return face_hits(store, face_matches(store, vecs, resolved(store, f), limit=limit))


# ---- more of this person ---------------------------------------------------------------------
def people_in(store: Store, media_id: int, start: float, end: float | None = None,
              seek: float | None = None) -> list[dict]:
    """Who is on screen in a moment: at its second to play, else anywhere in it, most
    prominent first (one row per person)."""
    t = start if seek is None else seek
    rows = store.people_at(media_id, t)
    if not rows and end is not None and end > start:
        rows = [dict(a, id=a["person_id"], appearance_id=a["id"])
                for a in store.face_appearances(media_id)
                if a["person_id"] is not None and a["start"] < end and a["end"] > start]
        rows.sort(key=lambda a: -(a["w"] * a["h"]))
    out, seen = [], set()
    for r in rows:
        if r["id"] not in seen:
            seen.add(r["id"])
            out.append(r)
    return out


def more_of_this_person(store: Store, hit: Hit, limit: int = 20, *,
                        person_id: int | None = None, filters: Filters | None = None
                        ) -> list[Hit]:
    """The other appearances of the person on screen in `hit` (the most prominent one,
    or `person_id`), as moments; the moment's own appearance is left out. LookupError,
    with a message for a person, when no one is on screen there."""
    here = people_in(store, hit.media_id, hit.start, hit.end, hit.seek)
    if person_id is None:
        if not here:
            raise LookupError("No one is on screen in this moment (no face was found there).")
        person_id = here[0]["id"]
    own = [r["appearance_id"] for r in here if r["id"] == person_id]
    return person_moments(store, person_id, resolved(store, filters), limit, exclude=own)


# ---- who is on screen at each hit --------------------------------------------------------
def attach_people(store: Store, hits: list[Hit]) -> None:
    """Give each hit the names of the people on screen at its second to play (else
    anywhere in the moment), most prominent first: `hit.people`."""
    if not hits or not reads.has_rows(store, "face_appearances"):
        return                     # no face in the library (yet): nothing to read per file
    by_media: dict[int, list[dict]] = {}
    for h in hits:
        if h.media_id not in by_media:
            by_media[h.media_id] = [a for a in store.face_appearances(h.media_id)
                                    if a["person_id"] is not None]
        rows = by_media[h.media_id]
        at = [a for a in rows if a["start"] <= h.seek < a["end"]] or \
            [a for a in rows if a["start"] < max(h.end, h.start + 0.1) and a["end"] > h.start]
        at.sort(key=lambda a: -(a["w"] * a["h"]))
        names: list[str] = []
        for a in at:
            label = person_label({"id": a["person_id"], "name": a["name"]})
            if label not in names:
                names.append(label)
        h.people = names
