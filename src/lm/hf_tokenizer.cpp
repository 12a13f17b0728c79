// tokenizer.json read into the four stages of Hugging Face's pipeline (normalizer, pre-tokenizer,
// BPE model, decoder) plus its added-token matcher, each a small class below that parses its JSON
// section and applies it. Each follows the tokenizers library's Rust code (named in comments where
// a detail is the library's and not obvious), so the ids agree byte for byte.
#include "lm/hf_tokenizer.hpp"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <queue>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/error.hpp"
#include "io/text_file.hpp"

namespace universae::lm {
namespace {

using Json = nlohmann::json;

// ---- Reading the JSON: every refusal names the file and the key -----------------------------------

std::string shown(const Json& value) {
  std::string text = value.is_string() ? "'" + value.get<std::string>() + "'" : value.dump();
  return text.size() > 200 ? text.substr(0, 200) + "..." : text;
}

[[noreturn]] void refuse(const std::string& file, const std::string& key, const Json& value, const std::string& supported) {
  throw UsageError(file + ": " + key + " " + shown(value) + " is not supported (" + supported + ")");
}

// object[name]; `key` is the object's own key ("" at the top level).
const Json& need(const Json& object, const char* name, const std::string& key, const std::string& file) {
  if (!object.is_object() || !object.contains(name)) throw UsageError(file + ": " + (key.empty() ? "" : key + ".") + name + " is missing");
  return object[name];
}

// object[name], null when absent.
const Json& optional(const Json& object, const char* name) {
  static const Json null;
  const auto it = object.find(name);
  return it == object.end() ? null : *it;
}

std::string need_string(const Json& object, const char* name, const std::string& key, const std::string& file) {
  const Json& value = need(object, name, key, file);
  if (!value.is_string()) throw UsageError(file + ": " + key + "." + name + " must be a string, not " + shown(value));
  return value.get<std::string>();
}

// A boolean option; absent or null means `fallback` (the library's default).
bool flag(const Json& object, const char* name, bool fallback) {
  const auto it = object.find(name);
  return it == object.end() || it->is_null() ? fallback : it->get<bool>();
}

// The string of a {"String": s} pattern (Replace); a regex pattern is refused.
std::string string_pattern(const Json& spec, const std::string& key, const std::string& file) {
  const Json& pattern = need(spec, "pattern", key, file);
  if (!pattern.contains("String") || !pattern["String"].is_string() || pattern["String"].get<std::string>().empty())
    refuse(file, key + ".pattern", pattern, "a non-empty {\"String\": ...} only");
  return pattern["String"].get<std::string>();
}

Json parse_json_file(const std::string& file) {
  try {
    return Json::parse(io::read_text(file));
  } catch (const Json::exception& e) {
    throw UsageError(file + ": not valid JSON (" + e.what() + ")");
  }
}

// ---- UTF-8 ------------------------------------------------------------------------------------------

size_t utf8_length(char lead) {
  const auto c = static_cast<unsigned char>(lead);
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

// The length of the well-formed UTF-8 sequence at text[i], or 0 with `bad` = the length of its
// maximal ill-formed subpart (what one U+FFFD replaces, the Unicode and Rust from_utf8_lossy rule).
size_t utf8_sequence(const std::string& text, size_t i, size_t& bad) {
  const auto c = static_cast<unsigned char>(text[i]);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, low = c == 0xE0 ? 0xA0 : 0x80, high = c == 0xED ? 0x9F : 0xBF;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, low = c == 0xF0 ? 0x90 : 0x80, high = c == 0xF4 ? 0x8F : 0xBF;
  } else {
    bad = 1;
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    const auto x = i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0;
    if (i + k >= text.size() || x < (k == 1 ? low : 0x80) || x > (k == 1 ? high : 0xBF)) {
      bad = k;
      return 0;
    }
  }
  return n;
}

bool is_valid_utf8(const std::string& text) {
  size_t bad = 0;
  for (size_t i = 0, n = 0; i < text.size(); i += n)
    if ((n = utf8_sequence(text, i, bad)) == 0) return false;
  return true;
}

// `text` with each maximal ill-formed subsequence replaced by U+FFFD.
std::string lossy_utf8(const std::string& text) {
  if (is_valid_utf8(text)) return text;
  std::string out;
  size_t bad = 0;
  for (size_t i = 0, n = 0; i < text.size(); i += n ? n : bad) {
    n = utf8_sequence(text, i, bad);
    if (n) out.append(text, i, n);
    if (!n) out += "\xEF\xBF\xBD";
  }
  return out;
}

// The start of the character before byte `pos` (> 0) of valid UTF-8.
size_t previous_char(const std::string& text, size_t pos) {
  do --pos;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80);
  return pos;
}

void append_utf8(std::string& out, uint32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6)), out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12)), out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18)), out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F)), out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// The code point at text[i] (valid UTF-8).
UChar32 code_point_at(const std::string& text, size_t i) {
  const auto b = [&](size_t k) { return static_cast<UChar32>(static_cast<unsigned char>(text[i + k])); };
  switch (utf8_length(text[i])) {
    case 1: return b(0);
    case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

// ---- GPT-2's byte-level alphabet: each byte as a printable code point (bytes_to_unicode) ------------

struct ByteAlphabet {
  std::array<std::string, 256> char_of_byte;  // UTF-8 of the code point standing for each byte
  std::array<int16_t, 324> byte_of_char;      // code point -> byte, -1 for the others
};

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet alphabet = [] {
    ByteAlphabet a;
    a.byte_of_char.fill(-1);
    uint32_t next_extra = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t c = printable ? b : next_extra++;
      append_utf8(a.char_of_byte[b], c);
      a.byte_of_char[c] = static_cast<int16_t>(b);
    }
    return a;
  }();
  return alphabet;
}

