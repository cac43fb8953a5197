"""Pipeline stages: each takes a media row and returns a function that saves its
results, so the worker can commit results and job state in one transaction."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from models.loading import LazyModel

from indexer.store import Store

Saver = Callable[[Store], None]


class Cancelled(Exception):
    """The user cancelled the job; nothing of it is saved."""


@dataclass
class StageContext:
    report: Callable[[float], None] = lambda fraction: None
    cancelled: Callable[[], bool] = lambda: False
    store: Store | None = None           # for stages that build on earlier results
    started: float = field(default_factory=time.monotonic)

    def check(self) -> None:
        if self.cancelled():
            raise Cancelled()


class Stage(Protocol):
    name: str

    def applies(self, probe: dict) -> bool: ...

    def run(self, media: dict, ctx: StageContext) -> Saver: ...


class ProbeStage:
    """Reads the container and streams; queues the content stages that apply."""

    name = "probe"

    def __init__(self, content_stages: list[Stage]):
        self.content_stages = content_stages

    def applies(self, probe: dict) -> bool:
        return True

    def run(self, media: dict, ctx: StageContext) -> Saver:
        from indexer.stages.probe import probe
        info = probe(media["path"]).to_dict()
        ctx.report(1.0)
        follow = [s.name for s in self.content_stages if s.applies(info)]
        return lambda store: store.save_probe(media["id"], info, follow)


class SpeechStage:
    """Whisper transcription with word timestamps and per-segment language."""

    name = "speech"

    def __init__(self, engine: LazyModel | Callable[[], object], beam_size: int = 5,
                 then: tuple[str, ...] = ("text",)):
        # a models.loading LazyModel (models.asr.shared_engine), or a plain factory,
        # which gets a LazyModel of its own (not in the process's registry)
        self._engine = engine if isinstance(engine, LazyModel) else LazyModel("asr", engine)
        self.beam_size = beam_size
        self.then = then                 # stages that build on the transcript

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
            for stage in self.then:
                store.queue_stage(media["id"], stage)
        return save


class TextIndexStage:
    """Keywords and semantic embeddings of transcript windows; runs after speech."""

    name = "text"

    def applies(self, probe: dict) -> bool:
        return False                     # queued by the speech stage, not by the probe

    def run(self, media: dict, ctx: StageContext) -> Saver:
        from indexer.stages.text import prepare_text_index, save_text_index
        segments = ctx.store.transcript(media["id"])
        ctx.check()
        index = prepare_text_index(segments)
        ctx.report(1.0)
        return lambda store: save_text_index(store, media["id"], index.windows,
                                             index.embeddings, index.keywords)
