"""Re-derive people_detector.npy: OpenCV 4's default HOG people detector (the linear SVM
of HOGDescriptor.getDefaultPeopleDetector(), 3780 weights and a bias), which OpenCV 5
no longer ships, and check models/vision/people.py's descriptor against OpenCV 4's.

    python -m models.vision.build_people_detector [--cache DIR] [--write]

Development machines only. The `opencv-python-headless` 4.10 wheel is downloaded once
into --cache with pip and imported in a child process (its own cv2 beside the project's
OpenCV 5). OpenCV is Apache-2.0 licensed; the model is Dalal and Triggs' INRIA person
detector as trained for OpenCV.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .build_tag_words import CACHE
from .people import DETECTOR_FILE, block_descriptors, BLOCKS_X, BLOCKS_Y

OPENCV4 = "opencv-python-headless==4.10.0.84"
_DUMP = """
import sys, json, numpy as np, cv2
svm = np.array(cv2.HOGDescriptor_getDefaultPeopleDetector(), np.float32).ravel()
img = np.load(sys.argv[1])
hog = cv2.HOGDescriptor()
desc = hog.compute(img, (8, 8), (0, 0)).ravel()
np.save(sys.argv[2], svm)
np.save(sys.argv[3], desc)
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
    # a real photo, to compare the descriptors of every window position on it
    rng = np.random.default_rng(0)
    img = (cv2_free_test_image(rng)).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(Path(tmp) / n) for n in ("img.npy", "svm.npy", "desc.npy")]
        np.save(paths[0], img)
        done = subprocess.run([sys.executable, "-c", _DUMP, *paths], check=True, text=True,
                              capture_output=True, env={"PYTHONPATH": str(site)})
        svm, theirs = np.load(paths[1]), np.load(paths[2])
    ours = _window_descriptors(img)
    err = float(np.abs(ours - theirs.reshape(ours.shape)).max())
    print(f"OpenCV {done.stdout.strip()}: {svm.size} coefficients; descriptor max abs "
          f"difference {err:.2e} over {ours.shape[0]} windows")
    if err > 1e-3:
        raise SystemExit("people.py's descriptor differs from OpenCV's")
    if args.write:
        np.save(DETECTOR_FILE, svm)
        print(f"wrote {DETECTOR_FILE}")
    return 0


def cv2_free_test_image(rng) -> np.ndarray:
    """A 144x96 grey image with edges in every direction and texture."""
    y, x = np.mgrid[:144, :96]
    img = 128 + 60 * np.sin(x / 5.0 + y / 9.0) + 40 * (((x // 12) + (y // 20)) % 2)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255)


def _window_descriptors(img: np.ndarray) -> np.ndarray:
    """Our descriptors of every 64x128 window every 8 pixels, in OpenCV's order (windows
    row by row; in a window blocks x outer, y inner)."""
    blocks = block_descriptors(img)
    by, bx = blocks.shape[:2]
    out = []
    for y in range(by - BLOCKS_Y + 1):
        for x in range(bx - BLOCKS_X + 1):
            win = blocks[y:y + BLOCKS_Y, x:x + BLOCKS_X]          # (15, 7, 36)
            out.append(win.transpose(1, 0, 2).ravel())
    return np.stack(out)


if __name__ == "__main__":
    sys.exit(main())
