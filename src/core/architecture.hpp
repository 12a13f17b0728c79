// The five SAE architectures of METHODS.md §1, as the config, the SAE file and the trainer name them.
#pragma once

#include <string>

#include "core/choice.hpp"

namespace universae::core {

enum class Architecture { kRelu, kTopK, kBatchTopK, kJumpRelu, kGated };

template <>
inline const Choices& choices<Architecture>() {
  static const Choices c{"an architecture", {"relu", "topk", "batchtopk", "jumprelu", "gated"}};
  return c;
}

inline const char* architecture_name(Architecture a) { return name_of(a).c_str(); }
// topk, batchtopk: k, AuxK and sparse codes.
inline bool has_top_k(Architecture a) { return a == Architecture::kTopK || a == Architecture::kBatchTopK; }

}  // namespace universae::core
