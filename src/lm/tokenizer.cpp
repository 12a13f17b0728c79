#include "lm/tokenizer.hpp"

#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <queue>

#include "core/error.hpp"

namespace universae::lm {
namespace {

template <typename T>
T read_value(std::ifstream& in, const std::string& path, const char* what) {
  T value{};
  if (!in.read(reinterpret_cast<char*>(&value), sizeof value))
    throw UsageError(path + ": truncated llama2.c tokenizer file (while reading " + what + ")");
  return value;
}

// "<0x0A>" → 0x0A; -1 when the piece is not a byte-fallback piece.
int byte_of_piece(const std::string& piece) {
  unsigned value = 0;
  if (piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%02X>", &value) == 1) return static_cast<int>(value);
  return -1;
}

}  // namespace

Tokenizer::Tokenizer(const std::string& path, int64_t vocab_size) : path_(path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(path + ": cannot open the tokenizer file");
  // encode() falls back to byte tokens 3 + b (run.c's layout: <unk>, <s>, </s>, then <0x00>..<0xFF>).
  if (vocab_size != 0 && vocab_size < 259)
    throw UsageError(path + ": the model's vocab_size " + std::to_string(vocab_size) +
                     " is too small for a llama2.c tokenizer (at least 259: <unk>, <s>, </s> and 256 byte tokens)");
  max_token_length_ = static_cast<uint32_t>(read_value<int32_t>(in, path, "max_token_length"));
  pieces_.reserve(static_cast<size_t>(vocab_size));
  // vocab_size 0 (no model to say it): every token up to the end of the file.
  for (int64_t i = 0; vocab_size == 0 ? in.peek() != std::ifstream::traits_type::eof() : i < vocab_size; ++i) {
    scores_.push_back(read_value<float>(in, path, "a score"));
    const int32_t length = read_value<int32_t>(in, path, "a token length");
    if (length < 0 || length > 1 << 16) throw UsageError(path + ": token " + std::to_string(i) + " has length " + std::to_string(length));
    std::string piece(static_cast<size_t>(length), '\0');
    if (!in.read(piece.data(), length)) throw UsageError(path + ": truncated llama2.c tokenizer file (token " + std::to_string(i) + ")");
    ids_.emplace(piece, static_cast<int32_t>(i));  // the first of equal pieces, as run.c's lookup
    pieces_.push_back(std::move(piece));
  }
  if (pieces_.size() < 259)
    throw UsageError(path + ": " + std::to_string(pieces_.size()) +
                     " tokens is too few for a llama2.c tokenizer (at least 259: <unk>, <s>, </s> and 256 byte tokens)");
}

int32_t Tokenizer::lookup(const std::string& piece) const {
  const auto it = ids_.find(piece);
  return it == ids_.end() ? -1 : it->second;
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool bos, bool eos) const {
  std::vector<int32_t> tokens;
  tokens.reserve(text.size() + 3);
  if (bos) tokens.push_back(kBos);
  if (!text.empty()) {
    const int32_t space = lookup(" ");
    tokens.push_back(space >= 0 ? space : ' ' + 3);
  }
  // One token per UTF-8 code point (at most 4 bytes), else its bytes.
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    while (i + n < text.size() && n < 4 && (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80) ++n;
    const int32_t id = lookup(text.substr(i, n));
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (size_t b = 0; b < n; ++b) tokens.push_back(static_cast<unsigned char>(text[i + b]) + 3);
    }
    i += n;
  }

  // Merges on a doubly linked list; a heap holds each adjacent pair that forms a vocabulary piece,
  // ordered by score, then by position (the leftmost first, as run.c's strict `>` scan picks).
  const int n = static_cast<int>(tokens.size());
  std::vector<int> prev(static_cast<size_t>(n)), next(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) prev[static_cast<size_t>(i)] = i - 1, next[static_cast<size_t>(i)] = i + 1 < n ? i + 1 : -1;
  struct Candidate {
    float score;
    int left, right;
    int32_t left_id, right_id, merged;
  };
  auto worse = [](const Candidate& a, const Candidate& b) {
    return a.score != b.score ? a.score < b.score : a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> heap(worse);
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const int32_t a = tokens[static_cast<size_t>(left)], b = tokens[static_cast<size_t>(right)];
    const int32_t merged = lookup(pieces_[static_cast<size_t>(a)] + pieces_[static_cast<size_t>(b)]);
    if (merged >= 0 && scores_[static_cast<size_t>(merged)] > -1e10f) heap.push({scores_[static_cast<size_t>(merged)], left, right, a, b, merged});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i, i + 1);
  std::vector<char> alive(static_cast<size_t>(n), 1);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const auto l = static_cast<size_t>(c.left), r = static_cast<size_t>(c.right);
    // Stale: a side was merged away or changed since the pair was pushed.
    if (!alive[l] || !alive[r] || next[l] != c.right || tokens[l] != c.left_id || tokens[r] != c.right_id) continue;
    tokens[l] = c.merged;
    alive[r] = 0;
    next[l] = next[r];
    if (next[r] >= 0) prev[static_cast<size_t>(next[r])] = c.left;
    consider(prev[l], c.left);
    consider(c.left, next[l]);
  }
  std::vector<int32_t> out;
  out.reserve(tokens.size() + 1);
  for (int i = 0; i >= 0 && i < n; i = next[static_cast<size_t>(i)]) out.push_back(tokens[static_cast<size_t>(i)]);
  if (eos) out.push_back(kEos);
  return out;
}

std::string Tokenizer::decode(int32_t previous, int32_t token) const {
  if (token < 0 || token >= size()) return {};
  std::string piece = pieces_[static_cast<size_t>(token)];
  if (previous == kBos && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  const int byte = byte_of_piece(piece);
  if (byte >= 0) return std::string(1, static_cast<char>(byte));
  return piece;
}

std::string Tokenizer::decode(const std::vector<int32_t>& tokens) const {
  std::string text;
  int32_t previous = kBos;
  for (int32_t t : tokens) {
    if (t != kBos && t != kEos) text += decode(previous, t);
    previous = t;
  }
  return text;
}

std::string Tokenizer::render(const std::vector<int32_t>& context, const std::vector<int32_t>& ids) const {
  std::string out;
  int32_t previous = context.empty() ? kBos : context.back();
  for (int32_t token : ids) {
    const std::string piece = decode(previous, token);
    const bool bad_byte = piece.size() == 1 && !std::isprint(static_cast<unsigned char>(piece[0])) &&
                          !std::isspace(static_cast<unsigned char>(piece[0]));
    if (!bad_byte) out += piece;
    previous = token;
  }
  return out;
}

}  // namespace universae::lm
