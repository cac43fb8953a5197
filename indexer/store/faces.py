"""The Store's faces and people (mixed into indexer.store.Store). Schema:
indexer/store/schema_faces.py; clustering: models.face_clustering (pure).

    store.save_faces(media_id, appearances, embeddings)   # the faces stage's saver
    store.list_people()                 # [{id, name, hidden, appearances, files, seconds, thumbnail, ...}]
    store.person(pid) / store.person_by_name("Anna")
    store.name_person(pid, "Anna")      # holds in every file, and in new files
    store.merge_people(into, [others]) / store.split_person(pid, [appearance ids])
    store.move_appearances([appearance ids], pid) / store.hide_person(pid)
    store.appearances_of(pid)           # where and when a person is seen, newest files too
    store.face_appearances(media_id)    # a file's person timeline
    store.people_at(media_id, 12.0)     # who is on screen at that second
    store.nearest_faces(vec, k)         # appearances by face descriptor (search by a photo)
    store.face_embeddings([ids])        # descriptors of appearances ("more of this person")
    store.shot_starts(media_id)         # where the visual stage found cuts (the stage's tracks)

A file's appearances join the person whose centroid is nearest under the match distance,
else start new people (models.face_clustering.assign); then the people they touched join
any person whose centroid has come that close (models.face_clustering.join_close), unless
a user's decision keeps them apart (two named people, a hidden one, or one whose faces a
user placed); nothing else is recomputed. A
re-run on the same file keeps what a user decided: a new appearance matching an old one
the user had moved stays with that person.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from indexer.store.schema_faces import FACE_DIM

MAX_NAME = 100


def _blob(vec) -> bytes:
    return np.asarray(vec, dtype=np.float32).reshape(-1).tobytes()


def _vec(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


def _clean_name(name: str | None) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise ValueError("A person's name must be text.")
    name = " ".join(name.split())
    if not name:
        return None
    if len(name) > MAX_NAME:
        raise ValueError(f"A person's name can be at most {MAX_NAME} characters "
                         f"(this one has {len(name)}).")
    return name


_PERSON_COLUMNS = """
    p.id, p.name, p.hidden, p.named_at,
    count(a.id) AS appearances, count(DISTINCT a.media_id) AS files,
    coalesce(sum(a.end - a.start), 0) AS seconds,
    (SELECT b.thumbnail FROM face_appearances b WHERE b.person_id = p.id
       AND b.thumbnail IS NOT NULL ORDER BY b.h * b.score DESC, b.id
       LIMIT 1) AS thumbnail"""


class FacesMixin:
    # ---- saving a file's faces ---------------------------------------------------------
    def save_faces(self, media_id: int, appearances: Sequence[dict], embeddings, *,
                   match_distance: float | None = None) -> list[dict]:
        """Replace a file's appearances and put each with a person.

        appearances: start, end, time, x, y, w, h (fractions of the frame), score,
        sightings, thumbnail; embeddings: one 128-d descriptor each. Returns the rows
        saved, with their id and person_id, in the order given."""
        from models.face_clustering import MATCH_DISTANCE, assign
        threshold = MATCH_DISTANCE if match_distance is None else float(match_distance)
        vecs = np.asarray(embeddings, dtype=np.float32).reshape(-1, FACE_DIM) \
            if len(appearances) else np.zeros((0, FACE_DIM), np.float32)
        if len(vecs) != len(appearances):
            raise ValueError(f"{len(vecs)} descriptors for {len(appearances)} appearances")
        db = self.db
        with self.transaction():
            kept = self._user_choices(media_id)
            db.execute("DELETE FROM face_appearances WHERE media_id = ?", (media_id,))
            self._refresh_centroids()
            people = self._rows("SELECT id, centroid, faces, hidden FROM people ORDER BY id")
            ids = [p["id"] for p in people]
            cents = np.asarray([_vec(p["centroid"]) for p in people], np.float32)
            counts = [p["faces"] for p in people]
            # appearances a user had placed before keep their person
            fixed: dict[int, int] = {}
            if kept:
                kvecs = np.asarray([k[1] for k in kept], np.float32)
                for i, v in enumerate(vecs):
                    d = np.linalg.norm(kvecs - v, axis=1)
                    j = int(np.argmin(d))
                    if d[j] < threshold and kept[j][0] in ids:
                        fixed[i] = kept[j][0]
            free = [i for i in range(len(vecs)) if i not in fixed]
            result = assign(vecs[free], cents.reshape(-1, FACE_DIM), counts,
                            threshold=threshold)
            person_of: dict[int, int] = dict(fixed)
            new_ids: dict[int, int] = {}
            for label in range(len(ids), len(result.centroids)):
                cur = db.execute("INSERT INTO people(centroid, faces) VALUES (?, ?)",
                                 (_blob(result.centroids[label]), int(result.counts[label])))
                new_ids[label] = cur.lastrowid
            for k, i in enumerate(free):
                label = int(result.labels[k])
                person_of[i] = ids[label] if label < len(ids) else new_ids[label]
            for label in sorted(set(int(x) for x in result.labels) - set(new_ids)):
                db.execute("UPDATE people SET centroid = ?, faces = ? WHERE id = ?",
                           (_blob(result.centroids[label]), int(result.counts[label]),
                            ids[label]))
            for pid in set(fixed.values()):
                db.execute("UPDATE people SET stale = 1 WHERE id = ?", (pid,))
            saved = []
            for i, a in enumerate(appearances):
                row = {"media_id": media_id, "person_id": person_of[i],
                       "start": float(a["start"]), "end": float(a["end"]),
                       "time": float(a.get("time", a["start"])),
                       "x": float(a["x"]), "y": float(a["y"]), "w": float(a["w"]),
                       "h": float(a["h"]), "score": float(a.get("score", 0.0)),
                       "sightings": int(a.get("sightings", 1)),
                       "thumbnail": a.get("thumbnail"), "by_user": int(i in fixed)}
                cur = db.execute(
                    "INSERT INTO face_appearances(media_id, person_id, start, end, time, x, y,"
                    " w, h, score, sightings, thumbnail, by_user) VALUES"
                    " (:media_id, :person_id, :start, :end, :time, :x, :y, :w, :h, :score,"
                    " :sightings, :thumbnail, :by_user)", row)
                row["id"] = cur.lastrowid
                db.execute("INSERT INTO face_vec(appearance_id, embedding, media_id) "
                           "VALUES (?, ?, ?)", (row["id"], _blob(vecs[i]), media_id))
                saved.append(row)
            self._refresh_centroids()
            moved = self._join_close_people(set(person_of.values()), threshold)
            for row in saved:
                row["person_id"] = moved.get(row["person_id"], row["person_id"])
        return saved

    def _join_close_people(self, touched: set[int], threshold: float) -> dict[int, int]:
        """Make one of people whose centroids are closer than `threshold`, one of them in
        `touched` (models.face_clustering.join_close); a named person keeps the name.
        Never two named people, a hidden one, or one with faces a user placed. Returns
        {person id joined into another: the id it joined}."""
        from models.face_clustering import join_close
        people = self._rows("SELECT id, centroid, faces FROM people ORDER BY id")
        rows = {p["id"]: k for k, p in enumerate(people)}
        touched_rows = [rows[t] for t in touched if t in rows]
        if len(people) < 2 or not touched_rows:
            return {}
        cents = np.frombuffer(b"".join(p["centroid"] for p in people),
                              np.float32).reshape(len(people), FACE_DIM)
        sq = np.einsum("ij,ij->i", cents, cents)
        d2 = sq[None, :] + sq[touched_rows][:, None] - 2.0 * (cents[touched_rows] @ cents.T)
        if (d2 < threshold ** 2).sum() <= len(touched_rows):     # each only near itself
            return {}
        facts: dict[int, dict] = {}     # row -> name, hidden, placed (of its group, once joined)

        def fact(k: int) -> dict:
            if k not in facts:
                facts[k] = dict(self._one("""SELECT name, hidden, EXISTS (SELECT 1 FROM
                    face_appearances a WHERE a.person_id = p.id AND a.by_user = 1) AS placed
                    FROM people p WHERE p.id = ?""", (people[k]["id"],)))
            return facts[k]

        def may_join(a: int, b: int) -> bool:
            pa, pb = fact(a), fact(b)
            if (pa["name"] and pb["name"]) or pa["hidden"] or pb["hidden"] \
                    or pa["placed"] or pb["placed"]:
                return False
            # join_close joins them now: later pairs see the name the two hold together
            facts[a] = facts[b] = {"name": pa["name"] or pb["name"], "hidden": 0, "placed": 0}
            return True
        joins = join_close(cents, [p["faces"] for p in people], touched_rows,
                           threshold=threshold, may_join=may_join)
        survivor = {k: p["id"] for k, p in enumerate(people)}
        names = {p["id"]: p["name"] for p in self._rows(
            "SELECT id, name FROM people WHERE name IS NOT NULL")}
        moved: dict[int, int] = {}
        for into, other in joins:
            keep, gone = survivor[into], survivor[other]
            if names.get(gone) and not names.get(keep):
                keep, gone = gone, keep          # the name stays, with its person
            self.db.execute("UPDATE face_appearances SET person_id = ? WHERE person_id = ?",
                            (keep, gone))
            self.db.execute("DELETE FROM people WHERE id = ?", (gone,))
            self.db.execute("UPDATE people SET stale = 1 WHERE id = ?", (keep,))
            survivor[into] = keep
            for old, new in list(moved.items()):
                if new == gone:
                    moved[old] = keep
            moved[gone] = keep
        if moved:
            self._refresh_centroids()
        return moved

    def _user_choices(self, media_id: int) -> list[tuple[int, np.ndarray]]:
        rows = self._rows("SELECT a.person_id, v.embedding FROM face_appearances a "
                          "JOIN face_vec v ON v.appearance_id = a.id "
                          "WHERE a.media_id = ? AND a.by_user = 1 AND a.person_id IS NOT NULL",
                          (media_id,))
        return [(r["person_id"], _vec(r["embedding"])) for r in rows]

    def _refresh_centroids(self) -> None:
        """Recompute the centroids of people whose appearances changed; a person with
        none left keeps theirs (so a named or hidden person is still recognised)."""
        for p in self._rows("SELECT id FROM people WHERE stale = 1"):
            vecs = self._embeddings_of(p["id"])
            if len(vecs):
                self.db.execute("UPDATE people SET centroid = ?, faces = ?, stale = 0 "
                                "WHERE id = ?", (_blob(vecs.mean(axis=0)), len(vecs), p["id"]))
            else:
                self.db.execute("UPDATE people SET stale = 0 WHERE id = ?", (p["id"],))

    def _embeddings_of(self, person_id: int) -> np.ndarray:
        rows = self._rows("SELECT v.embedding FROM face_appearances a JOIN face_vec v "
                          "ON v.appearance_id = a.id WHERE a.person_id = ? ORDER BY a.id",
                          (person_id,))
        return np.asarray([_vec(r["embedding"]) for r in rows], np.float32).reshape(-1, FACE_DIM)

    # ---- people ------------------------------------------------------------------------
    def list_people(self, *, include_hidden: bool = False, named_only: bool = False
                    ) -> list[dict]:
        """People with at least one appearance (or a name), most seen first."""
        where = ["1=1"]
        if not include_hidden:
            where.append("p.hidden = 0")
        if named_only:
            where.append("p.name IS NOT NULL")
        return self._rows(f"""
            SELECT {_PERSON_COLUMNS}
            FROM people p LEFT JOIN face_appearances a ON a.person_id = p.id
            WHERE {' AND '.join(where)}
            GROUP BY p.id HAVING count(a.id) > 0 OR p.name IS NOT NULL
            ORDER BY p.name IS NULL, count(a.id) DESC, p.id""")

    def person(self, person_id: int) -> dict | None:
        return self._one(f"""SELECT {_PERSON_COLUMNS} FROM people p
                             LEFT JOIN face_appearances a ON a.person_id = p.id
                             WHERE p.id = ? GROUP BY p.id""", (person_id,))

    def person_by_name(self, name: str) -> dict | None:
        """The person with that name (case and spacing ignored), hidden or not."""
        clean = _clean_name(name)
        if clean is None:
            return None
        row = self._one("SELECT id FROM people WHERE name = ?", (clean,))
        return self.person(row["id"]) if row else None

    def _require_person(self, person_id: int) -> dict:
        row = self._one("SELECT id, name, hidden FROM people WHERE id = ?", (person_id,))
        if row is None:
            raise ValueError(f"There is no person {person_id} in this library "
                             f"(merged or removed since?).")
        return row

    def name_person(self, person_id: int, name: str | None) -> int:
        """Give a person a name (None or blank: remove it). If another person already has
        that name they are the same person: this one is merged into them. Returns the id
        of the person that now carries the name."""
        clean = _clean_name(name)
        with self.transaction():
            self._require_person(person_id)
            if clean is not None:
                other = self._one("SELECT id FROM people WHERE name = ? AND id != ?",
                                  (clean, person_id))
                if other is not None:
                    self.merge_people(other["id"], [person_id])
                    return other["id"]
            self.db.execute("UPDATE people SET name = ?, named_at = CASE WHEN ? IS NULL "
                            "THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%fZ','now') END "
                            "WHERE id = ?", (clean, clean, person_id))
            if clean is None:
                self._drop_if_empty(person_id)
        return person_id

    def hide_person(self, person_id: int, hidden: bool = True) -> None:
        """Keep a person out of lists and search; their new faces still join them."""
        with self.transaction():
            self._require_person(person_id)
            self.db.execute("UPDATE people SET hidden = ? WHERE id = ?",
                            (int(bool(hidden)), person_id))
            if not hidden:
                self._drop_if_empty(person_id)

    def _drop_if_empty(self, person_id: int) -> None:
        self.db.execute("DELETE FROM people WHERE id = ? AND name IS NULL AND hidden = 0 "
                        "AND NOT EXISTS (SELECT 1 FROM face_appearances WHERE person_id = ?)",
                        (person_id, person_id))

    def merge_people(self, into: int, others: Iterable[int]) -> int:
        """Move every appearance of `others` to `into` and delete them. `into` keeps its
        name, or takes the first name among the others when it has none; it stays hidden
        only if it was."""
        others = [int(o) for o in others if int(o) != int(into)]
        with self.transaction():
            target = self._require_person(into)
            names = [self._require_person(o)["name"] for o in others]
            for o in others:
                self.db.execute("UPDATE face_appearances SET person_id = ?, by_user = 1 "
                                "WHERE person_id = ?", (into, o))
                self.db.execute("DELETE FROM people WHERE id = ?", (o,))
            if target["name"] is None:
                name = next((n for n in names if n), None)
                if name is not None:
                    self.db.execute("UPDATE people SET name = ?, named_at = "
                                    "strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?",
                                    (name, into))
            self.db.execute("UPDATE people SET stale = 1 WHERE id = ?", (into,))
            self._refresh_centroids()
        return into

    def move_appearances(self, appearance_ids: Iterable[int], person_id: int) -> None:
        """Put these appearances with an existing person (the user says who it is)."""
        ids = [int(i) for i in appearance_ids]
        with self.transaction():
            self._require_person(person_id)
            self._require_appearances(ids)
            for i in ids:
                self.db.execute("UPDATE face_appearances SET person_id = ?, by_user = 1 "
                                "WHERE id = ?", (person_id, i))
            self.db.execute("UPDATE people SET stale = 1 WHERE id = ?", (person_id,))
            self._refresh_centroids()

    def _require_appearances(self, ids: list[int]) -> None:
        if not ids:
            raise ValueError("No faces were chosen.")
        marks = ",".join("?" * len(ids))
        found = {r["id"] for r in self._rows(
            f"SELECT id FROM face_appearances WHERE id IN ({marks})", ids)}
        missing = sorted(set(ids) - found)
        if missing:
            raise ValueError(f"These faces are no longer in the library: {missing}")

    def split_person(self, person_id: int, appearance_ids: Iterable[int] | None = None) -> int:
        """Move the given appearances of a person (or, with None, the half of their faces
        least like the other half) to a new, unnamed person. Returns the new person's id."""
        from models.face_clustering import two_groups
        with self.transaction():
            self._require_person(person_id)
            rows = self._rows("SELECT a.id, v.embedding FROM face_appearances a JOIN face_vec v "
                              "ON v.appearance_id = a.id WHERE a.person_id = ? ORDER BY a.id",
                              (person_id,))
            if appearance_ids is None:
                if len(rows) < 2:
                    raise ValueError("A person seen only once cannot be split.")
                groups = two_groups([_vec(r["embedding"]) for r in rows])
                moving = [r["id"] for r, g in zip(rows, groups) if g == 1]
            else:
                moving = [int(i) for i in appearance_ids]
                theirs = {r["id"] for r in rows}
                strangers = sorted(set(moving) - theirs)
                if strangers:
                    raise ValueError(f"Faces {strangers} are not of person {person_id}.")
                if not moving:
                    raise ValueError("No faces were chosen to split off.")
            first = next(_vec(r["embedding"]) for r in rows if r["id"] in set(moving))
            new_id = self.db.execute("INSERT INTO people(centroid, faces, stale) VALUES "
                                     "(?, 1, 1)", (_blob(first),)).lastrowid
            for i in moving:
                self.db.execute("UPDATE face_appearances SET person_id = ?, by_user = 1 "
                                "WHERE id = ?", (new_id, i))
            self.db.execute("UPDATE face_appearances SET by_user = 1 WHERE person_id = ?",
                            (person_id,))
            self.db.execute("UPDATE people SET stale = 1 WHERE id = ?", (person_id,))
            self._refresh_centroids()
        return new_id

    # ---- reads -------------------------------------------------------------------------
    def appearances_of(self, person_id: int) -> list[dict]:
        """Every appearance of a person: file, start, end, best moment, thumbnail."""
        return self._rows("""
            SELECT a.id, a.media_id, m.path, a.start, a.end, a.time, a.x, a.y, a.w, a.h,
                   a.score, a.thumbnail, a.by_user
            FROM face_appearances a JOIN media m ON m.id = a.media_id
            WHERE a.person_id = ? ORDER BY m.path, a.start""", (person_id,))

    def face_appearances(self, media_id: int, *, include_hidden: bool = False) -> list[dict]:
        """A file's appearances in time order, with their person's name (the timeline)."""
        hidden = "" if include_hidden else "AND coalesce(p.hidden, 0) = 0"
        return self._rows(f"""
            SELECT a.id, a.person_id, p.name, coalesce(p.hidden, 0) AS hidden, a.start, a.end,
                   a.time, a.x, a.y, a.w, a.h, a.score, a.sightings, a.thumbnail
            FROM face_appearances a LEFT JOIN people p ON p.id = a.person_id
            WHERE a.media_id = ? {hidden} ORDER BY a.start, a.id""", (media_id,))

    def people_at(self, media_id: int, t: float, *, include_hidden: bool = False) -> list[dict]:
        """The people on screen in a file at second `t`, most prominent first."""
        hidden = "" if include_hidden else "AND p.hidden = 0"
        return self._rows(f"""
            SELECT p.id, p.name, p.hidden, a.id AS appearance_id, a.start, a.end,
                   a.thumbnail
            FROM face_appearances a JOIN people p ON p.id = a.person_id
            WHERE a.media_id = ? AND a.start <= ? AND ? < a.end {hidden}
            ORDER BY a.w * a.h DESC""", (media_id, float(t), float(t)))

    def nearest_faces(self, embedding, k: int = 20, *, include_hidden: bool = False,
                      max_distance: float | None = None) -> list[dict]:
        """Appearances whose descriptor is nearest `embedding` (L2), nearest first, with
        their person and file. Hidden people's faces are left out unless asked for."""
        k = max(1, min(int(k), 4096))
        fetch = min(4096, k * 4 if not include_hidden else k)
        hits = self._rows("SELECT appearance_id, distance FROM face_vec "
                          "WHERE embedding MATCH ? AND k = ? ORDER BY distance",
                          (_blob(embedding), fetch))
        if not hits:
            return []
        dist = {h["appearance_id"]: h["distance"] for h in hits}
        marks = ",".join("?" * len(dist))
        hidden = "" if include_hidden else "AND coalesce(p.hidden, 0) = 0"
        rows = self._rows(f"""
            SELECT a.id AS appearance_id, a.person_id, p.name, a.media_id, m.path, a.start,
                   a.end, a.time, a.thumbnail
            FROM face_appearances a JOIN media m ON m.id = a.media_id
            LEFT JOIN people p ON p.id = a.person_id
            WHERE a.id IN ({marks}) {hidden}""", list(dist))
        for r in rows:
            r["distance"] = float(dist[r["appearance_id"]])
        rows.sort(key=lambda r: (r["distance"], r["appearance_id"]))
        if max_distance is not None:
            rows = [r for r in rows if r["distance"] <= max_distance]
        return rows[:k]

    def face_embeddings(self, appearance_ids: Iterable[int]) -> np.ndarray:
        """Descriptors of the given appearances, in the order given (missing ones skipped)."""
        ids = [int(i) for i in appearance_ids]
        if not ids:
            return np.zeros((0, FACE_DIM), np.float32)
        marks = ",".join("?" * len(ids))
        found = {r["appearance_id"]: _vec(r["embedding"]) for r in self._rows(
            f"SELECT appearance_id, embedding FROM face_vec WHERE appearance_id IN ({marks})",
            ids)}
        return np.asarray([found[i] for i in ids if i in found],
                          np.float32).reshape(-1, FACE_DIM)

    def shot_starts(self, media_id: int) -> list[float]:
        """Times where a new shot begins in a file, from its keyframes (the visual stage)."""
        return [r["start"] for r in self._rows(
            "SELECT min(time) AS start FROM keyframes WHERE media_id = ? AND shot > 0 "
            "GROUP BY shot ORDER BY start", (media_id,))]

    def face_thumbnails(self, media_id: int) -> set[str]:
        return {r["thumbnail"] for r in self._rows(
            "SELECT thumbnail FROM face_appearances WHERE media_id = ? AND thumbnail IS NOT NULL",
            (media_id,))}
