// Running top-K lists over a stream of similarity blocks (METHODS.md §3-4). Values are kept in
// descending order; a value enters only if strictly greater than the current K-th, so among equal
// values the one offered first (the lower index, as blocks are scanned in increasing order) wins.
// With K = 1 this is max and lowest-index argmax. No MPI, no torch.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace universae::core {

class TopKLists {
 public:
  TopKLists(int64_t count, int64_t k)
      : k_(k),
        values_(static_cast<size_t>(count * k), -std::numeric_limits<float>::infinity()),
        indices_(static_cast<size_t>(count * k), -1),
        kth_(static_cast<size_t>(count), -std::numeric_limits<float>::infinity()) {}

  int64_t k() const { return k_; }
  int64_t count() const { return static_cast<int64_t>(kth_.size()); }
  // The K-th best value so far (-inf until K values were offered): the bound on everything else.
  float kth(int64_t e) const { return kth_[e]; }
  const float* values(int64_t e) const { return values_.data() + e * k_; }
  const int64_t* indices(int64_t e) const { return indices_.data() + e * k_; }
  const std::vector<float>& all_values() const { return values_; }
  const std::vector<int64_t>& all_indices() const { return indices_; }

  void offer(int64_t e, float value, int64_t index) {
    if (!(value > kth_[e])) return;
    float* v = values_.data() + e * k_;
    int64_t* ix = indices_.data() + e * k_;
    int64_t pos = k_ - 1;
    while (pos > 0 && value > v[pos - 1]) {  // strictly greater: equal values keep their order
      v[pos] = v[pos - 1];
      ix[pos] = ix[pos - 1];
      --pos;
    }
    v[pos] = value;
    ix[pos] = index;
    kth_[e] = v[k_ - 1];
  }

 private:
  int64_t k_;
  std::vector<float> values_;
  std::vector<int64_t> indices_;
  std::vector<float> kth_;
};

// Offers every entry of a row-major (tr × tc) similarity block: entry (r, c) is pair
// (row0 + r, col0 + c). `rows` is indexed by r + local_row0 and records global column indices;
// `cols` is indexed by the global column and records global row indices.
inline void offer_block(const float* s, int64_t tr, int64_t tc, int64_t row0, int64_t local_row0, int64_t col0,
                        TopKLists& rows, TopKLists& cols) {
  for (int64_t r = 0; r < tr; ++r) {
    const float* line = s + r * tc;
    const int64_t e = local_row0 + r;
    float row_bound = rows.kth(e);
    for (int64_t c = 0; c < tc; ++c) {
      const float v = line[c];
      if (v > row_bound) {
        rows.offer(e, v, col0 + c);
        row_bound = rows.kth(e);
      }
      if (v > cols.kth(col0 + c)) cols.offer(col0 + c, v, row0 + r);
    }
  }
}

}  // namespace universae::core
