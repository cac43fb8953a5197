"""Speech recognition behind one small interface, with two real engines.

    engine = load_engine("faster-whisper", "base", models_dir=...)
    info, segments = engine.transcribe("talk.mp4")
    for seg in segments:                  # lazy: decoding happens while iterating
        report(seg.end / info.duration)   # progress; stop iterating to cancel

(faster-whisper with a multilingual model and no fixed language decodes the first 30 s
chunk inside transcribe(), where the language is detected from it.)

Both engines: word timestamps, silero VAD (bundled with faster-whisper, runs offline on
onnxruntime), and hallucination guards (no conditioning on previous text, so one bad
line cannot seed a loop; compression-ratio / no-speech / log-prob fallbacks;
hallucination_silence_threshold skips text invented over long silences).

Files are decoded and transcribed in windows (WINDOW_S seconds, cut at a quiet point) so
memory stays flat however long the file is; timestamps are offset back to file time.

Language, per segment and per file (unless the caller fixes one): the first window with
speech sets it, and from then on it is carried and only changes where the detector is sure
(> LANGUAGE_SWITCH_P) of a different one. faster-whisper checks every 30 s decoding chunk
(its `multilingual` mode, which reuses the chunk's encoder output: one decoder step, about
free, and the first detection no longer costs an encoder pass of its own); openai-whisper
checks every window (one extra encoder pass per window). Each Segment carries the language
it was decoded in; once the segments have been consumed, TranscriptInfo.language is the
language with the most speech in the file.
"""
from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Union, runtime_checkable

import numpy as np

from . import audio_stream
from .loading import LazyModel, lazy
from .weights import resolve_model

SAMPLE_RATE = audio_stream.SAMPLE_RATE
# Short windows keep the silero VAD's per-call memory low (measured: benchmarks/README.md,
# "VAD windows and silences").
WINDOW_S = 120.0
HALLUCINATION_SILENCE_S = 2.0
# A carried language gives way only to a detection this sure of another one: accented or
# noisy speech often scores 0.3-0.7 for a neighbouring language, and decoding it in that
# language turns it into a translation or into nonsense.
LANGUAGE_SWITCH_P = 0.8
# faster-whisper decodes this many VAD chunks at once, with no temperature fallback (see
# _batched_loop), shared on CPU by one single-threaded worker per core (_ChunkWorkers);
# batch_size 0 or 1 decodes chunk by chunk with temperature fallback. Multilingual models
# only: tiny.en (the fast mode) misheard more batched, so it goes chunk by chunk
# (measured: benchmarks/README.md, "Speech" and "Batch memory and CPU workers").
BATCH_SIZE = 8
# Beam search takes a batch in parts of at most this many chunks, the workers taking the
# next part as they finish: parts of 4 (8 chunks on 2 workers) set the hour file's peak in
# some windows, parts of 2 keep it under the encoder's (benchmarks/README.md, "Beam search
# in parts of two chunks")
BEAM_PART_CHUNKS = 2
# Batched on CPU, each beam-search part is encoded only as long as its longest chunk's
# speech and ENCODER_PAD_FRAMES of the padding (rounded up to ENCODER_STEP_FRAMES), not
# padded to Whisper's 30 s: the encoder's self-attention makes a 24 s input cost two thirds
# of a 30 s one. Some padding stays because the padding is how Whisper knows the speech has
# ended: cut right after it, the decoder said a sentence twice or said one heard elsewhere
# (benchmarks/README.md, "Encoder input cut to the speech"). AVINDEX_ENCODER_TRIM=0 pads to
# 30 s as before; AVINDEX_ENCODER_PAD and _MIN set the padding kept and the floor (frames),
# to measure them again.
ENCODER_TRIM = os.environ.get("AVINDEX_ENCODER_TRIM", "1") != "0"
ENCODER_STEP_FRAMES = 100    # 1 s of log-mel frames (even: the encoder's second conv strides 2)
ENCODER_PAD_FRAMES = int(os.environ.get("AVINDEX_ENCODER_PAD", "200"))   # 2 s
ENCODER_MIN_FRAMES = int(os.environ.get("AVINDEX_ENCODER_MIN", "1000"))  # 10 s
# Adaptive decoding (batched only): greedy first, the full beam again only for chunks with a
# segment under this mean token log-probability (benchmarks/README.md, "Adaptive decoding")
FIRST_BEAM: int | None = None
UNSURE_LOGPROB = -0.5
Audio = Union[str, os.PathLike, np.ndarray]


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass
class Segment:
    start: float
    end: float
    text: str
    language: str
    confidence: float  # exp(avg_logprob), clipped to [0, 1]
    words: list[Word] = field(default_factory=list)


@dataclass
class TranscriptInfo:
    # Detected in the first window; once every segment has been consumed, the language with
    # the most speech in the file (and the detector's probability for it).
    language: str
    language_probability: float
    duration: float  # seconds of the whole input (0.0 when a container does not say)


@runtime_checkable
class ASREngine(Protocol):
    name: str
    model_name: str
    device: str
    compute_type: str

    def transcribe(
        self, audio: Audio, *, language: str | None = None, beam_size: int = 5,
        start: float = 0.0, on_window: Callable[[float], None] | None = None,
    ) -> tuple[TranscriptInfo, Iterator[Segment]]: ...


def _confidence(avg_logprob: float) -> float:
    return min(1.0, max(0.0, math.exp(avg_logprob)))


def _hallucinated(words: list[Word], avg_logprob: float) -> bool:
    """Whisper's word-anomaly score (openai-whisper transcribe.py), applied to every
    segment the decoder itself was unsure of (avg_logprob < -1).

    hallucination_silence_threshold only checks segments next to a long silence, and
    after VAD has cut the silences out there are none left: the classic "I'll see you
    in the next one." then survives at the end of a speech run, with near-zero-length,
    low-probability words.
    """
    if avg_logprob >= -1.0 or not words:
        return False
    score = 0.0
    for w in words[:8]:
        d = w.end - w.start
        score += (w.probability < 0.15) + max(0.0, 0.133 - d) * 15 + max(0.0, d - 2.0)
    return score >= 3 or score + 0.01 >= len(words[:8])


