// HDF5 inputs' shapes and attributes (structure-aware): the fuzzer's bytes choose the datasets of an
// activation store or an SAE file (rank, dimensions, element type) and their attributes (present or
// not, string, integer, float or boolean, values), an HDF5 file is written with them, and universae
// reads it as a store (constructor, rows, tokens) or as an SAE file (header, weights). A file the
// readers accept must then be read without fault; any other is a UsageError naming it. The bytes of
// the HDF5 format itself are libhdf5's to parse, not ours, and are not mutated.
#include <vector>

#include "core/error.hpp"
#include "io/activation_store.hpp"
#include "fuzz/fuzz_common.hpp"
#include "fuzz/fuzz_h5.hpp"
#include "io/sae_file.hpp"

namespace {

constexpr const char* kHook = "blocks.0.hook_resid_post";

using universae::fuzz::fuzz_attr;
using universae::fuzz::fuzz_dataset;
using universae::fuzz::fuzz_sae_file;

void write_store(hid_t f, FuzzedDataProvider& in) {
  const int64_t T = in.ConsumeIntegralInRange<int64_t>(0, 12), d = in.ConsumeIntegralInRange<int64_t>(0, 6);
  fuzz_dataset(f, in, std::string("/activations/") + kHook, T, d);
  if (in.ConsumeBool()) fuzz_dataset(f, in, "/tokens", T, 1);
  if (in.ConsumeBool()) fuzz_dataset(f, in, "/seq_offsets", 3, 1);
  if (in.ConsumeBool()) fuzz_dataset(f, in, "/vocab", 4, 1);
  fuzz_attr(f, in, "/", "complete", {"true"});
  fuzz_attr(f, in, (std::string("/activations/") + kHook).c_str(), "dtype", {"float32", "float16", "bfloat16", "int8"});
  fuzz_attr(f, in, "/", "model", {"stories260K.bin"});
  fuzz_attr(f, in, "/", "vocab", {"<unk>"});
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  universae::fuzz::world();
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const bool store = in.ConsumeBool();
  const std::string path = universae::fuzz::scratch_path("input.h5");
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) std::abort();
  store ? write_store(f, in) : fuzz_sae_file(f, in);
  H5Fclose(f);
  const auto& comm = universae::fuzz::world();
  try {
    if (store) {
      const universae::io::ActivationStore s(comm, path, kHook);
      std::vector<float> rows(static_cast<size_t>(s.n_tokens() * s.d()));
      s.read(0, s.n_tokens(), rows.data());
      s.read_tokens();
    } else {
      universae::io::read_sae_header(comm, path);
      universae::io::read_sae(comm, path);
    }
  } catch (const universae::UsageError&) {
  }
  return 0;
}
