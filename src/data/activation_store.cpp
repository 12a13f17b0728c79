#include "data/activation_store.hpp"

#include <cstring>
#include <regex>

#include "core/error.hpp"
#include "io/h5.hpp"

namespace universae::data {

std::string canonical_hookpoint(const std::string& name) {
  static const std::regex layer(R"(layers\.(\d+))"), mlp(R"(layers\.(\d+)\.mlp)");
  std::smatch m;
  if (std::regex_match(name, m, mlp)) return "blocks." + m[1].str() + ".hook_mlp_out";
  if (std::regex_match(name, m, layer)) return "blocks." + m[1].str() + ".hook_resid_post";
  return name;
}

struct ActivationStore::Impl {
  parallel::Comm self;
  io::File file;
  std::string dataset;
};

ActivationStore::~ActivationStore() = default;
ActivationStore::ActivationStore(ActivationStore&&) noexcept = default;

ActivationStore::ActivationStore(const parallel::Comm& comm, const std::string& path, const std::string& hookpoint)
    : path_(path), hookpoint_(canonical_hookpoint(hookpoint)) {
  parallel::Comm self = comm.split(comm.rank(), 0);
  io::File f = io::File::open_read(self, path);
  std::string error;
  try {
    if (!f.has_attr("/", "complete") || !f.read_attr_bool("/", "complete"))
      throw UsageError(path + ": incomplete activation store (the extraction writing it did not finish)");
    if (!f.exists("/activations") || !f.is_group("/activations"))
      throw UsageError(path + ": not an activation store (no /activations group)");
    const std::string dataset = "/activations/" + hookpoint_;
    if (!f.exists(dataset)) {
      std::string have;
      for (const auto& h : f.children("/activations")) have += (have.empty() ? "" : ", ") + h;
      throw UsageError(path + ": no activations for hookpoint '" + hookpoint_ + "' (data.hookpoint); the store has: " +
                       (have.empty() ? "none" : have));
    }
    const auto shape = f.shape(dataset);
    if (shape.size() != 2 || shape[0] < 1 || shape[1] < 1)
      throw UsageError(path + ": " + dataset + " must be [tokens, d] with both >= 1");
    n_tokens_ = shape[0];
    d_ = shape[1];
    if (f.has_attr(dataset, "dtype")) dtype_ = f.read_attr_string(dataset, "dtype");
    if (dtype_ != "float32" && dtype_ != "float16" && dtype_ != "bfloat16")
      throw UsageError(path + ": " + dataset + " has dtype '" + dtype_ + "' (known: float32, float16, bfloat16)");
    if (f.has_attr("/", "model")) model_ = f.read_attr_string("/", "model");
    has_tokens_ = f.exists("/tokens");
    if (has_tokens_ && f.shape("/tokens") != std::vector<int64_t>{n_tokens_})
      throw UsageError(path + ": /tokens must have one entry per activation row (" + std::to_string(n_tokens_) + ")");
    if (f.has_attr("/", "vocab")) {
      vocab_ = f.read_attr_strings("/", "vocab");
    } else if (f.exists("/vocab")) {
      vocab_ = f.read_strings("/vocab");
    }
    seq_offsets_ = {0, n_tokens_};
    if (f.exists("/seq_offsets")) {
      const auto n = f.shape("/seq_offsets");
      if (n.size() != 1 || n[0] < 2) throw UsageError(path + ": /seq_offsets must be [n_seq + 1] with n_seq >= 1");
      seq_offsets_.resize(static_cast<size_t>(n[0]));
      f.read_rows("/seq_offsets", {0, n[0]}, seq_offsets_.data());
      for (size_t i = 1; i < seq_offsets_.size(); ++i)
        if (seq_offsets_[i] < seq_offsets_[i - 1]) throw UsageError(path + ": /seq_offsets must not decrease");
      if (seq_offsets_.front() != 0 || seq_offsets_.back() != n_tokens_)
        throw UsageError(path + ": /seq_offsets must run from 0 to the token count " + std::to_string(n_tokens_));
    }
  } catch (const UsageError& e) {
    error = e.what();
  }
  parallel::agree_on_error(comm, error);
  impl_ = std::make_unique<Impl>(Impl{self, std::move(f), "/activations/" + hookpoint_});
}

void ActivationStore::read(int64_t first, int64_t count, float* out) const {
  if (dtype_ != "bfloat16") {
    impl_->file.read_rows(impl_->dataset, {first, first + count}, out);
    return;
  }
  // bfloat16 is the high half of a float32.
  std::vector<uint16_t> raw(static_cast<size_t>(count * d_));
  impl_->file.read_rows(impl_->dataset, {first, first + count}, raw.data());
  for (size_t i = 0; i < raw.size(); ++i) {
    const uint32_t bits = static_cast<uint32_t>(raw[i]) << 16;
    std::memcpy(out + i, &bits, sizeof bits);
  }
}

std::vector<int64_t> ActivationStore::read_tokens() const {
  std::vector<int64_t> tokens;
  if (!has_tokens_) return tokens;
  tokens.resize(static_cast<size_t>(n_tokens_));
  impl_->file.read_rows("/tokens", {0, n_tokens_}, tokens.data());
  return tokens;
}

}  // namespace universae::data
