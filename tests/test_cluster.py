"""Indexing on a real local Ray (two CPUs): the library it makes equals the local
executor's, a worker killed mid-file costs a retry and nothing else, a second run computes
nothing again, an unreachable cluster is exit 3 before anything is queued, and the local
cluster listens on loopback only. Real speech (espeak), real Whisper tiny.en weights."""
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from app.cli import main                                     # noqa: E402
from app.cluster_runner import ClusterRunner, artifact_dir   # noqa: E402
from app.settings import Settings                            # noqa: E402
from indexer.cluster.connect import connect, disconnect      # noqa: E402
from indexer.intake import take                              # noqa: E402
from indexer.store import Store                              # noqa: E402
from tests.media_factory import make_media                   # noqa: E402

SAID = {"keeper.wav": "The lighthouse keeper counted seven ships in the harbour before dawn.",
        "bread.mp3": "Fresh bread and warm soup were served to the travellers at noon."}
LONG = ("The old ferry left the northern pier at six in the morning, carrying farmers, "
        "teachers and a small brass band across the grey water. Nobody on board expected "
        "the fog to lift before they reached the island, yet by seven the sun was warm.")


@pytest.fixture(scope="module")
def local_ray():
    started = connect("ray", num_cpus=2)
    yield
    if started:
        disconnect()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster_media")
    for name, text in SAID.items():
        make_media(root / name, text=text, video=False)
    return root


def _content(library: Path) -> dict:
    """What a library says about each file, keyed by file name (no ids or times)."""
    store = Store(library)
    try:
        out = {}
        for m in store.all_media():
            lines = store.transcript(m["id"])
            out[Path(m["path"]).name] = {
                "language": m["language"], "duration": m["duration"], "status": m["status"],
                "jobs": sorted((j["stage"], j["state"]) for j in store.jobs(m["id"])),
                "lines": [(ln["source"], ln["start"], ln["end"], ln["text"],
                           [(w["word"], w["start"], w["end"]) for w in ln["words"]])
                          for ln in lines],
                "turns": [(round(t["start"], 2), round(t["end"], 2), t["label"])
                          for t in store.speaker_turns(m["id"])],
                "text index": _text_index(store, m["id"], [ln["id"] for ln in lines])}
        return out
    finally:
        store.close()


def _text_index(store: Store, media_id: int, line_ids: list[int]) -> dict:
    """The text stage's rows: keywords, and each window's vector under the place of its
    first line (row ids differ between libraries; places do not)."""
    q = store.db.query
    return {"keywords": [tuple(r.values()) for r in q(
                "SELECT start, end, keyword, round(score, 5) FROM keywords WHERE media_id = ? "
                "ORDER BY start, keyword", (media_id,))],
            "windows": sorted((line_ids.index(r["segment_id"]), r["language"], r["embedding"])
                              for r in q("SELECT segment_id, language, embedding FROM segment_vec "
                                         "WHERE media_id = ?", (media_id,)))}


def _index(media_dir, library, *extra) -> dict:
    code = main(["index", str(media_dir), "--model", "tiny.en", "--json",
                 "--library", str(library), *extra])
    assert code == 0
    return code


def test_cluster_library_equals_local(local_ray, media, tmp_path, capsys):
    _index(media, tmp_path / "local.db", "--cluster", "local")
    _index(media, tmp_path / "ray.db", "--cluster", "ray")
    capsys.readouterr()
    local, cluster = _content(tmp_path / "local.db"), _content(tmp_path / "ray.db")
    assert set(cluster) == set(SAID)
    assert cluster == local                    # identical transcripts, words and times
    for name, said in SAID.items():
        text = " ".join(ln[3] for ln in cluster[name]["lines"]).lower()
        assert "seven ships" in text or "warm soup" in text, text
    assert all(cluster[name]["turns"] for name in SAID)     # who speaks, when: equal too
    assert all(cluster[name]["text index"]["windows"] for name in SAID)   # text ran too
    # speech and speakers ran on the cluster: their artifacts are beside the ray library
    art = artifact_dir(tmp_path / "ray.db")
    assert {p.name.split("-")[0] for p in art.rglob("*.pkl")} == {"speech", "speakers", "text"}
    assert len(list(art.rglob("*.pkl"))) == 3 * len(SAID)
    assert not artifact_dir(tmp_path / "local.db").exists()


VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


@pytest.fixture(scope="module")
def video(tmp_path_factory, photos):
    """5 s of real video, no sound: 3 s of vtest.avi's pedestrians (shots, people, motion)
    under a caption, then 2 s of a face (face_recognition's test photo, tests/face_photos.py)."""
    if not VTEST.is_file():
        pytest.skip("Debian's opencv-doc (vtest.avi) is not installed")
    photo = photos["obama.jpg"]
    out = tmp_path_factory.mktemp("cluster_video") / "street.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-t", "3", "-i", str(VTEST),
         "-loop", "1", "-framerate", "10", "-t", "2", "-i", str(photo), "-filter_complex",
         "[0:v]fps=10,setsar=1,drawtext=text='SEVEN SHIPS':fontsize=56:fontcolor=black:"
         "box=1:boxcolor=white:x=40:y=40[a];[1:v]scale=-2:576,pad=768:576:(ow-iw)/2:0,setsar=1[b];"
         "[a][b]concat=n=2:v=1[v]", "-map", "[v]", "-c:v", "libx264", "-preset",
         "ultrafast", "-pix_fmt", "yuv420p", str(out)],
        check=True, stdin=subprocess.DEVNULL, timeout=120)
    return out


def _video_content(library: Path) -> dict:
    """A library's keyframes, tags, screen text, features, motion, faces and thumbnail
    files (names with the file's id as ID, and their bytes)."""
    from app.settings import thumbnail_dir
    store = Store(library)
    try:
        (m,) = store.all_media()
        mid = m["id"]

        def rows(sql):
            return [tuple(r.values()) for r in store.db.query(sql, (mid,))]
        thumbs = thumbnail_dir(library)
        return {
            "jobs": sorted((j["stage"], j["state"]) for j in store.jobs(mid)),
            "keyframes": [(t, shot, (name or "").replace(f"{mid}/", "ID/"))
                          for t, shot, name in rows("SELECT time, shot, thumbnail FROM "
                                                    "keyframes WHERE media_id = ? ORDER BY time")],
            "tags": rows("SELECT start, end, label, source, score FROM tags WHERE media_id = ? "
                         "ORDER BY start, label"),
            "text": rows("SELECT start, end, text FROM screen_text WHERE media_id = ? "
                         "ORDER BY start"),
            "features": [(t, f.round(5).tolist()) for t, f in store.keyframe_features(mid)],
            "motion": [(w["start"], w["end"], w["encoder_version"], d.round(5).tolist())
                       for w, d in zip(*store.motion_windows(media_id=mid))],
            "faces": [(a["start"], a["end"], a["time"], round(a["x"], 4), round(a["w"], 4),
                       a["thumbnail"].replace(f"/{mid}/", "/ID/"), a["person_id"] is not None)
                      for a in store.face_appearances(mid)],
            "thumbnails": {p.relative_to(thumbs).as_posix().replace(f"{mid}/", "ID/"):
                           p.read_bytes() for p in thumbs.rglob("*") if p.is_file()}}
    finally:
        store.close()


