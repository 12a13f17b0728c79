#include "io/activation_store.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <regex>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/sharding.hpp"
#include "core/version.hpp"
#include "io/fingerprint.hpp"
#include "io/h5.hpp"
#include "io/schema.hpp"
#include "parallel/log.hpp"

namespace universae::io {

std::string token_sequence_hash(const std::vector<int32_t>& tokens, const std::vector<int64_t>& doc_offsets,
                                const std::vector<int64_t>& seq_offsets) {
  auto bytes = [](const auto& v) { return std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(v[0])); };
  uint64_t h = core::fnv1a64("universae token sequence v1");
  for (const std::string_view part : {bytes(tokens), bytes(doc_offsets), bytes(seq_offsets)}) {
    h = core::fnv1a64(std::to_string(part.size()), h);  // the lengths too, so the three cannot trade bytes
    h = core::fnv1a64(part, h);
  }
  return fmt::format("{:016x}", h);
}

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

namespace {

// The hookpoints of a complete store (the children of /activations); a UsageError naming the file when
// it is incomplete or not a store.
std::vector<std::string> complete_store_hookpoints(const io::File& f, const std::string& path) {
  if (!f.has_attr("/", "complete") || !f.read_attr_bool("/", "complete"))
    throw UsageError(path + ": incomplete activation store (the extraction writing it did not finish)");
  if (!f.exists("/activations") || !f.is_group("/activations"))
    throw UsageError(path + ": not an activation store (no /activations group)");
  return f.children("/activations");
}

}  // namespace

std::vector<std::string> store_hookpoints(const parallel::Comm& comm, const std::string& path) {
  parallel::Comm self = comm.split(comm.rank(), 0);
  io::File f = io::File::open_read(self, path);
  std::string error;
  std::vector<std::string> hookpoints;
  try {
    hookpoints = complete_store_hookpoints(f, path);
  } catch (const UsageError& e) {
    error = e.what();
  }
  parallel::agree_on_error(comm, error);
  return hookpoints;
}

ActivationStore::~ActivationStore() = default;
ActivationStore::ActivationStore(ActivationStore&&) noexcept = default;

