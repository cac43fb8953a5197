"""One way to hold a model: load on first use, one instance per process and key, unload
on request. Every model in avindex (ASR engines, text embedder, image features, OCR,
motion encoder, code indexes) is held through a `LazyModel`, so a worker, the search
process and the GUI all load each model once, and memory can be given back.

    EMBEDDER = lazy("text-embedder:use-multilingual", UseEmbedder)
    vec = EMBEDDER.get().embed([...])       # loads here the first time, in this process
    EMBEDDER.unload()                       # drops it; the next get() loads it again
    unload_all()                            # e.g. before a worker is recycled

Keys name what is loaded (the model and, where it matters, its weights' folder or
version), so two settings never share one instance by accident. No DB, no Qt here.
"""
from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

_REGISTRY: dict[str, "LazyModel"] = {}
_REGISTRY_LOCK = threading.Lock()


class LazyModel(Generic[T]):
    """A model loaded by `factory()` on the first `get()`; thread-safe, loads once."""

    def __init__(self, key: str, factory: Callable[[], T]):
        self.key = key
        self._factory = factory
        self._instance: T | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._instance is not None

    def get(self) -> T:
        instance = self._instance
        if instance is None:
            with self._lock:
                if self._instance is None:
                    self._instance = self._factory()
                instance = self._instance
        return instance

    def unload(self) -> None:
        with self._lock:
            instance, self._instance = self._instance, None
        close = getattr(instance, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"<LazyModel {self.key} {'loaded' if self.loaded else 'not loaded'}>"


def lazy(key: str, factory: Callable[[], T]) -> LazyModel[T]:
    """The process's one LazyModel for `key` (made with `factory` the first time)."""
    with _REGISTRY_LOCK:
        model = _REGISTRY.get(key)
        if model is None:
            model = _REGISTRY[key] = LazyModel(key, factory)
        return model


def loaded_models() -> list[str]:
    with _REGISTRY_LOCK:
        return sorted(k for k, m in _REGISTRY.items() if m.loaded)


def unload_all(prefix: str = "") -> None:
    """Unload every model, or only those whose key starts with `prefix`
    (e.g. "code-index:" or "motion-encoder:")."""
    with _REGISTRY_LOCK:
        models = [m for k, m in _REGISTRY.items() if k.startswith(prefix)]
    for model in models:
        model.unload()
