// The one HDF5 wrapper (DESIGN.md §2, STYLE.md habit 6). Files are opened on a communicator
// through MPI-IO. The pattern: every rank creates the same groups, datasets and attributes in the
// same order (metadata is collective), then each rank writes or reads its own block of rows with a
// collective transfer. Attributes are h5py-friendly: UTF-8 variable-length strings, int64, float64,
// and booleans as h5py's enum {FALSE, TRUE}.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/sharding.hpp"
#include "parallel/comm.hpp"

namespace universae::io {

// Owns one hid_t and closes it with the matching H5*close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) reset(), id_ = o.id_, o.id_ = H5I_INVALID_HID;
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// kFloat16 is IEEE half (h5py reads it as float16); kUInt16 holds bfloat16 words.
enum class DType { kFloat32, kFloat64, kInt64, kInt32, kFloat16, kUInt16 };

class File {
 public:
  // Collective. create() truncates; open_read() fails with a UsageError (on every rank) naming the
  // file when it is missing or not HDF5.
  static File create(const parallel::Comm& comm, const std::string& path);
  static File open_read(const parallel::Comm& comm, const std::string& path);
  // Collective: an existing file for reading and writing (resuming a partial output).
  static File open_rw(const parallel::Comm& comm, const std::string& path);
  // Collective: everything written so far reaches the file (a resumable point).
  void flush();

  const std::string& path() const { return path_; }
  hid_t id() const { return file_.id(); }
  const parallel::Comm& comm() const { return comm_; }
  void close() { file_.reset(); }

  // Objects are addressed by absolute paths ("/pairs/a--b/decoder").
  bool exists(const std::string& object) const;
  void create_group(const std::string& group);  // creates missing parents too

  // Datasets with a row dimension first: the rank's rows are [rows.begin, rows.end) × rest.
  void create_dataset(const std::string& name, DType type, const std::vector<int64_t>& shape);
  std::vector<int64_t> shape(const std::string& name) const;
  void write_rows(const std::string& name, core::Range rows, const float* data);
  void write_rows(const std::string& name, core::Range rows, const double* data);
  void write_rows(const std::string& name, core::Range rows, const int64_t* data);
  void write_rows(const std::string& name, core::Range rows, const uint16_t* data);
  // Reads convert from the stored type (any float or integer) to the requested one.
  void read_rows(const std::string& name, core::Range rows, float* out) const;
  void read_rows(const std::string& name, core::Range rows, double* out) const;
  void read_rows(const std::string& name, core::Range rows, int64_t* out) const;
  // Raw 16-bit words (bfloat16 activations are stored as uint16 with a `dtype` attribute).
  void read_rows(const std::string& name, core::Range rows, uint16_t* out) const;

  // Strings: a 1-D string dataset (fixed or variable length) or a string-array attribute, read whole
  // by every rank. write_strings creates a fixed-length, NUL-padded string dataset (parallel HDF5
  // cannot write variable-length data); collective, every rank passes the same strings.
  std::vector<std::string> read_strings(const std::string& dataset) const;
  std::vector<std::string> read_attr_strings(const std::string& object, const std::string& name) const;
  void write_strings(const std::string& dataset, const std::vector<std::string>& values);
  std::string dataset_attr_string(const std::string& dataset, const std::string& name) const;

  // Attributes on any object (collective when writing; every rank passes the same value).
  void write_attr(const std::string& object, const std::string& name, const std::string& value);
  void write_attr(const std::string& object, const std::string& name, const char* value) {
    write_attr(object, name, std::string(value));
  }
  void write_attr(const std::string& object, const std::string& name, int64_t value);
  void write_attr(const std::string& object, const std::string& name, double value);
  void write_attr(const std::string& object, const std::string& name, bool value);
  // A 1-D attribute of variable-length UTF-8 strings (h5py reads a numpy object array).
  void write_attr(const std::string& object, const std::string& name, const std::vector<std::string>& values);
  bool has_attr(const std::string& object, const std::string& name) const;
  std::string read_attr_string(const std::string& object, const std::string& name) const;
  int64_t read_attr_int(const std::string& object, const std::string& name) const;
  double read_attr_double(const std::string& object, const std::string& name) const;
  bool read_attr_bool(const std::string& object, const std::string& name) const;
  std::vector<std::string> attr_names(const std::string& object) const;
  std::vector<std::string> children(const std::string& group) const;
  bool is_group(const std::string& object) const;

 private:
  File(const parallel::Comm& comm, std::string path, hid_t id) : comm_(comm), path_(std::move(path)), file_(id) {}
  static File open_existing(const parallel::Comm& comm, const std::string& path, bool writable);
  void transfer_rows(const std::string& name, core::Range rows, hid_t mem_type, void* data, bool write) const;
  parallel::Comm comm_;
  std::string path_;
  Handle file_;
};

// Without MPI (a launcher such as `universae sweep`): whether `path` is an HDF5 file whose root
// attribute `complete` is true and whose root string attribute `name` equals `value` for each pair
// of `expect`. A missing, unreadable or partial file is simply not complete.
bool is_complete(const std::string& path, const std::vector<std::pair<std::string, std::string>>& expect = {});

// Without MPI: the root string attribute `format` of the HDF5 file `path` ("universae-sae", ...), or
// "" when it is not an HDF5 file or has no such attribute.
std::string file_format(const std::string& path);

// Library version string ("1.10.8"), for provenance.
std::string hdf5_version();

// Writes to `<final>.partial` and renames to `final` on commit() (rank 0, then a barrier), so a
// crash never leaves a file under the final name. Without commit() the partial file is removed.
class PendingFile {
 public:
  PendingFile(const parallel::Comm& comm, std::string final_path);
  ~PendingFile();
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;
  const std::string& temp_path() const { return temp_; }
  const std::string& final_path() const { return final_; }
  void commit();

 private:
  parallel::Comm comm_;
  std::string final_, temp_;
  bool committed_ = false;
};

}  // namespace universae::io

namespace universae::io {
// Collective: rank 0 creates `dir` (and parents); a failure is a UsageError on every rank, raised
// before any long computation starts. The directories it creates are remembered so that a run
// refused later leaves nothing behind (remove_created_directories).
void ensure_directory(const parallel::Comm& comm, const std::string& dir);
// Removes the directories ensure_directory created in this process that are still empty, deepest
// first; never removes a file or a directory that has one. main() calls it when input is refused.
void remove_created_directories();
// Collective: refuses (UsageError on every rank) when the file system holding `dir` has less than
// `bytes` free for `what`, naming the directory, the need and the room, before the work starts.
void ensure_space(const parallel::Comm& comm, const std::string& dir, int64_t bytes, const std::string& what);
}  // namespace universae::io
