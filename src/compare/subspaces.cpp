// Semantic subspaces (compare/subspaces.hpp): keyword membership from the stored top examples, the
// correlation of latent subsets in one streamed pass, and Lan et al.'s pairing of a subset pair.
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

// Whether the keyword is a whole word of the example's window (tokens decoded alone and concatenated,
// split on spaces, '.', ',', '?', '!' and escaped newlines removed).
bool whole_word(const std::string& keyword, const int64_t* window, bool lan_window, const std::vector<std::string>& vocab) {
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

// Σ over tokens of each column and of its square ([columns] float64 each).
struct Moments {
  at::Tensor sum, sum2;
};

constexpr int64_t kMaxCrossEntries = int64_t{1} << 24;  // cross products held at once (128 MiB of float64)
constexpr int64_t kMaxBlockEntries = int64_t{1} << 24;  // a block of columns: tokens × latents read at once

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
  const std::set<std::string> keywords(category.keywords.begin(), category.keywords.end());
  std::vector<int64_t> out;
  const auto n = static_cast<int64_t>(top_tokens.size()) / count;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < count; ++r) {
      const size_t e = static_cast<size_t>(i * count + r);
      if (top_tokens[e] < 0) continue;
      // The top token itself must be a keyword (spaces removed, lower-cased), and a whole word of its window.
      std::string top = escaped(token_text(vocab, top_tokens[e]));
      top.erase(std::remove(top.begin(), top.end(), ' '), top.end());
      top = lower(top);
      if (keywords.count(top) > 0 && whole_word(top, &windows[e * 5], lan_window, vocab)) {
        out.push_back(i);
        break;
      }
    }
  return out;
}

ColumnSource code_columns(const core::SparseCodes& codes) {
  return [&codes](const std::vector<int64_t>& latents) -> ColumnBlocks {
    auto column = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(codes.n_latents), -1);
    for (size_t c = 0; c < latents.size(); ++c) (*column)[static_cast<size_t>(latents[c])] = static_cast<int64_t>(c);
    const auto width = static_cast<int64_t>(latents.size());
    return [&codes, column, width](int64_t first, int64_t count) {
      at::Tensor out = at::zeros({count, width}, at::kFloat);  // [count, latents]
      float* o = out.data_ptr<float>();
      const auto& rows = codes.rows;
      for (int64_t t = 0; t < count; ++t)
        for (int64_t e = rows.offsets[static_cast<size_t>(first + t)]; e < rows.offsets[static_cast<size_t>(first + t + 1)]; ++e) {
          const int64_t c = (*column)[static_cast<size_t>(rows.latents[static_cast<size_t>(e)])];
          if (c >= 0) o[t * width + c] = rows.values[static_cast<size_t>(e)];
        }
      return out;
    };
  };
}

ColumnSource pre_columns(const core::SaeEncoderWeights& sae, const ActivationInput& input) {
  return [&sae, &input](const std::vector<int64_t>& latents) -> ColumnBlocks {
    // The latents' rows, picked once: a latent's relu(pre) depends on its own rows only.
    const at::Tensor idx = at::tensor(latents, at::kLong);
    auto some = std::make_shared<core::SaeEncoderWeights>(sae);
    auto pick = [&](const at::Tensor& t) { return t.defined() ? t.index_select(0, idx) : t; };
    some->W_enc = pick(sae.W_enc), some->b_enc = pick(sae.b_enc), some->threshold = pick(sae.threshold);
    some->r_mag = pick(sae.r_mag), some->b_mag = pick(sae.b_mag);
    return [&input, some](int64_t first, int64_t count) {
      std::vector<float> buffer(static_cast<size_t>(count * input.d));
      input.read(first, count, buffer.data());
      return core::dense_pre(*some, at::from_blob(buffer.data(), {count, input.d}, at::kFloat));  // [count, latents]
    };
  };
}

