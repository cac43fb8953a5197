"""Read-only queries the GUI needs beyond Store's own methods. Nothing here writes."""
from __future__ import annotations

from indexer.store import Store


def segment_words(store: Store, media_id: int, start: float) -> list[dict]:
    """Word timings of the speech segment starting at `start`, or [] when the user
    corrected that line (its words no longer match its text). Subtitle lines have none."""
    return list(store.db.query("""
        SELECT w.start, w.end, w.word FROM words w JOIN segments s ON s.id = w.segment_id
        WHERE s.media_id = ? AND abs(s.start - ?) < 0.001 AND s.source = 'speech'
          AND NOT EXISTS (SELECT 1 FROM corrections c
                          WHERE c.media_id = s.media_id AND abs(c.start - s.start) < 0.05)
        ORDER BY w.start""", (media_id, start)))



def segment_media(store: Store, segment_id: int) -> int | None:
    row = next(iter(store.db.query("SELECT media_id FROM segments WHERE id = ?", (segment_id,))),
               None)
    return row["media_id"] if row else None


def tag_ranges(store: Store, media_id: int) -> list[dict]:
    """Every tag range of one file (any source: imagenet, action, user, ...), by label
    then time: what the player's tag timeline draws."""
    return list(store.db.query("""
        SELECT id, start, end, label, source, score FROM tags
        WHERE media_id = ? ORDER BY label, start""", (media_id,)))


def first_thumbnails(store: Store) -> dict[int, str]:
    """media id -> thumbnail (relative to the thumbnail folder) of its first keyframe
    that has one. One index seek per file (keyframes_media), not a scan of keyframes."""
    rows = store.db.execute("""
        SELECT m.id, (SELECT k.thumbnail FROM keyframes k
                      WHERE k.media_id = m.id AND k.thumbnail IS NOT NULL
                      ORDER BY k.time LIMIT 1)
        FROM media m""").fetchall()
    return {mid: thumb for mid, thumb in rows if thumb}


def media_kinds(store: Store, media_ids) -> dict[int, str | None]:
    """media id -> kind (audio, video, audio+video; None before probing)."""
    ids = sorted(set(media_ids))
    if not ids:
        return {}
    rows = store.db.execute(f"SELECT id, kind FROM media WHERE id IN "
                            f"({','.join('?' * len(ids))})", ids).fetchall()
    return {mid: kind for mid, kind in rows}


def thumbnail_near(store: Store, media_id: int, time: float, within: float) -> str | None:
    """The thumbnail (relative to the thumbnail folder) of the file's keyframe nearest
    `time`, if one lies within `within` seconds; uses the keyframes_media index."""
    row = store.db.execute("""
        SELECT thumbnail FROM keyframes
        WHERE media_id = ? AND thumbnail IS NOT NULL AND time BETWEEN ? AND ?
        ORDER BY abs(time - ?) LIMIT 1""",
        (media_id, time - within, time + within, time)).fetchone()
    return row[0] if row else None
