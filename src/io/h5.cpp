#include "io/h5.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <system_error>

#include <hdf5.h>
#include <fmt/format.h>

#include <type_traits>

#include "core/error.hpp"
#include "io/output.hpp"
#include "parallel/log.hpp"
#include "parallel/native.hpp"

namespace universae::io {

// File keeps its id as int64_t so that h5.hpp need not include <hdf5.h>.
static_assert(std::is_same_v<hid_t, int64_t>, "HDF5 >= 1.10 has a 64-bit hid_t");

namespace {

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
  hid_t release() {
    const hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Innermost message of the HDF5 error stack (the automatic printer is switched off).
std::string h5_error_stack() {
  std::string message;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD,
           [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
             auto* m = static_cast<std::string*>(out);
             if (m->empty() && e->desc) *m = e->desc;
             return 0;
           },
           &message);
  H5Eclear2(H5E_DEFAULT);
  return message;
}

template <typename T>
T check(T rc, const std::string& what, const char* file, int line) {
  if (rc < 0) {
    throw InternalError("HDF5: " + what + " failed: " + h5_error_stack() + " (" + file + ":" +
                        std::to_string(line) + ", rank " + std::to_string(log::rank()) + " on " +
                        parallel::Comm::host_name() + ")");
  }
  return rc;
}
#define UNIVERSAE_H5_CHECK(call, what) check((call), (what), __FILE__, __LINE__)

void silence_hdf5_errors() {
  static const bool once = [] { return H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0; }();
  (void)once;
}

Handle mpio_access(const parallel::Comm& comm) {
  Handle fapl(UNIVERSAE_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate"));
  UNIVERSAE_H5_CHECK(H5Pset_fapl_mpio(fapl.id(), parallel::native(comm), MPI_INFO_NULL), "H5Pset_fapl_mpio");
  return fapl;
}

// IEEE binary16, laid out as h5py's float16 (HDF5 1.10 has no predefined half type).
hid_t half_type() {
  static const hid_t type = [] {
    const hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
  }();
  return type;
}

hid_t file_type(DType t) {
  switch (t) {
    case DType::kFloat32: return H5T_IEEE_F32LE;
    case DType::kFloat64: return H5T_IEEE_F64LE;
    case DType::kInt32: return H5T_STD_I32LE;
    case DType::kUInt16: return H5T_STD_U16LE;
    case DType::kFloat16: return half_type();
    default: return H5T_STD_I64LE;
  }
}

Handle string_type() {
  Handle t(UNIVERSAE_H5_CHECK(H5Tcopy(H5T_C_S1), "H5Tcopy"));
  UNIVERSAE_H5_CHECK(H5Tset_size(t.id(), H5T_VARIABLE), "H5Tset_size");
  UNIVERSAE_H5_CHECK(H5Tset_cset(t.id(), H5T_CSET_UTF8), "H5Tset_cset");
  return t;
}

// h5py's boolean: an int8 enum {FALSE = 0, TRUE = 1}.
Handle bool_type() {
  Handle t(UNIVERSAE_H5_CHECK(H5Tenum_create(H5T_NATIVE_INT8), "H5Tenum_create"));
  int8_t v = 0;
  UNIVERSAE_H5_CHECK(H5Tenum_insert(t.id(), "FALSE", &v), "H5Tenum_insert");
  v = 1;
  UNIVERSAE_H5_CHECK(H5Tenum_insert(t.id(), "TRUE", &v), "H5Tenum_insert");
  return t;
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: H5Oclose(id_); break;
  }
  id_ = H5I_INVALID_HID;
}

}  // namespace

File::~File() { close(); }
File::File(File&& o) noexcept : comm_(o.comm_), path_(std::move(o.path_)), id_(o.id_) { o.id_ = H5I_INVALID_HID; }
File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    close();
    comm_ = o.comm_, path_ = std::move(o.path_), id_ = o.id_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}
void File::close() { Handle(static_cast<hid_t>(id_)).reset(), id_ = H5I_INVALID_HID; }

std::string hdf5_version() {
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
}

