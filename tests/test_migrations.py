"""Migrations: from an empty file, and from the previous version keeping rows."""
import glob

from indexer.migrations import applied
from indexer.schema import MIGRATIONS
from indexer.store import Store


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
    media_id = old.add_media("/x/talk.mp4", "fp1", 123, 456)
    seg_id = old.db["segments"].insert({"media_id": media_id, "start": 1.0, "end": 2.5,
                                        "text": "hello migrations", "language": "en"}).last_pk
    old.db["words"].insert_all([
        {"segment_id": seg_id, "start": 1.0, "end": 1.6, "word": " hello", "probability": 0.9},
        {"segment_id": seg_id, "start": 1.6, "end": 2.5, "word": " migrations",
         "probability": 0.8}])
    old.close()

    new = Store(library)
    assert new.migrated == [MIGRATIONS[-1][0]]
    assert new.media(media_id)["path"] == "/x/talk.mp4"
    segs = new.transcript(media_id)
    assert [s["text"] for s in segs] == ["hello migrations"]
    assert [w["word"] for w in segs[0]["words"]] == [" hello", " migrations"]
    # The FTS index made by an earlier migration still finds the old rows.
    assert new.db.execute("SELECT count(*) FROM segments_fts WHERE segments_fts MATCH 'migrations'"
                          ).fetchone()[0] == 1
    backups = glob.glob(str(library) + ".bak-*")
    assert len(backups) == 1
    backup = Store(backups[0], migrate_to=len(MIGRATIONS) - 1)   # opens without migrating
    assert backup.media(media_id)["fingerprint"] == "fp1"
    backup.close()
    new.close()


def test_reopening_runs_nothing(library):
    Store(library).close()
    again = Store(library)
    assert again.migrated == []
    again.close()
