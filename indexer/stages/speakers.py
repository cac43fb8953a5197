"""The speakers stage: who speaks when, and which voice of the library each speaker is.

It runs after the speech stage and builds on its transcript: the words give where speech
is and where a turn may change (a turn never splits a word); where the transcript is
silent for a while, the VAD looks for speech it skipped. A file whose speech stage found
no speech (music, noise, silence) gets no speakers and no error; a file with subtitle
lines but no recognised speech ("Trust existing subtitles") is searched by the VAD alone.
The diarization itself is models.diarization; the library's voices are the store's
(indexer/store/speakers.py): the saver matches the file's speakers to known voices.
"""
from __future__ import annotations

import functools
import logging

from indexer.stages.base import Saver, StageContext
from indexer.store import Store

log = logging.getLogger(__name__)


class SpeakersStage:
    name = "speakers"
    after = ("speech",)
    derives = ("speaker_turns", "speakers")
    search_lists = ()

    def __init__(self, model: str = "", *, min_speakers: int | None = None,
                 max_speakers: int | None = None, threads: int = 0):
        from models.speaker_encoder import default_model, encoder_for
        if min_speakers is not None and min_speakers < 1:
            raise ValueError("The least number of speakers must be at least 1.")
        if min_speakers and max_speakers and max_speakers < min_speakers:
            raise ValueError(f"The most speakers ({max_speakers}) is fewer than the least "
                             f"({min_speakers}).")
        # the speaker model ("ge2e", "campplus"; "": GE2E or AVINDEX_SPEAKER_MODEL's), which
        # also keys the cluster's artifacts
        self.model = model or default_model()
        self._encoder = encoder_for(self.model)
        self.min_speakers = min_speakers
        self.max_speakers = max_speakers
        self.threads = threads              # the encoder's, for a batch (0: one per core)

    @property
    def encoder(self):
        return self._encoder.get()             # loaded once per process, on first use

    def applies(self, probe: dict) -> bool:
        return probe.get("has_audio", False)

    def run(self, media: dict, ctx: StageContext) -> Saver:
        from models import diarization
        encoder = self.encoder
        embed = functools.partial(encoder.embed_at, threads=self.threads)
        words, covered, subtitles = [], [], False
        if ctx.store is not None:
            for line in ctx.store.transcript(media["id"]):
                if line["source"] != "speech":
                    subtitles = True
                    continue
                covered.append((line["start"], line["end"]))
                words.extend((w["start"], w["end"]) for w in line["words"])
        # an encoder's own clustering settings (its cosines sit on its own scale)
        tuning = dict(getattr(encoder, "tuning", {}))
        if covered:
            result = diarization.diarize(
                media["path"], embed, words=words, covered=covered,
                duration=media.get("duration"), min_speakers=self.min_speakers,
                max_speakers=self.max_speakers, check=ctx.check, progress=ctx.report,
                **tuning)
        elif subtitles or ctx.store is None:
            # no recognised speech to build on: the VAD says where speech is
            result = diarization.diarize(
                media["path"], embed, min_speakers=self.min_speakers,
                max_speakers=self.max_speakers, check=ctx.check, progress=ctx.report,
                **tuning)
        else:
            result = diarization.Diarization([], [])   # the speech stage heard no speech
        ctx.check()
        ctx.report(1.0)
        speakers = [{"label": sp.index + 1, "centroid": sp.centroid, "seconds": sp.seconds,
                     "windows": sp.windows} for sp in result.speakers]
        turns = [{"start": t.start, "end": t.end, "label": t.speaker + 1,
                  "embedding": t.embedding} for t in result.turns]
        version = type(encoder).version if speakers else ""
        voice_match = getattr(encoder, "voice_match", diarization.VOICE_MATCH_THRESHOLD)

        def save(store: Store) -> None:
            store.save_speakers(media["id"], speakers, turns, encoder=version,
                                match_threshold=voice_match)
        return save
