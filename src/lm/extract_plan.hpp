// The extraction plan: pure arithmetic of documents, sequences, batches and ranks (no MPI, no
// model), so the rank layout is tested by playing several ranks in one process (tests/unit/test_lm.cpp).
//
// A document (token ids from BOS) longer than seq_len continues in windows of seq_len that start
// again with BOS; every window is a sequence, run from position 0 (a document never attends to
// another). Consecutive sequences form fixed global batches of at most batch_tokens tokens. In round
// r (starting at batch `done`), rank k runs batch done + k: a batch is computed with the same shapes
// whatever the rank count, so any number of ranks writes an identical store.
#pragma once

#include <cstdint>
#include <vector>

#include "core/sharding.hpp"

namespace universae::lm {

struct ExtractPlan {
  std::vector<int32_t> tokens;         // store rows (the sequences as run, BOS at each start)
  std::vector<int64_t> doc_offsets;    // [n_docs + 1] over store rows
  std::vector<int64_t> seq_offsets;    // [n_seq + 1] over store rows
  std::vector<int64_t> batch_offsets;  // [n_batches + 1] over sequences

  int64_t n_sequences() const { return static_cast<int64_t>(seq_offsets.size()) - 1; }
  int64_t n_batches() const { return static_cast<int64_t>(batch_offsets.size()) - 1; }
  core::Range sequences(int64_t batch) const {
    return {batch_offsets[static_cast<size_t>(batch)], batch_offsets[static_cast<size_t>(batch + 1)]};
  }
  core::Range rows(int64_t batch) const {
    const core::Range s = sequences(batch);
    return {seq_offsets[static_cast<size_t>(s.begin)], seq_offsets[static_cast<size_t>(s.end)]};
  }
  // Token counts of the batch's sequences (the forward pass's sequence lengths).
  std::vector<int64_t> sequence_lengths(int64_t batch) const {
    std::vector<int64_t> lengths;
    const core::Range s = sequences(batch);
    for (int64_t q = s.begin; q < s.end; ++q)
      lengths.push_back(seq_offsets[static_cast<size_t>(q + 1)] - seq_offsets[static_cast<size_t>(q)]);
    return lengths;
  }
  // Positions with a next token (each sequence's last has none).
  int64_t predicted(int64_t batch) const { return rows(batch).size() - sequences(batch).size(); }
  // The batch rank `rank` runs in the round that starts at batch `done`, or -1 (idle this round).
  int64_t batch_of_rank(int64_t done, int rank) const { return done + rank < n_batches() ? done + rank : -1; }
  // Where the next round starts when `ranks` ranks ran the round starting at `done`.
  int64_t after_round(int64_t done, int ranks) const { return done + ranks < n_batches() ? done + ranks : n_batches(); }
};

// `bos` starts every continuation window (-1: the tokenizer has none; windows are plain slices).
inline ExtractPlan make_extract_plan(const std::vector<int32_t>& doc_tokens, const std::vector<int64_t>& doc_lengths,
                                     int64_t seq_len, int64_t batch_tokens, int32_t bos) {
  ExtractPlan p;
  p.doc_offsets.push_back(0);
  p.seq_offsets.push_back(0);
  int64_t at = 0;
  for (int64_t n : doc_lengths) {
    const int32_t* doc = doc_tokens.data() + at;
    at += n;
    int64_t pos = n < seq_len ? n : seq_len;
    p.tokens.insert(p.tokens.end(), doc, doc + pos);
    p.seq_offsets.push_back(static_cast<int64_t>(p.tokens.size()));
    const int64_t room = bos >= 0 ? seq_len - 1 : seq_len;
    while (pos < n) {
      const int64_t take = n - pos < room ? n - pos : room;
      if (bos >= 0) p.tokens.push_back(bos);
      p.tokens.insert(p.tokens.end(), doc + pos, doc + pos + take);
      p.seq_offsets.push_back(static_cast<int64_t>(p.tokens.size()));
      pos += take;
    }
    p.doc_offsets.push_back(static_cast<int64_t>(p.tokens.size()));
  }
  p.batch_offsets.push_back(0);
  int64_t fill = 0;
  for (int64_t s = 0; s < p.n_sequences(); ++s) {
    const int64_t n = p.seq_offsets[static_cast<size_t>(s + 1)] - p.seq_offsets[static_cast<size_t>(s)];
    if (fill > 0 && fill + n > batch_tokens) p.batch_offsets.push_back(s), fill = 0;
    fill += n;
  }
  p.batch_offsets.push_back(p.n_sequences());
  return p;
}

// The first documents whose tokens fit in `max_tokens` (0: all): how many to keep.
inline size_t documents_within(const std::vector<int64_t>& doc_lengths, int64_t max_tokens) {
  if (max_tokens <= 0) return doc_lengths.size();
  int64_t total = 0;
  size_t keep = 0;
  while (keep < doc_lengths.size() && total + doc_lengths[keep] <= max_tokens) total += doc_lengths[keep++];
  return keep;
}

}  // namespace universae::lm
