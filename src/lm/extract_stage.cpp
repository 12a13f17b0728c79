// The extraction stage as named steps: open the inputs, tokenize, plan (lm/extract_plan.hpp), run
// the batches round by round into the store (io/activation_store.hpp), finish with the mean loss.
#include "lm/extract_stage.hpp"

#include <ATen/Parallel.h>
#include <sched.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <optional>

#include "core/error.hpp"
#include "core/sharding.hpp"
#include "io/activation_store.hpp"
#include "io/fingerprint.hpp"
#include "io/h5.hpp"
#include "io/output.hpp"
#include "io/output_lock.hpp"
#include "io/provenance.hpp"
#include "lm/documents.hpp"
#include "lm/extract_plan.hpp"
#include "lm/model.hpp"
#include "lm/text_tokenizer.hpp"
#include "parallel/comm.hpp"
#include "parallel/device.hpp"
#include "parallel/log.hpp"
#include "parallel/stop_signals.hpp"

namespace universae::lm {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr double kFlushSeconds = 5.0;  // at most this much finished work is redone after a crash

// The inputs, checked on every rank before anything is written (a UsageError on every rank).
struct Inputs {
  std::unique_ptr<LanguageModel> model;
  std::unique_ptr<TextTokenizer> tokenizer;
  std::vector<Hook> hooks;
  std::vector<std::string> documents;
  int64_t seq_len = 0;
  c10::Device device{c10::kCPU};  // where the forward runs
};

Inputs open_inputs(const parallel::Comm& comm, const config::ExtractConfig& x, at::Device device) {
  Inputs in;
  in.device = device;
  std::string error;
  try {
    if (x.model.empty())
      throw UsageError("config key 'extract.model': name a Hugging Face model directory, a GGUF file or a llama2.c checkpoint");
    if (x.tokenizer.empty()) throw UsageError("config key 'extract.tokenizer': name a tokenizer.json or a llama2.c tokenizer (.bin)");
    if (x.inputs.empty()) throw UsageError("config key 'extract.inputs': name at least one text file");
    in.model = std::make_unique<LanguageModel>(
        x.model, x.compute_dtype == core::FloatFormat::kBFloat16 ? ComputeDtype::kBFloat16 : ComputeDtype::kFloat32, device);
    const ModelConfig& m = in.model->config();
    in.tokenizer = open_tokenizer(x.tokenizer, &m);
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
  r.reused = true;
  return r;
}

ExtractPlan tokenize_and_plan(const parallel::Comm& comm, const config::ExtractConfig& x, const Inputs& in) {
  return plan_documents(comm, *in.tokenizer, in.documents, in.seq_len, x.batch_tokens, x.max_tokens, "config key 'extract.max_tokens'");
}

io::StoreLayout store_layout(const config::Config& cfg, const Inputs& in, ExtractPlan& plan, const std::vector<std::string>& names,
                             const std::string& fingerprint, const std::string& tokenizer_identity, io::Provenance provenance) {
  io::StoreLayout L;
  L.tokens = std::move(plan.tokens);  // the plan keeps its offsets; the rows are read back from L
  L.doc_offsets = plan.doc_offsets;
  L.seq_offsets = plan.seq_offsets;
  L.n_batches = plan.n_batches();
  L.hookpoints = names;
  for (const Hook& h : in.hooks) L.widths.push_back(h.width);
  L.dtype = cfg.extract.dtype;
  L.provenance = std::move(provenance);
  L.model_architecture = in.model->config().architecture;
  L.tokenizer_identity = tokenizer_identity;
  for (const auto& input : cfg.extract.inputs) L.inputs.push_back(io::absolute_path(input));
  L.vocab = in.tokenizer->pieces();
  for (int32_t id : in.tokenizer->special_ids()) L.special_tokens.push_back(id);
  L.seq_len = in.seq_len;
  L.batch_tokens = cfg.extract.batch_tokens;
  L.extract_config = config::to_toml(cfg, {"extract"});
  L.fingerprint = fingerprint;
  return L;
}

// One round's rows on their way to the store: the captures (moved out of the forward's output, so they
// live as long as the write) and the round's batch.
struct RoundRows {
  int64_t batch = -1;  // -1: this rank had no batch in the round (it still joins the collective writes)
  core::Range rows{0, 0};
  std::vector<std::vector<float>> captures;
  double nll = 0;
};

// Writes one round collectively: every hookpoint's rows, then the batch's loss sum.
void write_round(io::ActivationStoreWriter& store, const std::vector<Hook>& hooks, RoundRows& r) {
  for (size_t h = 0; h < hooks.size(); ++h) {
    r.captures[h].resize(static_cast<size_t>(r.rows.size() * hooks[h].width));  // empty on an idle rank
    store.write_rows(h, r.rows, r.captures[h].data());
  }
  store.write_batch_nll(r.batch, r.batch >= 0, r.nll);
  store.start_writeback();
}

// Whether this rank's store writes may run on a thread beside the forward: only where that thread gets a
// core the forward does not use (the model runs on a device, or this rank may run on more cores than the
// forward's threads), and MPI allows a second thread. The writes are the kernel copying rows into the
// page cache; on a core shared with the forward they slow it by as much as they save (measured,
// bench/RESULTS.md: 2 ranks bound to the 2 cores ran 22–25 % slower with the writes beside the forward).
bool writes_beside_forward(at::Device device, std::string* why) {
  cpu_set_t cores;
  CPU_ZERO(&cores);
  const int n_cores = sched_getaffinity(0, sizeof(cores), &cores) == 0 ? CPU_COUNT(&cores) : 1;
  const int threads = at::get_num_threads();
  *why = !device.is_cpu() ? "the forward runs on " + device.str()
                          : fmt::format("{} core{} for {} forward thread{}", n_cores, n_cores == 1 ? "" : "s", threads, threads == 1 ? "" : "s");
  return parallel::threads_may_call_mpi() && (!device.is_cpu() || n_cores > threads);
}

// Round by round: rank k runs batch done + k and every rank writes its rows collectively. Where a core is
// free (writes_beside_forward), the writes of round r run on a second thread while the forward of round
// r + 1 runs: at 10 hookpoints they were 24 % of one rank's time when they waited for the forward
// (bench/RESULTS.md), and the periodic save after them. Only that thread touches HDF5 and MPI while it
// runs: the main thread joins it before the stop check, the last round's writes or the next round's (so MPI needs only
// MPI_THREAD_SERIALIZED, and every rank makes the same collectives in the same order whichever way it
// writes). Two rounds' captures are then held at a time.
// Returns the summed loss of every batch (each computed by one rank).
std::vector<double> run_batches(const parallel::Comm& comm, const config::ExtractConfig& x, const Inputs& in,
                                const ExtractPlan& plan, const std::vector<int32_t>& tokens, io::ActivationStoreWriter& store,
                                ExtractResult& result) {
  int64_t done = store.batches_done();
  std::vector<double> batch_nll = store.batch_nll();  // the batches before a resume point come back from the file
  const parallel::StopSignals signals;
  log::Progress progress("extract", result.n_tokens, "tok");
  if (done > 0) progress.update(plan.rows(done - 1).end);
  auto last_flush = Clock::now();
  std::future<double> writing;  // the previous round's writes; returns their seconds
  auto join_writes = [&] {
    if (writing.valid()) result.background_write_seconds += writing.get();  // rethrows the writer's error here
  };
  std::string why;
  const bool background = writes_beside_forward(in.device, &why);
  log::info("extract: store writes {} ({})", background ? "run beside the forward" : "wait for the forward",
            background ? why : why + "; a spare core per rank would overlap them, docs/extraction.md");
  // Writes the round's rows, then, where save_as >= 0, saves the file with save_as batches done. The save
  // (H5Fflush: MPI_File_sync, so an fsync of everything written since the last) goes with the writes onto
  // the writer thread: in the foreground it took 0.2 s every 5 s, 4 of the 6–7 % of a 10-hookpoint run
  // spent waiting for writes once the fused attention made the forward faster (bench/RESULTS.md).
  auto start_writes = [&](RoundRows round, int64_t save_as) {
    auto write_and_save = [&store, &hooks = in.hooks, save_as](RoundRows& r) {
      write_round(store, hooks, r);
      if (save_as >= 0) store.checkpoint(save_as);
    };
    if (!background) return write_and_save(round);
    writing = std::async(std::launch::async, [write_and_save, round = std::move(round)]() mutable {
      const auto t = Clock::now();
      write_and_save(round);
      return seconds_since(t);
    });
  };
  while (done < plan.n_batches()) {
    RoundRows round;
    round.batch = plan.batch_of_rank(done, comm.rank());
    round.captures.resize(in.hooks.size());
    auto t = Clock::now();
    if (round.batch >= 0) {
      round.rows = plan.rows(round.batch);
      const std::vector<int32_t> batch_tokens(tokens.begin() + round.rows.begin, tokens.begin() + round.rows.end);
      LanguageModel::Output out = in.model->forward(batch_tokens, plan.sequence_lengths(round.batch), in.hooks, x.loss);
      round.captures = std::move(out.captures);
      round.nll = batch_nll[static_cast<size_t>(round.batch)] = out.nll_sum;
      result.forward_seconds += seconds_since(t);
    }
    t = Clock::now();
    join_writes();  // the previous round is in the file
    const int64_t next = plan.after_round(done, comm.size());
    const bool stop = signals.requested(comm);
    // Every rank saves or none: the decision is a collective's (each rank's clock alone could disagree).
    const bool flush_due = comm.allreduce_max(seconds_since(last_flush) > kFlushSeconds ? 1.0 : 0.0) > 0;
    if (stop || next == plan.n_batches()) {
      // Stopping or finished: this round is written in the foreground and saved with the rest.
      write_round(store, in.hooks, round);
      store.checkpoint(next);
    } else {
      if (flush_due) last_flush = Clock::now();
      start_writes(std::move(round), flush_due ? next : -1);  // after its writes, every round up to this one is in the file
    }
    done = next;
    result.write_seconds += seconds_since(t);
    progress.update(plan.rows(done - 1).end);
    if (stop && done < plan.n_batches())
      throw Checkpointed("extraction stopped by a signal after " + std::to_string(done) + " of " +
                         std::to_string(plan.n_batches()) + " batches (" + x.store + ".partial); run the same command to resume");
  }
  progress.finish();
  return batch_nll;
}

// The mean next-token loss: the per-batch sums (each from one rank) summed over ranks exactly, then
// added in batch order.
void mean_loss(const parallel::Comm& comm, const config::ExtractConfig& x, const ExtractPlan& plan, std::vector<double>& batch_nll,
               ExtractResult& result) {
  comm.allreduce_sum(batch_nll.data(), plan.n_batches());
  double nll = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < plan.n_batches(); ++b) nll += batch_nll[static_cast<size_t>(b)], count += plan.predicted(b);
  result.loss = x.loss && count > 0 ? nll / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
  result.loss_tokens = x.loss ? count : 0;
}

}  // namespace

