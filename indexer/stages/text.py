"""Semantic search over transcripts: windows of a few segments, their sentence
embeddings in the `segment_vec` table, keywords in the `keywords` table.

A query should match a thought, not half a sentence, so what is embedded is a
*window* of 2-4 consecutive segments (about 15-30 s), and consecutive windows
overlap by one segment so a thought that straddles a boundary is whole in one
of them.

Keying: `segment_vec` rows are keyed by segment id, so each window is stored
under the id of its FIRST segment; its metadata (media_id, kind, language) sits
in the vec0 table so filters apply inside the KNN. Windows always start at
distinct segments, so the keys are unique. A hit's segment id therefore points
at where its window begins, which is where playback should start. Deleting a
segment (re-transcription, reset) drops its vector via the schema's trigger.

    tix = prepare_text_index(transcript_to_index(store, media))   # no DB: a stage's work
    store.save_text_index(media_id, tix.windows, tix.embeddings, tix.keywords)
    hits = search(store, "what they said about taxes", mode="semantic")   # indexer.search
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from indexer.stages.base import SearchList
from indexer.stages.carried_subtitles import carries_subtitles


# Floor under which an unrelated query's best row is dropped, keeping most true matches
# (measured: benchmarks/README.md, "The similarity floor").
MIN_SIMILARITY = 0.30

WINDOW_TARGET_S = 20.0    # stop growing a window once it spans this much
WINDOW_MAX_S = 30.0       # never grow a window past this (a single long segment may)
WINDOW_MAX_SEGMENTS = 4
WINDOW_MIN_SEGMENTS = 2   # grow to at least this many, within WINDOW_MAX_S
WINDOW_GAP_S = 8.0        # a silence this long ends the thought
MAX_K = 4096              # sqlite-vec's limit on k


# ------------------------------------------------------------------ windows ---
def _majority(values: Iterable[tuple[str | None, int]]) -> str | None:
    c: Counter = Counter()
    for v, w in values:
        if v:
            c[v] += max(1, w)
    return c.most_common(1)[0][0] if c else None


def transcript_windows(segments: Sequence[dict], *, target_s: float = WINDOW_TARGET_S,
                       max_s: float = WINDOW_MAX_S, max_segments: int = WINDOW_MAX_SEGMENTS,
                       min_segments: int = WINDOW_MIN_SEGMENTS, gap_s: float = WINDOW_GAP_S,
                       overlap: int = 1) -> list[dict]:
    """Group consecutive segments into overlapping windows.

    A window grows segment by segment until it spans `target_s` seconds and holds
    `min_segments` segments, or holds `max_segments`; it never grows past `max_s`
    seconds or across a silence longer than `gap_s`. The next window starts
    `overlap` segments before this one ended. Blank segments are skipped.

    Returns [{"start", "end", "text", "indices" (positions in `segments`),
    "segment_ids" (their "id"s, or None when a segment has none), "language"}],
    in time order; every non-blank segment is in at least one window.
    """
    items = sorted(((i, s) for i, s in enumerate(segments) if (s.get("text") or "").strip()),
                   key=lambda it: (float(it[1]["start"]), it[0]))
    windows: list[dict] = []
    i, n = 0, len(items)
    last_end_index = -1
    while i < n:
        j = i + 1                                  # window = items[i:j]
        while j < n and j - i < max_segments:
            first, prev, nxt = items[i][1], items[j - 1][1], items[j][1]
            span = float(prev["end"]) - float(first["start"])
            if span >= target_s and j - i >= min_segments:
                break
            if float(nxt["start"]) - float(prev["end"]) > gap_s:
                break
            if float(nxt["end"]) - float(first["start"]) > max_s:
                break
            j += 1
        if j - 1 > last_end_index:                 # not already inside the last window
            chunk = items[i:j]
            segs = [s for _, s in chunk]
            ids = [s.get("id") for s in segs]
            windows.append({
                "start": float(segs[0]["start"]),
                "end": max(float(s["end"]) for s in segs),
                "text": " ".join(" ".join(s["text"].split()) for s in segs),
                "indices": [k for k, _ in chunk],
                "segment_ids": None if any(x is None for x in ids) else ids,
                "language": _majority((s.get("language"), len(s["text"])) for s in segs),
            })
            last_end_index = j - 1
        if j >= n:
            break
        # Overlap with the next window, but always move forward.
        i = max(i + 1, j - overlap) if j - i > overlap else j
    return windows


# ------------------------------------------------------------- preparation ---
@dataclass
class TextIndex:
    windows: list[dict]
    embeddings: np.ndarray
    keywords: list[dict] = field(default_factory=list)


def prepare_text_index(segments: Sequence[dict], *, embedder=None, keyword_method: str | None
                       = None, window_s: float = 60.0) -> TextIndex:
    """Windows, their embeddings and the keywords of one transcript (no DB).
    `segments` should carry their ids (as `Store.transcript()` returns them)."""
    from models.keywords import DEFAULT_METHOD, extract_keywords
    from models.text_embed import load_embedder
    embedder = embedder or load_embedder()
    windows = transcript_windows(segments)
    embeddings = embedder.embed([w["text"] for w in windows], kind="passage") if windows \
        else np.zeros((0, embedder.dim), np.float32)
    kws = extract_keywords(segments, window_s=window_s,
                           method=keyword_method or DEFAULT_METHOD, embedder=embedder)
    return TextIndex(windows, embeddings, kws)


def embed_query(text: str, embedder=None) -> np.ndarray:
    from models.text_embed import load_embedder
    embedder = embedder or load_embedder()
    return embedder.embed([text], kind="query")[0]


# --------------------------------------------------------------------- the stage ---
def indexed_track(tracks: Sequence[dict], language: str | None) -> dict | None:
    """Of a file's sources of said text (Store.transcript_tracks), the one that gets
    windows and keywords (two would embed the same words twice): speech when it has
    lines, else the subtitle track in the file's language, else the first track."""
    if not tracks:
        return None
    pick = tracks[0]
    if pick["source"] != "speech" and language:
        pick = next((t for t in tracks if t["language"] == language), pick)
    return pick


