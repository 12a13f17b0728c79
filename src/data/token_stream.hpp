// The token stream a trainer reads: position p of the training stream is a pure function of p (and
// the configuration), never of the rank count or of when the run was resumed, so a data cursor is a
// single number and every layout sees the same global batches.
//  - synthetic: token p of data.synthetic; evaluation tokens from the held-out range.
//  - an activation store: the last train.eval_tokens rows are held out for evaluation; the rest is
//    cut into chunks of data.shuffle_chunk rows, the chunk order is permuted per epoch, and tokens are
//    permuted inside windows of data.shuffle_buffer rows (seeded by data.shuffle_seed, epoch and
//    window). Epochs repeat with fresh permutations as long as train.tokens asks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "io/activation_store.hpp"
#include "parallel/comm.hpp"

namespace universae::data {

class TokenStream {
 public:
  virtual ~TokenStream() = default;
  virtual int64_t d() const = 0;
  // Training tokens [first, first + count) of the stream as row-major (count, d) float32.
  virtual void train_tokens(int64_t first, int64_t count, float* out) = 0;
  // Held-out tokens [first, first + count) of the evaluation range.
  virtual void eval_tokens(int64_t first, int64_t count, float* out) = 0;
  virtual int64_t eval_available() const = 0;  // tokens in the evaluation range
  virtual std::string describe() const = 0;
  // The activation store behind the stream (nullptr for synthetic data).
  virtual const io::ActivationStore* store() const { return nullptr; }
};

// Collective (a store is opened and checked on every rank). UsageError naming the key on bad input.
std::unique_ptr<TokenStream> open_token_stream(const parallel::Comm& comm, const config::Config& config);

}  // namespace universae::data
