#include "lm/generate.hpp"

#include <cctype>

namespace universae::lm {

std::string generate_greedy(const LlamaModel& model, const Tokenizer& tokenizer, const std::string& prompt, int64_t steps) {
  const int64_t seq_len = model.config().seq_len;
  if (steps <= 0 || steps > seq_len) steps = seq_len;
  const std::vector<int32_t> prompt_tokens = tokenizer.encode(prompt, /*bos=*/true, /*eos=*/false);
  std::vector<int32_t> tokens{prompt_tokens.front()};
  std::string out;
  for (int64_t pos = 0; pos < steps; ++pos) {
    const int32_t next = pos + 1 < static_cast<int64_t>(prompt_tokens.size()) ? prompt_tokens[static_cast<size_t>(pos + 1)]
                                                                              : model.argmax_next(tokens);
    if (next == Tokenizer::kBos) break;
    const std::string piece = tokenizer.decode(tokens.back(), next);
    const bool bad_byte = piece.size() == 1 && !std::isprint(static_cast<unsigned char>(piece[0])) &&
                          !std::isspace(static_cast<unsigned char>(piece[0]));
    if (!bad_byte) out += piece;
    tokens.push_back(next);
  }
  return out + "\n";
}

}  // namespace universae::lm
