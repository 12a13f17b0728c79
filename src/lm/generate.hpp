// Greedy generation exactly as llama2.c's `run MODEL -z TOKENIZER -t 0 -n STEPS -i PROMPT` prints it:
// the prompt's tokens are forced, then the argmax token each step, until STEPS positions or a BOS;
// each token's text is printed after its predecessor (see Tokenizer::decode), single non-printable
// bytes are dropped, and a newline ends the output.
#pragma once

#include <cstdint>
#include <string>

#include "lm/llama.hpp"
#include "lm/tokenizer.hpp"

namespace universae::lm {

// steps = 0 or more than the model's seq_len: seq_len, as run.c does.
std::string generate_greedy(const LlamaModel& model, const Tokenizer& tokenizer, const std::string& prompt, int64_t steps);

}  // namespace universae::lm
