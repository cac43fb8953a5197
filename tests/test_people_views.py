"""People everywhere: the CLI, search (the person filter, search by a photo of a face,
"more of this person") and the GUI's People view and person timeline. Real dlib weights
and real photos (tests/test_faces.py's fixtures): each appearance carries the descriptor
of a real face and its aligned crop as the thumbnail, in a real library file."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from test_faces import descriptors, face_models  # noqa: F401  (fixtures)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _appearance(start: float, end: float, thumbnail: str | None = None) -> dict:
    return {"start": start, "end": end, "time": (start + end) / 2, "x": 0.4, "y": 0.2,
            "w": 0.2, "h": 0.3, "score": 1.0, "sightings": 3, "thumbnail": thumbnail}


@pytest.fixture(scope="session")
def face_crops(tmp_path_factory, photos, face_models) -> dict[str, Path]:  # noqa: F811
    """Each photo's aligned face crop (as the faces stage writes thumbnails), made once."""
    import cv2
    from models.faces import chip_bgr, read_photo
    folder = tmp_path_factory.mktemp("face-crops")
    crops = {}
    for name, path in photos.items():
        img = read_photo(path)
        faces, _ = face_models.faces_in_photo(img)
        _, chips = face_models.describe(img, faces[:1])
        crops[name] = folder / f"{Path(name).stem}.jpg"
        cv2.imwrite(str(crops[name]), chip_bgr(chips[0]))
    return crops


@pytest.fixture
def people(store, descriptors, face_crops, tmp_path):  # noqa: F811
    """Three files: one.mp4 (Obama 0-2 s), two.mp4 (Biden 1-3 s and 6-8 s), three.mp4
    (Biden 0-2 s, Obama 4-6 s, from his other photo); thumbnails are the faces' aligned
    crops. Returns a dict of ids, the thumbnail folder and the store."""
    import shutil
    thumbs = tmp_path / "thumbs"
    (thumbs / "faces").mkdir(parents=True)
    crops = {}
    for name, crop in face_crops.items():
        crops[name] = f"faces/{crop.name}"
        shutil.copy(crop, thumbs / crops[name])
    files = {}
    for name in ("one", "two", "three"):
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(b"not played in these tests")
        files[name] = store.add_media(str(path), name, path.stat().st_size, 0)
    one = store.save_faces(files["one"], [_appearance(0.0, 2.0, crops["obama.jpg"])],
                           [descriptors["obama.jpg"]])
    two = store.save_faces(files["two"], [_appearance(1.0, 3.0, crops["biden.jpg"]),
                                          _appearance(6.0, 8.0, crops["biden.jpg"])],
                           [descriptors["biden.jpg"], descriptors["biden.jpg"]])
    three = store.save_faces(files["three"], [_appearance(0.0, 2.0, crops["biden.jpg"]),
                                              _appearance(4.0, 6.0, crops["obama2.jpg"])],
                             [descriptors["biden.jpg"], descriptors["obama2.jpg"]])
    obama, biden = one[0]["person_id"], two[0]["person_id"]
    assert obama != biden and three[1]["person_id"] == obama and three[0]["person_id"] == biden
    return {"store": store, "files": files, "obama": obama, "biden": biden, "thumbs": thumbs,
            "rows": {"one": one, "two": two, "three": three}}


def cli(capsys, store, *argv):
    """The real CLI in this process: (exit code, stdout and stderr together)."""
    from app.cli import main
    code = main([*argv, "--library", str(store.path)])
    out = capsys.readouterr()
    return code, out.out + out.err, out.err


def people_cli(capsys, store, *argv):
    return cli(capsys, store, "people", *argv)


