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

// Text that carries no concept (Lan et al.'s list): "", " ", "\n", "\\n", ".", ",", "!", "?", "-".
bool is_non_concept(const std::string& token);
// A piece naming a control token once whitespace is stripped: <s>, </s>, <unk>, <pad>, <bos>, <eos>,
// <|endoftext|>, <|begin_of_text|>, <|end_of_text|> (llama2.c's BOS piece is "\n<s>\n").
bool is_control_piece(const std::string& piece);

// Per latent, the strings of its top tokens (absent ones skipped).
std::vector<std::vector<std::string>> latent_top_strings(const std::vector<int64_t>& top_tokens, int64_t count,
                                                         const std::vector<std::string>& vocab);
// Per latent, its top token ids (absent ones skipped).
std::vector<std::vector<int64_t>> latent_top_ids(const std::vector<int64_t>& top_tokens, int64_t count);

// Indices into `m` of the pairs where neither latent has a non-concept top token (a control token by
// id, or text without a concept) and the two share a top token string (METHODS.md §5).
std::vector<int64_t> filter_non_concept(const core::Mapping& m, const std::vector<std::vector<int64_t>>& ids_a,
                                        const std::vector<std::vector<int64_t>>& ids_b,
                                        const std::vector<std::vector<std::string>>& strings_a,
                                        const std::vector<std::vector<std::string>>& strings_b,
                                        const std::vector<int64_t>& special_ids);


}  // namespace universae::compare
