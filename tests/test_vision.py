"""Vision: EfficientNet labels and features, OCR, shot detection, keyframes, the visual stage.

Real inputs: Debian opencv-doc photos, frames made with ffmpeg and cv2.putText. The ONNX
export of EfficientNet is cached in pytest's cache folder, so only the first run pays it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

DATA = Path("/usr/share/doc/opencv-doc/examples/data")

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
needs_photos = pytest.mark.skipif(not (DATA / "squirrel_cls.jpg").is_file(),
                                  reason="needs Debian opencv-doc sample data")


def ffmpeg(*args: str) -> None:
    r = subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *args],
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])


def cut_clip(path: Path, sources=("testsrc", "smptebars", "mandelbrot", "testsrc2"),
             seconds: float = 1.6, size: str = "320x180", fps: int = 25) -> list[float]:
    """Hard cuts between different ffmpeg sources; returns the true cut times (keep
    seconds * fps whole, so each cut falls exactly on a frame)."""
    args: list[str] = []
    for s in sources:
        args += ["-t", str(seconds), "-f", "lavfi", "-i", f"{s}=size={size}:rate={fps}"]
    graph = "".join(f"[{i}:v]" for i in range(len(sources)))
    graph += f"concat=n={len(sources)}:v=1,format=yuv420p[o]"
    ffmpeg(*args, "-filter_complex", graph, "-map", "[o]", "-c:v", "libx264",
           "-preset", "ultrafast", str(path))
    return [seconds * i for i in range(1, len(sources))]


def slide(text_lines, size=(640, 360), bg=(60, 30, 20)) -> np.ndarray:
    w, h = size
    img = np.full((h, w, 3), bg, np.uint8)
    for i, line in enumerate(text_lines):
        cv2.putText(img, line, (30, 120 + 110 * i), cv2.FONT_HERSHEY_DUPLEX, 1.3,
                    (255, 255, 255), 2, cv2.LINE_AA)
    return img


@pytest.fixture(scope="session")
def reader():
    from models.vision.ocr import ScreenTextReader
    return ScreenTextReader()


# ---- EfficientNet ---------------------------------------------------------------------------

@needs_photos
def test_efficientnet_labels_real_photos(classifier):
    photos = {"squirrel_cls.jpg": "fox squirrel", "baboon.jpg": "baboon",
              "orange.jpg": "orange", "messi5.jpg": "soccer ball"}
    images = [cv2.imread(str(DATA / name)) for name in photos]
    results = classifier.analyze(images, top_k=5)
    for (name, want), res in zip(photos.items(), results):
        assert want in [label for label, _ in res.top], (name, res.top)
    assert results[0].top[0][0] == "fox squirrel" and results[0].top[0][1] > 0.5
    assert classifier.backend == "onnx"


@needs_photos
def test_features_are_normalised_and_discriminative(classifier):
    sq = cv2.imread(str(DATA / "squirrel_cls.jpg"))
    feats = classifier.features([sq, cv2.flip(sq, 1), cv2.imread(str(DATA / "baboon.jpg"))])
    assert feats.shape == (3, 1280) and feats.dtype == np.float32
    assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    # a mirrored squirrel is far closer to the squirrel than the baboon is
    assert feats[0] @ feats[1] > feats[0] @ feats[2] + 0.2


PHOTOS = ("squirrel_cls.jpg", "baboon.jpg", "orange.jpg", "messi5.jpg", "apple.jpg",
          "butterfly.jpg", "fruits.jpg", "HappyFish.jpg", "aero1.jpg", "building.jpg", "home.jpg")


@needs_photos
def test_onnx_export_gives_torchs_outputs_on_real_photos(tmp_path, recwarn):
    """A fresh export through torch's supported (torch.export-based) exporter: onnxruntime's
    logits and pooled features match the torch model's on real photos, with the same top-1."""
    from models.vision.image_features import ImageClassifier, preprocess

    onnx = ImageClassifier(tmp_path, backend="onnx")
    legacy = [str(w.message) for w in recwarn if "TorchScript" in str(w.message)]
    assert not legacy, legacy                       # not the deprecated TorchScript exporter
    torch_ = ImageClassifier(backend="torch")
    batch = np.stack([preprocess(cv2.imread(str(DATA / name))) for name in PHOTOS])
    logits, pooled = onnx._forward(batch)
    want_logits, want_pooled = torch_._forward(batch)
    # measured: 8e-6 apart, with logits spanning -4.5..11
    np.testing.assert_allclose(logits, want_logits, rtol=0, atol=1e-4)
    np.testing.assert_allclose(pooled, want_pooled, rtol=0, atol=1e-4)
    assert list(logits.argmax(axis=1)) == list(want_logits.argmax(axis=1))


