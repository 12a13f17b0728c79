// Reading the activation store (DESIGN.md §4): /activations/<hookpoint> [T, d] (float32, float16,
// or bfloat16 stored as uint16 with attribute dtype = "bfloat16"), /tokens [T], /seq_offsets, and
// the vocabulary (root attribute `vocab` or dataset `/vocab`). Every rank opens the file on its
// own (independent reads), so ranks may read different numbers of blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "parallel/comm.hpp"

namespace universae::data {

// TransformerLens names pass through; sparsify's `layers.L` → blocks.L.hook_resid_post and
// `layers.L.mlp` → blocks.L.hook_mlp_out.
std::string canonical_hookpoint(const std::string& name);

class ActivationStore {
 public:
  // Collective: checks `complete`, the hookpoint's dataset and the shapes, then reads every row
  // once (each rank a share) to refuse NaN and Inf; any problem is a UsageError on every rank
  // naming the file and what is missing (with the hookpoints it has) or the first non-finite
  // value (row, sequence and position, column).
  ActivationStore(const parallel::Comm& comm, const std::string& path, const std::string& hookpoint);
  ~ActivationStore();
  ActivationStore(ActivationStore&&) noexcept;

  const std::string& path() const { return path_; }
  const std::string& hookpoint() const { return hookpoint_; }
  // Every hookpoint the store holds (the children of /activations).
  const std::vector<std::string>& hookpoints() const { return hookpoints_; }
  int64_t n_tokens() const { return n_tokens_; }
  int64_t d() const { return d_; }
  const std::string& model() const { return model_; }
  const std::string& stored_dtype() const { return dtype_; }
  bool has_tokens() const { return has_tokens_; }
  const std::vector<std::string>& vocab() const { return vocab_; }
  // Sequence boundaries [n_seq + 1] (one sequence over everything when the store has none).
  const std::vector<int64_t>& seq_offsets() const { return seq_offsets_; }

  // Rows [first, first + count) as float32, row-major, into out (count × d). Not collective.
  void read(int64_t first, int64_t count, float* out) const;
  // All token ids [T] (empty when the store has no /tokens).
  std::vector<int64_t> read_tokens() const;

 private:
  void check_finite(const parallel::Comm& comm) const;

  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_, hookpoint_, model_, dtype_ = "float32";
  int64_t n_tokens_ = 0, d_ = 0;
  bool has_tokens_ = false;
  std::vector<std::string> vocab_, hookpoints_;
  std::vector<int64_t> seq_offsets_;
};

}  // namespace universae::data
