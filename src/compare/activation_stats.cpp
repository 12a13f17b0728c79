#include "compare/activation_stats.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>

#include "compare/concepts.hpp"
#include "core/error.hpp"
#include "io/activation_store.hpp"
#include "data/synthetic.hpp"
#include "parallel/log.hpp"

namespace universae::compare {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The rows [rows.begin, rows.end) of an encoder: per-latent pre-activations only depend on their own rows.
core::SaeEncoderWeights slice_rows(const core::SaeEncoderWeights& w, core::Range rows) {
  core::SaeEncoderWeights s = w;
  auto cut = [&](const at::Tensor& t) { return t.defined() ? t.slice(0, rows.begin, rows.end) : t; };
  s.W_enc = cut(w.W_enc), s.b_enc = cut(w.b_enc), s.threshold = cut(w.threshold);
  s.r_mag = cut(w.r_mag), s.b_mag = cut(w.b_mag);
  return s;
}

}  // namespace

ActivationInput open_activation_input(const parallel::Comm& comm, const config::Config& config, const std::string& source,
                                      const std::string& hookpoint) {
  ActivationInput in;
  in.source = source;
  const int64_t tokens = config.compare.activation_tokens;
  if (in.source == "synthetic") {
    auto stream = std::make_shared<data::SyntheticSource>(config.data.synthetic);
    in.hookpoint = "synthetic";
    in.first_token = data::kHeldOutTokenOffset;
    in.n_tokens = tokens > 0 ? tokens : 65536;
    in.d = stream->d();
    in.read = [stream, first = in.first_token](int64_t t, int64_t count, float* out) { stream->tokens(first + t, count, out); };
    in.seq_offsets = {0, in.n_tokens};
    in.model = "synthetic";
    return in;
  }
  auto store = std::make_shared<io::ActivationStore>(comm, in.source, hookpoint);
  in.hookpoint = store->hookpoint();
  in.store_hookpoints = store->hookpoints();
  in.d = store->d();
  in.n_tokens = tokens > 0 ? std::min(tokens, store->n_tokens()) : store->n_tokens();
  in.model = store->model();
  in.model_sha256 = store->provenance().model_sha256;
  in.token_sequence = store->token_sequence();
  in.vocab = store->vocab();
  in.special_ids = store->special_tokens();
  if (in.special_ids.empty())  // a store before 0.3: the pieces that name a control token ("\n<s>\n" in llama2.c)
    for (size_t t = 0; t < in.vocab.size(); ++t)
      if (is_control_piece(in.vocab[t])) in.special_ids.push_back(static_cast<int64_t>(t));
  in.tokens = store->read_tokens();
  if (!in.tokens.empty()) in.tokens.resize(static_cast<size_t>(in.n_tokens));
  // Sequences cut at the tokens used.
  for (int64_t off : store->seq_offsets())
    if (off < in.n_tokens) in.seq_offsets.push_back(off);
  in.seq_offsets.push_back(in.n_tokens);
  in.read = [store](int64_t t, int64_t count, float* out) { store->read(t, count, out); };
  return in;
}

core::SparseCodes encode_codes(const parallel::Comm& comm, const core::SaeEncoderWeights& sae, const ActivationInput& in,
                               int64_t chunk_tokens, const std::string& name) {
  const int64_t chunks = core::ceil_div(in.n_tokens, chunk_tokens);
  const core::Range mine = core::shard_range(chunks, comm.rank(), comm.size());
  core::SparseRows local;
  std::vector<float> buffer;
  log::Progress progress("encode " + name, in.n_tokens, "tok");
  for (int64_t c = mine.begin; c < mine.end; ++c) {
    const int64_t first = c * chunk_tokens, count = std::min(chunk_tokens, in.n_tokens - first);
    buffer.resize(static_cast<size_t>(count * in.d));
    in.read(first, count, buffer.data());
    const at::Tensor x = at::from_blob(buffer.data(), {count, in.d}, at::kFloat);
    core::append_sparse_rows(core::codes(sae, x), local);
    progress.update(std::min(in.n_tokens, (c - mine.begin + 1) * chunk_tokens * comm.size()));
  }
  progress.finish();
  // Rank order is token order (contiguous chunk ranges), so gathering keeps the tokens in order.
  std::vector<int64_t> lengths(local.offsets.size() - 1);
  for (size_t t = 0; t + 1 < local.offsets.size(); ++t) lengths[t] = local.offsets[t + 1] - local.offsets[t];
  lengths = comm.allgatherv(lengths);
  core::SparseCodes codes;
  codes.n_tokens = in.n_tokens;
  codes.n_latents = sae.W_enc.size(0);
  codes.rows.latents = comm.allgatherv(local.latents);
  codes.rows.values = comm.allgatherv(local.values);
  codes.rows.offsets.assign(lengths.size() + 1, 0);
  for (size_t t = 0; t < lengths.size(); ++t) codes.rows.offsets[t + 1] = codes.rows.offsets[t] + lengths[t];
  return codes;
}

