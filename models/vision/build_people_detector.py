"""Re-derive people_detector.npy: OpenCV 4's default HOG people detector (the linear SVM
of HOGDescriptor.getDefaultPeopleDetector(), 3780 weights and a bias), which OpenCV 5
no longer ships, and check models/vision/people.py against OpenCV 4: its block
descriptors on a synthetic image, and its SVM margin of every window (every 8 pixels) on
real pictures (frames of opencv-doc's vtest.avi, its photos) against OpenCV 4's
descriptors times the SVM.

    python -m models.vision.build_people_detector [--cache DIR] [--write]

Development machines only. The `opencv-python-headless` 4.10 wheel is downloaded once
into --cache with pip and imported in a child process (its own cv2 beside the project's
OpenCV 5). OpenCV is Apache-2.0 licensed; the model is Dalal and Triggs' INRIA person
detector as trained for OpenCV.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .build_tag_words import CACHE
from .people import (BLOCKS_X, BLOCKS_Y, CELL, DETECTOR_FILE, PeopleDetector, block_features,
                     opencv_block_order)

OPENCV4 = "opencv-python-headless==4.10.0.84"
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
REAL_PICTURES = ("vtest.avi@100", "vtest.avi@500", "messi5.jpg", "fruits.jpg", "building.jpg")
# In OpenCV 4: its SVM; its descriptor of every window of argv[1]; for each picture
# argv[2:] (.npy grey images), every window's margin (descriptor . SVM + bias).
_DUMP = """
import sys, numpy as np, cv2
svm = np.array(cv2.HOGDescriptor_getDefaultPeopleDetector(), np.float32).ravel()
hog = cv2.HOGDescriptor()
np.save(sys.argv[1] + ".svm.npy", svm)
np.save(sys.argv[1] + ".desc.npy", hog.compute(np.load(sys.argv[1]), (8, 8), (0, 0)).ravel())
for path in sys.argv[2:]:
    img = np.load(path)
    desc = hog.compute(img, (8, 8), (0, 0)).reshape(-1, svm.size - 1)
    rows = (img.shape[0] - 128) // 8 + 1
    np.save(path + ".margins.npy", (desc @ svm[:-1] + svm[-1]).reshape(rows, -1))
print(cv2.__version__)
"""


def opencv4(cache: Path) -> Path:
    """The unpacked OpenCV 4 wheel (downloaded once)."""
    target = cache / "opencv4"
    if not (target / "cv2").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary", ":all:", "-d", str(cache), OPENCV4], check=True)
        wheel = next(cache.glob("opencv_python_headless-4*.whl"))
        with zipfile.ZipFile(wheel) as z:
            z.extractall(target)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--write", action="store_true", help=f"write {DETECTOR_FILE.name}")
    args = ap.parse_args(argv)
    site = opencv4(args.cache)
    rng = np.random.default_rng(0)
    img = (cv2_free_test_image(rng)).astype(np.uint8)
    pictures = real_pictures()
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = str(Path(tmp) / "synthetic.npy")
        np.save(synthetic, img)
        paths = []
        for i, pic in enumerate(pictures):
            paths.append(str(Path(tmp) / f"picture{i}.npy"))
            np.save(paths[-1], pic)
        done = subprocess.run([sys.executable, "-c", _DUMP, synthetic, *paths], check=True,
                              text=True, capture_output=True, env={"PYTHONPATH": str(site)})
        svm, theirs = np.load(synthetic + ".svm.npy"), np.load(synthetic + ".desc.npy")
        margins = [np.load(p + ".margins.npy") for p in paths]
    ours = _window_descriptors(img)
    err = float(np.abs(ours - theirs.reshape(ours.shape)).max())
    print(f"OpenCV {done.stdout.strip()}: {svm.size} coefficients; descriptor max abs "
          f"difference {err:.2e} over {ours.shape[0]} windows")
    if err > 1e-3:
        raise SystemExit("people.py's descriptor differs from OpenCV's")
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "svm.npy", svm)
        detector = PeopleDetector(Path(tmp) / "svm.npy")
        worst = 0.0
        for name, pic, theirs in zip(REAL_PICTURES, pictures, margins):
            mine = detector.window_scores(pic)
            diff = float(np.abs(mine - theirs).max())
            worst = max(worst, diff)
            print(f"  {name:15s} {pic.shape[1]}x{pic.shape[0]}: {mine.size} window margins, "
                  f"best {mine.max():+.4f} (OpenCV {theirs.max():+.4f}), max abs "
                  f"difference {diff:.2e}")
    if worst > 1e-3:
        raise SystemExit("people.py's window margins differ from OpenCV's")
    if args.write:
        np.save(DETECTOR_FILE, svm)
        print(f"wrote {DETECTOR_FILE}")
    return 0


def cv2_free_test_image(rng) -> np.ndarray:
    """A 144x96 grey image with edges in every direction and texture."""
    y, x = np.mgrid[:144, :96]
    img = 128 + 60 * np.sin(x / 5.0 + y / 9.0) + 40 * (((x // 12) + (y // 20)) % 2)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255)


def real_pictures() -> list[np.ndarray]:
    """REAL_PICTURES as grey images cut to multiples of 8 pixels (frame `name@index`)."""
    import cv2
    out = []
    for name in REAL_PICTURES:
        path, _, frame = name.partition("@")
        if frame:
            cap = cv2.VideoCapture(str(OPENCV_DATA / path))
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(frame))
            ok, img = cap.read()
            cap.release()
        else:
            img = cv2.imread(str(OPENCV_DATA / path))
            ok = img is not None
        if not ok:
            raise SystemExit(f"needs Debian opencv-doc's {OPENCV_DATA / path}")
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        out.append(np.ascontiguousarray(gray[:gray.shape[0] // CELL * CELL,
                                             :gray.shape[1] // CELL * CELL]))
    return out


def _window_descriptors(img: np.ndarray) -> np.ndarray:
    """Our descriptors of every 64x128 window every 8 pixels, in OpenCV's order (windows
    row by row; in a window blocks x outer, y inner)."""
    blocks = opencv_block_order(block_features(img))
    by, bx = blocks.shape[:2]
    out = []
    for y in range(by - BLOCKS_Y + 1):
        for x in range(bx - BLOCKS_X + 1):
            win = blocks[y:y + BLOCKS_Y, x:x + BLOCKS_X]          # (15, 7, 36)
            out.append(win.transpose(1, 0, 2).ravel())
    return np.stack(out)


if __name__ == "__main__":
    sys.exit(main())