File File::create(const parallel::Comm& comm, const std::string& path) {
  silence_hdf5_errors();
  Handle fapl = mpio_access(comm);
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id());
  std::string error;
  if (id < 0) error = path + ": cannot create file (" + h5_error_stack() + "); is the directory writable?";
  parallel::agree_on_error(comm, error);
  return File(comm, path, id);
}

File File::open_existing(const parallel::Comm& comm, const std::string& path, bool writable) {
  silence_hdf5_errors();
  std::string error;
  if (!std::filesystem::is_regular_file(path)) {
    error = path + ": file not found";
  } else if (H5Fis_hdf5(path.c_str()) <= 0) {
    error = path + ": not an HDF5 file";
  }
  parallel::agree_on_error(comm, error);
  Handle fapl = mpio_access(comm);
  const hid_t id = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl.id());
  if (id < 0) error = path + ": cannot open HDF5 file" + (writable ? " for writing" : "") + " (" + h5_error_stack() + ")";
  parallel::agree_on_error(comm, error);
  return File(comm, path, id);
}

File File::open_read(const parallel::Comm& comm, const std::string& path) { return open_existing(comm, path, false); }
File File::open_rw(const parallel::Comm& comm, const std::string& path) { return open_existing(comm, path, true); }

void File::flush() { UNIVERSAE_H5_CHECK(H5Fflush(id_, H5F_SCOPE_GLOBAL), path_ + ": flush"); }

void File::remove(const std::string& object) {
  UNIVERSAE_H5_CHECK(H5Ldelete(id_, object.c_str(), H5P_DEFAULT), path_ + ": remove " + object);
}

