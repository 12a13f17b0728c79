// Text inputs: plain text, <|endoftext|>-separated text and JSONL (the first byte picks the format,
// as extract.input_format would). A bad JSONL line is a UsageError naming the file and line.
#include "core/error.hpp"
#include "lm/documents.hpp"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* formats[] = {"text", "endoftext", "jsonl", "auto"};
  const std::string content(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string format = formats[data[0] % 4];
  try {
    const std::string chosen = format == "auto" ? universae::lm::detect_format("input.jsonl", content) : format;
    universae::lm::split_documents(content, chosen, "input");
  } catch (const universae::UsageError&) {
  }
  return 0;
}
