"""Screenshots of the main window in its main states, for review and docs.

    xvfb-run -a .venv/bin/python benchmarks/screenshots.py OUTDIR [--only tags]

Makes real speech media (and a slideshow of Debian opencv-doc photos, when installed),
indexes it with the real engine (Whisper tiny.en, EfficientNet tags) in a throw-away
library, and saves:

    1-empty.png          the empty library
    2-indexing.png       a batch half-way, with the jobs panel
    3-search.png         hybrid search results with thumbnails and match types
    4-player.png         playing a result, transcript following
    5-library.png        the library list with keyframe thumbnails and audio icons
    6-by-image.png       results of a search by a dropped photo
    7-player-tags.png    the player with the tag timeline of the slideshow
    8-train-a-tag.png    Tools > Train a tag… after training "spinning" on rendered clips
    9-motion-groups.png  Tools > Motion groups… with the groups found and one named
    10-action-tag.png    the player's tag timeline showing the trained action tag

`--only tags` makes just 8-10 (rendered motion clips; no speech model needed).

Needs a real X display (xvfb) so the video frame is captured.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("QT_MEDIA_BACKEND", "ffmpeg")

TALKS = {
    "team-meeting.mp4": "Good morning everyone. Today we review the quarterly budget. "
                        "Marketing spent less than planned, and the travel budget is almost "
                        "gone. After that, the elephant report is due on Friday.",
    "product-demo.mkv": "This demo shows the new search feature. Type a word, and the app "
                        "finds every moment where somebody said it. The budget for the "
                        "launch is approved.",
    "podcast-episode-12.mp3": "Welcome back to the show. This week we talk about saving "
                              "money, building a family budget, and why small habits matter.",
    # long enough that indexing is caught half-way
    "lecture-intro.wav": " ".join([
        "In this lecture we discuss the history of the printing press and how it changed "
        "the way people shared ideas.",
        "Before printing, every book was copied by hand, which took months.",
        "Gutenberg combined movable metal type, oil-based ink and a screw press.",
        "Within fifty years, presses were running in more than two hundred cities.",
        "Pamphlets, newspapers and scientific journals followed.",
    ] * 3),
}


PHOTOS = Path("/usr/share/doc/opencv-doc/examples/data")
SLIDES = ["fruits.jpg", "butterfly.jpg", "baboon.jpg", "orange.jpg", "building.jpg"]
SLIDE_SPEECH = ("Welcome to the photo walk. First, a bowl of fresh fruit on the table. "
                "Next, a colourful insect sits on a flower. Then a monkey looks straight at "
                "the camera. After that, a ripe orange. Finally, an old building in the city.")


def wait_until(app, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.02)


def settle(app, seconds: float = 0.5) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def shoot(app, window, path: Path, wait: float = 0.4) -> None:
    settle(app, wait)
    # Grab from the display (not QWidget.grab) so the video surface is included.
    pixmap = window.screen().grabWindow(window.winId())
    if pixmap.isNull() or pixmap.width() < 10:
        pixmap = window.grab()
    pixmap.save(str(path))
    print(f"wrote {path}")


def thumbs_loaded(app, window) -> None:
    """Let the visible rows ask for their thumbnails and the loader answer."""
    settle(app, 0.3)
    wait_until(app, lambda: not window.thumbnails.is_pending(), 20, "thumbnails")


@contextmanager
def open_window(work: Path, library: Path):
    """The real window and service on a library of its own, 1280x800, started and shown;
    closed, shut down and the work folder removed afterwards."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.gui import build
    from app.settings import Settings
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("avindex")
    qsettings = QSettings(str(work / "ui.ini"), QSettings.IniFormat)
    service, window = build(library, Settings(whisper_model="tiny.en"), qsettings)
    window.resize(1280, 800)
    window.show()
    service.start()
    try:
        wait_until(app, lambda: window.isVisible(), 10, "the window")
        yield app, service, window
    finally:
        window.close()
        service.shutdown()
        shutil.rmtree(work, ignore_errors=True)


def play_a_little(app, player, until_ms: int) -> None:
    """A paused seek shows no frame on xvfb: play up to `until_ms`, pause, let it paint."""
    player.player.play()
    try:
        wait_until(app, lambda: player.player.position() >= until_ms, 10, "playback")
    except TimeoutError:
        pass
    player.player.pause()
    settle(app, 1.0)


def motion_clips(folder: Path) -> dict[str, Path]:
    """Rendered clips (models.motion.synthetic) written to H.264: three each of a
    rotating, a translating and a still object."""
    from models.motion.synthetic import write_clip_set
    clips = {f"{stem[:-2]}{int(stem[-1]) - 1}": p
             for stem, p in write_clip_set(folder, size=(320, 180), sep="-").items()}
    return clips


