"""Read-only queries the GUI needs beyond Store's own methods. Nothing here writes."""
from __future__ import annotations

from .store import Store


def segment_words(store: Store, media_id: int, start: float) -> list[dict]:
    """Word timings of the segment starting at `start`, or [] when the user corrected
    that line (its words no longer match its text)."""
    return list(store.db.query("""
        SELECT w.start, w.end, w.word FROM words w JOIN segments s ON s.id = w.segment_id
        WHERE s.media_id = ? AND abs(s.start - ?) < 0.001
          AND NOT EXISTS (SELECT 1 FROM corrections c
                          WHERE c.media_id = s.media_id AND abs(c.start - s.start) < 0.05)
        ORDER BY w.start""", (media_id, start)))



def segment_media(store: Store, segment_id: int) -> int | None:
    row = next(iter(store.db.query("SELECT media_id FROM segments WHERE id = ?", (segment_id,))),
               None)
    return row["media_id"] if row else None
