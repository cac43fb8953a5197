"""Which stage jobs may run on a cluster worker.

A stage qualifies when its `run` needs nothing but the file (no reads of the library as
it works, no files written beside the library) and its saver only writes. Speech, the
costly one (about 0.1 x real time per file even with int8 CTranslate2), qualifies. The
others run in the writer's own local worker: probe and subtitles are cheap and their
results depend on the path (sidecar files); text, speakers and faces read earlier rows
through ctx.store; visual writes thumbnails beside the library and reads the motion
encoder from it.
"""
from __future__ import annotations

REMOTE_STAGES = ("speech",)


def runs_remotely(stage: str, store, media_id: int, trust_subtitles: bool) -> bool:
    if stage not in REMOTE_STAGES:
        return False
    # "trust existing subtitles" reads the file's subtitle lines from the library
    return not (trust_subtitles and any(t["source"] == "subtitles"
                                        for t in store.transcript_tracks(media_id)))
