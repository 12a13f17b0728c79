// Small text files: outputs (CSV tables, job scripts, manifests) published atomically, as every output
// is (DESIGN.md §2): written to <path>.partial, then renamed, so no reader ever sees half a file; inputs
// read whole; and the one way shapes are written in messages.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace universae::io {

// False when the text could not be written (then `path` keeps whatever it held before).
// `executable` adds the execute bits (scripts).
[[nodiscard]] bool publish_text(const std::string& path, const std::string& text, bool executable = false);

// The whole file; a UsageError naming `path` when it cannot be opened.
std::string read_text(const std::string& path);

// "[4096, 512]".
std::string shape_text(const std::vector<int64_t>& shape);

}  // namespace universae::io
