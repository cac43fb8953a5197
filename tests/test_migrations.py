"""Migrations: from an empty file, and from the previous version keeping rows."""
import glob

from indexer.store.migrations import MIGRATIONS, applied
from indexer.store import Store


def _old_media(old: Store, path: str, fp: str) -> int:
    """A media row as an earlier version wrote it (plain SQL: today's Store methods may
    use columns that version did not have)."""
    return old.db["media"].insert({"path": path, "fingerprint": fp, "size": 123,
                                   "mtime_ns": 456, "status": "done"}).last_pk


def test_empty_file_gets_every_migration(library):
    s = Store(library)
    assert applied(s.db) == [name for name, _ in MIGRATIONS]
    assert {"media", "jobs", "segments", "words", "keywords", "keyframes", "tags",
            "screen_text", "segments_fts", "segment_vec", "keyframe_vec",
            "corrections"} <= set(s.db.table_names())
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    # A fresh library has nothing to lose, so no backup is made.
    assert not glob.glob(str(library) + ".bak-*")
    s.close()


def test_upgrade_from_previous_version_keeps_rows_and_backs_up(library):
    old = Store(library, migrate_to=len(MIGRATIONS) - 1)
    assert applied(old.db) == [n for n, _ in MIGRATIONS[:-1]]
    # Rows written as the previous version wrote them (plain SQL, its schema).
    media_id = _old_media(old, "/x/talk.mp4", "fp1")
    old.db["jobs"].insert({"media_id": media_id, "stage": "speech", "state": "running"})
    seg_id = old.db["segments"].insert({"media_id": media_id, "start": 1.0, "end": 2.5,
                                        "text": "hello migrations", "language": "en"}).last_pk
    old.db["words"].insert_all([
        {"segment_id": seg_id, "start": 1.0, "end": 1.6, "word": " hello", "probability": 0.9},
        {"segment_id": seg_id, "start": 1.6, "end": 2.5, "word": " migrations",
         "probability": 0.8}])
    zh_id = old.db["segments"].insert({"media_id": media_id, "start": 3.0, "end": 5.0,
                                       "text": "我们去北京开会", "language": "zh"}).last_pk
    old.close()

    new = Store(library)
    assert new.migrated == [MIGRATIONS[-1][0]]
    assert new.media(media_id)["path"] == "/x/talk.mp4"
    # 0012: a job of the previous version has no resume point
    assert [(j["stage"], j["resume_at"]) for j in new.jobs(media_id)] == [("speech", None)]
    segs = new.transcript(media_id)
    assert [s["text"] for s in segs] == ["hello migrations", "我们去北京开会"]
    assert [w["word"] for w in segs[0]["words"]] == [" hello", " migrations"]
    # 0009: lines written before sources existed came from speech recognition.
    assert new.db.execute("SELECT source, track FROM segments").fetchall() == [("speech", None)] * 2
    # The FTS index made by an earlier migration still finds the old rows.
    assert new.db.execute("SELECT count(*) FROM segments_fts WHERE segments_fts MATCH 'migrations'"
                          ).fetchone()[0] == 1
    # 0013: a line in Chinese, one FTS5 token before, is indexed again character by
    # character, so a word inside it is found; removing it leaves the index consistent
    def zh_rows(phrase: str) -> list:
        return [r[0] for r in new.db.execute(
            "SELECT rowid FROM segments_fts WHERE segments_fts MATCH ?", (phrase,))]
    assert zh_rows('"北 京"') == [zh_id] and zh_rows('"我们去北京开会"') == []
    new.db.execute("DELETE FROM segments WHERE id = ?", (zh_id,))
    assert zh_rows('"北 京"') == []
    new.db.execute("INSERT INTO segments_fts(segments_fts) VALUES ('integrity-check')")
    backups = glob.glob(str(library) + ".bak-*")
    assert len(backups) == 1
    backup = Store(backups[0], migrate_to=len(MIGRATIONS) - 1)   # opens without migrating
    assert backup.media(media_id)["fingerprint"] == "fp1"
    backup.close()
    new.close()


