"""Action tags over the whole library: train from examples, apply, delete; motion groups.

    result = train_action_tag(store, "walking", [Example(12, 3.0, 9.0), Example(14)])
    groups = make_groups(store, k=6); name_group(store, groups[2]["id"], "waving")

An example is a media (whole) or a time range of one; its windows are those overlapping it
by at least half a window. Negatives: the examples given as negative (or the other labels'
examples) plus, unless `sample_negatives=False`, windows sampled from the library's other
videos (and, when none were given and those are too few, from the examples' own videos
away from the examples). Sampled windows may show the action too (they are unlabelled);
in a library where it is rare that costs little, in a small one giving the negatives and
only those is better.
Every window of the current encoder version in the library is then scored, and windows
reaching the threshold become `tags` rows (source 'action'), consecutive ones merged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from indexer.stages.base import WHEN_DONE
from indexer.stages.motion import apply_tag_models

RANDOM_NEGATIVES_PER_POSITIVE = 10
MIN_RANDOM_NEGATIVES = 20
MAX_RANDOM_NEGATIVES = 400
REFERENCE_MAX = 5000
GROUP_EXAMPLES = 5
GROUP_TRAIN_MAX = 300


class TagError(ValueError):
    """A tag cannot be trained as asked (message for the user)."""


@dataclass
class Example:
    media_id: int
    start: float | None = None
    end: float | None = None
    positive: bool = True

    def covers(self, w: dict) -> bool:
        if w["media_id"] != self.media_id:
            return False
        if self.start is None:
            return True
        end = self.end if self.end is not None else float("inf")
        overlap = min(end, w["end"]) - max(self.start, w["start"])
        return overlap >= 0.5 * (w["end"] - w["start"]) - 1e-6

    def to_json(self) -> list:
        return [self.media_id, self.start, self.end, int(self.positive)]

    @classmethod
    def from_json(cls, v: list) -> "Example":
        return cls(int(v[0]), v[1], v[2], bool(v[3]))


def _current_version(store) -> int:
    from indexer.stages.motion import current_encoder
    return current_encoder(store)[0]


def _select(rows: list[dict], examples: list[Example]) -> np.ndarray:
    return np.array([any(e.covers(r) for e in examples) for r in rows], bool)


def _tag_rows(model_row: dict, rows: list[dict], x: np.ndarray) -> list[dict]:
    out = []
    by_media: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_media.setdefault(r["media_id"], []).append(i)
    for media_id, idx in by_media.items():
        out += apply_tag_models([model_row], [(rows[i]["start"], rows[i]["end"]) for i in idx],
                                x[idx], media_id=media_id)
    return out


def train_action_tag(store, label: str, positives: list[Example],
                     negatives: list[Example] = (), *, source: str = "action", seed: int = 0,
                     sample_negatives: bool = True,
                     progress: Callable[[float, str], None] = lambda f, m: None) -> dict:
    """Train (or retrain) `label`, tag the library with it, return what was measured."""
    from models.motion.classifier import train_tag
    label = label.strip()
    if not label:
        raise TagError("a tag needs a name")
    if not positives:
        raise TagError("give at least one example of the tag")
    version = _current_version(store)
    progress(0.05, "reading descriptors")
    rows, x = store.motion_windows(version=version)
    pos = _select(rows, positives)
    missing = {e.media_id for e in positives} - {r["media_id"] for r, p in zip(rows, pos) if p}
    if missing:
        paths = [(store.media(m) or {}).get("path", str(m)) for m in sorted(missing)]
        raise TagError("no motion windows (of the current encoder) in the examples from: "
                       + ", ".join(paths) + ". Index them first (avindex index), or wait for "
                       "their motion jobs.")
    # Negatives: the ones given, plus windows sampled from the other videos of the library
    # (an action tends to last, so the examples' own videos are the likeliest to show it
    # too; they are sampled, away from the examples, only when nothing was given and the
    # other videos are too few).
    rng = np.random.default_rng(seed)
    want = int(np.clip(RANDOM_NEGATIVES_PER_POSITIVE * pos.sum(), MIN_RANDOM_NEGATIVES,
                       MAX_RANDOM_NEGATIVES))
    neg = _select(rows, list(negatives)) & ~pos if negatives else np.zeros(len(rows), bool)
    own = np.isin([r["media_id"] for r in rows],
                  [e.media_id for e in list(positives) + list(negatives)])
    other = np.flatnonzero(~own) if sample_negatives or not negatives else np.zeros(0, int)
    picked = list(rng.choice(other, size=min(want, len(other)), replace=False))
    if len(picked) < want and not negatives:
        rest = np.flatnonzero(own & ~pos & ~_near(rows, positives))
        picked += list(rng.choice(rest, size=min(want - len(picked), len(rest)), replace=False))
    sampled = len(picked)
    neg[np.array(picked, int)] = True
    neg_from = ("given" if negatives else "") + (" + " if negatives and sampled else "") + \
        (f"{sampled} sampled from the library" if sampled else "")
    if not neg.any():
        raise TagError("no negative windows: give --negatives, or index more video")
    ref = x if len(x) <= REFERENCE_MAX else x[np.random.default_rng(seed).choice(
        len(x), REFERENCE_MAX, replace=False)]
    progress(0.3, "training")
    # cross-validation groups: a positive window belongs to its example, a negative one to
    # its example or (sampled) to its video
    pos_groups = [next(i for i, e in enumerate(positives) if e.covers(r))
                  for r, p in zip(rows, pos) if p]
    neg_groups = [next((1000000 + i for i, e in enumerate(negatives) if e.covers(r)),
                       r["media_id"]) for r, n in zip(rows, neg) if n]
    model = train_tag(x[pos], x[neg], reference=ref, seed=seed, pos_groups=pos_groups,
                      neg_groups=neg_groups)
    meta = {"threshold": model.threshold, "cv_accuracy": model.cv_accuracy,
            "folds": model.folds, "n_pos": model.n_pos, "n_neg": model.n_neg}
    model_row = {"label": label, "source": source, "threshold": model.threshold,
                 "model": model.to_bytes(), "encoder_version": version}
    progress(0.7, "tagging the library")
    tags = _tag_rows(model_row, rows, x)
    examples = [e.to_json() for e in list(positives) + list(negatives)]
    store.save_tag_model(label, source, version, model_row["model"], meta, examples, tags)
    progress(1.0, "done")
    return {"label": label, "source": source, "encoder_version": version,
            "cv_accuracy": model.cv_accuracy, "folds": model.folds,
            "threshold": round(model.threshold, 4), "positives": model.n_pos,
            "negatives": model.n_neg, "negatives_from": neg_from,
            "block_weights": dict(zip(("encoder", "flow", "appearance"), model.weights)),
            "ranges": len(tags), "tagged_windows": int(sum(
                1 for r in rows if any(t["media_id"] == r["media_id"] and t["start"] <= r["start"]
                                       and r["end"] <= t["end"] for t in tags))),
            "windows": len(rows), "tags": tags}


def _near(rows: list[dict], examples: list[Example], margin: float = 2.0) -> np.ndarray:
    """Windows within `margin` s of a positive example (kept out of random negatives)."""
    widened = [Example(e.media_id, None if e.start is None else e.start - margin,
                       None if e.end is None else e.end + margin) for e in examples]
    return _select(rows, widened)


def retrain_stale_tags(store) -> list[dict]:
    """Tags trained on an older encoder, retrained from their stored examples once all their
    media have descriptors of the current one (called after a batch)."""
    models = store.tag_models()
    if not models:                  # nothing to retrain: the encoder is not even loaded
        return []
    version = _current_version(store)
    if all(m["encoder_version"] == version for m in models):
        return []
    done = []
    have = {r["media_id"] for r in store.motion_windows(version=version, with_vectors=False)[0]}
    for m in models:
        if m["encoder_version"] == version:
            continue
        ex = [Example.from_json(e) for e in m["examples"]]
        if not ex or not {e.media_id for e in ex} <= have:
            continue
        pos = [e for e in ex if e.positive]
        neg = [e for e in ex if not e.positive]
        try:
            res = train_action_tag(store, m["label"], pos, neg, source=m["source"])
        except TagError as exc:
            res = {"label": m["label"], "error": str(exc)}
        res.pop("tags", None)
        done.append(res)
    return done


# ---- motion groups ------------------------------------------------------------------------

def make_groups(store, k: int | None = None, *, seed: int = 0) -> list[dict]:
    """Cluster the library's windows (current encoder) by motion; replaces the last groups."""
    from models.motion.cluster import cluster
    version = _current_version(store)
    rows, x = store.motion_windows(version=version)
    if len(rows) < 2:
        raise TagError("not enough described video to group (index some videos first)")
    g = cluster(x, k, seed=seed)
    examples = [[rows[i]["id"] for i in g.examples(j, GROUP_EXAMPLES)]
                for j in range(len(g.centroids))]
    store.save_groups(version, [r["id"] for r in rows], g.labels, examples)
    return groups(store)


