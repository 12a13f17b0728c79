// The one HDF5 wrapper (DESIGN.md §2, STYLE.md habit 6). Files are opened on a communicator
// through MPI-IO. The pattern: every rank creates the same groups, datasets and attributes in the
// same order (metadata is collective), then each rank writes or reads its own block of rows with a
// collective transfer. Attributes are h5py-friendly: UTF-8 variable-length strings, int64, float64,
// and booleans as h5py's enum {FALSE, TRUE}.
//
// No HDF5 or MPI type crosses this header: <hdf5.h> (which pulls in <mpi.h>) is included by h5.cpp
// alone, and the io library links HDF5 privately, so no other layer can include it (docs/architecture.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/sharding.hpp"
#include "parallel/comm.hpp"

namespace universae::io {

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

  ~File();
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  const parallel::Comm& comm() const { return comm_; }
  void close();

  // Objects are addressed by absolute paths ("/pairs/a--b/decoder").
  bool exists(const std::string& object) const;
  void create_group(const std::string& group);  // creates missing parents too
  // Collective: unlinks a group (with everything below it) or a dataset; its space is not reclaimed.
  void remove(const std::string& object);

  // Datasets with a row dimension first: the rank's rows are [rows.begin, rows.end) × rest.
  void create_dataset(const std::string& name, DType type, const std::vector<int64_t>& shape);
  std::vector<int64_t> shape(const std::string& name) const;
  void write_rows(const std::string& name, core::Range rows, const float* data);
  void write_rows(const std::string& name, core::Range rows, const double* data);
  void write_rows(const std::string& name, core::Range rows, const int64_t* data);
  void write_rows(const std::string& name, core::Range rows, const uint16_t* data);
  // The one collective-write pattern for a table every rank holds whole: creates `name` with `shape`
  // ([rows, width...]) and each rank writes its block of rows (core::shard_range).
  template <typename T>
  void write_table(const std::string& name, DType type, const std::vector<T>& values, const std::vector<int64_t>& shape) {
    create_dataset(name, type, shape);
    const int64_t width = shape[0] > 0 ? static_cast<int64_t>(values.size()) / shape[0] : 0;
    const core::Range mine = core::shard_range(shape[0], comm_.rank(), comm_.size());
    write_rows(name, mine, values.data() + mine.begin * width);
  }
  // A 1-D table of values every rank holds.
  template <typename T>
  void write_vector(const std::string& name, DType type, const std::vector<T>& values) {
    write_table(name, type, values, {static_cast<int64_t>(values.size())});
  }
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
  // A number, integer or boolean attribute as a double (a boolean reads 1 or 0).
  double read_attr_number(const std::string& object, const std::string& name) const;
  bool read_attr_bool(const std::string& object, const std::string& name) const;
  std::vector<std::string> attr_names(const std::string& object) const;
  std::vector<std::string> children(const std::string& group) const;
  bool is_group(const std::string& object) const;

 private:
  File(const parallel::Comm& comm, std::string path, int64_t id) : comm_(comm), path_(std::move(path)), id_(id) {}
  static File open_existing(const parallel::Comm& comm, const std::string& path, bool writable);
  void transfer_rows(const std::string& name, core::Range rows, int64_t mem_type, void* data, bool write) const;
  // This rank's message for a failed transfer of dataset `name` (HDF5's reason, a full-disk hint for a write).
  std::string transfer_failure(const std::string& name, bool write) const;
  parallel::Comm comm_;
  std::string path_;
  int64_t id_ = -1;  // the HDF5 file id (hid_t is int64_t since HDF5 1.10; h5.cpp checks), closed by close()
};

// Without MPI (a launcher such as `universae sweep`): whether `path` is an HDF5 file whose root
// attribute `complete` is true. A missing, unreadable or partial file is simply not complete.
bool is_complete(const std::string& path);

// Without MPI: whether the HDF5 file `path` has the group or dataset `object` ("/summary_columns").
bool has_object(const std::string& path, const std::string& object);

// Without MPI: the root string attribute `name` of the HDF5 file `path` (complete or not), or
// nullopt when it is missing, not HDF5, or has no such string attribute.
std::optional<std::string> root_string(const std::string& path, const std::string& name);

// Without MPI: the root string attribute `format` of the HDF5 file `path` ("universae-sae", ...), or
// "" when it is not an HDF5 file or has no such attribute.
std::string file_format(const std::string& path);

// Library version string ("1.10.8"), for provenance.
std::string hdf5_version();

}  // namespace universae::io
