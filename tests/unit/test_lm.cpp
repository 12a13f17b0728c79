// lm/: the tokenizer (round trips, byte fallback), document splitting, hookpoint names, the extraction plan.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "lm/documents.hpp"
#include "lm/extract_plan.hpp"
#include "lm/extract_stage.hpp"
#include "lm/model.hpp"
#include "lm/tokenizer.hpp"

namespace universae::lm {
namespace {

const char* kTokenizer = "../shared/data/tok512.bin";  // tests run from the source directory

TEST(Tokenizer, RoundTripsTextIncludingBytesOutsideTheVocabulary) {
  const Tokenizer tok(kTokenizer, 512);
  for (const std::string text : {"Once upon a time, there was a little girl named Lily.", "naïve café — 你好 🙂",
                                 "line one\nline two\ttab", " leading space", "x"}) {
    const auto ids = tok.encode(text, /*bos=*/true, /*eos=*/false);
    EXPECT_EQ(ids.front(), Tokenizer::kBos);
    EXPECT_EQ(tok.decode(ids), text) << text;
  }
  const auto ids = tok.encode("你", true, true);
  EXPECT_EQ(ids.back(), Tokenizer::kEos);
  // "你" is not a piece: its three UTF-8 bytes come as byte tokens (byte + 3) after the dummy prefix.
  EXPECT_EQ(std::vector<int32_t>(ids.end() - 4, ids.end() - 1), (std::vector<int32_t>{0xE4 + 3, 0xBD + 3, 0xA0 + 3}));
  EXPECT_EQ(tok.encode("", true, false), std::vector<int32_t>{Tokenizer::kBos});  // no dummy prefix for empty text
}

TEST(Tokenizer, MissingOrTruncatedFileIsAUsageError) {
  EXPECT_THROW(Tokenizer("/nonexistent/tok.bin", 512), UsageError);
  EXPECT_THROW(Tokenizer(kTokenizer, 100000), UsageError);  // the file has fewer tokens
}

TEST(Documents, SplitsEachFormat) {
  EXPECT_EQ(split_documents("a\nb\n\n  \nc\n\n\n", "text", "x"), (std::vector<std::string>{"a\nb", "c"}));
  EXPECT_EQ(split_documents(" one <|endoftext|>two<|endoftext|><|endoftext|>", "endoftext", "x"),
            (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(split_documents("{\"text\": \" a \"}\n\n{\"text\": \"b\", \"id\": 3}\n", "jsonl", "x"),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_THROW(split_documents("{\"id\": 3}\n", "jsonl", "in.jsonl"), UsageError);
  EXPECT_EQ(detect_format("a.jsonl", ""), "jsonl");
  EXPECT_EQ(detect_format("a.txt", "x<|endoftext|>y"), "endoftext");
  EXPECT_EQ(detect_format("a.txt", "x\n\ny"), "text");
}

TEST(Hookpoints, CanonicalNamesAliasesAndWildcards) {
  ModelConfig c;
  c.n_layers = 5, c.dim = 64, c.hidden_dim = 172;
  EXPECT_EQ(parse_hook(c, "layers.3").name, "blocks.3.hook_resid_post");
  EXPECT_EQ(parse_hook(c, "layers.3.mlp").name, "blocks.3.hook_mlp_out");
  EXPECT_EQ(parse_hook(c, "blocks.1.mlp.hook_post").width, 172);
  EXPECT_EQ(parse_hook(c, "blocks.0.hook_resid_pre").site, HookSite::kResidPre);
  EXPECT_THROW(parse_hook(c, "blocks.5.hook_resid_post"), UsageError);
  EXPECT_THROW(parse_hook(c, "blocks.0.attn.hook_z"), UsageError);
  EXPECT_EQ(resolve_hookpoints({"blocks.*.hook_mlp_out", "layers.2.mlp"}, 3),
            (std::vector<std::string>{"blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out", "blocks.2.hook_mlp_out"}));
  EXPECT_EQ(hook_names(c).size(), 25u);
}

// Three documents (ids 100.., BOS = 1) of 3, 10 and 5 tokens, seq_len 4, batches of at most 8 tokens:
// the 10-token document runs as [4] then windows of BOS + 3 tokens: 4 + 4 + 4 rows (its last two tokens
// in a third window); worked out by hand.
TEST(ExtractPlan, WindowsStartWithBosAndBatchesTakeWholeSequences) {
  std::vector<int32_t> tokens;
  const std::vector<int64_t> lengths = {3, 10, 5};
  for (int64_t n : lengths)
    for (int64_t i = 0; i < n; ++i) tokens.push_back(static_cast<int32_t>(100 + tokens.size()));
  const ExtractPlan p = make_extract_plan(tokens, lengths, 4, 8, 1);
  EXPECT_EQ(p.seq_offsets, (std::vector<int64_t>{0, 3, 7, 11, 15, 19, 21}));
  EXPECT_EQ(p.doc_offsets, (std::vector<int64_t>{0, 3, 15, 21}));
  EXPECT_EQ(p.batch_offsets, (std::vector<int64_t>{0, 2, 4, 6}));
  // Document 1's windows: its first four ids, then BOS and the next three, twice.
  EXPECT_EQ(std::vector<int32_t>(p.tokens.begin() + 3, p.tokens.begin() + 15),
            (std::vector<int32_t>{103, 104, 105, 106, 1, 107, 108, 109, 1, 110, 111, 112}));
  EXPECT_EQ(p.rows(1).begin, 7);
  EXPECT_EQ(p.rows(1).end, 15);
  EXPECT_EQ(p.sequence_lengths(2), (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(p.predicted(0), 7 - 2);
  EXPECT_EQ(documents_within(lengths, 13), 2u);  // 3 + 10 = 13 tokens: the first two fit exactly
  EXPECT_EQ(documents_within(lengths, 12), 1u);
  EXPECT_EQ(documents_within(lengths, 0), 3u);
}

// Plays 1 to 5 ranks in one process: every batch runs exactly once, in rounds of one batch per rank,
// and a resumed run (starting at batch 2) runs the rest exactly once.
TEST(ExtractPlan, RoundsGiveEveryBatchToExactlyOneRank) {
  std::vector<int32_t> tokens(40, 7);
  const ExtractPlan p = make_extract_plan(tokens, std::vector<int64_t>(10, 4), 4, 8, 1);  // 10 sequences, 5 batches
  ASSERT_EQ(p.n_batches(), 5);
  for (int ranks = 1; ranks <= 5; ++ranks)
    for (int64_t resume : {int64_t{0}, int64_t{2}}) {
      std::vector<int> runs(static_cast<size_t>(p.n_batches()), 0);
      int64_t rounds = 0;
      for (int64_t done = resume; done < p.n_batches(); done = p.after_round(done, ranks), ++rounds)
        for (int r = 0; r < ranks; ++r)
          if (const int64_t b = p.batch_of_rank(done, r); b >= 0) ++runs[static_cast<size_t>(b)];
      for (int64_t b = 0; b < p.n_batches(); ++b) EXPECT_EQ(runs[static_cast<size_t>(b)], b < resume ? 0 : 1) << ranks << " ranks";
      EXPECT_EQ(rounds, (p.n_batches() - resume + ranks - 1) / ranks) << ranks << " ranks";
    }
}

}  // namespace
}  // namespace universae::lm
