// Text inputs for extraction, split into documents (each becomes its own forward pass from BOS):
// plain text with blank-line-separated documents, text with <|endoftext|> separators, or JSONL
// with a "text" field. Documents are stripped of surrounding whitespace; empty ones are skipped.
#pragma once

#include <string>
#include <vector>

namespace universae::lm {

// "auto" picks jsonl for .jsonl/.json files, endoftext when the text contains <|endoftext|>, else text.
std::string detect_format(const std::string& path, const std::string& content);

// Splits one file's content. A JSONL line that is not an object with a string "text" is a
// UsageError naming the file and line.
std::vector<std::string> split_documents(const std::string& content, const std::string& format, const std::string& path);

// Every input file's documents, in file order. A missing file is a UsageError naming it.
std::vector<std::string> read_documents(const std::vector<std::string>& paths, const std::string& format);

}  // namespace universae::lm