core::TopExamples dense_top_examples(const parallel::Comm& comm, const core::SaeEncoderWeights& sae, const ActivationInput& in,
                                     int64_t chunk_tokens, int64_t count, const std::string& name) {
  const int64_t n = sae.W_enc.size(0), chunks = core::ceil_div(in.n_tokens, chunk_tokens);
  const core::Range mine = core::shard_range(chunks, comm.rank(), comm.size());
  // This rank's best `count` per latent, kept sorted (value descending; tokens arrive in order, so
  // a tie keeps the earlier token ahead).
  std::vector<float> values(static_cast<size_t>(n * count), 0.0f);
  std::vector<int64_t> positions(static_cast<size_t>(n * count), -1);
  std::vector<float> buffer;
  log::Progress progress("top examples (pre) " + name, in.n_tokens, "tok");
  for (int64_t c = mine.begin; c < mine.end; ++c) {
    const int64_t first = c * chunk_tokens, rows = std::min(chunk_tokens, in.n_tokens - first);
    buffer.resize(static_cast<size_t>(rows * in.d));
    in.read(first, rows, buffer.data());
    const at::Tensor pre = core::dense_pre(sae, at::from_blob(buffer.data(), {rows, in.d}, at::kFloat)).contiguous();
    const float* p = pre.data_ptr<float>();
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t l = 0; l < n; ++l) {
        const float v = p[t * n + l];
        float* vs = values.data() + l * count;
        if (v <= 0.0f || (positions[static_cast<size_t>(l * count + count - 1)] >= 0 && vs[count - 1] >= v)) continue;
        int64_t* ps = positions.data() + l * count;
        int64_t slot = count - 1;
        while (slot > 0 && (ps[slot - 1] < 0 || vs[slot - 1] < v)) --slot;
        for (int64_t s = count - 1; s > slot; --s) vs[s] = vs[s - 1], ps[s] = ps[s - 1];
        vs[slot] = v, ps[slot] = first + t;
      }
    progress.update(std::min(in.n_tokens, (c - mine.begin + 1) * chunk_tokens * comm.size()));
  }
  progress.finish();
  // Every rank's candidates, merged per latent by (value descending, token ascending).
  const std::vector<float> all_values = comm.allgatherv(values);
  const std::vector<int64_t> all_positions = comm.allgatherv(positions);
  const auto ranks = static_cast<int64_t>(all_values.size()) / (n * count);
  core::TopExamples top;
  top.count = count;
  top.positions.assign(static_cast<size_t>(n * count), -1);
  top.values.assign(static_cast<size_t>(n * count), 0.0f);
  std::vector<std::pair<float, int64_t>> candidates;
  for (int64_t l = 0; l < n; ++l) {
    candidates.clear();
    for (int64_t r = 0; r < ranks; ++r)
      for (int64_t s = 0; s < count; ++s) {
        const auto e = static_cast<size_t>((r * n + l) * count + s);
        if (all_positions[e] >= 0) candidates.emplace_back(all_values[e], all_positions[e]);
      }
    std::sort(candidates.begin(), candidates.end(),
              [](const auto& x, const auto& y) { return x.first != y.first ? x.first > y.first : x.second < y.second; });
    for (size_t s = 0; s < candidates.size() && s < static_cast<size_t>(count); ++s)
      top.values[static_cast<size_t>(l * count) + s] = candidates[s].first,
      top.positions[static_cast<size_t>(l * count) + s] = candidates[s].second;
  }
  return top;
}

