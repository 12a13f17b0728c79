#include "core/topk_scan.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace universae::core {
namespace {

constexpr int64_t kEmpty = std::numeric_limits<int64_t>::min();
constexpr int64_t kLow = int64_t{1} << 32;  // the index's field

// Keys of `values` (any shape, float32) with global indices `index` (broadcastable to it, int64).
at::Tensor keys_of(const at::Tensor& values, const at::Tensor& index) {
  const at::Tensor bits = values.add(0.0f).contiguous().view(at::kInt);  // + 0: −0 becomes +0
  const at::Tensor ordered = at::where(bits.lt(0), at::bitwise_xor(bits, 0x7FFFFFFF), bits);
  return ordered.to(at::kLong).mul_(kLow).add_(index.neg().add_(kLow - 1));
}

}  // namespace

DeviceTopK::DeviceTopK(int64_t count, int64_t k, at::Device device)
    : k_(k), keys_(at::full({count, k}, kEmpty, at::TensorOptions(device).dtype(at::kLong))) {}

void DeviceTopK::merge(int64_t first, const at::Tensor& candidates) {
  at::Tensor lists = keys_.narrow(0, first, candidates.size(0));
  const at::Tensor both = at::cat({lists, candidates}, 1);
  lists.copy_(std::get<0>(at::topk(both, k_, 1)));
}

void DeviceTopK::offer_block(const at::Tensor& s, int64_t row0, int64_t local_row0, int64_t col0, DeviceTopK& rows,
                             DeviceTopK& cols) {
  const int64_t tr = s.size(0), tc = s.size(1);
  const auto long_options = at::TensorOptions(s.device()).dtype(at::kLong);
  const at::Tensor by_col = keys_of(s, at::arange(col0, col0 + tc, long_options).unsqueeze(0));
  rows.merge(local_row0, std::get<0>(at::topk(by_col, std::min(rows.k_, tc), 1)));
  const at::Tensor by_row = keys_of(s, at::arange(row0, row0 + tr, long_options).unsqueeze(1));
  cols.merge(col0, std::get<0>(at::topk(by_row, std::min(cols.k_, tr), 0)).t());
}

void DeviceTopK::offer_rows(const at::Tensor& s, int64_t local_row0, int64_t col0) {
  const auto long_options = at::TensorOptions(s.device()).dtype(at::kLong);
  const at::Tensor by_col = keys_of(s, at::arange(col0, col0 + s.size(1), long_options).unsqueeze(0));
  merge(local_row0, std::get<0>(at::topk(by_col, std::min(k_, s.size(1)), 1)));
}

TopKLists DeviceTopK::to_host() const {
  const at::Tensor keys = keys_.to(at::kCPU).contiguous();
  const int64_t* key = keys.data_ptr<int64_t>();
  TopKLists out(keys_.size(0), k_);
  for (int64_t e = 0; e < keys_.size(0); ++e)
    for (int64_t c = 0; c < k_; ++c) {  // offered in descending key order: each lands at the end of its list
      const int64_t q = key[e * k_ + c];
      if (q == kEmpty) break;
      const auto high = static_cast<int32_t>(q >> 32);  // arithmetic: the order32 field
      const int32_t bits = high < 0 ? high ^ 0x7FFFFFFF : high;
      float value;
      std::memcpy(&value, &bits, sizeof(value));
      out.offer(e, value, (kLow - 1) - (q & (kLow - 1)));
    }
  return out;
}

}  // namespace universae::core
