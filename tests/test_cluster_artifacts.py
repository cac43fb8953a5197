"""Artifacts and transfers without a cluster: what a saver records is what the Store is
given, a cache file cannot run code, a path mapping and a spool keep to their files."""
import pickle

import numpy as np
import pytest

from indexer.cluster.artifacts import (MEDIA_ID, Artifact, ArtifactCache, SaverReadsLibrary,
                                       artifact_key)
from indexer.cluster.transfer import PathMap, Spool, read_chunks


def test_recorded_saver_replays_on_the_real_store(store):
    media_id = store.add_media("/m/a.wav", "fp", 10, 1)
    rows = [{"start": 0.0, "end": 1.5, "text": "Seven ships.", "language": "en",
             "confidence": -0.2, "words": [{"start": 0.0, "end": 0.7, "word": " Seven",
                                            "probability": 0.9},
                                           {"start": 0.7, "end": 1.5, "word": " ships.",
                                            "probability": 0.8}]}]
    media = {"id": MEDIA_ID, "path": "/elsewhere/a.wav"}

    def saver(st):                       # as the speech stage's saver is written
        st.save_transcript(media["id"], "en", rows)
        return "a note"
    artifact = Artifact.loads(Artifact.record("speech", saver).dumps())
    assert artifact.calls == [("save_transcript", (MEDIA_ID, "en", rows), {})]
    with store.transaction():
        assert artifact.apply(store, media_id) == "a note"
    lines = store.transcript(media_id)
    assert [ln["text"] for ln in lines] == ["Seven ships."]
    assert [w["word"] for w in lines[0]["words"]] == [" Seven", " ships."]


def test_a_saver_that_reads_cannot_be_recorded():
    with pytest.raises(SaverReadsLibrary):
        Artifact.record("text", lambda st: st.transcript(MEDIA_ID))


def test_cache_keeps_plain_data_and_refuses_code(tmp_path):
    cache = ArtifactCache(tmp_path / "lib.artifacts")
    key = artifact_key("3f-abc", "speech", {"model": "base"})
    assert key != artifact_key("3f-abc", "speech", {"model": "tiny.en"})
    assert cache.get(key) is None
    art = Artifact("speech", [("save_x", (MEDIA_ID, np.arange(3.0)), {"k": {1, 2}})], None)
    cache.put(key, art)
    back = cache.get(key)
    assert back.calls[0][0] == "save_x" and back.calls[0][1][1].tolist() == [0.0, 1.0, 2.0]
    path = next((tmp_path / "lib.artifacts").rglob("*.pkl"))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    path.write_bytes(pickle.dumps({"stage": "speech", "calls": [Evil()], "note": None,
                                   "seconds": 0}))
    assert cache.get(key) is None           # refused, computed again


def test_path_map():
    m = PathMap.parse("/mnt/archive=/data/archive/")
    assert m.apply("/mnt/archive/a b.mp4") == "/data/archive/a b.mp4"
    assert m.apply("/mnt/archive") == "/data/archive"
    assert m.apply("/mnt/archive2/x.mp4") == "/mnt/archive2/x.mp4"   # not under the prefix
    for bad in ("/mnt/archive", "=/data", "/mnt="):
        with pytest.raises(ValueError):
            PathMap.parse(bad)


def test_spool_rebuilds_a_file_from_pieces_in_any_order(tmp_path):
    src = tmp_path / "talk.wav"
    src.write_bytes(bytes(range(256)) * 1000)
    size = src.stat().st_size
    spool = Spool("test-spool")
    pieces = list(read_chunks(src, chunk=7000))
    for offset, data in reversed(pieces):
        spool.write("file-1", str(src), offset, data)
    assert not spool.has("file-1", str(src), size)          # not complete yet
    assert spool.complete("file-1", str(src), size)
    copy = spool.path("file-1", str(src))
    assert copy.name == "talk.wav" and copy.read_bytes() == src.read_bytes()
    assert spool.has("file-1", str(src), size)              # kept for the next stage
    # a short file is not complete and goes; past KEEP_FILES the least recent goes
    spool.write("file-2", str(src), 0, pieces[0][1])
    assert not spool.complete("file-2", str(src), size) and not spool.has("file-2", str(src), size)
    for key in ("file-2", "file-3"):
        for offset, data in pieces:
            spool.write(key, str(src), offset, data)
        assert spool.complete(key, str(src), size)
    assert not copy.exists() and not spool.has("file-1", str(src), size)
    assert spool.has("file-2", str(src), size) and spool.has("file-3", str(src), size)


