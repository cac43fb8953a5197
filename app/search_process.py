"""Search runs in a child process of the GUI, not in one of its threads.

Search is Python and numpy work (the query embedder's pure-Python tokenizer, loading
its weights, fusing and snippeting the hits, the image model for search by example).
In a thread of the GUI process that work holds the GIL and stalls the window; in a
child process it cannot. Measured: benchmarks/README.md "GUI responsiveness while indexing".
The child is spawned (never forked from a process with Qt threads), keeps its own
read-only Store, and answers one request at a time:

    client = SearchProcess(library, models_dir, thumb_dir)
    reply = client.call({"mode": "text", "query": "budget"})   # ("done", hits) or ("failed", msg)

A child that dies (a crash in a model) is started again on the next request.
"""
from __future__ import annotations

import multiprocessing as mp
import threading
from pathlib import Path

STOP_WAIT_S = 3.0


def serve(conn, library: str, models_dir: str, thumb_dir: str) -> None:
    """The child's loop: a request in, a reply out, until "stop" or the pipe closes."""
    from .search_requests import answer, search_models, warm_up
    from .settings import thumbnail_dir
    store = None
    models = search_models(models_dir)       # each model loaded once, when first needed
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return
            mode = request.get("mode")
            if mode == "stop":
                return
            try:
                if mode == "open":
                    if store is not None:
                        store.close()
                        store = None
                    library = request["library"]
                    thumb_dir = str(thumbnail_dir(Path(library)))
                    reply = ("done", [])
                elif mode == "warm":
                    warm_up(models)
                    reply = ("done", [])
                else:
                    if store is None:
                        from indexer.store import Store
                        store = Store(Path(library))
                    wanted = request.get("models_dir") or models_dir
                    if wanted != models_dir:      # the settings name another weights folder
                        models_dir, models = wanted, search_models(wanted)
                    reply = ("done", answer(store, request, models, Path(thumb_dir)))
            except Exception as exc:   # one bad request must not end the process
                reply = ("failed", f"{type(exc).__name__}: {exc}")
            conn.send(reply)
    finally:
        if store is not None:
            store.close()


class SearchProcess:
    """The GUI side: starts the child on first use and talks to it. Not thread-safe:
    one thread (the search QThread) calls it."""

    def __init__(self, library, models_dir, thumb_dir):
        self.library = str(library)
        self.models_dir = str(models_dir)
        self.thumb_dir = str(thumb_dir)
        self._proc = None
        self._conn = None
        self._stopping = threading.Event()

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._drop()
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=serve, name="avindex-search", daemon=True,
                                 args=(theirs, self.library, self.models_dir, self.thumb_dir))
        self._proc.start()
        theirs.close()
        self._conn = ours

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._proc = None

    def call(self, request: dict) -> tuple[str, object] | None:
        """Send one request and wait for its reply; None if close() was called meanwhile."""
        if self._stopping.is_set():
            return None
        if request.get("mode") == "open":
            self.library = request["library"]
            if self._proc is None:
                return ("done", [])         # the child, when started, opens this library
        self._ensure()
        try:
            self._conn.send(request)
            while not self._conn.poll(0.1):
                if self._stopping.is_set():
                    return None
                if not self._proc.is_alive():
                    raise EOFError
            return self._conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            code = self._proc.exitcode if self._proc is not None else None
            self._drop()
            return ("failed", f"the search process ended unexpectedly (exit code {code}); "
                              "it restarts with the next search")

    def close(self) -> None:
        """Stop the child (from any thread)."""
        self._stopping.set()
        proc, conn = self._proc, self._conn
        if proc is None:
            return
        try:
            if conn is not None:
                conn.send({"mode": "stop"})
        except (OSError, BrokenPipeError):
            pass
        proc.join(STOP_WAIT_S)
        if proc.is_alive():
            proc.terminate()
            proc.join(STOP_WAIT_S)
