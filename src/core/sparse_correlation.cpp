#include "core/sparse_correlation.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace universae::core {

LatentMoments moments(const SparseCodes& codes) {
  const auto n = static_cast<size_t>(codes.n_latents);
  std::vector<double> sum(n, 0.0), sum2(n, 0.0);
  const auto& r = codes.rows;
  for (size_t e = 0; e < r.latents.size(); ++e) {
    const double v = r.values[e];
    sum[static_cast<size_t>(r.latents[e])] += v;
    sum2[static_cast<size_t>(r.latents[e])] += v * v;
  }
  LatentMoments m{std::vector<double>(n), std::vector<double>(n)};
  const auto t = static_cast<double>(codes.n_tokens);
  for (size_t i = 0; i < n; ++i) {
    m.mean[i] = sum[i] / t;
    const double var = sum2[i] / t - m.mean[i] * m.mean[i];
    // A latent that is constant over the tokens (never fires, or the same value everywhere) has σ = 0.
    m.sd[i] = var > 1e-300 && var > 1e-15 * (sum2[i] / t) ? std::sqrt(var) : 0.0;
  }
  return m;
}

LatentColumns latent_columns(const SparseCodes& codes) {
  const auto& r = codes.rows;
  LatentColumns c;
  c.offsets.assign(static_cast<size_t>(codes.n_latents) + 1, 0);
  for (int32_t l : r.latents) ++c.offsets[static_cast<size_t>(l) + 1];
  std::partial_sum(c.offsets.begin(), c.offsets.end(), c.offsets.begin());
  c.tokens.resize(r.latents.size());
  c.values.resize(r.latents.size());
  std::vector<int64_t> fill(c.offsets.begin(), c.offsets.end() - 1);
  for (int64_t t = 0; t < codes.n_tokens; ++t) {
    for (int64_t e = r.offsets[static_cast<size_t>(t)]; e < r.offsets[static_cast<size_t>(t) + 1]; ++e) {
      const auto slot = static_cast<size_t>(fill[static_cast<size_t>(r.latents[static_cast<size_t>(e)])]++);
      c.tokens[slot] = t;
      c.values[slot] = r.values[static_cast<size_t>(e)];
    }
  }
  return c;
}

void correlation_row_maxima(const LatentColumns& a_cols, const LatentMoments& a, const SparseCodes& b,
                            const LatentMoments& bm, Range rows, double* max_out, int64_t* argmax_out) {
  const int64_t n_b = b.n_latents;
  const auto t_count = static_cast<double>(b.n_tokens);
  // B's latents with σ > 0 by r_j = μ_j / σ_j, both ways (ties: lower index first); σ = 0 ones apart.
  std::vector<int64_t> constant, by_ratio;
  std::vector<double> ratio(static_cast<size_t>(n_b), 0.0);
  for (int64_t j = 0; j < n_b; ++j) {
    const auto jj = static_cast<size_t>(j);
    if (bm.sd[jj] == 0.0) {
      constant.push_back(j);
    } else {
      ratio[jj] = bm.mean[jj] / bm.sd[jj];
      by_ratio.push_back(j);
    }
  }
  std::vector<int64_t> ascending = by_ratio, descending = by_ratio;
  std::stable_sort(ascending.begin(), ascending.end(),
                   [&](int64_t x, int64_t y) { return ratio[static_cast<size_t>(x)] < ratio[static_cast<size_t>(y)]; });
  std::stable_sort(descending.begin(), descending.end(),
                   [&](int64_t x, int64_t y) { return ratio[static_cast<size_t>(x)] > ratio[static_cast<size_t>(y)]; });

  std::vector<double> acc(static_cast<size_t>(n_b), 0.0);
  std::vector<int64_t> stamp(static_cast<size_t>(n_b), -1);
  std::vector<int64_t> touched;
  const auto& br = b.rows;
  for (int64_t i = rows.begin; i < rows.end; ++i) {
    const auto ii = static_cast<size_t>(i);
    const size_t out = static_cast<size_t>(i - rows.begin);
    if (a.sd[ii] == 0.0) {  // every correlation of a constant latent is 0
      max_out[out] = 0.0;
      argmax_out[out] = 0;
      continue;
    }
    touched.clear();
    for (int64_t e = a_cols.offsets[ii]; e < a_cols.offsets[ii + 1]; ++e) {
      const double v = a_cols.values[static_cast<size_t>(e)];
      const auto t = static_cast<size_t>(a_cols.tokens[static_cast<size_t>(e)]);
      for (int64_t f = br.offsets[t]; f < br.offsets[t + 1]; ++f) {
        const auto j = static_cast<size_t>(br.latents[static_cast<size_t>(f)]);
        if (stamp[j] != i) stamp[j] = i, acc[j] = 0.0, touched.push_back(static_cast<int64_t>(j));
        acc[j] += v * static_cast<double>(br.values[static_cast<size_t>(f)]);
      }
    }
    const double mu = a.mean[ii], sd = a.sd[ii];
    double best = -std::numeric_limits<double>::infinity();
    int64_t best_j = n_b;
    auto offer = [&](int64_t j, double s) {
      const auto jj = static_cast<size_t>(j);
      const double c = bm.sd[jj] == 0.0 ? 0.0 : (s / t_count - mu * bm.mean[jj]) / (sd * bm.sd[jj]);
      if (c > best || (c == best && j < best_j)) best = c, best_j = j;
    };
    for (int64_t j : touched) offer(j, acc[static_cast<size_t>(j)]);
    // The best pair that never co-fires: corr = −(μ_i/σ_i)·r_j, largest at the smallest r_j when
    // μ_i > 0 (the usual case), the largest r_j when μ_i < 0, and 0 for every j when μ_i = 0.
    auto first_untouched = [&](const std::vector<int64_t>& order) {
      for (int64_t j : order)
        if (stamp[static_cast<size_t>(j)] != i) return offer(j, 0.0);
    };
    first_untouched(constant);
    if (mu > 0) first_untouched(ascending);
    if (mu < 0) first_untouched(descending);
    if (mu == 0)
      for (int64_t j = 0; j < n_b; ++j)
        if (stamp[static_cast<size_t>(j)] != i) {
          offer(j, 0.0);
          break;
        }
    max_out[out] = best;
    argmax_out[out] = best_j;
  }
}

