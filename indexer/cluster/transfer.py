"""How a file's bytes reach a worker.

By path, where the media is on storage the workers mount too: the writer's path, or with
a PathMap (`SRC=DST`) the same file under the workers' mount point. Otherwise streamed:
the writer reads the file in CHUNK-byte pieces and hands each to the worker through the
object store, at most WINDOW pieces in flight, so memory stays bounded whatever the file's
size; the worker writes them into a spool file. A file's stages come one after another
(speakers after speech, faces after visual), so a worker keeps its last KEEP_FILES
complete files, the writer sends a file's next job to the worker that holds it when that
one is free, and sends no byte again to a worker that has them.
Either way a worker only ever reads the files the writer hands it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHUNK = 8 * 1024 * 1024
WINDOW = 4
KEEP_FILES = 2        # complete files a worker keeps for the file's next stages


def spool_key(media: dict) -> str:
    """A file's name in spools: its content fingerprint (the same bytes, wherever the
    path), made safe as a folder name."""
    ident = media.get("fingerprint") or f"{media['path']}\0{media.get('size')}"
    return hashlib.blake2b(ident.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class PathMap:
    src: str
    dst: str

    @classmethod
    def parse(cls, text: str) -> "PathMap":
        src, sep, dst = text.partition("=")
        if not sep or not src or not dst:
            raise ValueError(f"a path mapping is SRC_PREFIX=DST_PREFIX, not {text!r}")
        return cls(src.rstrip("/") or "/", dst.rstrip("/") or "/")

    def apply(self, path: str) -> str:
        if path == self.src or path.startswith(self.src.rstrip("/") + "/"):
            return self.dst.rstrip("/") + path[len(self.src.rstrip("/")):]
        return path


def read_chunks(path: str, chunk: int = CHUNK):
    """(offset, bytes) pieces of the file, in order."""
    with open(path, "rb") as f:
        offset = 0
        while True:
            data = f.read(chunk)
            if not data:
                return
            yield offset, data
            offset += len(data)


class Spool:
    """A worker's folder of streamed files, one folder per file (its spool_key), written
    piece by piece at its offset (pieces may arrive in any order). A file is usable once
    `complete`; the KEEP_FILES most recently used complete files stay, older ones and
    incomplete ones go. The folder is emptied when the worker starts, so a crashed worker
    leaves nothing behind."""

    def __init__(self, name: str):
        self.root = Path(tempfile.gettempdir()) / f"avindex-spool-{name}"
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self._recent: list[str] = []          # complete files' keys, most recent last

    def path(self, key: str, filename: str) -> Path:
        # the original name keeps its extension (decoders look at it)
        return self.root / key / Path(filename).name

    def write(self, key: str, filename: str, offset: int, data: bytes) -> None:
        path = self.path(key, filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def complete(self, key: str, filename: str, size: int) -> bool:
        """Every piece is in: the file is kept for later jobs (the oldest kept one goes
        past KEEP_FILES). False when the bytes on disk are not `size` long."""
        if not self._holds(key, filename, size):
            self.discard(key)
            return False
        self._use(key)
        for old in self._recent[:-KEEP_FILES]:
            self.discard(old)
        return True

    def has(self, key: str, filename: str, size: int) -> bool:
        """The whole file is here from an earlier job (no byte needs sending)."""
        if key in self._recent and self._holds(key, filename, size):
            self._use(key)
            return True
        return False

    def discard(self, key: str) -> None:
        if key in self._recent:
            self._recent.remove(key)
        shutil.rmtree(self.root / key, ignore_errors=True)

    def _holds(self, key: str, filename: str, size: int) -> bool:
        try:
            return self.path(key, filename).stat().st_size == size
        except OSError:
            return False

    def _use(self, key: str) -> None:
        if key in self._recent:
            self._recent.remove(key)
        self._recent.append(key)
