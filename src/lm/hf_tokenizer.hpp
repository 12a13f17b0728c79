// Hugging Face tokenizer.json (the `tokenizers` library's format) for BPE models: Llama 2
// (sentencepiece-style, byte fallback; the legacy normalizer or, as transformers writes it with
// legacy=False, the Metaspace pre-tokenizer), GPT-2, GPT-NeoX/Pythia and Llama 3 (byte-level).
// encode() gives exactly the ids of Hugging Face's `encode(text, add_special_tokens=False)`:
//  1. added tokens written literally in the text are split out (leftmost-longest, as its
//     Aho-Corasick matcher): first those with normalized=false on the raw text, then those with
//     normalized=true on each normalized remainder;
//  2. normalizer (NFC/NFD/NFKC/NFKD, Prepend, Replace with a string, Sequence);
//  3. pre-tokenizer (ByteLevel with or without the GPT-2 regex, Split with a regex and behavior
//     Isolated, Metaspace with prepend_scheme always/first/never and split, Sequence); the regexes
//     run on ICU, whose \s, \p{L}, \p{N}, (?i:) and lookahead match as Oniguruma's do for these
//     patterns; Metaspace's "first" prepends only to the piece that begins the text (none after an
//     added token written at its start);
//  4. BPE per pre-token word: merges by rank over a heap, the same order and tie-breaks as
//     tokenizers' word.rs (so even its stale-entry rule gives the same ids), with byte_fallback,
//     unk/fuse_unk and ignore_merges as declared. Results are cached per word.
// Anything else (another model type, dropout, an unknown pre-tokenizer or normalizer) is refused
// with a UsageError naming the file, the JSON key and the value.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace universae::lm {

class HfTokenizer {
 public:
  // Reads tokenizer.json; BOS/EOS ids from tokenizer_config.json beside it (bos_token / eos_token,
  // a string or {"content": ...}), else from config.json beside it (bos_token_id / eos_token_id;
  // the first of a list), else none.
  explicit HfTokenizer(const std::string& path);
  ~HfTokenizer();
  HfTokenizer(HfTokenizer&&) noexcept;
  HfTokenizer& operator=(HfTokenizer&&) noexcept;

  // The ids Hugging Face's encode(text, add_special_tokens=False) gives. Invalid UTF-8 in `text`
  // is first replaced by U+FFFD (one per maximal ill-formed subsequence), as a caller's
  // lossy decoding to a Python or JavaScript string would. Safe to call from several threads.
  std::vector<int32_t> encode(const std::string& text) const;

  std::optional<int32_t> bos() const;
  std::optional<int32_t> eos() const;
  // The ids of added tokens marked special (BOS, EOS, padding, unknown, chat markers), ascending.
  std::vector<int32_t> special_ids() const;

  // Hugging Face's decode(ids, skip_special_tokens=False) through the file's decoder (ByteLevel,
  // Metaspace; Replace, ByteFallback, Fuse, Strip and Sequence of them); without a decoder the
  // pieces joined by spaces. Ids outside the vocabulary contribute nothing.
  std::string decode(const std::vector<int32_t>& ids) const;

  // Token string by id (model vocabulary and added tokens; byte-level pieces as stored, "Ġthe");
  // size = the largest id + 1, ids nobody uses are empty strings.
  const std::vector<std::string>& pieces() const;
  int64_t size() const;
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace universae::lm
