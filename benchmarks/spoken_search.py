"""Real recorded speech, long files: is any sentence lost, and is each one found at its moment?

    .venv/bin/python -m benchmarks.spoken_search                 # dev and test
    .venv/bin/python -m benchmarks.spoken_search --split dev     # tune on this one only
    .venv/bin/python -m benchmarks.spoken_search --rebuild       # index avindex's library afresh
    .venv/bin/python -m benchmarks.spoken_search --name head     # another library (e.g. run
                                                                 # from a worktree of HEAD)
    .venv/bin/python -m benchmarks.spoken_search --offsets es-allison:dev:3 --json out.json

Speech: Debian's Asterisk prompts (benchmarks/speakers.py fetches and unpacks them),
professional voices recorded in a studio, telephone band: en (Allison), es (Allison in
Mexican Spanish; the Colombian voice), fr (June, Canadian; Armelle), it (Carlo; Paola
Menardi), ru. Five languages, eight voices; no other language is packaged this way.
Per voice, prompts that are sentences (no digits, letters, tones or silences; 1.5-12 s
once trimmed to their speech) are taken in the order of a hash of their name: the first
20 go to the dev file, the next 20 to the test file. Each file is its 20 sentences joined
by 1.0 s of digital silence, 16 kHz mono, as the issue's held-out set was made.

References (cached: they do not change with avindex's code), the same Whisper base int8
weights avindex uses (models.weights), plain faster-whisper at beam 5 with its defaults:
- each sentence alone, in the voice's language (short prompts alone are sometimes
  detected as another language): the reference text of that sentence;
- each whole joined file, language detected: the baseline ("plain") avindex must not be
  worse than.

avindex: the files are indexed by `python -m app index` into a fresh library (the real
pipeline, every stage), then its transcript lines are read back and the real search
service answers the queries (hybrid with the CLI's models, and full text alone).

Measures, per language and split:
- WER of avindex's transcript and of the plain whole-file run, each against the joined
  per-sentence references (lower case, punctuation removed, jiwer over all the files).
- Dropped: a sentence whose reference has >= 2 content words and of whose words < 30 %
  appear in the transcript between the midpoints of the gaps around it. Listed with
  their times; "dropped by avindex, kept by plain" is the figure that must be 0.
- One-token lines: transcript lines of a single word.
- Spoken search: per sentence with >= 2 content words, its 2-3 rarest content words (by
  document frequency over all the benchmark's references; stopwords, numbers and words
  under 3 letters skipped), in sentence order. P@1: the first hit is in the right file
  and its `start` is within +-2 s of the sentence's start; P@5: one of the first five is;
  file P@1: the first hit is in the right file, whenever.
- Unrelated: 10 queries about nothing said here; how many return any hit.

--offsets VOICE:SPLIT:I places sentence I of that file at many offsets of a long file of
the same voice's other sentences (1 s gaps), indexes each variant with the speech stage's
engine and says where the sentence was lost.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import unicodedata
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import speakers  # noqa: E402
from benchmarks.checkouts import code_stamp  # noqa: E402
from benchmarks.markdown import table  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "spoken"
MODELS = ROOT / "benchmarks" / ".cache" / "models"
SR = 16000
GAP_S = 1.0
PER_FILE = 20
MIN_S, MAX_S = 1.5, 12.0
TOLERANCE_S = 2.0
DROPPED_BELOW = 0.3
BUILD_VERSION = 1
VOICES = {   # voice -> (Debian package in benchmarks/speakers.DEBS, language)
    "en-allison": ("asterisk-core-sounds-en-wav", "en"),
    "es-allison": ("asterisk-core-sounds-es-wav", "es"),
    "es-co": ("asterisk-prompt-es-co", "es"),
    "fr-june": ("asterisk-core-sounds-fr-wav", "fr"),
    "fr-armelle": ("asterisk-prompt-fr-armelle", "fr"),
    "it-carlo": ("asterisk-core-sounds-it-wav", "it"),
    "it-paola": ("asterisk-prompt-it-menardi-wav", "it"),
    "ru": ("asterisk-core-sounds-ru-wav", "ru"),
}
NOT_SENTENCE = re.compile(r"(^|/)(digits|letters|phonetic|silence|ha|dictate/both_help)"
                          r"(/|$)|^\d|[-_]\d+$", re.I)
UNRELATED = ["quantum chromodynamics lattice", "sourdough starter hydration",
             "tectonic plate subduction", "violin rosin bow hair", "photosynthesis chlorophyll",
             "marathon taper carbohydrate", "medieval cathedral gargoyle",
             "kubernetes pod autoscaler", "penguin colony antarctic", "espresso crema grinder"]


# ------------------------------------------------------------------------- data ---
def _hash(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest(), 16)


def _candidates(voice: str) -> list[tuple[str, Path]]:
    pkg = VOICES[voice][0]
    _, folder, ext = speakers.DEBS[pkg]
    base = speakers.SRC / pkg / folder
    out = []
    for f in base.rglob(f"*.{ext}"):
        rel = f.relative_to(base).as_posix()
        stem = rel.rsplit(".", 1)[0]
        if speakers.NOT_SPEECH.search(rel) or NOT_SENTENCE.search(stem):
            continue
        out.append((rel, f))
    return sorted(out, key=lambda rf: _hash(f"{voice}:{rf[0]}"))


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


def _join(parts: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    gap = np.zeros(int(GAP_S * SR), np.float32)
    audio, spans, t = [], [], 0
    for i, x in enumerate(parts):
        if i:
            audio.append(gap)
            t += len(gap)
        spans.append((t / SR, (t + len(x)) / SR))
        audio.append(x)
        t += len(x)
    return np.concatenate(audio), spans


def voice_sentences(voice: str, limit: int | None = None) -> list[tuple[str, np.ndarray]]:
    """The voice's sentence prompts, trimmed to their speech and MIN_S-MAX_S long, in the
    fixed order of _candidates: (name, audio), at most `limit`."""
    from models.audio_stream import decode_audio
    speakers.fetch()
    picked: list[tuple[str, np.ndarray]] = []
    for rel, f in _candidates(voice):
        try:
            x = speakers._trim(decode_audio(f))
        except Exception:       # a few GSM prompts do not decode
            continue
        if MIN_S <= len(x) / SR <= MAX_S:
            picked.append((rel, x))
        if limit is not None and len(picked) == limit:
            break
    return picked


def make_files() -> list[dict]:
    """The joined files (one per voice and split) with each sentence's key and span."""
    (CACHE / "audio").mkdir(parents=True, exist_ok=True)
    files = []
    for voice, (_, lang) in VOICES.items():
        picked = voice_sentences(voice, 2 * PER_FILE)
        for k, split in enumerate(("dev", "test")):
            part = picked[k * PER_FILE:(k + 1) * PER_FILE]
            if not part:
                continue
            audio, spans = _join([x for _, x in part])
            wav = CACHE / "audio" / f"{split}-{voice}.wav"
            speakers._write_wav(wav, audio)   # 16 kHz mono, as SR here
            files.append({"file": wav.name, "voice": voice, "language": lang, "split": split,
                          "sentences": [{"key": rel, "start": s, "end": e}
                                        for (rel, _), (s, e) in zip(part, spans)]})
    return files


