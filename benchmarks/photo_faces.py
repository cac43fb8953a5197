"""Faces of photo files in the library: the faces stage as it looks at a video's samples
(the fast detector on 320-px copies) against how it looks at a photo file (the HOG and the
fast detector at photo sizes, `FaceModels.detect_both`), on the face benchmarks' photos
(test and dev, fetched by benchmarks.faces) and Debian opencv-doc's photos with no face.

    .venv/bin/python -m benchmarks.photo_faces
"""
from __future__ import annotations

import glob
import tempfile
import time
from pathlib import Path

D = "/usr/share/doc/opencv-doc/examples/data/"
NO_FACE = ("aero1.jpg", "apple.jpg", "baboon.jpg", "building.jpg", "butterfly.jpg",
           "fruits.jpg", "graf1.png", "board.jpg", "HappyFish.jpg")


def main() -> None:
    from indexer.stages.faces import FacesStage
    from models.faces import shared_face_models
    models = shared_face_models().get()
    files = (sorted(glob.glob("benchmarks/.cache/faces/photos/*"))
             + sorted(glob.glob("benchmarks/.cache/faces/dev/*.jpg")) + [D + n for n in NO_FACE])
    counts = {}
    print("| how the stage looks | photos | CPU s | faces found |")
    print("|---|---|---|---|")
    for photo in (False, True):
        stage = FacesStage(Path(tempfile.mkdtemp()), models=models)
        stage.analyse(files[0], photo=photo)                  # warm
        cpu = time.process_time()
        counts[photo] = [len(stage.analyse(f, photo=photo).appearances) for f in files]
        print(f"| {'as a photo' if photo else 'as a video sample'} | {len(files)} | "
              f"{time.process_time() - cpu:.2f} | {sum(counts[photo])} |")
    for f, a, b in zip(files, counts[False], counts[True]):
        if a != b:
            print(f"{Path(f).name}: {a} -> {b}")


if __name__ == "__main__":
    main()
