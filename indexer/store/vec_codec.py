"""How vectors are stored: byte formats shared by the writers, the search and migrations.

* vec0 `int8[N]` columns (`segment_vec`, `keyframe_vec`): each vector scaled so its
  largest component is +-127 and rounded. Cosine distance ignores scale, so no scale is
  kept; a 512-d vector costs 512 bytes instead of 2,048 as float32, and cosine moves by
  about 1e-3 (measured in tests/test_search.py). Written and queried as `vec_int8(?)`.
* re-rank rows (`segment_rr`, `keyframe_rr`, plain tables read by id): a float32 scale
  followed by the int8 values, so the vector comes back with its length.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def unit_int8(x: np.ndarray) -> np.ndarray:
    """Rows (or one vector) as int8, each scaled to a largest component of +-127.
    An all-zero row stays zero."""
    x = np.asarray(x, dtype=np.float32)
    one = x.ndim == 1
    x = np.atleast_2d(x)
    peak = np.abs(x).max(axis=1, keepdims=True)
    q = np.rint(x * (127.0 / np.maximum(peak, 1e-30)))
    q = np.clip(q, -127, 127).astype(np.int8)
    return q[0] if one else q


def int8_blob(x: np.ndarray) -> bytes:
    """One vector as the blob `vec_int8(?)` takes."""
    return unit_int8(np.asarray(x).reshape(-1)).tobytes()


def int8_rows_to_float(raw: np.ndarray, dim: int) -> np.ndarray:
    """Stored int8 vectors (bytes, (n, dim) uint8/int8) as unit-length float32 rows."""
    vals = np.asarray(raw).view(np.int8).reshape(-1, dim).astype(np.float32)
    norms = np.linalg.norm(vals, axis=1, keepdims=True)
    return vals / np.maximum(norms, 1e-12)


def to_int8(x: np.ndarray) -> list[bytes]:
    """Re-rank format: each row as float32 scale + int8 values (x ~= scale * int8)."""
    x = np.asarray(x, dtype=np.float32)
    scale = np.maximum(np.abs(x).max(axis=1), 1e-12) / 127.0
    q = np.clip(np.rint(x / scale[:, None]), -127, 127).astype(np.int8)
    return [s.tobytes() + r.tobytes() for s, r in zip(scale.astype(np.float32), q)]


def from_int8(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Rows written by `to_int8`, as float32."""
    raw = np.frombuffer(b"".join(blobs), np.uint8).reshape(len(blobs), dim + 4)
    scale = raw[:, :4].copy().view(np.float32)[:, 0]
    vals = raw[:, 4:].view(np.int8).astype(np.float32)
    return vals * scale[:, None]
