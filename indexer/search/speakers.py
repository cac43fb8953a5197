"""Who speaks, in search: the speaker filter, the moments a voice speaks, and who said
each hit.

A speaker filter (`Filters.speaker`, or `speaker:"Anna"` in the query text) names a
voice of the library (indexer/store/speakers.py) by its name or its id. `resolved`
turns the name into the id (UnknownSpeaker, listing the named voices, when none has
it); the file-level condition keeps the files where the voice speaks, and `VoiceTurns`
keeps the moments that overlap one of its turns and moves a moment's second to play
into the voice's own speech. With no other words, `voice_moments` lists the voice's
turns themselves. `attach_speakers` gives each hit of said text its speaker's name.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

from indexer.search.filters import Filters, media_conditions
from indexer.search.query_text import make_snippet
from indexer.search.spans import TimeSpans
from indexer.search.types import Hit
from indexer.store import Store
from indexer.store import search_reads as reads

TURN_SNIPPET_TOKENS = 36


class UnknownSpeaker(LookupError):
    """A speaker filter that names no voice of the library (the message lists them)."""


def resolve_voice(store: Store, spec: str | int) -> dict:
    """The voice (id, name) a speaker filter names: its id (an int, or "#12"), or its
    name (case and spacing do not matter)."""
    if isinstance(spec, str) and spec.strip().startswith("#") and spec.strip()[1:].isdigit():
        spec = int(spec.strip()[1:])
    if isinstance(spec, int):
        voice = store.voice(spec)
        if voice is None:
            raise UnknownSpeaker(f"There is no voice #{spec} in the library (it may have "
                                 "been merged into another, or its files removed).")
        return voice
    name = " ".join(str(spec).split())
    if not name:
        raise ValueError('A speaker filter needs a name: speaker:"Anna".')
    voice = store.voice_by_name(name)
    if voice is None:
        named = [v["name"] for v in store.voices() if v["name"]]
        known = (f"(named voices: {', '.join(f'“{n}”' for n in named)})." if named else
                 "(no voice has a name yet: name a speaker in a transcript, or with "
                 "`avindex speakers name`).")
        raise UnknownSpeaker(f"No voice in the library is named “{name}” {known}")
    return voice


def resolved(store: Store, f: Filters | None) -> Filters | None:
    """The filters with the speaker given by name replaced by its voice id."""
    if f is None or f.speaker is None or isinstance(f.speaker, int):
        return f
    return dataclasses.replace(f, speaker=resolve_voice(store, f.speaker)["id"])


def with_query_speaker(store: Store, f: Filters | None, spoken: str | int | None
                       ) -> Filters | None:
    """The filters, resolved, with the speaker named in the query text (speaker:"Anna")
    added; the query and the filter cannot ask for two different voices."""
    f = resolved(store, f)
    if spoken is None:
        return f
    voice = resolve_voice(store, spoken)
    if f is not None and f.speaker is not None and f.speaker != voice["id"]:
        raise ValueError(f"The query asks for speaker:{spoken} and the speaker filter for "
                         "another voice: give one speaker.")
    return dataclasses.replace(f or Filters(), speaker=voice["id"])


class VoiceTurns(TimeSpans):
    """One voice's turns, per file."""

    def __init__(self, store: Store, voice_id: int, media_ids: Iterable[int] | None = None):
        self.voice_id = voice_id
        super().__init__((t["media_id"], t["start"], t["end"])
                         for t in store.turns_of_voice(voice_id, media_ids))


def voice_filter_condition(f: Filters | None) -> tuple[list[str], list]:
    """The row-level SQL condition of a resolved speaker filter on a content row (alias
    t), for the full-text lists; none without one."""
    if f is None or not isinstance(f.speaker, int):
        return [], []
    cond, params = reads.voice_speaks_condition(f.speaker)
    return [cond], params


def voice_moments(store: Store, voice_id: int, f: Filters | None, limit: int) -> list[Hit]:
    """The voice's turns as moments, for a speaker filter with no other words: the first
    turn of each file, then the second of each, and so on (files with the most speech
    by the voice first), so a short list still shows every file it speaks in."""
    conds, params = media_conditions(f)
    if f is not None and f.language is not None:
        conds.append("m.language = ?")
        params.append(f.language)
    allowed = set(reads.media_ids_where(store, conds, params))
    files = [x for x in store.files_of_voice(voice_id) if x["media_id"] in allowed]
    if not files:
        return []
    files.sort(key=lambda x: -x["seconds"])
    turns = VoiceTurns(store, voice_id, [x["media_id"] for x in files])
    by_file = [(x["media_id"], turns.spans(x["media_id"])) for x in files]
    order = sorted(((i, fi, mid, span) for fi, (mid, spans) in enumerate(by_file)
                    for i, span in enumerate(spans)), key=lambda r: (r[0], r[1]))[:limit]
    paths = reads.media_paths_durations(store, [mid for _, _, mid, _ in order])
    names = {x["media_id"]: x for x in files}
    hits = []
    for rank, (_, _, mid, (start, end)) in enumerate(order, 1):
        if mid not in paths:
            continue
        text, seg, source, track = reads.said_during(store, mid, start, end)
        hits.append(Hit(mid, paths[mid][0], start, end, "said",
                        make_snippet(text, "", tokens=TURN_SNIPPET_TOKENS) if text else "",
                        1.0 / rank, ["said"], reads.nearest_thumbnail(store, mid, start),
                        seg, None, None, {"speaker": rank}, start, source, track,
                        _display_name(store, names[mid]), voice_id))
    return hits


def _display_name(store: Store, file_row: dict) -> str:
    sp = store.speaker(file_row["speaker_id"])
    return sp["name"] if sp else f"Speaker {file_row['label']}"


def attach_speakers(store: Store, hits: list[Hit], voice_id: int | None = None) -> None:
    """Give each hit of said text (or, in a search for one voice, every hit) the name
    and voice of who says it at its second to play (else over most of the moment)."""
    if not hits or not reads.has_rows(store, "speaker_turns"):
        return                     # no file has speakers (yet): nothing to read per file
    by_media: dict[int, list[Hit]] = {}
    for h in hits:
        if h.source is not None or voice_id is not None:
            by_media.setdefault(h.media_id, []).append(h)
    for media_id, group in by_media.items():
        if voice_id is not None:
            mine = next((s for s in store.list_speakers(media_id) if s["voice_id"] == voice_id),
                        None)
            if mine is not None:
                for h in group:
                    h.speaker, h.voice_id = mine["name"], voice_id
                continue
        # one read of the file's turns: the second to play of each hit, then its moment
        both = store.speakers_over(media_id, [(h.seek + 0.05, h.seek + 0.05) for h in group]
                                   + [(h.start, max(h.end, h.start + 0.1)) for h in group])
        at, over = both[:len(group)], both[len(group):]
        for h, a, o in zip(group, at, over):
            who = a or o
            if who is not None:
                h.speaker, h.voice_id = who["name"], who["voice_id"]