// ---- ICU ----------------------------------------------------------------------------------------------

void icu_check(UErrorCode status, const char* call) {
  if (U_FAILURE(status)) throw InternalError(std::string("ICU ") + call + " failed: " + u_errorName(status));
}

std::shared_ptr<const icu::RegexPattern> compile_regex(const std::string& pattern, const std::string& file, const std::string& key) {
  UErrorCode status = U_ZERO_ERROR;
  UParseError where{};
  std::shared_ptr<const icu::RegexPattern> regex(icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(pattern), where, status));
  if (U_FAILURE(status))
    throw UsageError(file + ": " + key + " '" + pattern + "' is not a regular expression ICU accepts (" + u_errorName(status) +
                     " at offset " + std::to_string(where.offset) + ")");
  return regex;
}

// Hugging Face's Split with behavior Isolated: each match and each gap between matches is a piece.
// ICU matches on UTF-16; a cursor walks the UTF-8 text alongside to turn match offsets into bytes.
void split_isolated(const icu::RegexPattern& regex, const std::string& text, std::vector<std::string>& out) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::UnicodeString utf16 = icu::UnicodeString::fromUTF8(text);
  std::unique_ptr<icu::RegexMatcher> matcher(regex.matcher(utf16, status));
  icu_check(status, "RegexPattern::matcher");
  // \s+(?!\S) backtracks over a whole whitespace run: the default 8 MB of backtracking stack
  // overflows on a run of about a million spaces; no limit lets it grow on the heap.
  matcher->setStackLimit(0, status);
  icu_check(status, "RegexMatcher::setStackLimit");
  int32_t unit = 0;  // UTF-16 offset of byte `byte`
  size_t byte = 0, done = 0;
  auto to_byte = [&](int32_t target) {
    for (; unit < target; byte += utf8_length(text[byte])) unit += utf8_length(text[byte]) == 4 ? 2 : 1;
    return byte;
  };
  while (matcher->find(status)) {
    const size_t start = to_byte(matcher->start(status));
    const size_t end = to_byte(matcher->end(status));
    if (start > done) out.push_back(text.substr(done, start - done));
    if (end > start) out.push_back(text.substr(start, end - start));
    done = end;
  }
  icu_check(status, "RegexMatcher::find");
  if (done < text.size()) out.push_back(text.substr(done));
}

// Rust regex's \w and \s (Unicode), which the tokenizers library uses around added tokens.
bool is_word_char(UChar32 c) {
  return u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL) ||
         (U_GET_GC_MASK(c) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}
bool is_space(UChar32 c) { return u_isUWhiteSpace(c) != 0; }

// ---- Normalizer ---------------------------------------------------------------------------------------

class Normalizer {
 public:
  Normalizer(const Json& spec, const std::string& file) { parse(spec, "normalizer", file); }

  std::string apply(std::string text) const {
    for (const Step& step : steps_) {
      if (step.unicode) {
        std::string out;
        icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(text.size()));
        UErrorCode status = U_ZERO_ERROR;
        step.unicode->normalizeUTF8(0, text, sink, nullptr, status);
        icu_check(status, "Normalizer2::normalizeUTF8");
        text = std::move(out);
      } else if (step.replace) {
        text = replace_all(text, step.pattern, step.content);
      } else if (!text.empty()) {  // Prepend: never to an empty piece
        text.insert(0, step.content);
      }
    }
    return text;
  }

  static std::string replace_all(const std::string& text, const std::string& pattern, const std::string& content) {
    std::string out;
    size_t done = 0;
    for (size_t at = text.find(pattern); at != std::string::npos; at = text.find(pattern, done)) {
      out.append(text, done, at - done).append(content);
      done = at + pattern.size();
    }
    return done == 0 ? text : out.append(text, done, std::string::npos);
  }

 private:
  struct Step {
    const icu::Normalizer2* unicode = nullptr;  // NFC, NFD, NFKC, NFKD
    bool replace = false;                       // else Prepend
    std::string pattern, content;
  };

  void parse(const Json& spec, const std::string& key, const std::string& file) {
    if (spec.is_null()) return;
    const std::string type = need_string(spec, "type", key, file);
    UErrorCode status = U_ZERO_ERROR;
    if (type == "Sequence") {
      const Json& list = need(spec, "normalizers", key, file);
      for (size_t i = 0; i < list.size(); ++i) parse(list[i], key + ".normalizers[" + std::to_string(i) + "]", file);
    } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
      const icu::Normalizer2* n = type == "NFC"   ? icu::Normalizer2::getNFCInstance(status)
                                  : type == "NFD"  ? icu::Normalizer2::getNFDInstance(status)
                                  : type == "NFKC" ? icu::Normalizer2::getNFKCInstance(status)
                                                   : icu::Normalizer2::getNFKDInstance(status);
      icu_check(status, "Normalizer2::getInstance");
      steps_.push_back({n, false, "", ""});
    } else if (type == "Prepend") {
      steps_.push_back({nullptr, false, "", need_string(spec, "prepend", key, file)});
    } else if (type == "Replace") {
      steps_.push_back({nullptr, true, string_pattern(spec, key, file), need_string(spec, "content", key, file)});
    } else {
      refuse(file, key + ".type", type, "NFC, NFD, NFKC, NFKD, Prepend, Replace, Sequence");
    }
  }

  std::vector<Step> steps_;
};

// ---- Metaspace: sentencepiece's "▁" for spaces ------------------------------------------------------

// The settings of the Metaspace pre-tokenizer and decoder (one struct in the library, metaspace.rs).
struct Metaspace {
  enum class Prepend { kAlways, kFirst, kNever };
  std::string replacement;  // one character, usually "▁"
  Prepend prepend = Prepend::kAlways;
  bool split = true;
};

