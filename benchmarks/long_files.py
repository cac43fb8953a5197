"""Speech on long files: one `avindex index FILE` per file against plain faster-whisper per
file, as benchmarks/per_file_cli.py runs them, but on files minutes long, where a
process's fixed costs no longer hide the engines' speed; with each side's WER.

    .venv/bin/python -m benchmarks.long_files                  # 8 voices x 5 min, ~10 min
    .venv/bin/python -m benchmarks.long_files --minutes 10 --voices en-allison fr-june
    .venv/bin/python -m benchmarks.long_files --compare-env AVINDEX_ENCODER_TRIM=0   # a third side

The files: per voice of benchmarks/spoken_search.py (Debian's Asterisk prompts, real
recorded speech, 5 languages), its 40 sentence prompts (the dev and test sentences of
spoken_search) joined by 1 s of silence, round after round until the file lasts
`--minutes`, 16 kHz mono WAV (cached under benchmarks/.cache/long_files/). Reference: each
sentence's text as plain faster-whisper hears it alone (spoken_search's references, cached).
avindex: default settings, every stage an audio file gets, a fresh library per file;
plain: the same Whisper base int8 weights, beam 5, its defaults, model load included.
Both sides in their own process per file, alternating, so a busy moment weighs on both.
--compare-env NAME=VALUE adds a third side: avindex with that environment (a switch the
code keeps to measure a change again), in the same rotation.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import speakers, spoken_search  # noqa: E402
from benchmarks.markdown import table  # noqa: E402
from benchmarks.per_file_cli import PLAIN, timed  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "long_files"
SENTENCES = 2 * spoken_search.PER_FILE


def long_file(voice: str, minutes: float) -> tuple[Path, str]:
    """The voice's long file (cached) and its reference text."""
    picked = spoken_search.voice_sentences(voice, SENTENCES)
    lang = spoken_search.VOICES[voice][1]
    refs = [" ".join(s["text"] for s in spoken_search.plain(x, lang)) for _, x in picked]
    gap = np.zeros(int(spoken_search.GAP_S * spoken_search.SR), np.float32)
    parts, words, total = [], [], 0
    want = minutes * 60 * spoken_search.SR
    while total < want:
        for (_, x), ref in zip(picked, refs):
            parts += [x, gap]
            words.append(ref)
            total += len(x) + len(gap)
            if total >= want:
                break
    path = CACHE / f"{voice}-{minutes:g}min.wav"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        speakers._write_wav(path, np.concatenate(parts))
    return path, " ".join(words)


def run_avindex(path: Path, env: dict | None = None) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib.db"
        wall, cpu = timed([sys.executable, "-m", "app", "index", str(path), "--library",
                           str(lib), "-q"], timeout=7200, env=env)
        lines = spoken_search.read_transcripts(lib)[path.name]
    return wall, cpu, " ".join(s["text"] for s in lines)


def run_plain(path: Path) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "plain.json"
        wall, cpu = timed([sys.executable, "-c", PLAIN, str(path), str(out)], timeout=7200)
        text = " ".join(json.loads(out.read_text(encoding="utf-8")))
    return wall, cpu, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--voices", nargs="+", default=list(spoken_search.VOICES),
                    choices=list(spoken_search.VOICES))
    ap.add_argument("--compare-env", metavar="NAME=VALUE", nargs="+",
                    help="a third side: avindex with these variables set")
    args = ap.parse_args()
    files = [(v, *long_file(v, args.minutes)) for v in args.voices]
    warm = CACHE / "warm-up.wav"                   # models converted and cached, untimed
    if not warm.exists():
        speakers._write_wav(warm, spoken_search._read_wav(files[0][1])[:10 * spoken_search.SR])
    run_avindex(warm)
    sides = [("avindex", run_avindex), ("plain", run_plain)]
    if args.compare_env:
        env = dict(kv.split("=", 1) for kv in args.compare_env)
        sides.insert(1, (" ".join(args.compare_env), lambda p: run_avindex(p, env)))
    names = [n for n, _ in sides]
    totals = {n: [0.0, 0.0] for n in names}
    rows, refs, hyps = [], [], {n: [] for n in names}
    audio = 0.0
    for k, (voice, path, ref) in enumerate(files):
        seconds = spoken_search._read_wav(path).size / spoken_search.SR
        audio += seconds
        got = {}
        for name, fn in (sides if k % 2 == 0 else sides[::-1]):
            got[name] = fn(path)
            totals[name][0] += got[name][0]
            totals[name][1] += got[name][1]
            hyps[name].append(got[name][2])
        refs.append(ref)
        rows.append([voice, f"{seconds:.0f}", " / ".join(f"{got[n][0]:.1f}" for n in names),
                     " / ".join(f"{got['plain'][0] / got[n][0]:.2f}x" for n in names if n != "plain"),
                     *(f"{spoken_search.wer([ref], [got[n][2]]):.3f}" for n in names)])
        print(" | ".join(rows[-1]), flush=True)
    print(f"\n{len(files)} files, {audio:.0f} s of audio, one process per file")
    others = [n for n in names if n != "plain"]
    print(table(rows, ["voice", "audio s", f"wall s {' / '.join(names)}",
                       f"plain / {' / '.join(others)}", *(f"WER {n}" for n in names)]))
    p = totals["plain"]
    for n in names:
        t = totals[n]
        print(f"{n}: {t[0]:.1f} s wall (RTF {t[0] / audio:.3f}), {t[1]:.1f} CPU s; "
              f"plain / this {p[0] / t[0]:.2f}x wall, {p[1] / t[1]:.2f}x CPU; "
              f"WER {spoken_search.wer(refs, hyps[n]):.3f}")


if __name__ == "__main__":
    main()
