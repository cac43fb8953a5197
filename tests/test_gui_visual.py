"""The window's visual side on a real library: keyframe thumbnails in the library and
the results, hybrid results that say how each moment matched, search by a dropped
image, "more like this", and the tag timeline under the video.

One library is indexed per module by the real engine (`avindex index`, Whisper tiny.en,
EfficientNet tags and features): a slideshow of three Debian opencv-doc photos with
espeak speech, a talk (testsrc video + speech) and a tone (audio only). Each test opens
the window on its own copy of it.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_MEDIA_BACKEND", "ffmpeg")

import cv2  # noqa: E402
from PySide6.QtCore import QPoint, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QImage, QMouseEvent, QPixmap  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.gui import build  # noqa: E402
from app.settings import Settings  # noqa: E402
from media_factory import make_media, make_slideshow  # noqa: E402
from test_gui import SPEECH, drop_on  # noqa: E402
from ui.thumbnails import letterboxed  # noqa: E402

PHOTOS = Path("/usr/share/doc/opencv-doc/examples/data")
SLIDES = ["fruits.jpg", "butterfly.jpg", "baboon.jpg"]        # 4 s each: 0-4, 4-8, 8-12 s
SLIDE_SPEECH = ("Here is a bowl of fresh fruit on the kitchen table. Next, a colourful insect "
                "sits on a flower. Finally, a monkey looks straight at the camera.")
KNOWN_TAG = {"start": 2.0, "end": 6.0, "label": "waving", "source": "action", "score": 0.8}

pytestmark = pytest.mark.skipif(not all((PHOTOS / n).is_file() for n in SLIDES),
                                reason="needs Debian opencv-doc sample photos")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """A data dir (library, settings, thumbnails) indexed by `avindex index`."""
    root = tmp_path_factory.mktemp("visual")
    media = root / "media"
    make_slideshow(media / "slides.mp4", [PHOTOS / n for n in SLIDES], text=SLIDE_SPEECH)
    make_media(media / "talk.mp4", text=SPEECH)
    make_media(media / "tone.wav", seconds=2.0)
    data = root / "data"
    library = data / "library.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVINDEX_DATA_DIR", str(data))
        from app.cli import main
        assert main(["index", "--library", str(library), "--model", "tiny.en", "--quiet",
                     str(media)]) == 0
        from indexer.store import Store
        store = Store(library)
        try:
            mid = store.media_by_path(str(media / "slides.mp4"))["id"]
            # a tag of another source, as the action tagger will write them
            store.db["tags"].insert({"media_id": mid, **KNOWN_TAG})
            tags = [dict(r) for r in store.db.query(
                "SELECT label, start, end, source FROM tags WHERE media_id = ?", (mid,))]
        finally:
            store.close()
    return {"data": data, "media": media, "slides_tags": tags}


@pytest.fixture
def vgui(qtbot, library, tmp_path, indexed):
    shutil.copytree(indexed["data"], library.parent, dirs_exist_ok=True)
    qsettings = QSettings(str(tmp_path / "ui.ini"), QSettings.IniFormat)
    service, window = build(library, Settings(whisper_model="tiny.en"), qsettings)
    qtbot.addWidget(window)
    window.show()
    service.start()
    qtbot.waitUntil(lambda: len(window.library_panel.all_media()) == 3, timeout=10_000)
    window.media = indexed["media"]
    yield window
    service.shutdown()


def media_id(window, name: str) -> int:
    return next(m["id"] for m in window.library_panel.all_media() if m["path"].endswith(name))


def type_search(qtbot, window, text: str) -> list[dict]:
    window.search_box.clear()
    qtbot.keyClicks(window.search_box, text)
    qtbot.waitUntil(lambda: bool(window.results.model.hits) and
                    f"for “{text}”" in window.results.summary.text(), timeout=30_000)
    return window.results.model.hits


def wait_results(qtbot, window, phrase: str, timeout: int = 60_000) -> list[dict]:
    """The results of a search by image / more like this, once answered."""
    summary = window.results.summary
    qtbot.waitUntil(lambda: phrase in summary.text() and not summary.text().startswith(
        "Looking for"), timeout=timeout)
    return window.results.model.hits


def cut_from(photo: Path, target: Path) -> Path:
    """A crop of a photo, smaller and re-compressed: not the frame itself."""
    img = cv2.imread(str(photo))
    h, w = img.shape[:2]
    crop = img[int(0.1 * h):int(0.85 * h), int(0.1 * w):int(0.85 * w)]
    crop = cv2.resize(crop, (crop.shape[1] // 2, crop.shape[0] // 2))
    cv2.imwrite(str(target), crop, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return target


def decoration(window, model, row: int) -> QPixmap:
    """The thumbnail a row shows once it has been read (off the GUI thread)."""
    index = model.index(row, 0)
    index.data(Qt.DecorationRole)                  # asks for it
    qtbot_wait(lambda: not window.thumbnails.is_pending())
    return index.data(Qt.DecorationRole)


def qtbot_wait(predicate, timeout: float = 10.0) -> None:
    import time
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        QApplication.processEvents()
        time.sleep(0.01)


# ---- thumbnails --------------------------------------------------------------------------------

def test_library_list_shows_the_first_keyframe_and_an_audio_icon(qtbot, vgui):
    panel = vgui.library_panel
    slides = panel.media(media_id(vgui, "slides.mp4"))
    assert slides["thumbnail"] and slides["thumbnail"].endswith(".jpg")
    assert Path(slides["thumbnail"]).is_file()
    proxy = panel.proxy
    rows = {proxy.index(r, 0).data(): r for r in range(proxy.rowCount())}
    pending = vgui.thumbnails.pending_icon(QPixmap(64, 36).size())
    assert pending.cacheKey() != vgui.thumbnails.audio_icon(pending.size()).cacheKey()
    pm = decoration(vgui, proxy, rows["slides.mp4"])
    assert isinstance(pm, QPixmap) and not pm.isNull()
    assert pm.cacheKey() != pending.cacheKey()
    assert (pm.width(), pm.height()) == (64, 36)          # one size: the rows line up
    # it is the first keyframe (the fruit photo), not any frame: compare with the JPEG
    first = letterboxed(QImage(slides["thumbnail"]), pm.size())
    got = pm.toImage()
    diff = sum(abs(first.pixelColor(x, y).red() - got.pixelColor(x, y).red())
               for x in range(0, pm.width(), 4) for y in range(0, pm.height(), 4))
    assert diff / ((pm.width() // 4 + 1) * (pm.height() // 4 + 1)) < 20
    tone = decoration(vgui, proxy, rows["tone.wav"])
    assert tone.cacheKey() == vgui.thumbnails.audio_icon(pm.size()).cacheKey()
    assert proxy.headerData(0, Qt.Horizontal) == "Name"


# ---- hybrid results ----------------------------------------------------------------------------

def test_hybrid_results_say_how_each_moment_matched(qtbot, vgui):
    slides = media_id(vgui, "slides.mp4")
    hits = type_search(qtbot, vgui, "monarch")            # an ImageNet tag, never said
    top = hits[0]
    assert top["media_id"] == slides and top["match"] == "tag"
    assert 4.0 <= top["seek"] < 8.0                          # the butterfly's 4 s
    model = vgui.results.model
    assert model.index(0, 2).data().startswith("Tag")
    assert "background-color" in model.index(0, 2).data(Qt.UserRole + 10)
    assert top["thumb_path"].endswith("000004000.jpg") and Path(top["thumb_path"]).is_file()
    pm = decoration(vgui, model, 0)
    assert isinstance(pm, QPixmap) and (pm.width(), pm.height()) == (96, 54)

    hits = type_search(qtbot, vgui, "camera")              # said (and meant)
    said = [h for h in hits if h["match"] == "said"]
    assert said and said[0]["media_id"] == slides
    row = hits.index(said[0])
    assert model.index(row, 2).data().startswith("Said")
    assert "<b>camera</b>" in model.index(row, 3).data(Qt.UserRole + 10).lower()
    assert said[0]["seek"] >= 4.0                          # the word, late in the file
    # every result of the hybrid search is a moment with a known match type
    assert {h["match"] for h in hits} <= {"said", "shown", "tag", "similar", "keyword"}

    vgui.results.group_check.setChecked(True)              # per-file view
    grouped = model.hits
    firsts = [h["media_id"] for h in grouped]
    assert firsts == sorted(firsts, key=lambda m: firsts.index(m))   # contiguous per file


def test_cli_and_gui_play_a_said_hit_from_the_word(indexed, capsys, tmp_path):
    """On the real recording: `avindex search --json` gives the start of the word said,
    not of its line, and the GUI's request path seeks to that same second."""
    from app.cli import main
    from app.search_requests import answer, search_models
    from indexer.store import Store
    library = indexed["data"] / "library.db"
    assert main(["search", "elephant", "--json", "--library", str(library)]) == 0
    hit = json.loads(capsys.readouterr().out)["hits"][0]
    store = Store(library)
    try:
        said = [(w["start"], seg["start"]) for seg in store.transcript(hit["media_id"])
                for w in seg["words"] if "elephant" in w["word"].lower()]
        rows = answer(store, {"mode": "text", "query": "elephant"}, search_models(None), tmp_path)
    finally:
        store.close()
    assert hit["path"] == str(indexed["media"] / "talk.mp4") and said
    word_start, line_start = said[0]
    assert hit["seek"] == word_start > line_start == hit["start"]
    assert rows[0]["media_id"] == hit["media_id"] and rows[0]["seek"] == hit["seek"]


