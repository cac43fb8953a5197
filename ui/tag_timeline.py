"""The tag timeline under the video: one lane per tag label, a coloured bar for each
range where the tag holds, and the playhead. Hovering names the tag; a click seeks.

Tags come from any source (image classes from 'imagenet', action tags, user tags);
a bar's outline says which kind. The busiest labels get their own lane (by time
covered); the rest share a last lane, "other".
"""
from __future__ import annotations

import zlib

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from .formatting import duration_text

MAX_LANES = 5
LANE_H = 13
LANE_GAP = 3
PAD = 4
GUTTER = 116            # label column on the left
OTHER = "other"


def label_color(label: str) -> QColor:
    """A stable, distinct colour per label (the same in every session)."""
    hue = zlib.crc32(label.lower().encode("utf-8")) % 360
    return QColor.fromHsl(hue, 150, 118)


class TagTimeline(QWidget):
    seek_requested = Signal(float)           # seconds

    def __init__(self, parent=None):
        super().__init__(parent)
        self.tags: list[dict] = []
        self.lanes: list[str] = []            # lane labels, top to bottom
        self._lane_of: dict[str, int] = {}
        self._overflow = False
        self.duration = 0.0
        self.position = 0.0
        self.hovered: dict | None = None
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setCursor(Qt.PointingHandCursor)
        self.setToolTip("")
        self.hide()

    # ---- data ---------------------------------------------------------------------------
    def set_tags(self, tags: list[dict], duration: float | None = None) -> None:
        self.tags = [dict(t) for t in tags]
        if duration:
            self.duration = float(duration)
        covered: dict[str, float] = {}
        for t in self.tags:
            covered[t["label"]] = covered.get(t["label"], 0.0) + max(0.0, t["end"] - t["start"])
        ranked = sorted(covered, key=lambda lab: (-covered[lab], lab.lower()))
        self._overflow = len(ranked) > MAX_LANES
        own = ranked[:MAX_LANES - 1] if self._overflow else ranked
        self.lanes = own + [OTHER] if self._overflow else own
        self._lane_of = {lab: (own.index(lab) if lab in own else len(own)) for lab in ranked}
        self.hovered = None
        self.setFixedHeight(self.sizeHint().height())
        self.setVisible(bool(self.tags))
        self.update()

    def clear(self) -> None:
        self.set_tags([])
        self.position = 0.0

    def set_duration(self, seconds: float) -> None:
        if seconds > 0 and abs(seconds - self.duration) > 1e-3:
            self.duration = seconds
            self.update()

    def set_position(self, seconds: float) -> None:
        if abs(seconds - self.position) * max(1, self._track().width()) > \
                0.5 * max(self.span(), 1e-6):        # repaint once it moved half a pixel
            self.position = seconds
            self.update()

    def span(self) -> float:
        """Seconds the strip covers: the file's duration (or the last tag's end)."""
        end = max((t["end"] for t in self.tags), default=0.0)
        return max(self.duration, end, 1e-3)

    def lane_of(self, label: str) -> int:
        return self._lane_of.get(label, -1)

    # ---- geometry -------------------------------------------------------------------------
    def sizeHint(self) -> QSize:
        n = max(1, len(self.lanes))
        return QSize(400, 2 * PAD + n * LANE_H + (n - 1) * LANE_GAP)

    def minimumSizeHint(self) -> QSize:
        return QSize(GUTTER + 60, self.sizeHint().height())

    def _track(self) -> QRectF:
        return QRectF(GUTTER, PAD, max(1.0, self.width() - GUTTER - PAD), self.height() - 2 * PAD)

    def x_for(self, seconds: float) -> float:
        track = self._track()
        return track.left() + track.width() * min(max(seconds / self.span(), 0.0), 1.0)

    def time_at(self, x: float) -> float:
        track = self._track()
        return min(max((x - track.left()) / track.width(), 0.0), 1.0) * self.span()

    def lane_rect(self, lane: int) -> QRectF:
        top = PAD + lane * (LANE_H + LANE_GAP)
        return QRectF(GUTTER, top, self._track().width(), LANE_H)

    def bar_rect(self, tag: dict) -> QRectF:
        lane = self.lane_rect(self.lane_of(tag["label"]))
        x0, x1 = self.x_for(tag["start"]), self.x_for(tag["end"])
        return QRectF(x0, lane.top(), max(3.0, x1 - x0), lane.height())

    def tag_at(self, pos: QPointF) -> dict | None:
        """The tag drawn under a point (the highest-scoring one where bars overlap)."""
        found = [t for t in self.tags if self.bar_rect(t).adjusted(-1, -1, 1, 1).contains(pos)]
        return max(found, key=lambda t: t.get("score") or 0.0) if found else None

    # ---- painting -------------------------------------------------------------------------
    def paintEvent(self, event):
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        pal = self.palette()
        p.fillRect(self.rect(), pal.base())
        fm = QFontMetrics(self.font())
        for i, label in enumerate(self.lanes):
            lane = self.lane_rect(i)
            p.fillRect(lane, QColor(0, 0, 0, 14))
            text = fm.elidedText(label, Qt.ElideRight, GUTTER - 10)
            shared = self._overflow and i == len(self.lanes) - 1
            p.setPen(QColor("#80868b") if shared else pal.color(pal.ColorRole.Text))
            p.drawText(QRectF(4, lane.top() - 2, GUTTER - 8, lane.height() + 4),
                       Qt.AlignVCenter | Qt.AlignLeft, text)
        for t in self.tags:
            shared = self._overflow and self.lane_of(t["label"]) == len(self.lanes) - 1
            color = QColor("#9aa0a6") if shared else label_color(t["label"])
            if t is self.hovered:
                color = color.lighter(125)
            rect = self.bar_rect(t)
            p.setBrush(color)
            if t.get("source") not in (None, "imagenet"):
                p.setPen(QPen(color.darker(160), 1.5))     # action, user, ... tags: outlined
            else:
                p.setPen(Qt.NoPen)
            p.drawRoundedRect(rect.adjusted(0, 1, 0, -1), 3, 3)
        self._draw_playhead(p)
        p.end()

    def _draw_playhead(self, p: QPainter) -> None:
        """The player's position, as a red line over the lanes (when there are any)."""
        if self.tags:
            x = self.x_for(self.position)
            p.setPen(QPen(QColor("#d93025"), 2))
            p.drawLine(QPointF(x, 0), QPointF(x, self.height()))

    # ---- mouse ------------------------------------------------------------------------------
    def mouseMoveEvent(self, event):
        pos = event.position()
        tag = self.tag_at(pos)
        if tag is not self.hovered:
            self.hovered = tag
            self.update()
        if tag is not None:
            QToolTip.showText(event.globalPosition().toPoint(), self.describe(tag), self)
        else:
            QToolTip.hideText()
        super().mouseMoveEvent(event)

    def leaveEvent(self, event):
        if self.hovered is not None:
            self.hovered = None
            self.update()
        super().leaveEvent(event)

    def mousePressEvent(self, event):
        if event.button() == Qt.LeftButton and event.position().x() >= GUTTER - 4:
            self.seek_requested.emit(self.time_at(event.position().x()))
            event.accept()
            return
        super().mousePressEvent(event)

    @staticmethod
    def describe(tag: dict) -> str:
        score = tag.get("score")
        extra = f", score {score:.2f}" if score is not None else ""
        return (f"{tag['label']} ({tag.get('source') or 'tag'}{extra})\n"
                f"{duration_text(tag['start'])} – {duration_text(tag['end'])}")
