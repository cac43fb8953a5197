"""The speech stage: Whisper transcription with word timestamps and per-segment language.

It runs after the subtitles stage, so with `trust_subtitles` (the app setting "Trust
existing subtitles") a file whose subtitle track covers its speech is not transcribed:
"covers" means at least MIN_COVERAGE of the speech the VAD finds lies within that
track's lines (each widened by COVER_MARGIN_S). The subtitle lines are then the file's
transcript; the saver's note says that recognition was skipped and why.
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

from models.loading import LazyModel

from indexer.stages.base import Saver, SearchList, StageContext
from indexer.store import Store

log = logging.getLogger(__name__)

# its fusion weight: benchmarks.fusion_weights (both spoken benchmarks' dev splits)
SAID_LIST = SearchList("said", 0.25, "segments_fts", "segments", "text")
MIN_COVERAGE = 0.8
COVER_MARGIN_S = 1.0      # subtitle lines are timed for reading, a little off the voice


def _merged(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def speech_coverage(regions: Sequence[tuple[float, float]], lines: Sequence[dict],
                    margin: float = COVER_MARGIN_S) -> float | None:
    """The share of the speech `regions` that lies within the `lines` (each widened by
    `margin` seconds); None when there is no speech at all."""
    speech = _merged(regions)
    total = sum(e - s for s, e in speech)
    if total <= 0:
        return None
    shown = _merged([(float(ln["start"]) - margin, float(ln["end"]) + margin) for ln in lines])
    covered, j = 0.0, 0
    for s, e in speech:
        while j < len(shown) and shown[j][1] <= s:
            j += 1
        k = j
        while k < len(shown) and shown[k][0] < e:
            covered += min(e, shown[k][1]) - max(s, shown[k][0])
            k += 1
    return covered / total


def _main_language(rows: Sequence[dict]) -> str | None:
    spoken: dict[str, float] = {}
    for r in rows:
        if r.get("language"):
            spoken[r["language"]] = spoken.get(r["language"], 0.0) + r["end"] - r["start"]
    return max(spoken, key=spoken.get) if spoken else None


class SpeechStage:
    name = "speech"
    after = ("probe", "subtitles")
    derives = ("segments",)
    search_lists = (SAID_LIST,)

    def __init__(self, engine: LazyModel | Callable[[], object], beam_size: int = 5, *,
                 trust_subtitles: bool = False):
        # a models.loading LazyModel (models.asr.shared_engine), or a plain factory,
        # which gets a LazyModel of its own (not in the process's registry)
        self._engine = engine if isinstance(engine, LazyModel) else LazyModel("asr", engine)
        self.beam_size = beam_size
        self.trust_subtitles = trust_subtitles

    @property
    def engine(self):
        return self._engine.get()         # loaded once per process, on first use

    def applies(self, probe: dict) -> bool:
        return probe.get("has_audio", False)

    def run(self, media: dict, ctx: StageContext) -> Saver:
        note = None
        if self.trust_subtitles and ctx.store is not None:
            trusted, note = self._trusted_track(media, ctx)
            if note:
                log.info("%s: %s", media["path"], note)
            if trusted is not None:
                ctx.report(1.0)

                def skip(store: Store) -> str:
                    # no speech lines: the subtitle track is the transcript
                    store.save_transcript(media["id"], trusted["language"], [])
                    return note
                return skip
        rows, options = self._streaming(media, ctx)
        info, segments = self.engine.transcribe(media["path"], beam_size=self.beam_size,
                                                **options)
        duration = info.duration or media.get("duration") or 0.0
        for seg in segments:
            ctx.check()
            rows.append({
                "start": seg.start, "end": seg.end, "text": seg.text.strip(),
                "language": seg.language or info.language, "confidence": seg.confidence,
                "words": [{"start": w.start, "end": w.end, "word": w.word,
                           "probability": w.probability} for w in seg.words]})
            if duration:
                ctx.report(min(1.0, seg.end / duration))
        ctx.check()
        language = info.language
        if options.get("start"):       # resumed: the language of the whole file's speech
            language = _main_language(rows) or language

        def save(store: Store) -> str | None:
            store.save_transcript(media["id"], language, rows)
            return note
        return save

    def _streaming(self, media: dict, ctx: StageContext) -> tuple[list[dict], dict]:
        """(the lines committed before a crash, the engine's options to commit each
        window as it ends and to start after those lines). A file that already has a
        transcript keeps it whole until the new one is done: nothing is streamed."""
        store = ctx.store
        if ctx.save_partial is None or store is None:
            return [], {}
        resume = ctx.resume_at if ctx.resume_at > 0 else 0.0
        if not resume and store.has_speech(media["id"]):
            return [], {}
        rows = store.speech_lines_before(media["id"], resume) if resume else []
        committed = [len(rows), resume]        # rows committed, and up to which second

        def commit(upto: float) -> None:
            ctx.check()
            part, since = rows[committed[0]:], committed[1]
            ctx.save_partial(lambda st: st.save_speech_part(media["id"], since, part), upto)
            committed[:] = [len(rows), upto]
        if resume:
            log.info("%s: speech resumes at %.1f s (%d lines kept)", media["path"], resume,
                     len(rows))
        return rows, {"start": resume, "on_window": commit}

    def discard_partial(self, store: Store, media_id: int) -> None:
        store.drop_speech(media_id)

    def _trusted_track(self, media: dict, ctx: StageContext) -> tuple[dict | None, str | None]:
        """(the subtitle track that covers the file's speech, or None; a note saying
        what was decided and why, or None when the file has no subtitle track)."""
        from models.speech_regions import speech_regions
        tracks = [t for t in ctx.store.transcript_tracks(media["id"])
                  if t["source"] == "subtitles"]
        if not tracks:
            return None, None
        regions = speech_regions(media["path"], check=ctx.check)
        best, best_cover = None, -1.0
        for t in tracks:
            cover = speech_coverage(regions, ctx.store.transcript(media["id"], "subtitles",
                                                                  t["track"]))
            if cover is None:           # no speech at all: any track will do
                return t, ("Speech recognition skipped (“Trust existing subtitles” is on): "
                           f"no speech was found, and the subtitle track “{t['track']}” "
                           "is the transcript.")
            if cover > best_cover:
                best, best_cover = t, cover
        if best_cover >= MIN_COVERAGE:
            return best, ("Speech recognition skipped (“Trust existing subtitles” is on): "
                          f"the subtitle track “{best['track']}” covers {best_cover:.0%} of "
                          "the speech.")
        return None, (f"Speech recognised although “Trust existing subtitles” is on: the "
                      f"subtitle track that covers the most speech, “{best['track']}”, covers "
                      f"{best_cover:.0%} of it ({MIN_COVERAGE:.0%} needed).")
