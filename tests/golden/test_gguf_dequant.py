"""Golden test: the GGUF reader (src/io/gguf.cpp) against a numpy port of gguf-py's dequantization.

Writes GGUF files of versions 1, 2 and 3 holding random tensors of every type the reader converts
(F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K) and metadata of every value type, runs
tests/golden/gguf_harness on each, and compares
  - every tensor bit for bit with gguf-py's dequantize, ported below. One exception: an F16 NaN only
    has to come out NaN. numpy's software conversion keeps a signalling NaN's payload as it is, while
    the F16C instruction (which numpy and ggml use where the CPU has it) sets the quiet bit, so
    the payload bits depend on the machine and are not part of the contract;
  - the tensor list (name, type name, row-major shape) and every metadata value as describe() prints it.
Random bytes are valid blocks once their f16 scales are finite: the scales are drawn from a sane range,
plus 0, -0, the smallest subnormal and the largest finite f16 in the first blocks. F16 and BF16 tensors
hold all 65536 bit patterns.
"""
import os
import struct
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import run_command  # noqa: E402

HARNESS = os.environ["UNIVERSAE_GGUF_HARNESS"]

# ---------------------------------------------------------------------------------------------------
# A faithful port of the dequantization in gguf-py/gguf/quants.py, ggml-org/llama.cpp @
# 150f157acf0fd4bd5379bdb3aae3dde1aa1397a5 (MIT licence): the dequantize_blocks bodies of BF16, Q4_0,
# Q8_0, Q4_K (with get_scale_min) and Q6_K, and dequantize() for F32 and F16, unchanged but for the
# class scaffolding. Blocks arrive as a (n_blocks, type_size) uint8 array.
QK_K = 256
F32, F16, Q4_0, Q8_0, Q4_K, Q6_K, BF16 = 0, 1, 2, 8, 12, 14, 30
QUANT_SIZES = {F32: (1, 4), F16: (1, 2), Q4_0: (32, 2 + 16), Q8_0: (32, 2 + 32),
               Q4_K: (256, 2 + 2 + QK_K // 2 + 12), Q6_K: (256, 2 + QK_K // 2 + QK_K // 4 + QK_K // 16),
               BF16: (1, 2)}
TYPE_NAMES = {F32: "F32", F16: "F16", Q4_0: "Q4_0", Q8_0: "Q8_0", Q4_K: "Q4_K", Q6_K: "Q6_K", BF16: "BF16"}


def bf16_dequantize_blocks(blocks):
    return (blocks.view(np.int16).astype(np.int32) << 16).view(np.float32)


def q4_0_dequantize_blocks(blocks, block_size=32):
    n_blocks = blocks.shape[0]

    d, qs = np.hsplit(blocks, [2])

    d = d.view(np.float16).astype(np.float32)

    qs = qs.reshape((n_blocks, -1, 1, block_size // 2)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2, 1))
    qs = (qs & np.uint8(0x0F)).reshape((n_blocks, -1)).astype(np.int8) - np.int8(8)

    return (d * qs.astype(np.float32))


def q8_0_dequantize_blocks(blocks):
    d, x = np.split(blocks, [2], axis=1)
    d = d.view(np.float16).astype(np.float32)
    x = x.view(np.int8).astype(np.float32)

    return (x * d)


def q4_k_get_scale_min(scales):
    n_blocks = scales.shape[0]
    scales = scales.view(np.uint8)
    scales = scales.reshape((n_blocks, 3, 4))
    d, m, m_d = np.split(scales, 3, axis=-2)

    sc = np.concatenate([d & 0x3F, (m_d & 0x0F) | ((d >> 2) & 0x30)], axis=-1)
    min = np.concatenate([m & 0x3F, (m_d >> 4) | ((m >> 2) & 0x30)], axis=-1)

    return (sc.reshape((n_blocks, 8)), min.reshape((n_blocks, 8)))


def q4_k_dequantize_blocks(blocks, K_SCALE_SIZE=12):
    n_blocks = blocks.shape[0]

    d, rest = np.hsplit(blocks, [2])
    dmin, rest = np.hsplit(rest, [2])
    scales, qs = np.hsplit(rest, [K_SCALE_SIZE])

    d = d.view(np.float16).astype(np.float32)
    dmin = dmin.view(np.float16).astype(np.float32)

    sc, m = q4_k_get_scale_min(scales)

    d = (d * sc.astype(np.float32)).reshape((n_blocks, -1, 1))
    dm = (dmin * m.astype(np.float32)).reshape((n_blocks, -1, 1))

    qs = qs.reshape((n_blocks, -1, 1, 32)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2, 1))
    qs = (qs & np.uint8(0x0F)).reshape((n_blocks, -1, 32)).astype(np.float32)

    return (d * qs - dm).reshape((n_blocks, QK_K))


def q6_k_dequantize_blocks(blocks):
    n_blocks = blocks.shape[0]

    ql, rest = np.hsplit(blocks, [QK_K // 2])
    qh, rest = np.hsplit(rest, [QK_K // 4])
    scales, d = np.hsplit(rest, [QK_K // 16])

    scales = scales.view(np.int8).astype(np.float32)
    d = d.view(np.float16).astype(np.float32)
    d = (d * scales).reshape((n_blocks, QK_K // 16, 1))

    ql = ql.reshape((n_blocks, -1, 1, 64)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2, 1))
    ql = (ql & np.uint8(0x0F)).reshape((n_blocks, -1, 32))
    qh = qh.reshape((n_blocks, -1, 1, 32)) >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape((1, 1, 4, 1))
    qh = (qh & np.uint8(0x03)).reshape((n_blocks, -1, 32))
    q = (ql | (qh << np.uint8(4))).astype(np.int8) - np.int8(32)
    q = q.reshape((n_blocks, QK_K // 16, -1)).astype(np.float32)

    return (d * q).reshape((n_blocks, QK_K))


BLOCK_DEQUANTIZERS = {BF16: bf16_dequantize_blocks, Q4_0: q4_0_dequantize_blocks, Q8_0: q8_0_dequantize_blocks,
                      Q4_K: q4_k_dequantize_blocks, Q6_K: q6_k_dequantize_blocks}


def dequantize(data, qtype, shape):
    """quants.dequantize of the raw bytes of a tensor of row-major `shape`, as float32 of that shape."""
    data = np.frombuffer(data, dtype=np.uint8)
    if qtype == F32:
        return data.view(np.float32).reshape(shape)
    if qtype == F16:
        return data.view(np.float16).astype(np.float32).reshape(shape)
    _, type_size = QUANT_SIZES[qtype]
    return BLOCK_DEQUANTIZERS[qtype](data.reshape((-1, type_size))).reshape(shape)

# ---------------------------------------------------------------------------------------------------
# Writing GGUF (gguf.md): counts, string and array lengths and dimensions are uint32 in version 1,
# uint64 in versions 2 and 3; tensor offsets are from the start of the aligned data section.

UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
VALUE_FORMATS = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i", FLOAT32: "<f",
                 BOOL: "<B", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}
VALUE_NAMES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array",
               "uint64", "int64", "float64"]


class GgufWriter:
    def __init__(self, version):
        self.length_format = "<I" if version == 1 else "<Q"
        self.version = version

    def string(self, s):
        b = s.encode()
        return struct.pack(self.length_format, len(b)) + b

    def value(self, vtype, value):
        """A value of type vtype; an array is (element type, [elements])."""
        if vtype == STRING:
            return self.string(value)
        if vtype == ARRAY:
            etype, items = value
            out = struct.pack("<I", etype) + struct.pack(self.length_format, len(items))
            return out + b"".join(self.value(etype, item) for item in items)
        return struct.pack(VALUE_FORMATS[vtype], value)

    def file(self, metadata, tensors, alignment=32):
        """metadata: [(key, type, value)]; tensors: [(name, ggml type, row-major shape, raw bytes)]."""
        out = b"GGUF" + struct.pack("<I", self.version)
        out += struct.pack(self.length_format, len(tensors)) + struct.pack(self.length_format, len(metadata))
        for key, vtype, value in metadata:
            out += self.string(key) + struct.pack("<I", vtype) + self.value(vtype, value)
        data = b""
        dim_format = "<I" if self.version == 1 else "<Q"
        for name, qtype, shape, raw in tensors:
            out += self.string(name) + struct.pack("<I", len(shape))
            out += b"".join(struct.pack(dim_format, d) for d in reversed(shape))  # ggml: fastest first
            out += struct.pack("<I", qtype) + struct.pack("<Q", len(data))
            data += raw + b"\0" * (-len(raw) % alignment)
        out += b"\0" * (-len(out) % alignment)
        return out + data


def describe(vtype, value):
    """What io::gguf::describe prints for the value."""
    def element(etype, v):
        if etype == BOOL:
            return "true" if v else "false"
        if etype == FLOAT32:
            return "%.9g" % float(np.float32(v))
        if etype == FLOAT64:
            return "%.17g" % v
        if etype == STRING:
            b = v.encode()
            return '"%s"' % v if len(b) <= 64 else '"%s"... (%d bytes)' % (b[:64].decode(), len(b))
        return str(v)
    if vtype != ARRAY:
        return "%s %s" % (VALUE_NAMES[vtype], element(vtype, value))
    etype, items = value
    s = "array[%s] %d" % (VALUE_NAMES[etype], len(items))
    if etype == ARRAY:
        return s
    shown = ", ".join(element(etype, v) for v in items[:8])
    more = ", ..., (%d more)" % (len(items) - 8) if len(items) > 8 else ""
    return "%s: [%s%s]" % (s, shown, more)

# ---------------------------------------------------------------------------------------------------


def f16_scales(rng, n):
    """n float16 scales as bytes (n, 2): sane random ones, the first five special when n >= 8."""
    d = (rng.standard_normal(n) * 0.02).astype(np.float16)
    if n >= 8:
        d[:5] = np.array([0.0, -0.0, 2.0 ** -24, 65504.0, -1.0], dtype=np.float16)
    return d.view(np.uint8).reshape((n, 2))


def random_blocks(rng, qtype, n_blocks):
    """n_blocks valid blocks of qtype as bytes: f16 scales in their places, random bytes elsewhere."""
    _, type_size = QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    if qtype in (Q4_0, Q8_0):
        blocks[:, 0:2] = f16_scales(rng, n_blocks)
    elif qtype == Q4_K:
        blocks[:, 0:2] = f16_scales(rng, n_blocks)
        blocks[:, 2:4] = f16_scales(rng, n_blocks)[::-1]
    elif qtype == Q6_K:
        blocks[:, type_size - 2:] = f16_scales(rng, n_blocks)
    return blocks.tobytes()


def make_tensors(rng):
    """[(name, ggml type, row-major shape, raw bytes)] covering every converted type."""
    every_16_bits = np.arange(65536, dtype=np.uint16).tobytes()
    f32 = rng.standard_normal((3, 40)).astype(np.float32)
    f32[0, :4] = [np.inf, -np.inf, np.nan, -0.0]
    tensors = [("f32.weight", F32, (3, 40), f32.tobytes()),
               ("f16.weight", F16, (256, 256), every_16_bits),
               ("bf16.weight", BF16, (64, 1024), every_16_bits),
               ("blk.0.q8_0", Q8_0, (5, 96), None),
               ("blk.0.q4_0", Q4_0, (8, 64), None),
               ("blk.1.q4_k", Q4_K, (4, 512), None),
               ("blk.1.q6_k", Q6_K, (2, 4, 256), None),
               ("vector.q8_0", Q8_0, (32,), None)]
    out = []
    for name, qtype, shape, raw in tensors:
        if raw is None:
            block_size, _ = QUANT_SIZES[qtype]
            raw = random_blocks(rng, qtype, int(np.prod(shape)) // block_size)
        out.append((name, qtype, shape, raw))
    return out


def make_metadata(version, alignment):
    """[(key, type, value)] with every value type the version has (64-bit ones from version 2)."""
    md = [("general.architecture", STRING, "llama"),
          ("test.u8", UINT8, 200), ("test.i8", INT8, -5), ("test.u16", UINT16, 60000), ("test.i16", INT16, -30000),
          ("test.u32", UINT32, 4000000000), ("test.i32", INT32, -2000000000), ("test.f32", FLOAT32, 1e-5),
          ("test.bool", BOOL, True), ("test.false", BOOL, False),
          ("test.long_string", STRING, "x" * 70),
          ("tokenizer.ggml.tokens", ARRAY, (STRING, ["<unk>", "<s>", "</s>", "\u2581the", "a", "b", "c", "d", "e", "f"])),
          ("tokenizer.ggml.scores", ARRAY, (FLOAT32, [0.0, -1.5, 2.25])),
          ("test.empty", ARRAY, (INT32, [])),
          ("test.nested", ARRAY, (ARRAY, [(UINT8, [1, 2]), (STRING, ["x"])]))]
    if version >= 2:
        md += [("test.u64", UINT64, 2 ** 64 - 1), ("test.i64", INT64, -2 ** 62), ("test.f64", FLOAT64, 0.1),
               ("test.af64", ARRAY, (FLOAT64, [1e300, -2.5]))]
    if alignment != 32:
        md.append(("general.alignment", UINT32, alignment))
    return md


class GgufAgainstGgufPy(unittest.TestCase):
    def check(self, version, alignment):
        rng = np.random.default_rng(1000 + version)  # fixed: a failure reproduces
        tensors = make_tensors(rng)
        metadata = make_metadata(version, alignment)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "random_v%d.gguf" % version)
            with open(path, "wb") as f:
                f.write(GgufWriter(version).file(metadata, tensors, alignment))
            r = run_command([HARNESS, path, tmp], timeout=120, cwd=None)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(tmp, "metadata.txt"), encoding="utf-8") as f:
                got_metadata = f.read().splitlines()
            with open(os.path.join(tmp, "tensors.txt")) as f:
                got_tensors = f.read().splitlines()
            got = {name: np.fromfile(os.path.join(tmp, name + ".f32"), dtype=np.float32) for name, *_ in tensors}
        self.assertEqual(got_metadata, ["%s\t%s" % (key, describe(t, v)) for key, t, v in metadata])
        self.assertEqual(got_tensors, ["%s\t%s\t[%s]" % (name, TYPE_NAMES[q], ", ".join(map(str, shape)))
                                       for name, q, shape, _ in tensors])
        for name, qtype, shape, raw in tensors:
            want = dequantize(raw, qtype, shape).ravel()
            have = got[name]
            self.assertEqual(have.shape, want.shape, name)
            same = have.view(np.uint32) == want.view(np.uint32)
            if qtype == F16:  # NaN payloads are machine-dependent (see the top of this file)
                same |= np.isnan(have) & np.isnan(want)
            bad = np.flatnonzero(~same)
            self.assertEqual(bad.size, 0, "%s (%s): %d of %d elements differ, first at %s: got %r, want %r" % (
                name, TYPE_NAMES[qtype], bad.size, want.size, bad[:1], have[bad[:1]], want[bad[:1]]))
            if qtype not in (F32, F16, BF16):
                self.assertGreater(np.unique(want).size, want.size // 4, "%s: the blocks should not be degenerate" % name)

    def test_version_3_aligned_to_64(self):
        self.check(3, 64)

    def test_version_2(self):
        self.check(2, 32)

    def test_version_1(self):
        self.check(1, 32)

    def test_truncated_file_is_a_usage_error_naming_it(self):
        rng = np.random.default_rng(7)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "truncated.gguf")
            data = GgufWriter(3).file(make_metadata(3, 32), make_tensors(rng))
            with open(path, "wb") as f:
                f.write(data[: len(data) - 1000])
            r = run_command([HARNESS, path, tmp], timeout=120, cwd=None)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(path + ": tensor '", r.stderr)
        self.assertIn("the file is truncated", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
