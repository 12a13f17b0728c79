#include "core/version.hpp"
#include "compare/compare_saes.hpp"

#include <ATen/Functions.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <tuple>

#include "compare/concepts.hpp"
#include "compare/overlap.hpp"
#include "data/activation_store.hpp"
#include "core/rng.hpp"
#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/output.hpp"
#include "io/sae_file.hpp"
#include "io/text_file.hpp"
#include "parallel/log.hpp"

namespace universae::compare {
namespace {

// A [rows, width...] table every rank holds: each rank writes its block of rows.
template <typename T>
void write_table(io::File& f, const std::string& name, io::DType type, const std::vector<T>& values,
                 const std::vector<int64_t>& shape, const parallel::Comm& comm) {
  f.create_dataset(name, type, shape);
  const int64_t width = shape[0] > 0 ? static_cast<int64_t>(values.size()) / shape[0] : 0;
  const core::Range mine = core::shard_range(shape[0], comm.rank(), comm.size());
  f.write_rows(name, mine, values.data() + mine.begin * width);
}

template <typename T>
void write_replicated(io::File& f, const std::string& name, io::DType type, const std::vector<T>& values,
                      const parallel::Comm& comm) {
  write_table(f, name, type, values, {static_cast<int64_t>(values.size())}, comm);
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

void write_max_cosine(io::File& f, const std::string& group, const MaxCosine& mc, const parallel::Comm& comm) {
  write_replicated(f, group + "/max_cos_ab", io::DType::kFloat32, mc.max_cos_ab, comm);
  write_replicated(f, group + "/argmax_ab", io::DType::kInt64, mc.argmax_ab, comm);
  write_replicated(f, group + "/max_cos_ba", io::DType::kFloat32, mc.max_cos_ba, comm);
  write_replicated(f, group + "/argmax_ba", io::DType::kInt64, mc.argmax_ba, comm);
  f.write_attr(group, "mcs_ab", mc.mcs_ab);
  f.write_attr(group, "mcs_ba", mc.mcs_ba);
  f.write_attr(group, "zero_rows_a", mc.zero_rows_a);
  f.write_attr(group, "zero_rows_b", mc.zero_rows_b);
}

// /pairs/<a>--<b>/lap: decoder and encoder matched separately, then the shared and equal fractions.
void write_lap(io::File& f, const std::string& group, const Matching& dec, const Matching& enc, double tau,
               PairSummary& s, const parallel::Comm& comm) {
  f.create_group(group);
  write_replicated(f, group + "/decoder_match", io::DType::kInt64, dec.match_ab, comm);
  write_replicated(f, group + "/decoder_cos", io::DType::kFloat32, dec.cos_ab, comm);
  write_replicated(f, group + "/encoder_match", io::DType::kInt64, enc.match_ab, comm);
  write_replicated(f, group + "/encoder_cos", io::DType::kFloat32, enc.cos_ab, comm);
  // Over the latents of the smaller SAE: every one of them is matched.
  int64_t shared = 0, equal = 0, n_small = 0;
  for (size_t i = 0; i < dec.match_ab.size(); ++i) {
    if (dec.match_ab[i] >= 0) ++n_small;
    if (dec.match_ab[i] >= 0 && enc.match_ab[i] >= 0) {
      shared += dec.cos_ab[i] > tau && enc.cos_ab[i] > tau;
      equal += dec.match_ab[i] == enc.match_ab[i];
    }
  }
  s.has_lap = true;
  s.mean_cos_decoder = dec.mean_cos;
  s.mean_cos_encoder = enc.mean_cos;
  s.shared_fraction = static_cast<double>(shared) / static_cast<double>(n_small);
  s.equal_fraction = static_cast<double>(equal) / static_cast<double>(n_small);
  s.certified = dec.certified && enc.certified;
  f.write_attr(group, "mean_cos_decoder", s.mean_cos_decoder);
  f.write_attr(group, "mean_cos_encoder", s.mean_cos_encoder);
  f.write_attr(group, "shared_fraction", s.shared_fraction);
  f.write_attr(group, "equal_fraction", s.equal_fraction);
  f.write_attr(group, "threshold", tau);
  f.write_attr(group, "certified", s.certified);
  f.write_attr(group, "decoder_rounds", dec.rounds);
  f.write_attr(group, "encoder_rounds", enc.rounds);
  f.write_attr(group, "decoder_candidate_edges", dec.candidate_edges);
  f.write_attr(group, "encoder_candidate_edges", enc.candidate_edges);
  f.write_attr(group, "pairs_checked", dec.pairs_checked + enc.pairs_checked);
  f.write_attr(group, "decoder_seconds", dec.seconds);
  f.write_attr(group, "encoder_seconds", enc.seconds);
}

// /overlap: per base SAE the histogram of "shared with m others", their mean, and the fraction
// shared with no other SAE as SAEs are added (in the order given).
void write_overlap(io::File& f, const Overlap& o, const std::vector<std::string>& names, double tau,
                   const parallel::Comm& comm) {
  f.create_group("/overlap");
  f.write_attr("/overlap", "threshold", tau);
  f.write_attr("/overlap", "n_saes", o.n_saes);
  write_replicated(f, "/overlap/histogram_mean", io::DType::kFloat64, o.histogram_mean, comm);
  write_replicated(f, "/overlap/unique_fraction", io::DType::kFloat64, o.unique_fraction, comm);
  for (size_t b = 0; b < names.size(); ++b) {
    f.create_group("/overlap/" + names[b]);
    write_replicated(f, "/overlap/" + names[b] + "/histogram", io::DType::kInt64, o.histogram[b], comm);
  }
}

// X: A's decoder rows of its matched latents (in A's order); Y: the matched rows of B.
// Both SAEs' whole W_dec, read on first use and shared by the Hungarian and activation pairings.
class PairDecoders {
 public:
  PairDecoders(const parallel::Comm& comm, const io::SaeHeader& a, const io::SaeHeader& b) : comm_(comm), a_(a), b_(b) {}
  const at::Tensor& a() { return load(wa_, a_); }
  const at::Tensor& b() { return load(wb_, b_); }

 private:
  const at::Tensor& load(at::Tensor& w, const io::SaeHeader& h) {
    if (!w.defined()) w = io::read_sae_rows(comm_, h.path, "W_dec", {0, h.n_latents});
    return w;
  }
  const parallel::Comm& comm_;
  const io::SaeHeader &a_, &b_;
  at::Tensor wa_, wb_;
};

std::vector<RepSimResult> paired_decoder_similarity(const parallel::Comm& comm, PairDecoders& decoders,
                                                    const Matching& decoder, const std::string& pair_name,
                                                    const CompareRequest& request) {
  std::vector<int64_t> a_rows, b_rows;
  for (size_t i = 0; i < decoder.match_ab.size(); ++i)
    if (decoder.match_ab[i] >= 0) a_rows.push_back(static_cast<int64_t>(i)), b_rows.push_back(decoder.match_ab[i]);
  const at::Tensor &wa = decoders.a(), &wb = decoders.b();
  return paired_similarity(comm, wa.index_select(0, at::tensor(a_rows, at::kLong)),
                           wb.index_select(0, at::tensor(b_rows, at::kLong)), pair_name, request.repsim_options);
}

// /pairs/<a>--<b>/<metric>: score, null statistics, p-value, seed; the null itself.
void write_repsim(io::File& f, const std::string& parent, const std::vector<RepSimResult>& results,
                  const std::string& pairing, std::vector<std::pair<std::string, std::pair<double, double>>>* summary,
                  const parallel::Comm& comm) {
  for (const auto& r : results) {
    const std::string g = parent + "/" + r.metric;
    f.create_group(g);
    f.write_attr(g, "score", r.score);
    f.write_attr(g, "null_mean", r.null_mean);
    f.write_attr(g, "null_std", r.null_std);
    f.write_attr(g, "p_value", r.p_value);
    f.write_attr(g, "permutations", static_cast<int64_t>(r.null.size()));
    f.write_attr(g, "n_pairs", r.n_pairs);
    f.write_attr(g, "seed", static_cast<int64_t>(r.seed));
    f.write_attr(g, "subsampled", r.subsampled);
    f.write_attr(g, "pairing", pairing);
    f.write_attr(g, "seconds", r.seconds);
    write_replicated(f, g + "/null", io::DType::kFloat64, r.null, comm);
    if (!r.subset_null.empty()) {  // Test 2 of a subspace
      f.write_attr(g, "subset_null_mean", r.subset_null_mean);
      f.write_attr(g, "subset_null_std", r.subset_null_std);
      f.write_attr(g, "subset_p_value", r.subset_p_value);
      write_replicated(f, g + "/subset_null", io::DType::kFloat64, r.subset_null, comm);
    }
    if (summary) summary->push_back({r.metric, {r.score, r.p_value}});
  }
}

core::SaeEncoderWeights encoder_of(const io::SaeWeights& w) {
  core::SaeEncoderWeights e;
  e.architecture = w.header.architecture;
  e.k = w.header.k;
  e.apply_b_dec_to_input = w.header.apply_b_dec_to_input;
  e.W_enc = w.W_enc, e.b_enc = w.b_enc, e.b_dec = w.b_dec;
  e.threshold = w.threshold, e.r_mag = w.r_mag, e.b_mag = w.b_mag;
  return e;
}

// What the activation pass leaves for the pairs: every SAE's codes on the input and its top tokens.
struct ActivationData {
  ActivationInput input;  // the first SAE's hookpoint (tokens, vocab and sequences are the store's)
  std::map<std::string, ActivationInput> other_hookpoints;  // SAEs trained at other hookpoints of the same store
  std::vector<core::SparseCodes> codes;  // per SAE (input = codes)
  std::vector<std::vector<std::vector<std::string>>> latent_strings;  // per SAE, per latent: top token strings
  std::vector<ConceptCategory> concepts;
  // Each SAE is encoded on the activations of the hookpoint it was trained on.
  const ActivationInput& input_for(const io::SaeHeader& h) const {
    const auto it = other_hookpoints.find(h.hookpoint);
    return it == other_hookpoints.end() ? input : it->second;
  }
};

// Opens and checks the activation input and the keyword categories it needs (collective; a
// UsageError on every rank when they do not fit), before any output exists. With a store, SAEs of
// other hookpoints (a cross-layer comparison) read that hookpoint's activations on the same tokens.
ActivationData activation_input(const parallel::Comm& comm, const CompareRequest& request,
                                const std::vector<io::SaeHeader>& headers) {
  const io::SaeHeader& first = headers[0];
  ActivationOptions o = request.activations;
  if (o.hookpoint.empty() || o.hookpoint == "synthetic") o.hookpoint = first.hookpoint;
  ActivationData data;
  data.input = open_activation_input(comm, o);
  const ActivationInput& in = data.input;
  if (o.source != "synthetic") {
    for (const auto& h : headers) {
      if (h.hookpoint == in.hookpoint || h.hookpoint.empty() || h.hookpoint == "synthetic" ||
          data.other_hookpoints.count(h.hookpoint))
        continue;
      // An SAE whose hookpoint the store lacks reads the requested one (as every SAE did before). One the
      // store has is opened like the first: a problem there (NaN, a bad shape) is an error, not a fallback.
      const auto& have = in.store_hookpoints;
      if (std::find(have.begin(), have.end(), data::canonical_hookpoint(h.hookpoint)) == have.end()) {
        log::info("compare: {} was trained at '{}', which {} lacks; it reads '{}'", h.path, h.hookpoint, o.source, in.hookpoint);
        continue;
      }
      ActivationOptions other = o;
      other.hookpoint = h.hookpoint;
      data.other_hookpoints.emplace(h.hookpoint, open_activation_input(comm, other));  // collective
    }
  }
  for (const auto& h : headers) {
    const ActivationInput& hi = data.input_for(h);
    if (hi.d != h.d_in)
      throw UsageError(hi.source + ": activations at '" + hi.hookpoint + "' have d = " + std::to_string(hi.d) + " but " + h.path +
                       " has d_in = " + std::to_string(h.d_in) + " (compare.activations, data.hookpoint)");
  }
  if (!in.vocab.empty() && !in.tokens.empty()) data.concepts = load_concepts(o.concepts);
  return data;
}

// Encodes every SAE once; writes /activations and each SAE's frequency and top examples.
void activation_pass(const parallel::Comm& comm, io::File& f, const CompareRequest& request, ActivationData& data,
                     const std::vector<io::SaeHeader>& headers, const std::vector<std::string>& names) {
  const ActivationOptions& o = request.activations;
  const ActivationInput& in = data.input;
  const bool strings = !in.vocab.empty() && !in.tokens.empty();
  f.create_group("/activations");
  f.write_attr("/activations", "source", in.source);
  f.write_attr("/activations", "hookpoint", in.hookpoint);
  f.write_attr("/activations", "n_tokens", in.n_tokens);
  f.write_attr("/activations", "first_token", in.first_token);
  f.write_attr("/activations", "input", o.input);
  f.write_attr("/activations", "chunk_tokens", o.chunk_tokens);
  if (strings) f.write_strings("/activations/vocab", in.vocab);
  for (size_t s = 0; s < headers.size(); ++s) {
    const auto& h = headers[s];
    const std::string g = "/saes/" + names[s];
    core::SparseCodes codes = encode_codes(comm, encoder_of(io::read_sae(comm, h.path)), data.input_for(h), o.chunk_tokens, names[s]);
    write_replicated(f, g + "/frequency", io::DType::kFloat64, firing_frequency(codes), comm);
    f.write_attr(g, "frequency_source", "activations");
    const core::TopExamples top = core::top_examples(codes, 5);
    const TopTokens tokens = top_tokens(top, in);
    write_table(f, g + "/top_positions", io::DType::kInt64, top.positions, {h.n_latents, 5}, comm);
    write_table(f, g + "/top_values", io::DType::kFloat32, top.values, {h.n_latents, 5}, comm);
    if (!in.tokens.empty()) {
      write_table(f, g + "/top_tokens", io::DType::kInt64, tokens.tokens, {h.n_latents, 5}, comm);
      write_table(f, g + "/top_windows", io::DType::kInt64, tokens.windows, {h.n_latents, 5, 5}, comm);
    }
    data.latent_strings.push_back(strings ? latent_top_strings(tokens.tokens, 5, in.vocab)
                                          : std::vector<std::vector<std::string>>{});
    if (o.input == "codes") data.codes.push_back(std::move(codes));
  }
}

void write_mapping(io::File& f, const std::string& g, const core::Mapping& m, const parallel::Comm& comm) {
  f.create_group(g);
  f.write_attr(g, "n_pairs", static_cast<int64_t>(m.a.size()));
  write_replicated(f, g + "/a", io::DType::kInt64, m.a, comm);
  write_replicated(f, g + "/b", io::DType::kInt64, m.b, comm);
  write_replicated(f, g + "/corr", io::DType::kFloat32, to_float(m.corr), comm);
}

core::Mapping take(const core::Mapping& m, const std::vector<int64_t>& rows) {
  core::Mapping out;
  for (int64_t r : rows) {
    const auto e = static_cast<size_t>(r);
    out.a.push_back(m.a[e]), out.b.push_back(m.b[e]), out.corr.push_back(m.corr[e]);
  }
  return out;
}

// /pairs/<a>--<b>/activation: correlation maxima, the four mappings, the filtered pairs of the
// chosen mapping and their representational similarity, and the semantic subspaces.
void write_activation_pair(io::File& f, const std::string& pair, size_t i, size_t j,
                           const std::vector<io::SaeHeader>& headers, const ActivationData& data, PairDecoders& decoders,
                           const CompareRequest& request, PairSummary& s, const parallel::Comm& comm) {
  const ActivationOptions& o = request.activations;
  Correlation c;
  if (o.input == "pre") {
    c = dense_correlation(comm, encoder_of(io::read_sae(comm, headers[i].path)), encoder_of(io::read_sae(comm, headers[j].path)),
                          data.input_for(headers[i]), data.input_for(headers[j]), o.chunk_tokens, request.tiles.rows);
  } else {
    c = sparse_correlation(comm, data.codes[i], data.codes[j], request.tiles.rows);
  }
  const std::string g = pair + "/activation";
  f.create_group(g);
  write_replicated(f, g + "/max_corr_ab", io::DType::kFloat32, to_float(c.max_ab), comm);
  write_replicated(f, g + "/argmax_ab", io::DType::kInt64, c.argmax_ab, comm);
  write_replicated(f, g + "/max_corr_ba", io::DType::kFloat32, to_float(c.max_ba), comm);
  write_replicated(f, g + "/argmax_ba", io::DType::kInt64, c.argmax_ba, comm);
  f.write_attr(g, "mean_max_corr_ab", c.mean_ab);
  f.write_attr(g, "mean_max_corr_ba", c.mean_ba);
  f.write_attr(g, "n_tokens", data.input.n_tokens);
  f.write_attr(g, "input", o.input);
  f.write_attr(g, "seconds", c.seconds);
  s.has_activation = true;
  s.mean_max_corr_ab = c.mean_ab;
  s.mean_max_corr_ba = c.mean_ba;

  const core::Mapping many = core::many_to_one(c.max_ba, c.argmax_ba);
  const core::Mapping best = core::one_to_one(many, false), first = core::one_to_one(many, true);
  const core::Mapping mutual = core::mutual(c.max_ab, c.argmax_ab, c.argmax_ba);
  write_mapping(f, g + "/mappings/many_to_one", many, comm);
  write_mapping(f, g + "/mappings/one_to_one_best", best, comm);
  write_mapping(f, g + "/mappings/one_to_one_first", first, comm);
  write_mapping(f, g + "/mappings/mutual", mutual, comm);

  const bool lan = o.lan2024;
  const std::string mapping_name = o.mapping == "one_to_one" ? (lan ? "one_to_one_first" : "one_to_one_best") : o.mapping;
  const core::Mapping& chosen = o.mapping == "many_to_one" ? many : o.mapping == "mutual" ? mutual : lan ? first : best;
  const bool strings = !data.latent_strings[i].empty();
  std::vector<int64_t> kept;
  if (strings) {
    kept = filter_non_concept(chosen, data.latent_strings[i], data.latent_strings[j]);
  } else {
    for (size_t e = 0; e < chosen.a.size(); ++e) kept.push_back(static_cast<int64_t>(e));
  }
  const std::string paired = g + "/paired";
  write_mapping(f, paired, take(chosen, kept), comm);
  f.write_attr(paired, "mapping", mapping_name);
  f.write_attr(paired, "non_concept_filter", strings);
  f.write_attr(paired, "n_pairs_before_filter", static_cast<int64_t>(chosen.a.size()));
  s.activation_pairs = static_cast<int64_t>(kept.size());
  if (!request.repsim || kept.size() < 3) return;

  const std::string pair_name = pair.substr(pair.rfind('/') + 1);
  const at::Tensor x_all = decoders.a().index_select(0, at::tensor(chosen.a, at::kLong));
  const at::Tensor y_all = decoders.b().index_select(0, at::tensor(chosen.b, at::kLong));
  const at::Tensor idx = at::tensor(kept, at::kLong);
  const std::string pairing = "activation_" + mapping_name + (strings ? "_filtered" : "");
  write_repsim(f, g, paired_similarity(comm, x_all.index_select(0, idx), y_all.index_select(0, idx),
                                       pair_name + "/activation", request.repsim_options),
               pairing, &s.activation_repsim, comm);
  // Semantic subspaces: the kept pairs whose A latent fires on a category keyword; Test 2 draws
  // random subsets of the same size from all pairs of the mapping.
  for (const auto& cat : data.concepts) {
    const std::vector<int64_t> rows = category_pairs(chosen, kept, data.latent_strings[i], cat);
    const std::string sg = g + "/subspaces/" + cat.name;
    f.create_group(sg);
    f.write_attr(sg, "n_pairs", static_cast<int64_t>(rows.size()));
    write_replicated(f, sg + "/pairs", io::DType::kInt64, rows, comm);
    if (rows.size() >= 3)
      write_repsim(f, sg, subspace_similarity(comm, x_all, y_all, rows, pair_name + "/" + cat.name, request.repsim_options),
                   pairing, nullptr, comm);
  }
}

void write_summary_csv(const std::string& path, const std::vector<PairSummary>& pairs) {
  std::ostringstream out;
  {
    out.precision(9);
    out << "pair,a,b,decoder_mcs_ab,decoder_mcs_ba,encoder_mcs_ab,encoder_mcs_ba,"
           "mean_cos_decoder,mean_cos_encoder,shared_fraction,equal_fraction,certified,"
           "svcca,svcca_p,rsa,rsa_p,cka,cka_p,mutual_knn,mutual_knn_p,baseline,mean_max_corr_ab,mean_max_corr_ba,"
           "activation_pairs,act_svcca,act_svcca_p,act_rsa,act_rsa_p,act_cka,act_cka_p,act_mutual_knn,act_mutual_knn_p\n";
    for (const auto& p : pairs) {
      out << p.a << "--" << p.b << ',' << p.a << ',' << p.b << ',' << p.decoder_mcs_ab << ',' << p.decoder_mcs_ba
          << ',' << p.encoder_mcs_ab << ',' << p.encoder_mcs_ba;
      if (p.has_lap) {
        out << ',' << p.mean_cos_decoder << ',' << p.mean_cos_encoder << ',' << p.shared_fraction << ','
            << p.equal_fraction << ',' << (p.certified ? "true" : "false");
      } else {
        out << ",,,,,";
      }
      auto metrics = [&](const auto& list) {
        for (const char* metric : {"svcca", "rsa", "cka", "mutual_knn"}) {
          const auto it = std::find_if(list.begin(), list.end(), [&](const auto& m) { return m.first == metric; });
          if (it == list.end()) {
            out << ",,";
          } else {
            out << ',' << it->second.first << ',' << it->second.second;
          }
        }
      };
      metrics(p.repsim);
      out << ',' << (p.baseline ? "true" : "false");
      if (p.has_activation) {
        out << ',' << p.mean_max_corr_ab << ',' << p.mean_max_corr_ba << ',' << p.activation_pairs;
      } else {
        out << ",,,";
      }
      metrics(p.activation_repsim);
      out << '\n';
    }
  }
  if (!io::publish_text(path, out.str())) throw InternalError(path + ".partial: write failed");
}

}  // namespace

std::vector<std::string> sae_names(const std::vector<std::string>& paths) {
  std::vector<std::string> names;
  std::map<std::string, int> seen;
  for (const auto& p : paths) {
    // A sparsify/SAELens SAE is a directory named after its hookpoint (layers.3): keep the whole name.
    const std::filesystem::path path = std::filesystem::path(p).lexically_normal();
    std::string stem = std::filesystem::is_directory(path) ? path.filename().string() : path.stem().string();
    if (stem.empty()) stem = path.parent_path().filename().string();
    const int count = seen[stem]++;
    names.push_back(count == 0 ? stem : stem + "_" + std::to_string(count));
  }
  return names;
}

std::vector<PairSummary> compare_saes(const parallel::Comm& comm, const CompareRequest& request) {
  if (request.sae_paths.size() < 2) throw UsageError("compare needs at least two SAE files (got " +
                                                     std::to_string(request.sae_paths.size()) + ")");
  const std::string out_dir = std::filesystem::path(request.out_path).parent_path().string();
  // Every input is checked before anything is created.
  std::vector<std::string> paths = request.sae_paths;
  for (const auto& path : request.baselines) paths.push_back(path);
  std::vector<io::SaeHeader> headers;
  for (const auto& path : paths) headers.push_back(io::read_sae_header(comm, path));
  for (const auto& h : headers)
    if (h.d_in != headers[0].d_in)
      throw UsageError(h.path + ": d_in " + std::to_string(h.d_in) + " differs from " + headers[0].path + " (" +
                       std::to_string(headers[0].d_in) + "); weight similarity needs one input space");
  std::optional<ActivationData> activations;
  if (!request.activations.source.empty()) activations = activation_input(comm, request, headers);
  io::ensure_directory(comm, out_dir);
  // Baselines (METHODS.md §8) are compared with the first SAE only; the random one comes last.
  const size_t n_main = request.sae_paths.size();
  if (request.baseline_random) {
    const std::string path = (std::filesystem::path(out_dir.empty() ? "." : out_dir) / "baselines" / "random_init.h5").string();
    io::ensure_directory(comm, std::filesystem::path(path).parent_path().string());
    // Its own seed, never one a trained SAE was initialised from (a trained SAE stays near its init).
    write_random_init_sae(comm, headers[0], core::mix64(request.seed ^ 0xBA5E11AEull) >> 1, path);
    paths.push_back(path);
    headers.push_back(io::read_sae_header(comm, path));
  }
  auto names = sae_names(paths);
  for (size_t i = 0; i < request.names.size() && i < n_main; ++i) names[i] = request.names[i];
  std::vector<std::pair<size_t, size_t>> pairs;
  for (size_t i = 0; i < n_main; ++i)
    for (size_t j = i + 1; j < n_main; ++j) pairs.push_back({i, j});
  for (size_t b = n_main; b < paths.size(); ++b) pairs.push_back({0, b});

  std::vector<PairSummary> summaries;
  io::Pending pending(comm, request.out_path);
  {
    io::File f = io::File::create(comm, pending.partial());
    f.write_attr("/", "format", "universae-results");
    f.write_attr("/", "format_version", int64_t{1});
    f.write_attr("/", "config", request.config_toml);
    f.write_attr("/", "fingerprint", request.fingerprint);
    f.write_attr("/", "universae_version", build::kVersion);
    f.write_attr("/", "git_sha", build::kGitSha);
    f.write_attr("/", "n_ranks", static_cast<int64_t>(comm.size()));
    f.write_attr("/", "hdf5_version", io::hdf5_version());
    for (size_t i = 0; i < headers.size(); ++i) {
      const auto& h = headers[i];
      const std::string g = "/saes/" + names[i];
      f.create_group(g);
      f.write_attr(g, "path", h.path);
      f.write_attr(g, "architecture", h.architecture);
      f.write_attr(g, "n_latents", h.n_latents);
      f.write_attr(g, "d_in", h.d_in);
      f.write_attr(g, "k", h.k);
      f.write_attr(g, "seed", h.seed);
      f.write_attr(g, "hookpoint", h.hookpoint);
      f.write_attr(g, "model", h.model);
      f.write_attr(g, "baseline", i >= n_main);
      f.write_attr(g, "index", static_cast<int64_t>(i));  // the order of the comparison (and of its pairs)
      if (h.has_frequency && request.activations.source.empty()) {
        io::File sae = io::File::open_read(comm, h.path);
        std::vector<double> freq(static_cast<size_t>(h.n_latents));
        sae.read_rows("/frequency", {0, h.n_latents}, freq.data());
        write_replicated(f, g + "/frequency", io::DType::kFloat64, freq, comm);
        f.write_attr(g, "frequency_source", "sae_file");
      }
    }
    if (activations) activation_pass(comm, f, request, *activations, headers, names);

    std::vector<PairMatching> matchings;  // for the N-seed overlap
    log::Progress progress("compare", static_cast<int64_t>(pairs.size()), "pairs");
    for (const auto& [i, j] : pairs) {
      const auto &ha = headers[i], &hb = headers[j];
      const std::string pair = "/pairs/" + names[i] + "--" + names[j];
      f.create_group(pair);
      f.write_attr(pair, "a", names[i]);
      f.write_attr(pair, "b", names[j]);
      f.write_attr(pair, "baseline", j >= n_main);
      PairSummary s{names[i], names[j]};
      s.baseline = j >= n_main;
      PairDecoders decoders(comm, ha, hb);
      Matching matched[2];
      for (const bool decoder : {true, false}) {
        const std::string part = decoder ? "decoder" : "encoder", dataset = decoder ? "W_dec" : "W_enc";
        const at::Tensor a_local =
            io::read_sae_rows(comm, ha.path, dataset, a_rows_of_rank(ha.n_latents, request.tiles, comm));
        const at::Tensor b = io::read_sae_rows(comm, hb.path, dataset, {0, hb.n_latents});
        // One tile stream serves both: its top-1 is the max cosine, its top-K the matching's candidates.
        const auto pass_start = std::chrono::steady_clock::now();
        const SimilarityPass pass = similarity_pass(comm, a_local, ha.n_latents, b, request.tiles,
                                                    request.hungarian ? request.matching.candidates : 1);
        const MaxCosine mc = max_cosine_from(comm, pass);
        const double pass_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - pass_start).count();
        f.create_group(pair + "/" + part);
        write_max_cosine(f, pair + "/" + part, mc, comm);
        f.write_attr(pair + "/" + part, "seconds", pass_seconds);  // the tile pass (GEMMs + top-K lists)
        (decoder ? s.decoder_mcs_ab : s.encoder_mcs_ab) = mc.mcs_ab;
        (decoder ? s.decoder_mcs_ba : s.encoder_mcs_ba) = mc.mcs_ba;
        if (request.hungarian)
          matched[decoder ? 0 : 1] =
              certified_matching(comm, a_local, b, pass, request.tiles, request.matching);
      }
      if (request.hungarian) {
        write_lap(f, pair + "/lap", matched[0], matched[1], request.shared_threshold, s, comm);
        if (request.repsim && std::min(ha.n_latents, hb.n_latents) >= 3)
          write_repsim(f, pair, paired_decoder_similarity(comm, decoders, matched[0], names[i] + "--" + names[j], request),
                       "hungarian_decoder", &s.repsim, comm);
        if (j < n_main)
          matchings.push_back({static_cast<int64_t>(i), static_cast<int64_t>(j), std::move(matched[0]), std::move(matched[1])});
      }
      if (activations) write_activation_pair(f, pair, i, j, headers, *activations, decoders, request, s, comm);
      summaries.push_back(s);
      progress.update(static_cast<int64_t>(summaries.size()));
    }
    progress.finish();
    if (request.hungarian && n_main >= 3) {
      std::vector<int64_t> sizes;
      for (size_t i = 0; i < n_main; ++i) sizes.push_back(headers[i].n_latents);
      write_overlap(f, n_seed_overlap(sizes, matchings, request.shared_threshold),
                    std::vector<std::string>(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(n_main)),
                    request.shared_threshold, comm);
    }
    f.write_attr("/", "complete", true);  // last
  }
  pending.commit();