class _WindowedEngine:
    """Shared driver: split input into windows, run `_run` on each, offset the results."""

    name = ""
    model_name = ""
    device = "cpu"
    compute_type = ""
    window_s = WINDOW_S

    def _run(
        self, audio: np.ndarray, language: str | None, beam_size: int, carried: str | None,
        seen: dict[str, float],
    ) -> tuple[str, float, Iterator[Segment]]:
        """Transcribe one window: (language, probability, segments in window time).

        `language` is the caller's fixed language (None: detect); `carried` the language of
        the last segment so far, kept unless another is detected with > LANGUAGE_SWITCH_P.
        Every detection that is used goes into `seen` (language -> best probability).
        """
        raise NotImplementedError

    def transcribe(
        self, audio: Audio, *, language: str | None = None, beam_size: int = 5,
        start: float = 0.0, on_window: Callable[[float], None] | None = None,
    ) -> tuple[TranscriptInfo, Iterator[Segment]]:
        """Segments in file time, window by window. `start`: transcribe from that second
        on (a job resuming after its last committed window); `on_window(end)`: called
        once every segment before `end` (a window's end) has been yielded, before the
        next window is decoded, so the caller can commit what it has."""
        if isinstance(audio, np.ndarray):
            audio = np.asarray(audio, dtype=np.float32).reshape(-1)
            duration = len(audio) / SAMPLE_RATE
            parts = audio_stream.windows([audio], self.window_s, start_s=start)
        else:
            duration = audio_stream.probe_duration(audio)
            parts = audio_stream.windows(audio_stream.decode_blocks(audio), self.window_s,
                                         start_s=start)

        first = next(parts, None)
        if first is None:  # no samples at all
            return TranscriptInfo(language or "", 0.0, duration), iter(())
        seen: dict[str, float] = {}
        lang, prob, segs = self._run(first[1], language, beam_size, None, seen)
        info = TranscriptInfo(lang, prob, duration)

        def generate() -> Iterator[Segment]:
            # The language is carried from the last segment, so a window without speech
            # (music, silence) neither sets nor changes it.
            carried = None
            spoken: dict[str, float] = {}  # seconds of speech per language
            window_segs, offset = segs, first[0]
            try:
                while True:
                    for seg in window_segs:
                        carried = seg.language
                        spoken[carried] = spoken.get(carried, 0.0) + seg.end - seg.start
                        yield _shift(seg, offset)
                    nxt = next(parts, None)
                    if nxt is None:
                        break
                    if on_window is not None:
                        on_window(nxt[0])      # the next window starts where this one ended
                    offset, samples = nxt
                    release_memory()
                    _, _, window_segs = self._run(samples, language, beam_size, carried, seen)
            finally:
                parts.close()  # closes the decoder (and its file) on early stop too
            if spoken:
                main = max(spoken, key=spoken.get)
                if main != info.language:
                    info.language, info.language_probability = main, seen.get(main, 0.0)

        return info, generate()


try:
    import ctypes

    _libc = ctypes.CDLL("libc.so.6")
    _libc.malloc_trim  # glibc only (not musl, macOS or Windows)
except (OSError, AttributeError):
    _libc = None


# glibc gives a thread that meets a busy arena one of its own (up to 8 per core); memory a
# CTranslate2 worker frees stays in its arena, where only that thread reuses it. Capping the
# worker at one arena lowered the generate spikes of a 20-minute file (peaks 591-596 MB
# against 610-647) but not clearly the worker's peak on the 60-minute file (618-630 against
# 624-646 MB; 577 and 604 against 608-614 once OpenCV left the worker's start; with MKL's
# pool off, below, 572 and 559 against 564-584), so it is off (0: glibc's default);
# AVINDEX_MALLOC_ARENAS=1 turns it on to measure again (benchmarks/README.md "Worker memory").
MALLOC_ARENAS = 0
_M_ARENA_MAX = -8     # glibc's mallopt parameter number

# CTranslate2 on Intel CPUs allocates through MKL (mkl_malloc), whose "fast memory manager"
# keeps the buffers each thread frees for that thread to reuse and gives none back: a trim
# cannot reach them, so each worker thread held on to its largest encode and beam-search
# buffers. Without that pool the buffers go to glibc and the trims between calls return
# them: the worker's peak on the 60-minute file fell from 600-616 to 564-584 MB, the same
# transcript and CPU time. MKL reads MKL_DISABLE_FAST_MM (any value) when ctranslate2 is
# loaded, so it is set here, on importing this module, before any engine imports
# ctranslate2; a process that spawns the worker passes it on. AVINDEX_MKL_POOL=1 keeps
# MKL's pool (to measure it again). Measured: benchmarks/README.md "Worker memory".
MKL_POOL = False
if os.environ.get("AVINDEX_MKL_POOL", "1" if MKL_POOL else "0") == "0":
    os.environ.setdefault("MKL_DISABLE_FAST_MM", "1")


def limit_malloc_arenas(arenas: int | None = None) -> int:
    """Cap glibc's malloc arenas for this process (call it at start, before the threads
    that allocate exist: a thread keeps the arena it has). Returns the cap set, 0 when
    none was (glibc's default kept, or not glibc)."""
    if arenas is None:
        arenas = int(os.environ.get("AVINDEX_MALLOC_ARENAS", MALLOC_ARENAS))
    if _libc is None or arenas <= 0 or not _libc.mallopt(_M_ARENA_MAX, arenas):
        return 0
    return arenas