def test_watching_migration_keeps_media_present_and_watches_nothing(library):
    names = [n for n, _ in MIGRATIONS]
    old = Store(library, migrate_to=names.index("0008_watched_folders"))
    media_id = _old_media(old, "/x/kept.mkv", "fp2")
    old.close()
    new = Store(library)
    assert new.migrated[:1] == ["0008_watched_folders"]
    assert new.media(media_id)["path"] == "/x/kept.mkv"
    assert new.media(media_id)["missing_since"] is None
    assert new.db.execute("SELECT count(*) FROM watched_folders").fetchone()[0] == 0
    new.close()


def test_reopening_runs_nothing(library):
    Store(library).close()
    again = Store(library)
    assert again.migrated == []
    again.close()


def test_float_vectors_become_int8_keeping_rows_metadata_and_neighbours(library):
    """0007: segment_vec / keyframe_vec rebuilt as int8, every row kept with its metadata;
    cosine to the original float vectors stays above 0.999 and the KNN order holds."""
    import numpy as np

    names = [n for n, _ in MIGRATIONS]
    old = Store(library, migrate_to=names.index("0007_int8_vectors"))
    assert "float[512]" in old.db.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'segment_vec'").fetchone()[0]
    rng = np.random.default_rng(7)
    seg = rng.standard_normal((300, 512)).astype(np.float32)
    seg /= np.linalg.norm(seg, axis=1, keepdims=True)
    kf = np.abs(rng.standard_normal((40, 1280))).astype(np.float32)  # post-ReLU features
    media_id = _old_media(old, "/x/talk.mp4", "fp1")
    conn = old.db.conn
    for i, v in enumerate(seg):
        conn.execute("INSERT INTO segment_vec(segment_id, embedding, media_id, kind, language) "
                     "VALUES (?, ?, ?, 'video', ?)", (i + 1, v.tobytes(), media_id, "en" if i % 3 else "de"))
    for i, v in enumerate(kf):
        conn.execute("INSERT INTO keyframe_vec(keyframe_id, embedding, media_id, kind) "
                     "VALUES (?, ?, ?, 'video')", (i + 1, v.tobytes(), media_id))
    conn.commit()
    q = seg[17] + 0.3 * seg[42]
    before = [r[0] for r in conn.execute(
        "SELECT segment_id FROM segment_vec WHERE embedding MATCH ? AND k = 10 AND language = 'en'",
        (q.astype(np.float32).tobytes(),))]
    old.close()

    new = Store(library)
    assert "0007_int8_vectors" in new.migrated
    db = new.db
    assert "int8[512]" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'segment_vec'").fetchone()[0]
    assert "int8[1280]" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'keyframe_vec'").fetchone()[0]
    from indexer.search.code_index import read_vectors
    from indexer.store.vec_codec import int8_blob
    got = read_vectors(new, "segment")
    assert got["ids"].tolist() == list(range(1, 301))
    assert set(got["media_id"].tolist()) == {media_id}
    assert [str(x) for x in got["language"][:3]] == ["de", "en", "en"]
    cos = (got["vectors"] * seg).sum(axis=1)
    assert cos.min() > 0.999, cos.min()
    kgot = read_vectors(new, "keyframe")
    assert len(kgot["ids"]) == 40 and ((kgot["vectors"] * (kf / np.linalg.norm(kf, axis=1, keepdims=True))).sum(axis=1) > 0.999).all()
    after = [r[0] for r in db.execute(
        "SELECT segment_id FROM segment_vec WHERE embedding MATCH vec_int8(?) AND k = 10 "
        "AND language = 'en'", (int8_blob(q),))]
    assert after[:3] == before[:3] and len(set(after) & set(before)) >= 9
    new.close()


def test_the_registry_is_one_numbered_order_without_gaps():
    numbers = [int(name.split("_", 1)[0]) for name, _ in MIGRATIONS]
    assert numbers == list(range(1, len(MIGRATIONS) + 1))
    assert len({name for name, _ in MIGRATIONS}) == len(MIGRATIONS)
