"""Render packaging/icons/avindex.svg to PNGs (16..256 px) with Qt's QSvgRenderer.

    .venv/bin/python packaging/render_icons.py   # writes packaging/icons/hicolor/NxN/apps/avindex.png
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

SIZES = (16, 32, 48, 64, 128, 256)
HERE = Path(__file__).resolve().parent / "icons"


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841
    renderer = QSvgRenderer(str(HERE / "avindex.svg"))
    if not renderer.isValid():
        print("cannot read avindex.svg", file=sys.stderr)
        return 1
    for n in SIZES:
        img = QImage(n, n, QImage.Format_ARGB32_Premultiplied)
        img.fill(Qt.transparent)
        p = QPainter(img)
        p.setRenderHint(QPainter.Antialiasing)
        renderer.render(p)
        p.end()
        out = HERE / "hicolor" / f"{n}x{n}" / "apps" / "avindex.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not img.save(str(out)):
            print(f"cannot write {out}", file=sys.stderr)
            return 1
        print(out.relative_to(HERE.parent.parent), n, "px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
