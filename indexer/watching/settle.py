"""Waiting for a file's writes to end before it is taken.

A file being copied, downloaded or recorded is written for a while; taking it halfway
would index a truncated file. A file is "settled" once its size and modification time
have not changed, and no write was seen, for `settle_s` seconds. A file written in ten
slow chunks is therefore taken once, after its last write."""
from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from typing import Callable

DEFAULT_SETTLE_S = 2.0


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    quiet_since: float      # when it was last seen changing


class Settler:
    """Files waiting to settle. Not thread-safe: one thread (the watcher's) owns it."""

    def __init__(self, settle_s: float = DEFAULT_SETTLE_S,
                 clock: Callable[[], float] = time.monotonic):
        self.settle_s = settle_s
        self.clock = clock
        self._pending: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, path: str) -> bool:
        return path in self._pending

    def touch(self, path: str) -> None:
        """A write (or the file's appearance) was seen: its quiet period starts again."""
        st = _stat(path)
        if st is None:
            self._pending.pop(path, None)
        else:
            self._pending[path] = _Pending(st.st_size, st.st_mtime_ns, self.clock())

    def forget(self, path: str) -> bool:
        """The file is gone (deleted, moved away); True if it was waiting."""
        return self._pending.pop(path, None) is not None

    def forget_under(self, folder: str) -> None:
        base = folder.rstrip("/") + "/"
        for path in [p for p in self._pending if p.startswith(base)]:
            del self._pending[path]

    def move(self, src: str, dest: str) -> bool:
        """A waiting file was renamed: it waits on under its new name (a rename is not a
        write). True if `src` was waiting."""
        entry = self._pending.pop(src, None)
        if entry is not None:
            self._pending[dest] = entry
        return entry is not None

    def due(self) -> list[str]:
        """The files that have settled, in the order they were first seen; they stop
        waiting. Files that vanished are dropped."""
        now = self.clock()
        settled = []
        for path, entry in list(self._pending.items()):
            st = _stat(path)
            if st is None:
                del self._pending[path]
            elif (st.st_size, st.st_mtime_ns) != (entry.size, entry.mtime_ns):
                self._pending[path] = _Pending(st.st_size, st.st_mtime_ns, now)
            elif now - entry.quiet_since >= self.settle_s:
                del self._pending[path]
                settled.append(path)
        return settled


def _stat(path: str) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None
