#include "compare/subspaces.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "core/sae_encode.hpp"

namespace universae::compare {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

// A token as its text reads: byte-fallback pieces decoded (token_string), sentencepiece's "▁" and
// byte-level BPE's "Ġ" as spaces, "Ċ" as a newline.
std::string token_text(const std::vector<std::string>& vocab, int64_t token) {
  std::string s = token_string(vocab, token);
  replace_all(s, "\xE2\x96\x81", " ");  // ▁
  replace_all(s, "\xC4\xA0", " ");      // Ġ
  replace_all(s, "\xC4\x8A", "\n");     // Ċ
  return s;
}

// Their escaping of a window's token: a newline becomes the two characters "\n".
std::string escaped(std::string s) {
  replace_all(s, "\n", "\\n");
  return s;
}

bool example_has(const std::string& keyword, int64_t top, const int64_t* window, bool lan_window, const std::vector<std::string>& vocab) {
  std::string top_text = escaped(token_text(vocab, top));
  top_text.erase(std::remove(top_text.begin(), top_text.end(), ' '), top_text.end());
  if (lower(top_text) != keyword) return false;
  std::string text;
  for (int w = 0; w < (lan_window ? 4 : 5); ++w)
    if (window[w] >= 0) text += escaped(token_text(vocab, window[w]));
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(' ', begin);
    if (end == std::string::npos) end = text.size();
    std::string word = text.substr(begin, end - begin);
    for (const char* junk : {".", ",", "?", "!", "\\n"}) replace_all(word, junk, "");
    if (lower(word) == keyword) return true;
    begin = end + 1;
  }
  return false;
}

// Σ over tokens of each column and of its square, and the cross products of each subset pair.
struct Moments {
  at::Tensor sum, sum2;
};

at::Tensor correlation_of(const at::Tensor& s, const Moments& a, const Moments& b, const at::Tensor& ia, const at::Tensor& ib,
                          double t) {
  auto stats = [&](const Moments& m, const at::Tensor& idx) {
    const at::Tensor sum = m.sum.index_select(0, idx), sum2 = m.sum2.index_select(0, idx);
    const at::Tensor mean = sum / t, var = sum2 / t - mean.square();
    // As dense_correlation: a variance at rounding level of the second moment is 0 (σ = 0 → corr 0).
    return std::make_pair(mean, at::where(var > 1e-15 * (sum2 / t), var.clamp_min(0).sqrt(), at::zeros_like(var)));
  };
  const auto [mean_a, sd_a] = stats(a, ia);
  const auto [mean_b, sd_b] = stats(b, ib);
  const at::Tensor denom = sd_a.unsqueeze(1) * sd_b.unsqueeze(0);
  return at::where(denom > 0, (s / t - mean_a.unsqueeze(1) * mean_b.unsqueeze(0)) / denom, at::zeros_like(s));
}

}  // namespace

std::vector<int64_t> keyword_latents(const std::vector<int64_t>& top_tokens, const std::vector<int64_t>& windows, int64_t count,
                                     const std::vector<std::string>& vocab, const ConceptCategory& category, bool lan_window) {
  std::vector<int64_t> out;
  const auto n = static_cast<int64_t>(top_tokens.size()) / count;
  for (int64_t i = 0; i < n; ++i) {
    bool member = false;
    for (int64_t r = 0; r < count && !member; ++r) {
      const size_t e = static_cast<size_t>(i * count + r);
      if (top_tokens[e] < 0) continue;
      for (const auto& keyword : category.keywords)
        if (example_has(keyword, top_tokens[e], &windows[e * 5], lan_window, vocab)) {
          member = true;
          break;
        }
    }
    if (member) out.push_back(i);
  }
  return out;
}

ColumnReader code_columns(const core::SparseCodes& codes) {
  return [&codes](int64_t first, int64_t count, const std::vector<int64_t>& latents) {
    std::vector<int64_t> column(static_cast<size_t>(codes.n_latents), -1);
    for (size_t c = 0; c < latents.size(); ++c) column[static_cast<size_t>(latents[c])] = static_cast<int64_t>(c);
    at::Tensor out = at::zeros({count, static_cast<int64_t>(latents.size())}, at::kFloat);
    float* o = out.data_ptr<float>();
    const auto& rows = codes.rows;
    for (int64_t t = 0; t < count; ++t)
      for (int64_t e = rows.offsets[static_cast<size_t>(first + t)]; e < rows.offsets[static_cast<size_t>(first + t + 1)]; ++e) {
        const int64_t c = column[static_cast<size_t>(rows.latents[static_cast<size_t>(e)])];
        if (c >= 0) o[t * static_cast<int64_t>(latents.size()) + c] = rows.values[static_cast<size_t>(e)];
      }
    return out;
  };
}

