#include "io/gguf.hpp"

#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <set>
#include <system_error>

#include "core/error.hpp"
#include "io/mapped_file.hpp"
#include "io/text_file.hpp"

// This file is compiled with -ffp-contract=off (src/CMakeLists.txt): the kernels' d * q - m must round
// the product and the difference separately, as ggml's reference C and gguf-py's numpy do, also where
// the compiler could fuse them into one FMA.

namespace universae::io::gguf {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF files are read as little-endian; this reader assumes a little-endian host");

// The file, mapped read-only and shared: ranks on one node map the same page-cache pages, and F32
// tensors are handed out as views that keep the mapping alive.
namespace {

constexpr int64_t kQK_K = 256;
constexpr uint32_t kMaxDims = 4;     // GGML_MAX_DIMS: ggml refuses more, and so do we
constexpr int kMaxArrayNesting = 8;  // arrays of arrays: a bound on the recursion, not a format limit
constexpr const char* kSupported = "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K";

struct TypeTraits {
  const char* name;        // nullptr: an id ggml has removed
  int64_t block_elements;  // elements per block
  int64_t block_bytes;     // bytes per block
};

// ggml's types by id: names and (block size, type size) from gguf-py/gguf/constants.py
// GGML_QUANT_SIZES (ggml-org/llama.cpp). Ids 4, 5, 31..33 and 36..38 were removed from ggml.
constexpr std::array<TypeTraits, 40> kTypes = {{
    {"F32", 1, 4},          {"F16", 1, 2},
    {"Q4_0", 32, 2 + 16},   {"Q4_1", 32, 2 + 2 + 16},
    {nullptr, 0, 0},        {nullptr, 0, 0},
    {"Q5_0", 32, 2 + 4 + 16},                               {"Q5_1", 32, 2 + 2 + 4 + 16},
    {"Q8_0", 32, 2 + 32},                                   {"Q8_1", 32, 4 + 4 + 32},
    {"Q2_K", kQK_K, 2 + 2 + kQK_K / 16 + kQK_K / 4},        {"Q3_K", kQK_K, 2 + kQK_K / 4 + kQK_K / 8 + 12},
    {"Q4_K", kQK_K, 2 + 2 + kQK_K / 2 + 12},                {"Q5_K", kQK_K, 2 + 2 + kQK_K / 2 + kQK_K / 8 + 12},
    {"Q6_K", kQK_K, 2 + kQK_K / 2 + kQK_K / 4 + kQK_K / 16}, {"Q8_K", kQK_K, 4 + kQK_K + kQK_K / 8},
    {"IQ2_XXS", kQK_K, 2 + kQK_K / 4},                      {"IQ2_XS", kQK_K, 2 + kQK_K / 4 + kQK_K / 32},
    {"IQ3_XXS", kQK_K, 2 + kQK_K / 4 + kQK_K / 8},          {"IQ1_S", kQK_K, 2 + kQK_K / 8 + kQK_K / 16},
    {"IQ4_NL", 32, 2 + 16},                                 {"IQ3_S", kQK_K, 2 + kQK_K / 4 + kQK_K / 8 + kQK_K / 32 + 4},
    {"IQ2_S", kQK_K, 2 + kQK_K / 4 + kQK_K / 16},           {"IQ4_XS", kQK_K, 2 + 2 + kQK_K / 2 + kQK_K / 64},
    {"I8", 1, 1},           {"I16", 1, 2},
    {"I32", 1, 4},          {"I64", 1, 8},
    {"F64", 1, 8},          {"IQ1_M", kQK_K, kQK_K / 8 + kQK_K / 16 + kQK_K / 32},
    {"BF16", 1, 2},         {nullptr, 0, 0},
    {nullptr, 0, 0},        {nullptr, 0, 0},
    {"TQ1_0", kQK_K, 2 + 4 * 13},                           {"TQ2_0", kQK_K, 2 + 64},
    {nullptr, 0, 0},        {nullptr, 0, 0},
    {nullptr, 0, 0},        {"MXFP4", 32, 1 + 16},
}};

const TypeTraits* traits(uint32_t ggml_type) {
  if (ggml_type >= kTypes.size() || kTypes[ggml_type].name == nullptr) return nullptr;
  return &kTypes[ggml_type];
}

uint32_t ggml_id(TensorType type) {
  switch (type) {
    case TensorType::kF32: return 0;
    case TensorType::kF16: return 1;
    case TensorType::kBF16: return 30;
    case TensorType::kQ8_0: return 8;
    case TensorType::kQ4_0: return 2;
    case TensorType::kQ4_K: return 12;
    case TensorType::kQ6_K: return 14;
    case TensorType::kOther: break;
  }
  throw InternalError("gguf: no ggml type id for TensorType::kOther");
}

// IEEE binary16 bits to float32, bit for bit as numpy's npy_halfbits_to_floatbits (subnormals exact,
// NaN payloads kept), so that the golden test can compare all 65536 values exactly.
float half_to_float(uint16_t h) {
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  const uint32_t exponent = h & 0x7c00u, significand = h & 0x03ffu;
  uint32_t bits = sign;
  if (exponent == 0x7c00u) {
    bits |= 0x7f800000u | (significand << 13);
  } else if (exponent != 0) {
    bits |= (static_cast<uint32_t>(h & 0x7fffu) + 0x1c000u) << 13;
  } else if (significand != 0) {  // subnormal: shift the leading 1 into the implicit bit
    uint32_t s = significand << 1, shift = 0;
    while ((s & 0x0400u) == 0) s <<= 1, ++shift;
    bits |= ((127 - 15 - shift) << 23) | ((s & 0x03ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

float load_half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return half_to_float(h);
}

// The kernels below follow ggml/src/ggml-quants.c dequantize_row_* operation for operation (the same
// products in the same order), block layouts as ggml-common.h declares them.

// block_q8_0 (34 bytes): d (f16), qs[32] (int8); y = qs * d.
void dequantize_q8_0(const uint8_t* x, int64_t blocks, float* y) {
  for (int64_t i = 0; i < blocks; ++i, x += 34, y += 32) {
    const float d = load_half(x);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(x[2 + j])) * d;
  }
}

// block_q4_0 (18 bytes): d (f16), qs[16]; low nibbles are elements 0..15, high nibbles 16..31, less 8.
void dequantize_q4_0(const uint8_t* x, int64_t blocks, float* y) {
  for (int64_t i = 0; i < blocks; ++i, x += 18, y += 32) {
    const float d = load_half(x);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((x[2 + j] & 0x0F) - 8) * d;
      y[j + 16] = static_cast<float>((x[2 + j] >> 4) - 8) * d;
    }
  }
}

// The 6-bit scale and min of sub-block j from the 12 packed bytes of a Q4_K block (get_scale_min_k4).
void scale_min_k4(int j, const uint8_t* q, uint8_t& scale, uint8_t& min) {
  if (j < 4) {
    scale = q[j] & 63;
    min = q[j + 4] & 63;
  } else {
    scale = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// block_q4_K (144 bytes): d, dmin (f16), scales[12], qs[128]: 8 sub-blocks of 32, each d*scale*q - dmin*min.
void dequantize_q4_k(const uint8_t* x, int64_t blocks, float* y) {
  for (int64_t i = 0; i < blocks; ++i, x += 144) {
    const float d = load_half(x), dmin = load_half(x + 2);
    const uint8_t* scales = x + 4;
    const uint8_t* q = x + 16;
    for (int j = 0, is = 0; j < kQK_K; j += 64, is += 2, q += 32) {
      uint8_t sc, m;
      scale_min_k4(is, scales, sc, m);
      const float d1 = d * sc, m1 = dmin * m;
      scale_min_k4(is + 1, scales, sc, m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

// block_q6_K (210 bytes): ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d (f16):
// 16 sub-blocks of 16, each d * scale * (q - 32).
void dequantize_q6_k(const uint8_t* x, int64_t blocks, float* y) {
  for (int64_t i = 0; i < blocks; ++i, x += 210) {
    const float d = load_half(x + 208);
    const uint8_t* ql = x;
    const uint8_t* qh = x + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
    for (int n = 0; n < kQK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = static_cast<int8_t>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = static_cast<int8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

}  // namespace

const char* type_name(uint32_t ggml_type) {
  const TypeTraits* t = traits(ggml_type);
  return t == nullptr ? "unknown" : t->name;
}

TensorType tensor_type(uint32_t ggml_type) {
  switch (ggml_type) {
    case 0: return TensorType::kF32;
    case 1: return TensorType::kF16;
    case 30: return TensorType::kBF16;
    case 8: return TensorType::kQ8_0;
    case 2: return TensorType::kQ4_0;
    case 12: return TensorType::kQ4_K;
    case 14: return TensorType::kQ6_K;
    default: return TensorType::kOther;
  }
}

void dequantize(TensorType type, const void* blocks, int64_t n, float* out) {
  const TypeTraits& t = kTypes[ggml_id(type)];
  if (n < 0 || n % t.block_elements != 0)
    throw InternalError("gguf::dequantize: " + std::to_string(n) + " elements is not a whole number of " + t.name + " blocks");
  const auto* x = static_cast<const uint8_t*>(blocks);
  const int64_t count = n / t.block_elements;
  switch (type) {
    case TensorType::kF32: std::memcpy(out, x, static_cast<size_t>(n) * sizeof(float)); return;
    case TensorType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = load_half(x + 2 * i);
      return;
    case TensorType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t bits = static_cast<uint32_t>(x[2 * i] | (x[2 * i + 1] << 8)) << 16;  // bf16 is the top half of an f32
        std::memcpy(out + i, &bits, sizeof bits);
      }
      return;
    case TensorType::kQ8_0: dequantize_q8_0(x, count, out); return;
    case TensorType::kQ4_0: dequantize_q4_0(x, count, out); return;
    case TensorType::kQ4_K: dequantize_q4_k(x, count, out); return;
    case TensorType::kQ6_K: dequantize_q6_k(x, count, out); return;
    case TensorType::kOther: break;
  }
  throw InternalError("gguf::dequantize: unsupported type");
}

const char* value_type_name(ValueType t) {
  static constexpr const char* names[] = {"uint8", "int8",  "uint16", "int16", "uint32", "int32", "float32",
                                          "bool",  "string", "array", "uint64", "int64", "float64"};
  const auto i = static_cast<uint32_t>(t);
  return i < std::size(names) ? names[i] : "unknown";
}

namespace {

bool is_integer(ValueType t) {
  return t <= ValueType::kInt32 || t == ValueType::kUint64 || t == ValueType::kInt64;
}
bool is_float(ValueType t) { return t == ValueType::kFloat32 || t == ValueType::kFloat64; }

std::string format_double(const char* format, double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}

// Element i of v as describe() shows it.
std::string element_text(const Value& v, size_t i) {
  constexpr size_t kShownBytes = 64;
  switch (v.element_type) {
    case ValueType::kBool: return v.ints[i] != 0 ? "true" : "false";
    case ValueType::kUint64: return std::to_string(static_cast<uint64_t>(v.ints[i]));
    case ValueType::kFloat32: return format_double("%.9g", v.floats[i]);
    case ValueType::kFloat64: return format_double("%.17g", v.floats[i]);
    case ValueType::kString: {
      const std::string& s = v.strings[i];
      if (s.size() <= kShownBytes) return "\"" + s + "\"";
      return "\"" + s.substr(0, kShownBytes) + "\"... (" + std::to_string(s.size()) + " bytes)";
    }
    case ValueType::kArray: return "?";
    default: return std::to_string(v.ints[i]);
  }
}

}  // namespace

std::string describe(const Value& v) {
  if (v.type != ValueType::kArray) return std::string(value_type_name(v.type)) + " " + element_text(v, 0);
  std::string s = std::string("array[") + value_type_name(v.element_type) + "] " + std::to_string(v.count);
  if (v.element_type == ValueType::kArray) return s;
  constexpr uint64_t kShown = 8;
  s += ": [";
  for (uint64_t i = 0; i < std::min(v.count, kShown); ++i) s += (i ? ", " : "") + element_text(v, i);
  if (v.count > kShown) s += ", ..., (" + std::to_string(v.count - kShown) + " more)";
  return s + "]";
}

std::vector<int64_t> TensorInfo::shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

namespace {

// A key or tensor name from the file as messages show it: in quotes, control bytes as \xNN (a corrupt
// file must not write escape sequences to the terminal).
std::string shown_name(const std::string& name) {
  std::string out = "'";
  for (const char ch : name) {
    const auto b = static_cast<unsigned char>(ch);
    if (b >= 0x20 && b != 0x7f) {
      out += ch;
      continue;
    }
    char hex[5];
    std::snprintf(hex, sizeof hex, "\\x%02x", b);
    out += hex;
  }
  return out + "'";
}

// Reads the little-endian fields of the header in order, each checked against the end of the file.
// Errors read "FILE: CONTEXT: WHAT", the context naming the key or tensor being read.
class Cursor {
 public:
  Cursor(const std::string& path, const MappedFile& map) : path_(path), data_(map.data()), size_(map.size()) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }
  uint64_t length_bytes() const { return version_ == 1 ? 4 : 8; }
  void set_version(uint32_t version) { version_ = version; }
  void set_context(std::string context) { context_ = std::move(context); }

  [[noreturn]] void fail(const std::string& what) const {
    throw UsageError(path_ + ": " + (context_.empty() ? "" : context_ + ": ") + what);
  }

  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // A count or length: uint32 in version 1, uint64 from version 2 on.
  uint64_t length(const char* what) { return version_ == 1 ? read<uint32_t>(what) : read<uint64_t>(what); }

  // The number of items that follow, each at least `min_bytes` long; refused when the rest of the file
  // cannot hold them, so a corrupt count never makes us allocate more than the file's size.
  uint64_t count(const char* what, uint64_t min_bytes) {
    const uint64_t n = length(what);
    if (n > left() / min_bytes)
      fail(std::string(what) + " " + std::to_string(n) + " cannot fit in the " + std::to_string(left()) +
           " bytes left in the file (corrupt or truncated)");
    return n;
  }

  std::string string(const char* what) {
    const uint64_t n = length(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  void need(uint64_t n, const char* what) const {
    if (n > left())
      fail(std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
           ", but the file ends at " + std::to_string(size_));
  }

  const std::string& path_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint32_t version_ = 3;
  std::string context_;
};

// Bytes that one value of type t takes at least: what bounds an array's element count.
uint64_t min_value_bytes(ValueType t, uint64_t length_bytes) {
  switch (t) {
    case ValueType::kUint8: case ValueType::kInt8: case ValueType::kBool: return 1;
    case ValueType::kUint16: case ValueType::kInt16: return 2;
    case ValueType::kUint32: case ValueType::kInt32: case ValueType::kFloat32: return 4;
    case ValueType::kUint64: case ValueType::kInt64: case ValueType::kFloat64: return 8;
    case ValueType::kString: return length_bytes;
    case ValueType::kArray: return 4 + length_bytes;
  }
  return 1;
}

ValueType value_type(Cursor& c, const char* what) {
  const uint32_t raw = c.read<uint32_t>(what);
  if (raw > static_cast<uint32_t>(ValueType::kFloat64)) c.fail("unknown value type " + std::to_string(raw));
  return static_cast<ValueType>(raw);
}

// One scalar of type t (not an array), appended to the vector of v that holds its type.
void read_scalar(Cursor& c, ValueType t, Value& v) {
  switch (t) {
    case ValueType::kUint8: v.ints.push_back(c.read<uint8_t>("uint8 value")); return;
    case ValueType::kInt8: v.ints.push_back(c.read<int8_t>("int8 value")); return;
    case ValueType::kUint16: v.ints.push_back(c.read<uint16_t>("uint16 value")); return;
    case ValueType::kInt16: v.ints.push_back(c.read<int16_t>("int16 value")); return;
    case ValueType::kUint32: v.ints.push_back(c.read<uint32_t>("uint32 value")); return;
    case ValueType::kInt32: v.ints.push_back(c.read<int32_t>("int32 value")); return;
    case ValueType::kUint64: v.ints.push_back(static_cast<int64_t>(c.read<uint64_t>("uint64 value"))); return;
    case ValueType::kInt64: v.ints.push_back(c.read<int64_t>("int64 value")); return;
    case ValueType::kFloat32: v.floats.push_back(c.read<float>("float32 value")); return;
    case ValueType::kFloat64: v.floats.push_back(c.read<double>("float64 value")); return;
    case ValueType::kBool: {
      const uint8_t b = c.read<uint8_t>("bool value");
      if (b > 1) c.fail("bool value " + std::to_string(b) + " is neither 0 nor 1");
      v.ints.push_back(b);
      return;
    }
    case ValueType::kString: v.strings.push_back(c.string("string")); return;
    case ValueType::kArray: break;
  }
  throw InternalError("gguf: read_scalar of an array");
}

Value read_value(Cursor& c, ValueType type, int depth) {
  Value v;
  v.type = v.element_type = type;
  if (type != ValueType::kArray) {
    read_scalar(c, type, v);
    return v;
  }
  if (depth >= kMaxArrayNesting) c.fail("arrays nested more than " + std::to_string(kMaxArrayNesting) + " deep");
  v.element_type = value_type(c, "array element type");
  v.count = c.count("array length", min_value_bytes(v.element_type, c.length_bytes()));
  if (v.element_type == ValueType::kArray) {
    for (uint64_t i = 0; i < v.count; ++i) read_value(c, ValueType::kArray, depth + 1);  // each has its own type and length
    return v;
  }
  if (v.element_type == ValueType::kString) v.strings.reserve(v.count);
  else if (is_float(v.element_type)) v.floats.reserve(v.count);
  else v.ints.reserve(v.count);
  for (uint64_t i = 0; i < v.count; ++i) read_scalar(c, v.element_type, v);
  return v;
}

// "GGUF" and the version, which must be 1, 2 or 3 and little-endian.
uint32_t read_preamble(Cursor& c) {
  c.set_context("");
  if (c.left() < 4 || std::memcmp(c.read<std::array<char, 4>>("magic").data(), "GGUF", 4) != 0)
    c.fail("not a GGUF file (it does not start with \"GGUF\")");
  const uint32_t version = c.read<uint32_t>("version");
  const uint32_t swapped = __builtin_bswap32(version);
  if (version > 0xffff && swapped >= 1 && swapped <= 3)
    c.fail("a big-endian GGUF file (version " + std::to_string(swapped) +
           "); only little-endian files are read: convert it with gguf-py's gguf_convert_endian.py");
  if (version < 1 || version > 3) c.fail("GGUF version " + std::to_string(version) + " is not supported (1, 2 and 3 are)");
  c.set_version(version);
  return version;
}

// The key/value pairs, in file order; keys must be unique.
void read_metadata(Cursor& c, uint64_t n_kv, std::vector<std::string>& keys, std::map<std::string, Value>& values) {
  keys.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    c.set_context("key/value " + std::to_string(i));
    std::string key = c.string("key");
    c.set_context("GGUF key " + shown_name(key));
    if (values.count(key) != 0) c.fail("appears twice");
    const ValueType type = value_type(c, "value type");
    values.emplace(key, read_value(c, type, 0));
    keys.push_back(std::move(key));
  }
  c.set_context("");
}

// general.alignment when present: a power of two (ggml refuses anything else), else 32.
uint64_t read_alignment(Cursor& c, const std::map<std::string, Value>& values) {
  const auto it = values.find("general.alignment");
  if (it == values.end()) return 32;
  const Value& v = it->second;
  if (v.type == ValueType::kArray || !is_integer(v.type)) c.fail("general.alignment is not an integer");
  const uint64_t a = static_cast<uint64_t>(v.ints[0]);
  if (v.ints[0] <= 0 || (a & (a - 1)) != 0) c.fail("general.alignment " + std::to_string(v.ints[0]) + " is not a power of two");
  return a;
}

// One tensor info record: name, dimensions (fastest first), ggml type, offset from the data section.
TensorInfo read_tensor_info(Cursor& c, uint64_t index, uint32_t version) {
  TensorInfo t;
  c.set_context("tensor info " + std::to_string(index));
  t.name = c.string("tensor name");
  c.set_context("tensor " + shown_name(t.name));
  const uint32_t n_dims = c.read<uint32_t>("dimension count");
  if (n_dims > kMaxDims) c.fail(std::to_string(n_dims) + " dimensions (ggml allows at most " + std::to_string(kMaxDims) + ")");
  for (uint32_t d = 0; d < n_dims; ++d) {
    const uint64_t size = version == 1 ? c.read<uint32_t>("dimension") : c.read<uint64_t>("dimension");
    if (size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) c.fail("dimension " + std::to_string(size) + " is too large");
    t.ne.push_back(static_cast<int64_t>(size));
  }
  t.ggml_type = c.read<uint32_t>("type");
  t.offset = c.read<uint64_t>("offset");
  return t;
}

// The tensor's type and byte size: a type ggml knows, whole blocks along ne[0], and a size that fits.
void size_tensor(const Cursor& c, TensorInfo& t) {
  const TypeTraits* tt = traits(t.ggml_type);
  if (tt == nullptr) c.fail("ggml type " + std::to_string(t.ggml_type) + " is not one this reader knows");
  t.type = tensor_type(t.ggml_type);
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  // LibTorch multiplies the dimensions in order (numel, strides), so their product with a zero dimension
  // counted as 1 must fit too: [2^62, 2^62, 0] holds no element, but is no tensor.
  uint64_t numel = 1, extent = 1;
  for (int64_t d : t.ne) {
    const uint64_t u = std::max<uint64_t>(static_cast<uint64_t>(d), 1);
    if (extent > kMax / u) c.fail("shape " + shape_text(t.shape()) + " has more than 2^63 elements");
    extent *= u;
    numel *= static_cast<uint64_t>(d);
  }
  const uint64_t block = static_cast<uint64_t>(tt->block_elements);
  const uint64_t row = t.ne.empty() ? 1 : static_cast<uint64_t>(t.ne[0]);
  if (row % block != 0 || numel % block != 0)
    c.fail(std::string(tt->name) + " rows of " + std::to_string(row) + " elements are not whole blocks of " + std::to_string(block));
  const uint64_t blocks = numel / block;
  if (blocks > kMax / static_cast<uint64_t>(tt->block_bytes)) c.fail("shape " + shape_text(t.shape()) + " is too large");
  t.bytes = blocks * static_cast<uint64_t>(tt->block_bytes);
}

// Every tensor's data inside the file, aligned, not overlapping another; names unique. Offsets become
// offsets from the start of the file.
void place_tensors(Cursor& c, std::vector<TensorInfo>& tensors, uint64_t data_start, uint64_t file_size, uint64_t alignment) {
  std::set<std::string> names;
  const uint64_t data_size = data_start <= file_size ? file_size - data_start : 0;
  for (TensorInfo& t : tensors) {
    c.set_context("tensor " + shown_name(t.name));
    if (!names.insert(t.name).second) c.fail("the name appears twice");
    if (data_start > file_size)
      c.fail("the tensor data would start at offset " + std::to_string(data_start) + ", past the end of the file (" +
             std::to_string(file_size) + " bytes): the file is truncated");
    if (t.offset % alignment != 0)
      c.fail("offset " + std::to_string(t.offset) + " is not a multiple of the alignment " + std::to_string(alignment));
    if (t.offset > data_size || t.bytes > data_size - t.offset)
      c.fail("data [" + std::to_string(t.offset) + ", " + std::to_string(t.offset + t.bytes) +
             ") runs past the end of the data section (" + std::to_string(data_size) +
             " bytes): the file is truncated or the tensor info is wrong");
    t.offset += data_start;
  }
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  c.set_context("");
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->offset < by_offset[i - 1]->offset + by_offset[i - 1]->bytes)
      c.fail("tensors " + shown_name(by_offset[i - 1]->name) + " and " + shown_name(by_offset[i]->name) + " overlap in the data section");
}

}  // namespace

Reader::Reader(std::string path) : path_(std::move(path)), map_(std::make_shared<const MappedFile>(path_, "a GGUF file")) {
  Cursor c(path_, *map_);
  version_ = read_preamble(c);
  const uint64_t length = c.length_bytes();
  const uint64_t n_tensors = c.count("tensor count", length + 4 + 4 + 8);  // name, n_dims, type, offset
  const uint64_t n_kv = c.count("key/value count", length + 4 + 1);       // key, value type, value
  read_metadata(c, n_kv, keys_, values_);
  alignment_ = read_alignment(c, values_);
  tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    tensors_.push_back(read_tensor_info(c, i, version_));
    size_tensor(c, tensors_.back());
  }
  const uint64_t data_start = c.pos() + (alignment_ - c.pos() % alignment_) % alignment_;
  place_tensors(c, tensors_, data_start, map_->size(), alignment_);
}

const TensorInfo* Reader::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorInfo& Reader::tensor_or_throw(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (t == nullptr) throw UsageError(path_ + ": no tensor '" + name + "'");
  return *t;
}

const Value* Reader::value(const std::string& key) const {
  const auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

const Value& Reader::value_or_throw(const std::string& key) const {
  const Value* v = value(key);
  if (v == nullptr) throw UsageError(path_ + ": GGUF key '" + key + "' is missing");
  return *v;
}

namespace {

std::string type_text(const Value& v) {
  return v.type == ValueType::kArray ? std::string("array[") + value_type_name(v.element_type) + "]" : value_type_name(v.type);
}

[[noreturn]] void wrong_type(const std::string& path, const std::string& key, const Value& v, const char* expected) {
  throw UsageError(path + ": GGUF key '" + key + "' is " + type_text(v) + ", expected " + expected);
}

int64_t checked_int(const std::string& path, const std::string& key, const Value& v, size_t i) {
  if (v.element_type == ValueType::kUint64 && v.ints[i] < 0)
    throw UsageError(path + ": GGUF key '" + key + "' holds " + std::to_string(static_cast<uint64_t>(v.ints[i])) +
                     ", which does not fit int64");
  return v.ints[i];
}

double number(const std::string& path, const std::string& key, const Value& v, size_t i) {
  return is_float(v.element_type) ? v.floats[i] : static_cast<double>(checked_int(path, key, v, i));
}

}  // namespace

int64_t Reader::get_int(const std::string& key) const {
  const Value& v = value_or_throw(key);
  if (v.type == ValueType::kArray || !is_integer(v.type)) wrong_type(path_, key, v, "an integer");
  return checked_int(path_, key, v, 0);
}

double Reader::get_float(const std::string& key) const {
  const Value& v = value_or_throw(key);
  if (v.type == ValueType::kArray || !(is_float(v.type) || is_integer(v.type))) wrong_type(path_, key, v, "a number");
  return number(path_, key, v, 0);
}

bool Reader::get_bool(const std::string& key) const {
  const Value& v = value_or_throw(key);
  if (v.type != ValueType::kBool) wrong_type(path_, key, v, "a bool");
  return v.ints[0] != 0;
}

std::string Reader::get_string(const std::string& key) const {
  const Value& v = value_or_throw(key);
  if (v.type != ValueType::kString) wrong_type(path_, key, v, "a string");
  return v.strings[0];
}

std::optional<int64_t> Reader::find_int(const std::string& key) const {
  return has(key) ? std::optional<int64_t>(get_int(key)) : std::nullopt;
}

std::optional<double> Reader::find_float(const std::string& key) const {
  return has(key) ? std::optional<double>(get_float(key)) : std::nullopt;
}

std::vector<std::string> Reader::get_strings(const std::string& key) const {
  const Value& v = value_or_throw(key);
  if (v.type != ValueType::kArray || v.element_type != ValueType::kString) wrong_type(path_, key, v, "an array of strings");
  return v.strings;
}

std::vector<double> Reader::get_floats(const std::string& key) const {
  const Value& v = value_or_throw(key);
  if (v.type != ValueType::kArray || !(is_float(v.element_type) || is_integer(v.element_type)))
    wrong_type(path_, key, v, "an array of numbers");
  std::vector<double> out(v.count);
  for (size_t i = 0; i < out.size(); ++i) out[i] = number(path_, key, v, i);
  return out;
}

std::vector<int64_t> Reader::get_ints(const std::string& key) const {
  const Value& v = value_or_throw(key);
  if (v.type != ValueType::kArray || !is_integer(v.element_type)) wrong_type(path_, key, v, "an array of integers");
  std::vector<int64_t> out(v.count);
  for (size_t i = 0; i < out.size(); ++i) out[i] = checked_int(path_, key, v, i);
  return out;
}

at::Tensor Reader::view(const TensorInfo& t, at::ScalarType dtype) const { return mapped_view(map_, t.offset, t.shape(), dtype); }

at::Tensor dequantize_blocks(const at::Tensor& blocks, TensorType type, const std::vector<int64_t>& shape) {
  at::Tensor out = at::empty(shape, at::kFloat);
  const TypeTraits& tt = kTypes[ggml_id(type)];
  const auto* src = static_cast<const uint8_t*>(blocks.data_ptr());
  float* dst = out.data_ptr<float>();
  if (out.numel() / tt.block_elements * tt.block_bytes != blocks.numel())
    throw InternalError("gguf::dequantize_blocks: " + std::to_string(blocks.numel()) + " bytes for " + std::to_string(out.numel()) + " elements");
  // Blocks are independent, so any split of them gives the same floats as one serial pass.
  const int64_t grain = std::max<int64_t>(1, 65536 / tt.block_elements);
  at::parallel_for(0, out.numel() / tt.block_elements, grain, [&](int64_t begin, int64_t end) {
    dequantize(type, src + begin * tt.block_bytes, (end - begin) * tt.block_elements, dst + begin * tt.block_elements);
  });
  return out;
}

at::Tensor Reader::stored(const std::string& name) const {
  const TensorInfo& t = tensor_or_throw(name);
  if (t.type == TensorType::kOther)
    throw UsageError(path_ + ": tensor '" + name + "' has type " + type_name(t.ggml_type) + " (supported: " + kSupported + ")");
  const at::ScalarType dtype = t.type == TensorType::kF32    ? at::kFloat
                               : t.type == TensorType::kF16  ? at::kHalf
                               : t.type == TensorType::kBF16 ? at::kBFloat16
                                                             : at::kByte;
  if (dtype != at::kByte) {
    at::Tensor v = view(t, dtype);
    return v.defined() ? v : read_as(name, dtype, /*copy=*/true);  // misaligned: a copy
  }
  return mapped_view(map_, t.offset, {static_cast<int64_t>(t.bytes)}, at::kByte);
}

at::Tensor Reader::read(const std::string& name, bool copy) const {
  const TensorInfo& t = tensor_or_throw(name);
  if (t.type == TensorType::kOther)
    throw UsageError(path_ + ": tensor '" + name + "' has type " + type_name(t.ggml_type) + " (supported: " + kSupported + ")");
  if (t.type == TensorType::kF32 && !copy) {
    at::Tensor v = view(t, at::kFloat);
    if (v.defined()) return v;
  }
  return dequantize_blocks(mapped_view(map_, t.offset, {static_cast<int64_t>(t.bytes)}, at::kByte), t.type, t.shape());
}

at::Tensor Reader::read_as(const std::string& name, at::ScalarType dtype, bool copy) const {
  if (!at::isFloatingType(dtype))
    throw InternalError("gguf::Reader::read_as: " + std::string(c10::toString(dtype)) + " is not a floating type");
  const TensorInfo& t = tensor_or_throw(name);
  const bool same_bits = (t.type == TensorType::kF32 && dtype == at::kFloat) ||
                         (t.type == TensorType::kF16 && dtype == at::kHalf) ||
                         (t.type == TensorType::kBF16 && dtype == at::kBFloat16);
  if (same_bits) {
    at::Tensor v = copy ? at::Tensor() : view(t, dtype);
    if (v.defined()) return v;
    at::Tensor out = at::empty(t.shape(), dtype);
    std::memcpy(out.data_ptr(), map_->data() + t.offset, t.bytes);
    return out;
  }
  at::Tensor f = read(name);  // an F32 view is copied by the conversion; anything else is new memory already
  return f.scalar_type() == dtype ? f : f.to(dtype);
}

}  // namespace universae::io::gguf
