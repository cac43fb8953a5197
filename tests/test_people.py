"""People on screen (models.vision.people) and the visual stage's own tags: "person" from
the HOG people detector, "text" where OCR read a line, and no tag on colour bars.

Real inputs: frames of Debian opencv-doc's vtest.avi (pedestrians) and its photos, ffmpeg's
pal75bars (the pattern EfficientNet calls "binder").
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

DATA = Path("/usr/share/doc/opencv-doc/examples/data")
needs_data = pytest.mark.skipif(not (DATA / "vtest.avi").is_file() or shutil.which("ffmpeg") is None,
                                reason="needs Debian opencv-doc sample data and ffmpeg")


def _vtest_frames(times=(10.0, 30.0, 50.0, 70.0)) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(DATA / "vtest.avi"))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    out = []
    for t in times:
        cap.set(cv2.CAP_PROP_POS_FRAMES, round(t * fps))
        ok, img = cap.read()
        assert ok
        out.append(img)
    cap.release()
    return out


def _pattern(tmp_path: Path, src: str = "pal75bars", size: str = "1280x720") -> np.ndarray:
    out = tmp_path / f"{src}.png"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"{src}=size={size}", "-frames:v", "1", str(out)], check=True)
    return cv2.imread(str(out))


def _reference_margins(gray: np.ndarray, svm: np.ndarray) -> np.ndarray:
    """Every window's SVM margin, block by block as Dalal-Triggs and OpenCV 4 define the
    descriptor: square-root gamma, [-1 0 1] gradients (angles by cv2.cartToPolar, whose
    approximation OpenCV's HOG uses too), 9 unsigned bins with linear votes,
    Gaussian (sigma 4) times bilinear cell weights over a 16x16 block, L2-Hys; a window's
    105 blocks x outer, y inner, each block's cells x outer, y inner."""
    img = np.sqrt(gray.astype(np.float64))
    pad = np.pad(img, 1, mode="reflect")
    dx, dy = pad[1:-1, 2:] - pad[1:-1, :-2], pad[2:, 1:-1] - pad[:-2, 1:-1]
    mag, ang = cv2.cartToPolar(dx.astype(np.float32), dy.astype(np.float32))
    pos = (ang.astype(np.float64) % np.pi) * 9 / np.pi - 0.5
    lo = np.floor(pos)
    frac = pos - lo
    lo = lo.astype(int) % 9
    t = np.arange(16)
    gauss = np.exp(-((t[:, None] - 8) ** 2 + (t[None, :] - 8) ** 2) / 32.0)
    near = np.clip(1 - np.abs((t + 0.5) / 8 - 0.5 - np.arange(2)[:, None]), 0, 1)   # (cell, px)
    by, bx = gray.shape[0] // 8 - 1, gray.shape[1] // 8 - 1
    blocks = np.zeros((by, bx, 36))
    for y in range(by):
        for x in range(bx):
            sl = np.s_[8 * y:8 * y + 16, 8 * x:8 * x + 16]
            hist = np.zeros((2, 2, 9))                                 # cell x, cell y, bin
            for cx in range(2):
                for cy in range(2):
                    wgt = gauss * near[cy][:, None] * near[cx][None, :] * mag[sl]
                    np.add.at(hist[cx, cy], lo[sl], wgt * (1 - frac[sl]))
                    np.add.at(hist[cx, cy], (lo[sl] + 1) % 9, wgt * frac[sl])
            v = hist.ravel()
            v = np.minimum(v / (np.linalg.norm(v) + 3.6), 0.2)
            blocks[y, x] = v / (np.linalg.norm(v) + 1e-3)
    out = np.zeros((by - 14, bx - 6))
    for y in range(by - 14):
        for x in range(bx - 6):
            desc = blocks[y:y + 15, x:x + 7].transpose(1, 0, 2).ravel()
            out[y, x] = desc @ svm[:-1] + svm[-1]
    return out


@needs_data
def test_window_margins_equal_the_descriptor_computed_block_by_block():
    from models.vision.people import DETECTOR_FILE, PeopleDetector
    det, svm = PeopleDetector(), np.load(DETECTOR_FILE).astype(np.float64)
    frame = cv2.cvtColor(_vtest_frames((30.0,))[0], cv2.COLOR_BGR2GRAY)
    photo = cv2.cvtColor(cv2.imread(str(DATA / "fruits.jpg")), cv2.COLOR_BGR2GRAY)
    # a pedestrian's stretch of the street, and a photo without people
    for gray in (frame[176:336, 280:392], photo[100:260, 200:312]):
        mine, ref = det.window_scores(gray), _reference_margins(gray, svm)
        assert mine.shape == ref.shape and mine.size >= 15
        assert np.abs(mine - ref).max() < 1e-4, np.abs(mine - ref).max()
    assert det.window_scores(frame[176:336, 280:392]).max() > det.threshold


@needs_data
def test_people_detector_sees_vtests_pedestrians_and_not_photos(tmp_path):
    from models.vision.people import PeopleDetector
    det = PeopleDetector()
    seen = [det.sees_person(f) for f in _vtest_frames()]
    assert sum(found for found, _ in seen) >= 3, seen
    for name in ("butterfly.jpg", "fruits.jpg", "orange.jpg"):
        found, margin = det.sees_person(cv2.imread(str(DATA / name)))
        assert not found and margin < det.threshold - 0.2, (name, margin)
    assert not det.sees_person(_pattern(tmp_path))[0]
    assert det.score(np.zeros((100, 50, 3), np.uint8)) is None          # under one window
    black = np.full((720, 1280, 3), 16, np.uint8)
    assert det.score(black) == pytest.approx(float(det.window_scores(black[:128, :64, 0])[0, 0]))
    assert not det.sees_person(black)[0]


@needs_data
def test_colour_bars_get_no_imagenet_tag_but_photos_keep_theirs(tmp_path, classifier):
    from models.vision.tags import MIN_EVIDENCE, TagThresholds, image_evidence, select
    th = TagThresholds.load().vector()
    bars = _pattern(tmp_path)
    [a] = classifier.analyze([bars])
    assert image_evidence(bars) < MIN_EVIDENCE
    assert select(a.probs, classifier.labels, th, evidence=image_evidence(bars)) == []
    for name, label in (("squirrel_cls.jpg", "fox squirrel"), ("orange.jpg", "orange")):
        img = cv2.imread(str(DATA / name))
        assert image_evidence(img) > 2 * MIN_EVIDENCE
        [a] = classifier.analyze([img])
        tags = select(a.probs, classifier.labels, th, evidence=image_evidence(img))
        assert label in [lb for lb, _ in tags]


@needs_data
def test_visual_stage_tags_people_and_text(tmp_path, vision_models_dir, classifier):
    """A 6 s clip: 2 s of a vtest frame, 2 s of colour bars, 2 s of a text slide."""
    from indexer.stages.visual import PEOPLE_SOURCE, TEXT_SOURCE, VisualStage
    from models.vision.ocr import ScreenTextReader
    slide = np.full((720, 1280, 3), (60, 30, 20), np.uint8)
    cv2.putText(slide, "Quarterly results", (80, 360), cv2.FONT_HERSHEY_DUPLEX, 2.5,
                (255, 255, 255), 4, cv2.LINE_AA)
    stills = [cv2.resize(_vtest_frames((30.0,))[0], (1280, 720)), _pattern(tmp_path), slide]
    clip = tmp_path / "clip.mp4"
    out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (1280, 720))
    for img in stills:
        for _ in range(20):
            out.write(img)
    out.release()
    stage = VisualStage(tmp_path / "thumbs", vision_models_dir, max_gap=1.0,
                        classifier=classifier, reader=ScreenTextReader(), motion=False)
    res = stage.analyse(str(clip), duration=6.0)
    person = [t for t in res.tags if t["label"] == "person"]
    assert len(person) == 1, res.tags
    assert person[0]["source"] == PEOPLE_SOURCE and person[0]["start"] < 0.5
    assert 1.5 <= person[0]["end"] <= 2.5 and 0.5 <= person[0]["score"] <= 1.0
    text = [t for t in res.tags if t["label"] == "text"]
    assert len(text) == 1 and text[0]["source"] == TEXT_SOURCE and text[0]["start"] >= 3.5
    # the colour bars (2-4 s) get no tag at all
    assert not [t for t in res.tags if t["start"] >= 1.5 and t["end"] <= 4.5], res.tags
    assert res.stats["people_frames"] >= 2


