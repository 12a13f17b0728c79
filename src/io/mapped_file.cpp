#include "io/mapped_file.hpp"

#include <ATen/Functions.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "core/error.hpp"

namespace universae::io {

MappedFile::MappedFile(const std::string& path, const std::string& format) {
  auto fail = [&](const std::string& what, int error) {
    throw UsageError(path + ": " + what + " (" + std::error_code(error, std::generic_category()).message() + ")");
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open for reading", errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    fail("cannot read its size", error);
  }
  if (!S_ISREG(st.st_mode) || st.st_size == 0) {
    ::close(fd);
    throw UsageError(path + ": not " + format + " (" + (S_ISREG(st.st_mode) ? "empty" : "not a regular file") + ")");
  }
  size_ = static_cast<uint64_t>(st.st_size);
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
  const int error = errno;
  ::close(fd);  // the mapping holds the file open
  if (p == MAP_FAILED) fail("cannot memory-map", error);
  data_ = static_cast<uint8_t*>(p);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

at::Tensor mapped_view(const std::shared_ptr<const MappedFile>& file, uint64_t offset, const std::vector<int64_t>& shape,
                       at::ScalarType dtype) {
  // from_blob wants void*: the memory stays read-only (PROT_READ).
  uint8_t* bytes = const_cast<uint8_t*>(file->data()) + offset;
  if (reinterpret_cast<uintptr_t>(bytes) % c10::elementSize(dtype) != 0) return at::Tensor();
  std::shared_ptr<const MappedFile> keep = file;  // the deleter holds a reference: the mapping outlives the view
  return at::from_blob(bytes, shape, [keep](void*) {}, at::TensorOptions().dtype(dtype));
}

}  // namespace universae::io
