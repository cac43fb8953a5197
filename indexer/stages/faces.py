"""The "faces" stage: who appears in a video, when, and which person of the library it is.

    stage = FacesStage(thumb_dir)
    saver = stage.run(media, ctx)      # decodes, detects, tracks, describes; no SQL
    saver(store)                       # one transaction (Store.save_faces): people assigned

It runs after "visual", whose keyframes give the shots. One sequential pass samples a frame
every 1 / SAMPLE_FPS seconds (1 s: a person on screen for 2 s is seen at least twice; every
shot of a second or more is looked at), decoded cheaply (keyframes.cheap_sampled_frames:
reference pictures only, no deblocking, at most 1280 px wide, converted to BGR only when
looked at). Per sampled frame:

* detect: the fast detector (models.faces.detect_fast, libfacedetection at 320 px: ~4 ms)
  scans at each cut, at every sample while a face is tracked, and every SCAN_EVERY s
  otherwise; faces under MIN_VIDEO_FACE px are not tracked. Where its wheel does not exist,
  dlib's HOG (on grey levels, ~40-70 ms) scans only at each cut and every SCAN_EVERY s, and
  between its scans the tracked faces are followed by HOG on small crops around them. A
  face a scan finds first is looked for at the unscanned sample before (back-filled), so
  its appearance starts when it did. At most MAX_FACES = 20 faces a frame, the largest, so a crowd
  costs a bounded amount. A frame that shows the same picture as the last scan (a still
  shot) reuses its faces instead of detecting again.
* track: a face continues the track whose last box it overlaps (or lies next to, at a
  similar size) in the same shot. A track the HOG loses while its shot goes on gets one
  look by dlib's CNN on a crop around its last box (a turned head); then it ends. (Not
  after the fast detector: it finds turned faces itself.)
* one track is one appearance: from its first sighting to the first sample without it
  (or the cut, or the end of the file). Its descriptor is that of its best aligned face
  (largest, surest; EMBEDS_PER_APPEARANCE = 1, chosen when dlib's own code ran the ResNet
  at ~95 ms a face, 40 % of the stage with two; torch runs it at 6-12 ms now, and more
  faces per appearance are not measured), and that face becomes the thumbnail.
  Consecutive appearances in a shot that are the same face (a missed sample, a quick
  move) are joined.

The saver hands the appearances to the store, which puts each with the nearest person of
the library or a new one (models.face_clustering). Faces never leave the machine.
"""
from __future__ import annotations

import bisect
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# OpenCV (24 MB resident, more once used) is imported where it is used, not here: a worker
# that only transcribes does not hold it (benchmarks/README.md "Worker memory").
import numpy as np

from indexer.stages.keyframes import cheap_sampled_frames
from models.boxes import box_iou

SAMPLE_FPS = 1.0               # frames looked at per second
EMBEDS_PER_APPEARANCE = 1      # best faces of a track that are described (and averaged)
TRACK_IOU = 0.2                # a face continues a track whose last box it overlaps this much,
TRACK_NEAR = 0.6               # or whose centre is within this many face sizes of its own,
TRACK_SIZE_RATIO = 1.6         # at a size no more than this much larger or smaller
SCAN_EVERY = 2.0               # s between scans within a shot while no face is tracked (HOG:
                               # always; it follows tracked faces on crops in between)
MIN_VIDEO_FACE = 40            # px: smaller faces in a video frame are not tracked
FOLLOW_MAX_SHARE = 0.6         # following costs at most this share of a scan, else it scans
JOIN_GAP_SAMPLES = 2.0         # appearances at most this many samples apart may be joined
THUMB_QUALITY = 85


@dataclass
class _Sighting:
    time: float
    box: tuple[float, float, float, float]
    score: float
    quality: float                         # what picks the faces worth describing
    chip: np.ndarray | None = field(default=None, repr=False)


@dataclass
class _Track:
    shot: int
    first: float
    last: float
    box: tuple[float, float, float, float]
    sightings: int = 0
    best: list[_Sighting] = field(default_factory=list)   # at most EMBEDS_PER_APPEARANCE
    end: float | None = None
    searched: bool = False                 # the CNN already looked for it once

    def add(self, s: _Sighting, keep: int, *, earlier: bool = False) -> None:
        """A sighting at the track's end, or (`earlier`, a back-fill) before its start."""
        if earlier:
            self.first = s.time
        else:
            self.last, self.box = s.time, s.box
        self.sightings += 1
        self.best.append(s)
        self.best.sort(key=lambda x: -x.quality)
        del self.best[keep:]


