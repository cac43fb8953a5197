"""A small ONNX model written as protobuf bytes without the `onnx` package (whose import
costs ~0.6 s of CPU a process), for networks avindex builds from weights it reads itself.

    model = onnx_model(nodes=[node("Relu", ["X"], ["Y"])],
                       inputs=[value("X", ["n", 4])], outputs=[value("Y", ["n", 4])],
                       initializers={"W": array})
    session = onnxruntime.InferenceSession(model, ...)

Only what such graphs need: float32, int64 and (for quantized weights) int8, uint8 and
int32 tensors as raw data, integer, float, string and
integer-list attributes, dynamic or fixed input/output dimensions, one opset of the default
domain.
Field numbers are onnx.proto3's (ModelProto, GraphProto, NodeProto, AttributeProto,
TensorProto, ValueInfoProto, TypeProto). No DB, no Qt here.
"""
from __future__ import annotations

import struct

import numpy as np

IR_VERSION = 8
OPSET = 17
_FLOAT, _UINT8, _INT8, _INT32, _INT64 = 1, 2, 3, 6, 7      # TensorProto.DataType
_TYPES = {np.dtype(np.float32): _FLOAT, np.dtype(np.uint8): _UINT8, np.dtype(np.int8): _INT8,
          np.dtype(np.int32): _INT32, np.dtype(np.int64): _INT64}
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_INTS = 1, 2, 3, 7   # AttributeProto.AttributeType


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1                      # negative int64s as two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(int(value))


def _bytes(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def _str(field: int, text: str) -> bytes:
    return _bytes(field, text.encode("utf-8"))


def tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto: dims (1), data_type (2), name (8), raw_data (9, little-endian)."""
    a = np.asarray(array)
    kind = _TYPES.get(a.dtype)
    if kind is None:
        raise ValueError(f"unsupported tensor type {a.dtype}")
    out = b"".join(_int(1, d) for d in a.shape) + _int(2, kind) + _str(8, name)
    return out + _bytes(9, np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes())


def node(op: str, inputs: list[str], outputs: list[str], **attrs) -> bytes:
    """NodeProto: input (1), output (2), op_type (4), attribute (5)."""
    out = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs)
    out += _str(4, op)
    for name, v in attrs.items():
        if isinstance(v, float):            # AttributeProto: name (1), f (2), type (20)
            attr = _str(1, name) + _key(2, 5) + struct.pack("<f", v) + _int(20, _ATTR_FLOAT)
        elif isinstance(v, str):            # s (4)
            attr = _str(1, name) + _str(4, v) + _int(20, _ATTR_STRING)
        elif isinstance(v, (list, tuple)):  # ints (8), one key per value (unpacked)
            attr = _str(1, name) + b"".join(_int(8, i) for i in v) + _int(20, _ATTR_INTS)
        else:                               # i (3)
            attr = _str(1, name) + _int(3, v) + _int(20, _ATTR_INT)
        out += _bytes(5, attr)
    return out


def value(name: str, dims: list, elem_type: int = _FLOAT) -> bytes:
    """ValueInfoProto: name (1), type (2) = TypeProto.tensor_type (1): elem_type (1),
    shape (2) of dims (1), each dim_value (1) or dim_param (2)."""
    shape = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _str(2, d)) for d in dims)
    return _str(1, name) + _bytes(2, _bytes(1, _int(1, elem_type) + _bytes(2, shape)))


def onnx_model(nodes: list[bytes], inputs: list[bytes], outputs: list[bytes],
               initializers: dict[str, np.ndarray], name: str = "graph") -> bytes:
    """ModelProto: ir_version (1), graph (7), opset_import (8); GraphProto: node (1),
    name (2), initializer (5), input (11), output (12)."""
    graph = b"".join(_bytes(1, n) for n in nodes) + _str(2, name)
    graph += b"".join(_bytes(5, tensor(k, v)) for k, v in initializers.items())
    graph += b"".join(_bytes(11, v) for v in inputs) + b"".join(_bytes(12, v) for v in outputs)
    opset = _str(1, "") + _int(2, OPSET)
    return _int(1, IR_VERSION) + _bytes(7, graph) + _bytes(8, opset)