// As the library deserializes it: prepend_scheme defaults to "always", split to true; files older
// than prepend_scheme say add_prefix_space instead, and the library refuses add_prefix_space false
// beside any scheme but "never" (beside none too, the default being "always").
Metaspace parse_metaspace(const Json& spec, const std::string& key, const std::string& file) {
  Metaspace m;
  m.replacement = need_string(spec, "replacement", key, file);
  if (m.replacement.empty() || !is_valid_utf8(m.replacement) || utf8_length(m.replacement[0]) != m.replacement.size())
    refuse(file, key + ".replacement", m.replacement, "one character only");
  const Json& scheme = optional(spec, "prepend_scheme");
  if (!scheme.is_null()) {
    const std::string name = scheme.is_string() ? scheme.get<std::string>() : "";
    if (name == "always") m.prepend = Metaspace::Prepend::kAlways;
    else if (name == "first") m.prepend = Metaspace::Prepend::kFirst;
    else if (name == "never") m.prepend = Metaspace::Prepend::kNever;
    else refuse(file, key + ".prepend_scheme", scheme, "'always', 'first' or 'never'");
  }
  if (!flag(spec, "add_prefix_space", true) && m.prepend != Metaspace::Prepend::kNever)
    refuse(file, key + ".add_prefix_space", false, "false only beside prepend_scheme 'never', as Hugging Face's tokenizers requires");
  m.split = flag(spec, "split", true);
  return m;
}

// The library's Metaspace pre-tokenizer on one word: each ' ' (U+0020 only) becomes the replacement;
// the replacement is prepended unless the word starts with it ("always"; "first": only to the word
// that begins the input text); with split, the word is cut before each replacement (MergedWithNext:
// "a▁▁b" gives "a", "▁", "▁b").
void apply_metaspace(const Metaspace& m, const std::string& word, bool at_text_start, std::vector<std::string>& out) {
  std::string text = Normalizer::replace_all(word, " ", m.replacement);
  const bool prepend = m.prepend == Metaspace::Prepend::kAlways || (m.prepend == Metaspace::Prepend::kFirst && at_text_start);
  if (prepend && text.compare(0, m.replacement.size(), m.replacement) != 0) text.insert(0, m.replacement);
  if (!m.split) return out.push_back(std::move(text));
  size_t start = 0;
  for (size_t at = text.find(m.replacement, 1); at != std::string::npos; at = text.find(m.replacement, at + 1)) {
    out.push_back(text.substr(start, at - start));
    start = at;
  }
  out.push_back(text.substr(start));
}

// ---- Pre-tokenizer ------------------------------------------------------------------------------------

class PreTokenizer {
 public:
  PreTokenizer(const Json& spec, const std::string& file) { parse(spec, "pre_tokenizer", file); }

  // The words of one normalized piece; empty words are dropped, as the library drops empty splits.
  // `at_text_start`: the piece begins the input text (the library: its original offset is 0), which
  // Metaspace's prepend_scheme "first" asks; of the words a step makes, only the first inherits it.
  std::vector<std::string> apply(const std::string& text, bool at_text_start) const {
    if (text.empty()) return {};
    std::vector<std::string> words{text}, next;
    for (const Step& step : steps_) {
      next.clear();
      for (size_t i = 0; i < words.size(); ++i) {
        std::string& word = words[i];
        if (step.kind == Step::kPrefixSpace && (word.empty() || word[0] != ' ')) word.insert(0, " ");
        if (step.kind == Step::kSplit) {
          split_isolated(*step.regex, word, next);
        } else if (step.kind == Step::kMetaspace) {
          apply_metaspace(step.metaspace, word, at_text_start && i == 0, next);
        } else if (step.kind == Step::kByteMap) {
          std::string mapped;
          for (char c : word) mapped += byte_alphabet().char_of_byte[static_cast<unsigned char>(c)];
          next.push_back(std::move(mapped));
        } else {
          next.push_back(std::move(word));
        }
      }
      words.swap(next);
    }
    words.erase(std::remove_if(words.begin(), words.end(), [](const std::string& w) { return w.empty(); }), words.end());
    return words;
  }

 private:
  struct Step {
    enum Kind { kSplit, kPrefixSpace, kByteMap, kMetaspace } kind;
    std::shared_ptr<const icu::RegexPattern> regex;
    Metaspace metaspace{};  // kMetaspace only
  };

  // GPT-2's pattern, which ByteLevel applies when use_regex is true (its default).
  static constexpr const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

  void parse(const Json& spec, const std::string& key, const std::string& file) {
    if (spec.is_null()) return;
    const std::string type = need_string(spec, "type", key, file);
    if (type == "Sequence") {
      const Json& list = need(spec, "pretokenizers", key, file);
      for (size_t i = 0; i < list.size(); ++i) parse(list[i], key + ".pretokenizers[" + std::to_string(i) + "]", file);
    } else if (type == "ByteLevel") {
      if (flag(spec, "add_prefix_space", true)) steps_.push_back({Step::kPrefixSpace, nullptr});
      if (flag(spec, "use_regex", true)) steps_.push_back({Step::kSplit, compile_regex(kGpt2Regex, file, key)});
      steps_.push_back({Step::kByteMap, nullptr});
    } else if (type == "Split") {
      const std::string behavior = need_string(spec, "behavior", key, file);
      if (behavior != "Isolated") refuse(file, key + ".behavior", behavior, "Isolated only");
      if (flag(spec, "invert", false)) refuse(file, key + ".invert", true, "false only");
      const Json& pattern = need(spec, "pattern", key, file);
      if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
        steps_.push_back({Step::kSplit, compile_regex(pattern["Regex"].get<std::string>(), file, key + ".pattern.Regex")});
      } else if (pattern.contains("String") && pattern["String"].is_string() && !pattern["String"].get<std::string>().empty()) {
        // A literal: ICU's \Q...\E quotes it (a literal \E inside cannot occur in these files).
        const std::string literal = "\\Q" + pattern["String"].get<std::string>() + "\\E";
        steps_.push_back({Step::kSplit, compile_regex(literal, file, key + ".pattern.String")});
      } else {
        refuse(file, key + ".pattern", pattern, "{\"Regex\": ...} or a non-empty {\"String\": ...}");
      }
    } else if (type == "Metaspace") {
      steps_.push_back({Step::kMetaspace, nullptr, parse_metaspace(spec, key, file)});
    } else {
      refuse(file, key + ".type", type, "ByteLevel, Split, Metaspace, Sequence");
    }
  }

  std::vector<Step> steps_;
};

