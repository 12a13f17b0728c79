// GGUF (https://github.com/ggerganov/ggml/blob/master/docs/gguf.md), the model format of llama.cpp and
// ggml: "GGUF", a uint32 version, the tensor and key/value counts, typed key/value metadata, one info
// record per tensor (name, dimensions fastest first, ggml type, offset), zero padding to
// general.alignment (default 32), then the tensor data. Versions 2 and 3 write counts, string and array
// lengths and dimensions as uint64; version 1 writes them as uint32. Only little-endian files are read.
//
// Reading trusts nothing: every count, length, type, dimension and offset is checked against the file
// size before anything is allocated or a byte of tensor data is touched, and a bad file is a UsageError
// naming the file and the key or tensor. The file is memory-mapped read-only and shared, so the ranks
// on one node read one copy in the page cache, and an F32 tensor can be a view of the mapping itself.
// No MPI here: every rank that needs a tensor reads it itself.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace universae::io {
class MappedFile;  // io/mapped_file.hpp
}  // namespace universae::io

namespace universae::io::gguf {

// The tensor types read() converts to float32; every other ggml type is kOther (listed, never read).
enum class TensorType { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K, kQ6_K, kOther };

// ggml's name of a type id as written in the file ("F32", "Q4_K", "IQ2_XXS"); "unknown" for an id
// that is not in ggml's table.
const char* type_name(uint32_t ggml_type);
TensorType tensor_type(uint32_t ggml_type);

// n elements (a multiple of the type's block: 1 for F32/F16/BF16, 32 for Q8_0/Q4_0, 256 for Q4_K/Q6_K)
// from the blocks at `blocks`, as ggml's dequantize_row_* computes them (ggml/src/ggml-quants.c).
// F16 converts exactly, NaN payloads included. InternalError for kOther or a partial block.
void dequantize(TensorType type, const void* blocks, int64_t n, float* out);

// Quantized blocks (a uint8 tensor, as Reader::stored gives them) as float32 of `shape`, the blocks
// dequantized in parallel (the same floats as one serial pass).
at::Tensor dequantize_blocks(const at::Tensor& blocks, TensorType type, const std::vector<int64_t>& shape);

// The metadata value types, numbered as in the file.
enum class ValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6, kBool = 7,
  kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12
};
const char* value_type_name(ValueType t);  // "uint32", "string", "array", ...

// One metadata value. A scalar is held as one element of the vector its type uses: every integer type
// and bool in `ints` (a uint64 above INT64_MAX keeps its bits), float32/float64 in `floats`, strings in
// `strings`. An array has type kArray and its elements' type in element_type; the elements of an array
// of arrays are checked but not kept (count says how many there were).
struct Value {
  ValueType type = ValueType::kUint8;
  ValueType element_type = ValueType::kUint8;  // == type for a scalar
  uint64_t count = 1;                          // elements (1 for a scalar)
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
};
// One line for logs and inspection: 'uint32 64', 'float32 9.99999975e-06', 'string "llama"',
// 'array[string] 512: ["<unk>", "<s>", ..., (504 more)]' (long strings are cut, with their size).
std::string describe(const Value& v);

struct TensorInfo {
  std::string name;
  uint32_t ggml_type = 0;  // as written (GGML_TYPE_*)
  TensorType type = TensorType::kOther;
  std::vector<int64_t> ne;  // ggml order: ne[0] varies fastest
  uint64_t offset = 0;      // from the start of the file (the file stores it from the data section's start)
  uint64_t bytes = 0;
  std::vector<int64_t> shape() const;  // row-major: ne reversed (ggml [64, 512] is a (512, 64) matrix)
  int64_t numel() const;
};


class Reader {
 public:
  // Maps and parses the file and checks everything against its size; a UsageError naming `path` (and
  // the key or tensor) on any problem.
  explicit Reader(std::string path);

  uint32_t version() const { return version_; }
  const std::string& path() const { return path_; }
  uint64_t alignment() const { return alignment_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr when there is no such tensor

  // Metadata. keys() in file order; value() is nullptr for a missing key.
  const std::vector<std::string>& keys() const { return keys_; }
  const Value* value(const std::string& key) const;
  bool has(const std::string& key) const { return value(key) != nullptr; }
  // A missing key or one of another type is a UsageError: "FILE: GGUF key 'llama.block_count' ...".
  // get_int takes any integer type (a uint64 must fit int64); get_float any float or integer type.
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  // nullopt for a missing key; a key of another type is still a UsageError.
  std::optional<int64_t> find_int(const std::string& key) const;
  std::optional<double> find_float(const std::string& key) const;
  // Arrays, with the same element rules.
  std::vector<std::string> get_strings(const std::string& key) const;
  std::vector<double> get_floats(const std::string& key) const;
  std::vector<int64_t> get_ints(const std::string& key) const;

  // The tensor as float32 of shape(). An F32 tensor is a view of the mapping when `copy` is false (it
  // keeps the mapping alive; the memory is read-only: writing to it is a segmentation fault, so pass
  // copy = true to modify it); F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K are dequantized into new memory.
  // Any other type is a UsageError: "FILE: tensor 'blk.0.attn_q.weight' has type Q5_1 (supported: ...)".
  at::Tensor read(const std::string& name, bool copy = false) const;
  // The tensor as the floating type `dtype` (for bf16 compute, say). When the file holds exactly that
  // type (F32 as kFloat, F16 as kHalf, BF16 as kBFloat16) it is, as in read(), a read-only view of the
  // mapping unless `copy`; anything else is converted into new memory (quantized types dequantized to
  // float32 first, then rounded to `dtype`).
  at::Tensor read_as(const std::string& name, at::ScalarType dtype, bool copy = false) const;
  // The tensor as stored, not converted: F32, F16 or BF16 as a read-only view of shape(); a quantized
  // type as its blocks, a uint8 view of `bytes` (dequantize_blocks turns them into floats). Any other
  // type is read()'s UsageError.
  at::Tensor stored(const std::string& name) const;

 private:
  const TensorInfo& tensor_or_throw(const std::string& name) const;
  // The tensor's bytes in the mapping as `dtype`, or an undefined tensor when they are not aligned for it.
  at::Tensor view(const TensorInfo& t, at::ScalarType dtype) const;
  const Value& value_or_throw(const std::string& key) const;

  std::string path_;
  std::shared_ptr<const MappedFile> map_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::string> keys_;
  std::map<std::string, Value> values_;
  std::vector<TensorInfo> tensors_;
};

}  // namespace universae::io::gguf
