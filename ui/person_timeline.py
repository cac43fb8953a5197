"""The person timeline under the video, beside the tag timeline: one lane per person (the
name, else "Person N"), a bar for each appearance, and the playhead. Hovering names the
person and the span; a click on a bar seeks to where that appearance starts, elsewhere
to the second clicked.

Same look and API as ui.tag_timeline.TagTimeline (set_duration, set_position, clear,
seek_requested); the rows are the store's face_appearances as plain dicts (start, end,
person_id, name). The people seen longest get their own lane; the rest share "others".
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPen

from .formatting import duration_text
from .speaker_colors import speaker_color
from .tag_timeline import GUTTER, TagTimeline

OTHERS = "others"


def person_color(person_id: int | None) -> QColor:
    """A person's colour, the same in every session (hues step by the golden ratio)."""
    return QColor(speaker_color(person_id))


class PersonTimeline(TagTimeline):
    seek_requested = Signal(float)           # seconds
    person_activated = Signal(dict)          # a bar double-clicked: {"person_id", "name", ...}

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAccessibleName("Person timeline")

    # ---- data ---------------------------------------------------------------------------
    def set_appearances(self, rows: list[dict], duration: float | None = None) -> None:
        """A file's appearances (start, end, person_id, name); rows with no person are
        left out."""
        spans = []
        for r in rows:
            if r.get("person_id") is None:
                continue
            label = r.get("name") or f"Person {r['person_id']}"
            spans.append({**r, "label": label, "score": float(r["end"]) - float(r["start"])})
        self.set_tags(spans, duration)

    def clear(self) -> None:
        self.set_appearances([])
        self.position = 0.0

    @property
    def appearances(self) -> list[dict]:
        return self.tags

    def people(self) -> list[str]:
        """The lanes' labels, top to bottom (the last one may be "others")."""
        return [OTHERS if self._overflow and i == len(self.lanes) - 1 else lab
                for i, lab in enumerate(self.lanes)]

    def appearance_at(self, pos: QPointF) -> dict | None:
        return self.tag_at(pos)

    # ---- painting -------------------------------------------------------------------------
    def paintEvent(self, event):
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        pal = self.palette()
        p.fillRect(self.rect(), pal.base())
        fm = QFontMetrics(self.font())
        labels = self.people()
        for i, label in enumerate(labels):
            lane = self.lane_rect(i)
            p.fillRect(lane, QColor(0, 0, 0, 14))
            shared = self._overflow and i == len(labels) - 1
            p.setPen(QColor("#80868b") if shared else pal.color(pal.ColorRole.Text))
            p.drawText(QRectF(4, lane.top() - 2, GUTTER - 8, lane.height() + 4),
                       Qt.AlignVCenter | Qt.AlignLeft,
                       fm.elidedText(label, Qt.ElideRight, GUTTER - 10))
        for a in self.tags:
            shared = self._overflow and self.lane_of(a["label"]) == len(self.lanes) - 1
            color = QColor("#9aa0a6") if shared else person_color(a["person_id"])
            if a is self.hovered:
                color = color.lighter(125)
            p.setBrush(color)
            p.setPen(QPen(color.darker(150), 1) if a.get("by_user") else Qt.NoPen)
            p.drawRoundedRect(self.bar_rect(a).adjusted(0, 1, 0, -1), 3, 3)
        self._draw_playhead(p)
        p.end()

    # ---- mouse ------------------------------------------------------------------------------
    def mousePressEvent(self, event):
        pos = event.position()
        if event.button() == Qt.LeftButton and pos.x() >= GUTTER - 4:
            hit = self.appearance_at(pos)
            self.seek_requested.emit(float(hit["start"]) if hit is not None
                                     else self.time_at(pos.x()))
            event.accept()
            return
        super(TagTimeline, self).mousePressEvent(event)

    def mouseDoubleClickEvent(self, event):
        hit = self.appearance_at(event.position())
        if hit is not None:
            self.person_activated.emit({"person_id": hit["person_id"], "name": hit.get("name"),
                                        "label": hit["label"]})
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    @staticmethod
    def describe(appearance: dict) -> str:
        return (f"{appearance['label']} on screen\n"
                f"{duration_text(appearance['start'])} – {duration_text(appearance['end'])}")
