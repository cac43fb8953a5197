"""The faces of a query photo (search by example image): what finding them costs, with the
fast detector as the fallback after the HOG (models.faces.PHOTO_FAST) and with dlib's CNN
as before, on photos with no face (Debian opencv-doc's samples) and the face benchmark's
photos (benchmarks.faces fetches them).

    .venv/bin/python -m benchmarks.face_query_cost
"""
from __future__ import annotations

import glob
import time

import numpy as np

import models.faces as F
from models.faces import read_photo, shared_face_models

D = "/usr/share/doc/opencv-doc/examples/data/"
NO_FACE = [D + n for n in ("aero1.jpg", "apple.jpg", "baboon.jpg", "building.jpg",
                           "butterfly.jpg", "fruits.jpg", "graf1.png", "board.jpg",
                           "HappyFish.jpg")]


def main() -> None:
    fm = shared_face_models().get()
    fm.embed_chips([np.zeros((150, 150, 3), np.uint8)])       # models loaded, warm
    fm.fast
    faces = sorted(glob.glob("benchmarks/.cache/faces/photos/*"))
    print("| fallback after the HOG | photos | files | wall s | CPU s | faces found |")
    print("|---|---|---|---|---|---|")
    for fast in (False, True):
        F.PHOTO_FAST = fast
        for name, files in (("no face", NO_FACE), ("face photos", faces)):
            cpu, t, found = time.process_time(), time.perf_counter(), []
            for f in files:
                found.append(len(fm.faces_in_photo(read_photo(f))[0]))
            print(f"| {'fast detector' if fast else 'CNN'} | {name} | {len(files)} | "
                  f"{time.perf_counter() - t:.2f} | {time.process_time() - cpu:.2f} | "
                  f"{found} |")


if __name__ == "__main__":
    main()