def groups(store) -> list[dict]:
    """The last clustering: id, size, label, examples (media_id, path, start, end), and
    `stale` when its windows have since been redescribed by a newer encoder."""
    out = []
    version = _current_version(store)
    for gr in store.motion_groups():
        out.append({"id": gr["id"], "size": gr["size"], "label": gr["label"],
                    "encoder_version": gr["encoder_version"],
                    "stale": gr["encoder_version"] != version,
                    "examples": [{k: w[k] for k in ("media_id", "path", "start", "end")}
                                 for w in store.windows_by_id(gr["examples"])]})
    return out


def name_group(store, group_id: int, label: str, *, seed: int = 0) -> dict:
    """Turn a motion group into a tag: its windows get tag rows (source 'motion-group'),
    and a classifier trained on members vs the rest tags videos indexed later."""
    from models.motion.classifier import merge_ranges, train_tag
    label = label.strip()
    if not label:
        raise TagError("a tag needs a name")
    grp = next((g for g in store.motion_groups() if g["id"] == group_id), None)
    if grp is None:
        raise TagError(f"no motion group {group_id} (run `avindex tags groups` first)")
    rows, x = store.motion_windows(version=grp["encoder_version"])
    member = np.array([r["group_id"] == group_id for r in rows], bool)
    if not member.any():
        raise TagError(f"motion group {group_id} has no windows left")
    if member.all():
        raise TagError("every window is in this group; nothing to tell it apart from")
    rng = np.random.default_rng(seed)
    pi = np.flatnonzero(member)
    ni = np.flatnonzero(~member)
    pi = rng.choice(pi, min(len(pi), GROUP_TRAIN_MAX), replace=False)
    ni = rng.choice(ni, min(len(ni), 2 * GROUP_TRAIN_MAX), replace=False)
    model = train_tag(x[pi], x[ni], reference=x, seed=seed,
                      pos_groups=[rows[i]["media_id"] for i in pi],
                      neg_groups=[rows[i]["media_id"] for i in ni])
    by_media: dict[int, list] = {}
    for r, m in zip(rows, member):
        if m:
            by_media.setdefault(r["media_id"], []).append((r["start"], r["end"], 1.0))
    tags = [{"media_id": mid, "start": s, "end": e, "label": label, "source": "motion-group",
             "score": 1.0} for mid, ws in by_media.items() for s, e, _ in merge_ranges(ws)]
    examples = [Example(rows[i]["media_id"], rows[i]["start"], rows[i]["end"], True).to_json()
                for i in pi]
    meta = {"threshold": model.threshold, "cv_accuracy": model.cv_accuracy,
            "folds": model.folds, "n_pos": model.n_pos, "n_neg": model.n_neg}
    with store.transaction():
        store.save_tag_model(label, "motion-group", grp["encoder_version"], model.to_bytes(),
                             meta, examples, tags)
        store.label_group(group_id, label)
    return {"label": label, "group": group_id, "windows": int(member.sum()), "ranges": len(tags),
            "cv_accuracy": model.cv_accuracy, "threshold": round(model.threshold, 4)}


class TagRetraining:
    """The library-wide task: tags trained on an older encoder are retrained once their
    media are described by the current one."""

    name = "tags"
    when = WHEN_DONE

    def run(self, store, emit) -> int:
        try:
            report = retrain_stale_tags(store)
        except Exception as exc:  # noqa: BLE001  (the old model keeps serving)
            report = [{"error": f"{type(exc).__name__}: {exc}"}]
        if report:
            emit({"type": "tags_retrained", "report": report})
        return 0

    def cancel(self) -> None:
        pass