@dataclass
class FacesResult:
    appearances: list[dict] = field(default_factory=list)   # start, end, time, box, ...
    embeddings: list[np.ndarray] = field(default_factory=list)
    chips: list[np.ndarray] = field(default_factory=list)   # RGB, one per appearance
    stats: dict = field(default_factory=dict)


def _affinity(track_box, box) -> float:
    """How well a face continues a track (0: not at all)."""
    iou = box_iou(track_box, box)
    if iou >= TRACK_IOU:
        return 1.0 + iou
    ts, s = max(track_box[2], track_box[3]), max(box[2], box[3])
    if not (1 / TRACK_SIZE_RATIO <= s / max(ts, 1e-6) <= TRACK_SIZE_RATIO):
        return 0.0
    dx = (track_box[0] + track_box[2] / 2) - (box[0] + box[2] / 2)
    dy = (track_box[1] + track_box[3] / 2) - (box[1] + box[3] / 2)
    dist = (dx * dx + dy * dy) ** 0.5 / max(ts, s)
    return 1.0 - dist / TRACK_NEAR if dist < TRACK_NEAR else 0.0


def match_faces(track_boxes: list, boxes: list) -> list[tuple[int, int]]:
    """Greedy best-first pairs (track index, face index)."""
    pairs = sorted(((_affinity(tb, b), i, j) for i, tb in enumerate(track_boxes)
                    for j, b in enumerate(boxes)), reverse=True)
    used_t, used_f, out = set(), set(), []
    for a, i, j in pairs:
        if a <= 0:
            break
        if i in used_t or j in used_f:
            continue
        used_t.add(i)
        used_f.add(j)
        out.append((i, j))
    return out


def _quality(face) -> float:
    """What picks a track's face worth describing: large and sure."""
    q = min(face.box[2], face.box[3]) * (1.0 + max(0.0, face.score))
    return q * 0.5 if face.detector == "cnn" else q   # a turned face describes a person worse


class _Sample:
    """A sampled frame's pictures, each made on first use: BGR, RGB and the signature for
    "the same picture as the last scan" (a skipped sample needs none of them)."""
    __slots__ = ("frame", "_rgb", "_sig")

    def __init__(self, frame):
        self.frame, self._rgb, self._sig = frame, None, None

    @property
    def image(self) -> np.ndarray:
        return self.frame.image

    @property
    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            import cv2
            self._rgb = cv2.cvtColor(self.image, cv2.COLOR_BGR2RGB)
        return self._rgb

    @property
    def sig(self) -> np.ndarray:
        if self._sig is None:
            from models.vision.ocr import frame_signature
            self._sig = frame_signature(self.image)
        return self._sig


