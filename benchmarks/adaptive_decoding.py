"""Adaptive decoding: greedy first, the full beam only for unsure chunks (issue 20).

    .venv/bin/python -m benchmarks.adaptive_decoding --split dev --grid   # tune (dev only)
    .venv/bin/python -m benchmarks.adaptive_decoding --split dev --grid=-0.1,-0.2
    .venv/bin/python -m benchmarks.adaptive_decoding --split test         # the kept setting
    .venv/bin/python -m benchmarks.adaptive_decoding --split test --rounds 2

Real recorded speech: benchmarks/spoken_search.py's files (Debian's Asterisk prompts, 8
voices, 5 languages, 20 sentences per file joined by 1 s gaps; dev and test split by
sentence), with its references (plain faster-whisper, beam 5, on each sentence alone;
cached) and its measures (WER per language, sentences dropped that plain keeps).

Variants, all in this one process, the same Whisper base int8 weights, one after the
other file by file (so load drifts hit every variant alike), `--rounds` times:
  plain        faster-whisper's WhisperModel.transcribe, beam 5, its defaults (what Buzz
               and most desktop transcribers run), language detected
  beam5        avindex's engine (models.asr, batch 8) at beam 5 for every chunk
  adaptive:T   avindex's engine, every chunk greedy first, chunks with a segment under
               mean token log-probability T (or repeating itself) again at beam 5
Speed: the process's CPU seconds per file (both cores' work; less sensitive than wall time
to other processes on the machine) and wall seconds, summed per variant (best round).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import spoken_search as ss  # noqa: E402
from benchmarks.markdown import table  # noqa: E402

GRID = [-0.3, -0.4, -0.5, -0.6, -0.8]


def _engine():
    from models import asr
    return asr.load_engine(model="base", models_dir=ss.MODELS)


def _run(variant: str, engine, audio, path: Path) -> list[dict]:
    from models import asr
    if variant == "plain":
        segs, _ = ss._plain_model().transcribe(audio, beam_size=5)
        return [{"start": s.start, "end": s.end, "text": s.text.strip()} for s in segs]
    if variant == "beam5":
        engine.first_beam = None
    else:
        engine.first_beam = 1
        asr.UNSURE_LOGPROB = float(variant.split(":")[1])
    _, segs = engine.transcribe(str(path), beam_size=5)
    return [{"start": s.start, "end": s.end, "text": s.text,
             "words": [{"start": w.start, "end": w.end, "word": w.word} for w in s.words]}
            for s in segs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=["dev", "test"], required=True)
    ap.add_argument("--grid", nargs="?", const=",".join(map(str, GRID)), default=None,
                    help="thresholds to try, comma-separated (default: GRID)")
    ap.add_argument("--threshold", type=float, default=None,
                    help="the adaptive variant's threshold (default: models.asr's)")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    from models import asr
    files = ss.make_files()
    ss.references(files)
    files = [f for f in files if f["split"] == args.split]
    t = args.threshold if args.threshold is not None else asr.UNSURE_LOGPROB
    variants = ["plain", "beam5"] + [f"adaptive:{float(g):g}" for g in (args.grid.split(",") if args.grid else [t])]
    engine = _engine()
    cpu = {v: [0.0] * args.rounds for v in variants}
    wall = {v: [0.0] * args.rounds for v in variants}
    out: dict[str, dict[str, list[dict]]] = {v: {} for v in variants}
    audio_s = 0.0
    for r in range(args.rounds):
        for f in files:
            path = ss.CACHE / "audio" / f["file"]
            audio = ss._read_wav(path)
            if r == 0:
                audio_s += len(audio) / ss.SR
            for v in variants:
                c, w = time.process_time(), time.perf_counter()
                out[v][f["file"]] = _run(v, engine, audio, path)
                cpu[v][r] += time.process_time() - c
                wall[v][r] += time.perf_counter() - w
            print(f"  round {r + 1}: {f['file']}", flush=True)
    langs = sorted({f["language"] for f in files})
    rows = []
    for v in variants:
        refs = {lang: [" ".join(s["reference"] for s in f["sentences"])
                       for f in files if f["language"] == lang] for lang in langs}
        per = [ss.wer(refs[lang], [" ".join(s["text"] for s in out[v][f["file"]])
                                   for f in files if f["language"] == lang]) for lang in langs]
        all_w = ss.wer([x for lang in langs for x in refs[lang]],
                       [" ".join(s["text"] for s in out[v][f["file"]])
                        for lang in langs for f in files if f["language"] == lang])
        plain_lost = {(d["file"], d["sentence"]) for f in files
                      for d in ss.dropped(f, out["plain"][f["file"]])}
        lost = [d for f in files for d in ss.dropped(f, out[v][f["file"]])
                if (d["file"], d["sentence"]) not in plain_lost]
        rows.append([v, min(cpu[v]), min(wall[v]), min(wall[v]) / audio_s,
                     min(cpu["plain"]) / min(cpu[v]), min(wall["plain"]) / min(wall[v]),
                     all_w, *per, len(lost)])
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    print(f"\n{args.split}: {len(files)} files, {audio_s / 60:.1f} min of real speech, "
          f"{args.rounds} round(s), load average at the end {load}\n")
    print(table(rows, ["variant", "CPU s", "wall s", "RTF", "CPU vs plain", "wall vs plain",
                       "WER", *[f"WER {lang}" for lang in langs], "dropped (plain kept)"]))


if __name__ == "__main__":
    main()