// ---- Decoder ----------------------------------------------------------------------------------------

class Decoder {
 public:
  Decoder(const Json& spec, const std::string& file) : present_(!spec.is_null()) { parse(spec, "decoder", file); }

  std::string decode(std::vector<std::string> tokens) const {
    if (!present_) {  // the library joins the pieces with spaces
      std::string text;
      for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
      return text;
    }
    for (const Step& step : steps_) tokens = apply(step, std::move(tokens));
    std::string text;
    for (const std::string& t : tokens) text += t;
    return text;
  }

 private:
  struct Step {
    enum Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind;
    std::string pattern, content;
    size_t start = 0, stop = 0;
    Metaspace metaspace{};  // kMetaspace only
  };

  static std::vector<std::string> apply(const Step& step, std::vector<std::string> tokens) {
    switch (step.kind) {
      case Step::kByteLevel: return {byte_level(tokens)};
      case Step::kByteFallback: return byte_fallback(tokens);
      case Step::kFuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        return {all};
      }
      case Step::kReplace:
        for (std::string& t : tokens) t = Normalizer::replace_all(t, step.pattern, step.content);
        return tokens;
      case Step::kStrip:
        for (std::string& t : tokens) t = strip(t, step);
        return tokens;
      case Step::kMetaspace:
        // Each replacement becomes a space; in the first piece, unless the scheme is "never", each
        // vanishes instead (all of them, not only a leading one: the library's rule).
        for (size_t i = 0; i < tokens.size(); ++i) {
          const bool first = i == 0 && step.metaspace.prepend != Metaspace::Prepend::kNever;
          tokens[i] = Normalizer::replace_all(tokens[i], step.metaspace.replacement, first ? "" : " ");
        }
        return tokens;
    }
    return tokens;
  }

  // Each piece's characters back to bytes (a piece with a character outside the alphabet keeps its
  // own bytes), the whole decoded lossily as one string.
  static std::string byte_level(const std::vector<std::string>& tokens) {
    const ByteAlphabet& alphabet = byte_alphabet();
    std::string bytes;
    for (const std::string& t : tokens) {
      std::string mapped;
      for (size_t i = 0; i < t.size(); i += utf8_length(t[i])) {
        const UChar32 c = code_point_at(t, i);
        if (c >= static_cast<UChar32>(alphabet.byte_of_char.size()) || alphabet.byte_of_char[static_cast<size_t>(c)] < 0) {
          mapped = t;
          break;
        }
        mapped += static_cast<char>(alphabet.byte_of_char[static_cast<size_t>(c)]);
      }
      bytes += mapped;
    }
    return lossy_utf8(bytes);
  }

  // Runs of <0xXX> pieces become their bytes when those are valid UTF-8, else one U+FFFD per piece.
  static std::vector<std::string> byte_fallback(const std::vector<std::string>& tokens) {
    std::vector<std::string> out;
    std::string run;
    size_t run_pieces = 0;
    auto flush = [&] {
      if (run_pieces && is_valid_utf8(run)) out.push_back(run);
      if (run_pieces && !is_valid_utf8(run)) out.insert(out.end(), run_pieces, "\xEF\xBF\xBD");
      run.clear(), run_pieces = 0;
    };
    for (const std::string& t : tokens) {
      const bool hex = t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
                       std::isxdigit(static_cast<unsigned char>(t[4]));
      if (hex) {
        run += static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)), ++run_pieces;
      } else {
        flush();
        out.push_back(t);
      }
    }
    flush();
    return out;
  }

  // Up to `start` leading and `stop` trailing copies of the character `content`.
  static std::string strip(const std::string& t, const Step& step) {
    size_t begin = 0, end = t.size();
    for (size_t n = 0; n < step.start && t.compare(begin, step.content.size(), step.content) == 0 && begin < end; ++n)
      begin += step.content.size();
    for (size_t n = 0; n < step.stop && end - begin >= step.content.size() &&
                       t.compare(end - step.content.size(), step.content.size(), step.content) == 0;
         ++n)
      end -= step.content.size();
    return t.substr(begin, end - begin);
  }

  void parse(const Json& spec, const std::string& key, const std::string& file) {
    if (spec.is_null()) return;
    const std::string type = need_string(spec, "type", key, file);
    if (type == "Sequence") {
      const Json& list = need(spec, "decoders", key, file);
      for (size_t i = 0; i < list.size(); ++i) parse(list[i], key + ".decoders[" + std::to_string(i) + "]", file);
    } else if (type == "ByteLevel") {
      steps_.push_back({Step::kByteLevel, "", "", 0, 0});
    } else if (type == "ByteFallback") {
      steps_.push_back({Step::kByteFallback, "", "", 0, 0});
    } else if (type == "Fuse") {
      steps_.push_back({Step::kFuse, "", "", 0, 0});
    } else if (type == "Replace") {
      steps_.push_back({Step::kReplace, string_pattern(spec, key, file), need_string(spec, "content", key, file), 0, 0});
    } else if (type == "Strip") {
      steps_.push_back({Step::kStrip, "", need_string(spec, "content", key, file), need(spec, "start", key, file).get<size_t>(),
                        need(spec, "stop", key, file).get<size_t>()});
    } else if (type == "Metaspace") {
      steps_.push_back({Step::kMetaspace, "", "", 0, 0, parse_metaspace(spec, key, file)});
    } else {
      refuse(file, key + ".type", type, "ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence");
    }
  }

  bool present_ = false;
  std::vector<Step> steps_;
};

