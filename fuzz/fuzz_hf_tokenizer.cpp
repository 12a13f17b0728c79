// Hugging Face tokenizer.json: bytes 0-1 give the length of tokenizer.json, then tokenizer.json, then a
// text. A file that loads must encode the text to ids inside its vocabulary and decode them (and ids
// outside it, which contribute nothing); anything it cannot honour is a UsageError naming the file.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "fuzz/fuzz_common.hpp"
#include "lm/hf_tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t json_size = std::min<size_t>(size - 2, static_cast<size_t>(data[0]) | static_cast<size_t>(data[1]) << 8);
  // A folder of its own: the tokenizer reads tokenizer_config.json and config.json beside tokenizer.json.
  const std::string dir = universae::fuzz::scratch_path("hf_tokenizer");
  std::filesystem::create_directory(dir);
  const std::string path = universae::fuzz::write_input("hf_tokenizer/tokenizer.json", data + 2, json_size);
  const std::string text(reinterpret_cast<const char*>(data + 2 + json_size), size - 2 - json_size);
  try {
    const universae::lm::HfTokenizer tok(path);
    std::vector<int32_t> ids = tok.encode(text);
    for (const int32_t id : ids)
      if (id < 0 || id >= tok.size()) std::abort();  // an id the model's embedding does not have
    tok.decode(ids);
    ids.insert(ids.end(), {-1, static_cast<int32_t>(tok.size())});
    tok.decode(ids);
  } catch (const universae::UsageError&) {
  }
  return 0;
}