# ---- search by image ------------------------------------------------------------------------------

def test_dropping_an_image_on_the_search_box_finds_the_frame_it_was_cut_from(qtbot, vgui, tmp_path):
    photo = cut_from(PHOTOS / "butterfly.jpg", tmp_path / "insect.jpg")
    added = []
    vgui.service.add_paths = added.append
    assert drop_on(vgui.search_box, [photo])
    assert wait_results(qtbot, vgui, "frames like insect.jpg")
    assert added == []                                       # an image is not media to add
    assert vgui.tabs.currentWidget() is vgui.results
    top = vgui.results.model.hits[0]
    assert top["media_id"] == media_id(vgui, "slides.mp4")
    assert top["start"] == pytest.approx(4.0, abs=0.5) and top["keyframe_id"] is not None
    assert top["match"] == "similar" and top["thumb_path"].endswith("000004000.jpg")

    # a media file dropped on the search box still goes to the library
    talk = vgui.media / "talk.mp4"
    drop_on(vgui.search_box, [talk])
    assert added == [[str(talk)]]


# ---- more like this --------------------------------------------------------------------------------

def test_more_like_this_returns_moments_in_the_hits_own_modality(qtbot, vgui, tmp_path):
    hits = type_search(qtbot, vgui, "camera")
    row = next(i for i, h in enumerate(hits) if h["match"] == "said")
    source = hits[row]
    menu = vgui.results.context_menu_for(row)
    action = next(a for a in menu.actions() if a.text() == "More like this")
    action.trigger()
    more = wait_results(qtbot, vgui, "moments like slides.mp4")
    assert more, vgui.results.summary.text()
    assert all(h["kind"] == "similar" and h["segment_id"] is not None for h in more)
    assert not any(h["media_id"] == source["media_id"] and h["start"] <= source["start"] <= h["end"]
                   for h in more)
    assert {h["media_id"] for h in more} & {media_id(vgui, "talk.mp4")}

    # from a frame: the button on a selected by-image result
    vgui.search_by_image(str(cut_from(PHOTOS / "baboon.jpg", tmp_path / "monkey.jpg")))
    assert wait_results(qtbot, vgui, "frames like monkey.jpg")
    vgui.results.table.selectRow(0)
    assert vgui.results.more_button.isEnabled()
    vgui.results.more_button.click()
    frames = wait_results(qtbot, vgui, "moments like slides.mp4")
    assert frames and all(h["keyframe_id"] is not None for h in frames)