def test_cluster_video_library_equals_local(local_ray, video, tmp_path, capsys):
    """visual and faces run on the workers: keyframes, tags, screen text, features,
    motion, faces and the thumbnail files equal the local executor's; a rebuilt library
    gets them all from the artifacts, thumbnails included."""
    local, ray_lib = tmp_path / "local.db", tmp_path / "ray.db"
    _index(video.parent, local, "--cluster", "local")
    _index(video.parent, ray_lib, "--cluster", "ray")
    capsys.readouterr()
    want, got = _video_content(local), _video_content(ray_lib)
    assert got["keyframes"] and got["features"] and got["motion"]
    assert any(t[2] == "person" for t in got["tags"])       # vtest's pedestrians
    assert any("SHIPS" in t[2].upper() for t in got["text"])    # the caption
    assert got["faces"] and all(f[-1] for f in got["faces"])    # the photo's face
    assert {n.split("/")[0] for n in got["thumbnails"]} == {"ID", "faces"}
    assert got == want
    art = artifact_dir(ray_lib)
    assert {p.name.split("-")[0] for p in art.rglob("*.pkl")} == {"visual", "faces"}

    # the library lost with its thumbnails: the artifacts rebuild both, nothing computed
    import shutil

    from app.settings import thumbnail_dir
    shutil.rmtree(thumbnail_dir(ray_lib))
    for suffix in ("", "-wal", "-shm"):
        Path(str(ray_lib) + suffix).unlink(missing_ok=True)
    _take_all(ray_lib, [video])
    again = _runner(ray_lib, [])
    again.run()
    assert again.stats["computed"] == 0 and again.stats["reused"] == 2
    assert _video_content(ray_lib) == want


def _runner(library, events, **kw) -> ClusterRunner:
    runner = ClusterRunner(library, Settings(whisper_model="tiny.en"), events.append,
                           address="ray", **kw)
    runner.connect()
    return runner


def _take_all(library, paths) -> list[int]:
    store = Store(library)
    try:
        return [take(store, Path(p)).media_id for p in paths]
    finally:
        store.close()


def test_killed_worker_mid_file_is_retried_once(local_ray, media, tmp_path):
    long_file = make_media(tmp_path / "media" / "ferry.wav", text=LONG, video=False)
    library = tmp_path / "kill.db"
    files = [long_file, *sorted(media.iterdir())]
    ids = _take_all(library, files)
    events, killed = [], []
    runner = _runner(library, [], stream=True, workers=2)   # bytes through the object store

    def on_event(event):
        events.append(event)
        if (event["type"] == "progress" and event["stage"] == "speech" and not killed
                and event["media_id"] == ids[0]):
            slot = next(s for s in runner.pool.busy if s.job_id == event["job_id"])
            killed.append(slot.pid)
            os.kill(slot.pid, signal.SIGKILL)
    runner.on_event = on_event
    counts = runner.run()

    assert killed, "the long file's speech was never seen in progress"
    crashed = [e for e in events if e["type"] == "worker_crashed"]
    assert len(crashed) == 1 and crashed[0]["retrying"] and crashed[0]["media_id"] == ids[0]
    assert counts["failed"] == 0 and runner.stats["computed"] == 3 * len(files)
    store = Store(library)
    try:
        speech = {j["media_id"]: j for j in store.jobs(state=None) if j["stage"] == "speech"}
        assert speech[ids[0]]["state"] == "done" and speech[ids[0]]["attempts"] == 2
        lines = store.transcript(ids[0], "speech")
        starts = [ln["start"] for ln in lines]
        assert starts == sorted(set(starts))        # landed once: no line twice
        text = " ".join(ln["text"] for ln in lines).lower()
        assert "island" in text and "water" in text
        assert all(store.media(i)["status"] == "done" for i in ids)
    finally:
        store.close()


def test_a_streamed_file_is_sent_once_for_its_stages(local_ray, media, tmp_path):
    """Streamed to one worker, each file's bytes go once: speakers runs on the copy speech
    had (and text needs none)."""
    library = tmp_path / "streamed.db"
    files = sorted(media.iterdir())
    _take_all(library, files)
    runner = _runner(library, [], stream=True, workers=1)
    counts = runner.run()
    assert counts["failed"] == 0 and runner.stats["computed"] == 3 * len(files)
    assert (runner.stats["sent"], runner.stats["sends_saved"]) == (len(files), len(files))
    store = Store(library)
    try:
        assert all(store.transcript(m["id"]) and store.speaker_turns(m["id"])
                   for m in store.all_media())
    finally:
        store.close()


