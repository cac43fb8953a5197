"""The CTranslate2 Whisper model on CPU, its calls spread over single-threaded workers.

    workers = ChunkWorkers(ct2_model, workers=2)   # the model loaded with inter_threads=2
    workers.prefetch(next_window_features)         # encode ahead, only on idle workers
    workers.encode(features)                       # takes the prefetched rows, encodes the rest

faster-whisper's batched pipeline makes one call per stage (encode, detect, generate,
align) with every chunk of a batch, and waits for each. ChunkWorkers cuts those calls into
single chunks (beam search: one part per worker) that run at once, and lets the next
window's encoder passes fill the workers that would otherwise wait for the slowest part of
the current window (see ChunkWorkers).
"""
from __future__ import annotations

import heapq
import itertools
import threading
from concurrent.futures import Future
from typing import Callable

import numpy as np

try:
    import ctypes

    _libc = ctypes.CDLL("libc.so.6")
    _libc.malloc_trim  # glibc only (not musl, macOS or Windows)
except (OSError, AttributeError):
    _libc = None


def release_memory() -> None:
    """Hand freed heap back to the OS. CTranslate2, onnxruntime and FFmpeg threads each
    allocate from their own glibc arena; without a trim, RSS crept up by ~100 MB over a
    40-minute file."""
    if _libc is not None:
        _libc.malloc_trim(0)


URGENT, AHEAD = 0, 1      # task priorities: the window being decoded, the next one's encodes


class PriorityPool:
    """`n` daemon threads, each running the most urgent queued task (URGENT before AHEAD,
    first come first served within a priority). A queued AHEAD task can be promoted to
    URGENT, or cancelled through its Future."""

    def __init__(self, n: int, name: str):
        self._heap: list[tuple[int, int, Future, Callable]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        for i in range(n):
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True).start()

    def submit(self, fn: Callable, priority: int = URGENT) -> Future:
        fut: Future = Future()
        self._push(priority, fut, fn)
        return fut

    def promote(self, fut: Future, fn: Callable) -> None:
        """Queue `fut` (submitted with `fn`) again as URGENT; whichever entry a thread
        reaches first runs it, the other is skipped."""
        self._push(URGENT, fut, fn)

    def _push(self, priority: int, fut: Future, fn: Callable) -> None:
        with self._cv:
            heapq.heappush(self._heap, (priority, next(self._seq), fut, fn))
            self._cv.notify()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._heap:
                    self._cv.wait()
                _, _, fut, fn = heapq.heappop(self._heap)
                # Under the lock, so two entries of one promoted task cannot both start it.
                if fut.running() or fut.done() or not fut.set_running_or_notify_cancel():
                    continue
            try:
                fut.set_result(fn())
            except BaseException as exc:   # handed to whoever waits on the result
                fut.set_exception(exc)


