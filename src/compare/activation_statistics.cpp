// The activation statistics of the registry (METHODS.md §5): the activation pass over every SAE,
// correlation maxima and mappings per pair, and the representational similarity of the
// activation-paired decoder rows with semantic subspaces.
#include <ATen/Functions.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <map>
#include <numeric>

#include "compare/repsim.hpp"
#include "compare/statistics.hpp"
#include "compare/subspaces.hpp"
#include "core/rng.hpp"
#include "core/sharding.hpp"
#include "core/error.hpp"
#include "io/activation_store.hpp"
#include "io/sae_file.hpp"
#include "parallel/log.hpp"

namespace universae::compare {
namespace {

constexpr int64_t kTopExamples = 5;  // what the concept filters read per latent (with ±2-token windows)
constexpr double kLanMinCorrelation = 0.1;  // compat lan2024: pairs at or below are dropped

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

void write_mapping(io::File& f, const std::string& g, const core::Mapping& m) {
  f.create_group(g);
  f.write_attr(g, "n_pairs", static_cast<int64_t>(m.a.size()));
  f.write_vector(g + "/a", io::DType::kInt64, m.a);
  f.write_vector(g + "/b", io::DType::kInt64, m.b);
  f.write_vector(g + "/corr", io::DType::kFloat32, to_float(m.corr));
}

core::Mapping take(const core::Mapping& m, const std::vector<int64_t>& rows) {
  core::Mapping out;
  for (int64_t r : rows) {
    const auto e = static_cast<size_t>(r);
    out.a.push_back(m.a[e]), out.b.push_back(m.b[e]), out.corr.push_back(m.corr[e]);
  }
  return out;
}

// /pairs/<a>--<b>/activation: correlation maxima, the four mappings, the filtered pairs of the chosen one.
void write_correlation(PairContext& ctx) {
  io::File& f = ctx.file;
  const Correlation& c = ctx.correlation();
  const ActivationPairing& p = ctx.pairing();
  const std::string g = ctx.group + "/activation";
  f.create_group(g);
  f.write_vector(g + "/max_corr_ab", io::DType::kFloat32, to_float(c.max_ab));
  f.write_vector(g + "/argmax_ab", io::DType::kInt64, c.argmax_ab);
  f.write_vector(g + "/max_corr_ba", io::DType::kFloat32, to_float(c.max_ba));
  f.write_vector(g + "/argmax_ba", io::DType::kInt64, c.argmax_ba);
  f.write_attr(g, "mean_max_corr_ab", c.mean_ab);
  f.write_attr(g, "mean_max_corr_ba", c.mean_ba);
  f.write_attr(g, "n_tokens", ctx.activations->first().n_tokens);
  f.write_attr(g, "input", core::name_of(ctx.config.compare.correlation_input));
  f.write_attr(g, "seconds", c.seconds);
  write_mapping(f, g + "/mappings/many_to_one", p.many_to_one);
  write_mapping(f, g + "/mappings/one_to_one_best", p.one_to_one_best);
  write_mapping(f, g + "/mappings/one_to_one_first", p.one_to_one_first);
  write_mapping(f, g + "/mappings/mutual", p.mutual);
  const std::string paired = g + "/paired";
  write_mapping(f, paired, take(*p.chosen, p.kept));
  f.write_attr(paired, "mapping", p.chosen_name);
  f.write_attr(paired, "non_concept_filter", p.filtered);
  // lan2024 filters the many-to-one pairs before its 1-1 step and cut.
  const core::Mapping& before = p.chosen_name == "lan2024" ? p.many_to_one : *p.chosen;
  f.write_attr(paired, "n_pairs_before_filter", static_cast<int64_t>(before.a.size()));
}

// Test 2 as Lan et al. define it, for every metric: `config.permutations` draws of random subsets of
// A's and B's latents of the subspace's sizes, each paired like the subspace (its correlation
// recomputed, first B per A) and scored; a draw with fewer than 3 pairs scores NaN. The draws are
// sharded over ranks: each is drawn from (seed, draw) and computed by one rank, so the null does not
// depend on the rank count beyond the rounding of the correlation sums.
struct SubsetDraws {
  std::vector<std::vector<double>> scores;  // per metric (kRepSimMetrics order), per draw
  std::vector<int64_t> a, b;                // the draws' latents, [draws × |A|], [draws × |B|]
};

SubsetDraws test2_draws(PairContext& ctx, const LatentSubsets& sizes, uint64_t seed) {
  const auto& o = ctx.config.compare;
  const at::Tensor &dec_a = ctx.decoder_a(), &dec_b = ctx.decoder_b();  // collective reads: before any rank-dependent loop
  const core::Range mine = core::shard_range(o.permutations, ctx.comm.rank(), ctx.comm.size());
  std::vector<LatentSubsets> draws;
  for (int64_t p = mine.begin; p < mine.end; ++p) {
    LatentSubsets d;
    d.a = core::permutation(ctx.a.n_latents, seed, static_cast<uint64_t>(p));
    d.b = core::permutation(ctx.b.n_latents, core::mix64(seed) >> 1, static_cast<uint64_t>(p));
    d.a.resize(sizes.a.size()), d.b.resize(sizes.b.size());
    std::sort(d.a.begin(), d.a.end()), std::sort(d.b.begin(), d.b.end());
    draws.push_back(std::move(d));
  }
  const ColumnSource columns_a = ctx.columns_a(), columns_b = ctx.columns_b();  // collective (reads the encoders)
  const auto corr = subset_correlations(columns_a, columns_b, ctx.activations->first().n_tokens, o.chunk_tokens, draws);
  SubsetDraws out;
  std::vector<std::vector<double>> local(kRepSimMetrics.size());
  std::vector<int64_t> local_a, local_b;
  for (size_t k = 0; k < draws.size(); ++k) {
    auto [pa, pb] = first_b_per_a(draws[k], corr[k]);
    if (static_cast<int64_t>(pa.size()) > o.repsim_max_pairs) {  // as Test 1 scores its pairs: a seeded subset
      std::vector<int64_t> pick = core::permutation(static_cast<int64_t>(pa.size()), seed ^ k, ~uint64_t{0});
      pick.resize(static_cast<size_t>(o.repsim_max_pairs));
      std::sort(pick.begin(), pick.end());
      std::vector<int64_t> sa, sb;
      for (int64_t r : pick) sa.push_back(pa[static_cast<size_t>(r)]), sb.push_back(pb[static_cast<size_t>(r)]);
      pa.swap(sa), pb.swap(sb);
    }
    const at::Tensor x = dec_a.index_select(0, at::tensor(pa, at::kLong));
    const at::Tensor y = dec_b.index_select(0, at::tensor(pb, at::kLong));
    for (size_t m = 0; m < kRepSimMetrics.size(); ++m)
      local[m].push_back(pa.size() >= 3 ? similarity_score(kRepSimMetrics[m], x, y, o, ctx.scan) : std::nan(""));
    local_a.insert(local_a.end(), draws[k].a.begin(), draws[k].a.end());
    local_b.insert(local_b.end(), draws[k].b.begin(), draws[k].b.end());
  }
  for (auto& l : local) out.scores.push_back(ctx.comm.allgatherv(l));
  out.a = ctx.comm.allgatherv(local_a), out.b = ctx.comm.allgatherv(local_b);
  return out;
}

// One keyword category (Lan et al.'s semantic subspace): its latents in A and in B, found
// independently; their pairs; Test 1, Test 2 and the mapping-subset variant for every metric.
void write_subspace(PairContext& ctx, const ConceptCategory& cat, const at::Tensor& x_all, const at::Tensor& y_all,
                    const std::string& pairing) {
  const ActivationData& data = *ctx.activations;
  const bool lan = ctx.config.compare.compat == config::Compat::kLan2024;
  LatentSubsets s;
  s.a = keyword_latents(data.top[ctx.i].tokens, data.top[ctx.i].windows, kTopExamples, data.input(ctx.i).vocab, cat, lan);
  s.b = keyword_latents(data.top[ctx.j].tokens, data.top[ctx.j].windows, kTopExamples, data.input(ctx.j).vocab, cat, lan);
  const std::string sg = ctx.group + "/activation/subspaces/" + cat.name;
  io::File& f = ctx.file;
  f.create_group(sg);
  f.write_vector(sg + "/latents_a", io::DType::kInt64, s.a);
  f.write_vector(sg + "/latents_b", io::DType::kInt64, s.b);
  // The pairs: rank 0's, broadcast, so every rank takes the same branches after them.
  std::vector<int64_t> pa, pb;
  const ColumnSource columns_a = ctx.columns_a(), columns_b = ctx.columns_b();  // collective (reads the encoders)
  if (s.a.size() >= 3 && s.b.size() >= 3 && ctx.comm.is_root()) {
    const auto corr = subset_correlations(columns_a, columns_b, data.first().n_tokens, ctx.config.compare.chunk_tokens, {s});
    std::tie(pa, pb) = first_b_per_a(s, corr[0]);
  }
  auto n_pairs = static_cast<int64_t>(pa.size());
  ctx.comm.broadcast(&n_pairs, 1, 0);
  pa.resize(static_cast<size_t>(n_pairs)), pb.resize(static_cast<size_t>(n_pairs));
  ctx.comm.broadcast(pa.data(), n_pairs, 0);
  ctx.comm.broadcast(pb.data(), n_pairs, 0);
  f.write_attr(sg, "n_pairs", static_cast<int64_t>(pa.size()));
  f.write_vector(sg + "/pairs_a", io::DType::kInt64, pa);
  f.write_vector(sg + "/pairs_b", io::DType::kInt64, pb);
  if (pa.size() < 3) return;
  const at::Tensor x = ctx.decoder_a().index_select(0, at::tensor(pa, at::kLong));
  const at::Tensor y = ctx.decoder_b().index_select(0, at::tensor(pb, at::kLong));
  std::vector<RepSimResult> results =
      subspace_similarity(ctx.comm, x, y, x_all, y_all, ctx.name + "/" + cat.name, ctx.config.compare, ctx.scan);
  const SubsetDraws draws = test2_draws(ctx, s, core::mix64(results.front().seed ^ 0x5E3A2ull) >> 1);
  for (size_t m = 0; m < results.size(); ++m) {
    RepSimResult& r = results[m];
    r.subset_null = draws.scores[m];
    summarise_null(r.subset_null, r.score, ctx.config.compare, r.subset_null_mean, r.subset_null_std, r.subset_p_value);
  }
  const auto n_draws = static_cast<int64_t>(draws.scores.front().size());
  if (n_draws > 0) {
    f.write_table(sg + "/subset_draws_a", io::DType::kInt64, draws.a, {n_draws, static_cast<int64_t>(s.a.size())});
    f.write_table(sg + "/subset_draws_b", io::DType::kInt64, draws.b, {n_draws, static_cast<int64_t>(s.b.size())});
  }
  write_repsim(f, sg, results, pairing);
}

// SVCCA/RSA/CKA/kNN of the kept pairs' decoder rows, then the semantic subspaces.
void write_activation_repsim(PairContext& ctx) {
  const ActivationPairing& p = ctx.pairing();
  const ActivationData& data = *ctx.activations;
  const std::string g = ctx.group + "/activation";
  const at::Tensor x_all = ctx.decoder_a().index_select(0, at::tensor(p.chosen->a, at::kLong));
  const at::Tensor y_all = ctx.decoder_b().index_select(0, at::tensor(p.chosen->b, at::kLong));
  const at::Tensor idx = at::tensor(p.kept, at::kLong);
  const std::string pairing = "activation_" + p.chosen_name + (p.filtered ? "_filtered" : "");
  if (p.kept.size() >= 3)
    write_repsim(ctx.file, g,
                 paired_similarity(ctx.comm, x_all.index_select(0, idx), y_all.index_select(0, idx), ctx.name + "/activation",
                                   ctx.config.compare, ctx.scan),
                 pairing);
  // Subspaces find their own latents: they do not need the whole-space pairs.
  for (const auto& cat : data.concepts) write_subspace(ctx, cat, x_all, y_all, "semantic_subspace");
}

}  // namespace

const Correlation& PairContext::correlation() {
  if (correlation_) return *correlation_;
  const ActivationData& data = *activations;
  if (config.compare.correlation_input == config::CorrelationInput::kPre) {
    correlation_ = dense_correlation(comm, encoder_a(), encoder_b(), data.input(i), data.input(j), config.compare.chunk_tokens,
                                     config.compare.tile_rows, scan);
  } else {
    correlation_ = sparse_correlation(comm, data.codes[i], data.codes[j], config.compare.tile_rows, scan);
  }
  return *correlation_;
}

const core::SaeEncoderWeights& PairContext::encoder_a() {
  if (!encoder_a_) encoder_a_ = io::encoder_weights(io::read_sae(comm, a.path));
  return *encoder_a_;
}

const core::SaeEncoderWeights& PairContext::encoder_b() {
  if (!encoder_b_) encoder_b_ = io::encoder_weights(io::read_sae(comm, b.path));
  return *encoder_b_;
}

ColumnSource PairContext::columns_a() {
  if (config.compare.correlation_input == config::CorrelationInput::kCodes) return code_columns(activations->codes[i]);
  return pre_columns(encoder_a(), activations->input(i));
}

ColumnSource PairContext::columns_b() {
  if (config.compare.correlation_input == config::CorrelationInput::kCodes) return code_columns(activations->codes[j]);
  return pre_columns(encoder_b(), activations->input(j));
}

const ActivationPairing& PairContext::pairing() {
  if (pairing_) return *pairing_;
  const Correlation& c = correlation();
  ActivationPairing& p = pairing_.emplace();
  p.many_to_one = core::many_to_one(c.max_ba, c.argmax_ba);
  p.one_to_one_best = core::one_to_one(p.many_to_one, false);
  p.one_to_one_first = core::one_to_one(p.many_to_one, true);
  p.mutual = core::mutual(c.max_ab, c.argmax_ab, c.argmax_ba);
  // Lan et al.'s one-to-one keeps the lowest-index B latent (compare.compat = "lan2024").
  const bool lan = config.compare.compat == config::Compat::kLan2024;
  switch (config.compare.activation_mapping) {
    case config::Mapping::kManyToOne: p.chosen = &p.many_to_one, p.chosen_name = "many_to_one"; break;
    case config::Mapping::kMutual: p.chosen = &p.mutual, p.chosen_name = "mutual"; break;
    case config::Mapping::kOneToOne:
      p.chosen = lan ? &p.one_to_one_first : &p.one_to_one_best;
      p.chosen_name = lan ? "one_to_one_first" : "one_to_one_best";
      break;
  }
  // The filter reads both latents' top token strings: it runs only when both SAEs' stores have them.
  p.filtered = !activations->latent_strings[i].empty() && !activations->latent_strings[j].empty();
  auto filter = [&](const core::Mapping& m) {
    if (p.filtered) return filter_non_concept(m, activations->latent_ids[i], activations->latent_ids[j],
                                              activations->latent_strings[i], activations->latent_strings[j],
                                              activations->special_ids);
    std::vector<int64_t> all(m.a.size());
    std::iota(all.begin(), all.end(), int64_t{0});
    return all;
  };
  if (lan && config.compare.activation_mapping == config::Mapping::kOneToOne) {
    // Lan et al.'s code: the filter on the many-to-one pairs, then the first surviving B per A, then
    // pairs with correlation <= 0.1 dropped. Every pair of the result is kept.
    const core::Mapping first = core::one_to_one(take(p.many_to_one, filter(p.many_to_one)), true);
    for (size_t e = 0; e < first.a.size(); ++e)
      if (first.corr[e] > kLanMinCorrelation)
        p.lan2024.a.push_back(first.a[e]), p.lan2024.b.push_back(first.b[e]), p.lan2024.corr.push_back(first.corr[e]);
    p.chosen = &p.lan2024, p.chosen_name = "lan2024";
    p.kept.resize(p.lan2024.a.size());
    std::iota(p.kept.begin(), p.kept.end(), int64_t{0});
  } else {
    p.kept = filter(*p.chosen);
  }
  return *pairing_;
}

namespace {

// The store SAE `s` reads: its entry of compare.sae_activations (baselines read the first SAE's),
// else compare.activations.
std::string store_of(const config::CompareConfig& c, size_t s) {
  if (c.sae_activations.empty()) return c.activations;
  return c.sae_activations[s < c.sae_activations.size() ? s : 0];
}

}  // namespace

ActivationData open_activation_data(const parallel::Comm& comm, const config::Config& config,
                                    const std::vector<io::SaeHeader>& headers, size_t n_main) {
  const auto& c = config.compare;
  if (!c.sae_activations.empty() && c.sae_activations.size() != n_main)
    throw UsageError("config key 'compare.sae_activations': needs one store per SAE of compare.saes (" + std::to_string(n_main) +
                     "), got " + std::to_string(c.sae_activations.size()));
  ActivationData data;
  std::map<std::pair<std::string, std::string>, size_t> opened;  // (store, hookpoint) → input
  auto open = [&](const std::string& store, const std::string& hookpoint) {
    const auto key = std::make_pair(store, store == "synthetic" ? hookpoint : io::canonical_hookpoint(hookpoint));
    if (const auto it = opened.find(key); it != opened.end()) return it->second;
    data.inputs.push_back(open_activation_input(comm, config, store, hookpoint));  // collective
    return opened[key] = data.inputs.size() - 1;
  };
  for (size_t s = 0; s < headers.size(); ++s) {
    const io::SaeHeader& h = headers[s];
    const std::string store = store_of(c, s);
    const bool own_hookpoint = !h.hookpoint.empty() && h.hookpoint != "synthetic";
    // The first SAE reads data.hookpoint (else its own); the others their own (else the first's).
    std::string hookpoint = s == 0 ? config.data.hookpoint : h.hookpoint;
    if (hookpoint.empty() || hookpoint == "synthetic") hookpoint = s == 0 ? h.hookpoint : data.first().hookpoint;
    if (store == "synthetic") hookpoint = "synthetic";
    if (s > 0 && store != "synthetic") {
      const auto have = io::store_hookpoints(comm, store);
      if (std::find(have.begin(), have.end(), io::canonical_hookpoint(hookpoint)) == have.end()) {
        if (!c.sae_activations.empty() && s < n_main) {  // its own store: it must hold the SAE's hookpoint
          std::string list;
          for (const auto& x : have) list += (list.empty() ? "" : ", ") + x;
          throw UsageError(store + ": no activations at '" + hookpoint + "', the hookpoint " + h.path +
                           " reads (compare.sae_activations); the store has: " + (list.empty() ? "none" : list));
        }
        // An SAE whose hookpoint the store lacks reads the first SAE's (as every SAE did before): said, not refused.
        if (own_hookpoint)
          log::info("compare: {} was trained at '{}', which {} lacks; it reads '{}'", h.path, h.hookpoint, store,
                    data.first().hookpoint);
        hookpoint = data.first().hookpoint;
      }
    }
    data.input_of.push_back(open(store, hookpoint));
  }
  for (size_t s = 0; s < headers.size(); ++s) {
    const ActivationInput& hi = data.input(s);
    const io::SaeHeader& h = headers[s];
    if (hi.d != h.d_in)
      throw UsageError(hi.source + ": activations at '" + hi.hookpoint + "' have d = " + std::to_string(hi.d) + " but " + h.path +
                       " has d_in = " + std::to_string(h.d_in) + " (compare.activations, compare.sae_activations, data.hookpoint)");
  }
  for (const ActivationInput& in : data.inputs)
    if (const std::string difference = token_sequence_difference(data.first(), in); !difference.empty())
      throw UsageError("compare: " + difference);
  const ActivationInput& first = data.first();
  if (!first.vocab.empty() && !first.tokens.empty()) data.concepts = load_concepts(c.concepts);
  return data;
}

namespace {

// /saes/<name>/top_*: every latent's top examples, and with token ids their tokens and context windows
// (each rank writes its own latents' windows: [n × count × width] would be large on every rank).
void write_top_examples(io::File& f, const std::string& g, const core::TopExamples& top, const ActivationInput& in,
                        int64_t context) {
  const auto n = static_cast<int64_t>(top.positions.size()) / top.count;
  f.write_table(g + "/top_positions", io::DType::kInt64, top.positions, {n, top.count});
  f.write_table(g + "/top_values", io::DType::kFloat32, top.values, {n, top.count});
  if (in.tokens.empty()) return;
  const core::Range mine = core::shard_range(n, f.comm().rank(), f.comm().size());
  const TopContexts contexts = top_contexts(top, in, context, mine);
  f.create_dataset(g + "/top_tokens", io::DType::kInt32, {n, top.count});
  f.write_rows(g + "/top_tokens", mine, contexts.tokens.data());
  f.create_dataset(g + "/top_windows", io::DType::kInt32, {n, top.count, contexts.width});
  f.write_rows(g + "/top_windows", mine, contexts.windows.data());
  f.write_attr(g, "context_tokens", context);
}

}  // namespace

void activation_pass(const parallel::Comm& comm, io::File& f, const config::Config& config, ActivationData& data,
                     const std::vector<io::SaeHeader>& headers, const std::vector<std::string>& names) {
  const ActivationInput& in = data.first();
  const bool strings = !in.vocab.empty() && !in.tokens.empty();
  data.special_ids = in.special_ids;
  f.create_group("/activations");
  f.write_attr("/activations", "source", io::absolute_path(in.source));
  f.write_attr("/activations", "hookpoint", in.hookpoint);
  f.write_attr("/activations", "n_tokens", in.n_tokens);
  f.write_attr("/activations", "first_token", in.first_token);
  f.write_attr("/activations", "input", core::name_of(config.compare.correlation_input));
  f.write_attr("/activations", "chunk_tokens", config.compare.chunk_tokens);
  f.write_attr("/activations", "stores", static_cast<int64_t>(data.inputs.size()));
  if (strings) f.write_strings("/activations/vocab", in.vocab);
  for (size_t s = 0; s < headers.size(); ++s) {
    const auto& h = headers[s];
    const ActivationInput& own = data.input(s);
    const std::string g = "/saes/" + names[s];
    const core::SaeEncoderWeights encoder = io::encoder_weights(io::read_sae(comm, h.path));
    core::SparseCodes codes = encode_codes(comm, encoder, own, config.compare.chunk_tokens, names[s]);
    f.write_attr(g, "activations_source", io::absolute_path(own.source));
    f.write_attr(g, "activations_hookpoint", own.hookpoint);
    f.write_attr(g, "activations_model", own.model);
    f.write_vector(g + "/frequency", io::DType::kFloat64, firing_frequency(codes));
    f.write_attr(g, "frequency_source", "activations");
    // Lan et al. read top tokens from the activations they correlate: relu(pre) in `pre` mode.
    const bool from_pre = config.compare.compat == config::Compat::kLan2024 &&
                          config.compare.correlation_input == config::CorrelationInput::kPre;
    const int64_t count = config.compare.top_examples;
    const core::TopExamples top = from_pre ? dense_top_examples(comm, encoder, own, config.compare.chunk_tokens, count, names[s])
                                           : core::top_examples(codes, count);
    f.write_attr(g, "top_examples_of", std::string(from_pre ? "pre" : "codes"));
    write_top_examples(f, g, top, own, config.compare.context_tokens);
    const TopTokens tokens = top_tokens(first_examples(top, kTopExamples), own);
    const bool own_strings = !own.vocab.empty() && !own.tokens.empty();
    data.latent_strings.push_back(strings && own_strings ? latent_top_strings(tokens.tokens, kTopExamples, own.vocab)
                                                         : std::vector<std::vector<std::string>>{});
    data.latent_ids.push_back(latent_top_ids(tokens.tokens, kTopExamples));
    data.top.push_back(tokens);
    if (config.compare.correlation_input == config::CorrelationInput::kCodes) data.codes.push_back(std::move(codes));
  }
}

Statistic activation_correlation_statistic() {
  const std::string table = "pair (activations)";
  using S = Display::Style;
  return {"activation_correlation",
          "both SAEs' codes (or dense pre-activations) on the activation input",
          [](PairContext& ctx) { return ctx.activations != nullptr; },
          write_correlation,
          {column("mean_max_corr_ab", "activation", "mean_max_corr_ab",
                  "mean over A's latents of the max Pearson correlation with B's latents on the same tokens",
                  Display{table, "max corr a→b", 12, S::kFixed6}),
           column("mean_max_corr_ba", "activation", "mean_max_corr_ba", "the same from B to A",
                  Display{table, "max corr b→a", 12, S::kFixed6}),
           column("activation_pairs", "activation/paired", "n_pairs",
                  "pairs of compare.activation_mapping kept by the non-concept filter (the input of the activation SVCCA/RSA)",
                  Display{table, "pairs", 8, S::kCount})}};
}

Statistic activation_repsim_statistic() {
  return {"activation_repsim",
          "the activation pairing and both SAEs' decoder rows",
          [](PairContext& ctx) { return ctx.activations != nullptr && ctx.config.compare.repsim; },
          write_activation_repsim,
          repsim_columns("activation", "activation_", "the activation-paired decoder rows", "pair (activations)", {"svcca", "rsa"})};
}

}  // namespace universae::compare