// ---- Added tokens -------------------------------------------------------------------------------------

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false;
  bool special = false;  // a control token (BOS, EOS, padding, ...), not text
};

// A piece of the input: text still to tokenize, or an added token already found (id >= 0).
struct Segment {
  std::string text;
  int32_t id = -1;
};

// Finds added tokens leftmost-longest, as the library's Aho-Corasick automaton (MatchKind::
// LeftmostLongest) does: the earliest start wins, then the longest token starting there.
class TokenTrie {
 public:
  TokenTrie() : nodes_(1) {}

  void add(const std::string& pattern, int32_t token) {
    if (pattern.empty()) return;
    int32_t node = 0;
    for (char c : pattern) {
      const auto b = static_cast<unsigned char>(c);
      int32_t child = find_child(node, b);
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_[static_cast<size_t>(node)].children.emplace_back(b, child);
        nodes_.emplace_back();
      }
      node = child;
    }
    if (nodes_[static_cast<size_t>(node)].token < 0) nodes_[static_cast<size_t>(node)].token = token;
    first_byte_[static_cast<unsigned char>(pattern[0])] = true;
  }

  // The next match at or after `from`: {start, length, token}; token -1 when there is none.
  std::tuple<size_t, size_t, int32_t> next_match(const std::string& text, size_t from) const {
    for (size_t start = from; start < text.size(); ++start) {
      if (!first_byte_[static_cast<unsigned char>(text[start])]) continue;
      size_t length = 0;
      int32_t token = -1;
      int32_t node = 0;
      for (size_t i = start; i < text.size() && node >= 0; ++i) {
        node = find_child(node, static_cast<unsigned char>(text[i]));
        if (node >= 0 && nodes_[static_cast<size_t>(node)].token >= 0) length = i + 1 - start, token = nodes_[static_cast<size_t>(node)].token;
      }
      if (token >= 0) return {start, length, token};
    }
    return {text.size(), 0, -1};
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t token = -1;  // index into the added tokens of the pattern ending here
  };
  int32_t find_child(int32_t node, unsigned char b) const {
    for (const auto& [byte, child] : nodes_[static_cast<size_t>(node)].children)
      if (byte == b) return child;
    return -1;
  }
  std::vector<Node> nodes_;
  std::array<bool, 256> first_byte_{};
};

class AddedTokens {
 public:
  AddedTokens(const Json& list, const Normalizer& normalizer, const std::unordered_map<std::string, int32_t>& vocab,
              const std::string& file) {
    if (list.is_null()) return;
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string key = "added_tokens[" + std::to_string(i) + "]";
      AddedToken t;
      t.content = need_string(list[i], "content", key, file);
      if (t.content.empty() || id_of_content_.count(t.content)) continue;  // the library skips these too
      t.id = assign_id(t.content, vocab);
      t.single_word = flag(list[i], "single_word", false), t.lstrip = flag(list[i], "lstrip", false);
      t.special = flag(list[i], "special", false);
      t.rstrip = flag(list[i], "rstrip", false), t.normalized = flag(list[i], "normalized", false);
      // A normalized token is looked for in normalized text, so its pattern is normalized too.
      if (t.normalized) normalized_.add(normalizer.apply(t.content), static_cast<int32_t>(tokens_.size()));
      if (!t.normalized) raw_.add(t.content, static_cast<int32_t>(tokens_.size()));
      tokens_.push_back(std::move(t));
    }
  }

  const std::vector<AddedToken>& tokens() const { return tokens_; }

  // The library does not take the ids the file gives (it only warns when they differ): a token that
  // is a vocabulary piece keeps that id; a new one gets the vocabulary's size, or one more than the
  // largest added id when that is already past it.
  int32_t assign_id(const std::string& content, const std::unordered_map<std::string, int32_t>& vocab) {
    const auto it = vocab.find(content);
    const auto vocab_size = static_cast<int32_t>(vocab.size());
    const int32_t id = it != vocab.end() ? it->second : largest_id_ >= vocab_size ? largest_id_ + 1 : vocab_size;
    largest_id_ = std::max(largest_id_, id);
    id_of_content_.emplace(content, id);
    return id;
  }

  // The id of an added token's content, if one has it.
  std::optional<int32_t> id_of(const std::string& content) const {
    const auto it = id_of_content_.find(content);
    return it == id_of_content_.end() ? std::nullopt : std::optional<int32_t>(it->second);
  }

  // Appends to `out` the pieces of `text` around the tokens with normalized == `normalized`
  // (the library's find_matches, with single_word, lstrip and rstrip).
  void split(const std::string& text, bool normalized, std::vector<Segment>& out) const {
    const TokenTrie& trie = normalized ? normalized_ : raw_;
    size_t done = 0;  // bytes already given out
    for (size_t from = 0;;) {
      auto [start, length, index] = trie.next_match(text, from);
      if (index < 0) break;
      const AddedToken& t = tokens_[static_cast<size_t>(index)];
      size_t stop = start + length;
      from = stop;  // the automaton resumes after each match, one the flags reject too
      if (t.single_word && !stands_alone(text, start, stop)) continue;
      if (t.lstrip) start = std::max(done, leading_space_start(text, start));
      if (t.rstrip) stop = trailing_space_end(text, stop);
      if (start > done) out.push_back({text.substr(done, start - done), -1});
      out.push_back({"", t.id});
      done = stop;
    }
    if (done < text.size()) out.push_back({text.substr(done), -1});
  }

 private:
  static bool stands_alone(const std::string& text, size_t start, size_t stop) {
    if (start > 0 && is_word_char(code_point_at(text, previous_char(text, start)))) return false;
    return stop == text.size() || !is_word_char(code_point_at(text, stop));
  }
  static size_t leading_space_start(const std::string& text, size_t start) {
    while (start > 0 && is_space(code_point_at(text, previous_char(text, start)))) start = previous_char(text, start);
    return start;
  }
  static size_t trailing_space_end(const std::string& text, size_t stop) {
    while (stop < text.size() && is_space(code_point_at(text, stop))) stop += utf8_length(text[stop]);
    return stop;
  }

  std::vector<AddedToken> tokens_;
  std::unordered_map<std::string, int32_t> id_of_content_;
  int32_t largest_id_ = -1;
  TokenTrie raw_, normalized_;
};

