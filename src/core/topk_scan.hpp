// The similarity pass's running top-K lists (core/topk.hpp) as tensors on any device: the generic
// twin of TopKLists and offer_block. Each entry is one int64 key that orders exactly as TopKLists
// does, by value descending and then index ascending (a value enters a CPU list only when strictly
// greater, so among equal values the lower index, offered first, wins):
//
//   key = order32(value) · 2^32 + (2^32 − 1 − index),
//
// where order32 maps a float's bits to an int32 with the same order (negative floats have their
// magnitude bits flipped; −0 is first made +0, as the CPU's comparison does not tell them apart).
// A tile's candidates are the top-K of its keys; merging with the running lists is the top-K of both.
// Given the same similarity values, the lists equal the CPU's bit for bit (tested). No MPI, no host
// reads until to_host().
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "core/topk.hpp"

namespace universae::core {

class DeviceTopK {
 public:
  DeviceTopK(int64_t count, int64_t k, at::Device device);
  int64_t k() const { return k_; }
  // The lists as TopKLists (a copy to the host: the lists are results), empty slots (-inf, -1).
  TopKLists to_host() const;

  // Offers every entry of a (tr × tc) float32 similarity block, as core::offer_block does: entry (r, c)
  // is pair (row0 + r, col0 + c); `rows` is indexed by local_row0 + r and records global column
  // indices, `cols` by the global column and records global row indices.
  static void offer_block(const at::Tensor& s, int64_t row0, int64_t local_row0, int64_t col0, DeviceTopK& rows,
                          DeviceTopK& cols);
  // Offers the block to row lists only (entry (r, c): list local_row0 + r, index col0 + c). A −inf value
  // never enters (as on the CPU, where a value must be strictly greater than the empty list's −inf).
  void offer_rows(const at::Tensor& s, int64_t local_row0, int64_t col0);

 private:
  // Lists [first, first + keys.size(0)) merged with candidate keys (one row per list).
  void merge(int64_t first, const at::Tensor& candidates);

  int64_t k_;
  at::Tensor keys_;  // (count, k) int64, descending; INT64_MIN: empty
};

}  // namespace universae::core
