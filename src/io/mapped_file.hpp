// A file memory-mapped read-only and shared (MAP_SHARED, PROT_READ): the ranks on one node that map
// the same checkpoint read one copy in the page cache. Tensors can be views of it that keep it alive.
// The readers of large binary formats (io/safetensors, io/gguf) use it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace universae::io {

class MappedFile {
 public:
  // Maps the whole file. `format` names what the file should be ("a GGUF file") in the message of a
  // UsageError for an empty file or one that is not a regular file; any other failure names the
  // system's reason.
  MappedFile(const std::string& path, const std::string& format);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

// The bytes at `offset` as a tensor of `shape` and `dtype`, not copied: read-only memory (writing to
// it is a segmentation fault), kept mapped while the tensor lives. The caller has checked the range;
// an undefined tensor when the address is not aligned for `dtype`.
at::Tensor mapped_view(const std::shared_ptr<const MappedFile>& file, uint64_t offset, const std::vector<int64_t>& shape,
                       at::ScalarType dtype);

}  // namespace universae::io
