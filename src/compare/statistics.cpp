// The registry and the weight-space statistics: max cosine, the certified Hungarian matching and the
// representational similarity of the matched decoder rows (the activation statistics are in
// activation_statistics.cpp).
#include "compare/statistics.hpp"

#include <ATen/Functions.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "compare/repsim.hpp"
#include "io/sae_file.hpp"

namespace universae::compare {
namespace {

namespace fs = std::filesystem;

const char* side_name(Side s) { return s == Side::kDecoder ? "decoder" : "encoder"; }

void write_max_cosine(io::File& f, const std::string& group, const SideResult& r) {
  const MaxCosine& mc = r.max_cosine;
  f.create_group(group);
  f.write_vector(group + "/max_cos_ab", io::DType::kFloat32, mc.max_cos_ab);
  f.write_vector(group + "/argmax_ab", io::DType::kInt64, mc.argmax_ab);
  f.write_vector(group + "/max_cos_ba", io::DType::kFloat32, mc.max_cos_ba);
  f.write_vector(group + "/argmax_ba", io::DType::kInt64, mc.argmax_ba);
  f.write_attr(group, "mcs_ab", mc.mcs_ab);
  f.write_attr(group, "mcs_ba", mc.mcs_ba);
  f.write_attr(group, "zero_rows_a", mc.zero_rows_a);
  f.write_attr(group, "zero_rows_b", mc.zero_rows_b);
  f.write_attr(group, "seconds", r.pass_seconds);
  if (mc.error_bound > 0) f.write_attr(group, "error_bound", mc.error_bound);  // compare.dtype below float32
}

// /pairs/<a>--<b>/lap: decoder and encoder matched separately, then the shared and equal fractions
// over the latents of the smaller SAE (every one of them is matched).
void write_lap(io::File& f, const std::string& group, const Matching& dec, const Matching& enc, double tau) {
  f.create_group(group);
  f.write_vector(group + "/decoder_match", io::DType::kInt64, dec.match_ab);
  f.write_vector(group + "/decoder_cos", io::DType::kFloat32, dec.cos_ab);
  f.write_vector(group + "/encoder_match", io::DType::kInt64, enc.match_ab);
  f.write_vector(group + "/encoder_cos", io::DType::kFloat32, enc.cos_ab);
  int64_t shared = 0, equal = 0, n_small = 0;
  for (size_t i = 0; i < dec.match_ab.size(); ++i) {
    if (dec.match_ab[i] >= 0) ++n_small;
    if (dec.match_ab[i] >= 0 && enc.match_ab[i] >= 0) {
      shared += dec.cos_ab[i] > tau && enc.cos_ab[i] > tau;
      equal += dec.match_ab[i] == enc.match_ab[i];
    }
  }
  f.write_attr(group, "mean_cos_decoder", dec.mean_cos);
  f.write_attr(group, "mean_cos_encoder", enc.mean_cos);
  f.write_attr(group, "shared_fraction", static_cast<double>(shared) / static_cast<double>(n_small));
  f.write_attr(group, "equal_fraction", static_cast<double>(equal) / static_cast<double>(n_small));
  f.write_attr(group, "threshold", tau);
  f.write_attr(group, "certified", dec.certified && enc.certified);
  f.write_attr(group, "decoder_rounds", dec.rounds);
  f.write_attr(group, "encoder_rounds", enc.rounds);
  f.write_attr(group, "decoder_candidate_edges", dec.candidate_edges);
  f.write_attr(group, "encoder_candidate_edges", enc.candidate_edges);
  f.write_attr(group, "pairs_checked", dec.pairs_checked + enc.pairs_checked);
  f.write_attr(group, "decoder_seconds", dec.seconds);
  f.write_attr(group, "encoder_seconds", enc.seconds);
}

}  // namespace

Column column(const std::string& name, const std::string& object, const std::string& attribute, const std::string& description,
              std::optional<Display> display) {
  return {{name, object, attribute, description}, std::move(display)};
}

PairContext::PairContext(const parallel::Comm& comm_, const config::Config& config_, io::File& file_, std::string group_,
                         const std::vector<io::SaeHeader>& headers, size_t i_, size_t j_, ActivationData* activations_)
    : comm(comm_),
      config(config_),
      file(file_),
      group(std::move(group_)),
      name(group.substr(group.rfind('/') + 1)),
      a(headers[i_]),
      b(headers[j_]),
      i(i_),
      j(j_),
      activations(activations_),
      weight_space_skipped(weight_space_problem(headers, i_, j_, activations_)) {}

std::string weight_space_problem(const std::vector<io::SaeHeader>& headers, size_t i, size_t j, const ActivationData* activations) {
  const io::SaeHeader &a = headers[i], &b = headers[j];
  if (a.d_in != b.d_in)
    return "different input widths (d_in " + std::to_string(a.d_in) + " and " + std::to_string(b.d_in) +
           "): decoder directions of different spaces have no cosine";
  if (activations) {
    const ActivationInput &x = activations->input(i), &y = activations->input(j);
    if (x.source != y.source && (x.model.empty() || y.model.empty()))
      return "stores of unknown models (" + x.source + ", " + y.source + " name no model): their bases may not correspond";
    // One model: the same content (stores since 0.7 record it), else the same path.
    const auto same_model = !x.model_sha256.empty() && !y.model_sha256.empty()
                                ? x.model_sha256 == y.model_sha256
                                : fs::path(x.model).lexically_normal() == fs::path(y.model).lexically_normal();
    if (!same_model)
      return "different models' streams (" + x.source + " from " + x.model + ", " + y.source + " from " + y.model +
             "): their bases need not correspond, so only activation statistics compare them";
  }
  return "";
}

const SideResult& PairContext::side(Side s) {
  auto& slot = sides_[s == Side::kDecoder ? 0 : 1];
  if (slot) return *slot;
  const std::string dataset = s == Side::kDecoder ? "W_dec" : "W_enc";
  const TileSizes tiles = tiles_of(config.compare);
  const at::Tensor a_local = io::read_sae_rows(comm, a.path, dataset, a_rows_of_rank(a.n_latents, tiles, comm));
  const at::Tensor b_all = io::read_sae_rows(comm, b.path, dataset, {0, b.n_latents});
  // One tile stream serves both: its top-1 is the max cosine, its top-K the matching's candidates.
  const auto start = std::chrono::steady_clock::now();
  const bool hungarian = config.compare.hungarian;
  const SimilarityPass pass = similarity_pass(comm, a_local, a.n_latents, b_all, tiles, hungarian ? config.compare.candidates : 1, scan);
  SideResult r;
  r.max_cosine = max_cosine_from(comm, pass);
  r.pass_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (hungarian) r.matching = certified_matching(comm, a_local, b_all, pass, tiles, config.compare, scan);
  slot = std::move(r);
  return *slot;
}

const at::Tensor& PairContext::decoder_a() {
  if (!decoder_a_.defined()) decoder_a_ = io::read_sae_rows(comm, a.path, "W_dec", {0, a.n_latents});
  return decoder_a_;
}

const at::Tensor& PairContext::decoder_b() {
  if (!decoder_b_.defined()) decoder_b_ = io::read_sae_rows(comm, b.path, "W_dec", {0, b.n_latents});
  return decoder_b_;
}

void write_repsim(io::File& f, const std::string& parent, const std::vector<RepSimResult>& results, const std::string& pairing) {
  for (const auto& r : results) {
    const std::string g = parent + "/" + r.metric;
    f.create_group(g);
    f.write_attr(g, "score", r.score);
    f.write_attr(g, "null_mean", r.null_mean);
    f.write_attr(g, "null_std", r.null_std);
    f.write_attr(g, "p_value", r.p_value);
    // Above chance (at a few hundred pairs the null mean is high); NaN without a null (permutations = 0).
    f.write_attr(g, "excess", r.null.empty() ? std::nan("") : r.score - r.null_mean);
    f.write_attr(g, "permutations", static_cast<int64_t>(r.null.size()));
    f.write_attr(g, "n_pairs", r.n_pairs);
    f.write_attr(g, "seed", static_cast<int64_t>(r.seed));
    f.write_attr(g, "subsampled", r.subsampled);
    f.write_attr(g, "pairing", pairing);
    f.write_attr(g, "seconds", r.seconds);
    f.write_vector(g + "/null", io::DType::kFloat64, r.null);
    if (!r.subset_null.empty()) {  // Test 2 of a subspace (NaN: a draw with fewer than 3 pairs)
      f.write_attr(g, "subset_null_mean", r.subset_null_mean);
      f.write_attr(g, "subset_null_std", r.subset_null_std);
      f.write_attr(g, "subset_p_value", r.subset_p_value);
      f.write_vector(g + "/subset_null", io::DType::kFloat64, r.subset_null);
    }
    if (!r.mapping_subset_null.empty()) {  // its variant on the whole-space mapping's pairs
      f.write_attr(g, "mapping_subset_null_mean", r.mapping_subset_null_mean);
      f.write_attr(g, "mapping_subset_null_std", r.mapping_subset_null_std);
      f.write_attr(g, "mapping_subset_p_value", r.mapping_subset_p_value);
      f.write_vector(g + "/mapping_subset_null", io::DType::kFloat64, r.mapping_subset_null);
    }
  }
}

std::vector<Column> repsim_columns(const std::string& object, const std::string& prefix, const std::string& what,
                                   const std::string& table, const std::vector<std::string>& shown) {
  std::vector<Column> out;
  for (const auto& metric : kRepSimMetrics) {
    const std::string at = object.empty() ? metric : object + "/" + metric;
    std::optional<Display> display;
    if (std::find(shown.begin(), shown.end(), metric) != shown.end())
      display = Display{table, metric + " (p)", 18, Display::Style::kScoreP};
    out.push_back(column(prefix + metric, at, "score", metric + " of " + what, display));
    out.push_back(column(prefix + metric + "_p", at, "p_value",
                         "its permutation-test p-value (1/(permutations+1) at least; compat lan2024: mean(null >= score))"));
    out.push_back(column(prefix + metric + "_excess", at, "excess",
                         "the score minus its permutation null's mean (the chance level at this many pairs)"));
  }
  return out;
}

Statistic max_cosine_statistic() {
  const std::string table = "pair (MCS)";
  const auto fixed6 = Display::Style::kFixed6;
  return {"max_cosine",
          "decoder and encoder rows of both SAEs",
          [](PairContext& ctx) { return ctx.weight_space_skipped.empty(); },
          [](PairContext& ctx) {
            for (const Side s : {Side::kDecoder, Side::kEncoder}) write_max_cosine(ctx.file, ctx.group + "/" + side_name(s), ctx.side(s));
          },
          {column("decoder_mcs_ab", "decoder", "mcs_ab", "mean over A's latents of the max cosine to B's decoder rows",
                  Display{table, "decoder a→b", 12, fixed6}),
           column("decoder_mcs_ba", "decoder", "mcs_ba", "the same from B to A", Display{table, "decoder b→a", 12, fixed6}),
           column("encoder_mcs_ab", "encoder", "mcs_ab", "mean max cosine of encoder rows, A to B", Display{table, "encoder a→b", 12, fixed6}),
           column("encoder_mcs_ba", "encoder", "mcs_ba", "the same from B to A", Display{table, "encoder b→a", 12, fixed6})}};
}

Statistic hungarian_statistic() {
  const std::string table = "pair (Hungarian)";
  using S = Display::Style;
  return {"hungarian",
          "the decoder and encoder similarity passes' top-K candidates",
          [](PairContext& ctx) { return ctx.config.compare.hungarian && ctx.weight_space_skipped.empty(); },
          [](PairContext& ctx) {
            write_lap(ctx.file, ctx.group + "/lap", *ctx.side(Side::kDecoder).matching, *ctx.side(Side::kEncoder).matching,
                      ctx.config.compare.shared_threshold);
          },
          {column("mean_cos_decoder", "lap", "mean_cos_decoder", "mean decoder cosine of the optimal one-to-one matching",
                  Display{table, "mean cos dec", 12, S::kFixed6}),
           column("mean_cos_encoder", "lap", "mean_cos_encoder", "the same matching computed on encoder rows",
                  Display{table, "mean cos enc", 12, S::kFixed6}),
           column("shared_fraction", "lap", "shared_fraction",
                  "latents of the smaller SAE whose matched decoder and encoder cosines both exceed compare.shared_threshold",
                  Display{table, "shared", 12, S::kFixed4}),
           column("equal_fraction", "lap", "equal_fraction", "latents matched to the same partner by decoder and encoder",
                  Display{table, "equal", 12, S::kFixed4}),
           column("certified", "lap", "certified", "1 when the duals prove both matchings optimal over all pairs",
                  Display{table, "certified", 10, S::kYesNo})}};
}

Statistic paired_decoder_statistic() {
  return {"paired_decoders",
          "the Hungarian decoder matching and both SAEs' decoder rows",
          [](PairContext& ctx) {
            return ctx.config.compare.hungarian && ctx.config.compare.repsim && ctx.weight_space_skipped.empty() &&
                   std::min(ctx.a.n_latents, ctx.b.n_latents) >= 3;
          },
          [](PairContext& ctx) {
            const Matching& m = *ctx.side(Side::kDecoder).matching;
            std::vector<int64_t> a_rows, b_rows;
            for (size_t r = 0; r < m.match_ab.size(); ++r)
              if (m.match_ab[r] >= 0) a_rows.push_back(static_cast<int64_t>(r)), b_rows.push_back(m.match_ab[r]);
            const at::Tensor x = ctx.decoder_a().index_select(0, at::tensor(a_rows, at::kLong));
            const at::Tensor y = ctx.decoder_b().index_select(0, at::tensor(b_rows, at::kLong));
            write_repsim(ctx.file, ctx.group, paired_similarity(ctx.comm, x, y, ctx.name, ctx.config.compare, ctx.scan), "hungarian_decoder");
          },
          repsim_columns("", "", "the Hungarian-matched decoder rows", "pair (paired decoders)", kRepSimMetrics)};
}

// Each SAE's figures spliced into its model (train.splice_tokens), copied from its file to
// /saes/<name> by the compare stage: columns only, read from the pair's two SAE groups.
Statistic sae_quality_statistic() {
  const std::string table = "SAE quality (spliced)";
  using S = Display::Style;
  std::vector<Column> columns;
  for (const auto& [attribute, what, shown] :
       {std::tuple<std::string, std::string, std::string>{"ce_loss_score", "(CE_zero − CE_sae) / (CE_zero − CE_clean)", "CE score"},
        {"kl_div_score", "(KL_zero − KL_sae) / KL_zero", "KL score"},
        {"explained_variance", "1 − Σ Var(x − x̂) / Σ Var(x) on the spliced tokens", ""}})
    for (const char* side : {"a", "b"})
      columns.push_back(column(attribute + "_" + side, std::string("/saes/{") + side + "}", attribute,
                               std::string("SAE ") + side + "'s " + what + " (train.splice_tokens; empty when its file has none)",
                               shown.empty() ? std::nullopt : std::optional<Display>(Display{table, shown + " " + side, 11, S::kFixed4})));
  return {"sae_quality", "each SAE file's spliced evaluation (copied to /saes/<name>)", [](PairContext&) { return false; },
          [](PairContext&) {}, columns};
}

const std::vector<Statistic>& pair_statistics() {
  static const std::vector<Statistic> registry = {max_cosine_statistic(),         hungarian_statistic(),
                                                   paired_decoder_statistic(),     activation_correlation_statistic(),
                                                   activation_repsim_statistic(),  sae_quality_statistic()};
  return registry;
}

std::vector<ConsoleTable> console_tables() {
  std::vector<ConsoleTable> tables;
  for (const auto& statistic : pair_statistics())
    for (const auto& column : statistic.columns) {
      if (!column.display) continue;
      auto it = std::find_if(tables.begin(), tables.end(), [&](const ConsoleTable& t) { return t.title == column.display->table; });
      if (it == tables.end()) it = tables.insert(tables.end(), ConsoleTable{column.display->table, {}});
      it->columns.push_back({column.summary.name, *column.display});
    }
  return tables;
}

std::vector<io::SummaryColumn> summary_columns() {
  std::vector<io::SummaryColumn> out;
  for (const auto& s : pair_statistics())
    for (const auto& c : s.columns) out.push_back(c.summary);
  return out;
}

}  // namespace universae::compare
