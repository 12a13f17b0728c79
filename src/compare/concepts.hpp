// Lan et al.'s token filters (METHODS.md §5): the non-concept filter on activation mappings and
// keyword categories for semantic subspaces (configs/concepts.toml).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/sparse_correlation.hpp"

namespace universae::compare {

struct ConceptCategory {
  std::string name;
  std::vector<std::string> keywords;  // lower-cased
};

// Reads [categories] name = ["keyword", ...]; a UsageError names the file and key on any problem.
// "" reads the built-in configs/concepts.toml of this source tree.
std::vector<ConceptCategory> load_concepts(const std::string& path);

// "", " ", "\n", "\\n", ".", ",", "!", "?", "-", and BOS / EOS / padding tokens.
bool is_non_concept(const std::string& token);

// Per latent, the strings of its top tokens (absent ones skipped).
std::vector<std::vector<std::string>> latent_top_strings(const std::vector<int64_t>& top_tokens, int64_t count,
                                                         const std::vector<std::string>& vocab);

// Indices into `m` of the pairs where neither latent has a non-concept top token and the two share one.
std::vector<int64_t> filter_non_concept(const core::Mapping& m, const std::vector<std::vector<std::string>>& strings_a,
                                 const std::vector<std::vector<std::string>>& strings_b);

// Of the pairs `among` (indices into `m`), those whose A latent has a top token (stripped,
// lower-cased) in `category`.
std::vector<int64_t> category_pairs(const core::Mapping& m, const std::vector<int64_t>& among,
                                    const std::vector<std::vector<std::string>>& strings_a,
                                    const ConceptCategory& category);

}  // namespace universae::compare