def indexed_lines(store, media: dict) -> tuple[list[dict], dict | None, list[dict]]:
    """(the file's transcript tracks, the one that gets windows (indexed_track), its lines
    with their ids)."""
    tracks = store.transcript_tracks(media["id"])
    pick = indexed_track(tracks, media.get("language"))
    lines = store.transcript(media["id"], pick["source"], pick["track"]) if pick else []
    return tracks, pick, lines


def transcript_to_index(store, media: dict) -> list[dict]:
    """The lines of the file's indexed transcript (see indexed_track), with their ids."""
    return indexed_lines(store, media)[2]


class TextIndexStage:
    """Keywords and semantic embeddings of transcript windows; builds on the said text
    (speech, or the subtitle lines of a file without speech lines)."""

    name = "text"
    after = ("speech", "subtitles")
    derives = ("keywords",)            # segment_vec rows go with their segments (trigger)
    search_lists = (SearchList("keyword", 0.25, "keywords_fts", "keywords", "keyword", "said"),
                    SearchList("similar", 1.0))      # window embeddings (segment_vec)

    def applies(self, probe: dict) -> bool:
        return probe.get("has_audio", False) or carries_subtitles(probe)

    def run(self, media: dict, ctx):
        segments = transcript_to_index(ctx.store, media)
        ctx.check()
        if not segments:         # nothing said: clear what an earlier transcript left
            ctx.report(1.0)
            return lambda store: store.save_text_index(
                media["id"], [], np.zeros((0, 0), np.float32), [])
        index = prepare_text_index(segments)
        ctx.report(1.0)
        return lambda store: store.save_text_index(media["id"], index.windows,
                                                   index.embeddings, index.keywords)