bool File::exists(const std::string& object) const {
  if (object == "/") return true;
  // Check each prefix: H5Lexists fails (rather than answering false) when a parent is missing.
  size_t pos = 0;
  while ((pos = object.find('/', pos + 1)) != std::string::npos) {
    if (H5Lexists(id_, object.substr(0, pos).c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return H5Lexists(id_, object.c_str(), H5P_DEFAULT) > 0;
}

void File::create_group(const std::string& group) {
  Handle lcpl(UNIVERSAE_H5_CHECK(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate"));
  UNIVERSAE_H5_CHECK(H5Pset_create_intermediate_group(lcpl.id(), 1), "H5Pset_create_intermediate_group");
  Handle g(UNIVERSAE_H5_CHECK(H5Gcreate2(id_, group.c_str(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT),
                              path_ + ": create group " + group));
}

void File::create_dataset(const std::string& name, DType type, const std::vector<int64_t>& shape) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(UNIVERSAE_H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                                  "H5Screate_simple"));
  Handle lcpl(UNIVERSAE_H5_CHECK(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate"));
  UNIVERSAE_H5_CHECK(H5Pset_create_intermediate_group(lcpl.id(), 1), "H5Pset_create_intermediate_group");
  Handle ds(UNIVERSAE_H5_CHECK(
      H5Dcreate2(id_, name.c_str(), file_type(type), space.id(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT),
      path_ + ": create dataset " + name));
}

std::vector<int64_t> File::shape(const std::string& name) const {
  Handle ds(UNIVERSAE_H5_CHECK(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), path_ + ": open dataset " + name));
  Handle space(UNIVERSAE_H5_CHECK(H5Dget_space(ds.id()), "H5Dget_space"));
  const int rank = UNIVERSAE_H5_CHECK(H5Sget_simple_extent_ndims(space.id()), "H5Sget_simple_extent_ndims");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

void File::transfer_rows(const std::string& name, core::Range rows, int64_t mem_type, void* data, bool write) const {
  Handle ds(UNIVERSAE_H5_CHECK(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), path_ + ": open dataset " + name));
  Handle file_space(UNIVERSAE_H5_CHECK(H5Dget_space(ds.id()), "H5Dget_space"));
  const int rank = H5Sget_simple_extent_ndims(file_space.id());
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(file_space.id(), dims.data(), nullptr);
  if (rank < 1 || rows.begin < 0 || rows.end > static_cast<int64_t>(dims[0]) || rows.end < rows.begin)
    throw InternalError(path_ + ": rows [" + std::to_string(rows.begin) + ", " + std::to_string(rows.end) +
                        ") outside dataset " + name);

  hsize_t total = 1;
  for (auto d : dims) total *= d;
  if (total == 0) return;  // an empty dataset has no storage to transfer (every rank returns here)
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = static_cast<hsize_t>(rows.begin);
  count[0] = static_cast<hsize_t>(rows.size());
  hsize_t elements = 1;
  for (auto c : count) elements *= c;
  const hsize_t mem_dims = elements > 0 ? elements : 1;
  Handle mem_space(UNIVERSAE_H5_CHECK(H5Screate_simple(1, &mem_dims, nullptr), "H5Screate_simple"));
  if (elements == 0) {
    // A rank with no rows still takes part in the collective transfer, selecting nothing.
    H5Sselect_none(file_space.id());
    H5Sselect_none(mem_space.id());
  } else {
    UNIVERSAE_H5_CHECK(H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
                       "H5Sselect_hyperslab");
  }
  Handle dxpl(UNIVERSAE_H5_CHECK(H5Pcreate(H5P_DATASET_XFER), "H5Pcreate"));
  UNIVERSAE_H5_CHECK(H5Pset_dxpl_mpio(dxpl.id(), H5FD_MPIO_COLLECTIVE), "H5Pset_dxpl_mpio");
  const herr_t rc = write ? H5Dwrite(ds.id(), mem_type, mem_space.id(), file_space.id(), dxpl.id(), data)
                          : H5Dread(ds.id(), mem_type, mem_space.id(), file_space.id(), dxpl.id(), data);
  // Every rank throws if any failed: a transfer can fail on one rank only (rank 0 writing rows the others
  // have none of, on a disk that filled up), and that rank alone unwinding into the file's collective
  // close while the others went on to the next collective transfer hung both for good (e2e_faults).
  parallel::agree_on_failure(comm_, rc < 0 ? transfer_failure(name, write) : std::string());
}

std::string File::transfer_failure(const std::string& name, bool write) const {
  const std::string stack = h5_error_stack();
  std::string hint;
  if (write) {
    // The usual cause on a cluster is a full disk or quota; say so rather than only "write failed".
    const double free = free_bytes(std::filesystem::path(path_).parent_path().string());
    if (free >= 0 && free < 64e6)
      hint = fmt::format("; the file system holding it is full ({:.3g} MB free): make room and run the same command "
                         "again (extraction and training resume from their last save)", free * 1e-6);
  }
  return "HDF5: " + path_ + ": " + (write ? "write " : "read ") + name + " failed: " + stack + hint + " (rank " +
         std::to_string(log::rank()) + " on " + parallel::Comm::host_name() + ")";
}

void File::write_rows(const std::string& n, core::Range r, const float* d) {
  transfer_rows(n, r, H5T_NATIVE_FLOAT, const_cast<float*>(d), true);
}
void File::write_rows(const std::string& n, core::Range r, const double* d) {
  transfer_rows(n, r, H5T_NATIVE_DOUBLE, const_cast<double*>(d), true);
}
void File::write_rows(const std::string& n, core::Range r, const int64_t* d) {
  transfer_rows(n, r, H5T_NATIVE_INT64, const_cast<int64_t*>(d), true);
}
void File::write_rows(const std::string& n, core::Range r, const uint16_t* d) {
  transfer_rows(n, r, H5T_NATIVE_UINT16, const_cast<uint16_t*>(d), true);
}
void File::read_rows(const std::string& n, core::Range r, float* o) const { transfer_rows(n, r, H5T_NATIVE_FLOAT, o, false); }
void File::read_rows(const std::string& n, core::Range r, double* o) const { transfer_rows(n, r, H5T_NATIVE_DOUBLE, o, false); }
void File::read_rows(const std::string& n, core::Range r, int64_t* o) const { transfer_rows(n, r, H5T_NATIVE_INT64, o, false); }
void File::read_rows(const std::string& n, core::Range r, uint16_t* o) const { transfer_rows(n, r, H5T_NATIVE_UINT16, o, false); }

namespace {
Handle open_attr(hid_t file, const std::string& path, const std::string& object, const std::string& name);

// Reads every element of a string dataset or attribute (`read(mem_type, buffer)`), converting
// fixed-length storage to std::string (NULs trimmed) and freeing variable-length memory.
template <typename Read>
std::vector<std::string> read_string_array(hid_t stored_type, hid_t space, const std::string& what, Read&& read) {
  if (H5Tget_class(stored_type) != H5T_STRING) throw UsageError(what + " is not a string array");
  const hssize_t count = H5Sget_simple_extent_npoints(space);
  std::vector<std::string> out;
  if (count <= 0) return out;
  const auto n = static_cast<size_t>(count);
  if (H5Tis_variable_str(stored_type) > 0) {
    Handle mem = string_type();
    std::vector<char*> raw(n, nullptr);
    UNIVERSAE_H5_CHECK(read(mem.id(), static_cast<void*>(raw.data())), "read " + what);
    for (char* s : raw) out.emplace_back(s ? s : ""), H5free_memory(s);
    return out;
  }
  const size_t width = H5Tget_size(stored_type);
  std::vector<char> raw(n * width, '\0');
  UNIVERSAE_H5_CHECK(read(stored_type, static_cast<void*>(raw.data())), "read " + what);
  for (size_t i = 0; i < n; ++i) {
    std::string s(raw.data() + i * width, width);
    const auto end = s.find('\0');
    out.push_back(end == std::string::npos ? s : s.substr(0, end));
  }
  return out;
}
}  // namespace

std::vector<std::string> File::read_strings(const std::string& dataset) const {
  Handle ds(UNIVERSAE_H5_CHECK(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT), path_ + ": open dataset " + dataset));
  Handle type(UNIVERSAE_H5_CHECK(H5Dget_type(ds.id()), "H5Dget_type"));
  Handle space(UNIVERSAE_H5_CHECK(H5Dget_space(ds.id()), "H5Dget_space"));
  return read_string_array(type.id(), space.id(), path_ + ": dataset " + dataset, [&](hid_t mem, void* buf) {
    return H5Dread(ds.id(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  });
}

std::vector<std::string> File::read_attr_strings(const std::string& object, const std::string& name) const {
  Handle attr = open_attr(id_, path_, object, name);
  Handle type(UNIVERSAE_H5_CHECK(H5Aget_type(attr.id()), "H5Aget_type"));
  Handle space(UNIVERSAE_H5_CHECK(H5Aget_space(attr.id()), "H5Aget_space"));
  return read_string_array(type.id(), space.id(), path_ + ": attribute " + object + "@" + name,
                           [&](hid_t mem, void* buf) { return H5Aread(attr.id(), mem, buf); });
}

void File::write_strings(const std::string& dataset, const std::vector<std::string>& values) {
  size_t width = 1;
  for (const auto& v : values) width = std::max(width, v.size());
  Handle type(UNIVERSAE_H5_CHECK(H5Tcopy(H5T_C_S1), "H5Tcopy"));
  UNIVERSAE_H5_CHECK(H5Tset_size(type.id(), width), "H5Tset_size");
  UNIVERSAE_H5_CHECK(H5Tset_strpad(type.id(), H5T_STR_NULLPAD), "H5Tset_strpad");
  UNIVERSAE_H5_CHECK(H5Tset_cset(type.id(), H5T_CSET_UTF8), "H5Tset_cset");
  const hsize_t n = values.size();
  Handle space(UNIVERSAE_H5_CHECK(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  Handle lcpl(UNIVERSAE_H5_CHECK(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate"));
  UNIVERSAE_H5_CHECK(H5Pset_create_intermediate_group(lcpl.id(), 1), "H5Pset_create_intermediate_group");
  Handle ds(UNIVERSAE_H5_CHECK(H5Dcreate2(id_, dataset.c_str(), type.id(), space.id(), lcpl.id(), H5P_DEFAULT,
                                          H5P_DEFAULT),
                               path_ + ": create dataset " + dataset));
  if (n == 0) return;
  std::vector<char> raw(values.size() * width, '\0');
  for (size_t i = 0; i < values.size(); ++i) std::copy(values[i].begin(), values[i].end(), raw.begin() + i * width);
  // Collective transfer: rank 0 writes every element, the others select none.
  Handle mem(UNIVERSAE_H5_CHECK(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  if (!comm_.is_root()) H5Sselect_none(space.id()), H5Sselect_none(mem.id());
  Handle dxpl(UNIVERSAE_H5_CHECK(H5Pcreate(H5P_DATASET_XFER), "H5Pcreate"));
  UNIVERSAE_H5_CHECK(H5Pset_dxpl_mpio(dxpl.id(), H5FD_MPIO_COLLECTIVE), "H5Pset_dxpl_mpio");
  UNIVERSAE_H5_CHECK(H5Dwrite(ds.id(), type.id(), mem.id(), space.id(), dxpl.id(), raw.data()), path_ + ": write " + dataset);
}

namespace {
template <typename Fn>
void write_attr_impl(hid_t file, const std::string& path, const std::string& object, const std::string& name,
                     hid_t type, Fn&& write) {
  Handle obj(UNIVERSAE_H5_CHECK(H5Oopen(file, object.c_str(), H5P_DEFAULT), path + ": open " + object));
  if (H5Aexists(obj.id(), name.c_str()) > 0) UNIVERSAE_H5_CHECK(H5Adelete(obj.id(), name.c_str()), "H5Adelete");
  Handle space(UNIVERSAE_H5_CHECK(H5Screate(H5S_SCALAR), "H5Screate"));
  Handle attr(UNIVERSAE_H5_CHECK(H5Acreate2(obj.id(), name.c_str(), type, space.id(), H5P_DEFAULT, H5P_DEFAULT),
                                 path + ": create attribute " + object + "@" + name));
  UNIVERSAE_H5_CHECK(write(attr.id()), path + ": write attribute " + object + "@" + name);
}

Handle open_attr(hid_t file, const std::string& path, const std::string& object, const std::string& name) {
  if (H5Aexists_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT) <= 0)
    throw UsageError(path + ": missing attribute '" + name + "' on " + object);
  return Handle(UNIVERSAE_H5_CHECK(H5Aopen_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                                   path + ": open attribute " + object + "@" + name));
}

// An attribute read as one value must hold one: reading an array (a string list such as a store's
// `vocab`) into a single value would write past it.
Handle open_scalar_attr(hid_t file, const std::string& path, const std::string& object, const std::string& name) {
  Handle attr = open_attr(file, path, object, name);
  Handle space(UNIVERSAE_H5_CHECK(H5Aget_space(attr.id()), "H5Aget_space"));
  const hssize_t n = H5Sget_simple_extent_npoints(space.id());
  if (n != 1)
    throw UsageError(path + ": attribute '" + name + "' on " + object + " holds " + std::to_string(n) + " values, not one");
  return attr;
}
}  // namespace

void File::write_attr(const std::string& object, const std::string& name, const std::string& value) {
  Handle type = string_type();
  const char* text = value.c_str();
  write_attr_impl(id_, path_, object, name, type.id(), [&](hid_t a) { return H5Awrite(a, type.id(), &text); });
}

void File::write_attr(const std::string& object, const std::string& name, const std::vector<std::string>& values) {
  Handle type = string_type();
  std::vector<const char*> text;
  for (const auto& v : values) text.push_back(v.c_str());
  const hsize_t n = values.size();
  Handle obj(UNIVERSAE_H5_CHECK(H5Oopen(id_, object.c_str(), H5P_DEFAULT), path_ + ": open " + object));
  if (H5Aexists(obj.id(), name.c_str()) > 0) UNIVERSAE_H5_CHECK(H5Adelete(obj.id(), name.c_str()), "H5Adelete");
  Handle space(UNIVERSAE_H5_CHECK(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  Handle attr(UNIVERSAE_H5_CHECK(H5Acreate2(obj.id(), name.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT),
                                 path_ + ": create attribute " + object + "@" + name));
  UNIVERSAE_H5_CHECK(H5Awrite(attr.id(), type.id(), text.data()), path_ + ": write attribute " + object + "@" + name);
}

void File::write_attr(const std::string& object, const std::string& name, int64_t value) {
  write_attr_impl(id_, path_, object, name, H5T_STD_I64LE,
                  [&](hid_t a) { return H5Awrite(a, H5T_NATIVE_INT64, &value); });
}

void File::write_attr(const std::string& object, const std::string& name, double value) {
  write_attr_impl(id_, path_, object, name, H5T_IEEE_F64LE,
                  [&](hid_t a) { return H5Awrite(a, H5T_NATIVE_DOUBLE, &value); });
}

void File::write_attr(const std::string& object, const std::string& name, bool value) {
  Handle type = bool_type();
  const int8_t v = value ? 1 : 0;
  write_attr_impl(id_, path_, object, name, type.id(), [&](hid_t a) { return H5Awrite(a, type.id(), &v); });
}

bool File::has_attr(const std::string& object, const std::string& name) const {
  return exists(object) && H5Aexists_by_name(id_, object.c_str(), name.c_str(), H5P_DEFAULT) > 0;
}

namespace {

// Attribute readers on a file id, shared by File and the MPI-free is_complete().
std::string attr_string(hid_t file, const std::string& path, const std::string& object, const std::string& name) {
  Handle attr = open_scalar_attr(file, path, object, name);
  Handle type(UNIVERSAE_H5_CHECK(H5Aget_type(attr.id()), "H5Aget_type"));
  if (H5Tget_class(type.id()) != H5T_STRING)
    throw UsageError(path + ": attribute '" + name + "' on " + object + " is not a string");
  if (H5Tis_variable_str(type.id()) > 0) {
    Handle mem = string_type();
    char* text = nullptr;
    UNIVERSAE_H5_CHECK(H5Aread(attr.id(), mem.id(), &text), path + ": read attribute " + name);
    std::string value = text ? text : "";
    H5free_memory(text);
    return value;
  }
  const size_t size = H5Tget_size(type.id());
  std::string value(size, '\0');
  UNIVERSAE_H5_CHECK(H5Aread(attr.id(), type.id(), value.data()), path + ": read attribute " + name);
  value.resize(value.find('\0') == std::string::npos ? size : value.find('\0'));
  return value;
}

bool attr_bool(hid_t file, const std::string& path, const std::string& object, const std::string& name) {
  Handle attr = open_scalar_attr(file, path, object, name);
  Handle type(UNIVERSAE_H5_CHECK(H5Aget_type(attr.id()), "H5Aget_type"));
  const H5T_class_t cls = H5Tget_class(type.id());
  if (cls == H5T_ENUM || cls == H5T_INTEGER) {
    // h5py's enum bool and plain integers both read as their integer value.
    Handle native(UNIVERSAE_H5_CHECK(H5Tget_native_type(type.id(), H5T_DIR_ASCEND), "H5Tget_native_type"));
    std::vector<unsigned char> raw(H5Tget_size(native.id()), 0);
    UNIVERSAE_H5_CHECK(H5Aread(attr.id(), native.id(), raw.data()), path + ": read attribute " + name);
    for (auto b : raw)
      if (b != 0) return true;
    return false;
  }
  throw UsageError(path + ": attribute '" + name + "' on " + object + " must be a boolean");
}

}  // namespace

std::string File::read_attr_string(const std::string& object, const std::string& name) const {
  return attr_string(id_, path_, object, name);
}

int64_t File::read_attr_int(const std::string& object, const std::string& name) const {
  Handle attr = open_scalar_attr(id_, path_, object, name);
  Handle type(UNIVERSAE_H5_CHECK(H5Aget_type(attr.id()), "H5Aget_type"));
  const H5T_class_t cls = H5Tget_class(type.id());
  if (cls == H5T_FLOAT) {
    double v = 0;
    UNIVERSAE_H5_CHECK(H5Aread(attr.id(), H5T_NATIVE_DOUBLE, &v), path_ + ": read attribute " + name);
    // The range test first: converting a double outside int64's range is undefined (UBSan, fuzz_hdf5).
    if (!(v >= -9.2e18 && v <= 9.2e18) || v != std::trunc(v))
      throw UsageError(path_ + ": attribute '" + name + "' on " + object + " must be an integer");
    return static_cast<int64_t>(v);
  }
  if (cls != H5T_INTEGER) throw UsageError(path_ + ": attribute '" + name + "' on " + object + " must be an integer");
  int64_t v = 0;
  UNIVERSAE_H5_CHECK(H5Aread(attr.id(), H5T_NATIVE_INT64, &v), path_ + ": read attribute " + name);
  return v;
}

double File::read_attr_double(const std::string& object, const std::string& name) const {
  Handle attr = open_scalar_attr(id_, path_, object, name);
  Handle type(UNIVERSAE_H5_CHECK(H5Aget_type(attr.id()), "H5Aget_type"));
  const H5T_class_t cls = H5Tget_class(type.id());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    throw UsageError(path_ + ": attribute '" + name + "' on " + object + " must be a number");
  double v = 0;
  UNIVERSAE_H5_CHECK(H5Aread(attr.id(), H5T_NATIVE_DOUBLE, &v), path_ + ": read attribute " + name);
  return v;
}

double File::read_attr_number(const std::string& object, const std::string& name) const {
  Handle attr = open_scalar_attr(id_, path_, object, name);
  Handle type(UNIVERSAE_H5_CHECK(H5Aget_type(attr.id()), "H5Aget_type"));
  if (H5Tget_class(type.id()) == H5T_ENUM) return attr_bool(id_, path_, object, name) ? 1.0 : 0.0;
  return read_attr_double(object, name);
}

bool File::read_attr_bool(const std::string& object, const std::string& name) const {
  return attr_bool(id_, path_, object, name);
}

std::vector<std::string> File::attr_names(const std::string& object) const {
  Handle obj(UNIVERSAE_H5_CHECK(H5Oopen(id_, object.c_str(), H5P_DEFAULT), path_ + ": open " + object));
  std::vector<std::string> names;
  hsize_t idx = 0;
  H5Aiterate2(obj.id(), H5_INDEX_NAME, H5_ITER_INC, &idx,
              [](hid_t, const char* n, const H5A_info_t*, void* out) -> herr_t {
                static_cast<std::vector<std::string>*>(out)->push_back(n);
                return 0;
              },
              &names);
  return names;
}

std::vector<std::string> File::children(const std::string& group) const {
  std::vector<std::string> names;
  hsize_t idx = 0;
  UNIVERSAE_H5_CHECK(H5Literate_by_name(id_, group.c_str(), H5_INDEX_NAME, H5_ITER_INC, &idx,
                                        [](hid_t, const char* n, const H5L_info_t*, void* out) -> herr_t {
                                          static_cast<std::vector<std::string>*>(out)->push_back(n);
                                          return 0;
                                        },
                                        &names, H5P_DEFAULT),
                     path_ + ": list " + group);
  return names;
}

bool File::is_group(const std::string& object) const {
  Handle obj(UNIVERSAE_H5_CHECK(H5Oopen(id_, object.c_str(), H5P_DEFAULT), path_ + ": open " + object));
  return H5Iget_type(obj.id()) == H5I_GROUP;
}

}  // namespace universae::io

namespace universae::io {

bool is_complete(const std::string& path) {
  silence_hdf5_errors();
  if (!std::filesystem::is_regular_file(path) || H5Fis_hdf5(path.c_str()) <= 0) return false;
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file.valid() || H5Aexists_by_name(file.id(), "/", "complete", H5P_DEFAULT) <= 0) return false;
  try {
    return attr_bool(file.id(), path, "/", "complete");
  } catch (const std::exception&) {
    return false;
  }
}

std::optional<std::string> root_string(const std::string& path, const std::string& name) {
  silence_hdf5_errors();
  if (!std::filesystem::is_regular_file(path) || H5Fis_hdf5(path.c_str()) <= 0) return std::nullopt;
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file.valid() || H5Aexists_by_name(file.id(), "/", name.c_str(), H5P_DEFAULT) <= 0) return std::nullopt;
  try {
    return attr_string(file.id(), path, "/", name);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool has_object(const std::string& path, const std::string& object) {
  silence_hdf5_errors();
  if (!std::filesystem::is_regular_file(path) || H5Fis_hdf5(path.c_str()) <= 0) return false;
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  return file.valid() && H5Lexists(file.id(), object.c_str(), H5P_DEFAULT) > 0;
}

std::string file_format(const std::string& path) { return root_string(path, "format").value_or(""); }

}  // namespace universae::io