std::vector<double> firing_frequency(const core::SparseCodes& codes) {
  std::vector<int64_t> fires(static_cast<size_t>(codes.n_latents), 0);
  for (size_t e = 0; e < codes.rows.latents.size(); ++e) fires[static_cast<size_t>(codes.rows.latents[e])] += codes.rows.values[e] > 0;
  std::vector<double> f(fires.size());
  for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<double>(fires[i]) / static_cast<double>(codes.n_tokens);
  return f;
}

Correlation sparse_correlation(const parallel::Comm& comm, const core::SparseCodes& a, const core::SparseCodes& b,
                               int64_t tile_rows, const ScanDevice& where) {
  const auto start = std::chrono::steady_clock::now();
  const core::LatentMoments ma = core::moments(a), mb = core::moments(b);
  Correlation c;
  auto direction = [&](const core::SparseCodes& x, const core::LatentMoments& mx, const core::SparseCodes& y,
                       const core::LatentMoments& my, std::vector<double>& max, std::vector<int64_t>& argmax) {
    const core::Range rows = core::tile_shard(x.n_latents, tile_rows, comm.rank(), comm.size());
    std::vector<double> local_max(static_cast<size_t>(rows.size()));
    std::vector<int64_t> local_arg(static_cast<size_t>(rows.size()));
    if (where.generic)
      core::correlation_row_maxima_generic(core::latent_columns(x), mx, y, my, rows, local_max.data(), local_arg.data(),
                                           where.device);
    else
      core::correlation_row_maxima(core::latent_columns(x), mx, y, my, rows, local_max.data(), local_arg.data());
    max = comm.allgatherv(local_max);
    argmax = comm.allgatherv(local_arg);
  };
  direction(a, ma, b, mb, c.max_ab, c.argmax_ab);
  direction(b, mb, a, ma, c.max_ba, c.argmax_ba);
  c.mean_ab = ordered_mean(c.max_ab);
  c.mean_ba = ordered_mean(c.max_ba);
  c.seconds = seconds_since(start);
  return c;
}