# ---- the CLI -------------------------------------------------------------------------------
def test_cli_lists_names_merges_and_says_where(people, capsys):
    store, obama, biden = people["store"], people["obama"], people["biden"]
    code, out, _ = people_cli(capsys, store, "list", "--json")
    assert code == 0
    listed = {p["id"]: p for p in json.loads(out)["people"]}
    assert set(listed) == {obama, biden}
    assert listed[biden]["appearances"] == 3 and listed[biden]["files"] == 2
    assert listed[obama]["label"] == f"Person {obama}" and listed[obama]["seconds"] == 4.0
    code, out, _ = people_cli(capsys, store, "list")
    assert code == 0 and f"Person {obama}" in out and "2 people" in out

    code, out, _ = people_cli(capsys, store, "name", str(obama), " Barack  Obama", "--json")
    assert code == 0 and json.loads(out)["name"] == "Barack Obama"
    code, out, _ = people_cli(capsys, store, "list", str(store.media(people["files"]["three"])
                                                         ["path"]), "--json")
    in_three = json.loads(out)["people"]
    assert {p["label"] for p in in_three} == {"Barack Obama", f"Person {biden}"}

    code, out, _ = people_cli(capsys, store, "where", "barack obama", "--json")
    where = json.loads(out)
    assert code == 0 and [Path(f["path"]).name for f in where["files"]] == ["one.mp4",
                                                                         "three.mp4"]
    assert [(s["start"], s["end"]) for s in where["files"][1]["spans"]] == [(4.0, 6.0)]
    code, out, _ = people_cli(capsys, store, "where", "Barack Obama")
    assert "00:00:04 – 00:00:06" in out

    # a name someone has already: one person
    code, out, _ = people_cli(capsys, store, "name", str(biden), "barack obama", "--json")
    assert code == 0 and json.loads(out)["merged_into"] == obama
    assert store.person(biden) is None and store.person(obama)["appearances"] == 5

    code, out, _ = people_cli(capsys, store, "where", "Nobody Here")
    assert code == 4 and "No person in the library is named “Nobody Here”" in out
    assert "Barack Obama" in out
    code, out, _ = people_cli(capsys, store, "name", str(obama), "x" * 101)
    assert code == 2 and "at most 100 characters" in out
    code, out, _ = people_cli(capsys, store, "merge", str(obama))
    assert code == 2 and "usage: avindex people merge" in out


def test_cli_merge_split_and_hide(people, capsys):
    store, obama, biden = people["store"], people["obama"], people["biden"]
    code, out, _ = people_cli(capsys, store, "merge", str(obama), f"#{biden}", "--json")
    assert code == 0 and json.loads(out)["person"]["appearances"] == 5
    biden_rows = [r["id"] for r in people["rows"]["two"]] + [people["rows"]["three"][0]["id"]]
    code, out, _ = people_cli(capsys, store, "split", str(obama),
                              *map(str, biden_rows), "--json")
    split = json.loads(out)
    assert code == 0 and sorted(split["moved"]) == sorted(biden_rows)
    new = split["new_person_id"]
    code, out, _ = people_cli(capsys, store, "split", str(obama), "999999")
    assert code == 4 and "no appearance 999999" in out

    code, out, _ = people_cli(capsys, store, "hide", f"Person {new}", "--json")
    assert code == 0 and store.person(new)["hidden"] == 1
    _, out, _ = people_cli(capsys, store, "list", "--json")
    assert [p["id"] for p in json.loads(out)["people"]] == [obama]
    _, out, _ = people_cli(capsys, store, "list", "--hidden", "--json")
    assert {p["id"]: p["hidden"] for p in json.loads(out)["people"]} == {obama: False,
                                                                         new: True}
    code, _, _ = people_cli(capsys, store, "hide", str(new), "--unhide")
    assert code == 0 and store.person(new)["hidden"] == 0


