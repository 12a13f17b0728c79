// `universae inspect FILE`: a human summary of any file universae reads or writes.
#pragma once

#include <string>

#include "parallel/comm.hpp"

namespace universae::io {

// Collective (every rank opens the file); the text is meant for rank 0 to print.
std::string describe_file(const parallel::Comm& comm, const std::string& path);

}  // namespace universae::io
