"""The Store's motion methods (mixed into indexer.store.Store; the only SQL for motion).

Encoders are versioned: each descriptor row records the version that made it. Adding an
encoder makes it current and queues the `motion` stage for every video whose windows
were made by another version (the recomputation), in the same transaction.
"""
from __future__ import annotations

import json
from typing import Iterable

import numpy as np

from models.motion.layout import DESCRIPTOR_DIM

from indexer.store.schema import KEYFRAME_DIM
from indexer.store.vec_codec import int8_rows_to_float

ACTION_SOURCES = ("action", "motion-group")
MOTION_STAGE = "motion"


def _blob(vec) -> bytes:
    return np.asarray(vec, dtype=np.float32).tobytes()


class MotionStoreMixin:
    # ---- encoders ------------------------------------------------------------------
    def current_encoder(self) -> dict | None:
        """{version, kind, fingerprint, model (bytes), report} of the current encoder."""
        return self._one("SELECT * FROM motion_encoders WHERE current = 1 "
                         "ORDER BY version DESC LIMIT 1")

    def encoders(self) -> list[dict]:
        return self._rows("SELECT version, kind, fingerprint, report, current, trained_at "
                          "FROM motion_encoders ORDER BY version")

    def ensure_default_encoder(self, kind: str, blob: bytes, fingerprint: str) -> dict:
        """Version 0 (the shipped default) becomes current when the library has none."""
        with self.transaction():
            if self._one("SELECT 1 AS x FROM motion_encoders LIMIT 1") is None:
                self.db.execute("INSERT INTO motion_encoders(version, kind, fingerprint, model, "
                                "report, current) VALUES (0, ?, ?, ?, ?, 1)",
                                (kind, fingerprint, blob, json.dumps({"shipped": True})))
        return self.current_encoder()

    def add_encoder(self, kind: str, blob: bytes, fingerprint: str, report: dict) -> tuple[int, int]:
        """Store a newly trained encoder as current; queue the recomputation of every video
        described by an older one. Returns (version, videos queued)."""
        with self.transaction():
            version = (self._one("SELECT coalesce(max(version), 0) + 1 AS v "
                                 "FROM motion_encoders")["v"])
            self.db.execute("UPDATE motion_encoders SET current = 0")
            self.db.execute("INSERT INTO motion_encoders(version, kind, fingerprint, model, report, "
                            "current) VALUES (?, ?, ?, ?, ?, 1)",
                            (version, kind, fingerprint, blob, json.dumps(report)))
            queued = self.queue_motion_recompute(version)
        return version, queued

    def queue_motion_recompute(self, version: int) -> int:
        stale = [r["media_id"] for r in self._rows(
            "SELECT DISTINCT media_id FROM motion_windows WHERE encoder_version != ?", (version,))]
        with self.transaction():
            for media_id in stale:
                self._queue(media_id, MOTION_STAGE)
        return len(stale)

    # ---- windows and descriptors ----------------------------------------------------
    def save_motion(self, media_id: int, windows: list[tuple[float, float]], descriptors,
                    encoder_version: int, tags: list[dict] = ()) -> None:
        """Replace a media's windows and descriptors, and its tags of the motion sources
        (the current tag models applied to the new descriptors)."""
        x = np.asarray(descriptors, np.float32).reshape(len(windows), DESCRIPTOR_DIM)
        db = self.db
        with self.transaction():
            db.execute("DELETE FROM motion_windows WHERE media_id = ?", (media_id,))
            db.execute(f"DELETE FROM tags WHERE media_id = ? AND source IN "
                       f"({','.join('?' * len(ACTION_SOURCES))})", (media_id, *ACTION_SOURCES))
            for (start, end), vec in zip(windows, x):
                cur = db.execute("INSERT INTO motion_windows(media_id, start, end, encoder_version) "
                                 "VALUES (?, ?, ?, ?)", (media_id, float(start), float(end),
                                                         int(encoder_version)))
                db.execute("INSERT INTO motion_vec(window_id, descriptor, media_id, encoder_version) "
                           "VALUES (?, ?, ?, ?)", (cur.lastrowid, _blob(vec), media_id,
                                                   int(encoder_version)))
            self._insert_tags(media_id, tags)

    def _insert_tags(self, media_id: int | None, tags: Iterable[dict]) -> None:
        self.db["tags"].insert_all(({"media_id": t.get("media_id", media_id),
                                     "start": float(t["start"]), "end": float(t["end"]),
                                     "label": t["label"], "source": t["source"],
                                     "score": t.get("score")} for t in tags), batch_size=500)

    def motion_windows(self, *, media_id: int | None = None, version: int | None = None,
                       with_vectors: bool = True) -> tuple[list[dict], np.ndarray]:
        """Window rows (id, media_id, path, start, end, encoder_version, group_id) in media and
        time order, and their descriptors (N, DESCRIPTOR_DIM)."""
        where, params = [], []
        if media_id is not None:
            where.append("w.media_id = ?"); params.append(media_id)
        if version is not None:
            where.append("w.encoder_version = ?"); params.append(version)
        sql = ("SELECT w.id, w.media_id, m.path, w.start, w.end, w.encoder_version, w.group_id "
               "FROM motion_windows w JOIN media m ON m.id = w.media_id")
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._rows(sql + " ORDER BY m.path, w.media_id, w.start", params)
        if not with_vectors:
            return rows, np.zeros((0, DESCRIPTOR_DIM), np.float32)
        vecs: dict[int, bytes] = {}
        vsql = "SELECT window_id, descriptor FROM motion_vec"
        vparams: list = []
        if version is not None:
            vsql += " WHERE encoder_version = ?"; vparams.append(version)
        wanted = {r["id"] for r in rows}
        for wid, blob in self.db.execute(vsql, vparams).fetchall():
            if wid in wanted:
                vecs[wid] = blob
        x = np.zeros((len(rows), DESCRIPTOR_DIM), np.float32)
        for i, r in enumerate(rows):
            if r["id"] in vecs:
                x[i] = np.frombuffer(vecs[r["id"]], np.float32)
        return rows, x

    def motion_window_count(self) -> dict:
        return {r["encoder_version"]: r["n"] for r in self._rows(
            "SELECT encoder_version, count(*) AS n FROM motion_windows GROUP BY encoder_version")}

    def keyframe_features(self, media_id: int) -> list[tuple[float, np.ndarray]]:
        """(time, 1280-d unit-length feature) of a media's keyframes, in time order."""
        rows = self.db.execute(
            "SELECT k.time, v.embedding FROM keyframes k JOIN keyframe_vec v "
            "ON v.keyframe_id = k.id WHERE k.media_id = ? ORDER BY k.time", (media_id,)).fetchall()
        if not rows:
            return []
        vecs = int8_rows_to_float(np.frombuffer(b"".join(b for _, b in rows), np.uint8), KEYFRAME_DIM)
        return [(t, v) for (t, _), v in zip(rows, vecs)]

    def video_media(self) -> list[dict]:
        return self._rows("SELECT id, path, duration FROM media WHERE kind LIKE '%video%' "
                          "AND status != 'failed' ORDER BY id")

    # ---- tag models -------------------------------------------------------------------
    def save_tag_model(self, label: str, source: str, encoder_version: int, model: bytes,
                       meta: dict, examples: list, tags: list[dict]) -> None:
        """Store (replace) a trained tag and replace all its tag rows in the library."""
        with self.transaction():
            self.db.execute("DELETE FROM tag_models WHERE label = ?", (label,))
            self.db.execute(f"DELETE FROM tags WHERE lower(label) = lower(?) AND source IN "
                            f"({','.join('?' * len(ACTION_SOURCES))})", (label, *ACTION_SOURCES))
            self.db.execute(
                "INSERT INTO tag_models(label, source, encoder_version, threshold, cv_accuracy, "
                "folds, n_pos, n_neg, examples, model) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (label, source, int(encoder_version), float(meta["threshold"]),
                 meta.get("cv_accuracy"), meta.get("folds"), meta.get("n_pos"),
                 meta.get("n_neg"), json.dumps(examples), model))
            self._insert_tags(None, tags)

    def tag_models(self, *, with_model: bool = False) -> list[dict]:
        cols = "*" if with_model else ("label, source, encoder_version, threshold, cv_accuracy, "
                                       "folds, n_pos, n_neg, examples, trained_at")
        rows = self._rows(f"SELECT {cols} FROM tag_models ORDER BY label")
        for r in rows:
            r["examples"] = json.loads(r["examples"])
            r["ranges"] = self._one(
                "SELECT count(*) AS n FROM tags WHERE lower(label) = lower(?) AND source = ?",
                (r["label"], r["source"]))["n"]
        return rows

    def tag_model(self, label: str) -> dict | None:
        rows = [r for r in self.tag_models(with_model=True) if r["label"].lower() == label.lower()]
        return rows[0] if rows else None

    def delete_tag(self, label: str) -> int:
        """Forget a trained tag and remove its tag rows; returns the rows removed."""
        with self.transaction():
            n = self.db.execute(
                f"DELETE FROM tags WHERE lower(label) = lower(?) AND source IN "
                f"({','.join('?' * len(ACTION_SOURCES))})", (label, *ACTION_SOURCES)).rowcount
            m = self.db.execute("DELETE FROM tag_models WHERE label = ?", (label,)).rowcount
            self.db.execute("UPDATE motion_groups SET label = NULL WHERE lower(label) = lower(?)",
                            (label,))
        return n + m

    def tag_rows(self, label: str) -> list[dict]:
        return self._rows("SELECT t.*, m.path FROM tags t JOIN media m ON m.id = t.media_id "
                          "WHERE lower(t.label) = lower(?) ORDER BY m.path, t.start", (label,))

    # ---- motion groups ------------------------------------------------------------------
    def save_groups(self, encoder_version: int, window_ids: list[int], labels,
                    examples: list[list[int]]) -> list[int]:
        """Replace the groups with a new clustering (labels[i] is window_ids[i]'s group
        index; examples[g]: window ids nearest group g's centre); returns the new group ids
        in index order."""
        labels = [int(v) for v in labels]
        k = max(labels) + 1 if labels else 0
        with self.transaction():
            self.db.execute("UPDATE motion_windows SET group_id = NULL")
            self.db.execute("DELETE FROM motion_groups")
            ids = []
            for g in range(k):
                cur = self.db.execute(
                    "INSERT INTO motion_groups(encoder_version, size, examples) VALUES (?, ?, ?)",
                    (int(encoder_version), labels.count(g),
                     json.dumps([int(i) for i in examples[g]])))
                ids.append(cur.lastrowid)
            for wid, g in zip(window_ids, labels):
                self.db.execute("UPDATE motion_windows SET group_id = ? WHERE id = ?", (ids[g], wid))
        return ids

    def motion_groups(self) -> list[dict]:
        rows = self._rows("SELECT * FROM motion_groups ORDER BY id")
        for r in rows:
            r["examples"] = json.loads(r["examples"] or "[]")
        return rows

    def windows_by_id(self, ids: list[int]) -> list[dict]:
        if not ids:
            return []
        rows = self._rows("SELECT w.id, w.media_id, m.path, w.start, w.end, w.group_id "
                          "FROM motion_windows w JOIN media m ON m.id = w.media_id WHERE w.id IN "
                          f"({','.join('?' * len(ids))})", ids)
        order = {i: n for n, i in enumerate(ids)}
        return sorted(rows, key=lambda r: order[r["id"]])

    def label_group(self, group_id: int, label: str) -> None:
        with self.transaction():
            self.db.execute("UPDATE motion_groups SET label = ? WHERE id = ?", (label, group_id))