# ---- search ----------------------------------------------------------------------------------
def test_the_person_filter_keeps_the_moments_they_are_on_screen(people):
    from indexer.search.people import PersonSpans, UnknownPerson, person_moments, \
        resolve_person
    from indexer.search.types import Hit, Item
    store, obama, files = people["store"], people["obama"], people["files"]
    store.name_person(obama, "Barack Obama")
    assert resolve_person(store, "  barack obama ")["id"] == obama
    assert resolve_person(store, f"Person {obama}")["id"] == obama
    assert resolve_person(store, f"#{obama}")["id"] == obama
    with pytest.raises(UnknownPerson, match="named people: “Barack Obama”"):
        resolve_person(store, "Anna")

    hits = person_moments(store, obama, None, 10)
    assert [(Path(h.path).name, h.start, h.end) for h in hits] == [
        ("one.mp4", 0.0, 2.0), ("three.mp4", 4.0, 6.0)]
    assert all(h.kind == "face" and h.people == ["Barack Obama"] for h in hits)
    assert hits[0].score > hits[1].score

    spans = PersonSpans(store, obama)
    items = [Item("shown", "shown", files["three"], 0.5, 1.5),     # Biden only
             Item("shown", "shown", files["three"], 5.0, 9.0),     # Obama from 4 to 6
             Item("shown", "shown", files["two"], 0.0, 10.0)]      # never Obama
    kept = spans.keep(items)
    assert [(i.media_id, i.start, i.rank) for i in kept] == [(files["three"], 5.0, 1)]
    hit = Hit(files["three"], "three.mp4", 3.0, 9.0, "shown", "", 1.0, seek=3.0)
    spans.seek_within(hit)
    assert hit.seek == 4.0


def test_search_by_a_face_photo_finds_the_right_file_first(people, photos,  # noqa: F811
                                                            face_models):  # noqa: F811
    import cv2
    from indexer.search.people import search_by_face
    store, files = people["store"], people["files"]
    # obama2.jpg's face is in three.mp4 as it is; obama.jpg's (in one.mp4) is another photo
    hits = search_by_face(store, photos["obama.jpg"], face_models)
    assert [h.media_id for h in hits] == [files["one"], files["three"]]
    assert hits[0].similarity > 0.9 and hits[1].similarity > 0.4
    hits = search_by_face(store, str(photos["biden.jpg"]), face_models)
    assert {h.media_id for h in hits} == {files["two"], files["three"]}
    assert all(h.people == [f"Person {people['biden']}"] for h in hits)
    # a picture with no face leaves the search to whole-image similarity
    plain = np.full((240, 320, 3), 127, np.uint8)
    cv2.putText(plain, "no face", (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 3)
    assert search_by_face(store, plain, face_models) is None
    broken = people["thumbs"] / "broken.jpg"
    broken.write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match="not a picture avindex can read"):
        search_by_face(store, broken, face_models)


def test_more_of_this_person_from_a_moment(people):
    from indexer.search.people import attach_people, more_of_this_person
    from indexer.search.types import Hit
    store, files = people["store"], people["files"]
    moment = Hit(files["three"], "three.mp4", 3.0, 7.0, "shown", "", 1.0, seek=4.5)
    more = more_of_this_person(store, moment)
    assert [(h.media_id, h.start) for h in more] == [(files["one"], 0.0)]
    # two people in a moment: the one asked for
    both = Hit(files["three"], "three.mp4", 0.0, 6.0, "shown", "", 1.0, seek=1.0)
    attach_people(store, [both, moment])
    assert both.people == [f"Person {people['biden']}"]
    assert moment.people == [f"Person {people['obama']}"]
    more = more_of_this_person(store, both)
    assert sorted((h.media_id, h.start) for h in more) == [(files["two"], 1.0),
                                                          (files["two"], 6.0)]
    nobody = Hit(files["one"], "one.mp4", 5.0, 9.0, "shown", "", 1.0)
    with pytest.raises(LookupError, match="No one is on screen"):
        more_of_this_person(store, nobody)


# ---- the GUI ------------------------------------------------------------------------------------
def _people_rows(people) -> list[dict]:
    store, thumbs = people["store"], people["thumbs"]
    return [dict(p, thumb_path=str(thumbs / p["thumbnail"]) if p["thumbnail"] else None)
            for p in store.list_people(include_hidden=True)]


