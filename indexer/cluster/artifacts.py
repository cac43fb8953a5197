"""Per-file results of a stage, computed on a worker and applied by the one writer.

A stage's saver is run on the worker against a RecordingStore: each Store write it makes
(`save_*`, `drop_*`) is kept as (method, args, kwargs) with the file's library id replaced
by MEDIA_ID. The writer replays the calls on the real Store, so the rows are written by
the very code the local worker uses, and an artifact holds exactly what the library will
store, nothing else from the file. A saver that reads the library cannot be recorded
(SaverReadsLibrary): such a stage is not a remote stage (remote_stages.py).

A stage that writes thumbnails (visual, faces) writes them on the worker into a scratch
folder; the artifact carries them as bytes (`files`, names relative to the thumbnail
folder with MEDIA_ID for the file's id, as in the rows that point at them), and the
writer puts them into the library's thumbnail folder inside the job's transaction, before
the rows commit; after the commit the stage's folder for the file (`thumb_folder`) keeps
only them, as the stage's own saver prunes it locally.

Artifacts are keyed by (content fingerprint, stage, versions) and kept as files in a
folder beside the library, one sub-folder per fingerprint (so `avindex prune` drops those
of files no longer in the library); a run finds a file's artifact there and applies it without
computing anything (a library rebuilt, a run killed between compute and apply, a second
library over the same media). They are pickles of plain data read back with an
unpickler that accepts builtins and numpy arrays only, and thumbnail names that stay
inside the thumbnail folder.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

MEDIA_ID = -424242   # stands for the file's library id inside recorded calls
WRITES = ("save_", "drop_")


class SaverReadsLibrary(RuntimeError):
    """The saver asked the library for something; it can only run in the writer."""


class RecordingStore:
    """Looks like a Store to a saver; keeps its writes instead of doing them. What the
    saver asks to run after the commit (pruning its scratch thumbnails) runs at `commit`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self._after: list = []

    def after_commit(self, fn) -> None:
        self._after.append(fn)

    def commit(self) -> None:
        while self._after:
            self._after.pop(0)()

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
        def read(*args, **kwargs):
            try:
                return self.reads[read_key(name, *args, **kwargs)]
            except (KeyError, TypeError):
                raise SaverReadsLibrary(f"the stage read Store.{name}{args}, which was not "
                                        "sent with the job") from None
        return read


def read_key(name: str, *args, **kwargs) -> tuple:
    """How a read is named in a snapshot: (method, args) or (method, args, kwargs)."""
    return (name, args, tuple(sorted(kwargs.items()))) if kwargs else (name, args)


def snapshot_hash(reads: dict) -> str:
    return hashlib.blake2b(pickle.dumps(sorted(reads.items(), key=repr), protocol=5),
                           digest_size=16).hexdigest()


def _bind(value, ids: dict, names: dict):
    """`value` with MEDIA_ID and the stage's other stand-in ids (`ids`: stand-in -> this
    library's id) and carried files' names made the file's own, at any depth of lists,
    tuples and dicts (a row's media_id, a keyframe's thumbnail, a window's line ids)."""
    if type(value) is int:
        return ids.get(value, value)
    if type(value) is str:
        return names.get(value, value)
    if type(value) in (list, tuple):
        return type(value)(_bind(v, ids, names) for v in value)
    if type(value) is dict:
        return {k: _bind(v, ids, names) for k, v in value.items()}
    return value


def bind_name(name: str, media_id: int) -> str:
    """A carried file's name (or folder) with MEDIA_ID made the file's library id."""
    return "/".join(str(media_id) if part == str(MEDIA_ID) else part
                    for part in name.split("/"))


