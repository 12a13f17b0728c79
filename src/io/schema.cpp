// The description tables of io/schema.hpp and the walk that writes them into a finished file. The
// tables are data: a new object is one line here (docs/file-formats.md lists the same objects). The
// text is ASCII, so that h5dump prints it as it is.
#include "io/schema.hpp"

#include <functional>

#include "parallel/log.hpp"

namespace universae::io {
namespace {

using Entries = std::vector<ObjectSchema>;

// ---- SAE file (saes/seed<S>.h5, snapshots/seed<S>/tokens<T>.h5, baselines/*.h5, convert) ----

const Entries kSaeEntries = {
    {"/", "universae SAE file: one sparse autoencoder, rows of every [n_latents, ...] dataset are its latents; "
          "attributes say what it is (architecture, d_in, n_latents, k, seed, hookpoint, model), how it was made "
          "(config, fingerprint) and how well it reconstructs held-out tokens (fvu, l0, ...)", ""},
    {"/W_enc", "[n_latents, d_in] encoder rows: pre = W_enc (x - b_dec * apply_b_dec_to_input) + b_enc (gated: the "
               "gate path). With train.normalize_input the input scale @input_scale is folded in (rows multiplied "
               "by it), so the file encodes unscaled activations", ""},
    {"/b_enc", "[n_latents] encoder bias (gated: the gate path's)", ""},
    {"/W_dec", "[n_latents, d_in] decoder rows, row i = latent i's direction: x_hat = z W_dec + b_dec. relu, topk and "
               "batchtopk train them at unit norm in the training's input scale; with train.normalize_input they "
               "are saved divided by @input_scale (norm 1/input_scale): multiply by @input_scale, or divide each "
               "row by its norm, for unit-norm directions", ""},
    {"/b_dec", "[d_in] decoder bias, in the activations' own units (subtracted from x before encoding when "
               "@apply_b_dec_to_input)", ""},
    {"/threshold", "[n_latents] jumprelu's threshold theta, or batchtopk's inference threshold: a code below it is 0", ""},
    {"/r_mag", "[n_latents] gated magnitude path: W_mag = exp(r_mag) * W_enc, row by row", ""},
    {"/b_mag", "[n_latents] gated magnitude path's bias", ""},
    {"/frequency", "[n_latents] fraction of the held-out tokens (train.eval_tokens, the stream's last tokens) each "
                   "latent fired on (z > 0)", "fraction"},
    {"/train", "the training history, one row per logged step (train.log_every)", ""},
    {"/train/metrics", "[rows, columns] float64: step (steps), tokens (tokens), fvu (fraction of variance), l0 "
                       "(latents per token), dead_fraction (fraction), aux_loss, sparsity_loss, lr, tokens_per_s "
                       "(tokens/s); the columns are named in /train/columns", ""},
    {"/train/columns", "[columns] the names of /train/metrics' columns", ""},
};

// ---- activation store (activations.h5) ----

const Entries kStoreEntries = {
    {"/", "universae activation store: a language model's activations at its hookpoints over a token sequence, "
          "with the tokens, document and sequence boundaries; attributes say which model, tokenizer and inputs",
     ""},
    {"/tokens", "[T] the token id at each position", ""},
    {"/doc_offsets", "[documents + 1] the first position of each document, then T", ""},
    {"/seq_offsets", "[sequences + 1] the first position of each forward pass (position 0 of the model), then T", ""},
    {"/batch_nll", "[batches] the summed next-token loss of each extraction batch (resume bookkeeping)", "nats"},
    {"/activations", "the activations, one dataset per hookpoint", ""},
    {"/activations/*", "[T, d] the hookpoint's activation at every position (@dtype: float32, float16, or bfloat16 "
                       "stored as uint16 words), in the model's own units", ""},
    {"/special_tokens", "[S] the tokenizer's control tokens (BOS, EOS, padding, unknown, other special tokens)", ""},
    {"/vocab", "[V] the token strings by id (a dataset when they exceed the root attribute's 48 KB)", ""},
};

// ---- results file (results.h5) ----

// The weight-space statistics of one pair, below /pairs/<a>--<b> and /training/tokens<T>/<a>--<b>.
Entries weight_pair_entries() {
  Entries e;
  for (const char* name : {"decoder", "encoder"}) {
    const std::string side = name, s = "/" + side;
    e.push_back({s, "max cosine between A's and B's " + side + " rows: @mcs_ab and @mcs_ba are the means below, "
                    "@zero_rows_a and @zero_rows_b the all-zero rows", ""});
    e.push_back({s + "/max_cos_ab", "[n_a] each A " + side + " row's largest cosine with any B row", "cosine"});
    e.push_back({s + "/argmax_ab", "[n_a] the B latent reaching it", ""});
    e.push_back({s + "/max_cos_ba", "[n_b] each B " + side + " row's largest cosine with any A row", "cosine"});
    e.push_back({s + "/argmax_ba", "[n_b] the A latent reaching it", ""});
  }
  e.push_back({"/lap", "the certified one-to-one (Hungarian) matching of A's latents to B's, by decoder and by "
                       "encoder cosine: @mean_cos_decoder, @mean_cos_encoder, @shared_fraction (both matched "
                       "cosines >= @threshold), @equal_fraction, @certified", ""});
  for (const char* name : {"decoder", "encoder"}) {
    const std::string side = name;
    e.push_back({"/lap/" + side + "_match", "[n_a] the B latent matched to each A latent by " + side +
                                                " cosine; -1 where A is larger and the latent is left unmatched", ""});
    e.push_back({"/lap/" + side + "_cos", "[n_a] the matched " + side + " rows' cosine; NaN where unmatched", "cosine"});
  }
  return e;
}

// The activation statistics of one pair, below /pairs/<a>--<b>.
const Entries kActivationPairEntries = {
    {"/activation", "activation correlation between A's and B's latents on the compared tokens (/activations): "
                    "@mean_max_corr_ab, @mean_max_corr_ba, @n_tokens, @input (codes or pre)", ""},
    {"/activation/max_corr_ab", "[n_a] each A latent's largest Pearson correlation with any B latent", "Pearson r"},
    {"/activation/argmax_ab", "[n_a] the B latent reaching it", ""},
    {"/activation/max_corr_ba", "[n_b] each B latent's largest Pearson correlation with any A latent", "Pearson r"},
    {"/activation/argmax_ba", "[n_b] the A latent reaching it", ""},
    {"/activation/mappings", "Lan et al.'s latent mappings from the correlation maxima, one group each", ""},
    {"/activation/mappings/many_to_one", "every B latent with its most correlated A latent (ordered by b); @n_pairs", ""},
    {"/activation/mappings/one_to_one_best", "of the B latents choosing the same A latent, the most correlated "
                                             "(ordered by a); @n_pairs", ""},
    {"/activation/mappings/one_to_one_first", "of the B latents choosing the same A latent, the lowest-index one "
                                              "(Lan et al.'s published code; ordered by a); @n_pairs", ""},
    {"/activation/mappings/mutual", "the pairs whose latents choose each other (ordered by a); @n_pairs", ""},
    {"/activation/paired", "the pairs the activation-paired similarity scores use: the mapping @mapping after the "
                           "non-concept filter (@non_concept_filter; @n_pairs_before_filter)", ""},
    {"/activation/subspaces", "semantic subspaces (Lan et al.): per keyword category of compare.concepts, its "
                              "latents in A and in B, their pairs and the similarity of those pairs", ""},
    {"/activation/subspaces/*", "one keyword category: its latents in A and B, their pairs (@n_pairs) and, with "
                                "enough pairs, a group per similarity metric (Test 1 and Test 2)", ""},
    {"/activation/subspaces/*/latents_a", "[m_a] A's latents whose top examples hold one of the category's keywords", ""},
    {"/activation/subspaces/*/latents_b", "[m_b] B's latents whose top examples hold one of the category's keywords", ""},
    {"/activation/subspaces/*/pairs_a", "[pairs] the A latent of each of the category's pairs", ""},
    {"/activation/subspaces/*/pairs_b", "[pairs] the B latent of each of the category's pairs", ""},
    {"/activation/subspaces/*/subset_draws_a", "[draws, m_a] Test 2's random subsets of A's latents, one draw a row", ""},
    {"/activation/subspaces/*/subset_draws_b", "[draws, m_b] Test 2's random subsets of B's latents, one draw a row", ""},
};

// A latent mapping's datasets (below each mapping's group and /activation/paired).
Entries mapping_entries(const std::string& group) {
  return {{group + "/a", "[pairs] the A latent of each pair", ""},
          {group + "/b", "[pairs] the B latent of each pair", ""},
          {group + "/corr", "[pairs] the pair's activation correlation", "Pearson r"}};
}

struct Metric {
  const char* name;
  const char* what;
  const char* units;
};
const Metric kMetrics[] = {{"svcca", "SVCCA (mean canonical correlation of the leading singular directions)", "canonical correlation"},
                           {"rsa", "RSA (Spearman correlation of the pairs' Pearson similarity matrices)", "Spearman rho"},
                           {"cka", "linear CKA", ""},
                           {"mutual_knn", "mutual k-nearest-neighbour overlap (k = 10)", "fraction"}};

// Each similarity metric's group below `parent` (a pattern) on `rows`, with its permutation null and,
// for subspaces, Test 2's nulls.
Entries repsim_entries(const std::string& parent, const std::string& rows, bool subspace) {
  Entries e;
  for (const Metric& m : kMetrics) {
    const std::string g = parent + "/" + m.name;
    e.push_back({g, std::string(m.what) + " of " + rows + ": @score and its permutation test (@p_value, @null_mean, "
                    "@null_std, @excess = score - null mean, @permutations), @n_pairs, @subsampled, @seed", ""});
    e.push_back({g + "/null", "[P] the score under each of P random re-pairings (compare.permutations)", m.units});
    if (!subspace) continue;
    e.push_back({g + "/subset_null", "[draws] Test 2: the score of random latent subsets of the category's sizes, "
                                     "paired like the category; NaN for a draw with fewer than 3 pairs", m.units});
    e.push_back({g + "/mapping_subset_null", "[draws] Test 2's variant: random subsets of the category's size of "
                                             "the whole-space mapping's pairs", m.units});
  }
  return e;
}

const Entries kSaeGroupEntries = {
    {"/", "universae results: the SAEs compared (/saes) and every pair's statistics (/pairs); attributes hold the "
          "resolved config, the fingerprint and provenance", ""},
    {"/saes", "the compared SAEs, one group each, in comparison order (@index)", ""},
    {"/saes/*", "one compared SAE: its header (path, architecture, n_latents, d_in, k, seed, hookpoint, model, "
                "baseline, index) and its file's spliced evaluation as attributes", ""},
    {"/saes/*/frequency", "[n] the fraction of tokens each latent fired on (z > 0): the compared activations, or "
                          "the SAE file's held-out tokens (@frequency_source on the group)", "fraction"},
    {"/saes/*/top_positions", "[n, K] each latent's K top-activating tokens (K = compare.top_examples), highest "
                              "first, ties to the earlier token: their positions in the compared token sequence; "
                              "-1 where the latent fired on fewer than K tokens", ""},
    {"/saes/*/top_values", "[n, K] each top example's activation (codes, or pre-activations with "
                           "@top_examples_of = pre on the group); 0 where there is none", ""},
    {"/saes/*/top_tokens", "[n, K] each top example's token id; -1 where there is none", ""},
    {"/saes/*/top_windows", "[n, K, 2c+1] the token ids around each top example, c = compare.context_tokens "
                            "(@context_tokens) on each side, the example at index c; -1 outside its sequence or "
                            "where there is no example", ""},
    {"/pairs", "one group per compared pair: the SAEs in comparison order, then each baseline with the first SAE", ""},
    {"/pairs/*", "the pair <a>--<b> (@a, @b, @baseline) and each statistic's results; @weight_space_skipped says "
                 "why it has no weight-space statistics", ""},
};

const Entries kStudyEntries = {
    {"/overlap", "the N-seed overlap of three or more SAEs (@n_saes; shared: both matched cosines >= @threshold)", ""},
    {"/overlap/histogram_mean", "[S] the fraction of latents shared with exactly m other SAEs (index m), averaged "
                                "over the base SAEs", "fraction"},
    {"/overlap/unique_fraction", "[S-1] the fraction of latents shared with none of the first m other SAEs, "
                                 "m = 1 ... S-1, averaged over the base SAEs", "fraction"},
    {"/overlap/*", "one base SAE's overlap", ""},
    {"/overlap/*/histogram", "[S] how many of its latents are shared with exactly m other SAEs (index m)", "latents"},
    {"/activations", "the activations the SAEs encoded: @source, @hookpoint, @n_tokens, @first_token, @input, "
                     "@chunk_tokens, @stores", ""},
    {"/activations/vocab", "[V] the token strings by id (the first store's vocabulary)", ""},
    {"/stability", "per-latent stability across the seeds (every seed pair matched; @threshold)", ""},
    {"/stability/pairs", "per seed pair, the subspaces spanned by the latents it does not share", ""},
    {"/stability/pairs/*", "one pair: @n_unshared_a, @n_unshared_b, @rank_a, @rank_b, @mean_cos, and random row "
                           "sets of the same sizes (@random_mean_cos, @random_std_cos)", ""},
    {"/stability/pairs/*/angle_cosines", "[r] cosines of the principal angles between the spans of A's and B's "
                                         "unshared decoder rows, descending (r = the smaller rank)", "cosine"},
    {"/stability/*", "one seed's latents: @always_fraction, @never_fraction and, with activations, their share of "
                     "the reconstruction (@always_energy, @never_energy, @always_fvu_increase, "
                     "@never_fvu_increase, @fvu)", ""},
    {"/stability/*/stable_fraction", "[n] the fraction of the other seeds in which the latent is shared (its "
                                     "decoder and encoder matches both >= /stability@threshold)", "fraction"},
    {"/stability/*/frequency", "[n] the latent's firing frequency (as /saes/<name>/frequency)", "fraction"},
    {"/stability/*/fvu_increase", "[n] the FVU increase when the latent alone is removed from every "
                                  "reconstruction of the compared tokens", "fraction of variance"},
    {"/stability/*/energy", "[n] sum over the compared tokens of z^2 |W_dec row|^2: the latent's part of the "
                            "reconstruction", "squared activation units"},
    {"/training", "consistency over training: the SAEs' snapshots (train.snapshot_every) compared at every step", ""},
    {"/training/tokens", "[steps] the training tokens at each step (the final SAEs last)", "tokens"},
    {"/training/pairs", "[P] the pairs (<a>--<b>), the rows of the tables below", ""},
    {"/training/decoder_mcs", "[P, steps] the decoder max cosine similarity (mean of mcs_ab and mcs_ba)", "cosine"},
    {"/training/mean_cos_decoder", "[P, steps] the mean matched decoder cosine (Hungarian)", "cosine"},
    {"/training/shared_fraction", "[P, steps] the fraction of latents shared (both matched cosines >= "
                                  "compare.shared_threshold)", "fraction"},
    {"/training/tokens*", "the snapshots after <T> training tokens, one group per pair", ""},
    {"/training/tokens*/*", "the pair <a>--<b> of those snapshots: max cosine and matching", ""},
    {"/summary_columns", "the pair statistics' scalar columns (summary.csv)", ""},
};

void append(Entries& to, const std::string& prefix, const Entries& from) {
  for (const auto& e : from) to.push_back({prefix + e.pattern, e.description, e.units});
}

Entries results_entries() {
  Entries t = kSaeGroupEntries;
  const Entries weight = weight_pair_entries();
  append(t, "/pairs/*", weight);
  append(t, "/pairs/*", kActivationPairEntries);
  for (const char* mapping : {"many_to_one", "one_to_one_best", "one_to_one_first", "mutual"})
    append(t, "/pairs/*", mapping_entries(std::string("/activation/mappings/") + mapping));
  append(t, "/pairs/*", mapping_entries("/activation/paired"));
  append(t, "", repsim_entries("/pairs/*", "the Hungarian-paired decoder rows", false));
  append(t, "", repsim_entries("/pairs/*/activation", "the activation-paired decoder rows (/activation/paired)", false));
  append(t, "", repsim_entries("/pairs/*/activation/subspaces/*", "the category's pairs' decoder rows", true));
  append(t, "", kStudyEntries);
  append(t, "/training/tokens*/*", weight);
  return t;
}

// fnmatch with "*" only, within one segment.
bool segment_matches(const char* p, const char* s) {
  if (*p == '\0') return *s == '\0';
  if (*p == '*') return segment_matches(p + 1, s) || (*s != '\0' && segment_matches(p, s + 1));
  return *p == *s && segment_matches(p + 1, s + 1);
}

std::vector<std::string> segments(const std::string& path) {
  std::vector<std::string> out;
  size_t begin = 1;
  while (begin <= path.size()) {
    const size_t end = path.find('/', begin);
    out.push_back(path.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  if (path == "/") out.clear();
  return out;
}

}  // namespace

const std::vector<ObjectSchema>& schema(SchemaKind kind) {
  static const Entries results = results_entries();
  switch (kind) {
    case SchemaKind::kSae: return kSaeEntries;
    case SchemaKind::kActivationStore: return kStoreEntries;
    case SchemaKind::kResults: break;
  }
  return results;
}

bool schema_pattern_matches(const std::string& pattern, const std::string& object) {
  const auto p = segments(pattern), o = segments(object);
  if (p.size() != o.size()) return false;
  for (size_t i = 0; i < p.size(); ++i)
    if (!segment_matches(p[i].c_str(), o[i].c_str())) return false;
  return true;
}

const ObjectSchema* schema_entry(SchemaKind kind, const std::string& object) {
  for (const auto& e : schema(kind))
    if (schema_pattern_matches(e.pattern, object)) return &e;
  return nullptr;
}

std::vector<std::string> describe_objects(File& f, SchemaKind kind) {
  std::vector<std::string> undescribed;
  const std::function<void(const std::string&)> visit = [&](const std::string& object) {
    if (const ObjectSchema* e = schema_entry(kind, object)) {
      if (!f.has_attr(object, "description")) f.write_attr(object, "description", e->description);
      if (!e->units.empty()) f.write_attr(object, "units", e->units);
    } else {
      undescribed.push_back(object);
    }
    if (!f.is_group(object)) return;
    for (const auto& child : f.children(object)) visit(object == "/" ? "/" + child : object + "/" + child);
  };
  visit("/");
  if (!undescribed.empty())
    log::debug("{}: {} objects without a description in io/schema.cpp, e.g. {}", f.path(), undescribed.size(), undescribed.front());
  return undescribed;
}

}  // namespace universae::io
