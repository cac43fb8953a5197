"""Search by example image in the library's own whitened space (models.whitening,
indexer.search.code_index.maintain_whitening, indexer.search.vectors.keyframe_knn), on
real photos: Debian opencv-doc's sample data, each photo a keyframe of its own file."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from indexer.search import code_index, search
from indexer.search.vectors import keyframe_knn, vector_knn
from indexer.store import Store
from models.whitening import Whitening, fit_whitening

DATA = Path("/usr/share/doc/opencv-doc/examples/data")
# the second photo of each pair is the query; the first is in the library
PAIRS = [("aero1.jpg", "aero3.jpg"), ("aloeL.jpg", "aloeR.jpg"),
         ("basketball1.png", "basketball2.png"), ("graf1.png", "graf3.png"),
         ("leuvenA.jpg", "leuvenB.jpg"), ("rubberwhale1.png", "rubberwhale2.png"),
         ("ela_original.jpg", "ela_modified.jpg"), ("Blender_Suzanne1.jpg", "Blender_Suzanne2.jpg")]
QUERIES = {q for _, q in PAIRS}

needs_photos = pytest.mark.skipif(not (DATA / "aloeL.jpg").is_file(),
                                  reason="needs Debian opencv-doc sample data")


def _slide(img: np.ndarray) -> np.ndarray:
    """The photo letterboxed into a 320x240 frame, as a slideshow shows it."""
    k = min(320 / img.shape[1], 240 / img.shape[0])
    small = cv2.resize(img, (round(img.shape[1] * k), round(img.shape[0] * k)),
                       interpolation=cv2.INTER_AREA)
    out = np.zeros((240, 320, 3), np.uint8)
    y, x = (240 - small.shape[0]) // 2, (320 - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


@pytest.fixture(scope="module")
def photo_lib(tmp_path_factory, classifier):
    names = sorted(p.name for p in DATA.iterdir()
                   if p.suffix in (".jpg", ".png") and p.name not in QUERIES
                   and not p.name.startswith(("left", "right")))
    imgs = {n: cv2.imread(str(DATA / n)) for n in names}
    imgs = {n: im for n, im in imgs.items() if im is not None and min(im.shape[:2]) >= 64}
    feats = classifier.features([_slide(im) for im in imgs.values()])
    store = Store(tmp_path_factory.mktemp("images") / "lib.db")
    media = {}
    for name, f in zip(imgs, feats):
        mid = store.add_media(f"/photos/{name}.mp4", f"fp-{name}", 1000, 0)
        store.save_visual(mid, [{"time": 0.0, "shot": 0, "thumbnail": None, "kind": "video"}],
                          [], [], [f])
        media[mid] = name
    yield {"store": store, "media": media, "n": len(imgs)}
    store.close()


def test_whitening_fits_transforms_and_round_trips():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 32)).astype(np.float32) * np.geomspace(10, 0.1, 32)
    w = fit_whitening(x, dims=16)
    assert w.dims == 16 and w.n_fit == 60
    z = w.transform(x)
    assert z.shape == (60, 16) and np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    # the strongest direction no longer dominates: its share of the spread drops, and full
    # whitening (power 0.5, no shrinkage) makes every kept direction count the same
    centred = x - x.mean(0)
    raw = centred @ np.linalg.svd(centred, full_matrices=False)[2][:16].T
    share = lambda a: a.var(0).max() / a.var(0).sum()                 # noqa: E731
    assert share(z) < 0.75 * share(raw)
    full = (x - x.mean(0)) @ fit_whitening(x, dims=16, power=0.5, shrink=0).projection
    assert np.allclose(full.var(0, ddof=1), 1, atol=1e-3)
    back = Whitening.from_bytes(w.to_bytes())
    assert np.array_equal(back.transform(x[:3]), w.transform(x[:3])) and back.n_fit == 60
    assert fit_whitening(x[:10]).dims == 9                  # fewer directions than rows
    with pytest.raises(ValueError):
        fit_whitening(x[:2])


@needs_photos
def test_the_whitening_follows_the_library(photo_lib, monkeypatch):
    store, n = photo_lib["store"], photo_lib["n"]
    assert code_index.maintain_whitening(store, min_rows=n + 1)["action"].startswith("none")
    assert code_index.whitening(store) is None
    assert code_index.maintain_whitening(store, min_rows=20)["action"] == "fit"
    w = code_index.whitening(store)
    assert w is not None and w.n_fit == n and w.dims == min(128, n - 1)
    assert code_index.maintain_whitening(store, min_rows=20)["action"] == "kept"
    # too few keyframes left (maintain() runs it after the keyframe codes, reported last;
    # its default wants more keyframes than this library has): back to plain cosine
    assert n < code_index.WHITEN_MIN_ROWS
    last = code_index.maintain(store, ["keyframe"])[-1]
    assert last["space"] == "keyframe-whitening" and last["action"].startswith("dropped")
    assert code_index.whitening(store) is None
    assert code_index.maintain_whitening(store, min_rows=n + 1)["action"].startswith("none")
    assert code_index.maintain_whitening(store, min_rows=20)["action"] == "refit"
    assert code_index.whitening(store).n_fit == n
    # a big library is fitted on a sample of its keyframes (here 30 of them)
    monkeypatch.setattr(code_index, "FIT_SAMPLE", 30)
    assert code_index.fit_whitening_of(store)["dims"] == 29
    assert code_index.whitening(store).n_fit == n and code_index.whitening(store).dims == 29
    monkeypatch.undo()
    code_index.fit_whitening_of(store)
    assert code_index.whitening(store).dims == n - 1


@needs_photos
def test_whitened_rerank_finds_the_other_view(photo_lib, classifier):
    store, media = photo_lib["store"], photo_lib["media"]
    code_index.maintain_whitening(store, min_rows=20)
    plain_top, white_top, white_top3 = 0, 0, 0
    for first, query in PAIRS:
        q = classifier.features_of_file(DATA / query)
        plain = vector_knn(store, "keyframe", q, 3)
        white = keyframe_knn(store, q, 3)
        assert keyframe_knn(store, q, 3, candidates=0) == plain
        assert len(white) == 3 and white[0][2] >= white[1][2] >= white[2][2]
        plain_top += media[plain[0][1]] == first
        white_top += media[white[0][1]] == first
        white_top3 += first in [media[m] for _, m, _ in white]
        hits = search(store, image=q, limit=3)            # the service takes the same path
        assert [h.media_id for h in hits] == [m for _, m, _ in white]
    assert white_top3 == len(PAIRS)
    assert white_top >= max(plain_top, len(PAIRS) - 2)
