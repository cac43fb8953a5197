"""The speech stage: Whisper transcription with word timestamps and per-segment language."""
from __future__ import annotations

from typing import Callable

from models.loading import LazyModel

from indexer.stages.base import Saver, SearchList, StageContext
from indexer.store import Store


class SpeechStage:
    name = "speech"
    after = ("probe",)
    derives = ("segments",)
    search_lists = (SearchList("said", 0.5, "segments_fts", "segments", "text"),)

    def __init__(self, engine: LazyModel | Callable[[], object], beam_size: int = 5):
        # a models.loading LazyModel (models.asr.shared_engine), or a plain factory,
        # which gets a LazyModel of its own (not in the process's registry)
        self._engine = engine if isinstance(engine, LazyModel) else LazyModel("asr", engine)
        self.beam_size = beam_size

    @property
    def engine(self):
        return self._engine.get()         # loaded once per process, on first use

    def applies(self, probe: dict) -> bool:
        return probe.get("has_audio", False)

    def run(self, media: dict, ctx: StageContext) -> Saver:
        info, segments = self.engine.transcribe(media["path"], beam_size=self.beam_size)
        duration = info.duration or media.get("duration") or 0.0
        rows = []
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

        def save(store: Store) -> None:
            store.save_transcript(media["id"], language, rows)
        return save
