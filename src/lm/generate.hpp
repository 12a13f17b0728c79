// Greedy generation, so that any implementation's greedy output can be compared with universae's.
// The prompt's tokens are forced, then the argmax token each step, until `steps` positions (the
// prompt's included; 0 or more than the model's context: the context) or a stop token: BOS for a
// llama2.c model (as llama2.c's `run -t 0` stops), EOS for any other (as transformers' generate).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lm/model.hpp"
#include "lm/text_tokenizer.hpp"

namespace universae::lm {

// The tokens after `prompt` (which is used verbatim; it must not be empty).
std::vector<int32_t> generate_ids(const LanguageModel& model, const std::vector<int32_t>& prompt, int64_t steps);

// The text as llama2.c's `run MODEL -z TOKENIZER -t 0 -n STEPS -i PROMPT` prints it (for a llama2.c
// tokenizer byte for byte): BOS and the prompt's tokens, then the generated ones, rendered by the
// tokenizer after BOS, and a newline.
std::string generate_greedy(const LanguageModel& model, const TextTokenizer& tokenizer, const std::string& prompt, int64_t steps);

}  // namespace universae::lm
