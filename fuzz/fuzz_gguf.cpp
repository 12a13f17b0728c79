// GGUF files: every count, length, type, dimension and offset is checked against the file before
// anything is allocated or a byte of tensor data is touched; every tensor the reader admits reads
// back (or, of a type it does not convert, is a UsageError); and a file that parses loads as a llama
// model, or its llama.* keys and tensor shapes are refused with a UsageError.
#include <ATen/core/Tensor.h>

#include "core/error.hpp"
#include "fuzz/fuzz_common.hpp"
#include "io/gguf.hpp"
#include "lm/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = universae::fuzz::write_input("model.gguf", data, size);
  try {
    const universae::io::gguf::Reader reader(path);
    for (const auto& key : reader.keys()) universae::io::gguf::describe(*reader.value(key));  // what inspect shows
    for (const auto& t : reader.tensors()) {
      try {
        reader.read(t.name);
      } catch (const universae::UsageError&) {  // e.g. a Q5_1 tensor: listed, not read
      }
    }
  } catch (const universae::UsageError&) {
    return 0;
  }
  try {
    const universae::lm::LanguageModel model(path);
  } catch (const universae::UsageError&) {
  }
  return 0;
}