def test_snapshot_answers_only_the_reads_sent_with_the_job(store):
    from indexer.cluster.artifacts import SnapshotStore, snapshot_hash
    from indexer.cluster.remote_stages import snapshot
    media_id = store.add_media("/m/a.wav", "fp", 10, 1)
    store.save_transcript(media_id, "en", [{"start": 0.0, "end": 1.0, "text": "Hello.",
                                            "language": "en", "confidence": 0.0,
                                            "words": [{"start": 0.0, "end": 1.0,
                                                       "word": " Hello.",
                                                       "probability": 0.9}]}])
    reads = snapshot("speakers", store, media_id)
    remote = SnapshotStore(reads)
    lines = remote.transcript(MEDIA_ID)
    assert [(ln["source"], ln["start"], ln["end"]) for ln in lines] == [("speech", 0.0, 1.0)]
    assert "id" not in lines[0]                    # no row ids of this library travel
    with pytest.raises(SaverReadsLibrary):
        remote.transcript(MEDIA_ID, "subtitles")
    with pytest.raises(SaverReadsLibrary):
        remote.media(MEDIA_ID)
    assert snapshot_hash(reads) == snapshot_hash(snapshot("speakers", store, media_id))
    assert snapshot("speech", store, media_id) == {}


def test_thumbnails_travel_in_the_artifact_and_land_in_the_library(store, tmp_path):
    """A stage's scratch thumbnails go with its rows; the writer names them after the
    file's id, writes them before the rows commit and prunes the file's folder after."""
    media_id = store.add_media("/m/v.mp4", "fp", 10, 1)
    scratch, library_thumbs = tmp_path / "scratch", tmp_path / "thumbs"
    name = f"{MEDIA_ID}/000001000.jpg"
    (scratch / str(MEDIA_ID)).mkdir(parents=True)
    (scratch / name).write_bytes(b"jpeg")
    (scratch / f"{MEDIA_ID}/stray.jpg").write_bytes(b"no row points here")
    old = library_thumbs / str(media_id) / "000009000.jpg"       # an earlier run's
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    rows = [{"time": 1.0, "shot": 0, "thumbnail": name, "reason": "shot", "kind": "video"}]

    def saver(st):                       # as the visual stage's saver is written
        from indexer.stages.visual import prune_thumbnails
        st.save_visual(MEDIA_ID, rows, [], [], [np.ones(1280, np.float32)])
        st.after_commit(lambda: prune_thumbnails(scratch, str(MEDIA_ID), {name}))
    art = Artifact.loads(Artifact.record("visual", saver, thumb_dir=scratch,
                                         thumb_folder=str(MEDIA_ID)).dumps())
    assert art.files == {name: b"jpeg"}                  # the stray one was pruned first
    with store.transaction():
        art.apply(store, media_id, library_thumbs)
        assert old.exists()                              # pruned only after the commit
    assert not old.exists()
    assert (library_thumbs / f"{media_id}/000001000.jpg").read_bytes() == b"jpeg"
    (kf,) = store.db.query("SELECT thumbnail FROM keyframes WHERE media_id = ?", (media_id,))
    assert kf["thumbnail"] == f"{media_id}/000001000.jpg"


