// Running top-K lists over a stream of similarity blocks (METHODS.md §3-4). Values are kept in
// descending order; a value enters only if strictly greater than the current K-th, so among equal
// values the one offered first (the lower index, as blocks are scanned in increasing order) wins.
// With K = 1 this is max and lowest-index argmax. No MPI, no torch.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
  const float* kths() const { return kth_.data(); }  // kth(e) for every e, contiguous
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

// The K-th largest of the values offered to each of `count` lists (-inf until K were offered), as
// TopKLists::kth gives it, without the lists' order or indices: the bounds of a bfloat16 screen
// (ScreenedScan). A list's K values sit unsorted in one run of K floats: an offer replaces the least
// and finds the new least, where TopKLists shifts values and indices (3 arrays; with K = 16, 196 bytes a
// list against 68). At 32,768 latents a screened pass makes about 6M offers per rank.
class KthValues {
 public:
  KthValues(int64_t count, int64_t k)
      : k_(k),
        values_(static_cast<size_t>(count * k), -std::numeric_limits<float>::infinity()),
        kth_(static_cast<size_t>(count), -std::numeric_limits<float>::infinity()) {}

  int64_t count() const { return static_cast<int64_t>(kth_.size()); }
  float kth(int64_t e) const { return kth_[e]; }
  const float* kths() const { return kth_.data(); }  // kth(e) for every e, contiguous

  // A list's K values in no order, and its K-th set from them: for vector versions of offer().
  float* values(int64_t e) { return values_.data() + e * k_; }
  void set_kth(int64_t e, float kth) { kth_[e] = kth; }
  int64_t k() const { return k_; }

  void offer(int64_t e, float value) {
    if (!(value > kth_[e])) return;
    float* v = values_.data() + e * k_;
    int64_t least = 0;  // a slot holding the K-th value (finite or -inf, never NaN: NaN enters no list)
    while (!(v[least] == kth_[e])) ++least;
    v[least] = value;
    float kth = v[0];
    for (int64_t c = 1; c < k_; ++c) kth = v[c] < kth ? v[c] : kth;
    kth_[e] = kth;
  }

 private:
  int64_t k_;
  std::vector<float> values_;
  std::vector<float> kth_;
};

#if defined(__SSE2__)
// Whether any of 8 values (v0: columns c..c+3, v1: c+4..c+7) beats its row's bound or its column's
// (col_bound[0..7]); NaN beats nothing, as in TopKLists::offer. The block scans' test for skipping 8
// entries together.
inline bool any_beats(__m128 v0, __m128 v1, float row_bound, const float* col_bound) {
  const __m128 rb = _mm_set1_ps(row_bound);
  const __m128 beats = _mm_or_ps(_mm_or_ps(_mm_cmpgt_ps(v0, rb), _mm_cmpgt_ps(v0, _mm_loadu_ps(col_bound))),
                                 _mm_or_ps(_mm_cmpgt_ps(v1, rb), _mm_cmpgt_ps(v1, _mm_loadu_ps(col_bound + 4))));
  return _mm_movemask_ps(beats) != 0;
}
#endif

// Offers every entry of a row-major (tr × tc) similarity block: entry (r, c) is pair
// (row0 + r, col0 + c). `rows` is indexed by r + local_row0 and records global column indices;
// `cols` is indexed by the global column and records global row indices.
//
// Once the lists fill, almost no entry beats its row's or its column's K-th best (K = 16 of 32,768
// columns), so 8 entries at a time are compared with both bounds in SSE registers and skipped together
// when none beats either; the others go through the scalar offers in the same order, so the lists are
// the same. The scalar scan was about half of the similarity pass at 32,768 latents (bench/RESULTS.md).
inline void offer_block(const float* s, int64_t tr, int64_t tc, int64_t row0, int64_t local_row0, int64_t col0,
                        TopKLists& rows, TopKLists& cols) {
  const float* col_bound = cols.kths() + col0;  // updated in place as the columns' lists change
  for (int64_t r = 0; r < tr; ++r) {
    const float* line = s + r * tc;
    const int64_t e = local_row0 + r;
    float row_bound = rows.kth(e);
    auto offer = [&](int64_t c) {
      const float v = line[c];
      if (v > row_bound) {
        rows.offer(e, v, col0 + c);
        row_bound = rows.kth(e);
      }
      if (v > col_bound[c]) cols.offer(col0 + c, v, row0 + r);
    };
    int64_t c = 0;
#if defined(__SSE2__)
    for (; c + 8 <= tc; c += 8) {
      if (!any_beats(_mm_loadu_ps(line + c), _mm_loadu_ps(line + c + 4), row_bound, col_bound + c)) continue;
      for (int64_t u = c; u < c + 8; ++u) offer(u);
    }
#endif
    for (; c < tc; ++c) offer(c);
  }
}

}  // namespace universae::core
