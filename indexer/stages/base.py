"""The stage contract. A stage turns one file into rows of the library:

    name            the job's stage name in the `jobs` table
    after           the stages it builds on: it is queued for a file once they are done for
                    it (and `applies`). `()` means it is not queued by the pipeline: the
                    probe is queued by intake, a recompute stage by a library-wide task.
    applies(probe)  whether the file needs it (the probe's has_audio, has_video, kind...)
    run(media, ctx) does the work without writing and returns a saver; the worker calls
                    the saver, queues what follows and closes the job in ONE transaction,
                    so a crash leaves either all of it or none. The saver may return a
                    short note a person should read (kept as the job's `note`, logged).
                    A stage may also commit as it goes (the speech stage, window by window,
                    so a long file is searchable early and a crash resumes where it was):
                    it passes savers to `ctx.save_partial(saver, upto)` (committed at once
                    with the job's resume point), starts at `ctx.resume_at`, and has
                    `discard_partial(store, media_id)`, which the worker calls when the job
                    fails or is cancelled, so an ended job leaves all of its rows or none.
    derives         the tables it fills: a file whose content changed loses their rows
    search_lists    the ranked lists its rows feed into search (`SearchList`: a full-text
                    list names its FTS table; a vector list is ranked by indexer.search.vectors)

Library-wide tasks (binary codes, the motion encoder, tag retraining) follow the
`LibraryTask` contract and are registered beside the stages (app.stages).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, ClassVar, NamedTuple, Protocol

from indexer.store import Store

Saver = Callable[[Store], "str | None"]     # returns the job's note, if any
Emit = Callable[[dict], None]


class Cancelled(Exception):
    """The user cancelled the job; nothing of it is saved."""


@dataclass
class StageContext:
    report: Callable[[float], None] = lambda fraction: None
    cancelled: Callable[[], bool] = lambda: False
    store: Store | None = None           # for stages that build on earlier results
    started: float = field(default_factory=time.monotonic)
    # a job that commits as it goes: None where results are saved only at the end
    save_partial: Callable[[Saver, float], None] | None = None
    resume_at: float = 0.0               # seconds of the file committed before a crash

    def check(self) -> None:
        if self.cancelled():
            raise Cancelled()


class SearchList(NamedTuple):
    """A ranked list that search fuses (weighted reciprocal-rank fusion)."""
    name: str                  # the list's name
    weight: float              # its weight in the fusion (tuned: benchmarks/README.md "Search")
    fts: str | None = None     # a full-text list: its FTS5 table,
    table: str | None = None   # the content table that table indexes,
    column: str | None = None  # and the indexed text column
    kind: str | None = None    # what a match is called on a hit (default: the list's name)


class Stage(Protocol):
    name: ClassVar[str]
    after: ClassVar[tuple[str, ...]]
    derives: ClassVar[tuple[str, ...]]
    search_lists: ClassVar[tuple[SearchList, ...]]

    def applies(self, probe: dict) -> bool: ...

    def run(self, media: dict, ctx: StageContext) -> Saver: ...


# when a library-wide task runs
WHEN_IDLE = "idle"   # once per run, when the queue has run dry after some work; the jobs it
                     # queues (e.g. recomputation) are then run in the same run
WHEN_DONE = "done"   # after the run's last job, when some job was done


class LibraryTask(Protocol):
    name: ClassVar[str]
    when: ClassVar[str]

    def run(self, store: Store, emit: Emit) -> int:
        """Do the work, `emit` events for the caller; returns how many jobs it queued.
        A failure is reported through `emit`, not raised: it costs speed or freshness,
        never indexed results."""

    def cancel(self) -> None:
        """From another thread: stop soon, keeping the library as it was."""
