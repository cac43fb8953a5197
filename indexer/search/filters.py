"""Search filters (media kind, language, tag, folder, added/modified date, duration, who
speaks, who is on screen) and the SQL conditions on the media table they become. They
apply before ranking: inside the FTS query (a join) and inside the vector scan. Tag
filters are per file (a file carrying the tag anywhere). The speaker and person filters
are per file here (a file where the voice speaks, where the person is seen);
indexer.search.speakers and indexer.search.people narrow them to the moments."""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Sequence

from indexer.store import Store
from indexer.store import search_reads as reads


@dataclass
class Filters:
    kind: str | Sequence[str] | None = None     # audio, video (= any file with video), audio+video
    language: str | None = None                 # ISO code as Whisper reports it ("en")
    tag: str | None = None                      # files carrying this tag (case-insensitive)
    folder: str | os.PathLike | None = None     # path prefix
    since: str | float | _dt.date | None = None  # date or epoch seconds, inclusive
    until: str | float | _dt.date | None = None  # exclusive
    date_field: str = "added"                   # "added" (to the library) or "modified" (file)
    min_duration: float | None = None           # seconds
    max_duration: float | None = None
    speaker: str | int | None = None            # a voice: its name, or its id (an int)
    person: str | int | None = None             # a person on screen: their name, or id (int)

    def media_level(self) -> bool:
        return any(v is not None for v in (self.tag, self.folder, self.since, self.until,
                                          self.min_duration, self.max_duration,
                                          self.speaker, self.person))

    def kinds(self) -> list[str] | None:
        if self.kind is None:
            return None
        out: list[str] = []
        for k in ([self.kind] if isinstance(self.kind, str) else self.kind):
            k = k.lower()
            out += ["video", "audio+video"] if k == "video" else [k]
        return sorted(set(out))

    def is_empty(self) -> bool:
        return self.kind is None and self.language is None and not self.media_level()


def _epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, _dt.datetime):
        d = value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
        return d.timestamp()
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day,
                            tzinfo=_dt.timezone.utc).timestamp()
    text = str(value).strip().replace("Z", "+00:00")
    d = _dt.datetime.fromisoformat(text)
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


def _iso(value) -> str:
    d = _dt.datetime.fromtimestamp(_epoch(value), tz=_dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _folder_prefix(folder) -> str:
    p = os.path.abspath(os.path.expanduser(str(folder)))
    return p if p.endswith(os.sep) else p + os.sep


def media_conditions(f: Filters | None, alias: str = "m") -> tuple[list[str], list]:
    """SQL conditions (and their parameters) on the media table for the file-level
    filters and the kind."""
    if f is None:
        return [], []
    conds, params = [], []
    kinds = f.kinds()
    if kinds:
        conds.append(f"{alias}.kind IN ({','.join('?' * len(kinds))})")
        params += kinds
    if f.tag is not None:
        labels = tag_filter_labels(f.tag)
        conds.append(f"{alias}.id IN (SELECT media_id FROM tags WHERE lower(label) IN "
                     f"({','.join('?' * len(labels))}))")
        params += labels
    if f.folder is not None:
        prefix = _folder_prefix(f.folder)
        conds.append(f"substr({alias}.path, 1, ?) = ?")
        params += [len(prefix), prefix]
    if f.date_field not in ("added", "modified"):
        raise ValueError("date_field must be 'added' or 'modified'")
    for value, op in ((f.since, ">="), (f.until, "<")):
        if value is None:
            continue
        if f.date_field == "added":
            conds.append(f"{alias}.added_at {op} ?")
            params.append(_iso(value))
        else:
            conds.append(f"{alias}.mtime_ns {op} ?")
            params.append(int(_epoch(value) * 1e9))
    if f.speaker is not None:
        if not isinstance(f.speaker, int):
            raise TypeError("resolve the speaker filter's name first "
                            "(indexer.search.speakers.resolved)")
        conds.append(f"{alias}.id IN (SELECT media_id FROM speakers WHERE voice_id = ?)")
        params.append(f.speaker)
    if f.person is not None:
        if not isinstance(f.person, int):
            raise TypeError("resolve the person filter's name first "
                            "(indexer.search.people.resolved)")
        conds.append(f"{alias}.id IN (SELECT media_id FROM face_appearances "
                     "WHERE person_id = ?)")
        params.append(f.person)
    if f.min_duration is not None:
        conds.append(f"{alias}.duration >= ?")
        params.append(float(f.min_duration))
    if f.max_duration is not None:
        conds.append(f"{alias}.duration <= ?")
        params.append(float(f.max_duration))
    return conds, params


def allowed_media(store: Store, f: Filters | None) -> list[int] | None:
    """Ids of the files passing the file-level filters, or None when there are none."""
    if f is None or not f.media_level():
        return None
    conds, params = media_conditions(f)
    return reads.media_ids_where(store, conds, params)


def tag_filter_labels(tag: str) -> list[str]:
    """The (lower-case) tag labels a tag filter keeps: the tag itself, and the labels its
    everyday word covers ("dog": every breed; models.vision.tag_words)."""
    from models.vision.tag_words import classes_for
    tag = " ".join(tag.split())
    return list(dict.fromkeys([tag.lower()] + [x.lower() for x in classes_for(tag)]))
