"""The declared stage contract: the pipeline's order and checks, what follows what for a
real file, unknown stages refused by the worker, and library-wide tasks run by the runner."""
import pytest

from app.runner import Runner
from app.settings import Settings
from app.stages import build_pipeline
from indexer.intake import take
from indexer.stages import (DERIVED_TABLES, STAGE_TYPES, Pipeline, PipelineError, ProbeStage,
                            SpeechStage, TextIndexStage)
from indexer.stages.base import WHEN_DONE, WHEN_IDLE, SearchList
from indexer.stages.pipeline import search_lists
from indexer.store import Store
from tests.media_factory import make_media


class Named:
    def __init__(self, name, after=(), applies=True):
        self.name, self.after, self.derives, self.search_lists = name, after, (), ()
        self._applies = applies

    def applies(self, probe):
        return self._applies


def test_pipeline_orders_stages_after_what_they_build_on_and_refuses_bad_wiring():
    p = Pipeline([Named("text", ("speech",)), Named("speech", ("probe",)), Named("probe")])
    assert list(p.stages) == ["probe", "speech", "text"]
    with pytest.raises(PipelineError, match="two stages"):
        Pipeline([Named("probe"), Named("probe")])
    with pytest.raises(PipelineError, match="unknown"):
        Pipeline([Named("probe"), Named("faces", ("keyframes",))])
    with pytest.raises(PipelineError, match="wait on each other"):
        Pipeline([Named("a", ("b",)), Named("b", ("a",))])


def test_a_stage_after_two_others_waits_for_both_unless_one_does_not_apply():
    p = Pipeline([Named("probe"), Named("speech", ("probe",)), Named("visual", ("probe",)),
                  Named("both", ("speech", "visual"))])
    assert p.followers("speech", {}, finished={"probe"}) == []
    assert p.followers("visual", {}, finished={"probe", "speech"}) == ["both"]
    q = Pipeline([Named("probe"), Named("speech", ("probe",)),
                  Named("visual", ("probe",), applies=False),
                  Named("both", ("speech", "visual"))])
    assert q.followers("speech", {}, finished={"probe"}) == ["both"]


def test_the_shipped_pipeline(library):
    p = build_pipeline(Settings(whisper_model="tiny.en"), library)
    assert [type(s) for s in p.stages.values()][:1] == [ProbeStage]
    assert {type(s) for s in p.stages.values()} == set(STAGE_TYPES)
    video = {"has_audio": True, "has_video": True}
    assert p.followers("probe", video) == ["subtitles", "visual"]
    assert p.followers("probe", {"has_audio": True, "has_video": False}) == ["subtitles"]
    assert p.followers("subtitles", video, {"probe"}) == ["speech"]
    assert p.followers("speech", video, {"probe", "subtitles"}) == ["speakers", "text"]
    # faces; motion is queued by the encoder task
    assert p.followers("visual", video, {"probe"}) == ["faces"]
    # what a changed file loses is what the stages declare they derive
    assert set(DERIVED_TABLES) == {t for s in p.stages.values() for t in s.derives}
    assert {"segments", "keyframes", "keywords"} <= set(DERIVED_TABLES)
    assert isinstance(p.get("speech"), SpeechStage) and isinstance(p.get("text"), TextIndexStage)


def test_search_ranks_the_lists_the_stages_declare():
    from indexer.search.sources import SOURCES, WEIGHTS
    # said and keyword as learnt on the dev splits by benchmarks/fusion_weights.py
    assert WEIGHTS == {"said": 0.25, "keyword": 0.25, "similar": 1.0, "shown": 1.0, "tag": 1.0,
                       "image": 1.0}
    assert {s.list: s.fts for s in SOURCES} == {
        "said": "segments_fts", "keyword": "keywords_fts", "shown": "screen_text_fts",
        "tag": "tags_fts"}
    a, b = Named("a"), Named("b")
    a.search_lists = (SearchList("tag", 1.0, "tags_fts", "tags", "label"),)
    b.search_lists = (SearchList("tag", 2.0, "tags_fts", "tags", "label"),)
    with pytest.raises(PipelineError, match="unlike another stage"):
        search_lists([a, b])


class Recorder:
    """A library task that records its runs; `queue` probe jobs for files on its first run."""

    def __init__(self, name, when, queue=(), fail=False):
        self.name, self.when, self.queue, self.fail, self.runs = name, when, list(queue), fail, 0

    def run(self, store, emit):
        self.runs += 1
        if self.fail:
            raise RuntimeError("broken task")
        queued = 0
        for path in self.queue:
            take(store, path)
            queued += 1
        self.queue = []
        emit({"type": f"{self.name}_ran"})
        return queued

    def cancel(self):
        pass


def test_the_runner_runs_registered_tasks_and_a_broken_one_does_not_end_the_run(library,
                                                                                tmp_path):
    first = make_media(tmp_path / "one.wav", text="The harbour lights were green tonight.",
                       video=False)
    second = make_media(tmp_path / "two.wav", text="Seven ships sailed past the lighthouse.",
                        video=False)
    s = Store(library)
    take(s, first)
    s.close()
    events = []
    runner = Runner(library, Settings(whisper_model="tiny.en"), on_event=events.append)
    idle = Recorder("more", WHEN_IDLE, queue=[second])
    broken = Recorder("broken", WHEN_DONE, fail=True)
    done = Recorder("after", WHEN_DONE)
    runner.tasks = [idle, broken, done]
    counts = runner.run()
    # the idle task ran once and the file it queued was indexed in the same run
    assert idle.runs == 1 and broken.runs == 1 and done.runs == 1
    # probe, subtitles, speech, speakers, text x 2
    assert counts["done"] == 10 and counts["failed"] == 0
    failed = [e for e in events if e["type"] == "task_failed"]
    assert failed == [{"type": "task_failed", "task": "broken",
                       "error": "RuntimeError: broken task"}]
    kinds = [e["type"] for e in events]
    assert kinds.index("after_ran") < kinds.index("run_finished")
    s = Store(library)
    assert sorted(m["status"] for m in s.all_media()) == ["done", "done"]
    s.close()


def test_the_worker_refuses_a_stage_it_does_not_know(library, tmp_path):
    path = make_media(tmp_path / "a.wav", text="Nothing to see here.", video=False)
    s = Store(library)
    mid = take(s, path).media_id
    s.queue_stage(mid, "lipreading")        # e.g. a library written by a newer avindex
    s.close()
    runner = Runner(library, Settings(whisper_model="tiny.en"))
    runner.tasks = []
    runner.run()
    s = Store(library)
    job = [j for j in s.jobs(mid) if j["stage"] == "lipreading"][0]
    assert job["state"] == "failed" and "Unknown stage 'lipreading'" in job["error"]
    assert {j["stage"]: j["state"] for j in s.jobs(mid)}["speech"] == "done"
    s.close()
