// The extraction stage: a llama2.c model's activations at chosen hookpoints on text, written as an
// activation store (DESIGN.md §4).
//
// Documents: every document starts with BOS and is its own forward pass from position 0; one
// longer than extract.seq_len continues in windows that start again with BOS (each window is a
// sequence, recorded in /seq_offsets; the store's rows are the sequences' tokens as they were run).
// Consecutive sequences form fixed global batches of ≤ extract.batch_tokens; in round j rank r runs batch
// j·ranks + r and every rank writes its rows collectively. A batch is computed with the same shapes
// whatever the rank count, so `mpirun -n 1` and `-n 2` write identical stores (same threads per rank).
//
// Crash safety: the store is written as <store>.partial; after each round (at most every few
// seconds) the count of finished batches is flushed with it. A rerun with the same extract config
// resumes from the first unfinished batch; SIGTERM/SIGUSR1 flush and exit 75. `complete = true` is
// written last, then the file is renamed to its final name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "lm/extract_plan.hpp"
#include "parallel/comm.hpp"

namespace universae::lm {

struct ExtractResult {
  std::string store;
  std::vector<std::string> hookpoints;
  int64_t n_documents = 0, n_sequences = 0, n_tokens = 0;
  double loss = 0;              // mean next-token loss in nats (extract.loss), else NaN
  int64_t loss_tokens = 0;
  double seconds = 0, forward_seconds = 0, write_seconds = 0, tokenize_seconds = 0;  // rank 0's
  double background_write_seconds = 0;  // rank 0's writes that ran beside the forward (write_seconds: waited for)
  bool reused = false;
};

// What decides whether the store may be reused or a partial one resumed (io/fingerprint.hpp): the
// extract keys and the identities of the model, tokenizer and texts (by io::input_identity, or by
// `identity` when given).
std::string store_fingerprint(const config::Config& config);
std::string store_fingerprint(const config::Config& config, const config::Identity& identity);

// The hookpoints of extract.hookpoints, "blocks.*.X" expanded over the model's blocks, canonical names.
std::vector<std::string> resolve_hookpoints(const std::vector<std::string>& requested, int64_t n_layers);

class TextTokenizer;

// Collective. Tokenizes `documents` (each rank a contiguous block, each from BOS), keeps the first
// ones within `max_tokens` (0: all; fewer than the first is a UsageError naming `max_tokens_key`) and
// cuts them into sequences and batches (lm/extract_plan.hpp), the same on every rank.
ExtractPlan plan_documents(const parallel::Comm& comm, const TextTokenizer& tokenizer, const std::vector<std::string>& documents,
                           int64_t seq_len, int64_t batch_tokens, int64_t max_tokens, const std::string& max_tokens_key);

// Collective. Writes extract.store (or reuses a complete one with the same extract config unless `fresh`).
ExtractResult run_extract_stage(const parallel::Comm& comm, const config::Config& config, bool fresh);

}  // namespace universae::lm
