#include "io/token_text.hpp"

#include <fmt/format.h>

#include <cctype>

namespace universae::io {

std::string token_piece(const std::vector<std::string>& vocab, int64_t token) {
  if (token < 0 || static_cast<uint64_t>(token) >= vocab.size()) return "";
  const std::string& s = vocab[static_cast<size_t>(token)];
  const auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  if (s.size() != 6 || s.compare(0, 3, "<0x") != 0 || !hex(s[3]) || !hex(s[4]) || s[5] != '>') return s;
  return std::string(1, static_cast<char>(std::stoi(s.substr(3, 2), nullptr, 16)));
}

namespace {

// The length of the valid UTF-8 sequence starting at s[i], or 0 (overlong forms, surrogates and code
// points past U+10FFFF are not valid).
size_t utf8_length(const std::string& s, size_t i) {
  const auto byte = [&](size_t j) { return static_cast<unsigned char>(s[j]); };
  const unsigned char c = byte(i);
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  uint32_t cp = n == 1 ? c : c & (0x7F >> n);
  for (size_t j = 1; j < n; ++j) {
    if ((byte(i + j) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + j) & 0x3F);
  }
  static const uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < smallest[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

}  // namespace

std::string quoted_text(const std::string& bytes) {
  std::string out = "\"";
  for (size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    const size_t n = utf8_length(bytes, i);
    if (c == '\\' || c == '"') out += std::string("\\") + static_cast<char>(c);
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (n == 0 || c < 0x20 || c == 0x7F) out += fmt::format("\\x{:02X}", c);
    else out.append(bytes, i, n);
    i += n == 0 ? 1 : n;
  }
  return out + "\"";
}

}  // namespace universae::io
