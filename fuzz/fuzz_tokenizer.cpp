// llama2.c tokenizer files: the first byte picks the vocabulary size the model would ask for (a size
// below 259 is refused: byte fallback needs 256 byte tokens after the 3 specials); a file that loads
// must then encode and decode text without reading out of bounds.
#include "core/error.hpp"
#include "fuzz/fuzz_common.hpp"
#include "lm/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int64_t vocab = 256 + data[0] % 16;
  const std::string path = universae::fuzz::write_input("tok.bin", data + 1, size - 1);
  try {
    const universae::lm::Tokenizer tok(path, vocab);
    const auto ids = tok.encode("Once upon a time, \xc3\xa9 \xf0\x9f\x98\x80 <s>\n", true, true);
    tok.decode(ids);
    for (int32_t t = 0; t < tok.size(); ++t) tok.decode(universae::lm::Tokenizer::kBos, t);
  } catch (const universae::UsageError&) {
  }
  return 0;
}
