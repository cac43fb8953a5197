"""The stages of a library in the order the data takes, checked once when it is built:
names unique, every `after` a known stage, no cycle. The worker asks it what runs
after a stage (`queue_followers`), intake what a changed file loses (`derived_tables`)."""
from __future__ import annotations

from typing import Iterable, Sequence

from indexer.stages.base import SearchList, Stage
from indexer.stages.probe import stored_probe
from indexer.store import Store


class PipelineError(ValueError):
    pass


def _ordered(stages: Sequence[Stage]) -> list[Stage]:
    """Stages after the ones they build on (a stable topological order)."""
    by_name: dict[str, Stage] = {}
    for s in stages:
        if s.name in by_name:
            raise PipelineError(f"two stages are named {s.name!r}")
        by_name[s.name] = s
    for s in stages:
        unknown = [a for a in s.after if a not in by_name]
        if unknown:
            raise PipelineError(f"stage {s.name!r} runs after unknown stage(s) {unknown}")
    out: list[Stage] = []
    placed: set[str] = set()
    while len(out) < len(stages):
        ready = [s for s in stages if s.name not in placed and set(s.after) <= placed]
        if not ready:
            left = sorted(set(by_name) - placed)
            raise PipelineError(f"stages {left} wait on each other")
        out += ready
        placed |= {s.name for s in ready}
    return out


class Pipeline:
    def __init__(self, stages: Iterable[Stage]):
        self.stages: dict[str, Stage] = {s.name: s for s in _ordered(list(stages))}

    def get(self, name: str) -> Stage | None:
        return self.stages.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.stages

    def followers(self, done: str, probe: dict, finished: Iterable[str] = ()) -> list[str]:
        """The stages to queue now that `done` is done for a file: those after it that
        apply and whose other `after` stages are finished (or do not apply to the file).
        A follower already finished is not queued again: a stage run again on its own
        (the subtitles of a file whose sidecar changed) does not redo what follows it;
        whoever re-runs it queues the readers of its rows with it (intake.take_sidecar)."""
        finished = set(finished) | {done}
        out = []
        for s in self.stages.values():
            if done not in s.after or s.name in finished or not s.applies(probe):
                continue
            if all(a in finished or not self.stages[a].applies(probe) for a in s.after):
                out.append(s.name)
        return out

    def queue_followers(self, store: Store, media_id: int, done: str) -> list[str]:
        """Queue what follows `done` for this file (call inside the job's transaction)."""
        media = store.media(media_id)
        finished = {j["stage"] for j in store.jobs(media_id) if j["state"] == "done"}
        names = self.followers(done, stored_probe(media), finished)
        for name in names:
            store.queue_stage(media_id, name)
        return names

    @property
    def derived_tables(self) -> tuple[str, ...]:
        return derived_tables(self.stages.values())


def derived_tables(stages: Iterable[Stage]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t for s in stages for t in s.derives))


def search_lists(stages: Iterable[Stage]) -> tuple[SearchList, ...]:
    """Each list once, in stage order; two stages feeding one list declare it alike."""
    out: dict[str, SearchList] = {}
    for s in stages:
        for lst in s.search_lists:
            if out.setdefault(lst.name, lst) != lst:
                raise PipelineError(f"stage {s.name!r} declares the search list {lst.name!r} "
                                    f"unlike another stage: {lst} vs {out[lst.name]}")
    return tuple(out.values())