class FacesStage:
    """Faces of a video tracked into appearances and put with people (module doc)."""

    name = "faces"
    after = ("visual",)
    derives = ("face_appearances",)
    search_lists = ()           # search reads people through the store (person:"Anna")
    thumb_folder = "faces/{media_id}"   # a file's face crops under thumb_dir (saver prunes)

    def __init__(self, thumb_dir: str | os.PathLike, models_dir: str | os.PathLike | None = None,
                 *, sample_fps: float = SAMPLE_FPS, models=None,
                 embeds_per_appearance: int = EMBEDS_PER_APPEARANCE,
                 match_distance: float | None = None, use_cnn: bool = True,
                 gray: bool = True, fast: bool = True, scan_every: float | None = None,
                 scan_width: int | None = None):
        if sample_fps <= 0:
            raise ValueError("sample_fps must be positive")
        self.thumb_dir = Path(thumb_dir)
        self.models_dir = models_dir
        self.sample_fps = sample_fps
        self.keep = max(1, int(embeds_per_appearance))
        self.match_distance = match_distance
        self.use_cnn = use_cnn
        self.gray = gray               # the HOG on grey levels (models.faces.detect)
        self.fast = fast               # scan with the fast detector where it is installed
        self.scan_every = scan_every   # s (None: SCAN_EVERY; 0: every sample scanned)
        self.scan_width = scan_width   # px a scan looks at (None: the detector's default)
        self._models = models
        self.last_stats: dict = {}

    @property
    def models(self):
        if self._models is not None:
            return self._models
        from models.faces import shared_face_models
        return shared_face_models(self.models_dir).get()

    def applies(self, probe: dict) -> bool:
        return bool(probe.get("has_video", False))

    # ---- analysis ---------------------------------------------------------------------
    def analyse(self, path: str, *, duration: float | None = None,
                shot_starts: list[float] = (), photo: bool = False,
                report: Callable[[float], None] = lambda f: None,
                check: Callable[[], None] = lambda: None) -> FacesResult:
        """Appearances of faces in a video (no saving). `shot_starts`: times where a new
        shot begins (tracks never cross them). `photo`: a photo file, seen once, so both
        detectors look at it (models.faces.FaceModels.detect_both)."""
        models = self.models
        step = 1.0 / self.sample_fps
        cuts = sorted(float(t) for t in shot_starts if t > 0)
        stats = {"frames": 0, "scanned_frames": 0, "followed_frames": 0, "skipped_frames": 0,
                 "reused_frames": 0, "follow_scans": 0, "backfilled": 0, "faces": 0,
                 "cnn_looks": 0, "cnn_found": 0, "decode_s": 0.0, "detect_s": 0.0,
                 "align_s": 0.0, "cnn_s": 0.0, "embed_s": 0.0}
        res = FacesResult(stats=stats)
        active: list[_Track] = []
        closed: list[_Track] = []
        scan_sig, scan_faces, last_shot, last_time = None, [], -1, 0.0
        fast = self.fast and getattr(models, "fast", None) is not None
        scan_every = max(SCAN_EVERY if self.scan_every is None else self.scan_every, step)
        # The CNN's look for a lost track pays after the HOG (frontal only), not after the
        # fast detector, which finds turned faces itself (Megamind: 3 looks, none found).
        use_cnn = self.use_cnn and not fast
        last_scan = -float("inf")
        prev = None        # (time, _Sample, shot) of the last sample when it was not scanned
        reported, w, h = -1.0, 1, 1
        start = time.perf_counter()
        s = time.perf_counter()
        before = dict(getattr(models, "stats", {}))
        for frame in cheap_sampled_frames(path, self.sample_fps):
            stats["decode_s"] += time.perf_counter() - s
            check()
            t = frame.time
            last_time = t
            if duration:
                fraction = min(0.99, t / duration)
                if fraction - reported >= 0.01:
                    reported = fraction
                    report(fraction)
            stats["frames"] += 1
            shot = bisect.bisect_right(cuts, t + 1e-6)
            if shot != last_shot:
                cut = cuts[shot - 1] if shot > 0 else t
                for tr in active:
                    tr.end = max(tr.last, min(cut, t))
                closed += active
                active, scan_sig = [], None
            pic = _Sample(frame)
            d = time.perf_counter()
            faces = None
            no_scan_due = shot == last_shot and t - last_scan < scan_every - step / 2
            if fast and no_scan_due and not active:
                # nothing to follow, no scan due: the picture is not even converted (with
                # the fast detector every face of the last scan is tracked, so a reused
                # picture would give no face either)
                faces = []
                stats["skipped_frames"] += 1
            elif scan_sig is not None and _same(scan_sig, pic.sig):
                faces = scan_faces                    # the picture of the last scan
                stats["reused_frames"] += 1
            elif no_scan_due:
                if not active:
                    faces = []                        # nothing to follow, no scan due
                    stats["skipped_frames"] += 1
                elif not fast:                        # (the fast detector scans instead)
                    faces = self._follow(models, pic.image, pic.rgb, [tr.box for tr in active])
                    stats["followed_frames" if faces is not None else "follow_scans"] += 1
            if faces is None:
                faces = (models.detect_both(pic.image, rgb=pic.rgb) if photo
                         else self._scan(models, pic, fast))
                scan_sig, scan_faces, last_scan = pic.sig, faces, t
                stats["scanned_frames"] += 1
            stats["detect_s"] += time.perf_counter() - d
            scanned = faces is scan_faces
            last_shot = shot
            stats["faces"] += len(faces)
            h, w = frame.shape
            pairs = match_faces([tr.box for tr in active], [f.box for f in faces])
            matched_t = {i for i, _ in pairs}
            matched_f = {j for _, j in pairs}
            sightings: list[tuple[_Track, object]] = [(active[i], faces[j]) for i, j in pairs]
            still: list[_Track] = []
            for i, tr in enumerate(active):
                if i in matched_t:
                    still.append(tr)
                    continue
                found = None
                if use_cnn and not tr.searched and tr.last >= t - step * 1.5:
                    tr.searched = True
                    c = time.perf_counter()
                    found = models.find_near(pic.image, tr.box, rgb=pic.rgb)
                    stats["cnn_s"] += time.perf_counter() - c
                    stats["cnn_looks"] += 1
                if found is not None and not any(box_iou(found.box, f.box) > 0.3 for f in faces):
                    stats["cnn_found"] += 1
                    sightings.append((tr, found))
                    still.append(tr)
                else:
                    tr.end = t
                    closed.append(tr)
            new: list[_Track] = []
            for j, f in enumerate(faces):
                if j not in matched_f:
                    tr = _Track(shot, t, t, f.box)
                    new.append(tr)
                    sightings.append((tr, f))
            active = still + new
            if new and scanned and prev is not None and prev[2] == shot:
                b = time.perf_counter()
                self._backfill(models, prev, new, stats, fast)
                stats["detect_s"] += time.perf_counter() - b
            a = time.perf_counter()
            chips = (models.chips(pic.image, [f for _, f in sightings], rgb=pic.rgb)
                     if sightings else [])
            stats["align_s"] += time.perf_counter() - a
            for (tr, f), chip in zip(sightings, chips):
                tr.add(_Sighting(t, f.box, f.score, _quality(f), chip), self.keep)
            prev = None if scanned else (t, pic, shot)
            s = time.perf_counter()
        end = duration if duration else last_time + step
        for tr in active:
            tr.end = max(tr.last, end)
        closed += active
        self._describe(closed, step, res, (w, h))
        stats.update(total_s=time.perf_counter() - start, appearances=len(res.appearances),
                     **{k: v - before.get(k, 0) for k, v in getattr(models, "stats", {}).items()
                        if k in ("hog_calls", "hog_crops", "fast_calls", "cnn_calls",
                                 "embedded")})
        report(1.0)
        return res

    def _scan(self, models, pic: _Sample, fast: bool) -> list:
        width = {} if self.scan_width is None else {"width": self.scan_width}
        if fast:
            return models.detect_fast(pic.image, min_size=MIN_VIDEO_FACE, **width)
        return models.detect(pic.image, rgb=pic.rgb, gray=self.gray, **width)

    def _follow(self, models, image, rgb, boxes: list) -> list | None:
        """Faces near the followed ones only: HOG on a crop around each (crops that overlap
        merged into one); None when the crops would cost about as much as a scan."""
        from models.faces import DETECT_WIDTH, TRACK_FACE, TRACK_MARGIN, around, largest
        h, w = rgb.shape[:2]
        regions = []                                  # [x0, y0, x1, y1, smallest face side]
        for b in boxes:
            regions.append([*around(b, w, h, TRACK_MARGIN), max(b[2], b[3])])
        merged = True
        while merged:
            merged = False
            for i in range(len(regions)):
                for j in range(i + 1, len(regions)):
                    a, c = regions[i], regions[j]
                    if a[0] < c[2] and c[0] < a[2] and a[1] < c[3] and c[1] < a[3]:
                        regions[i] = [min(a[0], c[0]), min(a[1], c[1]), max(a[2], c[2]),
                                      max(a[3], c[3]), min(a[4], c[4])]
                        del regions[j]
                        merged = True
                        break
                if merged:
                    break
        full = min(1.0, DETECT_WIDTH / w) ** 2 * w * h
        cost = sum((r[2] - r[0]) * (r[3] - r[1]) * min(TRACK_FACE / r[4], 2.0) ** 2
                   for r in regions)
        if cost >= FOLLOW_MAX_SHARE * full:
            return None
        faces = []
        for *region, side in regions:
            faces += models.detect_in(image, region, side, rgb=rgb, gray=self.gray)
        return largest(faces)

    def _backfill(self, models, prev, tracks: list[_Track], stats: dict, fast: bool) -> None:
        """A face a scan found first may have been there at the sample before (followed
        or skipped, not scanned): look for it there, so its appearance starts when it did
        (the fast detector on the whole frame, else the HOG near each face)."""
        t, pic, _ = prev
        if fast:
            seen = self._scan(models, pic, True)
            found = [(tracks[i], seen[j]) for i, j in
                     match_faces([tr.box for tr in tracks], [f.box for f in seen])]
        else:
            found = []
            for tr in tracks:
                near = models.detect_near(pic.image, tr.box, rgb=pic.rgb, gray=self.gray)
                pairs = match_faces([tr.box], [f.box for f in near])
                if pairs:
                    found.append((tr, near[pairs[0][1]]))
        chips = models.chips(pic.image, [f for _, f in found], rgb=pic.rgb) if found else []
        for (tr, f), chip in zip(found, chips):
            tr.add(_Sighting(t, f.box, f.score, _quality(f), chip), self.keep, earlier=True)
            stats["backfilled"] += 1

    def _describe(self, tracks: list[_Track], step: float, res: FacesResult, size) -> None:
        """Embed each track's best faces, join consecutive tracks of the same face, and
        fill `res` with one appearance per joined track."""
        from models.face_clustering import SAME_FACE_DISTANCE
        models = self.models
        tracks = [t for t in tracks if t.best]
        e = time.perf_counter()
        chips = [s.chip for t in tracks for s in t.best]
        vecs = models.embed_chips(chips) if chips else np.zeros((0, 128), np.float32)
        res.stats["embed_s"] += time.perf_counter() - e
        means, k = [], 0
        for t in tracks:
            n = len(t.best)
            means.append(vecs[k:k + n].mean(axis=0))
            k += n
        order = sorted(range(len(tracks)), key=lambda i: (tracks[i].shot, tracks[i].first))
        groups: list[list[int]] = []
        for i in order:
            t = tracks[i]
            joined = False
            for g in reversed(groups):
                last = tracks[g[-1]]
                if last.shot != t.shot:
                    break
                gap = t.first - (last.end if last.end is not None else last.last)
                if last.last < t.first and gap <= JOIN_GAP_SAMPLES * step + 1e-6 and \
                        np.linalg.norm(means[g[-1]] - means[i]) < SAME_FACE_DISTANCE:
                    g.append(i)
                    joined = True
                    break
            if not joined:
                groups.append([i])
        w, h = size
        for g in groups:
            members = [tracks[i] for i in g]
            best = max((s for m in members for s in m.best), key=lambda s: s.quality)
            weights = np.asarray([m.sightings for m in members], np.float32)
            vec = (np.asarray([means[i] for i in g]) * weights[:, None]).sum(0) / weights.sum()
            x, y, bw, bh = best.box
            res.appearances.append({
                "start": round(members[0].first, 3),
                "end": round(max(m.end if m.end is not None else m.last for m in members), 3),
                "time": round(best.time, 3), "x": x / w, "y": y / h, "w": bw / w, "h": bh / h,
                "score": round(best.score, 4),
                "sightings": int(sum(m.sightings for m in members))})
            res.embeddings.append(vec.astype(np.float32))
            res.chips.append(best.chip)
        order = sorted(range(len(res.appearances)),
                       key=lambda i: (res.appearances[i]["start"], res.appearances[i]["time"]))
        res.appearances = [res.appearances[i] for i in order]
        res.embeddings = [res.embeddings[i] for i in order]
        res.chips = [res.chips[i] for i in order]

    # ---- the stage contract -----------------------------------------------------------
    def run(self, media: dict, ctx) -> Callable:
        media_id = media["id"]
        store = getattr(ctx, "store", None)
        shot_starts = store.shot_starts(media_id) if store is not None else []
        res = self.analyse(media["path"], duration=media.get("duration"),
                           shot_starts=shot_starts, photo=media.get("kind") == "image",
                           report=ctx.report, check=ctx.check)
        self.last_stats = res.stats
        ctx.check()
        prefix = self.thumb_folder.format(media_id=media_id)
        for k, (a, chip) in enumerate(zip(res.appearances, res.chips)):
            a["thumbnail"] = write_face_thumbnail(chip, self.thumb_dir,
                                                  f"{prefix}/{int(a['time'] * 1000):09d}_{k}.jpg")
        keep = {a["thumbnail"] for a in res.appearances}
        thumb_dir, match = self.thumb_dir, self.match_distance

        def saver(store) -> None:
            from indexer.stages.visual import prune_thumbnails
            store.save_faces(media_id, res.appearances, res.embeddings, match_distance=match)
            store.after_commit(lambda: prune_thumbnails(thumb_dir, prefix, keep))
        return saver


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    from models.vision.ocr import same_picture
    return same_picture(a, b)


def write_face_thumbnail(chip_rgb: np.ndarray, thumb_dir: Path, name: str) -> str:
    """The aligned face as a JPEG at thumb_dir/name; returns name."""
    import cv2
    target = Path(thumb_dir) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(chip_rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
    if not ok:
        raise OSError(f"cannot encode face thumbnail {name}")
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, target)
    return name
