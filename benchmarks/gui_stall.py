"""How long can the GUI event loop stall while a batch is being indexed?

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_stall.py [--files N] [--no-search]

Indexes N real speech files (plus one broken file) through the main window with
Whisper tiny.en, while a 10 ms QTimer records the gaps between its ticks and,
unless --no-search, a live search is typed every 0.5 s as a user would. A gap
well above 10 ms is time the window could not repaint or react. Prints max, p99
and p50 of the gaps, and the worst moments with what was happening then.

Wall-clock gaps also count time the GUI thread was runnable but not running (the
worker process saturating the CPUs, other load on the machine), so the main
thread's own CPU time per gap is printed too: that part is work done on the GUI
thread, the rest is waiting for a CPU or the GIL.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("QT_MEDIA_BACKEND", "ffmpeg")

TICK_MS = 10
SENTENCES = [
    "The quarterly budget was approved after a long discussion about travel costs.",
    "Our new search feature finds every moment where a word was spoken.",
    "The elephant report is due on Friday, so please send your notes by Thursday.",
    "Welcome back to the show, this week we talk about saving money at home.",
    "In this lecture we discuss the printing press and how it changed the world.",
    "Remember to back up your files before you install the update tonight.",
]
QUERIES = ["budget", "elephant", "search", "printing press", "money", "update", "friday"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def make_batch(folder: Path, n: int) -> list[Path]:
    from media_factory import make_media, make_text_as_media
    exts = ["mp4", "mp3", "wav", "mkv", "m4a", "ogg"]
    files = []
    for i in range(n):
        text = " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(3))
        files.append(make_media(folder / f"talk-{i:02d}.{exts[i % len(exts)]}", text=text))
    files.append(make_text_as_media(folder / "broken.mp4"))
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--no-search", action="store_true", help="do not type searches meanwhile")
    ap.add_argument("--threads", type=int, default=0, help="Whisper CPU threads (0: all cores)")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="avindex-stall-"))
    os.environ["AVINDEX_DATA_DIR"] = str(work / "data")
    library = work / "data" / "library.db"
    os.environ["AVINDEX_LIBRARY"] = str(library)
    files = make_batch(work / "media", args.files)

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui import build
    from app.settings import Settings

    app = QApplication(sys.argv[:1])
    service, window = build(library, Settings(whisper_model="tiny.en", threads=args.threads),
                            QSettings(str(work / "ui.ini"), QSettings.IniFormat))
    window.show()
    service.start()

    ticks: list[float] = []
    cpu: list[float] = []            # the GUI thread's own CPU time at each tick
    context: list[str] = []          # what the window showed at each tick
    ticker = QTimer(interval=TICK_MS)
    ticker.setTimerType(ticker.timerType().PreciseTimer)

    def tick():
        ticks.append(time.perf_counter())
        cpu.append(time.thread_time())
        context.append(window.progress_label.text())
    ticker.timeout.connect(tick)

    queries = iter(QUERIES * 1000)
    typist = QTimer(interval=500)
    typist.timeout.connect(lambda: (window.search_box.setText(next(queries)),
                                    window.search_box.flush(),
                                    window.search_box.query_changed.emit(window.search_box.text())))
    searches = [0]
    service.search_results.connect(lambda q, hits: searches.__setitem__(0, searches[0] + 1))

    settle_until = time.perf_counter() + 1.0       # first show and layout are not indexing
    while time.perf_counter() < settle_until:
        app.processEvents()
        time.sleep(0.005)

    jobs = window.jobs_panel.model
    started = time.perf_counter()
    window.add_paths([str(work / "media")])
    ticker.start()
    if not args.no_search:
        typist.start()

    def finished() -> bool:
        rows = jobs.rows()
        return (len(rows) == len(files) and not service.is_running
                and all(r["state"] in ("done", "failed", "cancelled") for r in rows))

    while not finished():
        app.processEvents()
        time.sleep(0.001)
        if time.perf_counter() - started > args.timeout:
            print("timed out", file=sys.stderr)
            break
    elapsed = time.perf_counter() - started
    ticker.stop()
    typist.stop()
    states = {}
    for r in jobs.rows():
        states[r["state"]] = states.get(r["state"], 0) + 1
    window.close()
    service.shutdown()
    shutil.rmtree(work, ignore_errors=True)

    gaps = [(b - a) * 1000 for a, b in zip(ticks, ticks[1:])]
    busy = [(b - a) * 1000 for a, b in zip(cpu, cpu[1:])]
    worst = sorted(range(len(gaps)), key=lambda i: -gaps[i])[:5]
    print(f"batch: {len(files)} files ({states}) indexed in {elapsed:.1f} s on "
          f"{os.cpu_count()} CPU(s), Whisper threads {args.threads or 'all'}; "
          f"{searches[0]} live searches answered")
    print(f"event-loop gaps with a {TICK_MS} ms timer, {len(gaps)} ticks:")
    print(f"  max {max(gaps):.1f} ms   p99 {percentile(gaps, 0.99):.1f} ms   "
          f"p50 {percentile(gaps, 0.50):.1f} ms   over 50 ms: {sum(g > 50 for g in gaps)}")
    print(f"GUI-thread CPU time between ticks: max {max(busy):.1f} ms   "
          f"p99 {percentile(busy, 0.99):.1f} ms")
    print(f"load average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])}"
          if os.path.exists("/proc/loadavg") else "")
    for i in worst:
        print(f"  gap {gaps[i]:6.1f} ms (GUI thread busy {busy[i]:5.1f} ms) at "
              f"{ticks[i] - ticks[0]:6.2f} s  ({context[i] or 'idle'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
