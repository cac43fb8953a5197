"""Keyframe thumbnails for the lists, decoded and scaled off the GUI thread.

`ThumbnailCache.pixmap(path, size)` answers at once: the cached QPixmap, or None while
a pool thread reads the JPEG (QImageReader with a scaled size, so a 320-px thumbnail is
decoded straight to the list's size) and `ready(path)` says when it is there. Views
repaint only the rows showing that path, so scrolling never decodes on the GUI thread.
Audio files get a drawn audio icon; files without a thumbnail yet, a neutral tile.
"""
from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QObject, QRectF, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import (QColor, QImage, QImageReader, QPainter, QPainterPath, QPen,
                           QPixmap)

CACHE_ITEMS = 3000
LOADER_THREADS = 1          # the indexer already keeps both cores busy


class _Sink(QObject):
    """Lives on the GUI thread; pool threads emit through it (queued)."""
    loaded = Signal(str, object, object)     # path, (w, h), QImage or None


class _Load(QRunnable):
    def __init__(self, path: str, size: QSize, sink: _Sink):
        super().__init__()
        self.path, self.size, self.sink = path, QSize(size), sink

    def run(self) -> None:
        reader = QImageReader(self.path)
        reader.setAutoTransform(True)
        src = reader.size()
        if src.isValid():
            reader.setScaledSize(src.scaled(self.size, Qt.KeepAspectRatio))
        image = reader.read()
        if not image.isNull():
            image = letterboxed(image, self.size)
        self.sink.loaded.emit(self.path, (self.size.width(), self.size.height()),
                              None if image.isNull() else image)


def letterboxed(image: QImage, size: QSize) -> QImage:
    """The image scaled to fit `size`, centred on a dark tile of exactly that size, so
    every row's thumbnail (4:3, 16:9, portrait) lines up, like the drawn tiles."""
    if image.width() > size.width() or image.height() > size.height():
        image = image.scaled(size, Qt.KeepAspectRatio, Qt.SmoothTransformation)
    if image.size() == size:
        return image
    tile = QImage(size, QImage.Format_ARGB32_Premultiplied)
    tile.fill(QColor("#202124"))
    p = QPainter(tile)
    p.drawImage((size.width() - image.width()) // 2, (size.height() - image.height()) // 2,
                image)
    p.end()
    return tile


class ThumbnailCache(QObject):
    ready = Signal(str)            # a path's pixmap (any size) is now cached

    def __init__(self, parent=None, threads: int = LOADER_THREADS):
        super().__init__(parent)
        self._cache: OrderedDict[tuple, QPixmap | None] = OrderedDict()
        self._pending: set[tuple] = set()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._sink = _Sink(self)
        self._sink.loaded.connect(self._loaded)
        self._icons: dict[tuple, QPixmap] = {}

    def pixmap(self, path: str | None, size: QSize) -> QPixmap | None:
        """The thumbnail at `size` if cached, else None (and it is being loaded)."""
        if not path:
            return None
        key = (path, size.width(), size.height())
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if key not in self._pending:
            self._pending.add(key)
            self._pool.start(_Load(path, size, self._sink))
        return None

    def is_pending(self) -> bool:
        return bool(self._pending)

    def wait(self, msecs: int = 5000) -> bool:
        """Tests: let the pool finish (results still arrive through the event loop)."""
        return self._pool.waitForDone(msecs)

    def _loaded(self, path: str, wh: tuple, image) -> None:
        key = (path, wh[0], wh[1])
        self._pending.discard(key)
        self._cache[key] = QPixmap.fromImage(image) if image is not None else None
        while len(self._cache) > CACHE_ITEMS:
            self._cache.popitem(last=False)
        self.ready.emit(path)

    # ---- drawn tiles -----------------------------------------------------------------
    def audio_icon(self, size: QSize) -> QPixmap:
        """A dark tile with a note and a waveform: clearly "sound only"."""
        return self._icon("audio", size, _paint_audio)

    def pending_icon(self, size: QSize) -> QPixmap:
        """A file whose frames are not analysed yet (or that has none)."""
        return self._icon("pending", size, _paint_pending)

    def _icon(self, name: str, size: QSize, paint) -> QPixmap:
        key = (name, size.width(), size.height())
        if key not in self._icons:
            pm = QPixmap(size)
            pm.fill(Qt.transparent)
            p = QPainter(pm)
            p.setRenderHint(QPainter.Antialiasing)
            paint(p, QRectF(0.5, 0.5, size.width() - 1, size.height() - 1))
            p.end()
            self._icons[key] = pm
        return self._icons[key]


def _paint_audio(p: QPainter, r: QRectF) -> None:
    p.setPen(Qt.NoPen)
    p.setBrush(QColor("#3b3f6b"))
    p.drawRoundedRect(r, 4, 4)
    h = r.height()
    # waveform bars on the right
    bars = [0.25, 0.55, 0.8, 0.45, 0.65, 0.3]
    bw = max(2.0, r.width() * 0.045)
    x = r.right() - bw * (2 * len(bars) + 1)
    p.setBrush(QColor("#9fa8ff"))
    for b in bars:
        bh = h * b * 0.8
        p.drawRoundedRect(QRectF(x, r.center().y() - bh / 2, bw, bh), 1, 1)
        x += 2 * bw
    # a beamed pair of eighth notes on the left
    p.setBrush(QColor("white"))
    p.setPen(Qt.NoPen)
    s = h * 0.18
    cx = r.left() + r.width() * 0.16
    cy = r.top() + h * 0.70
    for dx in (0.0, s * 2.2):
        p.drawEllipse(QRectF(cx + dx - s * 0.65, cy - s * 0.5, s * 1.3, s))
    pen = QPen(QColor("white"), max(1.5, s * 0.28))
    p.setPen(pen)
    top = r.top() + h * 0.24
    p.drawLine(cx + s * 0.55, cy, cx + s * 0.55, top)
    p.drawLine(cx + s * 2.75, cy, cx + s * 2.75, top)
    beam = QPainterPath()
    p.setPen(QPen(QColor("white"), max(2.0, s * 0.45)))
    beam.moveTo(cx + s * 0.55, top)
    beam.lineTo(cx + s * 2.75, top)
    p.drawPath(beam)


def _paint_pending(p: QPainter, r: QRectF) -> None:
    p.setPen(QPen(QColor("#b0b4ba"), 1, Qt.DashLine))
    p.setBrush(QColor("#eceef1"))
    p.drawRoundedRect(r.adjusted(1, 1, -1, -1), 4, 4)
    # a small film-frame sign
    w, h = r.width() * 0.36, r.height() * 0.42
    box = QRectF(r.center().x() - w / 2, r.center().y() - h / 2, w, h)
    p.setPen(QPen(QColor("#9aa0a6"), 1.5))
    p.setBrush(Qt.NoBrush)
    p.drawRoundedRect(box, 2, 2)
    tri = QPainterPath()
    c = box.center()
    tri.moveTo(c.x() - h * 0.18, c.y() - h * 0.25)
    tri.lineTo(c.x() - h * 0.18, c.y() + h * 0.25)
    tri.lineTo(c.x() + h * 0.26, c.y())
    tri.closeSubpath()
    p.setBrush(QColor("#9aa0a6"))
    p.setPen(Qt.NoPen)
    p.drawPath(tri)