class ChunkWorkers:
    """The CTranslate2 model on CPU, each batch spread over single-threaded workers.

    The batched pipeline hands every call all the chunks of a batch. Here encoding,
    language detection and word alignment go one chunk per call, and beam search gets
    the batch in one part per worker; the parts run at once on CTranslate2's workers
    (inter_threads), each on one core.

    Between windows: a window ends when its slowest part does, and the next window's
    audio decoding, VAD and features used to start only then. `prefetch` (called with the
    next window's features while the current one is still decoding) queues that window's
    encoder passes behind everything urgent, so a worker with nothing of the current window
    to do encodes ahead; `encode` then takes the rows found there (promoting any not yet
    started) and encodes the rest. On the quiet 2-core box, 641 s of speech had both
    workers busy 41.4 s of 56.8 s, one only 12.4 s (benchmarks/README.md, Speech).

    Memory: one encoder pass of a 30 s chunk holds ~100 MB of self-attention over 1500
    frames, and detection and alignment ~40 MB of cross-attention keys and values per
    chunk, so whole-batch calls peaked at ~740 MB on a batch of 5; chunk by chunk it was
    ~530 MB, with the same transcript. Speed: one encoder pass is ~1.7 CPU s whether or not
    it shares a call (1500 frames already fill the matrix units), and the decoder's small
    per-token products lose ~12% of their CPU time to a second intra-op thread's
    synchronisation, which single-threaded workers avoid. The heap is trimmed before every
    call: with two chunks encoding at once, a 64-minute file peaked at 618-633 MB without
    that, 586 MB with it."""

    def __init__(self, model, workers: int):
        self._model = model
        self._workers = max(1, workers)
        self._pool = PriorityPool(self._workers, "avindex-asr") if self._workers > 1 else None
        self._lock = threading.Lock()
        self._ahead: list[tuple[np.ndarray, Future, Callable]] = []   # prefetched rows
        self.weights: list[float] | None = None   # the caller's cost hint for the next batch
        self.encoded = threading.Event()           # set when an encode() call has its results

    def __getattr__(self, name):
        return getattr(self._model, name)

    @staticmethod
    def _view(array: np.ndarray, lo: int, hi: int):
        import ctranslate2

        return ctranslate2.StorageView.from_array(np.ascontiguousarray(array[lo:hi]))

    def _gather(self, futures: list[Future]) -> list:
        return [f.result() for f in futures]

    def _map(self, fn, items: list) -> list:
        if self._pool is None or len(items) < 2:
            return [fn(item) for item in items]
        return self._gather([self._pool.submit(lambda item=item: fn(item)) for item in items])

    def _parts(self, n: int) -> list[list[int]]:
        """Chunk indices in one part per worker, balanced on `self.weights` (the speech
        seconds of each chunk, which beam search's cost follows) when given. Parts differ
        by at most one chunk (a batch of two decodes far better than two of one): longest
        first into the lightest part with room, then swaps between parts while one lowers
        the heavier part's load."""
        parts = min(self._workers, n)
        sizes = [n // parts + (i < n % parts) for i in range(parts)]
        w = self.weights if self.weights is not None and len(self.weights) == n else [1.0] * n
        groups: list[list[int]] = [[] for _ in range(parts)]
        for i in sorted(range(n), key=lambda i: -w[i]):
            g = min((g for g in range(parts) if len(groups[g]) < sizes[g]),
                    key=lambda g: sum(w[j] for j in groups[g]))
            groups[g].append(i)
        improved = True
        while improved:
            improved = False
            for a, b in itertools.combinations(groups, 2):
                la, lb = sum(w[j] for j in a), sum(w[j] for j in b)
                for x, y in itertools.product(range(len(a)), range(len(b))):
                    d = w[a[x]] - w[b[y]]
                    if max(la - d, lb + d) < max(la, lb) - 1e-9:
                        a[x], b[y] = b[y], a[x]
                        improved = True
                        break
                if improved:
                    break
        return [sorted(g) for g in groups]

    def _each_chunk(self, features, call) -> list:
        """call(chunk i as a one-row StorageView, i) for every chunk, at once on the workers."""
        release_memory()
        a = np.asarray(features)
        return self._map(lambda i: call(self._view(a, i, i + 1), i), list(range(a.shape[0])))

    def _encode_row(self, row: np.ndarray, to_cpu: bool = False) -> np.ndarray:
        import ctranslate2

        release_memory()
        sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(row[None]))
        return np.asarray(self._model.encode(sv, to_cpu=to_cpu))

    def prefetch(self, features: np.ndarray) -> None:
        """Queue the encoder pass of every row of `features` (chunks, mel bins, frames)
        behind all urgent work. Without spare workers this does nothing."""
        if self._pool is None:
            return
        with self._lock:
            for row in np.asarray(features):
                fn = lambda row=row: self._encode_row(row)
                self._ahead.append((row, self._pool.submit(fn, AHEAD), fn))

    def drop_prefetched(self) -> None:
        """Forget the prefetched rows (cancelling those not started): the caller stopped."""
        with self._lock:
            ahead, self._ahead = self._ahead, []
        for _, fut, _ in ahead:
            fut.cancel()

    def _take_prefetched(self, row: np.ndarray) -> Future | None:
        with self._lock:
            for i, (r, fut, fn) in enumerate(self._ahead):
                if r.shape == row.shape and np.array_equal(r, row):
                    del self._ahead[i]
                    break
            else:
                return None
        self._pool.promote(fut, fn)
        return fut

    def encode(self, features, to_cpu=False):
        import ctranslate2

        a = np.asarray(features)
        futures = []
        for row in a:
            fut = self._take_prefetched(row) if self._pool is not None else None
            if fut is None:
                fut = Future()
                if self._pool is None:
                    fut.set_result(self._encode_row(row, to_cpu))
                else:
                    fut = self._pool.submit(lambda row=row: self._encode_row(row, to_cpu))
            futures.append(fut)
        out = np.concatenate(self._gather(futures))
        self.encoded.set()
        return ctranslate2.StorageView.from_array(out)

    def detect_language(self, features, *args, **kwargs):
        rows = self._each_chunk(features, lambda row, i: self._model.detect_language(row, *args, **kwargs))
        return [r for ranked in rows for r in ranked]

    def generate(self, features, prompts, *args, **kwargs):
        import ctranslate2

        release_memory()
        parts = self._parts(features.shape[0])
        if len(parts) < 2:
            return self._model.generate(features, prompts, *args, **kwargs)
        a = np.asarray(features)
        out = self._map(lambda p: self._model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(a[p])), [prompts[i] for i in p],
            *args, **kwargs), parts)
        results: list = [None] * a.shape[0]
        for part, rs in zip(parts, out):
            for i, r in zip(part, rs):
                results[i] = r
        return results

    def align(self, features, start_sequence, text_tokens, num_frames, *args, **kwargs):
        frames = num_frames if isinstance(num_frames, list) else [num_frames] * len(text_tokens)
        rows = self._each_chunk(features, lambda row, i: self._model.align(
            row, start_sequence, [text_tokens[i]], [frames[i]], *args, **kwargs))
        return [r for aligned in rows for r in aligned]
