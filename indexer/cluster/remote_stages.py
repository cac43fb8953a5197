"""Which stage jobs may run on a cluster worker, and what of the library goes with them.

A stage qualifies when its `run` needs the file and at most a few reads of the library
that the writer can make beforehand: those reads go with the job as a snapshot
(artifacts.SnapshotStore answers them on the worker), and its saver only writes.
- speech, the costly one (about 0.1 x real time per file even with int8), needs no read;
- speakers reads the file's transcript lines (where speech is, and its words).
The others run in the writer's local worker: probe and subtitles are cheap and depend on
the path (sidecar files); text stores windows by the transcript's row ids, which are this
library's own; visual and faces write thumbnails beside the library and read the motion
encoder and the shots from it.
"""
from __future__ import annotations

from .artifacts import MEDIA_ID


def _no_reads(store, media_id: int) -> dict:
    return {}


def _speakers_reads(store, media_id: int) -> dict:
    lines = [{k: ln[k] for k in ("source", "start", "end", "words")}
             for ln in store.transcript(media_id)]     # no row ids: not this library's
    return {("transcript", (MEDIA_ID,)): lines}


SNAPSHOTS = {"speech": _no_reads, "speakers": _speakers_reads}
REMOTE_STAGES = tuple(SNAPSHOTS)


def runs_remotely(stage: str, store, media_id: int, trust_subtitles: bool) -> bool:
    if stage not in REMOTE_STAGES:
        return False
    # "trust existing subtitles" reads the file's subtitle lines from the library
    return not (stage == "speech" and trust_subtitles and any(
        t["source"] == "subtitles" for t in store.transcript_tracks(media_id)))


def snapshot(stage: str, store, media_id: int) -> dict:
    """The library reads the stage makes for this file, made here: {(method, args): value}."""
    return SNAPSHOTS[stage](store, media_id)
