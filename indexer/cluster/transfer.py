"""How a file's bytes reach a worker.

By path, where the media is on storage the workers mount too: the writer's path, or with
a PathMap (`SRC=DST`) the same file under the workers' mount point. Otherwise streamed:
the writer reads the file in CHUNK-byte pieces and hands each to the worker through the
object store, at most WINDOW pieces in flight, so memory stays bounded whatever the file's
size; the worker writes them into a spool file that it removes when the job ends.
Either way a worker only ever reads the files the writer hands it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHUNK = 8 * 1024 * 1024
WINDOW = 4


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
    """A worker's folder of streamed files: one per job, written piece by piece at its
    offset (pieces may arrive in any order), removed when the job ends. The folder is
    emptied when the worker starts, so a crashed worker leaves nothing behind."""

    def __init__(self, name: str):
        self.root = Path(tempfile.gettempdir()) / f"avindex-spool-{name}"
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, job_key: str, filename: str) -> Path:
        # the original name keeps its extension (decoders look at it); the job key
        # keeps two jobs apart
        return self.root / job_key / Path(filename).name

    def write(self, job_key: str, filename: str, offset: int, data: bytes) -> None:
        path = self.path(job_key, filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def discard(self, job_key: str) -> None:
        shutil.rmtree(self.root / job_key, ignore_errors=True)