def test_the_people_view_shows_faces_and_asks_for_changes(qtbot, people):
    from ui.people_view import PeopleView
    view = PeopleView()
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    rows = _people_rows(people)
    view.set_people(rows)
    assert view.grid.count() == 2 and not view.empty.isVisible()
    biden, obama = people["biden"], people["obama"]
    assert view.item_of(biden).text().startswith(f"Person {biden}\n3 appearances, 2 files")
    qtbot.waitUntil(lambda: not view.thumbnails.is_pending(), timeout=10_000)
    qtbot.waitUntil(lambda: view.thumbnails.pixmap(rows[0]["thumb_path"], view.grid.iconSize())
                    is not None, timeout=10_000)
    icon = view.item_of(rows[0]["id"]).icon().pixmap(view.grid.iconSize()).toImage()
    center = icon.pixelColor(icon.width() // 2, icon.height() // 2)
    assert center.name() != "#202124"          # the face, not the blank tile

    with qtbot.waitSignal(view.rename_requested) as sig:
        view.rename(obama, "  Barack   Obama ")
    assert sig.args == [obama, "Barack Obama"]
    view.select([biden, obama])
    assert view.merge_button.isEnabled() and not view.rename_button.isEnabled()
    with qtbot.waitSignal(view.merge_requested) as sig:
        view.merge_button.click()
    assert sig.args == [biden, [obama]]
    view.select([obama])
    with qtbot.waitSignal(view.hide_requested) as sig:
        view.hide_button.click()
    assert sig.args == [obama, True]
    with qtbot.waitSignal(view.appearances_requested) as sig:
        view.show_button.click()
    assert sig.args[0]["id"] == obama

    # the window applies a change and gives fresh rows: the selection holds
    people["store"].hide_person(obama)
    view.set_people(_people_rows(people))
    assert view.selected_ids() == [obama] and view.hide_button.text() == "Unhide"
    with qtbot.waitSignal(view.people_wanted) as sig:
        view.show_hidden.setChecked(True)
    assert sig.args == [True]
    view.set_people([])
    assert view.grid.count() == 0 and view.empty.isVisible()


def test_the_person_timeline_shows_who_is_on_screen_and_seeks(qtbot, people):
    from PySide6.QtCore import QPoint, Qt
    from ui.person_timeline import PersonTimeline
    store = people["store"]
    store.name_person(people["obama"], "Barack Obama")
    strip = PersonTimeline()
    qtbot.addWidget(strip)
    strip.resize(700, 60)
    strip.show()
    rows = store.face_appearances(people["files"]["three"])
    strip.set_appearances(rows, duration=10.0)
    # one lane each, the longest seen first (a tie: by name)
    assert strip.isVisible() and strip.people() == ["Barack Obama", f"Person {people['biden']}"]
    obama_bar = next(a for a in strip.appearances if a["label"] == "Barack Obama")
    rect = strip.bar_rect(obama_bar)
    assert strip.x_for(4.0) == pytest.approx(rect.left(), abs=1)
    with qtbot.waitSignal(strip.seek_requested) as sig:
        qtbot.mouseClick(strip, Qt.LeftButton, pos=rect.center().toPoint())
    assert sig.args == [4.0]
    empty_x = int(strip.x_for(8.0))
    with qtbot.waitSignal(strip.seek_requested) as sig:
        qtbot.mouseClick(strip, Qt.LeftButton,
                         pos=QPoint(empty_x, int(strip.lane_rect(0).center().y())))
    assert sig.args[0] == pytest.approx(8.0, abs=0.2)
    with qtbot.waitSignal(strip.person_activated) as sig:
        qtbot.mouseDClick(strip, Qt.LeftButton, pos=rect.center().toPoint())
    assert sig.args[0]["person_id"] == people["obama"]
    assert "Barack Obama on screen" in strip.describe(obama_bar)
    image = strip.grab().toImage()
    assert image.pixelColor(rect.center().toPoint()).name() != \
        image.pixelColor(QPoint(empty_x, int(rect.center().y()))).name()
    strip.clear()
    assert not strip.isVisible() and strip.appearances == []


# ---- search (the search service) ----------------------------------------------------------
def test_search_takes_person_in_the_query_and_the_filter(people):
    from indexer.search import Filters, UnknownPerson, search
    store, obama, files = people["store"], people["obama"], people["files"]
    store.name_person(obama, "Barack Obama")
    words = [{"start": 0.6, "end": 1.0, "word": " budget"},
             {"start": 1.0, "end": 1.3, "word": " now"}]
    store.save_transcript(files["three"], "en", [
        {"start": 0.5, "end": 1.5, "text": "budget now", "words": words},          # Biden seen
        {"start": 4.5, "end": 5.5, "text": "budget again",                          # Obama seen
         "words": [{"start": 4.6, "end": 5.0, "word": " budget"},
                   {"start": 5.0, "end": 5.4, "word": " again"}]}])
    everything = search(store, "budget", mode="text")
    assert sorted(h.start for h in everything) == [0.5, 4.5]
    assert {h.start: h.people for h in everything} == {
        0.5: [f"Person {people['biden']}"], 4.5: ["Barack Obama"]}
    hits = search(store, 'budget person:"barack obama"', mode="text")
    assert [(h.media_id, h.start) for h in hits] == [(files["three"], 4.5)]
    assert hits[0].seek == pytest.approx(4.6) and hits[0].people == ["Barack Obama"]
    assert [h.start for h in search(store, "budget", mode="text",
                                    filters=Filters(person=obama))] == [4.5]
    alone = search(store, f"person:#{obama}")
    assert [(Path(h.path).name, h.start) for h in alone] == [("one.mp4", 0.0),
                                                             ("three.mp4", 4.0)]
    assert alone[0].snippet == "Barack Obama on screen for 2.0 s"
    assert "budget again" in alone[1].snippet
    with pytest.raises(UnknownPerson, match="No person in the library is named “Anna”"):
        search(store, 'person:"Anna"')
    with pytest.raises(ValueError, match="one person"):
        search(store, 'person:Anna person:Bob')


def test_a_face_match_beats_whole_image_similarity(people, photos, face_models,  # noqa: F811
                                                   classifier):
    from indexer.search import search
    store, files = people["store"], people["files"]
    photo = photos["obama2.jpg"]
    noise = np.random.default_rng(7).integers(0, 255, (240, 320, 3), np.uint8)
    same, other = classifier.features_of_file(str(photo)), classifier.features([noise])[0]
    # two.mp4 shows the query photo itself (whole-image twin) but only Biden's face
    store.save_visual(files["two"], [{"time": 6.5, "shot": 0, "thumbnail": None}], [], [],
                      [same])
    store.save_visual(files["one"], [{"time": 1.0, "shot": 0, "thumbnail": None}], [], [],
                      [other])
    plain = search(store, image=str(photo), image_model=classifier)
    assert plain[0].media_id == files["two"]           # whole-image similarity alone
    hits = search(store, image=str(photo), image_model=classifier, face_model=face_models)
    assert {h.media_id for h in hits[:2]} == {files["one"], files["three"]}
    assert all("face" in h.kinds for h in hits[:2])
    assert files["two"] in [h.media_id for h in hits[2:]]
    assert hits[0].people == [f"Person {people['obama']}"]
    # the face models may come with the search's models, loaded only when needed
    from types import SimpleNamespace
    models = SimpleNamespace(embedder=None, image_model=lambda: classifier,
                             face_model=lambda: face_models)
    assert [h.media_id for h in search(store, image=str(photo), models=models)] == \
        [h.media_id for h in hits]
    assert search(store, image=str(photo), models=SimpleNamespace(
        embedder=None, image_model=lambda: classifier, face_model=lambda: None))[0].media_id \
        == files["two"]                                # face models not installed


def test_cli_search_by_person_and_by_face(people, photos, capsys, tmp_path):  # noqa: F811
    store, files = people["store"], people["files"]
    store.name_person(people["obama"], "Barack Obama")
    code, out, _ = cli(capsys, store, "search", "--person", "Barack Obama", "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and [(Path(h["path"]).name, h["start"]) for h in hits] == [
        ("one.mp4", 0.0), ("three.mp4", 4.0)]
    assert hits[0]["people"] == ["Barack Obama"]
    code, out, _ = cli(capsys, store, "search", "--face", str(photos["biden.jpg"]))
    assert code == 0 and "two.mp4" in out.splitlines()[0]
    assert f"[face]  Person {people['biden']} on screen for 2.0 s" in out
    code, out, _ = cli(capsys, store, "search", "--face", str(photos["obama2.jpg"]), "--json")
    assert [Path(h["path"]).name for h in json.loads(out)["hits"]][0] == "three.mp4"
    blank = tmp_path / "blank.png"
    import cv2
    cv2.imwrite(str(blank), np.full((200, 200, 3), 200, np.uint8))
    code, out, _ = cli(capsys, store, "search", "--face", str(blank))
    assert code == 4 and "No face was found in" in out
    code, out, _ = cli(capsys, store, "search", "--person", "Nobody")
    assert code == 4 and "No person in the library is named “Nobody”" in out
    code, out, _ = cli(capsys, store, "search", "words", "--face", str(blank))
    assert code == 2 and "--face finds a photo's faces on its own" in out


def test_the_window_has_people_a_person_timeline_and_more_of_this_person(qtbot, people,
                                                                         tmp_path):
    from PySide6.QtCore import QSettings

    from app.gui import build
    from app.settings import Settings
    from tests.media_factory import make_media
    from ui.main_window import PEOPLE_TAB, SEARCH_TAB
    store, files, obama = people["store"], people["files"], people["obama"]
    three = store.media(files["three"])["path"]
    make_media(Path(three), audio=False, seconds=8.0)      # a real file for the player
    qsettings = QSettings(str(tmp_path / "ui.ini"), QSettings.IniFormat)
    service, window = build(store.path, Settings(), qsettings)
    qtbot.addWidget(window)
    window.show()
    view, results = window.people_view, window.results
    try:
        window.tabs.setCurrentIndex(PEOPLE_TAB)
        qtbot.waitUntil(lambda: view.grid.count() == 2, timeout=15_000)
        assert {p["id"] for p in view.people} == {obama, people["biden"]}
        view.rename(obama, "Barack Obama")
        qtbot.waitUntil(lambda: (store.person(obama) or {}).get("name") == "Barack Obama",
                        timeout=10_000)
        qtbot.waitUntil(lambda: (view.person(obama) or {}).get("name") == "Barack Obama",
                        timeout=10_000)

        # the person timeline under the player
        window.open_media(files["three"], 0.0, path=three)
        strip = window.player.people_timeline
        qtbot.waitUntil(lambda: len(strip.appearances) == 2, timeout=15_000)
        assert strip.people() == ["Barack Obama", f"Person {people['biden']}"]
        # the player's context menu: more of who is on screen now (Biden, at 0 s)
        who = window.player.people_on_screen()
        assert [p["label"] for p in who] == [f"Person {people['biden']}"]
        window.player._more_of_person(who[0])
        qtbot.waitUntil(lambda: f": other moments of Person {people['biden']}"
                        in results.summary.text(), timeout=15_000)
        assert sorted((h["media_id"], h["start"]) for h in results.model.hits) == [
            (files["two"], 1.0), (files["two"], 6.0)]

        # show appearances: the person's moments in the results
        view.select([obama])
        view.show_button.click()
        assert window.tabs.currentIndex() == SEARCH_TAB
        qtbot.waitUntil(lambda: ": moments Barack Obama is on screen." in results.summary.text(),
                        timeout=15_000)
        assert {h["media_id"] for h in results.model.hits} == {files["one"], files["three"]}
        assert all(h["people"] == ["Barack Obama"] for h in results.model.hits)

        # more of this person, from a result's context menu
        row = next(i for i, h in enumerate(results.model.hits)
                   if h["media_id"] == files["one"])
        menu = results.context_menu_for(row)
        action = next(a for a in menu.actions() if a.text().startswith("More of this person"))
        assert action.text() == "More of this person (Barack Obama)"
        action.trigger()
        qtbot.waitUntil(lambda: ": other moments of Barack Obama" in results.summary.text(),
                        timeout=15_000)
        assert [(h["media_id"], h["start"]) for h in results.model.hits] == [
            (files["three"], 4.0)]

        # merging from the People view: one person, and the timeline follows
        window.tabs.setCurrentIndex(PEOPLE_TAB)
        view.select([obama, people["biden"]])
        view.merge_button.click()
        qtbot.waitUntil(lambda: view.grid.count() == 1, timeout=10_000)
        qtbot.waitUntil(lambda: strip.people() == ["Barack Obama"], timeout=10_000)
    finally:
        service.shutdown()
