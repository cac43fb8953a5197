"""Per-file results of a stage, computed on a worker and applied by the one writer.

A stage's saver is run on the worker against a RecordingStore: each Store write it makes
(`save_*`, `drop_*`) is kept as (method, args, kwargs) with the file's library id replaced
by MEDIA_ID. The writer replays the calls on the real Store, so the rows are written by
the very code the local worker uses, and an artifact holds exactly what the library will
store, nothing else from the file. A saver that reads the library cannot be recorded
(SaverReadsLibrary): such a stage is not a remote stage (remote_stages.py).

Artifacts are keyed by (content fingerprint, stage, versions) and kept as files in a
folder beside the library; a run finds a file's artifact there and applies it without
computing anything (a library rebuilt, a run killed between compute and apply, a second
library over the same media). They are pickles of plain data read back with an
unpickler that accepts builtins and numpy arrays only.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

MEDIA_ID = -424242   # stands for the file's library id inside recorded calls
WRITES = ("save_", "drop_")


class SaverReadsLibrary(RuntimeError):
    """The saver asked the library for something; it can only run in the writer."""


class RecordingStore:
    """Looks like a Store to a saver; keeps its writes instead of doing them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str):
        if not name.startswith(WRITES):
            raise SaverReadsLibrary(f"the saver called Store.{name}, which is not a write")

        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
        return record


class SnapshotStore:
    """Looks like a Store to a stage running on a worker: it answers the reads the writer
    made for the job beforehand (remote_stages.snapshot), and nothing else."""

    def __init__(self, reads: dict):
        self.reads = reads

    def __getattr__(self, name: str):
        def read(*args):
            try:
                return self.reads[(name, args)]
            except (KeyError, TypeError):
                raise SaverReadsLibrary(f"the stage read Store.{name}{args}, which was not "
                                        "sent with the job") from None
        return read


def snapshot_hash(reads: dict) -> str:
    return hashlib.blake2b(pickle.dumps(sorted(reads.items(), key=repr), protocol=5),
                           digest_size=16).hexdigest()


def _bind(value, media_id: int):
    return media_id if type(value) is int and value == MEDIA_ID else value


@dataclass
class Artifact:
    stage: str
    calls: list = field(default_factory=list)
    note: str | None = None
    seconds: float = 0.0           # compute time on the worker

    @classmethod
    def record(cls, stage: str, saver, seconds: float = 0.0) -> "Artifact":
        rec = RecordingStore()
        note = saver(rec)
        return cls(stage, rec.calls, note, seconds)

    def apply(self, store, media_id: int) -> str | None:
        """Replay the writes on the real Store (call inside the job's transaction)."""
        for name, args, kwargs in self.calls:
            getattr(store, name)(*(_bind(a, media_id) for a in args),
                                 **{k: _bind(v, media_id) for k, v in kwargs.items()})
        return self.note

    def dumps(self) -> bytes:
        return pickle.dumps({"stage": self.stage, "calls": self.calls, "note": self.note,
                             "seconds": self.seconds}, protocol=5)

    @classmethod
    def loads(cls, data: bytes) -> "Artifact":
        return cls(**_PlainUnpickler(io.BytesIO(data)).load())


class _PlainUnpickler(pickle.Unpickler):
    """Builtins and numpy arrays only: a file in the cache folder cannot run code."""
    ALLOWED = {("numpy", "dtype"), ("numpy", "ndarray"),
               ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
               ("builtins", "complex"), ("builtins", "set"), ("builtins", "frozenset"),
               ("builtins", "bytearray")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"an artifact may not hold {module}.{name}")


def artifact_key(fingerprint: str, stage: str, versions: dict) -> str:
    """What a result depends on: the file's content, the stage, and the versions of the
    code and models that made it (any change there makes a new key)."""
    blob = json.dumps({"fp": fingerprint, "stage": stage, "versions": versions},
                      sort_keys=True).encode()
    return f"{stage}-{hashlib.blake2b(blob, digest_size=20).hexdigest()}"


class ArtifactCache:
    """One file per artifact in a folder beside the library (library.artifacts/)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / key.rsplit("-", 1)[0] / f"{key}.pkl"   # a folder per stage

    def get(self, key: str) -> Artifact | None:
        try:
            return Artifact.loads(self._path(key).read_bytes())
        except FileNotFoundError:
            return None
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError):
            return None                   # a damaged file: computed again

    def put(self, key: str, artifact: Artifact) -> None:
        """Written whole or not at all (a temporary file renamed into place)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(artifact.dumps())
        os.replace(tmp, path)

    def __contains__(self, key: str) -> bool:
        return self._path(key).exists()