# ---- tag timeline -------------------------------------------------------------------------------------

def test_tag_timeline_shows_the_files_tags_and_a_click_seeks(qtbot, vgui):
    slides = media_id(vgui, "slides.mp4")
    vgui.open_media(slides)
    timeline = vgui.player.timeline
    qtbot.waitUntil(lambda: timeline.isVisible() and bool(timeline.tags), timeout=10_000)
    qtbot.waitUntil(lambda: vgui.player.player.duration() > 0, timeout=15_000)
    shown = {(t["label"], t["start"], t["end"], t["source"]) for t in timeline.tags}
    want = {(t["label"], t["start"], t["end"], t["source"]) for t in vgui_tags(vgui)}
    assert shown == want
    assert ("waving", 2.0, 6.0, "action") in shown
    assert any(src == "imagenet" for *_, src in shown)
    assert set(timeline.lanes) == {t[0] for t in shown}     # one lane per label

    # the known tag's bar spans 2-6 s of the 12 s strip, on its own lane
    waving = next(t for t in timeline.tags if t["label"] == "waving")
    bar = timeline.bar_rect(waving)
    assert bar.left() == pytest.approx(timeline.x_for(2.0), abs=1)
    assert bar.right() == pytest.approx(timeline.x_for(6.0), abs=1.5)
    assert timeline.x_for(6.0) - timeline.x_for(2.0) == pytest.approx(
        (timeline._track().width()) * 4 / vgui.player.player.duration() * 1000, rel=0.05)

    # hovering names the tag
    center = bar.center()
    move = QMouseEvent(QMouseEvent.MouseMove, center, timeline.mapToGlobal(center),
                       Qt.NoButton, Qt.NoButton, Qt.NoModifier)
    QApplication.sendEvent(timeline, move)
    assert timeline.hovered is waving
    assert "waving" in timeline.describe(timeline.hovered)

    # a click seeks there
    x = timeline.x_for(9.0)
    qtbot.mouseClick(timeline, Qt.LeftButton, pos=QPoint(int(round(x)), int(bar.center().y())))
    qtbot.waitUntil(lambda: abs(vgui.player.position_s() - 9.0) < 0.3, timeout=5000)
    qtbot.waitUntil(lambda: abs(timeline.position - 9.0) < 0.3, timeout=5000)   # the playhead


def vgui_tags(window) -> list[dict]:
    from indexer.store.reads import tag_ranges
    from indexer.store import Store
    store = Store(window.service.library)
    try:
        return tag_ranges(store, media_id(window, "slides.mp4"))
    finally:
        store.close()

