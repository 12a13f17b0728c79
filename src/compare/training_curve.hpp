// Consistency over training (train.snapshot_every): the compared SAEs' snapshots, pair by pair at
// every snapshot step, with the same statistics as the final SAEs (max cosine; with compare.hungarian
// the certified matching and shared fraction). Paulo & Belrose's "pairwise dictionary mean correlation"
// is the matched mean decoder cosine; step 0 is the initialisations' own similarity.
//
// An SAE file <run>/saes/<stem>.h5 has its snapshots in <run>/snapshots/<stem>/tokens<T>.h5. The curves
// are written when every compared SAE (baselines aside) has snapshots at the same steps:
//   /training/tokens<T>/<a>--<b>/...   each step's pair groups, as below /pairs
//   /training/tokens [steps] int64     the snapshots' steps, then the final SAEs' train_tokens when later
//   /training/pairs [P] strings
//   /training/decoder_mcs, mean_cos_decoder, shared_fraction [P, steps] float64
//       decoder_mcs: the mean of both directions' max decoder cosine; the other two from the matching
//       (NaN without compare.hungarian)
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "io/h5.hpp"
#include "io/sae_header.hpp"
#include "parallel/comm.hpp"

namespace universae::compare {

// <run>/snapshots/<stem>/tokens<T>.h5 of an SAE file <run>/saes/<stem>.h5, by T ascending (empty: none).
std::vector<std::pair<int64_t, std::string>> find_snapshots(const std::string& sae_path);

// Collective. `headers[0, n_main)` are the compared SAEs, `names` their names in the results file; the
// final pairs /pairs/<a>--<b> must be written already (their values end each curve). Does nothing when
// the SAEs have no common snapshots.
void write_training_curves(const parallel::Comm& comm, const config::Config& config, io::File& file,
                           const std::vector<io::SaeHeader>& headers, const std::vector<std::string>& names, size_t n_main);

}  // namespace universae::compare