ColumnReader pre_columns(const core::SaeEncoderWeights& sae, const ActivationInput& input) {
  return [&sae, &input](int64_t first, int64_t count, const std::vector<int64_t>& latents) {
    const at::Tensor idx = at::tensor(latents, at::kLong);
    core::SaeEncoderWeights some = sae;  // the latents' rows: a latent's relu(pre) depends on its own rows only
    auto pick = [&](const at::Tensor& t) { return t.defined() ? t.index_select(0, idx) : t; };
    some.W_enc = pick(sae.W_enc), some.b_enc = pick(sae.b_enc), some.threshold = pick(sae.threshold);
    some.r_mag = pick(sae.r_mag), some.b_mag = pick(sae.b_mag);
    std::vector<float> buffer(static_cast<size_t>(count * input.d));
    input.read(first, count, buffer.data());
    return core::dense_pre(some, at::from_blob(buffer.data(), {count, input.d}, at::kFloat));
  };
}

std::vector<at::Tensor> subset_correlations(const ColumnReader& a, const ColumnReader& b, int64_t n_tokens,
                                            int64_t chunk_tokens, const std::vector<LatentSubsets>& subsets) {
  // Every latent any subset needs, read once per block; each subset picks its columns from those.
  std::set<int64_t> ua_set, ub_set;
  for (const auto& s : subsets) ua_set.insert(s.a.begin(), s.a.end()), ub_set.insert(s.b.begin(), s.b.end());
  const std::vector<int64_t> ua(ua_set.begin(), ua_set.end()), ub(ub_set.begin(), ub_set.end());
  auto positions = [](const std::vector<int64_t>& all, const std::vector<int64_t>& some) {
    std::vector<int64_t> p;
    for (int64_t x : some) p.push_back(std::lower_bound(all.begin(), all.end(), x) - all.begin());
    return at::tensor(p, at::kLong);
  };
  std::vector<at::Tensor> ia, ib, cross;
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  for (const auto& s : subsets) {
    ia.push_back(positions(ua, s.a)), ib.push_back(positions(ub, s.b));
    cross.push_back(at::zeros({static_cast<int64_t>(s.a.size()), static_cast<int64_t>(s.b.size())}, f64));
  }
  Moments ma{at::zeros({static_cast<int64_t>(ua.size())}, f64), at::zeros({static_cast<int64_t>(ua.size())}, f64)};
  Moments mb{at::zeros({static_cast<int64_t>(ub.size())}, f64), at::zeros({static_cast<int64_t>(ub.size())}, f64)};
  for (int64_t first = 0; first < n_tokens; first += chunk_tokens) {
    const int64_t count = std::min(chunk_tokens, n_tokens - first);
    const at::Tensor xa = a(first, count, ua).to(at::kDouble), xb = b(first, count, ub).to(at::kDouble);
    ma.sum += xa.sum(0), ma.sum2 += xa.square().sum(0);
    mb.sum += xb.sum(0), mb.sum2 += xb.square().sum(0);
    for (size_t k = 0; k < subsets.size(); ++k) cross[k].addmm_(xa.index_select(1, ia[k]).t(), xb.index_select(1, ib[k]));
  }
  std::vector<at::Tensor> out;
  for (size_t k = 0; k < subsets.size(); ++k)
    out.push_back(correlation_of(cross[k], ma, mb, ia[k], ib[k], static_cast<double>(n_tokens)));
  return out;
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> first_b_per_a(const LatentSubsets& subsets, const at::Tensor& corr) {
  const at::Tensor c = corr.contiguous();
  const double* p = c.data_ptr<double>();
  const auto na = static_cast<int64_t>(subsets.a.size()), nb = static_cast<int64_t>(subsets.b.size());
  std::vector<int64_t> pa, pb;
  std::set<int64_t> seen;
  for (int64_t j = 0; j < nb; ++j) {
    int64_t best = 0;
    for (int64_t i = 1; i < na; ++i)
      if (p[i * nb + j] > p[best * nb + j]) best = i;
    if (!seen.insert(best).second) continue;
    pa.push_back(subsets.a[static_cast<size_t>(best)]), pb.push_back(subsets.b[static_cast<size_t>(j)]);
  }
  return {pa, pb};
}

}  // namespace universae::compare