def release_memory() -> None:
    """Hand freed heap back to the OS (between windows, and in the worker after each job).
    CTranslate2, onnxruntime and FFmpeg threads each allocate from their own glibc arena;
    without a trim, RSS crept up over a long file, and what one stage freed stayed in the
    worker under the next stage's peak. Measured: benchmarks/README.md "Batch memory and
    CPU workers", "Worker memory"."""
    if _libc is not None:
        _libc.malloc_trim(0)


def _shift(seg: Segment, offset: float) -> Segment:
    if offset:
        seg.start += offset
        seg.end += offset
        for w in seg.words:
            w.start += offset
            w.end += offset
    return seg


# Silences over 1 s are cut (faster-whisper's default, 2 s, lost a sentence at a window end)
# (measured: benchmarks/README.md, "VAD windows and silences").
VAD_OPTIONS = dict(min_silence_duration_ms=1000, speech_pad_ms=400)

# The batched pipeline decodes only the first 30 s of a VAD speech run (it warns and drops
# the rest), so runs are split at 30 s there.
_BATCH_CHUNK_S = 30
# A batched chunk whose text has fewer tokens than this per second of its speech ended
# early (normal speech is 2-5 tokens a second): its speech runs are decoded again one by
# one (see _batched_transcribe).
RESCUE_TOKENS_PER_S = 0.5
RESCUE_LOGPROB = -1.0          # a run decoded again is kept only above this (_batched_dropped)
RESCUE_SECONDS_PER_WORD = 2.0  # ... and with at least a word per this many seconds of it
# Speech (a VAD run) this long with no word inside it, where the run has words elsewhere,
# is decoded again on its own as well (_unheard)
RESCUE_GAP_S = 2.0
RESCUE_ROUNDS = 3              # a stretch decoded alone that stops early again: its rest, again
# Decoding a stretch again, the carried language gives way to a detection this sure of
# another one (LANGUAGE_SWITCH_P elsewhere): the carried language already lost it
RESCUE_SWITCH_P = 0.5
_BATCH_VAD = dict(VAD_OPTIONS, max_speech_duration_s=float(_BATCH_CHUNK_S))

_FW_OPTIONS = dict(
    word_timestamps=True,
    vad_filter=True,
    vad_parameters=VAD_OPTIONS,
    condition_on_previous_text=False,
    compression_ratio_threshold=2.4,
    log_prob_threshold=-1.0,
    no_speech_threshold=0.6,
    hallucination_silence_threshold=HALLUCINATION_SILENCE_S,
)


LINE_MAX_S = 12.0     # a transcript line cut from a batched chunk is at most this long
LINE_PAUSE_S = 0.8    # ... and ends at a sentence end or at a pause this long
LINE_JOIN_S = 2.0     # a one-word line joins its neighbour across a pause up to this long
_SENTENCE_END = (".", "?", "!", "。", "？", "！", "…")
_ABBREVIATIONS = frozenset("mr. mrs. ms. dr. prof. st. sr. jr. vs. etc. e.g. i.e. no. "
                           "sra. sr. dra. hr. fr. dr.-ing. bzw. z.b. mme. mlle.".split())


def _ends_sentence(word: str) -> bool:
    w = word.strip()
    if not w.endswith(_SENTENCE_END):
        return False
    low = w.lower()
    if w[:-1].isdigit():    # "5." is an item of a spoken list or an ordinal ("5. Mai")
        return False
    return low not in _ABBREVIATIONS and not (len(w) == 2 and w[0].isalpha())  # "J." initials


def split_lines(seg: Segment) -> list[Segment]:
    """A long segment cut into transcript lines at its words: after a sentence end, at a
    pause, and (for a line running past LINE_MAX_S) at the widest gap or comma; a word left
    alone joins a neighbouring line (_join_single_words). Texts are the words' own text, so
    languages written without spaces stay intact."""
    words = seg.words
    if len(words) < 2:
        return [seg]
    lines, cur = [], [words[0]]
    for prev, w in zip(words, words[1:]):
        if _ends_sentence(prev.word) or w.start - prev.end >= LINE_PAUSE_S:
            lines.append(cur)
            cur = []
        cur.append(w)
    lines.append(cur)
    out: list[list[Word]] = []
    for line in lines:
        out += _cut_long(line)
    out = _join_single_words(out)
    return [Segment(ws[0].start, ws[-1].end, "".join(w.word for w in ws).strip(), seg.language,
                    seg.confidence, ws) for ws in out]


def _join_single_words(lines: list[list[Word]]) -> list[list[Word]]:
    """A line of one word joins the next line (the last one, the line before) when the
    pause between them is at most LINE_JOIN_S and the joined line stays within LINE_MAX_S:
    a spoken list ("5. 7. 8.") was cut into lines of one token each, which a search
    then ranks on a single word."""
    def fits(a: list[Word], b: list[Word]) -> bool:
        return b[0].start - a[-1].end <= LINE_JOIN_S and b[-1].end - a[0].start <= LINE_MAX_S

    out: list[list[Word]] = []
    for line in lines:
        if out and len(out[-1]) == 1 and fits(out[-1], line):
            out[-1] = out[-1] + line
        else:
            out.append(line)
    if len(out) > 1 and len(out[-1]) == 1 and fits(out[-2], out[-1]):
        out[-2:] = [out[-2] + out[-1]]
    return out


def _cut_long(ws: list[Word]) -> list[list[Word]]:
    if ws[-1].end - ws[0].start <= LINE_MAX_S or len(ws) < 2:
        return [ws]

    def weight(i: int) -> float:  # cut after word i: prefer commas, then wide gaps, then the middle
        gap = ws[i + 1].start - ws[i].end
        comma = ws[i].word.strip().endswith((",", ";", ":", "、", "，"))
        middle = 1.0 - abs((ws[i].end - ws[0].start) / (ws[-1].end - ws[0].start) - 0.5)
        return comma + 2.0 * gap + 0.5 * middle

    i = max(range(len(ws) - 1), key=weight)
    return _cut_long(ws[: i + 1]) + _cut_long(ws[i + 1:])


