#include "lm/documents.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"

namespace universae::lm {
namespace {

std::string strip(const std::string& s) {
  const char* space = " \t\r\n\f\v";
  const size_t begin = s.find_first_not_of(space);
  if (begin == std::string::npos) return {};
  return s.substr(begin, s.find_last_not_of(space) - begin + 1);
}

void add(std::vector<std::string>& docs, const std::string& text) {
  std::string doc = strip(text);
  if (!doc.empty()) docs.push_back(std::move(doc));
}

}  // namespace

std::string detect_format(const std::string& path, const std::string& content) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".jsonl" || ext == ".json") return "jsonl";
  if (content.find("<|endoftext|>") != std::string::npos) return "endoftext";
  return "text";
}

std::vector<std::string> split_documents(const std::string& content, const std::string& format, const std::string& path) {
  std::vector<std::string> docs;
  if (format == "endoftext") {
    const std::string sep = "<|endoftext|>";
    size_t begin = 0;
    for (size_t at; (at = content.find(sep, begin)) != std::string::npos; begin = at + sep.size()) add(docs, content.substr(begin, at - begin));
    add(docs, content.substr(begin));
    return docs;
  }
  std::istringstream lines(content);
  std::string line, doc;
  int64_t number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (format == "jsonl") {
      if (strip(line).empty()) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {  // parse errors, and numbers out of range (fuzz_documents)
        throw UsageError(path + ":" + std::to_string(number) + ": not valid JSON (" + e.what() + ")");
      }
      if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
        throw UsageError(path + ":" + std::to_string(number) + ": a JSONL input line needs a string field \"text\"");
      add(docs, j["text"].get<std::string>());
    } else if (strip(line).empty()) {  // text: a blank line ends a document
      add(docs, doc);
      doc.clear();
    } else {
      doc += doc.empty() ? line : "\n" + line;
    }
  }
  add(docs, doc);
  return docs;
}

std::vector<std::string> read_documents(const std::vector<std::string>& paths, const std::string& format) {
  std::vector<std::string> docs;
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!std::filesystem::is_regular_file(path) || !in) throw UsageError(path + ": input file not found (extract.inputs)");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    const std::string content = buffer.str();
    const auto part = split_documents(content, format == "auto" ? detect_format(path, content) : format, path);
    docs.insert(docs.end(), part.begin(), part.end());
  }
  return docs;
}

}  // namespace universae::lm
