"""The indexing stages, in the order a file's data takes them:

    probe ─┬─ subtitles ─ speech ─┬─ text      (probe.py, carried_subtitles.py, speech.py, text.py)
           │                      └─ speakers  (speakers.py)
           └─ visual ─ faces                   (visual.py, with keyframes.py and the motion pass;
                                                faces.py)
    motion                                (motion.py: recomputed when the library's encoder changes)

Each stage is one module following the contract in base.py. STAGE_TYPES is the registry:
a new stage is one module listed here plus its migration
(indexer/store/migrations.py); app/stages.py builds the instances (a stage that takes
settings or models gets a builder line there).
"""
from __future__ import annotations

from indexer.stages.base import Cancelled, LibraryTask, Saver, SearchList, Stage, StageContext
from indexer.stages.carried_subtitles import CarriedSubtitlesStage
from indexer.stages.faces import FacesStage
from indexer.stages.motion import MotionStage
from indexer.stages.pipeline import Pipeline, PipelineError, derived_tables, search_lists
from indexer.stages.probe import ProbeStage
from indexer.stages.speakers import SpeakersStage
from indexer.stages.speech import SpeechStage
from indexer.stages.text import TextIndexStage
from indexer.stages.visual import VisualStage

STAGE_TYPES: tuple[type, ...] = (ProbeStage, CarriedSubtitlesStage, SpeechStage,
                                 SpeakersStage, TextIndexStage, VisualStage, FacesStage,
                                 MotionStage)

DERIVED_TABLES = derived_tables(STAGE_TYPES)
SEARCH_LISTS = search_lists(STAGE_TYPES)

__all__ = ["Cancelled", "CarriedSubtitlesStage", "DERIVED_TABLES", "FacesStage", "LibraryTask", "MotionStage",
           "Pipeline", "PipelineError", "ProbeStage", "SEARCH_LISTS", "STAGE_TYPES", "Saver",
           "SearchList", "SpeakersStage", "SpeechStage", "Stage", "StageContext", "TextIndexStage", "VisualStage"]