class _LanguageGate:
    """Stands in for the CTranslate2 model inside a faster-whisper WhisperModel.

    In `multilingual` mode faster-whisper asks `model.detect_language(encoder_output)`
    before decoding each 30 s chunk and decodes in the top language, however unsure. This
    puts the current language first unless another one scores > LANGUAGE_SWITCH_P, and
    remembers the result, so segments can be labelled with the language they were decoded
    in. With `current` None (nothing detected in the file yet) the top language is taken:
    the file's first chunk sets the language from the encoder output it is decoded from,
    instead of the separate encoder pass of faster-whisper's own up-front detection.
    Everything else is delegated to the real model.
    """

    def __init__(self, model):
        self._model = model
        self.current: str | None = None
        self.seen: dict[str, float] = {}
        self.last: list[str | None] = []
        self.switch_p = LANGUAGE_SWITCH_P

    def __getattr__(self, name):
        return getattr(self._model, name)

    def detect_language(self, *args, **kwargs):
        results = self._model.detect_language(*args, **kwargs)
        gated = []
        for ranked in results:  # one list per batch item, best first: [("<|en|>", p), ...]
            token, p = ranked[0]
            lang = token[2:-2]
            if self.current is None or (lang != self.current and p > self.switch_p):
                self.current = lang
                self.seen[lang] = max(self.seen.get(lang, 0.0), p)
            elif lang != self.current:
                keep = f"<|{self.current}|>"
                ranked = sorted(ranked, key=lambda tp: tp[0] != keep)  # stable: keep goes first
            gated.append(ranked)
        self.last = [self.current] * len(gated)  # the language each batch item is decoded in
        return gated


class _Encoded:
    """A batch's encoder output in the parts beam search takes it: (first chunk, array of
    (chunks, positions, width)), each part as long as its longest chunk's speech."""

    def __init__(self, parts: list[tuple[int, np.ndarray]]):
        self.parts = parts

    def __len__(self) -> int:
        return sum(len(a) for _, a in self.parts)

    def row(self, i: int) -> np.ndarray:
        for lo, a in self.parts:
            if lo <= i < lo + len(a):
                return a[i - lo:i - lo + 1]
        raise IndexError(i)


