// Shared by the structure-aware HDF5 targets (fuzz_hdf5, fuzz_inspect): the fuzzer's bytes choose
// objects and attributes, and these write them with the HDF5 C API (serial; the readers under test
// open the result through MPI-IO). Only the structure and the values are fuzzed, never the bytes of
// the HDF5 format: libhdf5 is not robust to corrupt files (a damaged B-tree or heap can crash it
// inside its own parser), and that parser is not universae's.
#pragma once

#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace universae::fuzz {

inline hid_t pick_type(FuzzedDataProvider& in) {
  static const hid_t* types[] = {&H5T_NATIVE_FLOAT_g, &H5T_NATIVE_DOUBLE_g, &H5T_NATIVE_INT32_g, &H5T_NATIVE_INT64_g,
                                 &H5T_NATIVE_UINT16_g, &H5T_NATIVE_UINT8_g};
  H5open();
  return *types[in.ConsumeIntegralInRange<size_t>(0, 5)];
}

// Link creation that makes missing parent groups.
inline hid_t parents_lcpl() {
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  return lcpl;
}

// A dataset `name` with fuzzed rank (0..3) and dims (0..max_dim), filled from the input's bytes.
inline void fuzz_dataset(hid_t file, FuzzedDataProvider& in, const std::string& name, int64_t likely_rows, int64_t likely_cols) {
  const int rank = in.ConsumeIntegralInRange<int>(0, 3);
  std::vector<hsize_t> dims;
  for (int r = 0; r < rank; ++r) {
    const int64_t likely = r == 0 ? likely_rows : likely_cols;
    dims.push_back(in.ConsumeBool() ? static_cast<hsize_t>(likely) : in.ConsumeIntegralInRange<hsize_t>(0, 9));
  }
  const hid_t type = pick_type(in);
  const hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims.data(), nullptr);
  const hid_t lcpl = parents_lcpl();
  const hid_t ds = H5Dcreate2(file, name.c_str(), type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t n = 1;
  for (hsize_t d : dims) n *= d;
  std::vector<uint8_t> bytes = in.ConsumeBytes<uint8_t>(n * H5Tget_size(type));
  bytes.resize(n * H5Tget_size(type));
  if (ds >= 0 && n > 0) H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
  if (ds >= 0) H5Dclose(ds);
  H5Pclose(lcpl);
  H5Sclose(space);
}

// An attribute `name` on `object`: absent, a string (one of `strings` or fuzzed), an integer, a float.
inline void fuzz_attr(hid_t file, FuzzedDataProvider& in, const char* object, const char* name,
                      const std::vector<std::string>& strings) {
  const int kind = in.ConsumeIntegralInRange<int>(0, 4);
  if (kind == 0 || H5Oexists_by_name(file, object, H5P_DEFAULT) <= 0) return;
  const hid_t obj = H5Oopen(file, object, H5P_DEFAULT);
  const hid_t space = H5Screate(H5S_SCALAR);
  if (kind == 1 || kind == 2) {
    const std::string value = kind == 1 && !strings.empty()
                                  ? strings[in.ConsumeIntegralInRange<size_t>(0, strings.size() - 1)]
                                  : in.ConsumeRandomLengthString(32);
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, value.size() + 1);
    const hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, type, value.c_str());
    H5Aclose(a), H5Tclose(type);
  } else if (kind == 3) {
    const int64_t value = in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(-2, 16) : in.ConsumeIntegral<int64_t>();
    const hid_t a = H5Acreate2(obj, name, H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &value);
    H5Aclose(a);
  } else {
    const double value = in.ConsumeFloatingPoint<double>();
    const hid_t a = H5Acreate2(obj, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, &value);
    H5Aclose(a);
  }
  H5Sclose(space);
  H5Oclose(obj);
}

// An SAE file's datasets (n latents, d inputs, with their likely shapes) and header attributes.
inline void fuzz_sae_file(hid_t f, FuzzedDataProvider& in) {
  const int64_t n = in.ConsumeIntegralInRange<int64_t>(0, 8), d = in.ConsumeIntegralInRange<int64_t>(0, 6);
  for (const char* name : {"/W_enc", "/W_dec"}) fuzz_dataset(f, in, name, n, d);
  fuzz_dataset(f, in, "/b_enc", n, 1);
  fuzz_dataset(f, in, "/b_dec", d, 1);
  for (const char* name : {"/threshold", "/r_mag", "/b_mag", "/frequency"})
    if (in.ConsumeBool()) fuzz_dataset(f, in, name, n, 1);
  fuzz_attr(f, in, "/", "format", {"universae-sae"});
  fuzz_attr(f, in, "/", "format_version", {});
  fuzz_attr(f, in, "/", "complete", {"true"});
  fuzz_attr(f, in, "/", "architecture", {"relu", "topk", "batchtopk", "jumprelu", "gated"});
  fuzz_attr(f, in, "/", "d_in", {});
  fuzz_attr(f, in, "/", "n_latents", {});
  fuzz_attr(f, in, "/", "k", {});
  fuzz_attr(f, in, "/", "apply_b_dec_to_input", {"true", "false"});
  fuzz_attr(f, in, "/", "config", {""});
}

}  // namespace universae::fuzz