TopExamples top_examples(const SparseCodes& codes, int64_t count) {
  TopExamples top;
  top.count = count;
  const auto n = static_cast<size_t>(codes.n_latents), k = static_cast<size_t>(count);
  top.positions.assign(n * k, -1);
  top.values.assign(n * k, 0.0f);
  std::vector<size_t> filled(n, 0);
  const auto& r = codes.rows;
  for (int64_t t = 0; t < codes.n_tokens; ++t) {
    for (int64_t e = r.offsets[static_cast<size_t>(t)]; e < r.offsets[static_cast<size_t>(t) + 1]; ++e) {
      const auto l = static_cast<size_t>(r.latents[static_cast<size_t>(e)]);
      const float v = r.values[static_cast<size_t>(e)];
      if (v <= 0.0f) continue;  // fires means z > 0
      float* values = top.values.data() + l * k;
      int64_t* positions = top.positions.data() + l * k;
      size_t& m = filled[l];
      // Tokens arrive in order, so a new entry goes after every kept value >= it (ties: earlier wins).
      size_t slot = m;
      while (slot > 0 && values[slot - 1] < v) --slot;
      if (slot >= k) continue;
      for (size_t s = std::min(m, k - 1); s > slot; --s) values[s] = values[s - 1], positions[s] = positions[s - 1];
      values[slot] = v;
      positions[slot] = t;
      m = std::min(m + 1, k);
    }
  }
  return top;
}

Mapping many_to_one(const std::vector<double>& max_ba, const std::vector<int64_t>& argmax_ba) {
  Mapping m;
  for (size_t j = 0; j < argmax_ba.size(); ++j)
    m.a.push_back(argmax_ba[j]), m.b.push_back(static_cast<int64_t>(j)), m.corr.push_back(max_ba[j]);
  return m;
}

Mapping one_to_one(const Mapping& many, bool first) {
  std::vector<size_t> order(many.a.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // By a, then the kept one first: the lowest b (first), or the highest corr, ties to the lower b.
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    if (many.a[x] != many.a[y]) return many.a[x] < many.a[y];
    if (!first && many.corr[x] != many.corr[y]) return many.corr[x] > many.corr[y];
    return many.b[x] < many.b[y];
  });
  Mapping m;
  for (size_t e : order) {
    if (!m.a.empty() && m.a.back() == many.a[e]) continue;
    m.a.push_back(many.a[e]), m.b.push_back(many.b[e]), m.corr.push_back(many.corr[e]);
  }
  return m;
}

Mapping mutual(const std::vector<double>& max_ab, const std::vector<int64_t>& argmax_ab,
               const std::vector<int64_t>& argmax_ba) {
  Mapping m;
  for (size_t i = 0; i < argmax_ab.size(); ++i) {
    const int64_t j = argmax_ab[i];
    if (j >= 0 && static_cast<size_t>(j) < argmax_ba.size() && argmax_ba[static_cast<size_t>(j)] == static_cast<int64_t>(i))
      m.a.push_back(static_cast<int64_t>(i)), m.b.push_back(j), m.corr.push_back(max_ab[i]);
  }
  return m;
}

}  // namespace universae::core