@dataclass
class Artifact:
    stage: str
    calls: list = field(default_factory=list)
    note: str | None = None
    seconds: float = 0.0           # compute time on the worker
    files: dict = field(default_factory=dict)   # thumbnail name (MEDIA_ID) -> bytes
    thumb_folder: str | None = None             # the stage's thumbnail folder for the file

    @classmethod
    def record(cls, stage: str, saver, seconds: float = 0.0, *,
               thumb_dir: Path | None = None, thumb_folder: str | None = None) -> "Artifact":
        """Run the saver against a RecordingStore; with `thumb_dir` (the worker's scratch
        folder for this job) the thumbnails left there after its commit go along."""
        rec = RecordingStore()
        note = saver(rec)
        rec.commit()
        files = {}
        if thumb_dir is not None:
            files = {p.relative_to(thumb_dir).as_posix(): p.read_bytes()
                     for p in sorted(Path(thumb_dir).rglob("*")) if p.is_file()}
        return cls(stage, rec.calls, note, seconds, files, thumb_folder)

    def apply(self, store, media_id: int, thumb_dir: Path | None = None,
              ids: dict[int, int] | None = None) -> str | None:
        """Replay the writes on the real Store (call inside the job's transaction); the
        carried thumbnails are written into `thumb_dir` first. `ids`: the stage's other
        stand-in ids -> this library's (remote_stages.rebind)."""
        names = {n: bind_name(n, media_id) for n in self.files}
        ids = {**(ids or {}), MEDIA_ID: media_id}
        if self.files or self.thumb_folder is not None:
            if thumb_dir is None:
                raise ValueError(f"the {self.stage} artifact carries thumbnails: "
                                 "the library's thumbnail folder is needed")
            for name, data in self.files.items():
                _write_whole(Path(thumb_dir) / names[name], data)
        for name, args, kwargs in self.calls:
            getattr(store, name)(*_bind(args, ids, names), **_bind(kwargs, ids, names))
        if self.thumb_folder is not None:
            from indexer.stages.visual import prune_thumbnails
            folder, keep = bind_name(self.thumb_folder, media_id), set(names.values())
            store.after_commit(lambda: prune_thumbnails(Path(thumb_dir), folder, keep))
        return self.note

    def dumps(self) -> bytes:
        return pickle.dumps({"stage": self.stage, "calls": self.calls, "note": self.note,
                             "seconds": self.seconds, "files": self.files,
                             "thumb_folder": self.thumb_folder}, protocol=5)

    @classmethod
    def loads(cls, data: bytes) -> "Artifact":
        artifact = cls(**_PlainUnpickler(io.BytesIO(data)).load())
        # a cache file names files the writer writes: inside the thumbnail folder only
        for name in [*artifact.files, *filter(None, [artifact.thumb_folder])]:
            parts = name.split("/") if isinstance(name, str) else [""]
            if not all(parts) or ".." in parts or "\\" in name:
                raise ValueError(f"an artifact's thumbnail may not be named {name!r}")
        if not all(isinstance(d, bytes) for d in artifact.files.values()):
            raise ValueError("an artifact's thumbnails are bytes")
        return artifact


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


def _write_whole(path: Path, data: bytes) -> None:
    """Written whole or not at all (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def artifact_key(fingerprint: str, stage: str, versions: dict) -> str:
    """What a result depends on: the file's content, the stage, and the versions of the
    code and models that made it (any change there makes a new key). The key starts with
    the fingerprint's folder: FINGERPRINT/STAGE-HASH."""
    blob = json.dumps({"fp": fingerprint, "stage": stage, "versions": versions},
                      sort_keys=True).encode()
    if not _SAFE.fullmatch(fingerprint):
        raise ValueError(f"not a content fingerprint: {fingerprint!r}")
    return f"{fingerprint}/{stage}-{hashlib.blake2b(blob, digest_size=20).hexdigest()}"


_SAFE = re.compile(r"[0-9A-Za-z_.-]{1,128}")


class ArtifactCache:
    """One file per artifact in a folder beside the library (library.artifacts/), under
    a sub-folder per content fingerprint. (Caches of the first layout, a folder per stage,
    are never read: their files are computed again and `prune` drops the old folders.)"""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.pkl"

    def prune(self, keep_fingerprints) -> int:
        """Drop the artifacts of every fingerprint not in `keep_fingerprints` (files no
        longer in the library; a missing artifact only costs a recompute). Returns how
        many artifact files went."""
        keep = set(keep_fingerprints)
        removed = 0
        if not self.folder.is_dir():
            return 0
        for sub in self.folder.iterdir():
            if sub.name in keep:
                continue
            if sub.is_dir():
                removed += sum(1 for p in sub.rglob("*.pkl"))
                shutil.rmtree(sub, ignore_errors=True)
            else:
                sub.unlink(missing_ok=True)
        return removed

    def get(self, key: str) -> Artifact | None:
        try:
            return Artifact.loads(self._path(key).read_bytes())
        except FileNotFoundError:
            return None
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError):
            return None                   # a damaged file: computed again

    def put(self, key: str, artifact: Artifact) -> None:
        _write_whole(self._path(key), artifact.dumps())

    def __contains__(self, key: str) -> bool:
        return self._path(key).exists()