ActivationStore::ActivationStore(const parallel::Comm& comm, const std::string& path, const std::string& hookpoint)
    : path_(path), hookpoint_(canonical_hookpoint(hookpoint)) {
  parallel::Comm self = comm.split(comm.rank(), 0);
  io::File f = io::File::open_read(self, path);
  std::string error;
  try {
    hookpoints_ = complete_store_hookpoints(f, path);
    const std::string dataset = "/activations/" + hookpoint_;
    if (!f.exists(dataset)) {
      std::string have;
      for (const auto& h : hookpoints_) have += (have.empty() ? "" : ", ") + h;
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
    provenance_ = read_provenance(f, "/");
    provenance_.store = absolute_path(path);
    if (f.has_attr("/", "fingerprint")) provenance_.store_fingerprint = fingerprint_hash(f.read_attr_string("/", "fingerprint"));
    verified_finite_ = f.has_attr("/", "activations_finite") && f.read_attr_bool("/", "activations_finite");
    if (f.has_attr("/", "token_sequence")) token_sequence_ = f.read_attr_string("/", "token_sequence");
    if (f.has_attr("/", "tokenizer_identity")) tokenizer_identity_ = f.read_attr_string("/", "tokenizer_identity");
    if (f.exists("/special_tokens")) {
      const auto n = f.shape("/special_tokens");
      if (n.size() != 1) throw UsageError(path + ": /special_tokens must be a vector of token ids");
      special_tokens_.resize(static_cast<size_t>(n[0]));
      if (n[0] > 0) f.read_rows("/special_tokens", {0, n[0]}, special_tokens_.data());
    }
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
  if (!verified_finite_) check_finite(comm);
}

// One NaN in a store turns every SAE trained on it into NaN hours later, so it is refused up front.
// Each rank scans a contiguous share of rows in blocks and stops at its first bad value; the global
// first is the minimum over ranks of (flat index, kind), so the message does not depend on the rank
// count. Costs one read of the store (page cache makes the second stage's scan cheap).
void ActivationStore::check_finite(const parallel::Comm& comm) const {
  const core::Range mine = core::shard_range(n_tokens_, comm.rank(), comm.size());
  const int64_t block = std::max<int64_t>(1, (int64_t{16} << 20) / d_);  // 64 MB of float32
  const int64_t none = std::numeric_limits<int64_t>::max();
  int64_t first_bad = none;  // (row * d + column) * 3 + kind; kind 0 NaN, 1 +Inf, 2 -Inf
  const double gigabytes = static_cast<double>(n_tokens_) * static_cast<double>(d_) * 4e-9;
  if (gigabytes > 1.0) log::info("{}: checking {:.1f} GB of activations for NaN/Inf", path_, gigabytes);
  std::vector<float> rows;
  for (int64_t r = mine.begin; r < mine.end && first_bad == none; r += block) {
    const int64_t count = std::min(block, mine.end - r);
    rows.resize(static_cast<size_t>(count * d_));
    read(r, count, rows.data());
    const auto bad = std::find_if(rows.begin(), rows.end(), [](float v) { return !std::isfinite(v); });
    if (bad == rows.end()) continue;
    const int64_t kind = std::isnan(*bad) ? 0 : (*bad > 0 ? 1 : 2);
    first_bad = (r * d_ + (bad - rows.begin())) * 3 + kind;
  }
  comm.allreduce_min(&first_bad, 1);
  if (first_bad == none) return;
  const int64_t flat = first_bad / 3, row = flat / d_, column = flat % d_;
  const char* kind[] = {"NaN", "+Inf", "-Inf"};
  const int64_t seq = std::upper_bound(seq_offsets_.begin(), seq_offsets_.end(), row) - seq_offsets_.begin() - 1;
  throw UsageError(path_ + ": /activations/" + hookpoint_ + " row " + std::to_string(row) + " (sequence " +
                   std::to_string(seq) + ", position " + std::to_string(row - seq_offsets_[static_cast<size_t>(seq)]) +
                   "), column " + std::to_string(column) + " is " + kind[first_bad % 3] +
                   ": activations must be finite (this is the first non-finite value in the store)");
}

void ActivationStore::read(int64_t first, int64_t count, float* out) const {
  if (dtype_ != "bfloat16") {
    impl_->file.read_rows(impl_->dataset, {first, first + count}, out);
    return;
  }
  std::vector<uint16_t> raw(static_cast<size_t>(count * d_));
  impl_->file.read_rows(impl_->dataset, {first, first + count}, raw.data());
  for (size_t i = 0; i < raw.size(); ++i) out[i] = core::from_bfloat16(raw[i]);
}

std::vector<int64_t> ActivationStore::read_tokens() const {
  std::vector<int64_t> tokens;
  if (!has_tokens_) return tokens;
  tokens.resize(static_cast<size_t>(n_tokens_));
  impl_->file.read_rows("/tokens", {0, n_tokens_}, tokens.data());
  return tokens;
}

namespace {

constexpr const char* kStoreFormat = "universae-activations";

DType file_dtype(core::FloatFormat f) {
  switch (f) {
    case core::FloatFormat::kBFloat16: return DType::kUInt16;  // the words; the attribute dtype says bfloat16
    case core::FloatFormat::kFloat16: return DType::kFloat16;
    case core::FloatFormat::kFloat32: break;
  }
  return DType::kFloat32;
}

// Creates the partial store: every dataset at full size, tokens and offsets written by rank 0.
File create_store(const parallel::Comm& comm, const std::string& path, const StoreLayout& L) {
  File f = File::create(comm, path);
  const bool root = comm.is_root();
  auto all_rows = [&](size_t n) { return root ? core::Range{0, static_cast<int64_t>(n)} : core::Range{0, 0}; };
  const auto T = static_cast<int64_t>(L.tokens.size());
  f.create_dataset("/tokens", DType::kInt32, {T});
  const std::vector<int64_t> tokens64(L.tokens.begin(), L.tokens.end());
  f.write_rows("/tokens", all_rows(L.tokens.size()), tokens64.data());
  f.create_dataset("/doc_offsets", DType::kInt64, {static_cast<int64_t>(L.doc_offsets.size())});
  f.write_rows("/doc_offsets", all_rows(L.doc_offsets.size()), L.doc_offsets.data());
  f.create_dataset("/seq_offsets", DType::kInt64, {static_cast<int64_t>(L.seq_offsets.size())});
  f.write_rows("/seq_offsets", all_rows(L.seq_offsets.size()), L.seq_offsets.data());
  f.create_dataset("/batch_nll", DType::kFloat64, {L.n_batches});
  for (size_t h = 0; h < L.hookpoints.size(); ++h) {
    const std::string ds = "/activations/" + L.hookpoints[h];
    f.create_dataset(ds, file_dtype(L.dtype), {T, L.widths[h]});
    f.write_attr(ds, "dtype", core::name_of(L.dtype));
  }
  f.write_attr("/", "format", kStoreFormat);
  f.write_attr("/", "format_version", int64_t{1});
  write_provenance(f, "/", L.provenance);
  f.write_attr("/", "model_architecture", L.model_architecture);
  f.write_attr("/", "tokenizer_identity", L.tokenizer_identity);
  f.write_attr("/", "token_sequence", token_sequence_hash(L.tokens, L.doc_offsets, L.seq_offsets));
  if (!L.special_tokens.empty()) f.write_vector("/special_tokens", DType::kInt64, L.special_tokens);
  f.write_attr("/", "inputs", L.inputs);
  f.write_attr("/", "hookpoints", L.hookpoints);
  f.write_attr("/", "seq_len", L.seq_len);
  f.write_attr("/", "batch_tokens", L.batch_tokens);
  f.write_attr("/", "n_documents", static_cast<int64_t>(L.doc_offsets.size()) - 1);
  f.write_attr("/", "n_sequences", static_cast<int64_t>(L.seq_offsets.size()) - 1);
  f.write_attr("/", "n_tokens", T);
  f.write_attr("/", "extract_config", L.extract_config);
  f.write_attr("/", "fingerprint", L.fingerprint);
  f.write_attr("/", "universae_version", build::kVersion);
  f.write_attr("/", "git_sha", build::kGitSha);
  // Token strings: a root attribute while it stays well under HDF5's 64 KiB attribute limit.
  size_t bytes = 0;
  for (const auto& p : L.vocab) bytes += p.size() + 16;
  if (bytes < 48 * 1024) f.write_attr("/", "vocab", L.vocab);
  else f.write_strings("/vocab", L.vocab);
  f.write_attr("/", "batches_done", int64_t{0});
  f.write_attr("/", "activations_finite", true);  // nothing written yet; each checkpoint updates it
  f.flush();
  return f;
}

}  // namespace

int64_t StoreLayout::bytes() const {
  int64_t total = static_cast<int64_t>(tokens.size()) * 4 + static_cast<int64_t>(seq_offsets.size() + doc_offsets.size()) * 8;
  for (int64_t w : widths) total += static_cast<int64_t>(tokens.size()) * w * core::bytes_of(dtype);
  return total;
}

ActivationStoreWriter::ActivationStoreWriter(const parallel::Comm& comm, const std::string& path, const StoreLayout& L)
    : comm_(comm), hookpoints_(L.hookpoints), widths_(L.widths), dtype_(L.dtype), n_batches_(L.n_batches), pending_(comm, path, OnAbandon::kKeep) {
  const std::string& partial = pending_.partial();
  const bool same = resumable(partial, L.fingerprint);  // every rank reads the same file: the same answer
  if (same) {
    auto f = std::make_unique<File>(File::open_rw(comm, partial));
    if (f->has_attr("/", "batches_done") && f->read_attr_int("/", "n_tokens") == static_cast<int64_t>(L.tokens.size())) {
      done_ = f->read_attr_int("/", "batches_done");
      // A partial begun before 0.7 did not check its rows: the store is then scanned where it is read.
      finite_ = f->has_attr("/", "activations_finite") && f->read_attr_bool("/", "activations_finite");
      file_ = std::move(f);
      log::info("extract: resuming {} at batch {} of {}", partial, done_, n_batches_);
      return;
    }
  }
  if (std::filesystem::exists(partial)) log::info("extract: discarding {} (written with other extract settings)", partial);
  ensure_space(comm, std::filesystem::path(path).parent_path().string(), L.bytes(), "the activation store " + path);
  file_ = std::make_unique<File>(create_store(comm, partial, L));
}

ActivationStoreWriter::~ActivationStoreWriter() {
  if (writeback_fd_ >= 0) ::close(writeback_fd_);
}

// At 10 hookpoints of stories260K one rank writes 165 MB/s, and Linux starts writing dirty pages back only
// past 10 % of memory or after 30 s: each checkpoint's fsync (H5Fflush is MPI_File_sync) then wrote 5 s of
// rows itself: 0.44 s of a 12 s extraction in the foreground, 0.5–0.65 s waited for when moved onto the
// writer thread; with the writeback started after every round, 0.0–0.3 s (bench/RESULTS.md).
void ActivationStoreWriter::start_writeback() {
  if (writeback_fd_ < 0) writeback_fd_ = ::open(pending_.partial().c_str(), O_RDONLY | O_CLOEXEC);
  if (writeback_fd_ >= 0) ::sync_file_range(writeback_fd_, 0, 0, SYNC_FILE_RANGE_WRITE);  // a hint: errors do not matter
}

std::vector<double> ActivationStoreWriter::batch_nll() const {
  std::vector<double> nll(static_cast<size_t>(n_batches_), 0.0);
  if (done_ > 0) file_->read_rows("/batch_nll", comm_.is_root() ? core::Range{0, done_} : core::Range{0, 0}, nll.data());
  return nll;
}

constexpr int64_t kScanBlock = 4096;  // values per vectorised pass of the finiteness check

void ActivationStoreWriter::write_rows(size_t hook, core::Range rows, const float* values) {
  const std::string ds = "/activations/" + hookpoints_[hook];
  const int64_t n = widths_[hook] * rows.size();
  // Whether each value stays finite as stored: float16 rounds |x| >= 65520 to Inf.
  const float limit = dtype_ == core::FloatFormat::kFloat16 ? 65520.0f : std::numeric_limits<float>::infinity();
  // A branch-free pass in blocks the compiler vectorises; the early-exit search only once a block holds a
  // bad value. The scalar search took about 0.3 s of the 3.4 s one rank spent writing 1.8 GB (10 hookpoints
  // of stories260K, bench/RESULTS.md); the rest is the kernel's copy into the page cache.
  if (first_bad_ < 0) {
    bool all_finite = true;
    for (int64_t i = 0; i < n && all_finite; i += kScanBlock) {
      const int64_t end = std::min(n, i + kScanBlock);
      for (int64_t j = i; j < end; ++j) all_finite &= std::fabs(values[j]) < limit;
    }
    const float* bad = all_finite ? values + n : std::find_if(values, values + n, [limit](float v) { return !(std::fabs(v) < limit); });
    if (bad != values + n)
      first_bad_ = (rows.begin + (bad - values) / widths_[hook]) * static_cast<int64_t>(hookpoints_.size()) + static_cast<int64_t>(hook);
  }
  if (dtype_ != core::FloatFormat::kBFloat16) {
    file_->write_rows(ds, rows, values);  // float16: HDF5 converts
    return;
  }
  half_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    half_[static_cast<size_t>(i)] = core::to_bfloat16(values[i]);
    if (first_bad_ < 0 && (half_[static_cast<size_t>(i)] & 0x7F80u) == 0x7F80u)  // rounded up to Inf
      first_bad_ = (rows.begin + i / widths_[hook]) * static_cast<int64_t>(hookpoints_.size()) + static_cast<int64_t>(hook);
  }
  file_->write_rows(ds, rows, half_.data());
}

void ActivationStoreWriter::write_batch_nll(int64_t batch, bool has_batch, double nll) {
  file_->write_rows("/batch_nll", has_batch ? core::Range{batch, batch + 1} : core::Range{0, 0}, &nll);
}

void ActivationStoreWriter::checkpoint(int64_t done) {
  int64_t first = first_bad_ < 0 ? std::numeric_limits<int64_t>::max() : first_bad_;
  comm_.allreduce_min(&first, 1);
  if (finite_ && first != std::numeric_limits<int64_t>::max()) {
    const auto hooks = static_cast<int64_t>(hookpoints_.size());
    log::warn("extract: /activations/{} row {} holds a value that is not finite as stored ({}): training and compare "
              "will refuse this store{}",
              hookpoints_[static_cast<size_t>(first % hooks)], first / hooks, core::name_of(dtype_),
              dtype_ == core::FloatFormat::kFloat16 ? " (float16 holds |x| < 65520: set extract.dtype = \"bfloat16\" or \"float32\")"
                                                     : " (the model's forward produced NaN or Inf: check the checkpoint and extract.compute_dtype)");
  }
  finite_ = finite_ && first == std::numeric_limits<int64_t>::max();
  done_ = done;
  file_->write_attr("/", "activations_finite", finite_);
  file_->write_attr("/", "batches_done", done);
  file_->flush();
}

void ActivationStoreWriter::finish(double loss, int64_t loss_tokens) {
  file_->write_attr("/", "loss", loss);
  file_->write_attr("/", "loss_tokens", loss_tokens);
  describe_objects(*file_, SchemaKind::kActivationStore);
  file_->write_attr("/", "complete", true);  // last
  file_->close();
  pending_.commit();
}

}  // namespace universae::io
