// Reads a GGUF file with io/gguf and writes out what it found, for tests/golden/test_gguf_dequant.py to
// compare with gguf-py's numpy dequantization:
//   gguf_harness FILE.gguf OUTDIR
// OUTDIR/<tensor name>.f32   each tensor as Reader::read returns it: raw float32, row-major
// OUTDIR/tensors.txt         one line per tensor in file order: name, ggml type name, shape (tab-separated)
// OUTDIR/metadata.txt        one line per key in file order: key, describe(value) (tab-separated)
// A bad file: its UsageError on stderr and exit status 2.
#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "core/error.hpp"
#include "io/gguf.hpp"
#include "io/text_file.hpp"

using namespace universae;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: gguf_harness FILE.gguf OUTDIR\n");
    return 2;
  }
  const std::string out_dir = argv[2];
  try {
    const io::gguf::Reader reader(argv[1]);
    std::ofstream tensors(out_dir + "/tensors.txt"), metadata(out_dir + "/metadata.txt");
    for (const auto& key : reader.keys()) metadata << key << '\t' << io::gguf::describe(*reader.value(key)) << '\n';
    for (const auto& t : reader.tensors()) {
      tensors << t.name << '\t' << io::gguf::type_name(t.ggml_type) << '\t' << io::shape_text(t.shape()) << '\n';
      const at::Tensor values = reader.read(t.name).contiguous();
      std::ofstream out(out_dir + "/" + t.name + ".f32", std::ios::binary);
      out.write(static_cast<const char*>(values.data_ptr()), static_cast<std::streamsize>(values.numel() * sizeof(float)));
      if (!out) throw UsageError(out_dir + "/" + t.name + ".f32: write failed");
    }
    if (!tensors || !metadata) throw UsageError(out_dir + ": cannot write tensors.txt or metadata.txt");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