def test_prune_drops_the_artifacts_of_files_no_longer_in_the_library(library, tmp_path,
                                                                     capsys):
    import json

    from app.cli import main
    from app.cluster_runner import artifact_dir
    from indexer.store import Store
    kept, gone = tmp_path / "kept.wav", tmp_path / "gone.wav"
    store = Store(library)
    for path in (kept, gone):
        path.write_bytes(b"RIFF")
        store.add_media(str(path), f"4-{path.stem}", 4, 1)
    store.close()
    cache = ArtifactCache(artifact_dir(library))
    for fp in ("4-kept", "4-gone"):
        cache.put(artifact_key(fp, "speech", {}), Artifact("speech"))
        cache.put(artifact_key(fp, "visual", {}), Artifact("visual"))
    (cache.folder / "speech").mkdir()                   # the first layout's folder
    (cache.folder / "speech" / "speech-0a.pkl").write_bytes(b"")
    gone.unlink()

    assert main(["prune", "--json"]) == 0                # a dry run touches nothing
    assert json.loads(capsys.readouterr().out)["artifacts_removed"] == 0
    assert len(list(cache.folder.rglob("*.pkl"))) == 5
    assert main(["prune", "--yes", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["removed"] == 1 and out["artifacts_removed"] == 3
    assert {p.parent.name for p in cache.folder.rglob("*.pkl")} == {"4-kept"}
    assert cache.get(artifact_key("4-kept", "visual", {})) is not None


def test_visual_snapshot_holds_the_encoder_so_a_retrained_one_computes_again(store):
    """The writer stores the shipped encoder on first use (as the local stage does) and
    sends it; a new encoder is a new snapshot hash, so a new artifact key."""
    from indexer.cluster.artifacts import SnapshotStore, snapshot_hash
    from indexer.cluster.remote_stages import snapshot
    from indexer.stages.motion import current_encoder_row
    media_id = store.add_media("/m/v.mp4", "fp", 10, 1)
    assert store.current_encoder() is None
    first = snapshot("visual", store, media_id)
    default = store.current_encoder()
    assert default is not None and default["version"] == 0
    remote = SnapshotStore(first)
    row = current_encoder_row(remote)                # what the worker's stage reads
    assert (row["version"], row["model"]) == (0, default["model"])
    assert remote.tag_models(with_model=True) == []
    with pytest.raises(SaverReadsLibrary):
        remote.tag_models()                          # only the read that was made
    assert snapshot_hash(snapshot("visual", store, media_id)) == snapshot_hash(first)
    store.add_encoder("isa", default["model"] + b"retrained", "f00d", {})
    assert snapshot_hash(snapshot("visual", store, media_id)) != snapshot_hash(first)


def test_a_cache_file_cannot_name_a_thumbnail_outside_the_folder(tmp_path):
    cache = ArtifactCache(tmp_path / "lib.artifacts")
    key = artifact_key("3f-abc", "visual", {})
    for name in ("../../evil.jpg", "/etc/evil", "a//b.jpg", "a\\..\\b"):
        cache.put(key, Artifact("visual", files={name: b"x"}, thumb_folder=str(MEDIA_ID)))
        assert cache.get(key) is None            # refused, computed again
    cache.put(key, Artifact("visual", files={f"{MEDIA_ID}/1.jpg": b"x"}))
    assert cache.get(key).files == {f"{MEDIA_ID}/1.jpg": b"x"}


def test_a_text_artifact_is_stored_by_this_librarys_line_ids(tmp_path):
    """The text stage runs on a worker from a snapshot whose lines carry stand-in ids;
    applied in another library, where the same lines have other row ids, its windows are
    stored under that library's ids, as the local stage would store them."""
    from indexer.cluster.artifacts import SnapshotStore
    from indexer.cluster.remote_stages import rebind, snapshot
    from indexer.stages.base import StageContext
    from indexer.stages.text import TextIndexStage
    from indexer.store import Store

    said = ["The harbour was full of ships that morning.", "Seven of them came from the north.",
            "By noon the market sold warm soup to the sailors.",
            "Nobody expected the storm that evening."]

    def lines(texts, t0=0.0):
        return [{"start": t0 + 5.0 * i, "end": t0 + 5.0 * i + 4.0, "text": t, "language": "en",
                 "words": [{"start": t0 + 5.0 * i, "end": t0 + 5.0 * i + 4.0, "word": t}]}
                for i, t in enumerate(texts)]

    def library(name, before=0):
        st = Store(tmp_path / name)
        if before:                   # another file's lines first: this file's ids move on
            other = st.add_media("/m/other.wav", "fp-other", 10, 1)
            st.save_transcript(other, "en", lines([f"Line {i}." for i in range(before)]))
        mid = st.add_media("/m/harbour.wav", "fp-harbour", 10, 1)
        st.save_transcript(mid, "en", lines(said))
        return st, mid

    def vectors(st, mid):
        ids = [ln["id"] for ln in st.transcript(mid)]
        return sorted((ids.index(r["segment_id"]), r["embedding"]) for r in st.db.query(
            "SELECT segment_id, embedding FROM segment_vec WHERE media_id = ?", (mid,)))

    stage = TextIndexStage()
    writer, mid = library("writer.db")
    reads = snapshot("text", writer, mid)
    assert all(ln["id"] < 0 for v in reads.values() for ln in v if "text" in ln)  # stand-ins
    media = {**writer.media(mid), "id": MEDIA_ID}
    saver = stage.run(media, StageContext(store=SnapshotStore(reads)))
    artifact = Artifact.loads(Artifact.record("text", saver).dumps())

    other, other_mid = library("other.db", before=3)
    with other.transaction():
        artifact.apply(other, other_mid, None, rebind("text", other, other_mid))
    local, local_mid = library("local.db", before=3)
    local_saver = stage.run(local.media(local_mid), StageContext(store=local))
    with local.transaction():
        local_saver(local)
    got = vectors(other, other_mid)
    assert got and got == vectors(local, local_mid)
    ids = {r["segment_id"] for r in other.db.query("SELECT segment_id FROM segment_vec")}
    assert ids <= {ln["id"] for ln in other.transcript(other_mid)}   # none of the other file's
    for st in (writer, other, local):
        st.close()