  std::string error;
  if (comm.is_root()) {
    try {
      write_summary_csv((std::filesystem::path(out_dir) / "summary.csv").string(), summaries);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  parallel::agree_on_error(comm, error);
  return summaries;
}

void write_random_init_sae(const parallel::Comm& comm, const io::SaeHeader& like, uint64_t seed, const std::string& path) {
  io::SaeWeights w;
  w.header = like;
  w.header.path = path;
  w.header.seed = static_cast<int64_t>(seed);
  w.header.config = "";
  std::vector<float> rows(static_cast<size_t>(like.n_latents * like.d_in));
  core::normal_rows(rows.data(), like.n_latents, like.d_in, seed, core::kStreamSaeInit, /*unit=*/true);
  w.W_dec = at::from_blob(rows.data(), {like.n_latents, like.d_in}, at::kFloat).clone();
  w.W_enc = w.W_dec.clone();
  w.b_enc = at::zeros({like.n_latents}, at::kFloat);
  w.b_dec = at::zeros({like.d_in}, at::kFloat);
  if (like.architecture == "jumprelu") w.threshold = at::zeros({like.n_latents}, at::kFloat);
  if (like.architecture == "gated") w.r_mag = at::zeros({like.n_latents}, at::kFloat), w.b_mag = at::zeros({like.n_latents}, at::kFloat);
  w.string_attrs.push_back({"baseline", "random_init"});
  io::write_sae(comm, path, w);
}

CompareRequest request_from_config(const config::Config& cfg, std::vector<std::string> sae_paths,
                                   std::string out_path) {
  CompareRequest r;
  r.sae_paths = std::move(sae_paths);
  r.out_path = std::move(out_path);
  r.tiles = {cfg.compare.tile_rows, cfg.compare.tile_cols};
  r.hungarian = cfg.compare.hungarian;
  r.matching.candidates = cfg.compare.candidates;
  r.matching.deep_factor = cfg.compare.deep_factor;
  r.matching.tolerance = cfg.compare.certificate_tolerance;
  r.shared_threshold = cfg.compare.shared_threshold;
  r.repsim = cfg.compare.repsim;
  r.repsim_options.permutations = cfg.compare.permutations;
  r.repsim_options.max_pairs = cfg.compare.repsim_max_pairs;
  r.repsim_options.svcca = {cfg.compare.svcca_variance, cfg.compare.svcca_dims, cfg.compare.compat == "lan2024"};
  r.repsim_options.knn_k = cfg.compare.knn_k;
  r.repsim_options.seed = static_cast<uint64_t>(cfg.compare.seed);
  const auto& c = cfg.compare;
  r.activations.source = c.activations;
  r.activations.hookpoint = cfg.data.hookpoint;
  r.activations.tokens = c.activation_tokens;
  r.activations.input = c.correlation_input;
  r.activations.chunk_tokens = c.chunk_tokens;
  r.activations.mapping = c.activation_mapping;
  r.activations.lan2024 = c.compat == "lan2024";
  r.activations.concepts = c.concepts;
  r.activations.synthetic = cfg.data.synthetic;
  r.baseline_random = c.baseline_random;
  r.baselines = c.baselines;
  r.seed = static_cast<uint64_t>(c.seed);
  r.config_toml = config::to_toml(cfg);
  r.fingerprint = config::to_toml(cfg, {"compare", "data"});
  return r;
}

std::vector<PairSummary> read_pair_summaries(const parallel::Comm& comm, const std::string& results_path) {
  io::File f = io::File::open_read(comm, results_path);
  std::vector<PairSummary> out;
  if (!f.exists("/pairs")) return out;
  for (const auto& pair : f.children("/pairs")) {
    const std::string g = "/pairs/" + pair;
    PairSummary s{f.read_attr_string(g, "a"), f.read_attr_string(g, "b")};
    s.decoder_mcs_ab = f.read_attr_double(g + "/decoder", "mcs_ab");
    s.decoder_mcs_ba = f.read_attr_double(g + "/decoder", "mcs_ba");
    s.encoder_mcs_ab = f.read_attr_double(g + "/encoder", "mcs_ab");
    s.encoder_mcs_ba = f.read_attr_double(g + "/encoder", "mcs_ba");
    if (f.exists(g + "/lap")) {
      s.has_lap = true;
      s.mean_cos_decoder = f.read_attr_double(g + "/lap", "mean_cos_decoder");
      s.mean_cos_encoder = f.read_attr_double(g + "/lap", "mean_cos_encoder");
      s.shared_fraction = f.read_attr_double(g + "/lap", "shared_fraction");
      s.equal_fraction = f.read_attr_double(g + "/lap", "equal_fraction");
      s.certified = f.read_attr_bool(g + "/lap", "certified");
    }
    for (const char* metric : {"svcca", "rsa", "cka", "mutual_knn"})
      if (f.exists(g + "/" + metric))
        s.repsim.push_back({metric, {f.read_attr_double(g + "/" + metric, "score"), f.read_attr_double(g + "/" + metric, "p_value")}});
    s.baseline = f.has_attr(g, "baseline") && f.read_attr_bool(g, "baseline");
    const std::string act = g + "/activation";
    if (f.exists(act)) {
      s.has_activation = true;
      s.mean_max_corr_ab = f.read_attr_double(act, "mean_max_corr_ab");
      s.mean_max_corr_ba = f.read_attr_double(act, "mean_max_corr_ba");
      s.activation_pairs = f.read_attr_int(act + "/paired", "n_pairs");
      for (const char* metric : {"svcca", "rsa", "cka", "mutual_knn"})
        if (f.exists(act + "/" + metric))
          s.activation_repsim.push_back(
              {metric, {f.read_attr_double(act + "/" + metric, "score"), f.read_attr_double(act + "/" + metric, "p_value")}});
    }
    out.push_back(s);
  }
  // The order compare_saes computed them in: SAE pairs (i < j) in the SAEs' order, then baselines.
  // (Files written before `index` existed fall back to name order.)
  std::map<std::string, int64_t> index;
  const auto saes = f.exists("/saes") ? f.children("/saes") : std::vector<std::string>{};
  for (size_t i = 0; i < saes.size(); ++i)
    index[saes[i]] = f.has_attr("/saes/" + saes[i], "index") ? f.read_attr_int("/saes/" + saes[i], "index") : static_cast<int64_t>(i);
  std::stable_sort(out.begin(), out.end(), [&](const PairSummary& x, const PairSummary& y) {
    return std::make_tuple(x.baseline, index[x.a], index[x.b]) < std::make_tuple(y.baseline, index[y.a], index[y.b]);
  });
  return out;
}

std::vector<PairSummary> run_compare_stage(const parallel::Comm& comm, const config::Config& cfg,
                                           const std::vector<std::string>& default_saes, bool fresh,
                                           const std::vector<std::string>& names) {
  CompareRequest request = request_from_config(cfg, cfg.compare.saes.empty() ? default_saes : cfg.compare.saes,
                                               (std::filesystem::path(cfg.run.output_dir) / "results.h5").string());
  request.names = names;
  // Reuse a complete results file that is newer than every input and was made from the same inputs.
  bool reusable = !fresh && std::filesystem::exists(request.out_path);
  if (reusable) {
    io::File f = io::File::open_read(comm, request.out_path);
    reusable = f.has_attr("/", "complete") && f.read_attr_bool("/", "complete") && f.has_attr("/", "fingerprint") &&
               f.read_attr_string("/", "fingerprint") == request.fingerprint;
    if (reusable) {
      const auto made = std::filesystem::last_write_time(request.out_path);
      std::vector<std::string> stored;
      for (const auto& name : f.exists("/saes") ? f.children("/saes") : std::vector<std::string>{})
        if (!f.has_attr("/saes/" + name, "baseline") || !f.read_attr_bool("/saes/" + name, "baseline"))
          stored.push_back(f.read_attr_string("/saes/" + name, "path"));
      auto wanted = request.sae_paths;
      std::sort(stored.begin(), stored.end());
      std::sort(wanted.begin(), wanted.end());
      reusable = stored == wanted;
      for (const auto& p : request.sae_paths)
        reusable = reusable && std::filesystem::exists(p) && std::filesystem::last_write_time(p) <= made;
    }
  }
  if (reusable) {
    log::info("compare: reusing complete {} (same settings, newer than its SAE files; --fresh recomputes)",
              request.out_path);
    return read_pair_summaries(comm, request.out_path);
  }
  return compare_saes(comm, request);
}

}  // namespace universae::compare
