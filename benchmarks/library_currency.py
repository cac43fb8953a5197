"""What keeping the library current costs: reading the subtitles a file carries, and
watching a big folder.

    .venv/bin/python -m benchmarks.library_currency [--files 2000] [--minutes 30]

1. Subtitles: a --minutes long 720p H.264 MKV (ffmpeg lavfi, made once under
   benchmarks/.cache/currency/) with an embedded SubRip track of one line every 3 s, and
   the same lines as a sidecar .srt beside a WAV. Reported: the subtitles stage's read
   (indexer.subtitle_tracks.read_subtitles, as the stage calls it) against a plain
   demux of the whole file with PyAV (every packet, no decoding) and against the probe.
2. Watching: a folder of --files small WAVs, all already in the library. Reported: the
   watcher's start (scan of the folder until `ready`), its resident memory, and the
   time from a new file's last write to its `taken` event (settle time 2 s).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from pathlib import Path

from benchmarks.checkouts import ROOT

CACHE = ROOT / "benchmarks" / ".cache" / "currency"


def _srt(minutes: int) -> str:
    out = []
    for i in range(minutes * 20):
        a, b = i * 3.0, i * 3.0 + 2.5
        stamp = lambda t: f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{int(t % 60):02d},{int(t * 1000) % 1000:03d}"
        out.append(f"{i + 1}\n{stamp(a)} --> {stamp(b)}\nLine {i + 1} of the lighthouse log\n")
    return "\n".join(out)


def _media(minutes: int) -> tuple[Path, Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    mkv, wav = CACHE / f"film-{minutes}m.mkv", CACHE / f"talk-{minutes}m.wav"
    srt = CACHE / f"film-{minutes}m-source.srt"
    if not mkv.exists():
        srt.write_text(_srt(minutes), encoding="utf-8")
        subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error",
                        "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={minutes * 60}",
                        "-f", "lavfi", "-i", f"sine=frequency=300:duration={minutes * 60}",
                        "-f", "srt", "-i", str(srt), "-map", "0", "-map", "1", "-map", "2",
                        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30",
                        "-c:a", "aac", "-c:s", "srt", "-metadata:s:s:0", "language=eng",
                        str(mkv)], check=True)
    if not wav.exists():
        subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                        f"sine=frequency=300:duration={minutes * 60}", "-ar", "16000",
                        str(wav)], check=True)
        shutil.copy(srt, wav.with_suffix(".en.srt"))
    return mkv, wav


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def subtitles(minutes: int) -> None:
    import av

    from indexer.stages.probe import probe
    from indexer.subtitle_tracks import read_subtitles
    mkv, wav = _media(minutes)
    streams = [s.to_dict() for s in probe(str(mkv)).streams]
    lines = len(read_subtitles(mkv, streams).tracks[0].lines)

    def demux_all():
        with av.open(str(mkv)) as c:
            for _ in c.demux():
                pass
    t_read = _best(lambda: read_subtitles(mkv, streams))
    t_demux = _best(demux_all)
    t_probe = _best(lambda: probe(str(mkv)))
    t_side = _best(lambda: read_subtitles(wav, []))
    size = mkv.stat().st_size / 2 ** 20
    print(f"Subtitles ({minutes} min 720p MKV, {size:.0f} MB, {lines} lines; best of 3)")
    print("| read | seconds |")
    print("|---|---|")
    print(f"| subtitles stage, embedded track | {t_read:.2f} |")
    print(f"| PyAV demux of every packet (no decoding) | {t_demux:.2f} |")
    print(f"| probe | {t_probe:.2f} |")
    print(f"| subtitles stage, sidecar .srt of {lines} lines | {t_side:.3f} |")


def _wav(path: Path, i: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(i.to_bytes(4, "little") * 400)


def watching(files: int) -> None:
    from indexer.intake import take
    from indexer.store import Store
    from indexer.watching.folders import add_folder
    from indexer.watching.watcher import FolderWatcher
    with tempfile.TemporaryDirectory() as tmp:
        folder, library = Path(tmp) / "watched", Path(tmp) / "lib.db"
        for d in range(files // 100 + 1):
            (folder / f"d{d:03d}").mkdir(parents=True)
        paths = [folder / f"d{i // 100:03d}" / f"clip{i:05d}.wav" for i in range(files)]
        for i, p in enumerate(paths):
            _wav(p, i)
        old = time.time() - 3600
        for p in paths:
            os.utime(p, (old, old))
        store = Store(library)
        for p in paths:
            take(store, p)
        add_folder(store, folder)
        store.close()
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        taken: dict[str, float] = {}
        got = threading.Event()

        def on_event(e):
            if e["type"] == "taken":
                taken[e["path"]] = time.monotonic()
                got.set()
        t = time.perf_counter()
        watcher = FolderWatcher(library, settle_s=2.0, on_event=on_event)
        watcher.start()
        watcher.ready.wait(600)
        t_start = time.perf_counter() - t
        new = folder / "new.wav"
        with open(new, "wb") as f:
            f.write(b"\0" * 100)
        _wav(new, files + 1)
        last_write = time.monotonic()
        got.wait(30)
        latency = taken.get(str(new), float("nan")) - last_write
        watcher.stop()
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nWatching a folder of {files} indexed files (settle 2 s)")
    print("| measure | value |")
    print("|---|---|")
    print(f"| start (scan until ready) | {t_start:.2f} s |")
    print(f"| last write to taken | {latency:.2f} s |")
    print(f"| peak RSS of the process during the run | {rss1:.0f} MB (before: {rss0:.0f} MB) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--minutes", type=int, default=30)
    args = ap.parse_args()
    subtitles(args.minutes)
    watching(args.files)


if __name__ == "__main__":
    main()
