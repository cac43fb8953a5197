"""models/face_clustering.py: the pure functions that put descriptors into people (no model
here: points placed at known distances stand for descriptors; tests/test_faces.py runs
the same functions on real photos' descriptors), and the dev split's labels
(benchmarks/faces_dev.py)."""
from __future__ import annotations

import numpy as np
import pytest

from models.face_clustering import (MATCH_DISTANCE, assign, join_close, link, pairwise_f1,
                                    two_groups)


def _at(*coords) -> np.ndarray:
    """A 128-d point with its first coordinates set."""
    v = np.zeros(128, np.float32)
    v[:len(coords)] = coords
    return v


def test_new_faces_join_the_people_already_known_and_move_their_centroid():
    known = np.stack([_at(0.0), _at(5.0)])
    near_first = _at(0.3)                       # 0.3 from person 0, far from person 1
    stranger = _at(0.0, 3.0)
    result = assign([near_first, stranger], known, [3, 1])
    assert list(result.labels) == [0, 2] and result.created == 1
    assert list(result.counts) == [4, 1, 1]
    # a running mean: three faces at 0 and one at 0.3
    assert result.centroids[0][0] == pytest.approx(0.075)
    assert result.centroids[1][0] == pytest.approx(5.0)            # untouched
    assert result.distances[0] == pytest.approx(0.3) and result.distances[1] == 0


def test_a_face_just_beyond_the_threshold_starts_a_person_the_next_faces_can_join():
    a, b = _at(0.0), _at(MATCH_DISTANCE + 0.01)
    c = _at(MATCH_DISTANCE + 0.02)
    result = assign([a, b, c])
    assert list(result.labels) == [0, 1, 1] and result.created == 2


def test_people_that_may_not_be_joined_are_passed_over():
    known = np.stack([_at(0.0), _at(0.4)])
    face = _at(0.1)
    assert assign([face], known, [1, 1]).labels[0] == 0
    assert assign([face], known, [1, 1], joinable=[False, True]).labels[0] == 1


def test_people_whose_centroids_came_close_become_one():
    # two people 0.56 apart; a face at 0.2 joins the first and moves it to 0.1, 0.46 from
    # the second: they are one person now, the one with more faces taking the other
    first = assign([_at(0.2)], np.stack([_at(0.0), _at(0.56)]), [1, 1])
    assert list(first.labels) == [0]
    assert join_close(first.centroids, first.counts, [0]) == [(0, 1)]
    # only pairs with a touched person are looked at, and may_join can refuse one
    assert join_close(np.stack([_at(0.0), _at(0.46), _at(5.0)]), [1, 1, 1], [2]) == []
    assert join_close(first.centroids, first.counts, [0], may_join=lambda a, b: False) == []
    # a join moves the centroid, which may then reach a third person; a far one stays
    # (0 and 0.45 x 3 meet at 0.3375, within 0.4625 of 0.8)
    cents = np.stack([_at(0.0), _at(0.45), _at(0.8), _at(5.0)])
    assert join_close(cents, [1, 3, 1, 1], [0]) == [(1, 0), (1, 2)]
    assert join_close(cents, [1, 1, 1, 1], [3]) == []


def test_counts_must_match_the_centroids():
    with pytest.raises(ValueError, match="2 counts for 1 centroids"):
        assign([_at(0.0)], [_at(1.0)], [1, 2])
    empty = assign([], None, None)
    assert empty.created == 0 and empty.centroids.shape == (0, 128)


def test_link_ties_a_chain_of_near_faces_into_one_group():
    # 0 -- 0.5 -- 1.0 are each within 0.6 of the next, not of the far end
    faces = [_at(0.0), _at(0.5), _at(1.0), _at(10.0)]
    assert list(link(faces, threshold=0.6)) == [0, 0, 0, 1]
    assert list(link(faces[:1])) == [0]


def test_two_groups_splits_two_far_apart_sets():
    faces = [_at(0.0), _at(0.1), _at(0.05, 0.05), _at(3.0), _at(3.1)]
    groups = two_groups(faces)
    assert len(set(groups[:3])) == 1 and len(set(groups[3:])) == 1 and groups[0] != groups[3]
    same = two_groups([_at(1.0), _at(1.0)])
    assert sorted(same) == [0, 1]


def test_pairwise_f1_counts_pairs():
    truth = ["a", "a", "a", "b"]
    assert pairwise_f1(truth, [0, 0, 0, 1])["f1"] == 1.0
    split = pairwise_f1(truth, [0, 0, 1, 2])           # 1 of 3 same pairs kept
    assert split["precision"] == 1.0 and split["recall"] == pytest.approx(1 / 3)
    merged = pairwise_f1(truth, [0, 0, 0, 0])          # 3 true pairs, 3 false
    assert merged["precision"] == 0.5 and merged["recall"] == 1.0
    assert merged["pairs_same"] == 3


def test_the_dev_splits_montage_is_cut_into_its_25_photos_and_labelled_one_person():
    from benchmarks.faces_dev import MONTAGE, _label, _pictures
    montage = np.arange(500 * 400 * 3, dtype=np.uint32).astype(np.uint8).reshape(500, 400, 3)
    tiles = list(_pictures(MONTAGE, montage))
    assert len(tiles) == 25 and {t.shape for _, t in tiles} == {(100, 80, 3)}
    assert tiles[6][0] == f"{MONTAGE}[1,1]"
    assert np.array_equal(tiles[6][1], montage[100:200, 80:160])
    assert [n for n, _ in _pictures("pyfeat_multi_face.jpg", montage)] == ["pyfeat_multi_face.jpg"]
    assert _label(MONTAGE, 7) == "montage-woman"
    assert _label("pyfeat_15-f13-anc-ph.jpg", 0) == "pyfeat-f13"
    assert _label("pyfeat_multi_face.jpg", 2) == "pyfeat_multi_face.jpg#2"


def test_the_dev_splits_clip_frames_are_taken_every_so_often_up_to_a_second(tmp_path):
    import av
    from benchmarks.faces_dev import _frames
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:                 # 3 s at 10 fps, encoded by libx264
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for k in range(30):
            img = np.full((48, 64, 3), 8 * k, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
        out.mux(stream.encode())
    times = [round(t, 1) for t, _ in _frames(clip, 0.6, None)]
    assert times == [0.0, 0.6, 1.2, 1.8, 2.4]
    assert [round(t, 1) for t, _ in _frames(clip, 0.6, 1.3)] == [0.0, 0.6, 1.2]
    frame = next(_frames(clip, 1.0, None))[1]
    assert frame.shape == (48, 64, 3)