# ---------------------------------------------------------------- plain whisper ---
_PLAIN = None


def _plain_model():
    global _PLAIN
    if _PLAIN is None:
        from faster_whisper import WhisperModel

        from models.weights import resolve_model
        folder = resolve_model("base", MODELS).path
        _PLAIN = WhisperModel(str(folder), device="cpu", compute_type="int8",
                              cpu_threads=2, local_files_only=True)
    return _PLAIN


def plain(audio: np.ndarray, language: str | None) -> list[dict]:
    """Plain faster-whisper, beam 5, its own defaults; cached by audio and language."""
    key = hashlib.sha1(audio.tobytes() + str(language).encode()).hexdigest()
    cache = CACHE / "plain" / f"{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text(encoding="utf-8"))
    segs, _ = _plain_model().transcribe(audio, beam_size=5, language=language)
    out = [{"start": s.start, "end": s.end, "text": s.text.strip()} for s in segs]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    return out


def references(files: list[dict]) -> None:
    """Each sentence's reference text and each file's plain whole-file transcript."""
    for f in files:
        audio = _read_wav(CACHE / "audio" / f["file"])
        for s in f["sentences"]:
            x = audio[int(round(s["start"] * SR)): int(round(s["end"] * SR))]
            s["reference"] = " ".join(seg["text"] for seg in plain(x, f["language"]))
        f["plain"] = plain(audio, None)


# --------------------------------------------------------------------- avindex ---
def index(files: list[dict], lib: Path) -> dict[str, list[dict]]:
    """Index the files with `avindex index` into a fresh library; transcript lines by file."""
    from indexer.store import Store
    for p in (lib, Path(f"{lib}-wal"), Path(f"{lib}-shm")):
        p.unlink(missing_ok=True)
    paths = [str(CACHE / "audio" / f["file"]) for f in files]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "app", "index", "--library", str(lib), "--json",
                    "-q", *paths], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    print(f"  indexed {len(paths)} files in {time.perf_counter() - t0:.0f} s", flush=True)
    return read_transcripts(lib)


