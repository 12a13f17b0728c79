// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
// N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the tensor bytes (offsets relative to the end of the header). The format sparsify and SAELens
// save SAEs in.
//
// Reading trusts nothing: the header length, every dtype, shape and offset is checked against the file
// size before a byte of tensor data is touched, and a bad file is a UsageError naming the file and
// the tensor. No MPI here: every rank that needs a tensor reads it itself.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace universae::io {
class MappedFile;  // io/mapped_file.hpp
}  // namespace universae::io

namespace universae::io::safetensors {

// The element types SAE weights come in (others are listed by the header check, never read).
enum class DType { kF32, kF16, kBF16, kF64, kOther };

const char* dtype_name(DType d);               // "F32", "F16", "BF16", "F64"
DType parse_dtype(const std::string& name);    // kOther for any dtype the format knows but SAEs do not use

struct TensorInfo {
  std::string name;
  std::string dtype_string;  // as written ("F32", "I64", ...)
  DType dtype = DType::kOther;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
  int64_t numel() const;
};

class Reader {
 public:
  // Parses and checks the header; throws UsageError naming `path` on any problem.
  explicit Reader(std::string path);

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr when the file has no tensor `name`.
  const TensorInfo* find(const std::string& name) const;

  // The tensor as float32 (F16/BF16/F64 converted; F16 and BF16 exactly). Throws UsageError naming
  // the file and tensor when it is missing or not a floating-point type.
  at::Tensor read(const std::string& name) const;
  // Rows [begin, end) of the first axis, as float32.
  at::Tensor read_rows(const std::string& name, int64_t begin, int64_t end) const;
  // The tensor in its stored type (F32/F16/BF16/F64) as a read-only view of the memory-mapped file:
  // nothing is copied, and every process mapping the file shares its pages. The tensor keeps the
  // mapping alive; writing into it is an error (the pages are read-only).
  at::Tensor map(const std::string& name) const;

 private:
  std::string path_;
  uint64_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  mutable std::shared_ptr<const MappedFile> mapping_;  // the whole file, mapped on the first map()
};

struct Tensor {
  std::string name;
  at::Tensor values;  // any floating dtype; converted to `dtype` on write (round to nearest even)
  DType dtype = DType::kF32;
};

// Writes `tensors` (in name order, as the Python library does) and `metadata` to `path` (directly:
// callers publish the directory holding it atomically). Throws UsageError when it cannot write.
void write(const std::string& path, std::vector<Tensor> tensors, const std::map<std::string, std::string>& metadata);

}  // namespace universae::io::safetensors