def test_onnx_export_is_cached(vision_models_dir, classifier):
    from models.vision.image_features import onnx_path
    assert onnx_path(vision_models_dir).is_file()


# ---- OCR ------------------------------------------------------------------------------------

def test_ocr_reads_rendered_text(reader):
    frame = slide(["Quarterly results 2024", "Budget meeting"])
    lines = reader.read(frame)
    text = " ".join(line.text for line in lines).lower()
    for word in ("quarterly", "results", "2024", "budget", "meeting"):
        assert word in text, lines
    assert all(line.confidence > 0.8 for line in lines)
    top = min(lines, key=lambda line: line.box[0][1])
    assert "quarterly" in top.text.lower()
    ys = [p[1] for p in top.box]
    assert 70 < min(ys) and max(ys) < 140                 # box in frame pixels


def test_ocr_subtitle_on_a_real_frame_at_1080p(reader):
    if not (DATA / "orange.jpg").is_file():
        pytest.skip("needs opencv-doc")
    frame = cv2.resize(cv2.imread(str(DATA / "orange.jpg")), (1920, 1080))
    cv2.putText(frame, "See you tomorrow", (500, 980), cv2.FONT_HERSHEY_SIMPLEX, 2.0,
                (0, 0, 0), 10, cv2.LINE_AA)
    cv2.putText(frame, "See you tomorrow", (500, 980), cv2.FONT_HERSHEY_SIMPLEX, 2.0,
                (255, 255, 255), 4, cv2.LINE_AA)
    text = " ".join(line.text for line in reader.read(frame)).lower()
    assert "see you tomorrow" in text


def _drawn_slide(lines: list[str], top: int) -> np.ndarray:
    """A 1280x720 BGR slide with `lines` in Debian's DejaVu Sans, any script it covers."""
    from PIL import Image, ImageDraw, ImageFont
    font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not font.is_file():
        pytest.skip("needs Debian's fonts-dejavu-core")
    img = Image.new("RGB", (1280, 720), (22, 34, 64))
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((90, top + 120 * i), line, font=ImageFont.truetype(str(font), 44),
                  fill=(250, 250, 250))
    return cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2BGR)


def test_ocr_reads_the_letters_of_european_languages(reader, monkeypatch):
    """PP-OCRv6 (the rapidocr wheel's model files) reads the accented and special letters of
    German, Polish, Czech, Spanish and French on a rendered slide, which PP-OCRv4 (the
    fallback where those files are missing) turns into other letters: "Grüße" -> "GruBe"."""
    from models.vision import ocr
    lines = ["Grüße aus München", "Usuwa nieużywane pakiety", "Zobrazí závislosti balíku",
             "Año nuevo: ¿qué pasará?", "Réunion générale à Montréal"]
    frame = _drawn_slide(lines, top=80)
    assert reader.model == "pp-ocrv6"
    read = [line.text for line in reader.read(frame)]
    assert read == lines
    assert reader._v4 is None                   # no Vietnamese letter: v6's reading stands
    monkeypatch.setattr(ocr, "v6_model_files", lambda: None)
    fallback = ocr.ScreenTextReader()
    assert fallback.model == "pp-ocrv4"
    old = " ".join(line.text for line in fallback.read(frame))
    assert "Montr" in old and "Grüße" not in old          # the lines, without their letters


def test_a_vietnamese_frame_is_read_again_by_the_older_model(reader):
    """PP-OCRv6 lacks Vietnamese letters with two marks ("Bạn" -> "Bn"); a frame where it
    reads a letter only Vietnamese writes (ư, ơ) is read again by PP-OCRv4, whose bare
    letters full-text search finds (it folds diacritics). Debian apt's own Vietnamese."""
    import unicodedata
    lines = ["In ra danh sách các gói được giữ lại", "Bạn có muốn tiếp tục không?"]
    frame = _drawn_slide(lines, top=200)

    def folded(text):
        text = unicodedata.normalize("NFKD", text.lower())
        return "".join(c for c in text if not unicodedata.combining(c)).split()
    want = folded(" ".join(lines))
    got = set(folded(" ".join(line.text for line in reader.read(frame))))
    assert reader._v4 is not None
    assert sum(w in got for w in want) >= 0.65 * len(want), got   # v4: 12 of 15, v6: 8