namespace {

// One pass over the tokens for a batch of subset pairs.
void correlate_batch(const ColumnSource& a, const ColumnSource& b, int64_t n_tokens, int64_t chunk_tokens,
                     const std::vector<LatentSubsets>& subsets, size_t begin, size_t end, std::vector<at::Tensor>& out) {
  // Every latent the batch needs, read once per block; each subset picks its columns from those.
  std::set<int64_t> ua_set, ub_set;
  for (size_t k = begin; k < end; ++k)
    ua_set.insert(subsets[k].a.begin(), subsets[k].a.end()), ub_set.insert(subsets[k].b.begin(), subsets[k].b.end());
  const std::vector<int64_t> ua(ua_set.begin(), ua_set.end()), ub(ub_set.begin(), ub_set.end());
  auto positions = [](const std::vector<int64_t>& all, const std::vector<int64_t>& some) {
    std::vector<int64_t> p;
    for (int64_t x : some) p.push_back(std::lower_bound(all.begin(), all.end(), x) - all.begin());
    return at::tensor(p, at::kLong);
  };
  std::vector<at::Tensor> ia, ib, cross;  // cross[k]: Σ_t a_S(t) b_S(t)ᵀ, [|a_k|, |b_k|] float64
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  for (size_t k = begin; k < end; ++k) {
    ia.push_back(positions(ua, subsets[k].a)), ib.push_back(positions(ub, subsets[k].b));
    cross.push_back(at::zeros({static_cast<int64_t>(subsets[k].a.size()), static_cast<int64_t>(subsets[k].b.size())}, f64));
  }
  const auto wa = static_cast<int64_t>(ua.size()), wb = static_cast<int64_t>(ub.size());
  Moments ma{at::zeros({wa}, f64), at::zeros({wa}, f64)}, mb{at::zeros({wb}, f64), at::zeros({wb}, f64)};
  const ColumnBlocks read_a = a(ua), read_b = b(ub);
  const int64_t block = std::max<int64_t>(1, std::min(chunk_tokens, kMaxBlockEntries / std::max<int64_t>(1, std::max(wa, wb))));
  for (int64_t first = 0; first < n_tokens; first += block) {
    const int64_t count = std::min(block, n_tokens - first);
    const at::Tensor xa = read_a(first, count).to(at::kDouble), xb = read_b(first, count).to(at::kDouble);  // [count, |u|]
    ma.sum += xa.sum(0), ma.sum2 += xa.square().sum(0);
    mb.sum += xb.sum(0), mb.sum2 += xb.square().sum(0);
    for (size_t k = 0; k < cross.size(); ++k) cross[k].addmm_(xa.index_select(1, ia[k]).t(), xb.index_select(1, ib[k]));
  }
  for (size_t k = 0; k < cross.size(); ++k)
    out[begin + k] = correlation_of(cross[k], ma, mb, ia[k], ib[k], static_cast<double>(n_tokens));
}

}  // namespace

std::vector<at::Tensor> subset_correlations(const ColumnSource& a, const ColumnSource& b, int64_t n_tokens,
                                            int64_t chunk_tokens, const std::vector<LatentSubsets>& subsets) {
  std::vector<at::Tensor> out(subsets.size());
  for (size_t begin = 0; begin < subsets.size();) {
    size_t end = begin;
    int64_t entries = 0;
    do {
      entries += static_cast<int64_t>(subsets[end].a.size() * subsets[end].b.size());
      ++end;
    } while (end < subsets.size() && entries + static_cast<int64_t>(subsets[end].a.size() * subsets[end].b.size()) <= kMaxCrossEntries);
    correlate_batch(a, b, n_tokens, chunk_tokens, subsets, begin, end, out);
    begin = end;
  }
  return out;
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> first_b_per_a(const LatentSubsets& subsets, const at::Tensor& corr) {
  const at::Tensor c = corr.contiguous();
  const double* p = c.data_ptr<double>();
  const auto na = static_cast<int64_t>(subsets.a.size()), nb = static_cast<int64_t>(subsets.b.size());
  std::vector<int64_t> pa, pb;
  if (na == 0 || nb == 0) return {pa, pb};
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
