"""Time spans of one voice or one person, per file, for the speaker and person filters:
which moments they overlap, and the second to play a hit from so that it is the voice
speaking or the person on screen."""
from __future__ import annotations

import bisect
from typing import Iterable

from indexer.search.types import Hit, Item

SLACK_S = 0.01      # spans this close count as touching (float rounding of stored times)


class TimeSpans:
    """Spans (start, end) per file, merged where they overlap so that their ends sort
    like their starts (two face tracks of one person may overlap)."""

    def __init__(self, rows: Iterable[tuple[int, float, float]]):
        spans: dict[int, list[tuple[float, float]]] = {}
        for media_id, start, end in rows:
            spans.setdefault(media_id, []).append((float(start), float(end)))
        self._by_media: dict[int, tuple[list[float], list[float]]] = {}
        for media_id, items in spans.items():
            merged: list[list[float]] = []
            for s, e in sorted(items):
                if merged and s <= merged[-1][1] + SLACK_S:
                    merged[-1][1] = max(merged[-1][1], e)
                else:
                    merged.append([s, e])
            self._by_media[media_id] = ([m[0] for m in merged], [m[1] for m in merged])

    def media_ids(self) -> list[int]:
        return list(self._by_media)

    def spans(self, media_id: int) -> list[tuple[float, float]]:
        starts, ends = self._by_media.get(media_id, ([], []))
        return list(zip(starts, ends))

    def _around(self, media_id: int, start: float, end: float) -> list[tuple[float, float]]:
        starts, ends = self._by_media.get(media_id, ([], []))
        lo = bisect.bisect_left(ends, start - SLACK_S)
        hi = bisect.bisect_right(starts, end + SLACK_S)
        return list(zip(starts[lo:hi], ends[lo:hi]))

    def overlaps(self, media_id: int, start: float, end: float) -> bool:
        return bool(self._around(media_id, start, max(end, start)))

    def holds(self, media_id: int, t: float) -> bool:
        """Whether a span holds the second t."""
        return any(s - SLACK_S <= t <= e + SLACK_S for s, e in self._around(media_id, t, t))

    def first_in(self, media_id: int, start: float, end: float) -> float | None:
        """The first second of [start, end] that a span holds."""
        around = self._around(media_id, start, max(end, start))
        return max(start, around[0][0]) if around else None

    def keep(self, items: list[Item]) -> list[Item]:
        """The items that overlap a span, ranked again in their order."""
        out = [it for it in items if self.overlaps(it.media_id, it.start, it.end)]
        for r, it in enumerate(out, 1):
            it.rank = r
        return out

    def seek_within(self, hit: Hit) -> None:
        """Play a hit from a second a span holds: its second to play moves to the first
        such second of the moment, when it is not one."""
        if self.holds(hit.media_id, hit.seek):
            return
        t = self.first_in(hit.media_id, hit.seek, hit.end)
        if t is None:
            t = self.first_in(hit.media_id, hit.start, hit.end)
        if t is not None:
            hit.seek = min(max(t, hit.start), hit.end)
