// N-seed overlap (METHODS.md §4, Paulo & Belrose): for an ensemble of S SAEs and each base SAE,
// how many of the other S-1 SAEs each base latent is shared with (its Hungarian-matched decoder and
// encoder cosines both above τ), and the fraction of base latents shared with none of the first m
// others, m = 1 .. S-1, averaged over the choice of base. No MPI: it reads finished matchings.
#pragma once

#include <cstdint>
#include <vector>

#include "compare/matching.hpp"

namespace universae::compare {

// The decoder and encoder matchings of one pair (a < b in ensemble order), from a's side.
struct PairMatching {
  int64_t a = 0, b = 0;
  Matching decoder, encoder;
};

struct Overlap {
  int64_t n_saes = 0;
  std::vector<std::vector<int64_t>> histogram;  // [base][m]: latents shared with exactly m others
  std::vector<double> histogram_mean;           // [m]: fraction of latents, averaged over bases
  std::vector<double> unique_fraction;          // [m-1]: shared with none of the first m others
  std::vector<std::vector<int64_t>> shared_count;  // [base][latent]: how many others it is shared with
};

// Per latent of one side of a pair (0: a, 1: b): shared = its decoder and its encoder match both have
// cosine above tau (each matching on its own, as the shared fraction).
std::vector<char> shared_latents(const PairMatching& pair, int side, int64_t n_side, double tau);

// n_latents[s] for every SAE; pairs must cover every a < b.
Overlap n_seed_overlap(const std::vector<int64_t>& n_latents, const std::vector<PairMatching>& pairs, double tau);

}  // namespace universae::compare
