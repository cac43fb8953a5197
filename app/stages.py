"""Composition of the pipeline: which stages run, with which models."""
from __future__ import annotations

from pathlib import Path

from indexer.stages.base import ProbeStage, SpeechStage, Stage, TextIndexStage

from .settings import Settings, thumbnail_dir

__all__ = ["build_stages", "thumbnail_dir"]


def build_stages(settings: Settings, library: Path) -> dict[str, Stage]:
    from indexer.stages.motion import MotionStage
    from indexer.stages.visual import VisualStage

    from models.asr import shared_engine
    speech_engine = shared_engine(settings.asr_engine, settings.whisper_model,
                                  device=settings.device, threads=settings.threads,
                                  models_dir=settings.resolved_models_dir())

    content: list[Stage] = [
        SpeechStage(speech_engine, beam_size=settings.beam_size),
        VisualStage(thumbnail_dir(library), settings.resolved_models_dir(),
                    max_gap=settings.frame_interval_s, threads=settings.threads),
    ]
    return {s.name: s for s in [ProbeStage(content), *content, TextIndexStage(), MotionStage()]}
