#include "data/token_stream.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "io/activation_store.hpp"
#include "data/synthetic.hpp"

namespace universae::data {
namespace {

class SyntheticStream final : public TokenStream {
 public:
  explicit SyntheticStream(const config::SyntheticConfig& spec) : source_(spec) {}
  int64_t d() const override { return source_.d(); }
  void train_tokens(int64_t first, int64_t count, float* out) override { source_.tokens(first, count, out); }
  void eval_tokens(int64_t first, int64_t count, float* out) override {
    source_.tokens(kHeldOutTokenOffset + first, count, out);
  }
  int64_t eval_available() const override { return int64_t{1} << 40; }
  std::string describe() const override { return "synthetic superposition data"; }

 private:
  SyntheticSource source_;
};

// A seeded permutation of [0, n) (Fisher–Yates on a counter-based generator).
std::vector<int64_t> permutation(int64_t n, uint64_t seed, uint64_t index) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  core::CounterRng rng(seed, core::kStreamShuffle, index);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(i + 1))]);
  return p;
}

class StoreStream final : public TokenStream {
 public:
  StoreStream(const parallel::Comm& comm, const config::Config& cfg)
      : store_(comm, cfg.data.source, cfg.data.hookpoint), seed_(static_cast<uint64_t>(cfg.data.shuffle_seed)) {
    const int64_t T = store_.n_tokens();
    eval_ = std::min(cfg.train.eval_tokens, T / 2);
    const int64_t train = T - eval_;
    chunk_ = std::max<int64_t>(1, std::min(cfg.data.shuffle_chunk, train));
    n_chunks_ = train / chunk_;
    window_chunks_ = std::max<int64_t>(1, cfg.data.shuffle_buffer / chunk_);
    if (n_chunks_ < 1)
      throw UsageError(fmt::format("data.source = {}: {} tokens leave nothing to train on after {} evaluation tokens",
                                   cfg.data.source, T, eval_));
  }
  int64_t d() const override { return store_.d(); }
  const io::ActivationStore* store() const override { return &store_; }
  int64_t eval_available() const override { return eval_; }
  int64_t tokens_per_epoch() const { return n_chunks_ * chunk_; }
  std::string describe() const override {
    return fmt::format("store {} [{}] ({} training tokens per epoch in {} chunks of {}, shuffle window {} tokens; {} held out)",
                       store_.path(), store_.hookpoint(), tokens_per_epoch(), n_chunks_, chunk_,
                       window_chunks_ * chunk_, eval_);
  }

  void eval_tokens(int64_t first, int64_t count, float* out) override {
    store_.read(store_.n_tokens() - eval_ + first, count, out);
  }

  void train_tokens(int64_t first, int64_t count, float* out) override {
    const int64_t d = store_.d(), window_tokens = window_chunks_ * chunk_;
    for (int64_t p = first; p < first + count;) {
      const int64_t epoch = p / tokens_per_epoch(), q = p % tokens_per_epoch();
      const int64_t window = q / window_tokens, offset = q % window_tokens;
      load_window(epoch, window);
      const int64_t take = std::min(first + count - p, window_rows_ - offset);
      std::memcpy(out + (p - first) * d, window_data_.data() + offset * d, static_cast<size_t>(take * d) * sizeof(float));
      p += take;
    }
  }

 private:
  // Reads window `window` of `epoch` (its chunks in the epoch's chunk order) and shuffles its rows.
  void load_window(int64_t epoch, int64_t window) {
    if (epoch == loaded_epoch_ && window == loaded_window_) return;
    if (epoch != order_epoch_) chunk_order_ = permutation(n_chunks_, seed_, static_cast<uint64_t>(epoch) << 32), order_epoch_ = epoch;
    const int64_t d = store_.d();
    const int64_t c0 = window * window_chunks_, c1 = std::min(n_chunks_, c0 + window_chunks_);
    window_rows_ = (c1 - c0) * chunk_;
    std::vector<float> rows(static_cast<size_t>(window_rows_ * d));
    for (int64_t c = c0; c < c1; ++c) store_.read(chunk_order_[c] * chunk_, chunk_, rows.data() + (c - c0) * chunk_ * d);
    const auto perm = permutation(window_rows_, seed_, (static_cast<uint64_t>(epoch) << 32) + 1 + static_cast<uint64_t>(window));
    window_data_.resize(rows.size());
    for (int64_t r = 0; r < window_rows_; ++r)
      std::memcpy(window_data_.data() + r * d, rows.data() + perm[r] * d, static_cast<size_t>(d) * sizeof(float));
    loaded_epoch_ = epoch, loaded_window_ = window;
  }

  io::ActivationStore store_;
  uint64_t seed_;
  int64_t eval_ = 0, chunk_ = 1, n_chunks_ = 0, window_chunks_ = 1;
  std::vector<int64_t> chunk_order_;
  int64_t order_epoch_ = -1, loaded_epoch_ = -1, loaded_window_ = -1, window_rows_ = 0;
  std::vector<float> window_data_;
};

}  // namespace

std::unique_ptr<TokenStream> open_token_stream(const parallel::Comm& comm, const config::Config& cfg) {
  if (cfg.data.source == "synthetic") return std::make_unique<SyntheticStream>(cfg.data.synthetic);
  return std::make_unique<StoreStream>(comm, cfg);
}

}  // namespace universae::data
