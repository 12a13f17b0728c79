// Small text outputs (CSV tables, job scripts, manifests) published atomically, as every output is
// (DESIGN.md §2): written to <path>.partial, then renamed, so no reader ever sees half a file.
#pragma once

#include <string>

namespace universae::io {

// False when the text could not be written (then `path` keeps whatever it held before).
// `executable` adds the execute bits (scripts).
[[nodiscard]] bool publish_text(const std::string& path, const std::string& text, bool executable = false);

}  // namespace universae::io