ExtractPlan plan_documents(const parallel::Comm& comm, const TextTokenizer& tokenizer, const std::vector<std::string>& documents,
                           int64_t seq_len, int64_t batch_tokens, int64_t max_tokens, const std::string& max_tokens_key) {
  const core::Range mine = core::shard_range(static_cast<int64_t>(documents.size()), comm.rank(), comm.size());
  std::vector<int32_t> local_tokens;
  std::vector<int64_t> local_lengths;
  for (int64_t d = mine.begin; d < mine.end; ++d) {
    const auto ids = tokenizer.encode(documents[static_cast<size_t>(d)], /*bos=*/true, /*eos=*/false);
    local_tokens.insert(local_tokens.end(), ids.begin(), ids.end());
    local_lengths.push_back(static_cast<int64_t>(ids.size()));
  }
  std::vector<int32_t> doc_tokens = comm.allgatherv(local_tokens);
  std::vector<int64_t> doc_lengths = comm.allgatherv(local_lengths);
  const size_t keep = documents_within(doc_lengths, max_tokens);
  if (keep == 0)
    throw UsageError(max_tokens_key + ": " + std::to_string(max_tokens) + " is less than the first document (" +
                     std::to_string(doc_lengths[0]) + " tokens)");
  int64_t total = 0;
  for (size_t d = 0; d < keep; ++d) total += doc_lengths[d];
  doc_lengths.resize(keep);
  doc_tokens.resize(static_cast<size_t>(total));
  return make_extract_plan(doc_tokens, doc_lengths, seq_len, batch_tokens, tokenizer.bos());
}