Correlation dense_correlation(const parallel::Comm& comm, const core::SaeEncoderWeights& a,
                              const core::SaeEncoderWeights& b, const ActivationInput& in, const ActivationInput& in_b,
                              int64_t chunk_tokens, int64_t tile_rows, const ScanDevice& where) {
  if (in_b.n_tokens != in.n_tokens)
    throw UsageError(in.source + ": hookpoints '" + in.hookpoint + "' and '" + in_b.hookpoint + "' have different token counts");
  const auto start = std::chrono::steady_clock::now();
  const int64_t n_a = a.W_enc.size(0), n_b = b.W_enc.size(0);
  const core::Range rows = core::tile_shard(n_a, tile_rows, comm.rank(), comm.size());
  // On run.device with the generic kernels: the encoders go there once, each chunk of tokens as it is
  // read, and the correlations come back once (deliberate: the maxima are reduced over ranks by MPI).
  const at::Device device = where.generic ? where.device : at::Device(at::kCPU);
  const core::SaeEncoderWeights a_mine = core::on_device(slice_rows(a, rows), device), b_here = core::on_device(b, device);
  const auto opts = at::TensorOptions(device).dtype(at::kDouble);
  at::Tensor s = at::zeros({rows.size(), n_b}, opts);
  at::Tensor sum_a = at::zeros({rows.size()}, opts), sum2_a = at::zeros({rows.size()}, opts);
  at::Tensor sum_b = at::zeros({n_b}, opts), sum2_b = at::zeros({n_b}, opts);
  std::vector<float> buffer, buffer_b;
  const bool same = &in == &in_b;  // both SAEs read one hookpoint
  log::Progress progress("correlate (pre)", in.n_tokens, "tok");
  for (int64_t first = 0; first < in.n_tokens; first += chunk_tokens) {
    const int64_t count = std::min(chunk_tokens, in.n_tokens - first);
    buffer.resize(static_cast<size_t>(count * in.d));
    in.read(first, count, buffer.data());
    const at::Tensor x = at::from_blob(buffer.data(), {count, in.d}, at::kFloat).to(device);
    at::Tensor x_b = x;
    if (!same) {  // the same tokens at B's hookpoint (a cross-layer comparison)
      buffer_b.resize(static_cast<size_t>(count * in_b.d));
      in_b.read(first, count, buffer_b.data());
      x_b = at::from_blob(buffer_b.data(), {count, in_b.d}, at::kFloat).to(device);
    }
    const at::Tensor pa = core::dense_pre(a_mine, x).to(at::kDouble), pb = core::dense_pre(b_here, x_b).to(at::kDouble);
    s.addmm_(pa.t(), pb);
    sum_a += pa.sum(0), sum2_a += pa.square().sum(0);
    sum_b += pb.sum(0), sum2_b += pb.square().sum(0);
    progress.update(first + count);
  }
  progress.finish();
  const double t = static_cast<double>(in.n_tokens);
  auto sd_of = [&](const at::Tensor& sum, const at::Tensor& sum2) {
    const at::Tensor mean = sum / t, var = sum2 / t - mean.square();
    return at::where(var > 1e-15 * (sum2 / t), var.clamp_min(0).sqrt(), at::zeros_like(var));
  };
  const at::Tensor mean_a = sum_a / t, mean_b = sum_b / t, sd_a = sd_of(sum_a, sum2_a), sd_b = sd_of(sum_b, sum2_b);
  const at::Tensor denom = sd_a.unsqueeze(1) * sd_b.unsqueeze(0);
  const at::Tensor corr =
      at::where(denom > 0, (s / t - mean_a.unsqueeze(1) * mean_b.unsqueeze(0)) / denom, at::zeros_like(s)).to(at::kCPU).contiguous();
  Correlation c;
  // Rows: max over B, lowest index on ties (at::max does not promise which tie it returns).
  std::vector<double> local_max(static_cast<size_t>(rows.size()));
  std::vector<int64_t> local_arg(static_cast<size_t>(rows.size()));
  std::vector<float> col_max(static_cast<size_t>(n_b), -std::numeric_limits<float>::infinity());
  std::vector<int64_t> col_arg(static_cast<size_t>(n_b), n_a);
  const double* p = corr.data_ptr<double>();
  for (int64_t i = 0; i < rows.size(); ++i) {
    const double* row = p + i * n_b;
    int64_t best = 0;
    for (int64_t j = 0; j < n_b; ++j) {
      if (row[j] > row[best]) best = j;
      const auto v = static_cast<float>(row[j]);
      if (v > col_max[static_cast<size_t>(j)]) col_max[static_cast<size_t>(j)] = v, col_arg[static_cast<size_t>(j)] = rows.begin + i;
    }
    local_max[static_cast<size_t>(i)] = row[best];
    local_arg[static_cast<size_t>(i)] = best;
  }
  c.max_ab = comm.allgatherv(local_max);
  c.argmax_ab = comm.allgatherv(local_arg);
  comm.allreduce_maxloc(col_max.data(), col_arg.data(), n_b);
  c.max_ba.assign(col_max.begin(), col_max.end());
  c.argmax_ba = col_arg;
  c.mean_ab = ordered_mean(c.max_ab);
  c.mean_ba = ordered_mean(c.max_ba);
  c.seconds = seconds_since(start);
  return c;
}

std::string token_string(const std::vector<std::string>& vocab, int64_t token) {
  if (token < 0 || static_cast<size_t>(token) >= vocab.size()) return "";
  const std::string& s = vocab[static_cast<size_t>(token)];
  unsigned byte = 0;
  if (s.size() == 6 && std::sscanf(s.c_str(), "<0x%2X>", &byte) == 1) return std::string(1, static_cast<char>(byte));
  return s;
}