// ---- BPE ---------------------------------------------------------------------------------------------

struct MergeRule {
  int32_t rank;
  int32_t merged;
};

class Bpe {
 public:
  Bpe(const Json& model, const std::string& file) {
    read_options(model, file);
    read_vocab(need(model, "vocab", "model", file), file);
    read_merges(need(model, "merges", "model", file), file);
  }

  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }

  // Appends the ids of one pre-token word.
  void encode_word(const std::string& word, std::vector<int32_t>& ids) const {
    if (word.empty()) return;
    if (ignore_merges_) {  // a word that is a piece is that piece, whatever the merges would give
      const auto it = vocab_.find(word);
      if (it != vocab_.end()) return ids.push_back(it->second);
    }
    if (word.size() < kMaxCachedWord || ignore_merges_) return encode_part(word, ids);
    // A long word (Llama 2 has no pre-tokenizer: a whole text is one word) is cut where no merge can
    // join its two sides; the parts give the same ids as the whole, faster and cached.
    size_t start = 0;
    for (size_t i = 0, next = 0; i < word.size(); i = next) {
      next = i + utf8_length(word[i]);
      if (next < word.size() && unmergeable(word, i, next)) {
        encode_part(word.substr(start, next - start), ids);
        start = next;
      }
    }
    encode_part(word.substr(start), ids);
  }

 private:
  static constexpr size_t kMaxCachedWord = 256, kCacheCapacity = 1 << 18;

  // BPE of one word or part, through the cache.
  void encode_part(const std::string& word, std::vector<int32_t>& ids) const {
    const bool cacheable = word.size() < kMaxCachedWord;  // the library caches words under 256 bytes too
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      const auto it = cache_.find(word);
      if (it != cache_.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> symbols = initial_symbols(word);
    merge_all(symbols);
    ids.insert(ids.end(), symbols.begin(), symbols.end());
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (cache_.size() >= kCacheCapacity) cache_.clear();
      cache_.emplace(word, std::move(symbols));
    }
  }

  // Whether no merge can ever join the characters at `left` and `right` (adjacent): both are pieces
  // (so they start as symbols of their own, and every symbol later ending or starting there ends or
  // starts with them) and no merge's left piece ends, and right piece starts, with them.
  bool unmergeable(const std::string& word, size_t left, size_t right) const {
    const UChar32 a = code_point_at(word, left), b = code_point_at(word, right);
    return seams_.count(pair_key(a, b)) == 0 && vocab_.count(word.substr(left, right - left)) &&
           vocab_.count(word.substr(right, utf8_length(word[right])));
  }

  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }

  void read_options(const Json& model, const std::string& file);
  void read_vocab(const Json& vocab, const std::string& file);
  void read_merges(const Json& merges, const std::string& file);
  std::vector<int32_t> initial_symbols(const std::string& word) const;
  void merge_all(std::vector<int32_t>& symbols) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, MergeRule> merges_;  // (left id, right id) -> rank and merged id
  std::unordered_set<uint64_t> seams_;               // (last character of a merge's left piece, first of its right)
  std::array<int32_t, 256> byte_ids_{};              // <0xXX> pieces with byte_fallback, else -1
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int32_t unk_ = -1;
  std::string unk_piece_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

void Bpe::read_options(const Json& model, const std::string& file) {
  const std::string type = model.contains("type") ? need_string(model, "type", "model", file) : "BPE";
  if (type != "BPE") refuse(file, "model.type", type, "BPE only");
  const auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null() && dropout->get<double>() != 0.0)
    refuse(file, "model.dropout", *dropout, "null or 0 only: dropout makes encoding random");
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto it = model.find(affix);
    if (it != model.end() && !it->is_null() && !it->get<std::string>().empty()) refuse(file, std::string("model.") + affix, *it, "null or empty only");
  }
  byte_fallback_ = flag(model, "byte_fallback", false);
  fuse_unk_ = flag(model, "fuse_unk", false);
  ignore_merges_ = flag(model, "ignore_merges", false);
  const auto unk = model.find("unk_token");
  if (unk != model.end() && !unk->is_null()) unk_piece_ = unk->get<std::string>();
}

