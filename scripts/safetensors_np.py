"""safetensors with numpy only (Debian has no python3-safetensors): the published layout
(https://github.com/huggingface/safetensors#format), written the way the Python library writes it,
so tests can produce sparsify and SAELens SAEs without universae.

bfloat16 has no numpy dtype: BF16 tensors are given and returned as float32 arrays, rounded to
nearest even on write (torch's conversion) and widened exactly on read.
"""
import json
import struct

import numpy as np

_NUMPY = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}
_ALIGN = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2}


def to_bf16_bits(a):
    """float32 → bfloat16 bit patterns (uint16), round to nearest even."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def from_bf16_bits(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_to(a, dtype):
    """The float32 values a tensor of `dtype` holds after writing `a`."""
    if dtype == "BF16":
        return from_bf16_bits(to_bf16_bits(a))
    return np.asarray(a, dtype=_NUMPY[dtype]).astype(np.float32) if dtype != "F64" else np.asarray(a, np.float64)


def encode(tensors, metadata=None):
    """tensors: {name: (array, dtype string)} → the file's bytes. Data is laid out by descending
    alignment, then name, as safetensors' serialize() does."""
    order = sorted(tensors, key=lambda n: (-_ALIGN[tensors[n][1]], n))
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in order:
        array, dtype = tensors[name]
        raw = to_bf16_bits(array).tobytes() if dtype == "BF16" else np.ascontiguousarray(array, _NUMPY[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(np.shape(array)), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def save(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(encode(tensors, metadata))


def load(path):
    """→ ({name: float32/float64 array}, {name: dtype}, metadata, {name: raw bytes})."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", None)
    arrays, dtypes, raw = {}, {}, {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        chunk = data[8 + n + b:8 + n + end]
        raw[name] = chunk
        dtypes[name] = e["dtype"]
        if e["dtype"] == "BF16":
            arrays[name] = from_bf16_bits(np.frombuffer(chunk, np.uint16)).reshape(e["shape"])
        else:
            arrays[name] = np.frombuffer(chunk, _NUMPY[e["dtype"]]).reshape(e["shape"])
    return arrays, dtypes, metadata, raw
