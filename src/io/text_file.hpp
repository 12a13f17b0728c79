// Small text inputs read whole, and the one way shapes are written in messages. (Text outputs are
// published with io::publish_text, io/output.hpp.)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace universae::io {

// The whole file; a UsageError naming `path` when it cannot be opened.
std::string read_text(const std::string& path);

// "[4096, 512]".
std::string shape_text(const std::vector<int64_t>& shape);

}  // namespace universae::io
