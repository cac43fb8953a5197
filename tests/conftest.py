import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session", autouse=True)
def shared_models_dir(tmp_path_factory):
    """Assembled/converted weights are made once per test session, not once per test."""
    path = tmp_path_factory.mktemp("models")
    os.environ["AVINDEX_MODELS_DIR"] = str(path)
    # caches (the text embedder's tables) go there too, not to the user's cache folder
    os.environ["AVINDEX_CACHE_DIR"] = str(path / "cache")
    return path


@pytest.fixture
def library(tmp_path, monkeypatch):
    """A fresh library file and data dir, isolated from the user's own."""
    monkeypatch.setenv("AVINDEX_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "data" / "library.db"
    monkeypatch.setenv("AVINDEX_LIBRARY", str(path))
    return path


@pytest.fixture
def store(library):
    from indexer.store import Store
    s = Store(library)
    yield s
    s.close()


@pytest.fixture(scope="session")
def vision_models_dir(request) -> Path:
    """The ONNX export of EfficientNet-Lite0, made once and kept in pytest's cache."""
    return Path(request.config.cache.mkdir("avindex-vision-models"))


@pytest.fixture(scope="session")
def classifier(vision_models_dir):
    from models.vision.image_features import ImageClassifier
    return ImageClassifier(vision_models_dir)


class SmallDisk(type(Path())):
    """A mounted 32 MB tmpfs; `fill()` writes a filler file until it is full."""

    def fill(self) -> Path:
        filler = self / "filler"
        with open(filler, "ab", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        return filler


@pytest.fixture
def small_disk(tmp_path):
    """A real small filesystem for full-disk tests (skipped where it cannot be mounted)."""
    import os
    import subprocess
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for a full disk needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield SmallDisk(mount)
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="session")
def photos(request) -> dict:
    """face_recognition's test photos (tests/face_photos.py), fetched once into the cache."""
    from tests.face_photos import fetch
    return fetch(Path(request.config.cache.mkdir("avindex-face-photos")))