std::string store_fingerprint(const config::Config& config, const config::Identity& identity) {
  return config::fingerprint(config, config::Stage::kExtract, identity);
}

std::string store_fingerprint(const config::Config& config) { return store_fingerprint(config, io::input_identity); }

std::vector<std::string> resolve_hookpoints(const std::vector<std::string>& requested, int64_t n_layers) {
  ModelConfig shape;  // only the block count matters for the names
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
  // The forward runs on run.device (the generic ATen path: the model's code is one for every device).
  const parallel::DevicePlan where = parallel::resolve_device(comm, cfg.run.device, cfg.run.kernels);
  if (!where.device.is_cpu()) log::info("extract: the model runs on {}", where.device.str());
  const Inputs in = open_inputs(comm, x, where.device);
  // Hashes the model, tokenizer and texts once: the store records the tokenizer's identity too.
  std::map<std::string, std::string> identities;
  const config::Identity identity = [&identities](const std::string& path) {
    auto it = identities.find(path);
    if (it == identities.end()) it = identities.emplace(path, io::input_identity(path)).first;
    return it->second;
  };
  const std::string fingerprint = store_fingerprint(cfg, identity);
  if (!fresh && io::reusable(x.store, fingerprint)) {
    log::info("extract: reusing the complete store {} (same extract settings and inputs; --fresh recomputes)", x.store);
    return result_from(io::File::open_read(comm, x.store));
  }
  const std::filesystem::path parent = std::filesystem::path(x.store).parent_path();
  std::optional<io::OutputLock> lock;  // a store in the working directory itself is not locked
  if (!parent.empty()) lock.emplace(comm, parent.string(), "extract");

  auto t = Clock::now();
  ExtractPlan plan = tokenize_and_plan(comm, x, in);
  std::vector<std::string> names;
  for (const Hook& h : in.hooks) names.push_back(h.name);
  ExtractResult result;
  result.tokenize_seconds = seconds_since(t);
  result.store = x.store;
  result.hookpoints = names;
  result.n_documents = static_cast<int64_t>(plan.doc_offsets.size()) - 1;
  result.n_sequences = plan.n_sequences();
  result.n_tokens = static_cast<int64_t>(plan.tokens.size());
  log::info("extract: {} documents → {} sequences of ≤ {} tokens, {} tokens in {} batches of ≤ {}; hookpoints {}",
            result.n_documents, result.n_sequences, in.seq_len, result.n_tokens, plan.n_batches(), x.batch_tokens,
            fmt::join(names, ", "));

  const ModelConfig& m = in.model->config();
  io::Provenance provenance = io::identify_model(comm, x.model, m.format, m.name, x.tokenizer);
  const io::StoreLayout layout = store_layout(cfg, in, plan, names, fingerprint, identity(x.tokenizer), std::move(provenance));
  if (fresh && comm.is_root()) std::filesystem::remove(x.store + ".partial");
  io::ActivationStoreWriter store(comm, x.store, layout);
  std::vector<double> batch_nll = run_batches(comm, x, in, plan, layout.tokens, store, result);
  mean_loss(comm, x, plan, batch_nll, result);
  store.finish(result.loss, result.loss_tokens);
  result.seconds = seconds_since(start);
  log::info("extract: {} tokens in {} ({:.0f} tok/s; forward {:.1f} s, HDF5 writes {:.1f} s waited for "
            "({:.1f} s beside the forward), tokenize {:.1f} s){}",
            result.n_tokens, log::format_duration(result.seconds), static_cast<double>(result.n_tokens) / result.seconds,
            result.forward_seconds, result.write_seconds, result.background_write_seconds, result.tokenize_seconds,
            x.loss ? fmt::format("; mean next-token loss {:.4f} nats over {} tokens", result.loss, result.loss_tokens) : "");
  return result;
}

}  // namespace universae::lm
