"""The media player: video (or a title card for audio), the tag timeline of the file and
its person timeline (who is on screen when), play/pause, seek, volume. The context menu
offers "More of <person>" for each person on screen at the current second."""
from __future__ import annotations

import os

from PySide6.QtCore import QUrl, Qt, Signal
from PySide6.QtMultimedia import QAudioOutput, QMediaPlayer
from PySide6.QtMultimediaWidgets import QVideoWidget
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QMenu, QSizePolicy, QSlider,
                               QStackedWidget, QStyle, QStyleOptionSlider, QToolButton,
                               QVBoxLayout, QWidget)

from .formatting import duration_text
from .person_timeline import PersonTimeline
from .tag_timeline import TagTimeline

Status = QMediaPlayer.MediaStatus


class SeekSlider(QSlider):
    """A click on the groove jumps there (QSlider would only page-step)."""

    clicked_to = Signal(int)

    def mousePressEvent(self, event):
        if event.button() == Qt.LeftButton and self.maximum() > 0:
            handle = self.style().subControlRect(QStyle.CC_Slider, self._option(),
                                                 QStyle.SC_SliderHandle, self)
            if not handle.contains(event.position().toPoint()):
                value = QStyle.sliderValueFromPosition(
                    self.minimum(), self.maximum(), int(event.position().x()), self.width())
                self.setValue(value)
                self.clicked_to.emit(value)
                event.accept()
                return
        super().mousePressEvent(event)

    def _option(self) -> QStyleOptionSlider:
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        return opt


