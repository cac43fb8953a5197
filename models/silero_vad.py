"""The silero VAD (bundled with faster-whisper, run on onnxruntime) with memory that stays
flat however many windows it is given.

faster-whisper's `get_speech_timestamps` runs the network on a whole window in one call,
so every window of another length is a tensor of another shape; onnxruntime's and the
C allocator's memory then grows with the number of windows (a 40 min file's VAD pass
peaked 77 MB above a 5 min file's, benchmarks/README.md "Speakers"). Here the network
sees BATCH rows of 512 samples at a time, or for less audio the next multiple of STEP
rows (eight shapes in all, whatever the lengths; a short stretch is not padded), the last
batch zero-padded past the end and its extra rows dropped (earlier rows do not depend on
later ones), with the recurrent state
carried from batch to batch exactly as faster-whisper carries it; the probabilities are
then turned into stretches of speech by the same rules, so the result is the same.
No DB, no Qt here.
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
FRAME = 512             # samples per speech probability (32 ms)
CONTEXT = 64            # samples of the previous frame the network sees with each frame
BATCH = 256             # frames per network call (8.2 s)
STEP = 32               # less audio than that: a multiple of this many frames (1 s)


def speech_probs(audio: np.ndarray) -> np.ndarray:
    """One speech probability per 512 samples of 16 kHz mono `audio` (zero-padded to a
    whole frame), as faster_whisper.vad.SileroVADModel computes them."""
    from faster_whisper.vad import get_vad_model
    session = get_vad_model().session
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    count = len(audio) // FRAME + 1          # faster-whisper pads a whole frame at a multiple
    out = np.empty(count, np.float32)
    batch = min(BATCH, -(-count // STEP) * STEP)
    rows = np.zeros((batch, CONTEXT + FRAME), np.float32)
    h = np.zeros((1, 1, 128), np.float32)
    c = np.zeros((1, 1, 128), np.float32)
    # the rows are filled in place from the audio: no copy of the whole window is made
    for i in range(0, count, batch):
        n = min(batch, count - i)
        rows.fill(0.0)
        if i:
            rows[0, :CONTEXT] = audio[i * FRAME - CONTEXT: i * FRAME]
        body = audio[i * FRAME: (i + n) * FRAME]
        whole = len(body) // FRAME
        rows[:whole, CONTEXT:] = body[: whole * FRAME].reshape(whole, FRAME)
        if len(body) > whole * FRAME:
            rows[whole, CONTEXT: CONTEXT + len(body) - whole * FRAME] = body[whole * FRAME:]
        rows[1:n, :CONTEXT] = rows[:n - 1, -CONTEXT:]
        probs, h, c = session.run(None, {"input": rows, "h": h, "c": c})
        out[i:i + n] = np.asarray(probs).reshape(-1)[:n]
    return out


def speech_timestamps(audio: np.ndarray, options) -> list[dict]:
    """[{"start": sample, "end": sample}] of speech in `audio`, for faster-whisper's
    VadOptions: the rules of faster_whisper.vad.get_speech_timestamps (1.2.1) over
    speech_probs."""
    sr = SAMPLE_RATE
    threshold = options.threshold
    neg_threshold = options.neg_threshold
    if neg_threshold is None:
        neg_threshold = max(threshold - 0.15, 0.01)
    min_speech_samples = sr * options.min_speech_duration_ms / 1000
    speech_pad_samples = sr * options.speech_pad_ms / 1000
    max_speech_samples = sr * options.max_speech_duration_s - FRAME - 2 * speech_pad_samples
    min_silence_samples = sr * options.min_silence_duration_ms / 1000
    min_silence_samples_at_max_speech = sr * 98 / 1000
    length = len(audio)

    triggered = False
    speeches: list[dict] = []
    current: dict = {}
    temp_end = prev_end = next_start = 0
    for i, prob in enumerate(speech_probs(audio).tolist()):
        at = FRAME * i
        if prob >= threshold and temp_end:
            temp_end = 0
            if next_start < prev_end:
                next_start = at
        if prob >= threshold and not triggered:
            triggered = True
            current["start"] = at
            continue
        if triggered and at - current["start"] > max_speech_samples:
            if prev_end:
                current["end"] = prev_end
                speeches.append(current)
                current = {}
                if next_start < prev_end:   # still silence since the last pause
                    triggered = False
                else:
                    current["start"] = next_start
                prev_end = next_start = temp_end = 0
            else:
                current["end"] = at
                speeches.append(current)
                current = {}
                prev_end = next_start = temp_end = 0
                triggered = False
                continue
        if prob < neg_threshold and triggered:
            if not temp_end:
                temp_end = at
            if at - temp_end > min_silence_samples_at_max_speech:
                prev_end = temp_end
            if at - temp_end < min_silence_samples:
                continue
            current["end"] = temp_end
            if current["end"] - current["start"] > min_speech_samples:
                speeches.append(current)
            current = {}
            prev_end = next_start = temp_end = 0
            triggered = False
            continue
    if current and length - current["start"] > min_speech_samples:
        current["end"] = length
        speeches.append(current)

    for i, speech in enumerate(speeches):
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - speech_pad_samples))
        if i != len(speeches) - 1:
            silence = speeches[i + 1]["start"] - speech["end"]
            if silence < 2 * speech_pad_samples:
                speech["end"] += int(silence // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - silence // 2))
            else:
                speech["end"] = int(min(length, speech["end"] + speech_pad_samples))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - speech_pad_samples))
        else:
            speech["end"] = int(min(length, speech["end"] + speech_pad_samples))
    return speeches
