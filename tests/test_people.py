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


def test_block_weights_sum_like_opencvs():
    from models.vision.people import _WEIGHTS
    # within a block, a pixel gives at most its Gaussian weight, split over the 4 cells;
    # the block's centre pixels (Gaussian peak, between all 4 cells) give almost all of it
    w = _WEIGHTS.reshape(4, 4, 8, 8)                    # quadrant, cell, pixel row, column
    assert (w >= 0).all() and w.sum(axis=1).max() <= 1.0
    assert w.sum(axis=1)[3, 0, 0] > 0.9


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
