"""The subtitles stage: the subtitle tracks a file carries (its embedded text subtitle
streams and the sidecar files beside it; indexer.subtitle_tracks reads them) saved as
said text, each line marked with its source ('subtitles') and track, so search and
export can use them and speech recognition, which runs after this stage, can rely on
them when the user trusts them (app setting `trust_existing_subtitles`).

It runs for every probed file: looking beside a file for sidecars costs one folder
listing, and the container is opened again only when the probe found a subtitle stream.
A track or sidecar that cannot be read is a warning, never a failure: the other tracks
are still read and the file is still indexed. The saver returns a short note (the
warnings, then what was skipped and why) for the job's record, and each is logged.
"""
from __future__ import annotations

import logging

from indexer.stages.base import Saver, StageContext
from indexer.stages.probe import stored_probe
from indexer.stages.speech import SAID_LIST
from indexer.store import Store
from indexer.subtitle_tracks import (CarriedSubtitles, has_text_subtitle_stream,
                                     read_subtitles, sidecar_files)

log = logging.getLogger(__name__)


def carries_subtitles(probe: dict) -> bool:
    """Whether a probed file has subtitle text to read: a text subtitle stream, or a
    sidecar file beside it."""
    return (has_text_subtitle_stream(probe.get("streams") or [])
            or bool(probe.get("path") and sidecar_files(probe["path"])))


def subtitle_note(found: CarriedSubtitles) -> str | None:
    """One short text for the job's record: warnings first, then notes."""
    parts = [f"Warning: {w}" for w in found.warnings] + found.notes
    return " ".join(parts) or None


class CarriedSubtitlesStage:
    name = "subtitles"
    after = ("probe",)
    derives = ("segments",)
    search_lists = (SAID_LIST,)          # subtitle lines are said text, like speech's

    def applies(self, probe: dict) -> bool:
        return True

    def run(self, media: dict, ctx: StageContext) -> Saver:
        found = read_subtitles(media["path"], stored_probe(media)["streams"], check=ctx.check,
                               report=ctx.report)
        ctx.check()
        for warning in found.warnings:
            log.warning("%s: %s", media["path"], warning)
        for note in found.notes:
            log.info("%s: %s", media["path"], note)
        tracks = [t.to_dict() for t in found.tracks]
        note = subtitle_note(found)
        ctx.report(1.0)

        def save(store: Store) -> str | None:
            store.save_subtitle_lines(media["id"], tracks)
            return note
        return save
