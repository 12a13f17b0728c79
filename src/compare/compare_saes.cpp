#include "compare/compare_saes.hpp"

#include <ATen/Functions.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>

#include "compare/overlap.hpp"
#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/sae_file.hpp"
#include "parallel/log.hpp"

namespace universae::compare {
namespace {

template <typename T>
void write_replicated(io::File& f, const std::string& name, io::DType type, const std::vector<T>& values,
                      const parallel::Comm& comm) {
  const auto n = static_cast<int64_t>(values.size());
  f.create_dataset(name, type, {n});
  const core::Range mine = core::shard_range(n, comm.rank(), comm.size());
  f.write_rows(name, mine, values.data() + mine.begin);
}

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
std::vector<RepSimResult> paired_decoder_similarity(const parallel::Comm& comm, const io::SaeHeader& ha,
                                                    const io::SaeHeader& hb, const Matching& decoder,
                                                    const std::string& pair_name, const CompareRequest& request) {
  std::vector<int64_t> a_rows, b_rows;
  for (size_t i = 0; i < decoder.match_ab.size(); ++i)
    if (decoder.match_ab[i] >= 0) a_rows.push_back(static_cast<int64_t>(i)), b_rows.push_back(decoder.match_ab[i]);
  const at::Tensor wa = io::read_sae_rows(comm, ha.path, "W_dec", {0, ha.n_latents});
  const at::Tensor wb = io::read_sae_rows(comm, hb.path, "W_dec", {0, hb.n_latents});
  return paired_similarity(comm, wa.index_select(0, at::tensor(a_rows, at::kLong)),
                           wb.index_select(0, at::tensor(b_rows, at::kLong)), pair_name, request.repsim_options);
}

// /pairs/<a>--<b>/<metric>: score, null statistics, p-value, seed; the null itself.
void write_repsim(io::File& f, const std::string& pair, const std::vector<RepSimResult>& results, PairSummary& s,
                  const parallel::Comm& comm) {
  for (const auto& r : results) {
    const std::string g = pair + "/" + r.metric;
    f.create_group(g);
    f.write_attr(g, "score", r.score);
    f.write_attr(g, "null_mean", r.null_mean);
    f.write_attr(g, "null_std", r.null_std);
    f.write_attr(g, "p_value", r.p_value);
    f.write_attr(g, "permutations", static_cast<int64_t>(r.null.size()));
    f.write_attr(g, "n_pairs", r.n_pairs);
    f.write_attr(g, "seed", static_cast<int64_t>(r.seed));
    f.write_attr(g, "subsampled", r.subsampled);
    f.write_attr(g, "pairing", "hungarian_decoder");
    f.write_attr(g, "seconds", r.seconds);
    write_replicated(f, g + "/null", io::DType::kFloat64, r.null, comm);
    s.repsim.push_back({r.metric, {r.score, r.p_value}});
  }
}

void write_summary_csv(const std::string& path, const std::vector<PairSummary>& pairs) {
  const std::string temp = path + ".partial";
  {
    std::ofstream out(temp);
    out.precision(9);
    out << "pair,a,b,decoder_mcs_ab,decoder_mcs_ba,encoder_mcs_ab,encoder_mcs_ba,"
           "mean_cos_decoder,mean_cos_encoder,shared_fraction,equal_fraction,certified,"
           "svcca,svcca_p,rsa,rsa_p,cka,cka_p,mutual_knn,mutual_knn_p\n";
    for (const auto& p : pairs) {
      out << p.a << "--" << p.b << ',' << p.a << ',' << p.b << ',' << p.decoder_mcs_ab << ',' << p.decoder_mcs_ba
          << ',' << p.encoder_mcs_ab << ',' << p.encoder_mcs_ba;
      if (p.has_lap) {
        out << ',' << p.mean_cos_decoder << ',' << p.mean_cos_encoder << ',' << p.shared_fraction << ','
            << p.equal_fraction << ',' << (p.certified ? "true" : "false");
      } else {
        out << ",,,,,";
      }
      for (const char* metric : {"svcca", "rsa", "cka", "mutual_knn"}) {
        const auto it = std::find_if(p.repsim.begin(), p.repsim.end(), [&](const auto& m) { return m.first == metric; });
        if (it == p.repsim.end()) {
          out << ",,";
        } else {
          out << ',' << it->second.first << ',' << it->second.second;
        }
      }
      out << '\n';
    }
    if (!out) throw InternalError(temp + ": write failed");
  }
  std::filesystem::rename(temp, path);
}

}  // namespace

std::vector<std::string> sae_names(const std::vector<std::string>& paths) {
  std::vector<std::string> names;
  std::map<std::string, int> seen;
  for (const auto& p : paths) {
    std::string stem = std::filesystem::path(p).stem().string();
    const int count = seen[stem]++;
    names.push_back(count == 0 ? stem : stem + "_" + std::to_string(count));
  }
  return names;
}

std::vector<PairSummary> compare_saes(const parallel::Comm& comm, const CompareRequest& request) {
  if (request.sae_paths.size() < 2) throw UsageError("compare needs at least two SAE files (got " +
                                                     std::to_string(request.sae_paths.size()) + ")");
  std::vector<io::SaeHeader> headers;
  for (const auto& path : request.sae_paths) headers.push_back(io::read_sae_header(comm, path));
  for (const auto& h : headers)
    if (h.d_in != headers[0].d_in)
      throw UsageError(h.path + ": d_in " + std::to_string(h.d_in) + " differs from " + headers[0].path + " (" +
                       std::to_string(headers[0].d_in) + "); weight similarity needs one input space");
  const auto names = sae_names(request.sae_paths);

  io::ensure_directory(comm, std::filesystem::path(request.out_path).parent_path().string());
  std::vector<PairSummary> summaries;
  io::PendingFile pending(comm, request.out_path);
  {
    io::File f = io::File::create(comm, pending.temp_path());
    f.write_attr("/", "format", "universae-results");
    f.write_attr("/", "format_version", int64_t{1});
    f.write_attr("/", "config", request.config_toml);
    f.write_attr("/", "universae_version", UNIVERSAE_VERSION);
    f.write_attr("/", "git_sha", UNIVERSAE_GIT_SHA);
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
      if (h.has_frequency) {
        io::File sae = io::File::open_read(comm, h.path);
        std::vector<double> freq(static_cast<size_t>(h.n_latents));
        sae.read_rows("/frequency", {0, h.n_latents}, freq.data());
        write_replicated(f, g + "/frequency", io::DType::kFloat64, freq, comm);
      }
    }

    const size_t n_pairs = headers.size() * (headers.size() - 1) / 2;
    std::vector<PairMatching> matchings;  // for the N-seed overlap
    log::Progress progress("compare", static_cast<int64_t>(n_pairs), "pairs");
    for (size_t i = 0; i < headers.size(); ++i) {
      for (size_t j = i + 1; j < headers.size(); ++j) {
        const auto &ha = headers[i], &hb = headers[j];
        const std::string pair = "/pairs/" + names[i] + "--" + names[j];
        f.create_group(pair);
        f.write_attr(pair, "a", names[i]);
        f.write_attr(pair, "b", names[j]);
        PairSummary s{names[i], names[j]};
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
            write_repsim(f, pair, paired_decoder_similarity(comm, ha, hb, matched[0], names[i] + "--" + names[j], request), s,
                         comm);
          matchings.push_back({static_cast<int64_t>(i), static_cast<int64_t>(j), std::move(matched[0]), std::move(matched[1])});
        }
        summaries.push_back(s);
        progress.update(static_cast<int64_t>(summaries.size()));
      }
    }
    progress.finish();
    if (request.hungarian && headers.size() >= 3) {
      std::vector<int64_t> sizes;
      for (const auto& h : headers) sizes.push_back(h.n_latents);
      write_overlap(f, n_seed_overlap(sizes, matchings, request.shared_threshold), names, request.shared_threshold, comm);
    }
    f.write_attr("/", "complete", true);  // last
  }
  pending.commit();

  std::string error;
  if (comm.is_root()) {
    try {
      write_summary_csv((std::filesystem::path(request.out_path).parent_path() / "summary.csv").string(), summaries);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  parallel::agree_on_error(comm, error);
  return summaries;
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
  r.config_toml = config::to_toml(cfg);
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
    out.push_back(s);
  }
  return out;
}

std::vector<PairSummary> run_compare_stage(const parallel::Comm& comm, const config::Config& cfg,
                                           const std::vector<std::string>& default_saes, bool fresh) {
  CompareRequest request = request_from_config(cfg, cfg.compare.saes.empty() ? default_saes : cfg.compare.saes,
                                               (std::filesystem::path(cfg.run.output_dir) / "results.h5").string());
  // Reuse a complete results file that is newer than every input and was made from the same inputs.
  bool reusable = !fresh && std::filesystem::exists(request.out_path);
  if (reusable) {
    io::File f = io::File::open_read(comm, request.out_path);
    reusable = f.has_attr("/", "complete") && f.read_attr_bool("/", "complete");
    if (reusable) {
      const auto made = std::filesystem::last_write_time(request.out_path);
      std::vector<std::string> stored;
      for (const auto& name : f.exists("/saes") ? f.children("/saes") : std::vector<std::string>{})
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
    log::info("compare: reusing complete {} (newer than its SAE files; --fresh recomputes)", request.out_path);
    return read_pair_summaries(comm, request.out_path);
  }
  return compare_saes(comm, request);
}

}  // namespace universae::compare
