"""Which stage jobs may run on a cluster worker, and what of the library goes with them.

A stage qualifies when its `run` needs the file and at most a few reads of the library
that the writer can make beforehand: those reads go with the job as a snapshot
(artifacts.SnapshotStore answers them on the worker, and their hash is part of the
artifact's key), and its saver only writes.
- speech, the costly one (about 0.1 x real time per file even with int8), needs no read;
- speakers reads the file's transcript lines (where speech is, and its words);
- visual reads the motion encoder (MotionAnalyser.for_store): the current encoder's
  version, fingerprint and weights, and the action-tag models of that version. A library
  with no encoder yet gets the shipped default stored by the writer first, as the local
  stage stores it on first use, so the snapshot always holds one;
- faces reads the shots the visual stage stored (their start times);
- text reads the lines of the file's indexed transcript (indexer.stages.text.indexed_track)
  and needs no file (NO_FILE_STAGES: nothing is streamed or mapped for it). Its windows
  are stored by the lines' row ids, which are this library's own: the snapshot gives each
  line a stand-in id by its place (line_id), and the writer turns them back into its row
  ids when it applies the artifact (rebind), so the artifact fits any library holding
  the same transcript (the snapshot's hash, part of the key, covers the lines).
Visual and faces write thumbnails: on the worker into a scratch folder (THUMB_STAGES), and
the artifact carries them to the writer, which puts them into the library's folder.
The others run in the writer's local worker: probe and subtitles are cheap and depend on
the path (sidecar files); motion (a recomputation queued by a retrained encoder) reads
the keyframe features by this library's rows and is rare.
"""
from __future__ import annotations

from .artifacts import MEDIA_ID, read_key

# what of an action-tag model the motion analyser uses (not its counts or dates, which
# change as the library grows and would change the artifact's key)
TAG_MODEL_KEYS = ("label", "source", "encoder_version", "threshold", "model")


def _no_reads(store, media_id: int) -> dict:
    return {}


def _speakers_reads(store, media_id: int) -> dict:
    lines = [{k: ln[k] for k in ("source", "start", "end", "words")}
             for ln in store.transcript(media_id)]     # no row ids: not this library's
    return {read_key("transcript", MEDIA_ID): lines}


def _visual_reads(store, media_id: int) -> dict:
    from indexer.stages.motion import current_encoder_row
    row = current_encoder_row(store)          # the default is stored here on first use
    encoder = {k: row[k] for k in ("version", "fingerprint", "model")}
    tags = [{k: m[k] for k in TAG_MODEL_KEYS} for m in store.tag_models(with_model=True)
            if m["encoder_version"] == row["version"]]
    return {read_key("current_encoder"): encoder,
            read_key("tag_models", with_model=True): tags}


def _faces_reads(store, media_id: int) -> dict:
    return {read_key("shot_starts", MEDIA_ID): store.shot_starts(media_id)}


LINE_ID_BASE = -(10 ** 12)     # far from any row id, count or MEDIA_ID
TEXT_LINE_KEYS = ("start", "end", "text", "language", "source", "track")


def line_id(place: int) -> int:
    """The stand-in row id of the file's `place`-th indexed line in a text snapshot."""
    return LINE_ID_BASE - place


def _indexed(store, media_id: int) -> tuple[list[dict], dict | None, list[dict]]:
    from indexer.stages.text import indexed_lines
    return indexed_lines(store, store.media(media_id))


def _text_reads(store, media_id: int) -> dict:
    tracks, pick, lines = _indexed(store, media_id)
    reads = {read_key("transcript_tracks", MEDIA_ID): tracks}
    if pick is not None:
        reads[read_key("transcript", MEDIA_ID, pick["source"], pick["track"])] = [
            {"id": line_id(k), **{key: ln[key] for key in TEXT_LINE_KEYS}}
            for k, ln in enumerate(lines)]
    return reads


SNAPSHOTS = {"speech": _no_reads, "speakers": _speakers_reads, "visual": _visual_reads,
             "faces": _faces_reads, "text": _text_reads}
REMOTE_STAGES = tuple(SNAPSHOTS)
THUMB_STAGES = ("visual", "faces")   # stages with a thumb_dir and a thumb_folder
NO_FILE_STAGES = ("text",)           # stages that read the library's rows, not the file


def rebind(stage: str, store, media_id: int) -> dict[int, int]:
    """The stand-in ids in a stage's artifact -> this library's row ids (text: each
    indexed line's place -> its id); {} for the other stages."""
    if stage != "text":
        return {}
    return {line_id(k): ln["id"] for k, ln in enumerate(_indexed(store, media_id)[2])}


def runs_remotely(stage: str, store, media_id: int, trust_subtitles: bool) -> bool:
    if stage not in REMOTE_STAGES:
        return False
    # "trust existing subtitles" reads the file's subtitle lines from the library
    return not (stage == "speech" and trust_subtitles and any(
        t["source"] == "subtitles" for t in store.transcript_tracks(media_id)))


def snapshot(stage: str, store, media_id: int) -> dict:
    """The library reads the stage makes for this file, made here: {(method, args): value}."""
    return SNAPSHOTS[stage](store, media_id)
