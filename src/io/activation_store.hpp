// The activation store, format "universae-activations" (docs/file-formats.md): the one module that
// writes (the extract stage) and reads (training, comparison) it.
//
//   /activations/<hookpoint> [T, d]   float32, float16, or bfloat16 stored as uint16 (attribute dtype)
//   /tokens [T] int32, /doc_offsets [n_docs+1], /seq_offsets [n_seq+1] int64, /batch_nll [n_batches]
//   root: model, tokenizer, inputs, hookpoints, seq_len, batch_tokens, counts, vocab (attribute, or the
//   dataset /vocab when large), extract_config, fingerprint, batches_done, loss, complete (last)
//
// Reading: every rank opens the file on its own (independent reads), so ranks may read different
// numbers of blocks. Writing: collective, into <store>.partial, resumable after a crash.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/float_format.hpp"
#include "core/sharding.hpp"
#include "io/output.hpp"
#include "io/provenance.hpp"
#include "parallel/comm.hpp"

namespace universae::io {

class File;

// TransformerLens names pass through; sparsify's `layers.L` → blocks.L.hook_resid_post and
// `layers.L.mlp` → blocks.L.hook_mlp_out.
std::string canonical_hookpoint(const std::string& name);

// Collective: the hookpoints a store holds (the children of /activations), without reading rows. A
// UsageError on every rank when it is not a complete store.
std::vector<std::string> store_hookpoints(const parallel::Comm& comm, const std::string& path);

class ActivationStore {
 public:
  // Collective: checks `complete`, the hookpoint's dataset and the shapes, then reads every row
  // once (each rank a share) to refuse NaN and Inf — unless universae's extract verified every value
  // as it wrote them (root attribute activations_finite); any problem is a UsageError on every rank
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
  const std::string& model() const { return provenance_.model; }
  // The model and tokenizer as the store records them (io/provenance.hpp; the store's own path and
  // fingerprint hash in `store` and `store_fingerprint`): what an SAE trained on it records.
  const Provenance& provenance() const { return provenance_; }
  // Whether extract verified every stored value finite (so the full scan was skipped).
  bool verified_finite() const { return verified_finite_; }
  // What identifies the stored token sequence (stores of several models over the same documents must
  // agree on both to be compared row by row); empty in stores written before 0.3.
  const std::string& token_sequence() const { return token_sequence_; }
  const std::string& tokenizer_identity() const { return tokenizer_identity_; }
  const std::string& stored_dtype() const { return dtype_; }
  // The tokenizer's control-token ids (BOS, EOS, padding, unknown); empty in stores before 0.3.
  const std::vector<int64_t>& special_tokens() const { return special_tokens_; }
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
  std::string path_, hookpoint_, dtype_ = "float32", token_sequence_, tokenizer_identity_;
  Provenance provenance_;
  int64_t n_tokens_ = 0, d_ = 0;
  bool has_tokens_ = false, verified_finite_ = false;
  std::vector<std::string> vocab_, hookpoints_;
  std::vector<int64_t> seq_offsets_, special_tokens_;
};

// What a new store holds, fixed when it is created (the extraction plan and its provenance).
// A hash of the token ids and the document and sequence offsets (16 hex digits): equal exactly when
// two stores hold the same token sequence, cut the same way.
std::string token_sequence_hash(const std::vector<int32_t>& tokens, const std::vector<int64_t>& doc_offsets,
                                const std::vector<int64_t>& seq_offsets);

struct StoreLayout {
  std::vector<int32_t> tokens;        // [T] the sequences as run
  std::vector<int64_t> doc_offsets;   // [n_docs + 1]
  std::vector<int64_t> seq_offsets;   // [n_seq + 1]
  int64_t n_batches = 0;              // forward passes (each writes its rows and its summed loss)
  std::vector<std::string> hookpoints;
  std::vector<int64_t> widths;        // d per hookpoint
  core::FloatFormat dtype = core::FloatFormat::kFloat32;
  // Provenance: root attributes (model, model_name, model_format, model_sha256, tokenizer, ...).
  Provenance provenance;
  std::string model_architecture;                // "llama", "gpt_neox", ...
  std::string tokenizer_identity;                // io::input_identity of the tokenizer file
  std::vector<int64_t> special_tokens;           // control-token ids (/special_tokens)
  std::vector<std::string> inputs, vocab;
  int64_t seq_len = 0, batch_tokens = 0;
  std::string extract_config, fingerprint;
  int64_t bytes() const;              // the file's size, for the free-space check
};

// Writing a store (collective). Resumes `<path>.partial` when a crashed run left one begun with the
// same fingerprint and token count; otherwise checks the free space and creates it. The partial file
// is kept when the writer goes away unfinished (a rerun resumes); finish() publishes it.
class ActivationStoreWriter {
 public:
  ActivationStoreWriter(const parallel::Comm& comm, const std::string& path, const StoreLayout& layout);
  ~ActivationStoreWriter();
  int64_t batches_done() const { return done_; }  // batches already in the file (a resumed run starts there)
  // The summed losses of the batches already written ([n_batches], zero after batches_done).
  std::vector<double> batch_nll() const;
  // This rank's rows of hookpoint `hook` (rows.size() × width float32; converted to the store's dtype),
  // checked for values that are not finite once stored (a float16 overflow counts).
  void write_rows(size_t hook, core::Range rows, const float* values);
  // Collective: batch `batch`'s summed loss (only ranks with `has_batch` contribute a value).
  void write_batch_nll(int64_t batch, bool has_batch, double nll);
  // Asks the kernel to start writing what this node has written so far to disk, without waiting
  // (sync_file_range; nothing where the file system does not support it): the fsync of the next
  // checkpoint() then finds little left to write.
  void start_writeback();
  // Collective: every batch before `done` is in the file (a resumable point). Records whether every
  // value written so far is finite (root attribute activations_finite; warns at the first that is not).
  void checkpoint(int64_t done);
  // Collective: the mean loss, `complete`, then the partial file takes the store's name.
  void finish(double loss, int64_t loss_tokens);

 private:
  parallel::Comm comm_;
  std::vector<std::string> hookpoints_;
  std::vector<int64_t> widths_;
  core::FloatFormat dtype_;
  int64_t n_batches_ = 0;
  Pending pending_;
  std::unique_ptr<File> file_;
  int writeback_fd_ = -1;  // the partial file, read-only, for start_writeback
  int64_t done_ = 0;
  std::vector<uint16_t> half_;
  bool finite_ = true;                // every value written so far (every rank's, after checkpoint())
  int64_t first_bad_ = -1;            // this rank's first non-finite value: row * hookpoints + hook
};

}  // namespace universae::io