class PlayerWidget(QWidget):
    position_changed = Signal(float)     # seconds
    media_loaded = Signal(int)           # media id
    example_requested = Signal()         # "use the current moment as a tag example"
    more_of_person_requested = Signal(dict)  # {"media_id", "person_id", "seek", ...}

    def __init__(self, parent=None):
        super().__init__(parent)
        self.player = QMediaPlayer(self)
        self.audio = QAudioOutput(self)
        self.player.setAudioOutput(self.audio)
        self.video = QVideoWidget()
        self.video.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.video.setMinimumHeight(120)
        self.player.setVideoOutput(self.video)
        self.media_id: int | None = None
        self.path: str | None = None
        self._pending_seek_ms: int | None = None
        self._play_when_loaded = False
        self._dragging = False

        self.card = QLabel("Select a file in the library, or a search result, to play it here.")
        self.card.setAlignment(Qt.AlignCenter)
        self.card.setWordWrap(True)
        self.card.setStyleSheet("QLabel { background: #202124; color: #e8eaed; padding: 12px; }")
        self.screen = QStackedWidget()
        self.screen.addWidget(self.card)
        self.screen.addWidget(self.video)

        style = self.style()
        self.play_button = QToolButton()
        self.play_button.setIcon(style.standardIcon(QStyle.SP_MediaPlay))
        self.play_button.setToolTip("Play/pause (Space or K)")
        self.play_button.clicked.connect(self.toggle_play)
        self.back_button = QToolButton()
        self.back_button.setIcon(style.standardIcon(QStyle.SP_MediaSeekBackward))
        self.back_button.setToolTip("Back 5 s (Left)")
        self.back_button.clicked.connect(lambda: self.step(-5))
        self.forward_button = QToolButton()
        self.forward_button.setIcon(style.standardIcon(QStyle.SP_MediaSeekForward))
        self.forward_button.setToolTip("Forward 5 s (Right)")
        self.forward_button.clicked.connect(lambda: self.step(5))
        self.slider = SeekSlider(Qt.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setToolTip("Seek")
        self.slider.sliderPressed.connect(lambda: setattr(self, "_dragging", True))
        self.slider.sliderReleased.connect(self._slider_released)
        self.slider.sliderMoved.connect(lambda ms: self.time_label.setText(self._time_text(ms)))
        self.slider.clicked_to.connect(self.player.setPosition)
        self.time_label = QLabel(self._time_text(0))
        self.example_button = QToolButton()
        self.example_button.setText("+ Tag example")
        self.example_button.setToolTip("Use the current moment as an example of an action "
                                       "tag (Tools > Train a tag)")
        self.example_button.clicked.connect(self.example_requested)
        self.volume_icon = QLabel()
        self.volume_icon.setPixmap(style.standardIcon(QStyle.SP_MediaVolume).pixmap(16, 16))
        self.volume = QSlider(Qt.Horizontal)
        self.volume.setRange(0, 100)
        self.volume.setValue(80)
        self.volume.setFixedWidth(90)
        self.volume.setToolTip("Volume")
        self.volume.valueChanged.connect(lambda v: self.audio.setVolume(v / 100))
        self.audio.setVolume(0.8)
        for w in (self.play_button, self.back_button, self.forward_button, self.slider,
                  self.volume, self.example_button):
            w.setFocusPolicy(Qt.NoFocus)     # keys belong to the window's playback shortcuts

        controls = QHBoxLayout()
        controls.setContentsMargins(4, 2, 4, 2)
        for w in (self.back_button, self.play_button, self.forward_button):
            controls.addWidget(w)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.time_label)
        controls.addWidget(self.example_button)
        controls.addSpacing(8)
        controls.addWidget(self.volume_icon)
        controls.addWidget(self.volume)
        self.title = QLabel()
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.title.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # long names
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.screen, 1)
        self.timeline = TagTimeline()
        self.timeline.setToolTip("Tags of this file over time: hover to read, click to seek")
        self.timeline.seek_requested.connect(self.seek)
        lay.addWidget(self.timeline)
        self.people_timeline = PersonTimeline()
        self.people_timeline.setToolTip("Who is on screen when: hover to read, click to seek, "
                                        "double-click for more of that person")
        self.people_timeline.seek_requested.connect(self.seek)
        self.people_timeline.person_activated.connect(self._more_of_person)
        lay.addWidget(self.people_timeline)
        lay.addWidget(self.title)
        lay.addLayout(controls)

        self.player.durationChanged.connect(self._duration_changed)
        self.player.positionChanged.connect(self._position_changed)
        # Queued: setSource() emits a status change synchronously, and the FFmpeg backend
        # deadlocks (a Qt mutex it holds) when the slot calls pause() or setPosition()
        # from inside it; the test suite hung there when a second file was opened.
        self.player.mediaStatusChanged.connect(self._status_changed, Qt.QueuedConnection)
        self.player.playbackStateChanged.connect(self._state_changed)
        self.player.hasVideoChanged.connect(self._has_video_changed)
        self.player.errorOccurred.connect(self._error)
        self._set_enabled(False)

    # ---- commands ------------------------------------------------------------------
    def load(self, media_id: int, path: str, position_s: float = 0.0, play: bool = False) -> None:
        """Open a file (if not already open) and go to `position_s`."""
        if media_id == self.media_id and path == self.path and self.player.duration() > 0:
            self.seek(position_s)
            if play:
                self.player.play()
            return
        self.media_id, self.path = media_id, path
        self._pending_seek_ms = int(position_s * 1000)
        self._play_when_loaded = play
        self.title.setText(os.path.basename(path))
        self.title.setToolTip(path)
        self.card.setText(f"{os.path.basename(path)}\n\n(audio)")
        self.slider.setRange(0, 0)
        self.timeline.clear()
        self.people_timeline.clear()
        self.player.setSource(QUrl.fromLocalFile(path))
        self._set_enabled(True)
        self.media_loaded.emit(media_id)

    def unload(self) -> None:
        self.release()
        self.media_id = self.path = None
        self.timeline.clear()
        self.people_timeline.clear()
        self.title.setText("")
        self.card.setText("Select a file in the library, or a search result, to play it here.")
        self.screen.setCurrentWidget(self.card)
        self._set_enabled(False)

    def release(self) -> None:
        """Stop playback and close the file.

        Not QMediaPlayer.stop(): PySide6 keeps the GIL through it, while Qt's FFmpeg
        backend tears down its renderer threads; a renderer destroyed there asks a
        Python-made Qt object (a Shiboken wrapper) whether Python overrides a virtual,
        which needs the GIL, while it holds a Qt mutex the GUI thread waits on: a
        deadlock, seen (gdb) when the window closed during playback. setSource() stops too, and PySide releases the
        GIL around it.
        """
        self.player.setSource(QUrl())

    def set_tags(self, media_id: int, tags: list[dict], duration: float | None = None) -> None:
        """The tag ranges of the file now loaded (ignored if another file is loaded)."""
        if media_id == self.media_id:
            ms = self.player.duration()
            self.timeline.set_tags(tags, ms / 1000 if ms > 0 else duration)

    def set_appearances(self, media_id: int, rows: list[dict],
                        duration: float | None = None) -> None:
        """Who is on screen when in the file now loaded (ignored for another file)."""
        if media_id == self.media_id:
            ms = self.player.duration()
            self.people_timeline.set_appearances(rows, ms / 1000 if ms > 0 else duration)

    def people_on_screen(self) -> list[dict]:
        """The people seen at the current second (one row each, from the timeline)."""
        t = self.position_s()
        out: dict[int, dict] = {}
        for a in self.people_timeline.appearances:
            if a["start"] <= t < a["end"] and a["person_id"] not in out:
                out[a["person_id"]] = {"person_id": a["person_id"], "name": a.get("name"),
                                       "label": a["label"]}
        return list(out.values())

    def contextMenuEvent(self, event):
        if self.media_id is None:
            return
        menu = QMenu(self)
        people = self.people_on_screen()
        for person in people:
            menu.addAction(f"More of {person['label']}",
                           lambda p=person: self._more_of_person(p))
        if not people:
            menu.addAction("More of this person (no one is on screen now)").setEnabled(False)
        menu.addSeparator()
        menu.addAction("Use as a tag example", self.example_requested.emit)
        menu.exec(event.globalPos())

    def _more_of_person(self, person: dict) -> None:
        if self.media_id is not None:
            self.more_of_person_requested.emit({**person, "media_id": self.media_id,
                                                "seek": self.position_s()})

    def seek(self, seconds: float) -> None:
        ms = max(0, int(seconds * 1000))
        if self.player.mediaStatus() in (Status.LoadingMedia, Status.NoMedia):
            self._pending_seek_ms = ms      # a seek before the file is open is ignored
        else:
            self.player.setPosition(ms)

    def step(self, seconds: float) -> None:
        if self.media_id is None:
            return
        target = self.player.position() / 1000 + seconds
        duration = self.player.duration() / 1000
        if duration > 0:
            target = min(target, duration - 0.05)
        self.seek(max(0.0, target))

    def toggle_play(self) -> None:
        if self.media_id is None:
            return
        if self.player.playbackState() == QMediaPlayer.PlayingState:
            self.player.pause()
        else:
            if self.player.mediaStatus() == Status.EndOfMedia:
                self.player.setPosition(0)
            self.player.play()

    def position_s(self) -> float:
        if self._pending_seek_ms is not None:
            return self._pending_seek_ms / 1000
        return self.player.position() / 1000

    def is_playing(self) -> bool:
        return self.player.playbackState() == QMediaPlayer.PlayingState

    # ---- player feedback ------------------------------------------------------------
    def _status_changed(self, _queued_status) -> None:
        status = self.player.mediaStatus()   # now, not when queued: the source may have changed
        if status in (Status.LoadedMedia, Status.BufferedMedia) and \
                self._pending_seek_ms is not None:
            ms, self._pending_seek_ms = self._pending_seek_ms, None
            if ms:
                self.player.setPosition(ms)
            if self._play_when_loaded:
                self._play_when_loaded = False
                self.player.play()
            else:
                self.player.pause()     # a stopped player shows nothing; paused, the frame
        elif status == Status.InvalidMedia:
            self._pending_seek_ms = None

    def _duration_changed(self, ms: int) -> None:
        self.slider.setRange(0, max(0, ms))
        if not self._dragging:        # a position reported before the duration was clamped
            self.slider.setValue(self.player.position())
        self.timeline.set_duration(ms / 1000)
        self.people_timeline.set_duration(ms / 1000)
        self.time_label.setText(self._time_text(self.player.position()))

    def _position_changed(self, ms: int) -> None:
        if not self._dragging:
            self.slider.setValue(ms)
            self.time_label.setText(self._time_text(ms))
        self.timeline.set_position(ms / 1000)
        self.people_timeline.set_position(ms / 1000)
        self.position_changed.emit(ms / 1000)

    def _state_changed(self, state) -> None:
        icon = QStyle.SP_MediaPause if state == QMediaPlayer.PlayingState else QStyle.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))

    def _has_video_changed(self, has_video: bool) -> None:
        self.screen.setCurrentWidget(self.video if has_video else self.card)

    def _error(self, error, message: str) -> None:
        if error != QMediaPlayer.NoError:
            self.card.setText(f"Cannot play {os.path.basename(self.path or '')}:\n{message}")
            self.screen.setCurrentWidget(self.card)

    def _slider_released(self) -> None:
        self._dragging = False
        self.player.setPosition(self.slider.value())

    def _time_text(self, ms: int) -> str:
        return f"{duration_text(ms / 1000)} / {duration_text(self.player.duration() / 1000)}"

    def _set_enabled(self, enabled: bool) -> None:
        for w in (self.play_button, self.back_button, self.forward_button, self.slider,
                  self.example_button):
            w.setEnabled(enabled)
