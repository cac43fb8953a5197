"""Keyframe thumbnails belong to their library (a folder beside the library file),
and old ones are deleted only once the new rows are committed."""
import pytest

from app.cli import main
from app.settings import Settings
from indexer.stages.base import StageContext
from indexer.store import Store
from tests.media_factory import make_media


def thumbnails_of(library):
    s = Store(library)
    rows = [r["thumbnail"] for r in s.db.query("SELECT thumbnail FROM keyframes")]
    s.close()
    return rows


def test_each_library_keeps_its_own_thumbnails(tmp_path, capsys):
    video = make_media(tmp_path / "clip.mp4", audio=False, seconds=6)
    first, second = tmp_path / "one" / "films.db", tmp_path / "two" / "films.db"
    second.parent.mkdir()
    Settings(frame_interval_s=1.0).save(second)       # other keyframes, same media id
    for library in (first, second):
        assert main(["index", str(video), "--library", str(library)]) == 0
    capsys.readouterr()
    for library in (first, second):
        folder = library.with_name(library.stem + ".thumbnails")
        rows = thumbnails_of(library)
        assert rows and all((folder / r).is_file() for r in rows), (library, rows)
    assert len(thumbnails_of(second)) > len(thumbnails_of(first))


def test_old_thumbnails_are_deleted_only_after_the_commit(tmp_path, vision_models_dir,
                                                          classifier):
    from indexer.stages.visual import VisualStage
    video = make_media(tmp_path / "clip.mp4", audio=False, seconds=6)
    thumbs = tmp_path / "thumbs"
    store = Store(tmp_path / "lib.db")
    media = {"id": store.add_media(str(video), "fp", video.stat().st_size, 0),
             "path": str(video), "duration": 6.0, "kind": "video"}

    def analyse(max_gap):
        stage = VisualStage(thumbs, vision_models_dir, max_gap=max_gap, ocr=False,
                            motion=False, classifier=classifier)
        return stage.run(media, StageContext(store=store))

    with store.transaction():
        analyse(1.0)(store)
    before = thumbnails_of(store.path)
    saver = analyse(5.0)
    with pytest.raises(RuntimeError):
        with store.transaction():
            saver(store)
            raise RuntimeError("the commit fails")
    assert thumbnails_of(store.path) == before
    assert all((thumbs / r).is_file() for r in before)

    with store.transaction():
        saver(store)
    after = thumbnails_of(store.path)
    assert all((thumbs / r).is_file() for r in after)
    assert sorted(p.name for p in (thumbs / str(media["id"])).iterdir()) == \
        sorted(r.split("/")[1] for r in after)
    store.close()
