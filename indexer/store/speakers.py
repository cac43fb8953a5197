"""The Store's speakers (mixed into indexer.store.Store): each file's speakers and turns,
and the voices that tie speakers of different files to one person (schema:
indexer/store/schema_speakers.py).

    store.save_speakers(media_id, speakers, turns, encoder=..., match_threshold=...)
    store.list_speakers(media_id)        # [{id, label, name, voice_id, voice_name, ...}]
    store.speaker_turns(media_id)        # who speaks when, with display names
    store.speaker_at(media_id, 12.3)     # the speaker of the turn at that second, or None
    store.name_voice(voice_id, "Anna")   # names it in every file, and in new files
    store.merge_voices(a, b) / merge_speakers(a, b) / split_speaker(s) / split_voice(v)
    store.files_of_voice(voice_id)       # where else this voice speaks

A speaker with no named voice is shown as "Speaker <label>". A new file's speakers join
the voice whose centroid is nearest, at or above the caller's match threshold (each voice
at most once per file); the others get a voice of their own. A re-run on the same file
keeps the voice a user gave a speaker (the new speaker that overlaps it most inherits it).
A voice holds the speakers of one encoder (GE2E or CAM++, the speaker_model setting): a
name, a merge or a re-run never joins the two, and says so.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

MAX_NAME = 100


def _blob(vec) -> bytes:
    return np.asarray(vec, dtype=np.float32).reshape(-1).tobytes()


def _vec(blob: bytes | None) -> np.ndarray | None:
    """A centroid (stored as float32, whatever the encoder's width)."""
    if blob is None:
        return None
    return np.frombuffer(blob, dtype=np.float32).copy()


def _half(blob: bytes | None) -> np.ndarray | None:
    """A turn's embedding (stored as float16: 256 values for GE2E, 192 for CAM++)."""
    if blob is None:
        return None
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


def speaker_model_of(encoder: str) -> str:
    """The speaker model ("ge2e", "campplus") of a voice's encoder string (its version,
    "campplus-zh-en-..."); a model name gives itself."""
    return encoder.split("-")[0]


def speaker_model_name(encoder: str) -> str:
    """The speaker model a voice's encoder string names, as a person reads it."""
    return {"ge2e": "GE2E", "campplus": "CAM++"}.get(speaker_model_of(encoder), encoder)


def library_speaker_models(library) -> set[str]:
    """The speaker models ("ge2e", "campplus") whose voices a library file holds, read
    without writing anything; empty for a library not made yet or made before voices."""
    import sqlean
    from pathlib import Path
    path = Path(library)
    if not path.is_file():
        return set()
    try:
        conn = sqlean.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
        try:
            rows = conn.execute("SELECT DISTINCT encoder FROM voices").fetchall()
        finally:
            conn.close()
    except sqlean.Error:          # no voices table yet, or a file the Store will report on
        return set()
    return {speaker_model_of(r[0]) for r in rows}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _clean_name(name: str | None) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise ValueError("A voice's name must be text.")
    name = " ".join(name.split())
    if not name:
        return None
    if len(name) > MAX_NAME:
        raise ValueError(f"A voice's name can be at most {MAX_NAME} characters "
                         f"(this one has {len(name)}).")
    return name


def _two_means(vecs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Split unit vectors in two groups (0/1): seeded by the least similar pair,
    refined by weighted 2-means."""
    sims = vecs @ vecs.T
    a, b = np.unravel_index(int(np.argmin(sims)), sims.shape)
    cents = vecs[[a, b]]
    groups = np.zeros(len(vecs), int)
    for _ in range(20):
        new = np.argmax(vecs @ cents.T, axis=1)
        if (new == groups).all() and _ > 0:
            break
        groups = new
        for g in (0, 1):
            if (groups == g).any():
                cents[g] = _unit((vecs[groups == g] * weights[groups == g, None]).sum(axis=0))
    if groups.min() == groups.max():      # everything alike: the least similar one apart
        groups = np.zeros(len(vecs), int)
        groups[b] = 1
    return groups


class SpeakersMixin:
    # ---- saving a file's diarization --------------------------------------------------
    def save_speakers(self, media_id: int, speakers: Sequence[dict], turns: Sequence[dict], *,
                      encoder: str, match_threshold: float) -> list[dict]:
        """Replace the file's speakers and turns. speakers: [{"label" (1, 2, ...),
        "centroid" (unit vector), "seconds", "windows"}]; turns: [{"start", "end",
        "label", "embedding" (or None)}]. Each speaker joins a voice (see the module
        docstring). Returns list_speakers(media_id)."""
        labels = [int(s["label"]) for s in speakers]
        if len(set(labels)) != len(labels):
            raise ValueError(f"two speakers share a label: {labels}")
        unknown = {int(t["label"]) for t in turns} - set(labels)
        if unknown:
            raise ValueError(f"turns of unknown speakers {sorted(unknown)}")
        with self.transaction():
            kept = self._voices_given_by_user(media_id, turns, encoder)
            self.db.execute("DELETE FROM speakers WHERE media_id = ?", (media_id,))
            voices = self._match_voices(speakers, encoder, match_threshold, kept)
            ids = {}
            for sp in speakers:
                label = int(sp["label"])
                voice_id, sim = voices[label]
                if voice_id is None:
                    voice_id = self.db["voices"].insert({"centroid": _blob(sp["centroid"]),
                                                         "encoder": encoder}).last_pk
                ids[label] = self.db["speakers"].insert({
                    "media_id": media_id, "label": label, "voice_id": voice_id,
                    "centroid": _blob(sp["centroid"]), "seconds": float(sp["seconds"]),
                    "windows": int(sp.get("windows", 0)), "matched": sim}).last_pk
            self.db["speaker_turns"].insert_all(
                ({"media_id": media_id, "speaker_id": ids[int(t["label"])],
                  "start": float(t["start"]), "end": float(t["end"]),
                  "embedding": (np.asarray(t["embedding"], dtype=np.float16).tobytes()
                                if t.get("embedding") is not None else None)}
                 for t in turns), batch_size=500)
            self._refresh_voices({v for v, _ in voices.values() if v is not None})
        return self.list_speakers(media_id)

    def _voices_given_by_user(self, media_id: int, turns: Sequence[dict],
                              encoder: str) -> dict[int, int]:
        """label -> voice for new speakers that overlap most an old speaker of this file
        whose voice is named (the user's choice survives a re-run). Only voices of the same
        encoder: a voice's centroid is one encoder's vector (another speaker model's run
        starts voices of its own)."""
        old = self._rows("""SELECT t.start, t.end, s.voice_id FROM speaker_turns t
                            JOIN speakers s ON s.id = t.speaker_id
                            JOIN voices v ON v.id = s.voice_id
                            WHERE t.media_id = ? AND v.name IS NOT NULL AND v.encoder = ?""",
                         (media_id, encoder))
        if not old:
            return {}
        overlap: dict[tuple[int, int], float] = {}
        for t in turns:
            for o in old:
                ov = min(float(t["end"]), o["end"]) - max(float(t["start"]), o["start"])
                if ov > 0:
                    key = (int(t["label"]), o["voice_id"])
                    overlap[key] = overlap.get(key, 0.0) + ov
        out: dict[int, int] = {}
        for (label, voice), _ in sorted(overlap.items(), key=lambda kv: -kv[1]):
            if label not in out and voice not in out.values():
                out[label] = voice
        return out

    def _match_voices(self, speakers: Sequence[dict], encoder: str, threshold: float,
                      kept: dict[int, int]) -> dict[int, tuple[int | None, float | None]]:
        """label -> (voice id or None for a new voice, cosine of the match)."""
        out: dict[int, tuple[int | None, float | None]] = {
            label: (voice, None) for label, voice in kept.items()}
        rows = [r for r in self._rows("SELECT id, centroid FROM voices WHERE encoder = ?",
                                      (encoder,)) if r["id"] not in kept.values()]
        todo = [s for s in speakers if int(s["label"]) not in out]
        if rows and todo:
            V = np.stack([_unit(_vec(r["centroid"])) for r in rows])
            S = np.stack([_unit(np.asarray(s["centroid"], np.float32)) for s in todo])
            sim = S @ V.T
            used: set[int] = set()
            for i, j in sorted(np.ndindex(sim.shape), key=lambda ij: -sim[ij]):
                label = int(todo[i]["label"])
                if sim[i, j] < threshold:
                    break
                if label in out or j in used:
                    continue
                out[label] = (rows[j]["id"], round(float(sim[i, j]), 4))
                used.add(j)
        for s in speakers:
            out.setdefault(int(s["label"]), (None, None))
        return out

    def _refresh_voices(self, voice_ids: Iterable[int]) -> None:
        """A voice's centroid: the speech-weighted mean of its speakers' centroids (kept
        as it was when it has none left)."""
        for vid in voice_ids:
            rows = self._rows("SELECT centroid, seconds FROM speakers WHERE voice_id = ?", (vid,))
            if not rows:
                continue
            mean = sum(_vec(r["centroid"]) * max(r["seconds"], 0.1) for r in rows)
            self.db.execute("UPDATE voices SET centroid = ? WHERE id = ?", (_blob(_unit(mean)), vid))

    # ---- reading -----------------------------------------------------------------------
    _SPEAKER_SQL = """
        SELECT s.id, s.media_id, s.label, s.voice_id, v.name AS voice_name,
               coalesce(v.name, 'Speaker ' || s.label) AS name, s.seconds, s.windows,
               s.matched,
               (SELECT count(*) FROM speaker_turns t WHERE t.speaker_id = s.id) AS turns,
               (SELECT min(t.start) FROM speaker_turns t WHERE t.speaker_id = s.id) AS first_start
        FROM speakers s LEFT JOIN voices v ON v.id = s.voice_id"""

    def speaker(self, speaker_id: int) -> dict | None:
        return self._one(f"{self._SPEAKER_SQL} WHERE s.id = ?", (speaker_id,))

    def list_speakers(self, media_id: int) -> list[dict]:
        """The file's speakers, in label order: id, label, name (the voice's name, else
        "Speaker <label>"), voice_id, voice_name (None while unnamed), seconds, turns,
        first_start, matched."""
        return self._rows(f"{self._SPEAKER_SQL} WHERE s.media_id = ? ORDER BY s.label",
                          (media_id,))

    def speaker_turns(self, media_id: int) -> list[dict]:
        """Who speaks when: [{id, start, end, speaker_id, label, name, voice_id}] by time."""
        return self._rows("""
            SELECT t.id, t.start, t.end, t.speaker_id, s.label, s.voice_id,
                   coalesce(v.name, 'Speaker ' || s.label) AS name
            FROM speaker_turns t JOIN speakers s ON s.id = t.speaker_id
            LEFT JOIN voices v ON v.id = s.voice_id
            WHERE t.media_id = ? ORDER BY t.start, t.id""", (media_id,))

    def speaker_at(self, media_id: int, t: float) -> dict | None:
        """The speaker (as in list_speakers) of the turn at second `t`, or None."""
        row = self._one("""SELECT speaker_id FROM speaker_turns
                           WHERE media_id = ? AND start <= ? AND end >= ?
                           ORDER BY start DESC LIMIT 1""", (media_id, t, t))
        return self.speaker(row["speaker_id"]) if row else None

    def speakers_over(self, media_id: int, spans: Sequence[tuple[float, float]]) -> list[dict | None]:
        """For each (start, end): the speaker (id, label, name, voice_id) whose turns
        overlap it most, or None (for export: a line's or a word's speaker)."""
        turns = self.speaker_turns(media_id)
        if not turns:
            return [None] * len(spans)
        starts = np.array([t["start"] for t in turns])
        ends = np.array([t["end"] for t in turns])
        latest_end = np.maximum.accumulate(ends)
        out: list[dict | None] = []
        for s, e in spans:
            s, e = float(s), float(e)
            hi = int(np.searchsorted(starts, e, side="right"))
            lo = int(np.searchsorted(latest_end, s, side="left"))
            best, best_ov = None, 0.0
            for t in turns[lo:hi]:
                ov = min(e, t["end"]) - max(s, t["start"])
                if e <= s:        # a point: the turn around it
                    ov = 1.0 if t["start"] <= s <= t["end"] else 0.0
                if ov > best_ov:
                    best, best_ov = t, ov
            out.append(None if best is None else {k: best[k] for k in
                                                   ("speaker_id", "label", "name", "voice_id")})
        return out

    def voices(self) -> list[dict]:
        """Every voice: id, name, encoder, files, seconds; named ones first, by name."""
        return self._rows("""
            SELECT v.id, v.name, v.encoder, count(DISTINCT s.media_id) AS files,
                   coalesce(sum(s.seconds), 0) AS seconds
            FROM voices v LEFT JOIN speakers s ON s.voice_id = v.id
            GROUP BY v.id ORDER BY v.name IS NULL, v.name COLLATE NOCASE, v.id""")

    def voice(self, voice_id: int) -> dict | None:
        return self._one("SELECT id, name, encoder, created_at, named_at FROM voices "
                         "WHERE id = ?", (voice_id,))

    def voice_by_name(self, name: str) -> dict | None:
        return self._one("SELECT id, name, encoder, created_at, named_at FROM voices "
                         "WHERE name = ?", (" ".join(name.split()),))

    def voice_centroid(self, voice_id: int) -> np.ndarray | None:
        row = self._one("SELECT centroid FROM voices WHERE id = ?", (voice_id,))
        return None if row is None else _vec(row["centroid"])

    def files_of_voice(self, voice_id: int) -> list[dict]:
        """Where this voice speaks: [{media_id, path, speaker_id, label, seconds, turns,
        first_start}] by path."""
        return self._rows("""
            SELECT s.media_id, m.path, s.id AS speaker_id, s.label, s.seconds,
                   (SELECT count(*) FROM speaker_turns t WHERE t.speaker_id = s.id) AS turns,
                   (SELECT min(t.start) FROM speaker_turns t WHERE t.speaker_id = s.id) AS first_start
            FROM speakers s JOIN media m ON m.id = s.media_id
            WHERE s.voice_id = ? ORDER BY m.path""", (voice_id,))

    def turns_of_voice(self, voice_id: int, media_ids: Iterable[int] | None = None) -> list[dict]:
        """The voice's turns across the library (or in `media_ids`): [{media_id, start,
        end, turn_id}] by file and time (for a speaker filter in search)."""
        sql = """SELECT t.media_id, t.start, t.end, t.id AS turn_id FROM speaker_turns t
                 JOIN speakers s ON s.id = t.speaker_id WHERE s.voice_id = ?"""
        params: list = [voice_id]
        if media_ids is not None:
            ids = list(media_ids)
            sql += f" AND t.media_id IN ({','.join('?' * len(ids))})"
            params += ids
        return self._rows(sql + " ORDER BY t.media_id, t.start", params)

    # ---- naming, merging, splitting ----------------------------------------------------
    def name_voice(self, voice_id: int, name: str | None) -> int:
        """Name a voice (None or blank: unnamed again). A name another voice already has
        means they are one person: this voice is merged into that one, whose id is
        returned. ValueError for an unusable name, KeyError for an unknown voice."""
        name = _clean_name(name)
        with self.transaction():
            if self.voice(voice_id) is None:
                raise KeyError(f"no voice {voice_id}")
            if name is not None:
                other = self._one("SELECT id FROM voices WHERE name = ? AND id != ?",
                                  (name, voice_id))
                if other is not None:
                    self._same_model(self.voice(other["id"]), self.voice(voice_id), name)
                    self.db.execute("UPDATE voices SET name = ?, named_at = "
                                    "strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?",
                                    (name, other["id"]))
                    return self.merge_voices(other["id"], voice_id)
            self.db.execute("UPDATE voices SET name = ?, named_at = CASE WHEN ? IS NULL THEN "
                            "NULL ELSE strftime('%Y-%m-%dT%H:%M:%fZ','now') END WHERE id = ?",
                            (name, name, voice_id))
            if name is None and not self._one("SELECT 1 AS x FROM speakers WHERE voice_id = ?",
                                              (voice_id,)):
                self.db.execute("DELETE FROM voices WHERE id = ?", (voice_id,))
        return voice_id

    def name_speaker(self, speaker_id: int, name: str | None) -> int:
        """Name a file's speaker: names its voice (in every file). Returns the voice id."""
        sp = self.speaker(speaker_id)
        if sp is None:
            raise KeyError(f"no speaker {speaker_id}")
        return self.name_voice(sp["voice_id"], name)

    def merge_voices(self, keep_id: int, other_id: int) -> int:
        """One person: every speaker of `other_id` joins `keep_id` (which keeps its name, or
        takes the other's). In a file where both speak, the two speakers become one.
        Returns keep_id."""
        if keep_id == other_id:
            return keep_id
        with self.transaction():
            keep, other = self.voice(keep_id), self.voice(other_id)
            if keep is None or other is None:
                raise KeyError(f"no voice {other_id if keep else keep_id}")
            self._same_model(keep, other)
            for row in self._rows("""SELECT a.id AS a, b.id AS b FROM speakers a
                                     JOIN speakers b ON b.media_id = a.media_id
                                     WHERE a.voice_id = ? AND b.voice_id = ?""",
                                  (keep_id, other_id)):
                self._merge_speaker_rows(row["a"], row["b"])
            name = keep["name"] or other["name"]
            self.db.execute("UPDATE speakers SET voice_id = ? WHERE voice_id = ?",
                            (keep_id, other_id))
            self.db.execute("DELETE FROM voices WHERE id = ?", (other_id,))
            if name and not keep["name"]:
                self.db.execute("UPDATE voices SET name = ?, named_at = "
                                "strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?",
                                (name, keep_id))
            self._refresh_voices([keep_id])
        return keep_id

    @staticmethod
    def _same_model(a: dict, b: dict, name: str | None = None) -> None:
        """ValueError, saying why, when two voices were found by different speaker models
        (their centroids are vectors of different encoders and cannot be one voice)."""
        if a["encoder"] == b["encoder"] or "unknown" in (a["encoder"], b["encoder"]):
            return
        what = f"'{name}' already names a voice" if name else "That voice was"
        first, second = speaker_model_name(a["encoder"]), speaker_model_name(b["encoder"])
        raise ValueError(
            f"{what} found by the {first} speaker model, this one by {second}: voices of two "
            "speaker models cannot be one. Give another name, or index the files again with "
            "one speaker model.")

    def merge_speakers(self, keep_id: int, other_id: int) -> int:
        """Two speakers of one file are one person: the other's turns become keep's, which
        keeps its voice (the other's voice goes if no speaker has it and it has no name).
        Returns keep_id."""
        if keep_id == other_id:
            return keep_id
        with self.transaction():
            a, b = self.speaker(keep_id), self.speaker(other_id)
            if a is None or b is None:
                raise KeyError(f"no speaker {other_id if a else keep_id}")
            if a["media_id"] != b["media_id"]:
                raise ValueError("Only speakers of the same file can be merged; to say two "
                                 "files' speakers are one person, merge their voices.")
            self._merge_speaker_rows(keep_id, other_id)
            self._refresh_voices([a["voice_id"]] if a["voice_id"] else [])
        return keep_id

    def _merge_speaker_rows(self, keep_id: int, other_id: int) -> None:
        rows = {r["id"]: r for r in self._rows(
            "SELECT id, centroid, seconds, windows FROM speakers WHERE id IN (?, ?)",
            (keep_id, other_id))}
        a, b = rows[keep_id], rows[other_id]
        centroid = _unit(_vec(a["centroid"]) * max(a["seconds"], 0.1)
                         + _vec(b["centroid"]) * max(b["seconds"], 0.1))
        self.db.execute("UPDATE speaker_turns SET speaker_id = ? WHERE speaker_id = ?",
                        (keep_id, other_id))
        self.db.execute("UPDATE speakers SET centroid = ?, seconds = ?, windows = ? WHERE id = ?",
                        (_blob(centroid), a["seconds"] + b["seconds"],
                         a["windows"] + b["windows"], keep_id))
        self.db.execute("DELETE FROM speakers WHERE id = ?", (other_id,))

    def split_speaker(self, speaker_id: int, turn_ids: Sequence[int] | None = None) -> int:
        """A speaker that is two people: the given turns (or, with None, the group of its
        turns least like the rest, by their embeddings) become a new speaker of the file
        with a voice of its own. Returns the new speaker's id."""
        with self.transaction():
            sp = self.speaker(speaker_id)
            if sp is None:
                raise KeyError(f"no speaker {speaker_id}")
            turns = self._rows("SELECT id, start, end, embedding FROM speaker_turns "
                               "WHERE speaker_id = ? ORDER BY start", (speaker_id,))
            if len(turns) < 2:
                raise ValueError(f"{sp['name']} has {len(turns)} turn(s) in this file: there "
                                 "is nothing to split.")
            ids = [t["id"] for t in turns]
            if turn_ids is None:
                usable = [t for t in turns if t["embedding"] is not None]
                if len(usable) < 2:
                    raise ValueError(f"{sp['name']}'s turns are too short to tell voices "
                                     "apart: pick the turns to split off.")
                vecs = np.stack([_unit(_half(t["embedding"])) for t in usable])
                groups = _two_means(vecs, np.array([t["end"] - t["start"] for t in usable]))
                minority = 1 if (groups == 1).sum() <= (groups == 0).sum() else 0
                moving = {t["id"] for t, g in zip(usable, groups) if g == minority}
            else:
                moving = {int(t) for t in turn_ids}
                foreign = moving - set(ids)
                if foreign:
                    raise ValueError(f"turns {sorted(foreign)} are not {sp['name']}'s.")
                if not moving:
                    raise ValueError("Pick at least one turn to split off.")
                if moving == set(ids):
                    raise ValueError(f"{sp['name']} needs at least one turn left.")
            label = self._one("SELECT max(label) AS m FROM speakers WHERE media_id = ?",
                              (sp["media_id"],))["m"] + 1
            old = self._one("SELECT centroid, windows FROM speakers WHERE id = ?", (speaker_id,))
            stay = [t for t in turns if t["id"] not in moving]
            move = [t for t in turns if t["id"] in moving]
            fallback = _vec(old["centroid"])
            voice = self.voice(sp["voice_id"]) if sp["voice_id"] else None
            new_centroid = self._turns_centroid(move, fallback)
            new_voice = self.db["voices"].insert({
                "centroid": _blob(new_centroid),
                "encoder": voice["encoder"] if voice else "unknown"}).last_pk
            new_id = self.db["speakers"].insert({
                "media_id": sp["media_id"], "label": label, "voice_id": new_voice,
                "centroid": _blob(new_centroid),
                "seconds": sum(t["end"] - t["start"] for t in move), "windows": 0,
                "matched": None}).last_pk
            self.db.conn.executemany("UPDATE speaker_turns SET speaker_id = ? WHERE id = ?",
                                     [(new_id, t["id"]) for t in move])
            self.db.execute("UPDATE speakers SET centroid = ?, seconds = ?, matched = NULL "
                            "WHERE id = ?", (_blob(self._turns_centroid(stay, fallback)),
                                             sum(t["end"] - t["start"] for t in stay), speaker_id))
            if sp["voice_id"]:
                self._refresh_voices([sp["voice_id"]])
        return new_id

    @staticmethod
    def _turns_centroid(turns: Sequence[dict], fallback: np.ndarray) -> np.ndarray:
        vecs = [(_half(t["embedding"]), t["end"] - t["start"]) for t in turns
                if t["embedding"] is not None]
        if not vecs:
            return _unit(fallback)
        return _unit(sum(_unit(v) * max(w, 0.1) for v, w in vecs))

    def split_voice(self, voice_id: int, speaker_ids: Sequence[int] | None = None) -> int:
        """A voice that is two people: the given file speakers (or, with None, the group
        least like the rest) move to a new, unnamed voice. Returns its id."""
        with self.transaction():
            voice = self.voice(voice_id)
            if voice is None:
                raise KeyError(f"no voice {voice_id}")
            members = self._rows("SELECT id, centroid, seconds FROM speakers WHERE voice_id = ?",
                                 (voice_id,))
            if len(members) < 2:
                raise ValueError("This voice is heard in one file only: split the speaker "
                                 "in that file instead.")
            if speaker_ids is None:
                vecs = np.stack([_unit(_vec(m["centroid"])) for m in members])
                groups = _two_means(vecs, np.array([m["seconds"] for m in members]))
                minority = 1 if (groups == 1).sum() <= (groups == 0).sum() else 0
                moving = {m["id"] for m, g in zip(members, groups) if g == minority}
            else:
                moving = {int(s) for s in speaker_ids}
                foreign = moving - {m["id"] for m in members}
                if foreign:
                    raise ValueError(f"speakers {sorted(foreign)} do not have this voice.")
                if not moving or len(moving) == len(members):
                    raise ValueError("Pick some, not all, of the voice's speakers to split off.")
            move = [m for m in members if m["id"] in moving]
            centroid = _unit(sum(_vec(m["centroid"]) * max(m["seconds"], 0.1) for m in move))
            new_voice = self.db["voices"].insert({"centroid": _blob(centroid),
                                                  "encoder": voice["encoder"]}).last_pk
            self.db.conn.executemany("UPDATE speakers SET voice_id = ?, matched = NULL "
                                     "WHERE id = ?", [(new_voice, m["id"]) for m in move])
            self._refresh_voices([voice_id, new_voice])
        return new_voice
