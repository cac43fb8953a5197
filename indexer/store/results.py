"""The Store's writers and readers of stage results (mixed into indexer.store.Store):
probe facts, said text (speech transcripts with the user's corrections, and the lines of
the subtitle tracks a file carries), the text index (window vectors and
keywords), and the visual results (keyframes with their vectors, tags, screen text)."""
from __future__ import annotations

import json
from typing import Iterable, Sequence

import numpy as np

from indexer.store.schema import SEGMENT_DIM
from indexer.store.vec_codec import int8_blob


class ResultsMixin:
    # ---- probe ---------------------------------------------------------------------
    def save_probe(self, media_id: int, probe: dict, next_stages: Iterable[str]) -> None:
        with self.transaction():
            self.db["media"].update(media_id, {
                "duration": probe["duration"], "container": probe["container"],
                "streams": json.dumps(probe["streams"]), "kind": probe["kind"]})
            for stage in next_stages:
                self._queue(media_id, stage)

    # ---- transcript and corrections -----------------------------------------------------
    # A file's said text comes from speech recognition (source 'speech') and from the
    # subtitle tracks it carries (source 'subtitles', one `track` label per track). Each
    # source is replaced on its own: re-transcribing keeps the subtitle lines, re-reading
    # the subtitles keeps the speech. User corrections apply to speech lines only (a
    # subtitle line is what its track says).
    def save_transcript(self, media_id: int, language: str | None,
                        segments: list[dict]) -> None:
        """Replace the media's speech transcript. Each segment dict carries its words."""
        with self.transaction():
            self.drop_speech(media_id)
            self.db["media"].update(media_id, {"language": language})
            self._insert_speech(media_id, language, segments)
            self._apply_corrections(media_id)

    def save_speech_part(self, media_id: int, since: float, segments: list[dict]) -> None:
        """Commit a part of a transcript still being made: the speech lines from `since`
        on are replaced by `segments` (lines that start before it stay). save_transcript
        replaces the whole once the file is done."""
        with self.transaction():
            self.drop_speech(media_id, since)
            self._insert_speech(media_id, None, segments)
            self._apply_corrections(media_id)

    def speech_lines_before(self, media_id: int, before: float) -> list[dict]:
        """The speech lines that start before `before` as save_transcript takes them
        (with their words, as recognised: a user's corrections are applied on saving)."""
        lines = self._rows("""
            SELECT s.id, s.start, s.end, coalesce(c.original, s.text) AS text, s.language,
                   s.confidence
            FROM segments s LEFT JOIN corrections c
              ON c.media_id = s.media_id AND abs(c.start - s.start) < 0.05
            WHERE s.media_id = ? AND s.source = 'speech' AND s.start < ?
            ORDER BY s.start, s.id""", (media_id, before))
        words: dict[int, list[dict]] = {}
        for w in self._rows("""SELECT w.segment_id, w.start, w.end, w.word, w.probability
                               FROM words w JOIN segments s ON s.id = w.segment_id
                               WHERE s.media_id = ? AND s.source = 'speech' AND s.start < ?
                               ORDER BY w.start""", (media_id, before)):
            words.setdefault(w.pop("segment_id"), []).append(w)
        for line in lines:
            line["words"] = words.get(line.pop("id"), [])
        return lines

    def drop_speech(self, media_id: int, since: float | None = None) -> None:
        """The file's speech lines (those starting at `since` or later) are removed."""
        with self.transaction():
            self.db.execute("DELETE FROM segments WHERE media_id = ? AND source = 'speech'"
                            + ("" if since is None else " AND start >= ?"),
                            (media_id,) if since is None else (media_id, since))

    def has_speech(self, media_id: int) -> bool:
        return self._one("SELECT 1 AS x FROM segments WHERE media_id = ? AND "
                         "source = 'speech' LIMIT 1", (media_id,)) is not None

    def _insert_speech(self, media_id: int, language: str | None,
                       segments: list[dict]) -> None:
        for seg in segments:
            seg_id = self.db["segments"].insert({
                "media_id": media_id, "start": seg["start"], "end": seg["end"],
                "text": seg["text"], "language": seg.get("language") or language,
                "confidence": seg.get("confidence"), "source": "speech"}).last_pk
            self.db["words"].insert_all(
                ({"segment_id": seg_id, "start": w["start"], "end": w["end"],
                  "word": w["word"], "probability": w.get("probability")}
                 for w in seg.get("words", ())), batch_size=500)

    def save_subtitle_lines(self, media_id: int, tracks: Sequence[dict]) -> None:
        """Replace the media's subtitle lines (its speech transcript stays). Each track:
        {"track": label, "language": code or None, "lines": [{"start", "end", "text"}]};
        labels are unique per file."""
        labels = [t["track"] for t in tracks]
        if len(set(labels)) != len(labels):
            raise ValueError(f"two subtitle tracks share a label: {labels}")
        with self.transaction():
            self.db.execute("DELETE FROM segments WHERE media_id = ? AND source = 'subtitles'",
                            (media_id,))
            for t in tracks:
                self.db["segments"].insert_all(
                    ({"media_id": media_id, "start": float(ln["start"]),
                      "end": float(ln["end"]), "text": ln["text"], "language": t.get("language"),
                      "source": "subtitles", "track": t["track"]} for ln in t["lines"]),
                    batch_size=500)

    def _apply_corrections(self, media_id: int) -> None:
        self.db.execute("""
            UPDATE segments SET text = c.text FROM corrections c
            WHERE segments.media_id = ? AND segments.source = 'speech'
              AND c.media_id = segments.media_id AND abs(c.start - segments.start) < 0.05""",
                        (media_id,))

    def correct_segment(self, segment_id: int, text: str) -> None:
        """A user's edit: it wins over the ASR text in search and export, and is
        re-applied when the file is transcribed again. Subtitle lines are what their
        track says and are not corrected here (ValueError)."""
        with self.transaction():
            seg = self._one("SELECT * FROM segments WHERE id = ?", (segment_id,))
            if seg is None:
                raise KeyError(f"no segment {segment_id}")
            if seg["source"] != "speech":
                raise ValueError(f"This line comes from the subtitle track {seg['track']!r}, "
                                 "not from speech recognition: correct the subtitle file "
                                 "itself and index the file again.")
            original = self._one("SELECT original FROM corrections WHERE media_id=? AND "
                                 "abs(start - ?) < 0.05", (seg["media_id"], seg["start"]))
            self.db.execute("DELETE FROM corrections WHERE media_id=? AND abs(start - ?) < 0.05",
                            (seg["media_id"], seg["start"]))
            self.db["corrections"].insert({
                "media_id": seg["media_id"], "start": seg["start"], "end": seg["end"],
                "original": original["original"] if original else seg["text"], "text": text})
            self.db.execute("UPDATE segments SET text = ? WHERE id = ?", (text, segment_id))

    def transcript(self, media_id: int, source: str | None = None,
                   track: str | None = None) -> list[dict]:
        """Lines (user corrections applied) with their words, `source` ('speech' or
        'subtitles') and `track` (the subtitle track's label, None for speech), by time.
        source None: every source's lines; 'subtitles' with a `track`: that track's."""
        where, params = ["s.media_id = ?"], [media_id]
        if source is not None:
            where.append("s.source = ?")
            params.append(source)
        if track is not None:
            where.append("s.track = ?")
            params.append(track)
        segs = self._rows(f"""
            SELECT s.id, s.start, s.end, s.language, s.confidence, s.text, s.source, s.track,
                   c.id IS NOT NULL AS corrected
            FROM segments s LEFT JOIN corrections c
              ON s.source = 'speech' AND c.media_id = s.media_id
                 AND abs(c.start - s.start) < 0.05
            WHERE {" AND ".join(where)} ORDER BY s.start, s.id""", params)
        words: dict[int, list[dict]] = {}
        if source in (None, "speech"):
            for w in self._rows("""SELECT w.segment_id, w.start, w.end, w.word, w.probability
                                   FROM words w JOIN segments s ON s.id = w.segment_id
                                   WHERE s.media_id = ? ORDER BY w.start""", (media_id,)):
                words.setdefault(w.pop("segment_id"), []).append(w)
        for s in segs:
            # Word timings of a corrected line no longer match its text.
            s["words"] = [] if s["corrected"] else words.get(s["id"], [])
        return segs

    def transcript_tracks(self, media_id: int) -> list[dict]:
        """The file's sources of said text: [{"source", "track", "language", "lines"}],
        speech first (when it has lines), then the subtitle tracks in the order they were
        read (embedded by stream, then sidecar files). A track's language is its lines'
        (for speech: the file's)."""
        return self._rows("""
            SELECT s.source, s.track,
                   CASE WHEN s.source = 'speech' THEN coalesce(m.language, max(s.language))
                        ELSE max(s.language) END AS language,
                   count(*) AS lines
            FROM segments s JOIN media m ON m.id = s.media_id
            WHERE s.media_id = ? GROUP BY s.source, s.track
            ORDER BY s.source != 'speech', min(s.id)""", (media_id,))

    def export_transcript(self, media_id: int, choice: str | None = None) -> list[dict]:
        """The lines to export: choice None, the file's speech transcript when it has one,
        else its first subtitle track; 'speech'; 'subtitles' (its first subtitle track);
        or a subtitle track's label. [] when the file has no such lines; LookupError,
        naming the file's tracks, for a label it does not have."""
        tracks = self.transcript_tracks(media_id)
        if choice is None:
            pick = tracks[0] if tracks else None
        elif choice in ("speech", "subtitles"):
            pick = next((t for t in tracks if t["source"] == choice), None)
        else:
            pick = next((t for t in tracks if t["source"] == "subtitles"
                         and t["track"] == choice), None)
            if pick is None:
                have = ", ".join(f"“{t['track']}”" for t in tracks if t["track"]) or "none"
                raise LookupError(f"This file has no subtitle track “{choice}” (its tracks: "
                                  f"{have}).")
        if pick is None:
            return []
        return self.transcript(media_id, pick["source"], pick["track"])

    # ---- text index -------------------------------------------------------------------
    def save_text_index(self, media_id: int, windows: Sequence[dict], embeddings,
                        keywords: Sequence[dict]) -> None:
        """Replace the media's keywords and window vectors, in one transaction.

        Each window is stored under the id of its first segment (see
        indexer.stages.text), with the media's kind and the window's majority language
        as vec0 metadata ('' when unknown: vec0 metadata columns cannot hold NULL).
        A window without segment ids, or of another media's segments, raises; one with
        an all-zero embedding is skipped.
        """
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if len(windows) != len(embeddings):
            raise ValueError(f"{len(windows)} windows but {len(embeddings)} embeddings")
        if len(windows) and embeddings.shape[1] != SEGMENT_DIM:
            raise ValueError(f"segment_vec holds {SEGMENT_DIM}-d vectors; got "
                             f"{embeddings.shape[1]}-d (wrong text embedder for this library)")
        rows = []
        for w, vec in zip(windows, embeddings):
            if not w.get("segment_ids"):
                raise ValueError("windows need segment ids: build them from Store.transcript()")
            norm = float(np.linalg.norm(vec))
            if norm == 0 or not np.isfinite(norm):
                continue
            rows.append((int(w["segment_ids"][0]), int8_blob(vec), w.get("language") or ""))
        db = self.db
        with self.transaction():
            media = db.execute("SELECT kind FROM media WHERE id = ?", (media_id,)).fetchone()
            if media is None:
                raise KeyError(f"no media {media_id}")
            kind = media[0] or ""
            seg_ids = [r[0] for r in db.execute("SELECT id FROM segments WHERE media_id = ?",
                                                (media_id,)).fetchall()]
            # Every vector of this media is keyed by one of its segment ids.
            db.conn.executemany("DELETE FROM segment_vec WHERE segment_id = ?",
                                [(s,) for s in seg_ids])
            known = set(seg_ids)
            missing = [r[0] for r in rows if r[0] not in known]
            if missing:
                raise ValueError(f"segments {missing[:5]} do not belong to media {media_id}")
            db.conn.executemany(
                "INSERT INTO segment_vec(segment_id, embedding, media_id, kind, language) "
                "VALUES (?, vec_int8(?), ?, ?, ?)",
                [(sid, emb, media_id, kind, lang) for sid, emb, lang in rows])
            db.execute("DELETE FROM keywords WHERE media_id = ?", (media_id,))
            db["keywords"].insert_all(
                ({"media_id": media_id, "start": k.get("start"), "end": k.get("end"),
                  "keyword": k["keyword"], "score": k.get("score")} for k in keywords),
                batch_size=500)

    # ---- visual -----------------------------------------------------------------------
    def save_visual(self, media_id: int, keyframes: list[dict], tags: list[dict],
                    screen_text: list[dict], features, replace_sources=("imagenet",)) -> None:
        """Replace a media's keyframes (and their vectors), its tags of the given
        sources and its screen text. Tags of other sources (user, action, ...) stay.

        keyframes: time, shot, thumbnail, kind (keyframe_vec metadata); features: one
        1280-d vector per keyframe, or None; tags: start, end, label, source, score;
        screen_text: start, end, text, confidence.
        """
        features = list(features) if features is not None else []
        if features and len(features) != len(keyframes):
            raise ValueError(f"{len(features)} features for {len(keyframes)} keyframes")
        db = self.db
        with self.transaction():
            # the keyframes_vec_ad trigger removes the old vectors with their keyframes
            db.execute("DELETE FROM keyframes WHERE media_id = ?", (media_id,))
            sources = sorted({t["source"] for t in tags} | set(replace_sources))
            db.execute(f"DELETE FROM tags WHERE media_id = ? AND source IN "
                       f"({','.join('?' * len(sources))})", (media_id, *sources))
            db.execute("DELETE FROM screen_text WHERE media_id = ?", (media_id,))
            for i, kf in enumerate(keyframes):
                cur = db.execute("INSERT INTO keyframes(media_id, time, shot, thumbnail) "
                                 "VALUES (?, ?, ?, ?)", (media_id, float(kf["time"]),
                                                         kf.get("shot"), kf.get("thumbnail")))
                vec = features[i] if features else None
                if vec is not None:
                    db.execute("INSERT INTO keyframe_vec(keyframe_id, embedding, media_id, kind) "
                               "VALUES (?, vec_int8(?), ?, ?)", (cur.lastrowid, int8_blob(vec), media_id,
                                                       kf.get("kind", "video")))
            db["tags"].insert_all(({"media_id": media_id, "start": float(t["start"]),
                                    "end": float(t["end"]), "label": t["label"],
                                    "source": t["source"], "score": t.get("score")}
                                   for t in tags), batch_size=500)
            db["screen_text"].insert_all(({"media_id": media_id, "start": float(s["start"]),
                                           "end": float(s["end"]), "text": s["text"],
                                           "confidence": s.get("confidence")}
                                          for s in screen_text), batch_size=500)
