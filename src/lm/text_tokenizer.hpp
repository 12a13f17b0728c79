// What extraction and generation need of a tokenizer, whichever file it comes from: llama2.c's
// tokenizer.bin (lm/tokenizer.hpp) or Hugging Face's tokenizer.json (lm/hf_tokenizer.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace universae::lm {

struct ModelConfig;

class TextTokenizer {
 public:
  virtual ~TextTokenizer() = default;
  // The ids of `text` as the tokenizer's own library gives them without special tokens, preceded by
  // BOS when `bos` and followed by EOS when `eos` (each only when the tokenizer has one).
  virtual std::vector<int32_t> encode(const std::string& text, bool bos, bool eos) const = 0;
  // The text of generated ids (`ids` after the prompt's, `context` the ids before them) as the
  // reference implementation prints it.
  virtual std::string render(const std::vector<int32_t>& context, const std::vector<int32_t>& ids) const = 0;
  // Token strings by id (stored with every activation store).
  virtual const std::vector<std::string>& pieces() const = 0;
  virtual int32_t bos() const = 0;  // -1: none
  virtual int32_t eos() const = 0;
  // Control tokens (BOS, EOS, padding, unknown): what the non-concept filter refuses by id.
  virtual std::vector<int32_t> special_ids() const = 0;
  virtual const std::string& path() const = 0;
  int64_t size() const { return static_cast<int64_t>(pieces().size()); }
};

// tokenizer.json (by its name or a directory holding one) or a llama2.c tokenizer.bin. BOS/EOS
// come from the tokenizer's files, else from the model's. A vocabulary with ids past the model's
// embedding is a UsageError; `model` may be null (no model to check against: `universae tokenize`).
std::unique_ptr<TextTokenizer> open_tokenizer(const std::string& path, const ModelConfig* model);

}  // namespace universae::lm
