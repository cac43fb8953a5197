"""CAM++ in int8: the activation ranges its quantized convolutions use, and how far the
int8 network's vectors are from the float network's.

    .venv/bin/python -m benchmarks.campplus_int8 --calibrate   # write models/campplus_int8.json
    .venv/bin/python -m benchmarks.campplus_int8               # test split: agreement, ms a window

Calibration data (packaged real speech only, never the test split): the 10 clips of
Debian's pocketsphinx-testdata (a LibriVox reader and the `cards` speaker) and the
speakers benchmark's dev conversations (benchmarks/speakers.py: AMI meetings, Asterisk
prompts, Fish Fillets and KTuberling voices), 1.6 s windows every 1.6 s of each file,
speech and pauses alike, in random batches of 32. A range is the mean over the batches of
the minimum and of the maximum a conv's input or output takes (`models.campplus.calibrate`;
against the overall minimum and maximum, test: cosine to float mean 0.9917 against 0.9888,
worst window 0.958 against 0.945). The report compares int8 with float on the test
conversations' windows (cosine of the two unit vectors of each window) and times both, one
thread, batch RUN_BATCH.
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import campplus as cam  # noqa: E402
from models.audio_stream import decode_audio  # noqa: E402

POCKETSPHINX = "/usr/share/pocketsphinx/test/data/*/*.wav"
STEP = cam.WINDOW_FRAMES * cam.HOP          # 1.6 s in samples: windows side by side
BATCH = 32                                  # windows a calibration batch, drawn at random


def _windows(paths) -> np.ndarray:
    out = []
    for p in paths:
        x = decode_audio(p)
        if len(x) >= cam.FRAME:
            out.append(cam.window_feats(x, np.arange(0, max(1, len(x) - STEP + 1), STEP)))
    return np.concatenate(out)


def calibrate() -> None:
    from benchmarks.speakers import conversations
    from models.torch_pickle import read_zip_checkpoint
    paths = sorted(glob.glob(POCKETSPHINX)) + [str(p) for p in conversations("dev")]
    feats = _windows(paths)
    feats = feats[np.random.default_rng(0).permutation(len(feats))]   # batches of every source
    state = read_zip_checkpoint(cam.weights_path())
    ranges = cam.calibrate(state, (feats[i:i + BATCH] for i in range(0, len(feats), BATCH)))
    doc = {"weights": cam.WEIGHTS[1], "windows": int(len(feats)),
           "data": "pocketsphinx-testdata's 10 clips and benchmarks/speakers.py's dev "
                   "conversations, 1.6 s windows every 1.6 s (benchmarks/campplus_int8.py)",
           "ranges": {k: [round(v, 6) for v in r] for k, r in ranges.items()}}
    cam.RANGES_FILE.write_text(json.dumps(doc, indent=0) + "\n")
    print(f"{len(ranges)} convolutions' ranges from {len(feats)} windows of {len(paths)} "
          f"files -> {cam.RANGES_FILE}")


def _vectors(session, feats: np.ndarray) -> tuple[np.ndarray, float]:
    session.run(None, {"feats": feats[:cam.RUN_BATCH]})          # warm
    t = time.perf_counter()
    out = np.concatenate([session.run(None, {"feats": feats[i:i + cam.RUN_BATCH]})[0]
                          for i in range(0, len(feats), cam.RUN_BATCH)])
    took = (time.perf_counter() - t) / len(feats)
    return out / np.linalg.norm(out, axis=1, keepdims=True), took


def report(split: str) -> None:
    from benchmarks.speakers import conversations
    from models.threads import one_thread_session
    from models.torch_pickle import read_zip_checkpoint
    feats = _windows(conversations(split))
    state = read_zip_checkpoint(cam.weights_path())
    ref, t_float = _vectors(one_thread_session(cam._campplus_model(state)), feats)
    q, t_int8 = _vectors(one_thread_session(cam._campplus_model(state, cam.int8_ranges(True))),
                         feats)
    cos = (ref * q).sum(axis=1)
    print(f"{split}: {len(feats)} windows; float {t_float * 1000:.1f} ms a window, int8 "
          f"{t_int8 * 1000:.1f} ms ({t_float / t_int8:.2f}x); cosine int8 to float: min "
          f"{cos.min():.4f}, 1st percentile {np.percentile(cos, 1):.4f}, mean {cos.mean():.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibrate", action="store_true", help="write the ranges file")
    ap.add_argument("--split", default="test", choices=("dev", "test"))
    args = ap.parse_args()
    calibrate() if args.calibrate else report(args.split)


if __name__ == "__main__":
    main()
