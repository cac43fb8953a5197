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