def tag_shots(app, window, service, work: Path, out: Path) -> None:
    """Index the motion clips, train a tag in the dialog, find and name groups."""
    clips = motion_clips(work / "Motion clips")
    before = len(window.library_panel.all_media())
    window.add_paths([str(clips["rotating0"].parent)])
    wait_until(app, lambda: len(window.library_panel.all_media()) == before + len(clips)
               and not service.is_running and all(
                   m["status"] in ("done", "failed") for m in window.library_panel.all_media()),
               300, "the motion clips to be indexed")
    ids = {Path(m["path"]): m["id"] for m in window.library_panel.all_media()}
    ctl = service.tags

    dialog = window.open_tags_dialog()
    dialog.resize(920, 720)
    dialog.label_edit.setText("spinning")
    dialog.add_example(ids[clips["rotating0"]], str(clips["rotating0"]), 0.0, 4.0)
    dialog.add_player_moment(ids[clips["rotating1"]], str(clips["rotating1"]), 2.0)
    for key in ("static0", "translating0", "translating1"):
        dialog.add_example(ids[clips[key]], str(clips[key]), positive=False)
    dialog.only_given.setChecked(True)   # a third of these clips spin: sample none as negatives
    done = []
    ctl.trained.connect(done.append)
    ctl.failed.connect(lambda op, msg: done.append(msg))
    dialog.train()
    wait_until(app, lambda: done and dialog.tags and not ctl.busy, 120, "training")
    if not isinstance(done[0], dict):
        raise RuntimeError(f"training failed: {done[0]}")
    dialog.tags_table.selectRow(0)
    settle(app, 0.3)
    shoot(app, dialog, out / "8-train-a-tag.png")

    dialog.tabs.setCurrentIndex(1)
    listed = []
    ctl.groups_listed.connect(lambda rows, made: made and listed.append(rows))
    dialog.find_groups()
    wait_until(app, lambda: listed and not ctl.busy, 60, "motion groups")
    named = []
    ctl.group_named.connect(named.append)
    dialog.select_group(dialog.groups[0]["id"])
    still = all("static" in Path(e["path"]).name for e in dialog.groups[0]["examples"])
    dialog.name_selected_group("still" if still else "moving")
    wait_until(app, lambda: named and not ctl.busy and dialog.groups[0].get("label"), 60,
               "naming a group")
    dialog.select_group(dialog.groups[0]["id"])
    thumbs_loaded(app, window)
    shoot(app, dialog, out / "9-motion-groups.png")
    dialog.close()

    player = window.player
    window.open_media(ids[clips["rotating2"]], 1.0, play=False)
    wait_until(app, lambda: any(t["label"] == "spinning" for t in player.timeline.tags), 30,
               "the action tag on the timeline")
    play_a_little(app, player, 1500)
    shoot(app, window, out / "10-action-tag.png")


def main(out: Path, only: str | None = None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="avindex-shots-"))
    os.environ["AVINDEX_DATA_DIR"] = str(work / "data")
    library = work / "data" / "library.db"
    os.environ["AVINDEX_LIBRARY"] = str(library)

    if only == "tags":
        with open_window(work, library) as (app, service, window):
            tag_shots(app, window, service, work, out)
        return 0

    from media_factory import make_media, make_text_as_media
    media = work / "Recordings"
    files = [make_media(media / name, text=text) for name, text in TALKS.items()]
    files.append(make_text_as_media(media / "notes-not-a-video.mp4"))
    slides = [PHOTOS / n for n in SLIDES]
    if all(p.is_file() for p in slides):
        from media_factory import make_slideshow
        files.append(make_slideshow(media / "photo-walk.mp4", slides, text=SLIDE_SPEECH))

    with open_window(work, library) as (app, service, window):
        shoot(app, window, out / "1-empty.png")

        window.add_paths([str(media)])
        jobs = window.jobs_panel.model
        wait_until(app, lambda: any(r["state"] == "running" and r["stage"] == "speech"
                                    and r["fraction"] > 0.2 and r["eta"]
                                    and r["path"].endswith(".wav") for r in jobs.rows()),
                   300, "a file half-transcribed")
        shoot(app, window, out / "2-indexing.png", wait=0.05)

        wait_until(app, lambda: len(jobs.rows()) == len(files) and not service.is_running and
                   all(r["state"] in ("done", "failed") for r in jobs.rows()), 300,
                   "the batch to finish")
        window.tabs.setCurrentIndex(0)
        window.library_panel.table.clearSelection()
        window.search_box.setText("budget")
        window.search_box.flush()
        window.search_box.query_changed.emit("budget")
        wait_until(app, lambda: window.results.model.hits, 60, "search results")
        thumbs_loaded(app, window)
        shoot(app, window, out / "3-search.png")

        hits = window.results.model.hits
        row = max((i for i, h in enumerate(hits) if h["name"] == "team-meeting.mp4"),
                  key=lambda i: hits[i]["seek"])
        window.results.table.selectRow(row)
        window.results.activate_current()
        player = window.player
        wait_until(app, lambda: player.is_playing() and player.player.position() > 0 and
                   window.transcript.model.current >= 0, 30, "playback")
        settle(app, 1.2)
        player.player.pause()
        shoot(app, window, out / "4-player.png")

        window.tabs.setCurrentIndex(0)
        thumbs_loaded(app, window)
        shoot(app, window, out / "5-library.png")

        if all(p.is_file() for p in slides):
            import cv2
            img = cv2.imread(str(PHOTOS / "butterfly.jpg"))
            h, w = img.shape[:2]
            cut = work / "insect-photo.jpg"
            cv2.imwrite(str(cut), img[int(0.1 * h):int(0.85 * h), int(0.1 * w):int(0.85 * w)])
            window.search_by_image(str(cut))
            wait_until(app, lambda: window.results.model.hits and not window.results.summary
                       .text().startswith("Looking"), 60, "by-image results")
            thumbs_loaded(app, window)
            shoot(app, window, out / "6-by-image.png")

            walk = next(m["id"] for m in window.library_panel.all_media()
                        if m["path"].endswith("photo-walk.mp4"))
            window.open_media(walk, 6.0, play=False)
            wait_until(app, lambda: player.player.position() >= 5900 and player.timeline.tags
                       and window.transcript.model.segments, 30, "the slideshow at 6 s")
            play_a_little(app, player, 6600)
            shoot(app, window, out / "7-player-tags.png")
        tag_shots(app, window, service, work, out)
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 3 and args[1] == "--only":
        sys.exit(main(Path(args[0]), args[2]))
    if len(args) != 1:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(Path(args[0])))
