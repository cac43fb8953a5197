"""Convert CTranslate2 Whisper weights into an openai-whisper checkpoint, losslessly.

The CTranslate2 model.bin layout (ctranslate2/specs/model_spec.py, `_serialize`, binary
version 6), all little-endian:
    u32 version, str spec_name, u32 revision, u32 n_variables,
    n_variables x (str name, u8 rank, rank x u32 dim, u8 dtype, u32 n_bytes, bytes),
    u32 n_aliases, n_aliases x (str alias, str target)
where str = u16 length (including a trailing NUL) + bytes, and dtype indexes
(float32, int8, int16, int32, float16, bfloat16).

Whisper in CTranslate2 differs from openai-whisper only in naming and packing:
self-attention q/k/v are fused into one linear, cross-attention k/v into another; the
fused key bias is all zeros (Whisper's key projection has no bias); layer norms use
gamma/beta. Query scaling is applied at run time by both, so no weight is rescaled.
"""
from __future__ import annotations

import base64
import gzip
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import torch

_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


def read_ct2(model_bin: Path) -> tuple[str, dict[str, np.ndarray]]:
    """Spec name and every variable of a CTranslate2 model.bin (aliases resolved)."""
    data = memoryview(Path(model_bin).read_bytes())
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string():
        nonlocal pos
        n = take("H")
        s = bytes(data[pos: pos + n - 1]).decode("utf-8")
        pos += n
        return s

    version = take("I")
    if version < 5:
        raise ValueError(f"{model_bin}: CTranslate2 binary version {version} is not supported")
    spec = string()
    take("I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dtype = _DTYPES[take("B")]
        nbytes = take("I")
        raw = data[pos: pos + nbytes]
        pos += nbytes
        if dtype == "bfloat16":  # numpy has no bfloat16: widen to float32 bit-exactly
            arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype)
        variables[name] = arr.reshape(shape)
    for _ in range(take("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return spec, variables


def _linear_weight(v: dict, prefix: str) -> np.ndarray:
    w = v[prefix + "/weight"]
    if w.dtype == np.int8:  # int8-quantised folders: weight = q / per-row scale (not lossless)
        return w.astype(np.float32) / v[prefix + "/weight_scale"].astype(np.float32)[:, None]
    return w


def ct2_to_openai(ct2_dir: Path) -> dict:
    """{"dims": ..., "model_state_dict": ...} as `whisper.load_model(path)` expects."""
    ct2_dir = Path(ct2_dir)
    spec, v = read_ct2(ct2_dir / "model.bin")
    if spec != "WhisperSpec":
        raise ValueError(f"{ct2_dir}: not a Whisper model ({spec})")
    sd: dict[str, np.ndarray] = {}

    def layer_norm(src, dst):
        sd[dst + ".weight"] = v[src + "/gamma"]
        sd[dst + ".bias"] = v[src + "/beta"]

    def linear(src, dst, bias=True):
        sd[dst + ".weight"] = _linear_weight(v, src)
        if bias:
            sd[dst + ".bias"] = v[src + "/bias"]

    def fused(src, dsts):
        """Split a fused linear into equal parts; the key part has no bias in Whisper."""
        weights = np.split(_linear_weight(v, src), len(dsts))
        biases = np.split(v[src + "/bias"], len(dsts))
        for dst, w, b in zip(dsts, weights, biases):
            sd[dst + ".weight"] = w
            if dst.endswith(".key"):
                if np.any(b != 0):
                    raise ValueError(f"{src}: non-zero key bias; not a Whisper checkpoint")
            else:
                sd[dst + ".bias"] = b

    def block(src, dst, cross):
        fused(f"{src}/self_attention/linear_0", [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"])
        linear(f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        layer_norm(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        if cross:
            linear(f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
            fused(f"{src}/attention/linear_1", [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"])
            linear(f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
            layer_norm(f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
        linear(f"{src}/ffn/linear_0", f"{dst}.mlp.0")
        linear(f"{src}/ffn/linear_1", f"{dst}.mlp.2")
        layer_norm(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")

    n_audio_layer = sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("/ffn/linear_0/weight"))
    n_text_layer = sum(1 for k in v if k.startswith("decoder/layer_") and k.endswith("/ffn/linear_0/weight"))

    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"encoder.{conv}")
    sd["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for i in range(n_audio_layer):
        block(f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False)
    layer_norm("encoder/layer_norm", "encoder.ln_post")

    # The output projection is an alias of the token embedding in CT2 and tied in openai-whisper.
    sd["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    sd["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    for i in range(n_text_layer):
        block(f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True)
    layer_norm("decoder/layer_norm", "decoder.ln")

    enc_pos, dec_pos = sd["encoder.positional_embedding"], sd["decoder.positional_embedding"]
    dims = {
        "n_mels": int(sd["encoder.conv1.weight"].shape[1]),
        "n_audio_ctx": int(enc_pos.shape[0]),
        "n_audio_state": int(enc_pos.shape[1]),
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(sd["decoder.token_embedding.weight"].shape[0]),
        "n_text_ctx": int(dec_pos.shape[0]),
        "n_text_state": int(dec_pos.shape[1]),
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": n_text_layer,
    }
    # np.frombuffer arrays are read-only views; torch wants its own writable copies.
    state = {k: torch.from_numpy(np.array(a)) for k, a in sd.items()}
    return {"dims": dims, "model_state_dict": state}


def alignment_heads_dump(ct2_dir: Path, n_text_layer: int, n_text_head: int) -> bytes | None:
    """config.json's alignment heads in the base85(gzip(bool mask)) form that
    `Whisper.set_alignment_heads` takes; None when config.json has none."""
    config = json.loads((Path(ct2_dir) / "config.json").read_text(encoding="utf-8"))
    heads = config.get("alignment_heads")
    if not heads:
        return None
    mask = np.zeros((n_text_layer, n_text_head), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes()))


def convert(ct2_dir: Path, out_path: Path) -> Path:
    """Write the openai-whisper checkpoint atomically (temp file + rename)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = ct2_to_openai(ct2_dir)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path


def cached_checkpoint(ct2_dir: Path, models_dir: Path, name: str) -> Path:
    """<models_dir>/whisper-<name>-openai.pt, (re)built when missing or older than model.bin."""
    out = Path(models_dir) / f"whisper-{name}-openai.pt"
    src = Path(ct2_dir) / "model.bin"
    if not out.is_file() or out.stat().st_mtime < src.stat().st_mtime:
        convert(ct2_dir, out)
    return out
