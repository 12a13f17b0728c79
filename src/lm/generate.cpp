#include "lm/generate.hpp"

#include "core/error.hpp"

namespace universae::lm {
namespace {

// `steps` positions; 0 or more than the model's context: the context (as run.c).
int64_t positions(const ModelConfig& c, int64_t steps) { return steps <= 0 || steps > c.seq_len ? c.seq_len : steps; }

}  // namespace

std::vector<int32_t> generate_ids(const LanguageModel& model, const std::vector<int32_t>& prompt, int64_t steps) {
  const ModelConfig& c = model.config();
  if (prompt.empty()) throw UsageError("generate: the prompt has no tokens");
  for (int32_t id : prompt)
    if (id < 0 || id >= c.vocab_size)
      throw UsageError("generate: prompt token " + std::to_string(id) + " is outside the model's vocabulary (0.." +
                       std::to_string(c.vocab_size - 1) + ")");
  steps = positions(c, steps);
  const int32_t stop = c.format.rfind("llama2.c", 0) == 0 ? c.bos : c.eos;
  std::vector<int32_t> tokens = prompt;
  std::vector<int32_t> generated;
  // run.c's loop: position pos predicts token pos + 1, for pos < steps.
  for (auto pos = static_cast<int64_t>(prompt.size()) - 1; pos < steps; ++pos) {
    const int32_t next = model.argmax_next(tokens);
    if (next == stop) break;
    tokens.push_back(next);
    generated.push_back(next);
  }
  return generated;
}

std::string generate_greedy(const LanguageModel& model, const TextTokenizer& tokenizer, const std::string& prompt, int64_t steps) {
  std::vector<int32_t> prompt_ids = tokenizer.encode(prompt, /*bos=*/true, /*eos=*/false);
  if (prompt_ids.empty()) throw UsageError(tokenizer.path() + ": the tokenizer has no BOS token; give the prompt as ids (--prompt-ids)");
  const int64_t limit = positions(model.config(), steps);
  if (static_cast<int64_t>(prompt_ids.size()) > limit + 1) prompt_ids.resize(static_cast<size_t>(limit + 1));  // run.c forces at most `steps`
  std::vector<int32_t> shown(prompt_ids.begin() + 1, prompt_ids.end());
  const std::vector<int32_t> generated = generate_ids(model, prompt_ids, limit);
  shown.insert(shown.end(), generated.begin(), generated.end());
  return tokenizer.render({prompt_ids.front()}, shown) + "\n";
}

}  // namespace universae::lm
