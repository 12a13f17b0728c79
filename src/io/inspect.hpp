// `universae inspect FILE`: a human summary of any file universae reads or writes.
#pragma once

#include <string>

#include "parallel/comm.hpp"

namespace universae::io {

// What it shows per kind (activation store, SAE file or sparsify/SAELens directory, results file,
// training checkpoint, any other HDF5 file): docs/file-formats.md#inspect. It reads a store only where
// it shows it (the offsets' ends, the sample's tokens) and checks what it reads before it indexes with it.
//
// Collective (every rank opens the file); the text is meant for rank 0 to print. A damaged or odd
// file is a UsageError naming it, reached by every rank alike (they read the same file).
std::string describe_file(const parallel::Comm& comm, const std::string& path);

}  // namespace universae::io