void Bpe::read_vocab(const Json& vocab, const std::string& file) {
  if (!vocab.is_object()) throw UsageError(file + ": model.vocab must be an object {piece: id}");
  vocab_.reserve(vocab.size());
  // Ids may leave gaps, but not so many that pieces() (indexed by id) would be huge for a small file.
  const int64_t id_bound = static_cast<int64_t>(vocab.size()) + (1 << 16);
  for (const auto& [piece, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= id_bound)
      throw UsageError(file + ": model.vocab['" + piece + "'] must be an integer id from 0 to " + std::to_string(id_bound - 1) +
                       " (the number of pieces + 65536), not " + shown(id));
    vocab_.emplace(piece, id.get<int32_t>());
  }
  if (!unk_piece_.empty()) {
    const auto it = vocab_.find(unk_piece_);
    if (it == vocab_.end()) throw UsageError(file + ": model.unk_token '" + unk_piece_ + "' is not in model.vocab");
    unk_ = it->second;
  }
  byte_ids_.fill(-1);
  char hex[8];
  for (int b = 0; byte_fallback_ && b < 256; ++b) {
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    const auto it = vocab_.find(hex);
    byte_ids_[static_cast<size_t>(b)] = it == vocab_.end() ? -1 : it->second;
  }
}

// Merges are "left right" strings or ["left", "right"] pairs; the rank is the position. A later
// duplicate replaces an earlier one, as the library's map does. Lines starting with '#' are merges
// like any other (Llama 3 has 233).
void Bpe::read_merges(const Json& merges, const std::string& file) {
  if (!merges.is_array()) throw UsageError(file + ": model.merges must be an array");
  merges_.reserve(merges.size());
  std::string left, right;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Json& m = merges[rank];
    const std::string key = "model.merges[" + std::to_string(rank) + "]";
    if (m.is_string()) {
      const std::string& line = m.get_ref<const std::string&>();
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
        throw UsageError(file + ": " + key + " " + shown(m) + " is not two pieces separated by one space");
      left.assign(line, 0, space), right.assign(line, space + 1, std::string::npos);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>(), right = m[1].get<std::string>();
    } else {
      throw UsageError(file + ": " + key + " " + shown(m) + " is neither \"left right\" nor [\"left\", \"right\"]");
    }
    const auto a = vocab_.find(left), b = vocab_.find(right), ab = vocab_.find(left + right);
    if (a == vocab_.end() || b == vocab_.end() || ab == vocab_.end())
      throw UsageError(file + ": " + key + " " + shown(m) + " names a piece that is not in model.vocab");
    merges_[pair_key(a->second, b->second)] = {static_cast<int32_t>(rank), ab->second};
    if (!left.empty() && !right.empty()) seams_.insert(pair_key(code_point_at(left, previous_char(left, left.size())), code_point_at(right, 0)));
  }
}

// One symbol per character (the library's merge_word): its piece, else its <0xXX> byte pieces with
// byte_fallback, else unk (runs fused into one with fuse_unk), else nothing.
std::vector<int32_t> Bpe::initial_symbols(const std::string& word) const {
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  bool unk_pending = false;
  std::string ch;
  for (size_t i = 0; i < word.size();) {
    const size_t n = std::min(utf8_length(word[i]), word.size() - i);
    ch.assign(word, i, n);
    i += n;
    const auto it = vocab_.find(ch);
    if (it != vocab_.end()) {
      if (unk_pending) symbols.push_back(unk_), unk_pending = false;
      symbols.push_back(it->second);
      continue;
    }
    if (byte_fallback_ && std::all_of(ch.begin(), ch.end(), [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; })) {
      // As the library does: a pending unk is not written out before these byte pieces.
      for (char c : ch) symbols.push_back(byte_ids_[static_cast<unsigned char>(c)]);
      continue;
    }
    if (unk_ < 0) continue;
    if (unk_pending && !fuse_unk_) symbols.push_back(unk_);
    unk_pending = true;
  }
  if (unk_pending) symbols.push_back(unk_);
  return symbols;
}

// The library's Word::merge_all: a heap of (rank, position) candidates, lowest rank first, then the
// leftmost; a popped candidate is applied when its left symbol is alive and the pair it now forms
// merges into the same id (the library checks the id, not the rank; so do we).
void Bpe::merge_all(std::vector<int32_t>& symbols) const {
  const int32_t n = static_cast<int32_t>(symbols.size());
  if (n < 2) return;
  struct Candidate {
    int32_t rank, pos, merged;
  };
  auto after = [](const Candidate& a, const Candidate& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(after)> heap(after);
  std::vector<int32_t> prev(static_cast<size_t>(n)), next(static_cast<size_t>(n));
  std::vector<char> alive(static_cast<size_t>(n), 1);
  for (int32_t i = 0; i < n; ++i) prev[static_cast<size_t>(i)] = i - 1, next[static_cast<size_t>(i)] = i + 1;
  auto rule = [&](int32_t left) -> const MergeRule* {
    const int32_t right = next[static_cast<size_t>(left)];
    if (right >= n) return nullptr;
    const auto it = merges_.find(pair_key(symbols[static_cast<size_t>(left)], symbols[static_cast<size_t>(right)]));
    return it == merges_.end() ? nullptr : &it->second;
  };
  auto consider = [&](int32_t left) {
    if (const MergeRule* r = left >= 0 ? rule(left) : nullptr) heap.push({r->rank, left, r->merged});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    const auto pos = static_cast<size_t>(top.pos);
    if (!alive[pos]) continue;
    const MergeRule* r = rule(top.pos);
    if (r == nullptr || r->merged != top.merged) continue;  // stale
    const auto right = static_cast<size_t>(next[pos]);
    symbols[pos] = top.merged;
    alive[right] = 0;
    next[pos] = next[right];
    if (next[right] < n) prev[static_cast<size_t>(next[right])] = top.pos;
    consider(prev[pos]);
    consider(top.pos);
  }
  size_t kept = 0;
  for (size_t i = 0; i < symbols.size(); ++i)
    if (alive[i]) symbols[kept++] = symbols[i];
  symbols.resize(kept);
}

// ---- BOS and EOS ----------------------------------------------------------------------------------

// The id of a piece: added tokens first, then the vocabulary (the library's token_to_id).
std::optional<int32_t> id_of(const std::string& piece, const AddedTokens& added, const Bpe& bpe) {
  if (const auto id = added.id_of(piece)) return id;
  const auto it = bpe.vocab().find(piece);
  return it == bpe.vocab().end() ? std::nullopt : std::optional<int32_t>(it->second);
}

// `name` ("bos" or "eos") from tokenizer_config.json's <name>_token, else config.json's <name>_token_id.
std::optional<int32_t> special_id(const std::string& dir, const std::string& name, const AddedTokens& added, const Bpe& bpe) {
  const std::string tokenizer_config = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  if (std::filesystem::exists(tokenizer_config)) {
    const Json config = parse_json_file(tokenizer_config);
    const std::string key = name + "_token";
    if (config.contains(key) && !config[key].is_null()) {
      const Json& value = config[key];
      const Json& content = value.is_object() ? need(value, "content", key, tokenizer_config) : value;
      if (!content.is_string()) throw UsageError(tokenizer_config + ": " + key + " must be a string or {\"content\": ...}");
      const auto id = id_of(content.get<std::string>(), added, bpe);
      if (!id) throw UsageError(tokenizer_config + ": " + key + " " + shown(content) + " is not a token of the tokenizer.json beside it");
      return id;
    }
  }
  const std::string model_config = (std::filesystem::path(dir) / "config.json").string();
  if (!std::filesystem::exists(model_config)) return std::nullopt;
  const Json config = parse_json_file(model_config);
  const std::string key = name + "_token_id";
  if (!config.contains(key) || config[key].is_null()) return std::nullopt;
  const Json& value = config[key].is_array() && !config[key].empty() ? config[key][0] : config[key];
  if (!value.is_number_integer()) throw UsageError(model_config + ": " + key + " must be an integer id, not " + shown(config[key]));
  return value.get<int32_t>();
}

}  // namespace

