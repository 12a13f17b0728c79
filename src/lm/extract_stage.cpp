#include "core/version.hpp"
#include "lm/extract_stage.hpp"

#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

#include "core/error.hpp"
#include "core/sharding.hpp"
#include "io/fingerprint.hpp"
#include "io/h5.hpp"
#include "io/output.hpp"
#include "lm/documents.hpp"
#include "lm/llama.hpp"
#include "lm/tokenizer.hpp"
#include "parallel/log.hpp"
#include "parallel/stop_signals.hpp"

namespace universae::lm {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr double kFlushSeconds = 5.0;  // at most this much finished work is redone after a crash

// float32 → bfloat16 (round to nearest even; NaN stays NaN).
uint16_t to_bfloat16(float f) {
  uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// What every rank knows after tokenization: the store's rows, the sequences, and the batches
// (consecutive sequences up to extract.batch_tokens tokens).
struct Plan {
  std::vector<int32_t> tokens;         // store rows (the sequences as run, BOS at each start)
  std::vector<int64_t> doc_offsets;    // [n_docs + 1] over store rows
  std::vector<int64_t> seq_offsets;    // [n_seq + 1] over store rows
  std::vector<int64_t> batch_offsets;  // [n_batches + 1] over sequences
  int64_t n_sequences() const { return static_cast<int64_t>(seq_offsets.size()) - 1; }
  int64_t n_batches() const { return static_cast<int64_t>(batch_offsets.size()) - 1; }
  core::Range sequences(int64_t batch) const {
    return {batch_offsets[static_cast<size_t>(batch)], batch_offsets[static_cast<size_t>(batch + 1)]};
  }
  core::Range rows(int64_t batch) const {
    const core::Range s = sequences(batch);
    return {seq_offsets[static_cast<size_t>(s.begin)], seq_offsets[static_cast<size_t>(s.end)]};
  }
  int64_t predicted(int64_t batch) const { return rows(batch).size() - sequences(batch).size(); }  // positions with a next token
};

// Documents (token ids from BOS) → rows: a document longer than seq_len continues in windows of
// seq_len that start again with BOS. Then consecutive sequences are cut into batches.
Plan make_plan(const std::vector<int32_t>& doc_tokens, const std::vector<int64_t>& doc_lengths, int64_t seq_len,
               int64_t batch_tokens) {
  Plan p;
  p.doc_offsets.push_back(0);
  p.seq_offsets.push_back(0);
  int64_t at = 0;
  for (int64_t n : doc_lengths) {
    const int32_t* doc = doc_tokens.data() + at;
    at += n;
    int64_t pos = std::min(n, seq_len);
    p.tokens.insert(p.tokens.end(), doc, doc + pos);
    p.seq_offsets.push_back(static_cast<int64_t>(p.tokens.size()));
    while (pos < n) {
      const int64_t take = std::min(n - pos, seq_len - 1);
      p.tokens.push_back(Tokenizer::kBos);
      p.tokens.insert(p.tokens.end(), doc + pos, doc + pos + take);
      p.seq_offsets.push_back(static_cast<int64_t>(p.tokens.size()));
      pos += take;
    }
    p.doc_offsets.push_back(static_cast<int64_t>(p.tokens.size()));
  }
  p.batch_offsets.push_back(0);
  int64_t fill = 0;
  for (int64_t s = 0; s < p.n_sequences(); ++s) {
    const int64_t n = p.seq_offsets[static_cast<size_t>(s + 1)] - p.seq_offsets[static_cast<size_t>(s)];
    if (fill > 0 && fill + n > batch_tokens) p.batch_offsets.push_back(s), fill = 0;
    fill += n;
  }
  p.batch_offsets.push_back(p.n_sequences());
  return p;
}

// The inputs, checked on every rank before anything is written (a UsageError on every rank).
struct Inputs {
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<Hook> hooks;
  std::vector<std::string> documents;
  int64_t seq_len = 0;
};

Inputs open_inputs(const parallel::Comm& comm, const config::ExtractConfig& x) {
  Inputs in;
  std::string error;
  try {
    if (x.model.empty()) throw UsageError("config key 'extract.model': name a llama2.c checkpoint (.bin)");
    if (x.tokenizer.empty()) throw UsageError("config key 'extract.tokenizer': name a llama2.c tokenizer (.bin)");
    if (x.inputs.empty()) throw UsageError("config key 'extract.inputs': name at least one text file");
    in.model = std::make_unique<LlamaModel>(x.model);
    const LlamaConfig& m = in.model->config();
    in.tokenizer = std::make_unique<Tokenizer>(x.tokenizer, m.vocab_size);
    for (const auto& name : resolve_hookpoints(x.hookpoints, m.n_layers)) in.hooks.push_back(parse_hook(m, name));
    in.seq_len = x.seq_len > 0 ? x.seq_len : m.seq_len;
    if (in.seq_len < 2 || in.seq_len > m.seq_len)
      throw UsageError("config key 'extract.seq_len': " + std::to_string(x.seq_len) + " is outside 2.." +
                       std::to_string(m.seq_len) + " (the model's context)");
    in.documents = read_documents(x.inputs, core::name_of(x.input_format));
    if (x.max_documents > 0 && static_cast<int64_t>(in.documents.size()) > x.max_documents)
      in.documents.resize(static_cast<size_t>(x.max_documents));
    if (in.documents.empty()) throw UsageError("extract.inputs: no documents in " + x.inputs.front() + (x.inputs.size() > 1 ? " ..." : ""));
  } catch (const UsageError& e) {
    error = e.what();
  }
  parallel::agree_on_error(comm, error);
  return in;
}

ExtractResult result_from(const io::File& f) {
  ExtractResult r;
  r.store = f.path();
  r.hookpoints = f.read_attr_strings("/", "hookpoints");
  r.n_documents = f.read_attr_int("/", "n_documents");
  r.n_sequences = f.read_attr_int("/", "n_sequences");
  r.n_tokens = f.read_attr_int("/", "n_tokens");
  r.loss = f.read_attr_double("/", "loss");
  r.loss_tokens = f.read_attr_int("/", "loss_tokens");
  return r;
}

// Creates the partial store: every dataset at full size, tokens and offsets written by rank 0.
io::File create_store(const parallel::Comm& comm, const std::string& path, const config::Config& cfg, const Inputs& in,
                      const Plan& plan, const std::vector<std::string>& names) {
  io::File f = io::File::create(comm, path);
  const int64_t T = static_cast<int64_t>(plan.tokens.size());
  const bool root = comm.is_root();
  auto all_rows = [&](int64_t n) { return root ? core::Range{0, n} : core::Range{0, 0}; };
  f.create_dataset("/tokens", io::DType::kInt32, {T});
  const std::vector<int64_t> tokens64(plan.tokens.begin(), plan.tokens.end());
  f.write_rows("/tokens", all_rows(T), tokens64.data());
  f.create_dataset("/doc_offsets", io::DType::kInt64, {static_cast<int64_t>(plan.doc_offsets.size())});
  f.write_rows("/doc_offsets", all_rows(static_cast<int64_t>(plan.doc_offsets.size())), plan.doc_offsets.data());
  f.create_dataset("/seq_offsets", io::DType::kInt64, {static_cast<int64_t>(plan.seq_offsets.size())});
  f.write_rows("/seq_offsets", all_rows(static_cast<int64_t>(plan.seq_offsets.size())), plan.seq_offsets.data());
  f.create_dataset("/batch_nll", io::DType::kFloat64, {plan.n_batches()});
  const config::StoreDType dtype = cfg.extract.dtype;
  for (size_t h = 0; h < in.hooks.size(); ++h) {
    const std::string ds = "/activations/" + names[h];
    f.create_dataset(ds, dtype == config::StoreDType::kBFloat16 ? io::DType::kUInt16
                         : dtype == config::StoreDType::kFloat16 ? io::DType::kFloat16
                                                                 : io::DType::kFloat32,
                     {T, in.hooks[h].width});
    f.write_attr(ds, "dtype", core::name_of(dtype));
  }
  f.write_attr("/", "format", "universae-activations");
  f.write_attr("/", "format_version", int64_t{1});
  f.write_attr("/", "model", cfg.extract.model);
  f.write_attr("/", "tokenizer", cfg.extract.tokenizer);
  f.write_attr("/", "inputs", cfg.extract.inputs);
  f.write_attr("/", "hookpoints", names);
  f.write_attr("/", "seq_len", in.seq_len);
  f.write_attr("/", "batch_tokens", cfg.extract.batch_tokens);
  f.write_attr("/", "n_documents", static_cast<int64_t>(plan.doc_offsets.size()) - 1);
  f.write_attr("/", "n_sequences", plan.n_sequences());
  f.write_attr("/", "n_tokens", T);
  f.write_attr("/", "extract_config", config::to_toml(cfg, {"extract"}));
  f.write_attr("/", "fingerprint", store_fingerprint(cfg));
  f.write_attr("/", "universae_version", build::kVersion);
  f.write_attr("/", "git_sha", build::kGitSha);
  // Token strings: a root attribute while it stays well under HDF5's 64 KiB attribute limit.
  size_t bytes = 0;
  for (const auto& p : in.tokenizer->pieces()) bytes += p.size() + 16;
  if (bytes < 48 * 1024) f.write_attr("/", "vocab", in.tokenizer->pieces());
  else f.write_strings("/vocab", in.tokenizer->pieces());
  f.write_attr("/", "batches_done", int64_t{0});
  f.flush();
  return f;
}

}  // namespace

std::string store_fingerprint(const config::Config& config) {
  return config::fingerprint(config, config::Stage::kExtract, io::input_identity);
}

std::vector<std::string> resolve_hookpoints(const std::vector<std::string>& requested, int64_t n_layers) {
  LlamaConfig shape;  // only the block count matters for the names
  shape.n_layers = n_layers, shape.dim = 1, shape.hidden_dim = 1;
  std::vector<std::string> out;
  auto add = [&](const std::string& name) {
    const std::string canonical = parse_hook(shape, name).name;
    if (std::find(out.begin(), out.end(), canonical) == out.end()) out.push_back(canonical);
  };
  for (const auto& r : requested) {
    const size_t star = r.find('*');
    if (star == std::string::npos) add(r);
    for (int64_t l = 0; star != std::string::npos && l < n_layers; ++l) add(r.substr(0, star) + std::to_string(l) + r.substr(star + 1));
  }
  return out;
}

ExtractResult run_extract_stage(const parallel::Comm& comm, const config::Config& cfg, bool fresh) {
  const config::ExtractConfig& x = cfg.extract;
  const auto start = Clock::now();
  const Inputs in = open_inputs(comm, x);
  std::vector<std::string> names;
  for (const Hook& h : in.hooks) names.push_back(h.name);
  if (!fresh && io::reusable(x.store, store_fingerprint(cfg))) {
    log::info("extract: reusing the complete store {} (same extract config; --fresh recomputes)", x.store);
    ExtractResult r = result_from(io::File::open_read(comm, x.store));
    r.reused = true;
    return r;
  }
  const std::filesystem::path parent = std::filesystem::path(x.store).parent_path();
  if (!parent.empty()) io::ensure_directory(comm, parent.string());

  // Tokenize: each rank a contiguous block of documents, then everyone gathers every document's ids.
  auto t = Clock::now();
  const core::Range mine = core::shard_range(static_cast<int64_t>(in.documents.size()), comm.rank(), comm.size());
  std::vector<int32_t> local_tokens;
  std::vector<int64_t> local_lengths;
  for (int64_t d = mine.begin; d < mine.end; ++d) {
    const auto ids = in.tokenizer->encode(in.documents[static_cast<size_t>(d)], /*bos=*/true, /*eos=*/false);
    local_tokens.insert(local_tokens.end(), ids.begin(), ids.end());
    local_lengths.push_back(static_cast<int64_t>(ids.size()));
  }
  std::vector<int32_t> doc_tokens = comm.allgatherv(local_tokens);
  std::vector<int64_t> doc_lengths = comm.allgatherv(local_lengths);
  if (x.max_tokens > 0) {  // the first documents up to max_tokens
    int64_t total = 0;
    size_t keep = 0;
    while (keep < doc_lengths.size() && total + doc_lengths[keep] <= x.max_tokens) total += doc_lengths[keep++];
    if (keep == 0)
      throw UsageError("config key 'extract.max_tokens': " + std::to_string(x.max_tokens) + " is less than the first document (" +
                       std::to_string(doc_lengths[0]) + " tokens)");
    doc_lengths.resize(keep);
    doc_tokens.resize(static_cast<size_t>(total));
  }
  const Plan plan = make_plan(doc_tokens, doc_lengths, in.seq_len, x.batch_tokens);
  ExtractResult result;
  result.tokenize_seconds = seconds_since(t);
  result.store = x.store;
  result.hookpoints = names;
  result.n_documents = static_cast<int64_t>(doc_lengths.size());
  result.n_sequences = plan.n_sequences();
  result.n_tokens = static_cast<int64_t>(plan.tokens.size());
  const int64_t n_batches = plan.n_batches();
  log::info("extract: {} documents → {} sequences of ≤ {} tokens, {} tokens in {} batches of ≤ {}; hookpoints {}",
            result.n_documents, result.n_sequences, in.seq_len, result.n_tokens, n_batches, x.batch_tokens, fmt::join(names, ", "));

  // Resume a partial store written with the same config, else start one.
  const std::string partial = x.store + ".partial";
  const std::string fingerprint = store_fingerprint(cfg);
  std::unique_ptr<io::File> file;
  int64_t done = 0;
  if (!fresh && std::filesystem::is_regular_file(partial)) {
    try {
      auto f = std::make_unique<io::File>(io::File::open_rw(comm, partial));
      if (f->has_attr("/", "fingerprint") && f->read_attr_string("/", "fingerprint") == fingerprint &&
          f->has_attr("/", "batches_done") && f->read_attr_int("/", "n_tokens") == result.n_tokens) {
        done = f->read_attr_int("/", "batches_done");
        file = std::move(f);
        log::info("extract: resuming {} at batch {} of {}", partial, done, n_batches);
      } else {
        log::info("extract: discarding {} (written with a different extract config)", partial);
      }
    } catch (const UsageError& e) {
      log::info("extract: discarding {} ({})", partial, e.what());
    }
  }
  if (!file) {
    int64_t bytes = result.n_tokens * 4 + static_cast<int64_t>(plan.seq_offsets.size() + plan.doc_offsets.size()) * 8;
    const int64_t item = cfg.extract.dtype == config::StoreDType::kFloat32 ? 4 : 2;
    for (const auto& hook : in.hooks) bytes += result.n_tokens * hook.width * item;
    io::ensure_space(comm, parent.string(), bytes, "the activation store " + x.store);
    file = std::make_unique<io::File>(create_store(comm, partial, cfg, in, plan, names));
  }
  io::File& f = *file;

  // Losses of the batches before the resume point come back from the file.
  std::vector<double> batch_nll(static_cast<size_t>(n_batches), 0.0);
  if (done > 0) f.read_rows("/batch_nll", comm.is_root() ? core::Range{0, done} : core::Range{0, 0}, batch_nll.data());

  const int R = comm.size();
  const parallel::StopSignals signals;
  log::Progress progress("extract", result.n_tokens, "tok");
  if (done > 0) progress.update(plan.rows(done - 1).end);
  auto last_flush = Clock::now();
  std::vector<uint16_t> half;
  while (done < n_batches) {
    const int64_t batch = done + comm.rank();
    core::Range rows{0, 0};
    LlamaModel::Output out;
    out.captures.resize(in.hooks.size());  // stays empty on a rank without a batch this round
    if (batch < n_batches) {
      t = Clock::now();
      rows = plan.rows(batch);
      const core::Range seqs = plan.sequences(batch);
      std::vector<int64_t> lengths;
      for (int64_t s = seqs.begin; s < seqs.end; ++s)
        lengths.push_back(plan.seq_offsets[static_cast<size_t>(s + 1)] - plan.seq_offsets[static_cast<size_t>(s)]);
      const std::vector<int32_t> tokens(plan.tokens.begin() + rows.begin, plan.tokens.begin() + rows.end);
      out = in.model->forward(tokens, lengths, in.hooks, x.loss);
      batch_nll[static_cast<size_t>(batch)] = out.nll_sum;
      result.forward_seconds += seconds_since(t);
    }
    t = Clock::now();
    for (size_t h = 0; h < in.hooks.size(); ++h) {
      const std::string ds = "/activations/" + names[h];
      out.captures[h].resize(static_cast<size_t>(rows.size() * in.hooks[h].width));  // empty on an idle rank
      if (x.dtype == config::StoreDType::kBFloat16) {
        half.resize(out.captures[h].size());
        for (size_t i = 0; i < half.size(); ++i) half[i] = to_bfloat16(out.captures[h][i]);
        f.write_rows(ds, rows, half.data());
      } else {
        f.write_rows(ds, rows, out.captures[h].data());
      }
    }
    const core::Range nll_row = batch < n_batches ? core::Range{batch, batch + 1} : core::Range{0, 0};
    f.write_rows("/batch_nll", nll_row, batch_nll.data() + nll_row.begin);
    done = std::min(done + R, n_batches);
    const bool stop = signals.requested(comm);
    if (stop || done == n_batches || seconds_since(last_flush) > kFlushSeconds) {
      f.write_attr("/", "batches_done", done);
      f.flush();
      last_flush = Clock::now();
    }
    result.write_seconds += seconds_since(t);
    progress.update(plan.rows(done - 1).end);
    if (stop && done < n_batches)
      throw Checkpointed("extraction stopped by a signal after " + std::to_string(done) + " of " + std::to_string(n_batches) +
                         " batches (" + partial + "); run the same command to resume");
  }
  progress.finish();

  // Each batch's loss was computed by one rank: the sum over ranks is exact, then added in batch order.
  comm.allreduce_sum(batch_nll.data(), n_batches);
  double nll = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < n_batches; ++b) nll += batch_nll[static_cast<size_t>(b)], count += plan.predicted(b);
  result.loss = x.loss && count > 0 ? nll / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
  result.loss_tokens = x.loss ? count : 0;
  f.write_attr("/", "loss", result.loss);
  f.write_attr("/", "loss_tokens", result.loss_tokens);
  f.write_attr("/", "complete", true);
  f.close();
  comm.barrier();
  if (comm.is_root()) std::filesystem::rename(partial, x.store);
  comm.barrier();
  result.seconds = seconds_since(start);
  log::info("extract: {} tokens in {} ({:.0f} tok/s; forward {:.1f} s, HDF5 writes {:.1f} s, tokenize {:.1f} s){}", result.n_tokens,
            log::format_duration(result.seconds), static_cast<double>(result.n_tokens) / result.seconds, result.forward_seconds,
            result.write_seconds, result.tokenize_seconds,
            x.loss ? fmt::format("; mean next-token loss {:.4f} nats over {} tokens", result.loss, result.loss_tokens) : "");
  return result;
}

}  // namespace universae::lm
