"""Composition of the pipeline: which stages run, with which models and settings, and the
library-wide tasks beside them. The stage types themselves are registered in
indexer.stages (STAGE_TYPES); each is built here from the user's settings."""
from __future__ import annotations

from pathlib import Path

from indexer.stages import (STAGE_TYPES, FacesStage, LibraryTask, Pipeline, SpeakersStage,
                            SpeechStage, Stage, VisualStage)

from .settings import Settings, thumbnail_dir

__all__ = ["build_pipeline", "build_tasks", "speaker_model", "thumbnail_dir"]


def _speech(settings: Settings, library: Path) -> SpeechStage:
    from models.asr import shared_engine
    engine = shared_engine(settings.asr_engine, settings.whisper_model, device=settings.device,
                           threads=settings.threads, models_dir=settings.resolved_models_dir())
    return SpeechStage(engine, beam_size=settings.beam_size,
                       trust_subtitles=settings.trust_existing_subtitles)


def _visual(settings: Settings, library: Path) -> VisualStage:
    return VisualStage(thumbnail_dir(library), settings.resolved_models_dir(),
                       max_gap=settings.frame_interval_s, threads=settings.threads)


def speaker_model(settings: Settings, library: Path) -> str:
    """The speaker model a library's new files are diarized with: the setting's, or for
    "auto" CAM++, except in a library whose voices GE2E found and CAM++ none (voices of two
    models are never one, so its named voices keep being recognised in new files)."""
    if settings.speaker_model != "auto":
        return settings.speaker_model
    from indexer.store.speakers import library_speaker_models
    return "ge2e" if library_speaker_models(library) == {"ge2e"} else "campplus"


def _speakers(settings: Settings, library: Path) -> SpeakersStage:
    return SpeakersStage(speaker_model(settings, library), threads=settings.threads)


def _faces(settings: Settings, library: Path) -> FacesStage:
    return FacesStage(thumbnail_dir(library), settings.resolved_models_dir())


# how the stage types that take settings or models are built; the others are built bare
# (`Type()`), so a settings-free stage needs no line here
_BUILDERS = {SpeechStage: _speech, VisualStage: _visual, SpeakersStage: _speakers,
             FacesStage: _faces}


def build_pipeline(settings: Settings, library: Path) -> Pipeline:
    stages: list[Stage] = [_BUILDERS[t](settings, library) if t in _BUILDERS else t()
                           for t in STAGE_TYPES]
    return Pipeline(stages)


def build_tasks(settings: Settings, library: Path) -> list[LibraryTask]:
    """Library-wide tasks, in the order they run (see indexer.stages.base.LibraryTask)."""
    from indexer.library_tasks.action_tags import TagRetraining
    from indexer.library_tasks.code_maintenance import CodeMaintenance

    from .motion_jobs import EncoderTrainingTask
    return [EncoderTrainingTask(library, enabled=settings.motion_auto_train),
            CodeMaintenance(), TagRetraining()]