std::string token_sequence_difference(const ActivationInput& a, const ActivationInput& b) {
  const std::string both = a.source + " and " + b.source;
  if (a.source == b.source) return "";
  if ((a.source == "synthetic") != (b.source == "synthetic")) return both + ": synthetic tokens against a store";
  if (a.n_tokens != b.n_tokens)
    return both + " hold different numbers of tokens (" + std::to_string(a.n_tokens) + " and " + std::to_string(b.n_tokens) +
           "); extract both models from the same inputs with the same extract.seq_len and extract.max_documents";
  if (a.tokens.empty() || b.tokens.empty()) {
    if (!a.token_sequence.empty() && a.token_sequence == b.token_sequence) return "";
    return both + ": cannot check that they hold the same tokens (" + (a.tokens.empty() ? a.source : b.source) +
           " has no /tokens and no matching token-sequence hash)";
  }
  // Where a sequence starts: the last sequence offset at or before `t`.
  auto place = [](const ActivationInput& in, int64_t t) {
    const auto it = std::upper_bound(in.seq_offsets.begin(), in.seq_offsets.end(), t);
    const int64_t seq = static_cast<int64_t>(it - in.seq_offsets.begin()) - 1;
    return "sequence " + std::to_string(seq) + ", position " + std::to_string(t - in.seq_offsets[static_cast<size_t>(seq)]);
  };
  for (size_t t = 0; t < a.tokens.size(); ++t)
    if (a.tokens[t] != b.tokens[t])
      return both + " hold different token sequences: first difference at token " + std::to_string(t) + " (" +
             place(a, static_cast<int64_t>(t)) + "): id " + std::to_string(a.tokens[t]) + " against " + std::to_string(b.tokens[t]) +
             " (both models must read the same documents with the same tokenizer)";
  if (a.seq_offsets != b.seq_offsets) {
    size_t s = 0;
    while (s < a.seq_offsets.size() && s < b.seq_offsets.size() && a.seq_offsets[s] == b.seq_offsets[s]) ++s;
    return both + " cut the same tokens into different sequences: sequence " + std::to_string(s) +
           " starts at a different token (extract.seq_len must be equal)";
  }
  return "";
}

core::TopExamples first_examples(const core::TopExamples& top, int64_t count) {
  core::TopExamples out;
  out.count = std::min(count, top.count);
  const auto n = static_cast<int64_t>(top.positions.size()) / top.count;
  for (int64_t l = 0; l < n; ++l) {
    const auto from = static_cast<size_t>(l * top.count);
    out.positions.insert(out.positions.end(), top.positions.begin() + from, top.positions.begin() + from + out.count);
    out.values.insert(out.values.end(), top.values.begin() + from, top.values.begin() + from + out.count);
  }
  return out;
}

TopContexts top_contexts(const core::TopExamples& top, const ActivationInput& in, int64_t context, core::Range rows) {
  TopContexts out;
  out.width = 2 * context + 1;
  const auto examples = static_cast<size_t>((rows.end - rows.begin) * top.count);
  out.tokens.assign(examples, -1);
  out.windows.assign(examples * static_cast<size_t>(out.width), -1);
  if (in.tokens.empty()) return out;
  for (size_t e = 0; e < examples; ++e) {
    const int64_t p = top.positions[static_cast<size_t>(rows.begin * top.count) + e];
    if (p < 0) continue;
    out.tokens[e] = in.tokens[static_cast<size_t>(p)];
    // The sequence holding p: the last offset <= p.
    const auto it = std::upper_bound(in.seq_offsets.begin(), in.seq_offsets.end(), p);
    const int64_t begin = *(it - 1), end = it == in.seq_offsets.end() ? in.n_tokens : *it;
    int64_t* window = out.windows.data() + e * static_cast<size_t>(out.width);
    for (int64_t w = std::max(begin, p - context); w < std::min(end, p + context + 1); ++w)
      window[w - p + context] = in.tokens[static_cast<size_t>(w)];
  }
  return out;
}

TopTokens top_tokens(const core::TopExamples& top, const ActivationInput& in) {
  const auto n = static_cast<int64_t>(top.positions.size()) / top.count;
  TopContexts c = top_contexts(top, in, 2, {0, n});
  return {std::move(c.tokens), std::move(c.windows)};
}

}  // namespace universae::compare
