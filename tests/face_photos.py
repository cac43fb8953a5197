"""The face_recognition package's own test photos (its sdist on PyPI, MIT): obama.jpg,
obama2.jpg (two different photos of one man) and biden.jpg, fetched once with pip into
pytest's cache (the `photos` fixture in conftest.py); without a package index the tests
that need them are skipped with the reason."""
from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SDIST = "face_recognition==1.3.0"
PHOTOS = ("obama.jpg", "obama2.jpg", "biden.jpg")


def fetch(folder: Path) -> dict[str, Path]:
    """The photos in `folder`, downloaded there first if they are not yet."""
    if not all((folder / p).is_file() for p in PHOTOS):
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                            "--no-binary", "face_recognition", SDIST, "-d", str(folder),
                            "--disable-pip-version-check", "-q"],
                           check=True, capture_output=True, timeout=240)
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"cannot fetch the photos in {SDIST}'s sdist: {exc}")
        archive = next(folder.glob("face_recognition-*.tar.gz"))
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if name in PHOTOS and "/tests/test_images/" in member.name:
                    (folder / name).write_bytes(tar.extractfile(member).read())
        archive.unlink()
    return {p: folder / p for p in PHOTOS}
