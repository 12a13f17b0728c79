// The activation statistics of the registry (METHODS.md §5): the activation pass over every SAE,
// correlation maxima and mappings per pair, and the representational similarity of the
// activation-paired decoder rows with semantic subspaces.
#include <ATen/Functions.h>
#include <ATen/ops/tensor.h>

#include <algorithm>

#include "compare/repsim.hpp"
#include "compare/statistics.hpp"
#include "core/error.hpp"
#include "io/activation_store.hpp"
#include "io/sae_file.hpp"
#include "parallel/log.hpp"

namespace universae::compare {
namespace {

constexpr int64_t kTopExamples = 5;  // per latent, with ±2-token windows

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

core::SaeEncoderWeights encoder_of(const io::SaeWeights& w) {
  core::SaeEncoderWeights e;
  e.architecture = w.header.architecture;
  e.k = w.header.k;
  e.apply_b_dec_to_input = w.header.apply_b_dec_to_input;
  e.W_enc = w.W_enc, e.b_enc = w.b_enc, e.b_dec = w.b_dec;
  e.threshold = w.threshold, e.r_mag = w.r_mag, e.b_mag = w.b_mag;
  return e;
}

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
  f.write_attr(g, "n_tokens", ctx.activations->input.n_tokens);
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
  f.write_attr(paired, "n_pairs_before_filter", static_cast<int64_t>(p.chosen->a.size()));
}

// SVCCA/RSA/CKA/kNN of the kept pairs' decoder rows; semantic subspaces: the kept pairs whose A latent
// fires on a category keyword, Test 2 drawing random subsets of the same size from all pairs of the mapping.
void write_activation_repsim(PairContext& ctx) {
  const ActivationPairing& p = ctx.pairing();
  const ActivationData& data = *ctx.activations;
  const std::string g = ctx.group + "/activation";
  const at::Tensor x_all = ctx.decoder_a().index_select(0, at::tensor(p.chosen->a, at::kLong));
  const at::Tensor y_all = ctx.decoder_b().index_select(0, at::tensor(p.chosen->b, at::kLong));
  const at::Tensor idx = at::tensor(p.kept, at::kLong);
  const std::string pairing = "activation_" + p.chosen_name + (p.filtered ? "_filtered" : "");
  write_repsim(ctx.file, g,
               paired_similarity(ctx.comm, x_all.index_select(0, idx), y_all.index_select(0, idx), ctx.name + "/activation",
                                 ctx.config.compare),
               pairing);
  for (const auto& cat : data.concepts) {
    const std::vector<int64_t> rows = category_pairs(*p.chosen, p.kept, data.latent_strings[ctx.i], cat);
    const std::string sg = g + "/subspaces/" + cat.name;
    ctx.file.create_group(sg);
    ctx.file.write_attr(sg, "n_pairs", static_cast<int64_t>(rows.size()));
    ctx.file.write_vector(sg + "/pairs", io::DType::kInt64, rows);
    if (rows.size() >= 3)
      write_repsim(ctx.file, sg, subspace_similarity(ctx.comm, x_all, y_all, rows, ctx.name + "/" + cat.name, ctx.config.compare),
                   pairing);
  }
}

}  // namespace

const ActivationInput& ActivationData::input_for(const io::SaeHeader& h) const {
  const auto it = other_hookpoints.find(h.hookpoint);
  return it == other_hookpoints.end() ? input : it->second;
}

const Correlation& PairContext::correlation() {
  if (correlation_) return *correlation_;
  const ActivationData& data = *activations;
  if (config.compare.correlation_input == config::CorrelationInput::kPre) {
    correlation_ = dense_correlation(comm, encoder_of(io::read_sae(comm, a.path)), encoder_of(io::read_sae(comm, b.path)),
                                     data.input_for(a), data.input_for(b), config.compare.chunk_tokens, config.compare.tile_rows);
  } else {
    correlation_ = sparse_correlation(comm, data.codes[i], data.codes[j], config.compare.tile_rows);
  }
  return *correlation_;
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
  p.filtered = !activations->latent_strings[i].empty();
  if (p.filtered) {
    p.kept = filter_non_concept(*p.chosen, activations->latent_strings[i], activations->latent_strings[j]);
  } else {
    for (size_t e = 0; e < p.chosen->a.size(); ++e) p.kept.push_back(static_cast<int64_t>(e));
  }
  return *pairing_;
}