def speech_frames(features: np.ndarray, step: int = ENCODER_STEP_FRAMES,
                  pad: int | None = None, least: int | None = None) -> np.ndarray:
    """Per chunk of a (chunks, mels, frames) batch: how many frames hold its audio, plus
    `pad` frames of the padding, rounded up to `step`, and at least `least` (faster-whisper
    pads a chunk's log-mel to 30 s with exact zeros)."""
    pad = ENCODER_PAD_FRAMES if pad is None else pad
    least = ENCODER_MIN_FRAMES if least is None else least
    heard = np.abs(features).max(axis=1) > 0                      # (chunks, frames)
    n = features.shape[2]
    last = np.where(heard.any(axis=1), n - np.argmax(heard[:, ::-1], axis=1), 0)
    return np.clip(np.maximum(-(-(last + pad) // step) * step, least), step, n)


class _ChunkWorkers:
    """The CTranslate2 model on CPU, each batch spread over single-threaded workers.

    The batched pipeline hands every call all the chunks of a batch. Here encoding,
    language detection and word alignment go one chunk per call, and beam search gets
    the batch in parts of BEAM_PART_CHUNKS; the calls run at once on CTranslate2's workers
    (inter_threads), each on one core. With `trim` (batched decoding, ENCODER_TRIM) each
    part is encoded only as long as its longest chunk's speech (_Encoded), and every later
    call takes its chunks at that length.

    Memory: an encoder pass holds self-attention over 1500 frames, and detection and
    alignment hold cross-attention keys and values, per chunk in the call, so chunk by
    chunk peaks far lower than whole-batch calls, with the same transcript. Speed: an
    encoder pass costs the same CPU whether or not it shares a call (1500 frames already
    fill the matrix units), and the decoder's small per-token products lose CPU time to a
    second intra-op thread's synchronisation, which single-threaded workers avoid. The heap
    is trimmed before every call: with two chunks encoding at once the peak was higher
    without that. Measured: benchmarks/README.md "Batch memory and CPU workers"."""

    def __init__(self, model, workers: int, trim: bool = False):
        self._model = model
        self._pool = None
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="avindex-asr")
        self._workers = max(1, workers)
        self._trim = trim

    def __getattr__(self, name):
        return getattr(self._model, name)

    def _map(self, fn, items: list) -> list:
        if self._pool is None or len(items) < 2:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))

    @staticmethod
    def _view(array: np.ndarray):
        import ctranslate2

        return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))

    def _beam_parts(self, n: int) -> list[tuple[int, int]]:
        """The (first, end) chunks of each beam-search part of an n-chunk batch."""
        parts = max(self._workers, -(-n // BEAM_PART_CHUNKS))
        bounds = [round(i * n / parts) for i in range(parts + 1)]
        return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]

    def _each_chunk(self, features, call) -> list:
        """call(chunk i as a one-row StorageView, i) for every chunk, at once on the workers;
        `features` a batch, an _Encoded one, or a list of one-row arrays."""
        release_memory()
        if isinstance(features, _Encoded):
            rows = [features.row(i) for i in range(len(features))]
        elif isinstance(features, list):
            rows = features
        else:
            a = np.asarray(features)
            rows = [a[i:i + 1] for i in range(a.shape[0])]
        return self._map(lambda i: call(self._view(rows[i]), i), list(range(len(rows))))

    def encode(self, features, to_cpu=False):
        import ctranslate2

        def encode(row, i):
            return np.asarray(self._model.encode(row, to_cpu=to_cpu))
        if not self._trim:
            return ctranslate2.StorageView.from_array(np.concatenate(self._each_chunk(features, encode)))
        a = np.asarray(features)
        parts = self._beam_parts(a.shape[0])
        frames = speech_frames(a)
        rows = [a[i:i + 1, :, :frames[lo:hi].max()] for lo, hi in parts for i in range(lo, hi)]
        out = self._each_chunk(rows, encode)
        return _Encoded([(lo, np.concatenate(out[lo:hi])) for lo, hi in parts])

    def detect_language(self, features, *args, **kwargs):
        rows = self._each_chunk(features, lambda row, i: self._model.detect_language(row, *args, **kwargs))
        return [r for ranked in rows for r in ranked]

    def generate(self, features, prompts, *args, **kwargs):
        release_memory()
        if isinstance(features, _Encoded):
            parts = [(lo, lo + len(a), a) for lo, a in features.parts]
        else:
            n = features.shape[0]
            parts = self._beam_parts(n)
            if len(parts) < 2:
                return self._model.generate(features, prompts, *args, **kwargs)
            a = np.asarray(features)
            parts = [(lo, hi, a[lo:hi]) for lo, hi in parts]
        out = self._map(lambda p: self._model.generate(self._view(p[2]), prompts[p[0]:p[1]], *args, **kwargs),
                        parts)
        return [r for part in out for r in part]

    def align(self, features, start_sequence, text_tokens, num_frames, *args, **kwargs):
        frames = num_frames if isinstance(num_frames, list) else [num_frames] * len(text_tokens)
        rows = self._each_chunk(features, lambda row, i: self._model.align(
            row, start_sequence, [text_tokens[i]], [frames[i]], *args, **kwargs))
        return [r for aligned in rows for r in aligned]


def _batched_pipeline(model, gate: _LanguageGate | None):
    """faster-whisper's BatchedInferencePipeline, remembering the language each chunk was
    decoded in (chunk start in frames -> language), since its segments do not say."""
    from faster_whisper import BatchedInferencePipeline

    class Labelled(BatchedInferencePipeline):
        def __init__(self, model):
            super().__init__(model)
            self.lang_at: dict[int, str] = {}  # reset by the caller before each call
            self.gate = gate

        def forward(self, features, tokenizer, chunks_metadata, options):
            out = super().forward(features, tokenizer, chunks_metadata, options)
            if gate is not None:
                fps = self.model.frames_per_second
                for meta, lang in zip(chunks_metadata, gate.last):
                    self.lang_at[int(meta["offset"] * fps)] = lang
            return out

    return Labelled(model)


def _batched_loop(s) -> bool:
    """A batched segment to drop. The batched pipeline decodes each chunk once, at
    temperature 0, without whisper's fallback; what the fallback would have retried is
    dropped instead: a repetition loop (compression ratio > 2.4), or a chunk the model
    both calls silence and is unsure of (whisper's no-speech rule)."""
    if s.compression_ratio > _FW_OPTIONS["compression_ratio_threshold"]:
        return True
    return (s.no_speech_prob > _FW_OPTIONS["no_speech_threshold"]
            and s.avg_logprob < _FW_OPTIONS["log_prob_threshold"])


def _batched_dropped(s, run: tuple[float, float] | None = None, *,
                     between_words: bool = False) -> bool:
    """A batched segment to drop: a hallucination (_hallucinated) or what whisper's
    temperature fallback would have retried (_batched_loop). A segment of a lone speech
    `run` (start, end) decoded again (_batched_transcribe) is held to more: the run gave no
    words the first time, and is often music or noise the VAD took for speech, where the
    model hears a word or two ("Whoa, whoa.") in seconds of sound. It is dropped when the
    model calls it silence at all, when its text is unsure (avg_logprob < RESCUE_LOGPROB)
    or when it has fewer words than one per RESCUE_SECONDS_PER_WORD of the run. A stretch
    `between_words` of a run that had words (_unheard) is speech the model went on to hear
    around it: there only whisper's own no-speech rule (_batched_loop) applies, as a
    stretch a language change ends often starts with the model calling it silence
    (no-speech 0.71 with a mean log-probability of -0.36 and 35 words)."""
    words = [Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in (s.words or [])]
    if _hallucinated(words, s.avg_logprob) or _batched_loop(s):
        return True
    if run is None:
        return False
    silence = s.no_speech_prob > _FW_OPTIONS["no_speech_threshold"] and not between_words
    return (silence or s.avg_logprob < RESCUE_LOGPROB
            or len(words) < (run[1] - run[0]) / RESCUE_SECONDS_PER_WORD)


def _unheard(run: dict, heard: list[tuple[float, float]], gap_s: float | None = None
             ) -> list[dict]:
    """The stretches of a VAD speech `run` (samples) that no heard word (start, end
    seconds, sorted) covers: the whole run when no word falls in it, else each stretch
    of at least `gap_s` before, between or after its words. A chunk's decoding may stop
    or skip on a change of language and go on later ("Ci sono..." then 20 s of Russian
    and Italian with no word, then Russian): such speech is decoded again on its own."""
    gap_s = RESCUE_GAP_S if gap_s is None else gap_s
    lo, hi = run["start"] / SAMPLE_RATE, run["end"] / SAMPLE_RATE
    inside = [(a, b) for a, b in heard if lo <= (a + b) / 2 <= hi]
    if not inside:
        return [run]
    out, t = [], lo
    for a, b in inside + [(hi, hi)]:
        if a - t >= gap_s:
            out.append({"start": int(round(t * SAMPLE_RATE)), "end": int(round(a * SAMPLE_RATE)),
                        "between_words": True})
        t = max(t, b)
    return out


def _heard(segs: list[tuple]) -> list[tuple[float, float]]:
    """(start, end) of every word of (segment, language) pairs, in order."""
    return sorted((float(w.start), float(w.end)) for s, _ in segs for w in (s.words or ()))


def _rescue_decode(batched, decode, audio: np.ndarray, stretches: list[dict]) -> list:
    """decode() of each stretch on its own, where the language gate gives way to a
    detection over RESCUE_SWITCH_P (the carried language already failed there) and keeps
    the file's language for what comes after."""
    clips = [{"start": r["start"] / SAMPLE_RATE, "end": r["end"] / SAMPLE_RATE} for r in stretches]
    gate = batched.gate
    if gate is None:                     # a fixed language: nothing to switch
        return decode(audio, clips)[0]
    kept = gate.current, gate.switch_p
    gate.switch_p = RESCUE_SWITCH_P
    try:
        return decode(audio, clips)[0]
    finally:
        gate.current, gate.switch_p = kept


def _pieces_of(audio: np.ndarray, stretch: dict) -> list[dict]:
    """A stretch whose decoding gave nothing cut at its short pauses (the VAD with a
    pause of 0.3 s), pieces of at least 1 s: each piece is detected and decoded in its
    own language (two languages in one stretch leave the detector unsure of both)."""
    from faster_whisper.vad import VadOptions

    from .silero_vad import speech_timestamps
    piece = audio[stretch["start"]: stretch["end"]]
    found = speech_timestamps(piece, VadOptions(min_silence_duration_ms=300, speech_pad_ms=100))
    out = [{"start": stretch["start"] + t["start"], "end": stretch["start"] + t["end"],
            "between_words": True, "piece": True}
           for t in found if t["end"] - t["start"] >= SAMPLE_RATE]
    return out if len(out) > 1 else []


def _pack(runs: list[dict], limit: int) -> list[list[dict]]:
    """VAD speech runs grouped into decoding chunks as faster-whisper's batched pipeline
    groups them (vad.collect_chunks): consecutive runs while their speech fits `limit`
    samples."""
    groups: list[list[dict]] = []
    size = 0
    for r in runs:
        n = r["end"] - r["start"]
        if groups and size + n <= limit:
            groups[-1].append(r)
            size += n
        else:
            groups.append([r])
            size = n
    return groups


def _unsure(s) -> bool:
    """A greedily decoded segment to decode again at the full beam: its tokens' mean
    log-probability is low, or it repeats itself (what whisper's fallback also retries)."""
    return (s.avg_logprob < UNSURE_LOGPROB
            or s.compression_ratio > _FW_OPTIONS["compression_ratio_threshold"])


def _batched_transcribe(batched, audio: np.ndarray, *, language: str, beam_size: int,
                        multilingual: bool, batch_size: int, first_beam: int | None = None):
    """faster-whisper's batched transcription of one window, with no speech run left out:
    ([(segment, language it was decoded in)] by time, info).

    The speech runs of the VAD (models.silero_vad: flat memory) are packed into chunks of
    up to 30 s of speech and decoded as the pipeline's own VAD path does. Whisper decoding
    a chunk sometimes stops (end of text) before its last sentence, or skips one, with or
    without timestamp tokens, depending on what else the chunk holds: the last sentence of
    a long file was lost, though alone it is transcribed. So each run of a chunk whose text
    is far too short for its speech (RESCUE_TOKENS_PER_S; the alignment of such a text
    spreads its few words anywhere), and each run that got no word, is decoded again on
    its own (benchmarks/README.md, "Speech kept").

    Adaptive decoding (`first_beam` < `beam_size`): every chunk is decoded at `first_beam`
    first, and only the chunks with an unsure segment (_unsure) again at `beam_size`
    (benchmarks/README.md, "Adaptive decoding")."""
    from types import SimpleNamespace

    from faster_whisper.transcribe import restore_speech_timestamps
    from faster_whisper.vad import VadOptions

    from .silero_vad import speech_timestamps

    runs = speech_timestamps(audio, VadOptions(**_BATCH_VAD))
    if not runs:
        return iter(()), SimpleNamespace(language=language, language_probability=1.0)
    options = {k: v for k, v in _FW_OPTIONS.items() if k != "vad_parameters"}
    options["vad_filter"] = False

    def decode(samples: np.ndarray, clips: list[dict], beam: int = beam_size):
        batched.lang_at = {}
        segs, info = batched.transcribe(
            samples, language=language, beam_size=beam, multilingual=multilingual,
            batch_size=batch_size, without_timestamps=True, clip_timestamps=clips, **options)
        segs = list(segs)       # decoding happens here; lang_at is filled as it goes
        return [(s, batched.lang_at.get(s.seek)) for s in segs], info

    groups = _pack(runs, _BATCH_CHUNK_S * SAMPLE_RATE)
    clips, at = [], 0
    for group in groups:
        n = sum(r["end"] - r["start"] for r in group)
        clips.append({"start": at / SAMPLE_RATE, "end": (at + n) / SAMPLE_RATE})
        at += n
    packed = np.concatenate([audio[r["start"]: r["end"]] for r in runs])
    fps = batched.model.frames_per_second
    starts = np.array([c["start"] for c in clips])

    def group_of(s) -> int:  # s.seek: the chunk's start in frames (rounded down)
        return int(np.argmin(np.abs(starts - s.seek / fps)))
    first_beam = beam_size if first_beam is None else min(first_beam, beam_size)
    first, info = decode(packed, clips, first_beam)
    if first_beam < beam_size:
        unsure = sorted({group_of(s) for s, _ in first if _unsure(s)})
        if unsure:
            again_, _ = decode(packed, [clips[g] for g in unsure])
            first = [sl for sl in first if group_of(sl[0]) not in unsure] + again_
            first.sort(key=lambda sl: (sl[0].seek, sl[0].start))
    by_group: list[list[tuple]] = [[] for _ in groups]
    for s, lang in first:
        by_group[group_of(s)].append((s, lang))
    for _ in restore_speech_timestamps([s for s, _ in first], runs, SAMPLE_RATE):
        pass                # file-window times, in place

    kept, again = [], []    # again: (group, run) to decode alone
    for g, (group, segs) in enumerate(zip(groups, by_group)):
        ok = [(s, lang) for s, lang in segs if not _batched_dropped(s)]
        speech_s = sum(r["end"] - r["start"] for r in group) / SAMPLE_RATE
        if sum(len(s.tokens) for s, _ in ok) < RESCUE_TOKENS_PER_S * speech_s:
            again += [(g, r) for r in group]
            by_group[g] = ok            # kept only if decoding its runs alone gives nothing
            continue
        kept += ok
        again += [(g, r) for run in group for r in _unheard(run, _heard(ok))]
    found: dict[int, list] = {}
    rescued = {g for g, _ in again}
    for _ in range(RESCUE_ROUNDS):
        if not again:
            break
        alone = _rescue_decode(batched, decode, audio, [r for _, r in again])
        got: dict[int, list] = {}
        run_starts = np.array([r["start"] / SAMPLE_RATE for _, r in again])
        for s, lang in alone:   # s.seek: the start of the stretch it was decoded from
            i = int(np.argmin(np.abs(run_starts - s.seek / fps)))
            g, r = again[i]
            if not _batched_dropped(s, (r["start"] / SAMPLE_RATE, r["end"] / SAMPLE_RATE),
                                    between_words=r.get("between_words", False)):
                got.setdefault(i, []).append((s, lang))
        later = []              # decoding a stretch alone may stop early too: its rest
        for i, (g, r) in enumerate(again):
            if i not in got:    # nothing kept: a stretch of two languages, in pieces
                if r.get("between_words") and not r.get("piece"):
                    later += [(g, x) for x in _pieces_of(audio, r)]
                continue
            segs = got[i]
            found.setdefault(g, []).extend(segs)
            later += [(g, x) for x in _unheard(r, _heard(segs))
                      if (x["start"], x["end"]) != (r["start"], r["end"])]
        again = later
    for g in rescued:
        if g in found:
            kept += found[g]
        elif sum(len(s.tokens) for s, _ in by_group[g]) < RESCUE_TOKENS_PER_S * (
                sum(r["end"] - r["start"] for r in groups[g]) / SAMPLE_RATE):
            kept += by_group[g]     # a short text, but the only one this chunk has
    kept.sort(key=lambda sl: sl[0].start)
    return iter(kept), info


def _multilingual(model_dir: Path, model_name: str) -> bool:
    """Before loading: a multilingual Whisper has 51865 tokens, an English-only one 51864
    (CTranslate2's own test, which it answers only once the model is loaded)."""
    vocab = Path(model_dir) / "vocabulary.txt"
    try:
        with vocab.open("rb") as f:
            return sum(1 for _ in f) >= 51865
    except OSError:
        return not model_name.endswith(".en")


class FasterWhisperEngine(_WindowedEngine):
    """CTranslate2 Whisper: int8 on CPU, float16 on CUDA."""

    name = "faster-whisper"

    def __init__(self, model_dir: Path, model_name: str, device: str = "auto",
                 compute_type: str | None = None, cpu_threads: int = 0, batch_size: int | None = None):
        import ctranslate2
        from faster_whisper import WhisperModel

        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        self.device = device
        self.compute_type = compute_type or ("float16" if device == "cuda" else "int8")
        self.model_name = model_name
        from .threads import cores
        n_cores = cores()
        # English-only models (tiny.en) have nothing to detect, and decode chunk by chunk
        # (see BATCH_SIZE); batch_size > 1: VAD chunks of up to 30 s decoded together.
        if batch_size is None:
            batch_size = BATCH_SIZE if _multilingual(model_dir, model_name) else 0
        self.batch_size = batch_size
        # Threads: faster-whisper's own default is 4, whatever the machine. Batched on CPU,
        # `cpu_threads` (default: one per core) single-threaded workers share each batch
        # (_ChunkWorkers); chunk by chunk, one call at a time uses them all.
        threads = cpu_threads if cpu_threads > 0 else n_cores
        workers = threads if device == "cpu" and batch_size > 1 else 1
        # local_files_only: a folder missing tokenizer.json must fail here, not go to the hub.
        self.model = WhisperModel(str(model_dir), device=device, compute_type=self.compute_type,
                                  cpu_threads=threads // workers, num_workers=workers,
                                  local_files_only=True)
        if device == "cpu":
            self.model.model = _ChunkWorkers(self.model.model, workers,
                                              trim=ENCODER_TRIM and batch_size > 1)
        self._gate = None
        if self.model.model.is_multilingual:
            self._gate = self.model.model = _LanguageGate(self.model.model)
        self._batched = _batched_pipeline(self.model, self._gate) if batch_size > 1 else None
        self.first_beam = FIRST_BEAM       # None: every chunk at the full beam at once

    def _run(self, audio, language, beam_size, carried, seen):
        gate = self._gate if language is None else None
        if gate is not None:
            gate.current, gate.seen = carried, seen
            # Unknown language: the gate picks it at the first chunk, and "en" only fills
            # the slot faster-whisper would otherwise fill with an extra encoder pass.
            language_arg = carried or "en"
        else:
            language_arg = language or carried  # English-only model: faster-whisper uses "en"
        batched = self._batched
        if batched is None:
            segments, info = self.model.transcribe(
                audio, language=language_arg, beam_size=beam_size, multilingual=gate is not None,
                **_FW_OPTIONS)
        else:
            # Without timestamp tokens (the batched default) a chunk is one segment of up
            # to 30 s, cut into lines by its word timings below. With them, the model often
            # ends a chunk early, expecting a next window that batched decoding never gives
            # it: the last LibriVox sentence of a chunk was lost.
            segments, info = _batched_transcribe(batched, audio, language=language_arg,
                                                 beam_size=beam_size, multilingual=gate is not None,
                                                 batch_size=self.batch_size,
                                                 first_beam=self.first_beam)

        def convert():
            for s in segments:  # lazy: the gate has seen this segment's chunk by now
                decoded_in = None
                if batched is not None:     # already guarded, with the chunk's language
                    s, decoded_in = s
                words = [Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in (s.words or [])]
                if batched is None and _hallucinated(words, s.avg_logprob):
                    continue
                if gate is None:
                    lang = info.language
                else:
                    lang = decoded_in or gate.current
                seg = Segment(float(s.start), float(s.end), s.text.strip(), lang, _confidence(s.avg_logprob), words)
                yield from (split_lines(seg) if batched is not None else (seg,))

        if gate is None or carried is not None:
            return info.language if gate is None else carried, float(info.language_probability), convert()
        # Decode up to the first segment now, so the language is known when this returns
        # ("" when the window had no speech at all).
        segs = convert()
        first = next(segs, None)
        lang = gate.current or ""
        return lang, seen.get(lang, 0.0), segs if first is None else itertools.chain([first], segs)


class OpenAIWhisperEngine(_WindowedEngine):
    """openai-whisper (PyTorch) on a checkpoint converted from the CTranslate2 weights.

    Audio reaches it as numpy arrays decoded by PyAV, so the `ffmpeg` program is not
    needed. The same silero VAD as faster-whisper removes non-speech first (openai-whisper
    has none); timestamps are mapped back to the window afterwards.
    """

    name = "openai-whisper"

    def __init__(self, model_dir: Path, model_name: str, models_dir: Path,
                 device: str = "auto", threads: int = 0):
        import torch
        import whisper

        from .whisper_convert import alignment_heads_dump, cached_checkpoint

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = device
        self.compute_type = "float16" if device == "cuda" else "float32"
        self.model_name = model_name
        checkpoint = cached_checkpoint(model_dir, models_dir, model_name)
        self.model = whisper.load_model(str(checkpoint), device=device)
        # load_model(path) leaves the default heads (all of the upper half); word timings
        # are better with the tuned heads the CT2 config carries.
        dims = self.model.dims
        dump = alignment_heads_dump(model_dir, dims.n_text_layer, dims.n_text_head)
        if dump is not None:
            self.model.set_alignment_heads(dump)

    def _detect_language(self, speech: np.ndarray) -> tuple[str, float]:
        import whisper

        if not self.model.is_multilingual:
            return "en", 1.0
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(speech), self.model.dims.n_mels)
        _, probs = self.model.detect_language(mel.to(self.model.device))
        lang = max(probs, key=probs.get)
        return lang, float(probs[lang])

    def _run(self, audio, language, beam_size, carried, seen):
        import whisper
        from faster_whisper.vad import SpeechTimestampsMap, VadOptions, get_speech_timestamps

        chunks = get_speech_timestamps(audio, VadOptions(**VAD_OPTIONS))
        if not chunks:
            return language or carried or "", 0.0, iter(())
        speech = np.concatenate([audio[c["start"]: c["end"]] for c in chunks])
        prob = 1.0
        if language is None:
            # Once per window (its first 30 s of speech): an encoder pass each time.
            detected, p = self._detect_language(speech)
            if carried is None or (detected != carried and p > LANGUAGE_SWITCH_P):
                language, prob = detected, p
                seen[detected] = max(seen.get(detected, 0.0), p)
            else:
                language = carried
        result = whisper.transcribe(
            self.model, speech, language=language, beam_size=beam_size, best_of=5,
            temperature=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), fp16=self.compute_type == "float16",
            verbose=None, word_timestamps=True, condition_on_previous_text=False,
            compression_ratio_threshold=2.4, logprob_threshold=-1.0, no_speech_threshold=0.6,
            hallucination_silence_threshold=HALLUCINATION_SILENCE_S,
        )
        ts = SpeechTimestampsMap(chunks, SAMPLE_RATE)
        lang = language

        def convert():
            for s in result["segments"]:
                words = []
                for w in s.get("words", []):
                    # Map both ends through the chunk holding the word's middle, as
                    # faster-whisper does, so a word never straddles a removed gap.
                    i = ts.get_chunk_index((w["start"] + w["end"]) / 2)
                    words.append(Word(ts.get_original_time(w["start"], i), ts.get_original_time(w["end"], i),
                                      w["word"], float(w["probability"])))
                if _hallucinated(words, s["avg_logprob"]):
                    continue
                if words:
                    start, end = words[0].start, words[-1].end
                else:
                    start, end = ts.get_original_time(s["start"]), ts.get_original_time(s["end"], is_end=True)
                yield Segment(start, end, s["text"].strip(), lang, _confidence(s["avg_logprob"]), words)

        return lang, prob, convert()