struct HfTokenizer::Impl {
  Impl(const std::string& file, const Json& spec);
  std::string path;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  Decoder decoder;
  Bpe bpe;
  AddedTokens added;
  std::vector<std::string> pieces;
  std::optional<int32_t> bos, eos;
};

HfTokenizer::Impl::Impl(const std::string& file, const Json& spec)
    : path(file),
      normalizer(optional(spec, "normalizer"), file),
      pre_tokenizer(optional(spec, "pre_tokenizer"), file),
      decoder(optional(spec, "decoder"), file),
      bpe(need(spec, "model", "", file), file),
      added(optional(spec, "added_tokens"), normalizer, bpe.vocab(), file) {
  size_t count = 0;
  for (const auto& [piece, id] : bpe.vocab()) count = std::max(count, static_cast<size_t>(id) + 1);
  for (const AddedToken& a : added.tokens()) count = std::max(count, static_cast<size_t>(a.id) + 1);
  pieces.resize(count);
  for (const auto& [piece, id] : bpe.vocab()) pieces[static_cast<size_t>(id)] = piece;
  for (const AddedToken& a : added.tokens()) pieces[static_cast<size_t>(a.id)] = a.content;
  const std::string dir = std::filesystem::path(file).parent_path().string();
  bos = special_id(dir, "bos", added, bpe);
  eos = special_id(dir, "eos", added, bpe);
}

HfTokenizer::HfTokenizer(const std::string& path) {
  const Json spec = parse_json_file(path);
  if (!spec.is_object()) throw UsageError(path + ": not a tokenizer.json (the top level is not an object)");
  try {
    impl_ = std::make_unique<Impl>(path, spec);
  } catch (const Json::exception& e) {  // a value of the wrong JSON type
    throw UsageError(path + ": unexpected JSON (" + e.what() + ")");
  }
}

HfTokenizer::~HfTokenizer() = default;
HfTokenizer::HfTokenizer(HfTokenizer&&) noexcept = default;
HfTokenizer& HfTokenizer::operator=(HfTokenizer&&) noexcept = default;

std::vector<int32_t> HfTokenizer::encode(const std::string& text) const {
  const Impl& t = *impl_;
  std::vector<int32_t> ids;
  std::vector<Segment> raw, normalized;
  t.added.split(lossy_utf8(text), /*normalized=*/false, raw);
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i].id >= 0) {
      ids.push_back(raw[i].id);
      continue;
    }
    normalized.clear();
    t.added.split(t.normalizer.apply(raw[i].text), /*normalized=*/true, normalized);
    for (size_t k = 0; k < normalized.size(); ++k) {
      if (normalized[k].id >= 0) {
        ids.push_back(normalized[k].id);
        continue;
      }
      // Segments are never empty: the first of the first begins the text, no token before it.
      const bool at_text_start = i == 0 && k == 0;
      for (const std::string& word : t.pre_tokenizer.apply(normalized[k].text, at_text_start)) t.bpe.encode_word(word, ids);
    }
  }
  return ids;
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids)
    if (id >= 0 && id < size() && !impl_->pieces[static_cast<size_t>(id)].empty()) tokens.push_back(impl_->pieces[static_cast<size_t>(id)]);
  return impl_->decoder.decode(std::move(tokens));
}

std::optional<int32_t> HfTokenizer::bos() const { return impl_->bos; }
std::optional<int32_t> HfTokenizer::eos() const { return impl_->eos; }
std::vector<int32_t> HfTokenizer::special_ids() const {
  std::vector<int32_t> ids;
  for (const AddedToken& a : impl_->added.tokens())
    if (a.special) ids.push_back(a.id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

const std::vector<std::string>& HfTokenizer::pieces() const { return impl_->pieces; }
int64_t HfTokenizer::size() const { return static_cast<int64_t>(impl_->pieces.size()); }
const std::string& HfTokenizer::path() const { return impl_->path; }

}  // namespace universae::lm