ActivationData open_activation_data(const parallel::Comm& comm, const config::Config& config,
                                    const std::vector<io::SaeHeader>& headers) {
  const io::SaeHeader& first = headers[0];
  std::string hookpoint = config.data.hookpoint;
  if (hookpoint.empty() || hookpoint == "synthetic") hookpoint = first.hookpoint;
  ActivationData data;
  data.input = open_activation_input(comm, config, hookpoint);
  const ActivationInput& in = data.input;
  if (in.source != "synthetic") {
    for (const auto& h : headers) {
      if (h.hookpoint == in.hookpoint || h.hookpoint.empty() || h.hookpoint == "synthetic" || data.other_hookpoints.count(h.hookpoint))
        continue;
      // An SAE whose hookpoint the store lacks reads the requested one (as every SAE did before). One the
      // store has is opened like the first: a problem there (NaN, a bad shape) is an error, not a fallback.
      const auto& have = in.store_hookpoints;
      if (std::find(have.begin(), have.end(), io::canonical_hookpoint(h.hookpoint)) == have.end()) {
        log::info("compare: {} was trained at '{}', which {} lacks; it reads '{}'", h.path, h.hookpoint, in.source, in.hookpoint);
        continue;
      }
      data.other_hookpoints.emplace(h.hookpoint, open_activation_input(comm, config, h.hookpoint));  // collective
    }
  }
  for (const auto& h : headers) {
    const ActivationInput& hi = data.input_for(h);
    if (hi.d != h.d_in)
      throw UsageError(hi.source + ": activations at '" + hi.hookpoint + "' have d = " + std::to_string(hi.d) + " but " + h.path +
                       " has d_in = " + std::to_string(h.d_in) + " (compare.activations, data.hookpoint)");
  }
  if (!in.vocab.empty() && !in.tokens.empty()) data.concepts = load_concepts(config.compare.concepts);
  return data;
}

void activation_pass(const parallel::Comm& comm, io::File& f, const config::Config& config, ActivationData& data,
                     const std::vector<io::SaeHeader>& headers, const std::vector<std::string>& names) {
  const ActivationInput& in = data.input;
  const bool strings = !in.vocab.empty() && !in.tokens.empty();
  f.create_group("/activations");
  f.write_attr("/activations", "source", in.source);
  f.write_attr("/activations", "hookpoint", in.hookpoint);
  f.write_attr("/activations", "n_tokens", in.n_tokens);
  f.write_attr("/activations", "first_token", in.first_token);
  f.write_attr("/activations", "input", core::name_of(config.compare.correlation_input));
  f.write_attr("/activations", "chunk_tokens", config.compare.chunk_tokens);
  if (strings) f.write_strings("/activations/vocab", in.vocab);
  for (size_t s = 0; s < headers.size(); ++s) {
    const auto& h = headers[s];
    const std::string g = "/saes/" + names[s];
    core::SparseCodes codes =
        encode_codes(comm, encoder_of(io::read_sae(comm, h.path)), data.input_for(h), config.compare.chunk_tokens, names[s]);
    f.write_vector(g + "/frequency", io::DType::kFloat64, firing_frequency(codes));
    f.write_attr(g, "frequency_source", "activations");
    const core::TopExamples top = core::top_examples(codes, kTopExamples);
    const TopTokens tokens = top_tokens(top, in);
    f.write_table(g + "/top_positions", io::DType::kInt64, top.positions, {h.n_latents, kTopExamples});
    f.write_table(g + "/top_values", io::DType::kFloat32, top.values, {h.n_latents, kTopExamples});
    if (!in.tokens.empty()) {
      f.write_table(g + "/top_tokens", io::DType::kInt64, tokens.tokens, {h.n_latents, kTopExamples});
      f.write_table(g + "/top_windows", io::DType::kInt64, tokens.windows, {h.n_latents, kTopExamples, 5});
    }
    data.latent_strings.push_back(strings ? latent_top_strings(tokens.tokens, kTopExamples, in.vocab)
                                          : std::vector<std::vector<std::string>>{});
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
          [](PairContext& ctx) { return ctx.activations != nullptr && ctx.config.compare.repsim && ctx.pairing().kept.size() >= 3; },
          write_activation_repsim,
          repsim_columns("activation", "activation_", "the activation-paired decoder rows", "pair (activations)", {"svcca", "rsa"})};
}

}  // namespace universae::compare
