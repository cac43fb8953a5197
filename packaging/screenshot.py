"""Save a screenshot of the X display ($DISPLAY) once something is drawn on it.

    python packaging/screenshot.py OUT.png [TIMEOUT_S]

Waits (up to TIMEOUT_S, default 60) until the root window is no longer one flat colour,
waits 2 s more for the window to finish painting, then grabs it with QScreen.grabWindow(0).
Exit 0 with the file written, 1 if nothing appeared.
"""
import os
import sys
import time

os.environ["QT_QPA_PLATFORM"] = "xcb"
from PySide6.QtGui import QGuiApplication  # noqa: E402


def grab(app):
    return app.primaryScreen().grabWindow(0).toImage()


def flat(img) -> bool:
    w, h = img.width(), img.height()
    first = img.pixel(0, 0)
    step = max(1, min(w, h) // 40)
    return all(img.pixel(x, y) == first for x in range(0, w, step) for y in range(0, h, step))


def main() -> int:
    out = sys.argv[1]
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    app = QGuiApplication(sys.argv[:1])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not flat(grab(app)):
            time.sleep(2.0)
            img = grab(app)
            img.save(out)
            print(f"screenshot {out}: {img.width()}x{img.height()}")
            return 0
        time.sleep(0.5)
    grab(app).save(out)
    print(f"nothing drawn on {os.environ.get('DISPLAY')} within {timeout:.0f} s; saved {out} anyway",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
