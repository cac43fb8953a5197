"""No speech lost: every stretch of real speech gets its words, wherever it sits in a long
file (window edges, a decoding chunk's end, the file's end), and a spoken list is not cut
into lines of one word."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from models import asr
from models.audio_stream import SAMPLE_RATE, decode_audio

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
needs_librivox = pytest.mark.skipif(not (LIBRIVOX / "transcription").is_file(),
                                    reason="Debian pocketsphinx-testdata is not installed")


def clips() -> list[tuple[np.ndarray, str]]:
    """The five LibriVox recordings (3-7 s each) and what is said in them."""
    out = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
        if m:
            out.append((decode_audio(LIBRIVOX / f"{m.group(2)}.wav"), m.group(1)))
    return out


def joined(parts: list[tuple[np.ndarray, str]], gap_s: float = 1.0):
    """The recordings one after another with `gap_s` of silence: (audio, [(start, end, text)])."""
    gap = np.zeros(int(gap_s * SAMPLE_RATE), np.float32)
    audio, spans, t = [], [], 0.0
    for i, (x, text) in enumerate(parts):
        if i:
            audio.append(gap)
            t += gap_s
        spans.append((t, t + len(x) / SAMPLE_RATE, text))
        audio.append(x)
        t += len(x) / SAMPLE_RATE
    return np.concatenate(audio), spans


def tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def kept(segments, spans, margin: float = 0.5) -> list[float]:
    """For each span, the share of its words found among the words heard inside it."""
    heard = [((w.start + w.end) / 2, t) for s in segments for w in s.words for t in tokens(w.word)]
    shares = []
    for start, end, text in spans:
        got = [t for at, t in heard if start - margin <= at < end + margin]
        ref = tokens(text)
        shares.append(sum(min(ref.count(w), got.count(w)) for w in set(ref)) / len(ref))
    return shares


@pytest.fixture(scope="module")
def base(shared_models_dir):
    return asr.load_engine(models_dir=shared_models_dir)


@needs_librivox
def test_a_sentence_the_chunk_left_out_is_decoded_on_its_own(base, monkeypatch):
    # Whisper sometimes ends a chunk's text before its last sentence (the last sentence of
    # a long file was lost that way). A cap on the tokens of every decoding does the same,
    # on real speech, every time: the first pass of the one 30 s chunk holding all five
    # recordings stops in the first; each later one can then only be heard alone.
    monkeypatch.setitem(asr._FW_OPTIONS, "max_new_tokens", 10)
    audio, spans = joined(clips())
    _, segments = base.transcribe(audio, language="en")
    segments = list(segments)
    shares = kept(segments, spans)
    assert all(share >= 0.15 for share in shares), shares
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    # each recording once: no line is heard twice
    texts = [s.text for s in segments]
    assert len(set(texts)) == len(texts), texts


@needs_librivox
def test_speech_after_where_a_chunk_stopped_inside_one_run_is_decoded_alone(base, monkeypatch):
    # Recordings 0.3 s apart are one VAD speech run. On real calls a chunk's text stopped
    # at a change of language and went on 20 s later: the run had words, too many for a
    # chunk whose text "ended early" (RESCUE_TOKENS_PER_S), and the speech between was
    # lost. Here the first pass's words after the second recording are dropped (as if its
    # text had ended there); the stretch of the run after the last word heard is then
    # decoded on its own, with the real model.
    audio, spans = joined(clips(), gap_s=0.3)
    first_end = spans[1][1]
    dropped = asr._batched_dropped

    def stopped_early(s, run=None, **kw):
        if run is None:          # the first pass: its words after the second recording go
            s.words[:] = [w for w in s.words if w.end <= first_end]
            if not s.words:
                return True
        return dropped(s, run, **kw)
    monkeypatch.setattr(asr, "_batched_dropped", stopped_early)
    _, segments = base.transcribe(audio, language="en")
    segments = list(segments)
    shares = kept(segments, spans)
    assert all(share >= 0.6 for share in shares), (shares, [s.text for s in segments])
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    heard = sum(len(tokens(w.word)) for s in segments for w in s.words)
    assert heard <= 1.15 * sum(len(tokens(text)) for *_, text in spans), [s.text for s in segments]
    # without the stretch rescue the three later recordings are lost
    monkeypatch.setattr(asr, "RESCUE_GAP_S", 1e9)
    _, segments = base.transcribe(audio, language="en")
    assert max(kept(list(segments), spans)[2:]) < 0.3


def test_unheard_stretches_of_a_run():
    sr = SAMPLE_RATE
    run = {"start": 0, "end": 30 * sr}
    assert asr._unheard(run, []) == [run]                     # no word: the whole run
    assert asr._unheard(run, [(40.0, 41.0)]) == [run]         # words of other runs only
    words = [(0.5, 1.0), (1.2, 8.0), (20.0, 21.0), (21.5, 29.0)]
    # 8 -> 20 s has no word; 1.0 -> 1.2 and 29 -> 30 s are shorter than RESCUE_GAP_S
    assert asr._unheard(run, words) == [{"start": 8 * sr, "end": 20 * sr,
                                         "between_words": True}]
    assert asr._unheard(run, [(0.5, 1.0)], gap_s=2.0) == [
        {"start": 1 * sr, "end": 30 * sr, "between_words": True}]


@needs_librivox
def test_a_stretch_decoded_in_vain_is_cut_at_its_short_pauses():
    # two languages in one stretch leave the detector unsure of both: the stretch is
    # decoded again piece by piece, cut where the speech pauses (here 0.5 s of silence)
    parts = clips()
    audio, spans = joined(parts[:3], gap_s=0.5)
    stretch = {"start": 0, "end": len(audio), "between_words": True}
    pieces = asr._pieces_of(audio, stretch)
    assert len(pieces) == 3 and all(p["piece"] and p["between_words"] for p in pieces)
    for p, (start, end, _) in zip(pieces, spans):
        assert abs(p["start"] / SAMPLE_RATE - start) < 0.4 and abs(p["end"] / SAMPLE_RATE - end) < 0.4
    one = {"start": 0, "end": len(parts[0][0]), "between_words": True}
    assert asr._pieces_of(parts[0][0], one) == []            # one piece: nothing to cut


def test_a_stretch_between_heard_words_is_kept_though_the_model_calls_it_silence():
    from types import SimpleNamespace as NS
    words = [NS(start=9.0 + i, end=9.5 + i, word=f" word{i}", probability=0.9) for i in range(12)]
    seg = NS(words=words, avg_logprob=-0.36, no_speech_prob=0.71, compression_ratio=1.4,
             text=" ".join(w.word for w in words))
    # a run that gave no word at all: the model's "silence" drops it (music, noise)
    assert asr._batched_dropped(seg, (8.0, 22.0))
    # a stretch of a run the model heard words in: whisper's own rule (unsure too) applies
    assert not asr._batched_dropped(seg, (8.0, 22.0), between_words=True)
    unsure = NS(**{**vars(seg), "avg_logprob": -1.2})
    assert asr._batched_dropped(unsure, (8.0, 22.0), between_words=True)
    sparse = NS(**{**vars(seg), "words": words[:3]})         # 3 words in 14 s
    assert asr._batched_dropped(sparse, (8.0, 22.0), between_words=True)


@needs_librivox
@pytest.mark.parametrize("rotate, window_s, repeat", [(0, 13.0, 1), (3, None, 2)])
def test_every_sentence_is_kept_wherever_it_sits(base, rotate, window_s, repeat):
    # Windows of 13 s move the window edges over the sentences; the recordings twice over
    # (50 s of speech) make two decoding chunks; a rotation puts another one first and last
    # in the file (it ends with the last sentence's last word).
    parts = clips()
    audio, spans = joined((parts[rotate:] + parts[:rotate]) * repeat)
    base.window_s = window_s or base.window_s
    try:
        _, segments = base.transcribe(audio, language="en")
        segments = list(segments)
    finally:
        del base.window_s
    shares = kept(segments, spans)
    assert all(share >= 0.6 for share in shares), (shares, [s.text for s in segments])
    # and each once: no more words than were said
    heard = sum(len(tokens(w.word)) for s in segments for w in s.words)
    assert heard <= 1.15 * sum(len(tokens(text)) for *_, text in spans), [s.text for s in segments]


def test_runs_are_grouped_into_chunks_as_faster_whisper_groups_them():
    from faster_whisper.vad import collect_chunks

    rng = np.random.default_rng(0)
    at, runs = 0, []
    for _ in range(40):
        at += int(rng.integers(0, 3 * SAMPLE_RATE))
        n = int(rng.integers(SAMPLE_RATE // 4, 12 * SAMPLE_RATE))
        runs.append({"start": at, "end": at + n})
        at += n
    audio = np.zeros(at, np.float32)
    limit = asr._BATCH_CHUNK_S
    _, meta = collect_chunks(audio, runs, max_duration=limit)
    groups = asr._pack(runs, limit * SAMPLE_RATE)
    assert [sum(r["end"] - r["start"] for r in g) / SAMPLE_RATE for g in groups] == \
        [m["duration"] for m in meta]
    assert [r for g in groups for r in g] == runs


def test_a_spoken_list_is_not_cut_into_one_word_lines():
    from models.asr import Segment, Word, split_lines

    # "Press 5. 7. 8. Then 9." and two numbers said alone with 1 s pauses
    spec = [("Press", 0.0, 0.4), ("5.", 0.5, 0.8), ("7.", 1.0, 1.3), ("8.", 1.5, 1.8),
            ("Then", 2.0, 2.3), ("9.", 2.4, 2.7), ("Four.", 4.0, 4.4), ("Six.", 5.4, 5.8),
            ("Goodbye.", 9.0, 9.6)]
    words = [Word(a, b, " " + w, 0.9) for w, a, b in spec]
    lines = split_lines(Segment(0.0, 9.6, "", "en", 0.9, words))
    assert [ln.text for ln in lines] == ["Press 5. 7. 8. Then 9.", "Four. Six.", "Goodbye."]
    assert sum(len(ln.words) for ln in lines) == len(spec)