def test_rerun_computes_nothing_again(local_ray, media, tmp_path):
    library = tmp_path / "again.db"
    files = sorted(media.iterdir())
    _take_all(library, files)
    first = _runner(library, [])
    first.run()
    assert first.stats["computed"] == 3 * len(files)      # speech, speakers and text
    before = _content(library)

    # the same library again: the files are done, nothing is queued or computed
    _take_all(library, files)
    store = Store(library)
    assert store.count_queued() == 0
    store.close()

    # the library lost (rebuilt from scratch): the artifacts beside it are applied as
    # they are, without a worker computing anything
    for suffix in ("", "-wal", "-shm"):
        Path(str(library) + suffix).unlink(missing_ok=True)
    _take_all(library, files)
    events = []
    second = _runner(library, events)
    second.run()
    assert second.stats == {**second.stats, "computed": 0, "reused": 3 * len(files),
                            "crashed": 0}
    assert [e for e in events if e["type"] == "job_finished" and e["stage"] == "speech"
            and e.get("artifact_reused")]
    assert _content(library) == before


def test_unreachable_cluster_is_exit_3_and_queues_nothing(media, tmp_path, capsys):
    library = tmp_path / "lib.db"
    code = main(["index", str(media), "--library", str(library), "--json",
                 "--cluster", "ray://127.0.0.1:1"])
    out = json.loads(capsys.readouterr().out)
    assert code == 3 and out["exit_code"] == 3
    assert "Cannot reach the Ray cluster at ray://127.0.0.1:1" in out["error"]
    assert not library.exists()                   # nothing queued, no library made
    assert main(["index", str(media), "--library", str(library),
                 "--cluster", "ray:/nohost"]) == 2


def test_retry_on_an_unreachable_cluster_is_exit_3_and_queues_nothing(tmp_path, capsys):
    library = tmp_path / "lib.db"
    store = Store(library)
    media_id = store.add_media("/x/talk.wav", "fp", 1, 1, error="could not be read")
    store.close()
    code = main(["retry", "--library", str(library), "--json",
                 "--cluster", "ray://127.0.0.1:1"])
    out = json.loads(capsys.readouterr().out)
    assert code == 3 and "Cannot reach the Ray cluster" in out["error"]
    store = Store(library)
    assert [j["state"] for j in store.jobs(media_id)] == ["failed"]   # not queued again
    store.close()


def _listening(inodes: set[str]) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) of listening sockets."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:          # 0A: LISTEN
                out.append(cols[1].rsplit(":", 1)[0])
    return out


def test_local_cluster_listens_on_loopback_only(local_ray):
    session = ray._private.worker._global_node.get_session_dir_path()
    inodes = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if session not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace") and \
                    int(pid) != os.getpid():
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    addresses = _listening(inodes)
    assert len(addresses) >= 3                      # gcs, raylet, workers at least
    loopback = {"0100007F", "00000000000000000000000001000000",
                "0000000000000000FFFF00000100007F"}
    assert set(addresses) <= loopback, addresses


def test_stop_leaves_the_remote_file_queued(local_ray, media, tmp_path):
    """Ctrl-C / the GUI closing, as locally: the file in a worker's hands goes back to the
    queue (the stop is no attempt), nothing of it is written, nothing is marked failed."""
    library = tmp_path / "stop.db"
    ids = _take_all(library, sorted(media.iterdir()))
    runner = _runner(library, [])
    stopped = []

    def on_event(event):
        if event["type"] == "progress" and event["stage"] == "speech" and not stopped:
            stopped.append(event["media_id"])
            runner.stop()
    runner.on_event = on_event
    counts = runner.run()
    assert stopped and counts["failed"] == 0
    store = Store(library)
    try:
        job = next(j for j in store.jobs(stopped[0]) if j["stage"] == "speech")
        assert (job["state"], job["attempts"]) == ("queued", 0)
        assert store.transcript(stopped[0], "speech") == []
        assert all(j["state"] != "running" for i in ids for j in store.jobs(i))
    finally:
        store.close()
