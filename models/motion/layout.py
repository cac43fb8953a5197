"""The descriptor's fixed layout (import-light: the schema and the store read it).

encoder responses (ENC_DIM) | flow statistics (FLOW_DIM) | appearance (APP_DIM), one vector
per WINDOW_S seconds of video.
"""
import numpy as np

ENC_DIM = 128
FLOW_DIM = 32
APP_DIM = 128
DESCRIPTOR_DIM = ENC_DIM + FLOW_DIM + APP_DIM
WINDOW_S = 2.0
BLOCKS = {"encoder": slice(0, ENC_DIM), "flow": slice(ENC_DIM, ENC_DIM + FLOW_DIM),
          "appearance": slice(ENC_DIM + FLOW_DIM, DESCRIPTOR_DIM)}


def standardiser(reference: np.ndarray, blocks=("encoder", "flow", "appearance"),
                 weights: dict | None = None):
    """(mean, scale) that z-score each dimension on `reference` and give every chosen block
    the same total weight (1/sqrt(its size)) times `weights[block]` (default 1);
    dimensions of other blocks get weight 0."""
    ref = np.asarray(reference, np.float32)
    mean = ref.mean(0)
    std = ref.std(0)
    scale = np.zeros(DESCRIPTOR_DIM, np.float32)
    for name in blocks:
        sl = BLOCKS[name]
        n = sl.stop - sl.start
        w = 1.0 if weights is None else float(weights.get(name, 1.0))
        scale[sl] = w / (np.maximum(std[sl], 1e-3 + 0.05 * float(np.median(std[sl]))) * np.sqrt(n))
    return mean.astype(np.float32), scale
