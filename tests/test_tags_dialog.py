"""The "Train a tag" dialog (issue #6) end to end: rendered motion clips are written to
H.264, indexed by the real CLI pipeline, and the dialog trains, lists, deletes and names
tags through the real TagController thread and TagService."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_MEDIA_BACKEND", "ffmpeg")

from PySide6.QtCore import QSettings, Qt  # noqa: E402

from app.gui import build  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.tag_service import TagService  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
WORK_MS = 120_000


@pytest.fixture(scope="module")
def motion_library(tmp_path_factory):
    """Three rotating, three translating and three static clips, indexed (module-wide)."""
    from app.cli import main
    from models.motion.synthetic import write_clip_set
    base = tmp_path_factory.mktemp("motionlib")
    root = base / "clips"
    files = {stem: str(p) for stem, p in write_clip_set(root).items()}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVINDEX_DATA_DIR", str(base / "data"))
        library = base / "data" / "library.db"
        mp.setenv("AVINDEX_LIBRARY", str(library))
        assert main(["index", str(root)]) == 0
        yield library, files


@pytest.fixture
def window(qtbot, motion_library, tmp_path):
    library, _ = motion_library
    qsettings = QSettings(str(tmp_path / "ui.ini"), QSettings.IniFormat)
    service, win = build(library, Settings(whisper_model="tiny.en"), qsettings)
    qtbot.addWidget(win)
    win.show()
    service._req_list.emit()             # the library table (no indexing run needed)
    qtbot.waitUntil(lambda: len(win.library_panel.all_media()) == 9, timeout=WORK_MS)
    yield win
    if win.tags_dialog is not None:
        win.tags_dialog.close()
    service.shutdown()


def media_id(win, stem: str) -> int:
    return next(m["id"] for m in win.library_panel.all_media() if Path(m["path"]).stem == stem)


def labels(library) -> dict:
    return {t["label"]: t for t in TagService(library).list_tags()}


def tagged_files(library, label: str) -> set[str]:
    return {Path(r["path"]).stem for r in TagService(library).tag_ranges(label)}


def test_train_from_a_result_and_the_player_then_delete(qtbot, window, motion_library):
    library, files = motion_library
    win = window
    win.train_tag_action.trigger()
    dialog = win.tags_dialog
    assert dialog is not None and dialog.isVisible()
    assert not dialog.train_button.isEnabled()             # no name, no examples yet

    # 1. a search result's "Add to tag examples…"
    rot0 = media_id(win, "rotating0")
    hit = {"media_id": rot0, "path": files["rotating0"], "name": "rotating0.mp4",
           "start": 0.0, "end": 4.0, "seek": 0.0, "kind": "tag", "snippet": "[rotating]"}
    win.results.show_hits("rotating", [hit])
    menu = win.results.context_menu_for(0)
    action = next(a for a in menu.actions() if a.text() == "Add to tag examples…")
    action.trigger()
    assert [(e["path"], e["start"], e["end"]) for e in dialog.examples] == [
        (files["rotating0"], 0.0, 4.0)]

    # 2. the player's current moment: 2 s either side
    win.open_media(media_id(win, "rotating1"), 2.0)
    win.player_example_action.trigger()
    assert dialog.examples[-1]["path"] == files["rotating1"]
    assert (dialog.examples[-1]["start"], dialog.examples[-1]["end"]) == (0.0, 4.0)
    assert dialog.examples_table.rowCount() == 2
    assert dialog.examples_table.item(1, 2).text() == "0:00–0:04"

    # 3. counter-examples: whole clips, one flipped from example to counter-example
    for stem in ("static0", "translating0"):
        dialog.add_example(None, files[stem], positive=False)
    dialog.add_example(None, files["translating1"])
    dialog.examples_table.selectRow(4)
    dialog.flip_selected()
    assert [e["positive"] for e in dialog.examples] == [True, True, False, False, False]
    assert dialog.examples_table.item(4, 0).text() == "Counter-example"

    dialog.label_edit.setText("spinning")
    assert dialog.train_button.isEnabled()
    ctl = win.service.tags
    progress: list[float] = []
    ctl.train_progress.connect(lambda f, m: progress.append(f))
    with qtbot.waitSignal(ctl.trained, timeout=WORK_MS) as trained:
        qtbot.mouseClick(dialog.train_button, Qt.LeftButton)
    res = trained.args[0]
    assert dialog.last_error is None
    # the 6 counter-example windows, plus windows the engine samples from other videos
    assert res["label"] == "spinning" and res["positives"] == 4 and res["negatives"] >= 6
    assert 0.0 <= res["cv_accuracy"] <= 1.0  # two example clips: CV (whole clips per fold) is coarse
    assert progress and progress[-1] == 1.0 and dialog.progress.value() == 1000
    text = dialog.result_label.text()
    assert f"Accuracy {res['cv_accuracy'] * 100:.0f}%" in text
    assert f"threshold {res['threshold']:.2f}" in text
    assert f"{res['ranges']} range(s)" in text and res["ranges"] >= 1
    assert "(your counter-examples + " in text and "sampled from the rest of the library)" in text

    # the library: the examples' windows are tagged, the counter-examples' are not. (How
    # well the classifier generalises from two clips is the engine's business,
    # tests/test_motion.py and benchmarks/motion_quality.py; here: the dialog's training
    # reached the library.)
    tagged = tagged_files(library, "spinning")
    assert {"rotating0", "rotating1"} <= tagged, tagged          # the examples' own windows
    assert not tagged & {"static0", "translating0", "translating1"}, tagged  # the counter-examples'
    # the trained-tags list (refreshed after the training)
    qtbot.waitUntil(lambda: dialog.tag_labels() == ["spinning"], timeout=WORK_MS)
    row = [dialog.tags_table.item(0, c).text() for c in range(5)]
    assert row[:3] == ["spinning", "examples", str(res["ranges"])]
    # the player's tag timeline (rotating1 is loaded) shows the new tag
    qtbot.waitUntil(lambda: any(t["label"] == "spinning" for t in win.player.timeline.tags),
                    timeout=WORK_MS)

    # delete it
    dialog.tags_table.selectRow(0)
    assert dialog.delete_button.isEnabled()
    with qtbot.waitSignal(ctl.deleted, timeout=WORK_MS):
        dialog.delete_selected(confirm=False)
    qtbot.waitUntil(lambda: dialog.tag_labels() == [], timeout=WORK_MS)
    assert "spinning" not in labels(library)
    assert TagService(library).tag_ranges("spinning") == []
    qtbot.waitUntil(lambda: not any(t["label"] == "spinning"
                                    for t in win.player.timeline.tags), timeout=WORK_MS)

    # only the counter-examples given (as `avindex tags train --only-given`): where much
    # of the library shows the action, none of it is sampled as what the tag is not
    dialog.only_given.setChecked(True)
    with qtbot.waitSignal(ctl.trained, timeout=WORK_MS) as trained:
        qtbot.mouseClick(dialog.train_button, Qt.LeftButton)
    res = trained.args[0]
    assert res["negatives_from"] == "given" and res["negatives"] == 6
    assert "windows (your counter-examples)" in dialog.result_label.text()
    with qtbot.waitSignal(ctl.deleted, timeout=WORK_MS):
        ctl.delete("spinning")


def test_errors_are_messages_not_tracebacks(qtbot, window, tmp_path):
    win = window
    dialog = win.open_tags_dialog()
    dialog.label_edit.setText("waving")
    stray = tmp_path / "not_indexed.mp4"
    stray.write_bytes(b"")
    dialog.add_example(None, str(stray))
    with qtbot.waitSignal(win.service.tags.failed, timeout=WORK_MS) as failed:
        dialog.train()
    op, message = failed.args
    assert op == "train" and "is not in the library" in message
    assert "Traceback" not in dialog.status.text()
    assert "is not in the library" in dialog.status.text()
    assert dialog.train_button.isEnabled()                  # not stuck busy
    dialog.label_edit.setText("")
    dialog.train()
    assert dialog.last_error == "Give the tag a name first."


def test_cancel_stops_a_training_before_it_saves(qtbot, window, motion_library):
    library, files = motion_library
    dialog = window.open_tags_dialog()
    dialog.label_edit.setText("cancelled-tag")
    dialog.add_example(None, files["rotating0"])
    ctl = window.service.tags
    with qtbot.waitSignal(ctl.cancelled, timeout=WORK_MS):
        dialog.train()
        ctl.cancel()
    assert dialog.status.text() == "Training cancelled; nothing was changed."
    assert "cancelled-tag" not in labels(library)
    assert TagService(library).tag_ranges("cancelled-tag") == []


def test_find_play_and_name_a_motion_group(qtbot, window, motion_library):
    library, files = motion_library
    win = window
    win.groups_action.trigger()
    dialog = win.tags_dialog
    assert dialog.tabs.currentIndex() == 1
    ctl = win.service.tags
    with qtbot.waitSignal(ctl.groups_listed, timeout=WORK_MS,
                          check_params_cb=lambda rows, made: made):
        qtbot.mouseClick(dialog.find_button, Qt.LeftButton)
    assert len(dialog.groups) >= 2
    tree = dialog.groups_tree
    assert tree.topLevelItemCount() == len(dialog.groups)
    first = tree.topLevelItem(0)
    assert first.childCount() >= 1
    example = first.child(0).data(0, Qt.UserRole)
    assert example["thumbnail"] and os.path.exists(example["thumbnail"])  # keyframe image
    assert first.child(0).text(1).count(":") == 2                          # m:ss–m:ss

    # double-click plays that moment
    dialog._group_item_activated(first.child(0))
    assert win.player.media_id == example["media_id"]
    assert win.player.position_s() == pytest.approx(example["start"])

    # name it: a tag of source motion-group over the group's windows
    group_id = dialog.groups[0]["id"]
    qtbot.waitUntil(lambda: not ctl.busy, timeout=WORK_MS)
    dialog.select_group(group_id)
    assert dialog.name_button.isEnabled()
    with qtbot.waitSignal(ctl.group_named, timeout=WORK_MS) as named:
        dialog.name_selected_group("drifting")
    assert named.args[0]["label"] == "drifting"
    tags = labels(library)
    assert tags["drifting"]["source"] == "motion-group" and tags["drifting"]["ranges"] >= 1
    assert "drifting" in dialog.tag_labels()                  # listed before group_named
    assert Path(example["path"]).stem in tagged_files(library, "drifting")
    assert dialog.groups[0]["label"] == "drifting"           # listed before group_named
    assert "drifting" in tree.topLevelItem(0).text(0)
    assert dialog.groups_status.text().startswith("Named “drifting”")
    # the timeline of the playing member file shows the group's tag
    qtbot.waitUntil(lambda: any(t["label"] == "drifting" for t in win.player.timeline.tags),
                    timeout=WORK_MS)
