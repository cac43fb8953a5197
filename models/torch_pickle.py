"""Tensors of a PyTorch checkpoint, read as numpy arrays without importing torch (1.2 s
of CPU and ~200 MB of memory a process).

    state = read_legacy_checkpoint(path)      # {"lstm.weight_ih_l0": ndarray, ...}
    state = read_zip_checkpoint(path)         # the same for the zip format (torch >= 1.6)

The format (torch/serialization.py, `_legacy_load`): four pickles in a row (a magic
number, the protocol version, system info, then the object, whose tensors refer to their
storages by persistent ids), a pickled list of storage keys, then each storage in that
order as an 8-byte little-endian element count and its raw little-endian data. Only
plain dense CPU float/int tensors are understood; anything else raises ValueError.
The zip format (`_load`) holds the object's pickle as <archive>/data.pkl and each
storage as raw little-endian data in <archive>/data/<key>.
No DB, no Qt here.
"""
from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
           "HalfStorage": np.float16, "LongStorage": np.int64, "IntStorage": np.int32,
           "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
           "BoolStorage": np.bool_}


class _StorageType:
    def __init__(self, name: str):
        if name not in _DTYPES:
            raise ValueError(f"unsupported storage type {name}")
        self.dtype = np.dtype(_DTYPES[name]).newbyteorder("<")


class _Storage:
    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype, self.numel, self.data = dtype, numel, None


class _Tensor:
    """A tensor whose storage is read after the object's pickle."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise ValueError("a tensor's storage was never read")
        item = data.itemsize
        return np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.size,
            strides=tuple(s * item for s in self.stride)).copy()


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *args):
    return _Tensor(storage, int(storage_offset), tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages: dict):
        super().__init__(f, encoding="utf-8")
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        raise ValueError(f"unexpected object {module}.{name} in the checkpoint")

    def persistent_load(self, pid):
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind != "storage":
            raise ValueError(f"unexpected persistent id {kind!r}")
        if len(pid) == 5:                   # the zip format: no view field
            pid = (*pid, None)
        storage_type, key, _location, numel, view = pid[1:]
        if view is not None:
            raise ValueError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, int(numel))
        return self.storages[key]


def _arrays(obj):
    if isinstance(obj, _Tensor):
        return obj.array()
    if isinstance(obj, dict):
        return {k: _arrays(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_arrays(v) for v in obj)
    return obj


def read_legacy_checkpoint(path: str | Path):
    """The checkpoint's object, its tensors as numpy arrays (ValueError if it is not a
    legacy checkpoint of plain tensors)."""
    storages: dict = {}
    try:
        with open(path, "rb") as f:
            if pickle.load(f) != MAGIC_NUMBER:
                raise ValueError("not a legacy PyTorch checkpoint")
            if pickle.load(f) != PROTOCOL_VERSION:
                raise ValueError("an unknown PyTorch checkpoint version")
            pickle.load(f)                                   # system info
            obj = _Unpickler(f, storages).load()
            for key in pickle.load(f):
                st = storages[key]
                count = int.from_bytes(f.read(8), "little")
                if count != st.numel:
                    raise ValueError("a storage's size does not match its tensor")
                raw = f.read(count * st.dtype.itemsize)
                if len(raw) != count * st.dtype.itemsize:
                    raise ValueError("the checkpoint ends inside a storage")
                st.data = np.frombuffer(raw, st.dtype)
    except (pickle.UnpicklingError, EOFError, KeyError, AttributeError, IndexError,
            TypeError) as e:
        raise ValueError(f"not a readable PyTorch checkpoint: {e}") from e
    return _arrays(obj)


def read_zip_checkpoint(path: str | Path):
    """The object of a zip-format checkpoint (torch.save since 1.6), its tensors as numpy
    arrays (ValueError if it is not one of plain tensors)."""
    import zipfile
    storages: dict = {}
    try:
        with zipfile.ZipFile(path) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pkl) != 1:
                raise ValueError("no data.pkl in the archive")
            root = pkl[0][:-len("data.pkl")]
            with z.open(pkl[0]) as f:
                obj = _Unpickler(f, storages).load()
            for key, st in storages.items():
                raw = z.read(f"{root}data/{key}")
                if len(raw) != st.numel * st.dtype.itemsize:
                    raise ValueError("a storage's size does not match its tensor")
                st.data = np.frombuffer(raw, st.dtype)
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, KeyError, AttributeError,
            IndexError, TypeError) as e:
        raise ValueError(f"not a readable PyTorch checkpoint: {e}") from e
    return _arrays(obj)