def _clip(path: Path, frames, fps: int = 2) -> Path:
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for img in frames:
        out.write(img)
    out.release()
    return path


@needs_data
def test_visual_stage_looks_again_only_when_the_picture_changed(tmp_path, vision_models_dir,
                                                                 classifier):
    """21 s of one street picture: the checks due at 10 s and 20 s keep the first answer;
    21 s of the real street footage (people walking): every due check looks again."""
    from indexer.stages.visual import VisualStage
    stage = VisualStage(tmp_path / "thumbs", vision_models_dir, max_gap=5.0,
                        classifier=classifier, ocr=False, motion=False)
    still = _clip(tmp_path / "still.mp4", _vtest_frames((30.0,)) * 42)
    res = stage.analyse(str(still), duration=21.0)
    assert len({k["shot"] for k in res.keyframes}) == 1
    assert res.stats["people_frames"] == 1 and res.stats["people_reused"] == 2, res.stats
    [person] = [t for t in res.tags if t["label"] == "person"]
    assert person["start"] < 0.5 and person["end"] > 20.5
    moving = _clip(tmp_path / "moving.mp4", _vtest_frames([i / 2 for i in range(42)]))
    res = stage.analyse(str(moving), duration=21.0)
    assert len({k["shot"] for k in res.keyframes}) == 1
    assert res.stats["people_frames"] == 3 and res.stats["people_reused"] == 0, res.stats