def read_transcripts(lib: Path) -> dict[str, list[dict]]:
    from indexer.store import Store
    store = Store(lib)
    try:
        out = {}
        for m in store.all_media():
            out[Path(m["path"]).name] = [
                {"start": s["start"], "end": s["end"], "text": s["text"],
                 "words": [{"start": w["start"], "end": w["end"], "word": w["word"]}
                           for w in s.get("words") or []]}
                for s in store.transcript(m["id"], "speech")]
        return out
    finally:
        store.close()


# -------------------------------------------------------------------- measures ---
def tokens(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower().replace("ё", "е")
    return re.findall(r"\w+", text)


def content_words(text: str) -> list[str]:
    from indexer.search.query_text import STOPWORDS
    return [w for w in tokens(text) if len(w) >= 3 and w not in STOPWORDS and not w.isdigit()]


def timed_tokens(segments: list[dict]) -> list[tuple[float, str]]:
    """(time, token) of a transcript: each word at its middle, or a line's tokens spread
    evenly over it when it has no word timings."""
    out = []
    for s in segments:
        if s.get("words"):
            for w in s["words"]:
                out += [((w["start"] + w["end"]) / 2, t) for t in tokens(w["word"])]
        else:
            ts = tokens(s["text"])
            step = (s["end"] - s["start"]) / max(1, len(ts))
            out += [(s["start"] + (i + 0.5) * step, t) for i, t in enumerate(ts)]
    return out


def kept_share(reference: str, heard: list[str]) -> float:
    ref = collections.Counter(tokens(reference))
    if not ref:
        return 1.0
    got = collections.Counter(heard)
    return sum(min(n, got[w]) for w, n in ref.items()) / sum(ref.values())


def dropped(f: dict, segments: list[dict]) -> list[dict]:
    """The sentences of file `f` (>= 2 content words) of which < 30 % was transcribed."""
    tt = timed_tokens(segments)
    sents = f["sentences"]
    out = []
    for i, s in enumerate(sents):
        if len(content_words(s["reference"])) < 2:
            continue
        lo = (sents[i - 1]["end"] + s["start"]) / 2 if i else -1.0
        hi = (s["end"] + sents[i + 1]["start"]) / 2 if i + 1 < len(sents) else 1e9
        share = kept_share(s["reference"], [t for at, t in tt if lo <= at < hi])
        if share < DROPPED_BELOW:
            out.append({"file": f["file"], "sentence": i, "start": s["start"], "end": s["end"],
                        "reference": s["reference"], "kept": share})
    return out


def one_token_lines(segments: list[dict]) -> int:
    return sum(len(tokens(s["text"])) == 1 for s in segments)


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer
    pairs = [(" ".join(tokens(r)), " ".join(tokens(h))) for r, h in zip(refs, hyps)]
    pairs = [(r, h) for r, h in pairs if r]
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def make_queries(files: list[dict], every: list[dict]) -> list[dict]:
    """Queries for the sentences of `files`; document frequencies over `every` file (both
    splits), so a query does not depend on which split is run."""
    df = collections.Counter()
    for f in every:
        for s in f["sentences"]:
            df.update(set(content_words(s["reference"])))
    qs = []
    for f in files:
        for i, s in enumerate(f["sentences"]):
            words = list(dict.fromkeys(content_words(s["reference"])))
            if len(words) < 2:
                continue
            rare = sorted(range(len(words)), key=lambda j: (df[words[j]], j))[:3]
            qs.append({"text": " ".join(words[j] for j in sorted(rare)), "file": f["file"],
                       "sentence": i, "start": s["start"]})
    return qs


def search_scores(lib: Path, files: list[dict], qs: list[dict]) -> dict:
    from app.search_requests import search_models
    from indexer.search import search
    from indexer.store import Store
    store = Store(lib)
    models = search_models(None)
    mid = {Path(m["path"]).name: m["id"] for m in store.all_media()}
    out: dict = {"queries": [], "unrelated": {}}
    try:
        for q in qs:
            row = dict(q, query=q["text"])     # "text" becomes the full-text results
            for mode in ("hybrid", "text"):
                hits = search(store, q["text"], mode=mode, models=models, limit=10)
                right = [h.media_id == mid[q["file"]] and abs(h.start - q["start"]) <= TOLERANCE_S
                         for h in hits]
                row[mode] = {"p1": bool(right[:1] and right[0]), "p5": any(right[:5]),
                             "file1": bool(hits) and hits[0].media_id == mid[q["file"]],
                             "top": [(Path(h.path).name, round(h.start, 2), h.snippet[:80])
                                     for h in hits[:3]]}
            out["queries"].append(row)
        for mode in ("hybrid", "text"):
            out["unrelated"][mode] = sum(bool(search(store, q, mode=mode, models=models, limit=10))
                                         for q in UNRELATED)
    finally:
        store.close()
    return out


def report(files: list[dict], transcripts: dict, scores: dict, splits: list[str]) -> dict:
    result: dict = {"splits": {}}
    for split in splits:
        fs = [f for f in files if f["split"] == split]
        rows, srows, lost = [], [], []
        for lang in sorted({f["language"] for f in fs}) + ["all"]:
            lf = [f for f in fs if lang in ("all", f["language"])]
            refs = [" ".join(s["reference"] for s in f["sentences"]) for f in lf]
            ours = [" ".join(s["text"] for s in transcripts[f["file"]]) for f in lf]
            theirs = [" ".join(s["text"] for s in f["plain"]) for f in lf]
            d_ours = [d for f in lf for d in dropped(f, transcripts[f["file"]])]
            d_plain = [d for f in lf for d in dropped(f, f["plain"])]
            plain_kept = {(d["file"], d["sentence"]) for d in d_plain}
            only_ours = [d for d in d_ours if (d["file"], d["sentence"]) not in plain_kept]
            if lang != "all":
                lost += only_ours
            n = sum(len(content_words(s["reference"])) >= 2 for f in lf for s in f["sentences"])
            rows.append([lang, len(lf), n, wer(refs, ours), wer(refs, theirs), len(only_ours),
                         len(d_ours), len(d_plain),
                         sum(one_token_lines(transcripts[f["file"]]) for f in lf),
                         sum(one_token_lines(f["plain"]) for f in lf)])
            qs = [q for q in scores["queries"] if q["file"] in {f["file"] for f in lf}]
            if qs:
                m = lambda mode, k: float(np.mean([q[mode][k] for q in qs]))
                srows.append([lang, len(qs), m("hybrid", "p1"), m("hybrid", "p5"),
                              m("hybrid", "file1"), m("text", "p1"), m("text", "p5"),
                              m("text", "file1")])
        print(f"\n### {split}: speech kept ({len(fs)} files, "
              f"{sum(f['sentences'][-1]['end'] for f in fs) / 60:.1f} min)\n")
        print(table(rows, ["language", "files", "sentences", "WER avindex", "WER plain",
                           "dropped (plain kept)", "dropped avindex", "dropped plain",
                           "1-token lines avindex", "1-token lines plain"]))
        for d in lost:
            print(f"  lost: {d['file']} {d['start']:.1f}-{d['end']:.1f} s "
                  f"({d['kept']:.0%} kept): {d['reference']}")
        print(f"\n### {split}: spoken search (P@1: right file and start within "
              f"+-{TOLERANCE_S:.0f} s)\n")
        print(table(srows, ["language", "queries", "hybrid P@1", "hybrid P@5", "hybrid file P@1",
                            "text P@1", "text P@5", "text file P@1"]))
        result["splits"][split] = {
            "speech": [dict(zip(["language", "files", "sentences", "wer_avindex", "wer_plain",
                                 "dropped_plain_kept", "dropped_avindex", "dropped_plain",
                                 "one_token_avindex", "one_token_plain"], r)) for r in rows],
            "lost": lost,
            "search": [dict(zip(["language", "queries", "hybrid_p1", "hybrid_p5",
                                 "hybrid_file_p1", "text_p1", "text_p5", "text_file_p1"], r))
                       for r in srows]}
    print(f"\nUnrelated queries with any hit (of {len(UNRELATED)}): "
          + ", ".join(f"{k} {v}" for k, v in scores["unrelated"].items()))
    result["unrelated"] = scores["unrelated"]
    result["queries"] = scores["queries"]
    return result


# --------------------------------------------------------------------- offsets ---
def offsets(spec: str, files: list[dict]) -> dict:
    """Sentence I of VOICE:SPLIT placed at each slot of a long file of the voice's other
    sentences (every slot from first to last, so it crosses the 120 s window edge), each
    variant transcribed by avindex's engine: where is it lost?"""
    from models.asr import load_engine
    voice, split, i = spec.split(":")
    f = next(f for f in files if f["voice"] == voice and f["split"] == split)
    audio = _read_wav(CACHE / "audio" / f["file"])
    cut = lambda s: audio[int(round(s["start"] * SR)): int(round(s["end"] * SR))]
    target = f["sentences"][int(i)]
    others = [s for j, s in enumerate(f["sentences"]) if j != int(i)]
    other_f = next((g for g in files if g["voice"] == voice and g["split"] != split), None)
    if other_f is not None:       # longer than one window: the voice's other file too
        oa = _read_wav(CACHE / "audio" / other_f["file"])
        others += [dict(s, audio=oa) for s in other_f["sentences"]]
    parts = [s["audio"][int(round(s["start"] * SR)): int(round(s["end"] * SR))]
             if "audio" in s else cut(s) for s in others]
    engine = load_engine("faster-whisper", "base", models_dir=MODELS)
    rows, out = [], []
    for slot in range(0, len(parts) + 1):
        joined, spans = _join(parts[:slot] + [cut(target)] + parts[slot:])
        _, segs = engine.transcribe(joined, beam_size=5)
        segs = [{"start": s.start, "end": s.end, "text": s.text,
                 "words": [{"start": w.start, "end": w.end, "word": w.word} for w in s.words]}
                for s in segs]
        fake = {"file": spec, "sentences": [
            {"start": a, "end": b, "reference": (target if j == slot else
                                                 {"reference": ""})["reference"]}
            for j, (a, b) in enumerate(spans)]}
        gone = [d for d in dropped(fake, segs) if d["sentence"] == slot]
        a, b = spans[slot]
        heard = " ".join(s["text"] for s in segs if s["end"] > a - 0.5 and s["start"] < b + 0.5)
        rows.append([slot, f"{a:.1f}-{b:.1f}", "LOST" if gone else "kept", heard[:70]])
        out.append({"slot": slot, "start": a, "end": b, "lost": bool(gone), "heard": heard,
                    "duration": len(joined) / SR})
        print(f"  slot {slot:2d} at {a:6.1f}-{b:6.1f} s of {len(joined) / SR:.0f} s: "
              f"{'LOST' if gone else 'kept'}  {heard[:70]}", flush=True)
    print(f"\nReference: {target['reference']}\n")
    print(table(rows, ["slot", "span (s)", "", "avindex heard"]))
    return {"sentence": target, "slots": out}


# ------------------------------------------------------------------------ main ---
def load(rebuild_audio: bool = False) -> list[dict]:
    meta = CACHE / "files.json"
    if not rebuild_audio and meta.is_file():
        data = json.loads(meta.read_text(encoding="utf-8"))
        if data.get("version") == BUILD_VERSION:
            return data["files"]
    print("Building the joined files (Asterisk prompts) and plain-Whisper references ...",
          flush=True)
    files = make_files()
    references(files)
    meta.write_text(json.dumps({"version": BUILD_VERSION, "files": files}, ensure_ascii=False,
                               indent=1), encoding="utf-8")
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "test", "both"), default="both")
    ap.add_argument("--rebuild", action="store_true",
                    help="index avindex's library afresh (the plain references stay cached)")
    ap.add_argument("--offsets", metavar="VOICE:SPLIT:I",
                    help="place one sentence at every slot of a long file instead")
    ap.add_argument("--name", default="avindex",
                    help="the library's name in the cache (one per code version compared)")
    ap.add_argument("--json", metavar="PATH")
    a = ap.parse_args(argv)
    every = load()
    if a.offsets:
        result = offsets(a.offsets, every)
    else:
        splits = ["dev", "test"] if a.split == "both" else [a.split]
        files = [f for f in every if f["split"] in splits]
        lib = CACHE / f"{a.name}-{a.split}.db"
        stamp, made_by = code_stamp(), Path(f"{lib}.code")
        if a.rebuild or not lib.exists():
            print(f"Indexing {len(files)} files with `avindex index` ...", flush=True)
            transcripts = index(files, lib)
            made_by.write_text(stamp, encoding="utf-8")
        else:
            transcripts = read_transcripts(lib)
            if not made_by.is_file() or made_by.read_text(encoding="utf-8") != stamp:
                print(f"WARNING: {lib.name} was indexed by other code than this (indexing "
                      f"code {stamp}); its figures may be stale: --rebuild", flush=True)
        scores = search_scores(lib, files, make_queries(files, every))
        result = report(files, transcripts, scores, splits)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip()
        result["commit"] = head
    if a.json:
        Path(a.json).write_text(json.dumps(result, ensure_ascii=False, indent=1),
                                encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
