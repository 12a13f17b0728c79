// The llama2.c tokenizer (tokenizer.bin format): a sentencepiece BPE vocabulary with scores.
// encode() gives exactly the ids llama2.c's run.c gives: BOS, a dummy-prefix " " when the text is
// non-empty, one token per UTF-8 code point (byte fallback <0xXX> = byte + 3 when absent), then
// repeatedly the adjacent pair whose concatenation is in the vocabulary with the highest score
// (the leftmost on ties) is merged. run.c rescans all pairs per merge (quadratic); here a heap of
// candidate pairs makes the same choices in O(n log n).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "lm/text_tokenizer.hpp"

namespace universae::lm {

class Tokenizer : public TextTokenizer {
 public:
  static constexpr int32_t kUnk = 0, kBos = 1, kEos = 2;

  // Reads a llama2.c tokenizer file; `vocab_size` is the model's (the file holds that many tokens;
  // 0: as many as it holds).
  // A missing, short or malformed file is a UsageError naming it.
  Tokenizer(const std::string& path, int64_t vocab_size);

  std::vector<int32_t> encode(const std::string& text, bool bos, bool eos) const override;
  // run.c's printing: each token's text after its predecessor, single non-printable bytes dropped.
  std::string render(const std::vector<int32_t>& context, const std::vector<int32_t>& ids) const override;
  int32_t bos() const override { return kBos; }
  std::vector<int32_t> special_ids() const override { return {kUnk, kBos, kEos}; }
  int32_t eos() const override { return kEos; }
  // The text token `token` adds after `previous`, as run.c prints it: a leading space is dropped
  // after BOS, and byte-fallback pieces become their byte.
  std::string decode(int32_t previous, int32_t token) const;
  // Concatenated decode of a token sequence (BOS/EOS contribute nothing).
  std::string decode(const std::vector<int32_t>& tokens) const;

  const std::vector<std::string>& pieces() const override { return pieces_; }
  const std::string& path() const override { return path_; }

 private:
  int32_t lookup(const std::string& piece) const;
  std::string path_;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> ids_;
  uint32_t max_token_length_ = 0;
};

}  // namespace universae::lm
