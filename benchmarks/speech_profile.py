"""Where the speech engine's time goes: the faster-whisper engine as avindex runs it
(`models.asr`, Whisper base int8, beam 5, batch 8) on real recorded speech, with every
CTranslate2 call (encode, language detection, beam search, word alignment), the VAD and
the log-mel features timed.

    .venv/bin/python -m benchmarks.speech_profile            # spoken dev's fr-june, it-carlo, es-co joined
    .venv/bin/python -m benchmarks.speech_profile --voices dev-ru dev-en-allison
    .venv/bin/python -m benchmarks.speech_profile --write /tmp/joined.wav   # also keeps the audio
    /usr/bin/time -v .venv/bin/avindex --library /tmp/joined.db index /tmp/joined.wav   # every stage
    .venv/bin/python -m benchmarks.speech_profile --fill 120 240 360 --voices dev-fr-june \
        dev-it-carlo dev-es-co dev-ru dev-en-allison dev-es-allison dev-fr-armelle dev-it-paola
    .venv/bin/python -m benchmarks.speech_profile --chunk-limits 30 25 20 --split dev   # WER and time

The speech is benchmarks.spoken_search's (built by `benchmarks.spoken_search` first, into
benchmarks/.cache/spoken/audio/), its files joined one after the other. The model is
loaded and warmed on the first 20 s before the clock starts. Wall shares of the parts are
of the whole transcription; the CTranslate2 calls run on the engine's two workers, so
their wall is the calls' own (both cores busy), and the rest (the log-mel features, the
VAD, Python) runs on one core.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.markdown import table  # noqa: E402

DEFAULT_VOICES = ["dev-fr-june", "dev-it-carlo", "dev-es-co"]


def _timed(owner, name: str, totals: dict, rows_arg: bool = False) -> None:
    """Wrap owner.name so each call adds its wall seconds (and, with rows_arg, the rows
    of its first argument) to totals[name]."""
    fn = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        entry = totals.setdefault(name, [0.0, 0, 0])
        entry[0] += time.perf_counter() - t
        entry[1] += 1
        if rows_arg:
            x = args[1]   # a batch: features, or models.asr._Encoded
            entry[2] += len(x) if hasattr(x, "parts") else int(np.asarray(x).shape[0])
        return out
    setattr(owner, name, wrapper)


def _write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    import wave
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes())


def profile(voices: list[str], write: Path | None = None) -> dict:
    import faster_whisper.feature_extractor as fe

    from benchmarks.speech import models_dir
    from benchmarks.spoken_search import CACHE, _read_wav
    from models import asr, silero_vad
    from models.asr import load_engine
    audio = np.concatenate([_read_wav(CACHE / "audio" / f"{v}.wav") for v in voices])
    if write is not None:
        _write_wav(write, audio, asr.SAMPLE_RATE)
    engine = load_engine("faster-whisper", "base", models_dir=models_dir())
    totals: dict = {}
    for name in ("encode", "detect_language", "generate", "align"):
        _timed(asr._ChunkWorkers, name, totals, rows_arg=True)
    _timed(fe.FeatureExtractor, "__call__", totals)
    _timed(silero_vad, "speech_timestamps", totals)
    info, segs = engine.transcribe(audio[:20 * asr.SAMPLE_RATE])
    list(segs)                                    # warm: model loaded, first passes run
    totals.clear()
    t0, c0 = time.perf_counter(), time.process_time()
    info, segs = engine.transcribe(audio)
    lines = list(segs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"audio_s": len(audio) / asr.SAMPLE_RATE, "wall_s": wall, "cpu_s": cpu,
            "lines": len(lines), "parts": totals}


def chunk_fill(voices: list[str], windows_s: list[float]) -> None:
    """How full the 30 s decoding chunks are (VAD runs packed whole, as the engine packs
    them) with windows of each length: chunks and their share of speech."""
    from faster_whisper.vad import VadOptions

    from benchmarks.spoken_search import CACHE, _read_wav
    from models import asr, audio_stream
    from models.silero_vad import speech_timestamps
    audio = np.concatenate([_read_wav(CACHE / "audio" / f"{v}.wav") for v in voices])
    print(f"{len(audio) / asr.SAMPLE_RATE:.1f} s of speech")
    rows = []
    for win in windows_s:
        chunks, speech = 0, 0.0
        for _offset, w in audio_stream.windows([audio], win):
            runs = speech_timestamps(w, VadOptions(**asr._BATCH_VAD))
            chunks += len(asr._pack(runs, asr._BATCH_CHUNK_S * asr.SAMPLE_RATE))
            speech += sum(r["end"] - r["start"] for r in runs) / asr.SAMPLE_RATE
        rows.append([f"{win:g}", chunks, f"{speech:.1f}", f"{speech / (asr._BATCH_CHUNK_S * chunks):.0%}"])
    print(table(rows, ["window s", "chunks", "speech in them s", "fill"]))


def chunk_limits(split: str, limits: list[float]) -> None:
    """The engine in-process on spoken_search's files of a split with decoding chunks of at
    most each limit (the VAD's longest run too): wall, CPU and WER per language against the
    sentences' references."""
    from benchmarks.speech import models_dir
    from benchmarks.spoken_search import CACHE, _read_wav, load, references, wer
    from models import asr
    files = [f for f in load() if f["split"] == split]
    references(files)
    engine = asr.load_engine("faster-whisper", "base", models_dir=models_dir())
    audio = {f["file"]: _read_wav(CACHE / "audio" / f["file"]) for f in files}
    list(engine.transcribe(audio[files[0]["file"]][:20 * asr.SAMPLE_RATE])[1])   # warm
    langs = sorted({f["language"] for f in files}) + ["all"]
    rows = []
    shipped = asr._BATCH_CHUNK_S, asr._BATCH_VAD
    try:
        for limit in limits:
            asr._BATCH_CHUNK_S = limit
            asr._BATCH_VAD = dict(asr.VAD_OPTIONS, max_speech_duration_s=float(limit))
            t0, c0 = time.perf_counter(), time.process_time()
            heard = {name: " ".join(s.text for s in engine.transcribe(x)[1]) for name, x in audio.items()}
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            wers = []
            for lang in langs:
                lf = [f for f in files if lang in ("all", f["language"])]
                wers.append(wer([" ".join(s["reference"] for s in f["sentences"]) for f in lf],
                                [heard[f["file"]] for f in lf]))
            rows.append([f"{limit:g}", f"{wall:.1f}", f"{cpu:.1f}", *wers])
            print(f"chunks of at most {limit:g} s: wall {wall:.1f} s", flush=True)
    finally:
        asr._BATCH_CHUNK_S, asr._BATCH_VAD = shipped
    print(table(rows, ["chunk limit s", "wall s", "CPU s", *(f"WER {x}" for x in langs)]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--voices", nargs="+", default=DEFAULT_VOICES,
                    help="spoken_search audio files (without .wav), joined in this order")
    ap.add_argument("--write", type=Path, metavar="WAV",
                    help="also write the joined speech there (16 kHz mono), to index it")
    ap.add_argument("--fill", nargs="+", type=float, metavar="WINDOW_S",
                    help="only how full the decoding chunks are with windows this long")
    ap.add_argument("--chunk-limits", nargs="+", type=float, metavar="S",
                    help="only WER and time on spoken_search's --split with chunks of at most S s")
    ap.add_argument("--split", default="dev", choices=("dev", "test"))
    args = ap.parse_args(argv)
    if args.chunk_limits:
        chunk_limits(args.split, args.chunk_limits)
        return 0
    if args.fill:
        chunk_fill(args.voices, args.fill)
        return 0
    r = profile(args.voices, args.write)
    print(f"{r['audio_s']:.1f} s of speech, {r['lines']} lines: wall {r['wall_s']:.1f} s "
          f"(RTF {r['wall_s'] / r['audio_s']:.3f}), CPU {r['cpu_s']:.1f} s")
    names = {"__call__": "log-mel features", "speech_timestamps": "VAD (silero)",
             "generate": "beam search (generate)", "encode": "encoder",
             "align": "word alignment", "detect_language": "language detection"}
    print(table([[names.get(name, name), f"{secs:.2f}", f"{secs / r['wall_s']:.0%}", calls, rows or ""]
                 for name, (secs, calls, rows) in sorted(r["parts"].items(), key=lambda kv: -kv[1][0])],
                ["part", "wall s", "share of wall", "calls", "chunks"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
