// Token ids as text, for the summaries that show a store's tokens (`inspect`'s sample): a vocabulary
// piece with its byte-fallback form decoded, and bytes made safe to print on one line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace universae::io {

// The piece of `token` in `vocab`, a byte-fallback piece ("<0x0A>": two hex digits) as its one byte;
// "" for an id outside the vocabulary. (compare::token_string applies this rule too, checking less.)
std::string token_piece(const std::vector<std::string>& vocab, int64_t token);

// `bytes` between double quotes, as a C string literal reads: \\ \" \n \t \r, \xNN for every other
// control byte and for bytes that are not valid UTF-8; valid UTF-8 passes through.
std::string quoted_text(const std::string& bytes);

}  // namespace universae::io