def test_cheap_text_check():
    from models.vision.ocr import might_have_text
    assert might_have_text(slide(["Quarterly results 2024"]))
    assert not might_have_text(np.zeros((360, 640, 3), np.uint8))
    ramp = np.tile(np.linspace(0, 255, 640, dtype=np.uint8), (360, 1))
    assert not might_have_text(cv2.cvtColor(ramp, cv2.COLOR_GRAY2BGR))
    noise = np.clip(np.random.default_rng(0).normal(128, 10, (360, 640, 3)), 0, 255)
    assert not might_have_text(noise.astype(np.uint8))


# ---- shots and keyframes --------------------------------------------------------------------

@needs_ffmpeg
@pytest.mark.parametrize("sample_fps", [4.0, 25.0])
def test_shot_detection_finds_cuts_within_one_frame_interval(tmp_path, sample_fps):
    """At the default 4 samples/s a cut is reported at the first sample after it; sampling
    every frame (25/s here) finds it on the exact frame."""
    from indexer.stages.keyframes import detect_cuts
    clip = tmp_path / "cuts.mp4"
    truth = cut_clip(clip)
    found = detect_cuts(clip, sample_fps=sample_fps)
    assert len(found) == len(truth), found
    for t, f in zip(truth, found):
        assert -1e-3 <= f - t <= 1.0 / sample_fps + 1e-3, (truth, found)


@needs_ffmpeg
def test_keyframes_per_shot_and_every_n_seconds(tmp_path):
    from indexer.stages.keyframes import iter_keyframes
    clip = tmp_path / "long.mp4"
    # one 9 s shot, then a cut and a 3 s shot
    ffmpeg("-t", "9", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
           "-t", "3", "-f", "lavfi", "-i", "smptebars=size=320x180:rate=25",
           "-filter_complex", "[0:v][1:v]concat=n=2:v=1,format=yuv420p[o]", "-map", "[o]",
           "-c:v", "libx264", "-preset", "ultrafast", str(clip))
    truth = [9.0]
    max_gap = 2.0
    kfs = list(iter_keyframes(clip, max_gap=max_gap, thumb_dir=tmp_path / "thumbs",
                              thumb_prefix="7"))
    times = [k.time for k in kfs]
    assert times[0] < 0.05 and kfs[0].reason == "start"
    gaps = np.diff(times + [12.0])
    assert gaps.max() <= max_gap + 1e-6, times
    # No more keyframes than the gap needs: each interval keyframe is the last sample that
    # keeps it (not one sample early, which gave 1.75 s steps).
    assert [(round(k.time, 2), k.reason) for k in kfs if k.reason == "interval"] == \
        [(2.0, "interval"), (4.0, "interval"), (6.0, "interval"), (8.0, "interval"),
         (11.0, "interval")], times
    cuts = [k for k in kfs if k.reason == "cut"]
    assert len(cuts) == 1 and 0 <= cuts[0].time - truth[0] <= 0.25 + 1e-6
    assert [k.shot for k in kfs] == sorted(k.shot for k in kfs) and kfs[-1].shot == 1
    for k in kfs:
        assert k.thumbnail.startswith("7/") and k.thumbnail.endswith(".jpg")
        thumb = cv2.imread(str(tmp_path / "thumbs" / k.thumbnail))
        assert thumb.shape[1] == 320
    assert len({k.thumbnail for k in kfs}) == len(kfs)


