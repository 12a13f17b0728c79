// Max-cosine kernels on local tiles (METHODS.md §3). No MPI: compare/ distributes them.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace universae::core {

// Rows scaled to unit L2 norm (float32). A zero row stays zero, so its cosine with everything is 0;
// their number is returned in *zero_rows.
at::Tensor unit_rows(const at::Tensor& m, int64_t* zero_rows);

// One tile of A (unit rows, global rows a_row0 ..) against all of B (unit rows), B taken in
// blocks of tile_cols rows. Updates the tile's row maxima (row_max/row_arg, one per tile row) and
// the running column maxima over all tiles seen so far (col_max/col_arg, one per B row). Ties keep
// the lowest index: rows and columns are scanned in increasing order and only a strictly greater
// value replaces the best. Initialise maxima to -inf and indices to -1.
void max_cosine_tile(const at::Tensor& a_tile, int64_t a_row0, const at::Tensor& b, int64_t tile_cols,
                     float* row_max, int64_t* row_arg, float* col_max, int64_t* col_arg);

}  // namespace universae::core
