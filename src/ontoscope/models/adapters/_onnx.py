"""A minimal reader of ONNX model files: the graph's nodes and initialisers, with no ``onnx`` package.

The adapters take published weights from the ONNX graphs their packages ship (Basic Pitch, Silero VAD). An
ONNX file is a protobuf ``ModelProto``; this walks its wire format (varints, length-delimited fields) far
enough to read ``graph.node`` (op type, inputs, outputs, integer attributes) and ``graph.initializer``
(float and integer tensors, raw or packed). The tests check it against the ``onnx`` package.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ontoscope.errors import ConfigError

__all__ = ["read_onnx"]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of a protobuf message: ints for varints and fixed, bytes otherwise."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos:pos + n]), pos + n
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ConfigError(f"unsupported protobuf wire type {wire}: not an ONNX model file")
        yield num, wire, value


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(wire: int, value: int | bytes) -> list[int]:
    """A repeated int64 field: one varint, or a packed run of them."""
    if wire == 0:
        return [_signed(int(value))]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(_signed(v))
    return out


_DTYPES = {1: np.float32, 6: np.int32, 7: np.int64, 11: np.float64}


def _tensor(buf: bytes) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    dtype, name, raw = 1, "", None
    floats: list[float] = []
    ints: list[int] = []
    for num, wire, value in _fields(buf):
        if num == 1:
            dims += _ints(wire, value)
        elif num == 2:
            dtype = int(value)
        elif num == 4:
            floats += (list(struct.unpack(f"<{len(value) // 4}f", value)) if wire == 2
                       else [struct.unpack("<f", int(value).to_bytes(4, "little"))[0]])
        elif num in (5, 7):
            ints += _ints(wire, value)
        elif num == 8:
            name = value.decode()
        elif num == 9:
            raw = value
        elif num == 14 and int(value) == 1:
            raise ConfigError(f"ONNX tensor {name!r} keeps its data in an external file, which is not read here")
    if dtype not in _DTYPES:
        raise ConfigError(f"unsupported ONNX tensor type {dtype} for {name!r}")
    if raw is not None:
        arr = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<")).copy()
    else:
        arr = np.asarray(floats if dtype in (1, 11) else ints, dtype=_DTYPES[dtype])
    return name, arr.reshape(dims).astype(_DTYPES[dtype])


def _node(buf: bytes) -> dict:
    node: dict = {"inputs": [], "outputs": [], "op": "", "attrs": {}}
    for num, _wire, value in _fields(buf):
        if num == 1:
            node["inputs"].append(value.decode())
        elif num == 2:
            node["outputs"].append(value.decode())
        elif num == 4:
            node["op"] = value.decode()
        elif num == 5:
            name, ints, i = "", [], None
            for anum, awire, avalue in _fields(value):
                if anum == 1:
                    name = avalue.decode()
                elif anum == 3:
                    i = _signed(int(avalue))
                elif anum == 8:
                    ints += _ints(awire, avalue)
            node["attrs"][name] = ints if ints else i
    return node


def read_onnx(path: str | Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The nodes (``op``, ``inputs``, ``outputs``, integer ``attrs``) and initialisers of an ONNX file."""
    data = Path(path).read_bytes()
    graph = next((v for num, wire, v in _fields(data) if num == 7 and wire == 2), None)
    if graph is None:
        raise ConfigError(f"{path} holds no ONNX graph; reinstall the package that ships it")
    nodes, inits = [], {}
    for num, wire, value in _fields(graph):
        if num == 1 and wire == 2:
            nodes.append(_node(value))
        elif num == 5 and wire == 2:
            name, arr = _tensor(value)
            inits[name] = arr
    return nodes, inits