def _rotated_clip(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 320x180 clip whose metadata says 'show rotated by 90 degrees', and ffmpeg's own
    upright rendering of its first frame."""
    plain, rot = tmp_path / "plain.mp4", tmp_path / "rot.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x180:rate=10:duration=1", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(plain))
    try:
        ffmpeg("-display_rotation", "90", "-i", str(plain), "-c", "copy", str(rot))
    except RuntimeError:                   # ffmpeg < 6 has no -display_rotation
        ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rot))
    ref = tmp_path / "ref.png"
    ffmpeg("-i", str(rot), "-frames:v", "1", str(ref))     # ffmpeg autorotates
    upright = cv2.imread(str(ref))
    if upright.shape[:2] != (320, 180):
        pytest.skip("this ffmpeg wrote no rotation metadata")
    return rot, upright


@needs_ffmpeg
@pytest.mark.parametrize("backend", ["opencv", "pyav", "selective"])
def test_rotated_video_gives_upright_frames(tmp_path, backend):
    from indexer.stages.keyframes import sampled_frames
    rot, upright = _rotated_clip(tmp_path)
    frame = next(iter(sampled_frames(rot, 4.0, backend=backend))).image
    assert frame.shape == upright.shape
    err = np.abs(frame.astype(int) - upright.astype(int)).mean()
    flipped = np.abs(np.rot90(frame, 2).astype(int) - upright.astype(int)).mean()
    assert err < 8 < flipped


@needs_ffmpeg
@pytest.mark.parametrize("backend", ["opencv", "selective"])
def test_small_copy_of_a_rotated_frame_is_the_upright_picture_scaled(tmp_path, backend):
    # The selective reader scales the decoder's picture with swscale and turns it after;
    # OpenCV's frames are resized with OpenCV. Either way: upright, the same picture.
    from indexer.stages.keyframes import detect_width_frame, sampled_frames
    rot, upright = _rotated_clip(tmp_path)
    frame = next(iter(sampled_frames(rot, 4.0, backend=backend)))
    small = frame.small(90)
    want = detect_width_frame(upright, 90)
    assert small.shape == want.shape == (160, 90, 3)
    err = np.abs(small.astype(int) - want.astype(int)).mean()
    flipped = np.abs(np.rot90(small, 2).astype(int) - want.astype(int)).mean()
    assert err < 8 < flipped
    assert frame.image.shape == upright.shape          # the full picture is still there


@needs_ffmpeg
def test_pyav_fallback_when_opencv_cannot_open(tmp_path, monkeypatch):
    import indexer.stages.keyframes as kf
    clip = tmp_path / "c.mp4"
    cut_clip(clip, sources=("testsrc", "smptebars"), seconds=1.0)
    want = [(f.index, round(f.time, 3)) for f in kf.sampled_frames(clip, 4.0)]

    class Closed:
        def __init__(self, *a, **k): pass
        def isOpened(self): return False
        def release(self): pass

    def not_h264(path, step, stats=None):
        raise kf.VideoUnreadable("pretend this is not H.264")
        yield
    import cv2        # keyframes imports it where it is used
    monkeypatch.setattr(cv2, "VideoCapture", Closed)
    monkeypatch.setattr(kf, "_selective_frames", not_h264)
    got = [(f.index, round(f.time, 3)) for f in kf.sampled_frames(clip, 4.0)]
    assert got == want and len(got) == 8


@needs_ffmpeg
def test_selective_decoding_gives_opencvs_frames_from_fewer_pictures(tmp_path):
    """H.264 with B-frames: the selective reader leaves out non-reference pictures that
    cannot be samples, and still yields exactly OpenCV's frames (pixels and times), at the
    default rate, at rates that are not a divisor of the frame rate, and at every frame."""
    import av
    from indexer.stages.keyframes import (_avcc_length_size, is_disposable_h264, sampled_frames)
    clip = tmp_path / "b.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30000/1001", "-t", "4",
           "-c:v", "libx264", "-bf", "3", "-pix_fmt", "yuv420p", str(clip))
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        size = _avcc_length_size(s.codec_context.extradata)
        packets = [(p.is_keyframe, is_disposable_h264(bytes(p), size))
                   for p in c.demux(s) if p.size]
    assert size == 4 and not any(d for key, d in packets if key)
    disposable = sum(d for _, d in packets)
    assert len(packets) // 4 <= disposable < len(packets)     # x264's b-frames
    for fps in (4.0, 2.5, 30.0):
        stats: dict = {}
        want = list(sampled_frames(clip, fps, backend="opencv"))
        got = list(sampled_frames(clip, fps, backend="selective", stats=stats))
        assert [f.time for f in got] == [f.time for f in want] and len(got) >= 4 * fps - 1
        assert all(np.array_equal(a.image, b.image) for a, b in zip(got, want))
        assert stats["decoded"] + stats["skipped"] == len(packets)
        if fps < 10:
            assert stats["skipped"] > disposable // 2
        else:
            assert stats["skipped"] == 0            # every frame is a sample


@needs_ffmpeg
def test_selective_decoding_leaves_other_files_to_opencv(tmp_path):
    from indexer.stages.keyframes import VideoUnreadable, sampled_frames
    clip = tmp_path / "m.avi"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=1", "-c:v", "mjpeg",
           str(clip))
    with pytest.raises(VideoUnreadable):
        next(iter(sampled_frames(clip, 4.0, backend="selective")))
    assert len(list(sampled_frames(clip, 4.0))) == 4


@needs_ffmpeg
def test_interlaced_h264_is_read_in_colour(tmp_path):
    """OpenCV turns interlaced H.264 into all-black frames; the default reader must not."""
    from indexer.stages.keyframes import sampled_frames
    clip = tmp_path / "interlaced.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "2", "-c:v", "libx264",
           "-flags", "+ildct+ilme", "-x264-params", "interlaced=1:tff=1", "-pix_fmt", "yuv420p",
           str(clip))
    frames = list(sampled_frames(clip, 2.0))
    assert len(frames) == 4
    for f in frames:          # testsrc2 is colour bars and a moving pattern: far from black
        assert f.image.mean() > 60 and f.image.std() > 40


def test_unreadable_file_raises(tmp_path):
    from indexer.stages.keyframes import VideoUnreadable, sampled_frames
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n" * 100)
    with pytest.raises(VideoUnreadable):
        list(sampled_frames(bad))


# ---- merging and the stage ------------------------------------------------------------------

def test_range_merger_joins_consecutive_and_ocr_jitter():
    from indexer.stages.visual import RangeMerger, _same_text, normalise_text
    m = RangeMerger(_same_text)
    seen = [(0.0, ["Quarterly results 2024"]), (5.0, ["Quarterly resuIts 2024"]),
            (10.0, []), (15.0, ["Quarterly results 2024", "Budget"])]
    for t, lines in seen:
        m.observe(t, {normalise_text(x): (x, 0.9) for x in lines})
    ranges = m.finish(20.0)
    assert [(s, e, txt) for s, e, txt, _ in ranges] == [
        (0.0, 10.0, "Quarterly results 2024"), (15.0, 20.0, "Budget"),
        (15.0, 20.0, "Quarterly results 2024")]


def _stage_clip(tmp_path: Path) -> Path:
    """3 s of a squirrel photo, a cut, 3 s of a slide with text (10 fps, 640x360)."""
    photo = tmp_path / "photo.png"
    img = cv2.imread(str(DATA / "squirrel_cls.jpg"))
    h, w = img.shape[:2]
    s = min(640 / w, 360 / h)
    canvas = np.zeros((360, 640, 3), np.uint8)
    small = cv2.resize(img, (int(w * s), int(h * s)))
    y, x = (360 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    cv2.imwrite(str(photo), canvas)
    text = tmp_path / "slide.png"
    cv2.imwrite(str(text), slide(["Quarterly results 2024", "Budget meeting"]))
    clip = tmp_path / "talk.mp4"
    ffmpeg("-loop", "1", "-t", "3", "-framerate", "10", "-i", str(photo),
           "-loop", "1", "-t", "3", "-framerate", "10", "-i", str(text),
           "-filter_complex", "[0:v][1:v]concat=n=2:v=1,format=yuv420p[o]", "-map", "[o]",
           "-c:v", "libx264", "-preset", "ultrafast", str(clip))
    return clip


@needs_ffmpeg
@needs_photos
def test_visual_stage_writes_rows_into_a_store(tmp_path, vision_models_dir, classifier, reader):
    from indexer.stages.base import StageContext
    from indexer.store import Store
    from indexer.store.vec_codec import int8_blob
    from indexer.stages.visual import VisualStage
    clip = _stage_clip(tmp_path)
    store = Store(tmp_path / "lib.db")
    try:
        media_id = store.add_media(str(clip), "fp", clip.stat().st_size, 0)
        stage = VisualStage(tmp_path / "thumbs", vision_models_dir, max_gap=2.0,
                            classifier=classifier, reader=reader)
        assert stage.name == "visual"
        assert stage.applies({"has_video": True}) and not stage.applies({"has_video": False})
        reports, checks = [], []
        ctx = StageContext(report=reports.append,
                           cancelled=lambda: checks.append(1) or False)
        media = {"id": media_id, "path": str(clip), "duration": 6.0, "kind": "video"}
        saver = stage.run(media, ctx)
        saver(store)
        assert reports and reports[-1] == 1.0 and reports == sorted(reports)
        assert len(checks) >= 20                      # checked at every sampled frame

        kfs = list(store.db.query("SELECT * FROM keyframes WHERE media_id=? ORDER BY time",
                                  [media_id]))
        assert len(kfs) >= 4 and kfs[0]["time"] < 0.2
        assert any(abs(k["time"] - 3.0) <= 0.3 and k["shot"] == 1 for k in kfs)
        assert all((tmp_path / "thumbs" / k["thumbnail"]).is_file() for k in kfs)
        vec = list(store.db.query("SELECT keyframe_id, media_id, kind, vec_length(embedding) AS n "
                                  "FROM keyframe_vec"))
        assert sorted(v["keyframe_id"] for v in vec) == sorted(k["id"] for k in kfs)
        assert {(v["media_id"], v["kind"], v["n"]) for v in vec} == {(media_id, "video", 1280)}

        tags = list(store.db.query("SELECT * FROM tags WHERE media_id=?", [media_id]))
        squirrel = [t for t in tags if t["label"] == "fox squirrel"]
        assert len(squirrel) == 1, tags               # consecutive keyframes merged
        assert squirrel[0]["start"] < 0.2 and 2.9 <= squirrel[0]["end"] <= 3.3
        assert squirrel[0]["source"] == "imagenet" and squirrel[0]["score"] > 0.5

        text = list(store.db.query("SELECT * FROM screen_text WHERE media_id=? ORDER BY start",
                                   [media_id]))
        quarterly = [t for t in text if "quarterly" in t["text"].lower()]
        assert len(quarterly) == 1, text              # one range for the whole slide
        assert 2.9 <= quarterly[0]["start"] <= 3.3 and quarterly[0]["end"] == 6.0
        assert any("budget" in t["text"].lower() for t in text)
        hits = list(store.db.query("SELECT rowid FROM screen_text_fts WHERE screen_text_fts "
                                   "MATCH 'quarterly'"))
        assert hits

        # search by example: the squirrel photo's nearest keyframe is in the squirrel shot
        q = classifier.features([cv2.imread(str(DATA / "squirrel_cls.jpg"))])[0]
        near = list(store.db.query(
            "SELECT k.time FROM keyframe_vec v JOIN keyframes k ON k.id = v.keyframe_id "
            "WHERE v.embedding MATCH vec_int8(?) AND k = 1", [int8_blob(q)]))
        assert near[0]["time"] < 3.0

        # re-running replaces (no duplicates) and keeps tags of other sources
        store.db["tags"].insert({"media_id": media_id, "start": 0, "end": 1, "label": "mine",
                                 "source": "user", "score": None})
        stage.run(media, StageContext())(store)
        assert store.db.execute("SELECT count(*) FROM keyframes").fetchone()[0] == len(kfs)
        assert store.db.execute("SELECT count(*) FROM keyframe_vec").fetchone()[0] == len(kfs)
        labels = [t["label"] for t in store.db.query("SELECT label FROM tags")]
        assert labels.count("fox squirrel") == 1 and "mine" in labels
    finally:
        store.close()


@needs_ffmpeg
def test_visual_stage_cancels(tmp_path, vision_models_dir, classifier, reader):
    from indexer.stages.base import Cancelled, StageContext
    from indexer.stages.visual import VisualStage
    clip = tmp_path / "c.mp4"
    cut_clip(clip, sources=("testsrc", "smptebars"), seconds=2.0)
    stage = VisualStage(tmp_path / "thumbs", vision_models_dir, classifier=classifier, reader=reader)
    calls = []
    ctx = StageContext(cancelled=lambda: calls.append(1) or len(calls) > 3)
    with pytest.raises(Cancelled):
        stage.run({"id": 1, "path": str(clip), "duration": 4.0}, ctx)


def test_tag_thresholds_file_is_calibrated():
    from models.vision.tags import THRESHOLDS_FILE, TagThresholds
    raw = json.loads(THRESHOLDS_FILE.read_text())
    t = TagThresholds.load()
    assert 0.2 <= t.default <= 0.5 and t.default == raw["global"]
    vec = t.vector()
    assert vec.shape == (1000,) and (vec >= t.default).all()
    assert vec[530] > t.default             # "digital clock": fires on synthetic frames
