#include "compare/concepts.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "compare/activation_stats.hpp"
#include "core/error.hpp"
#include "core/version.hpp"

namespace universae::compare {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string strip(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\n\r") - b + 1);
}

}  // namespace

std::vector<ConceptCategory> load_concepts(const std::string& path_in) {
  const std::string path = path_in.empty() ? std::string(build::kSourceDir) + "/configs/concepts.toml" : path_in;
  toml::table doc;
  try {
    doc = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw UsageError(path + ": " + std::string(e.description()) + " (compare.concepts)");
  }
  const toml::table* categories = doc["categories"].as_table();
  if (!categories) throw UsageError(path + ": no [categories] table (compare.concepts)");
  std::vector<ConceptCategory> out;
  for (const auto& [key, value] : *categories) {
    ConceptCategory c{std::string(key.str()), {}};
    if (c.name.find('/') != std::string::npos)
      throw UsageError(path + ": categories." + c.name + ": a category name cannot contain '/'");
    const toml::array* words = value.as_array();
    if (!words) throw UsageError(path + ": categories." + c.name + " must be an array of strings");
    for (const auto& w : *words) {
      const auto s = w.value<std::string>();
      if (!s) throw UsageError(path + ": categories." + c.name + " must be an array of strings");
      c.keywords.push_back(lower(strip(*s)));
    }
    out.push_back(std::move(c));
  }
  return out;
}

bool is_non_concept(const std::string& token) {
  static const std::set<std::string> junk = {"", " ", "\n", "\\n", ".", ",", "!", "?", "-"};
  return junk.count(token) > 0;
}

bool is_control_piece(const std::string& piece) {
  static const std::set<std::string> control = {"<s>", "</s>", "<unk>", "<pad>", "<bos>", "<eos>",
                                                "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>"};
  return control.count(strip(piece)) > 0;
}

std::vector<std::vector<std::string>> latent_top_strings(const std::vector<int64_t>& top_tokens, int64_t count,
                                                         const std::vector<std::string>& vocab) {
  const size_t n = top_tokens.size() / static_cast<size_t>(count);
  std::vector<std::vector<std::string>> out(n);
  for (size_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < count; ++r) {
      const int64_t t = top_tokens[i * static_cast<size_t>(count) + static_cast<size_t>(r)];
      if (t >= 0) out[i].push_back(token_string(vocab, t));
    }
  return out;
}

std::vector<std::vector<int64_t>> latent_top_ids(const std::vector<int64_t>& top_tokens, int64_t count) {
  const size_t n = top_tokens.size() / static_cast<size_t>(count);
  std::vector<std::vector<int64_t>> out(n);
  for (size_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < count; ++r) {
      const int64_t t = top_tokens[i * static_cast<size_t>(count) + static_cast<size_t>(r)];
      if (t >= 0) out[i].push_back(t);
    }
  return out;
}

std::vector<int64_t> filter_non_concept(const core::Mapping& m, const std::vector<std::vector<int64_t>>& ia,
                                        const std::vector<std::vector<int64_t>>& ib,
                                        const std::vector<std::vector<std::string>>& sa,
                                        const std::vector<std::vector<std::string>>& sb, const std::vector<int64_t>& special) {
  auto control = [&](int64_t id) { return std::find(special.begin(), special.end(), id) != special.end(); };
  std::vector<int64_t> out;
  for (size_t e = 0; e < m.a.size(); ++e) {
    const auto a = static_cast<size_t>(m.a[e]), b = static_cast<size_t>(m.b[e]);
    const auto& x = sa[a];
    const auto& y = sb[b];
    const bool junk = std::any_of(x.begin(), x.end(), is_non_concept) || std::any_of(y.begin(), y.end(), is_non_concept) ||
                      std::any_of(ia[a].begin(), ia[a].end(), control) || std::any_of(ib[b].begin(), ib[b].end(), control);
    const bool share = std::any_of(x.begin(), x.end(), [&](const std::string& s) {
      return std::find(y.begin(), y.end(), s) != y.end();
    });
    if (!junk && share) out.push_back(static_cast<int64_t>(e));
  }
  return out;
}


}  // namespace universae::compare