ENGINES = ("faster-whisper", "openai-whisper")


def load_engine(
    engine: str = "faster-whisper",
    model: str = "base",
    device: str = "auto",
    threads: int = 0,
    *,
    models_dir: Path,
    use_packages: bool = True,
    allow_download: bool = False,
    batch_size: int | None = None,
) -> ASREngine:
    """Build an engine; weights are resolved by models.weights (raises ModelUnavailable)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown ASR engine {engine!r}; choose one of {', '.join(ENGINES)}")
    source = resolve_model(model, models_dir, use_packages=use_packages, allow_download=allow_download)
    if engine == "faster-whisper":
        return FasterWhisperEngine(source.path, model, device=device, cpu_threads=threads,
                                   batch_size=batch_size)
    return OpenAIWhisperEngine(source.path, model, Path(models_dir), device=device, threads=threads)


def shared_engine(engine: str, model: str, device: str = "auto", threads: int = 0, *,
                  models_dir: Path) -> LazyModel[ASREngine]:
    """The process's one engine for these settings (models.loading), built by
    `load_engine` on first `get()`; the key names the engine, model and weights folder."""
    key = f"asr:{engine}:{model}@{models_dir}:device={device}:threads={threads}"
    return lazy(key, lambda: load_engine(engine, model, device=device, threads=threads,
                                         models_dir=models_dir))
