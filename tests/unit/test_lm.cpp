// lm/: the tokenizer (round trips, byte fallback), document splitting, hookpoint names, the extraction plan.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/error.hpp"
#include "lm/attention.hpp"
#include "lm/documents.hpp"
#include "lm/extract_plan.hpp"
#include "lm/extract_stage.hpp"
#include "lm/model.hpp"
#include "lm/tokenizer.hpp"

namespace universae::lm {
namespace {

const char* kTokenizer = "../shared/data/tok512.bin";  // tests run from the source directory

int64_t ulps_apart(float a, float b) {
  int32_t ia = 0, ib = 0;
  std::memcpy(&ia, &a, sizeof a);
  std::memcpy(&ib, &b, sizeof b);
  return std::abs(static_cast<int64_t>(ia) - static_cast<int64_t>(ib));  // both positive here
}

TEST(Attention, ExpIsWithinTwoUlpOfStdExp) {
  EXPECT_EQ(exp_nonpositive(0.0f), 1.0f);
  std::vector<float> x(2000001);
  for (size_t i = 0; i < x.size(); ++i) x[i] = -87.0f * static_cast<float>(i) / 2000000.0f;
  x.insert(x.end(), {-87.001f, -100.0f, -1e30f, -std::numeric_limits<float>::infinity(), -0.0f,
                     std::numeric_limits<float>::quiet_NaN(), -1e-30f});
  std::vector<float> vector = x;
  exp_nonpositive(vector.data(), static_cast<int64_t>(vector.size()));  // 4 at a time, the last 3 one by one
  int64_t worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float scalar = exp_nonpositive(x[i]);
    if (std::isnan(x[i])) {
      EXPECT_TRUE(std::isnan(scalar) && std::isnan(vector[i]));
      continue;
    }
    EXPECT_EQ(ulps_apart(scalar, vector[i]), 0) << x[i];  // the vector loop gives the scalar's bits
    if (x[i] < -87.0f) {
      EXPECT_EQ(scalar, 0.0f) << x[i];  // a masked key (−inf) weighs exactly nothing
      continue;
    }
    worst = std::max(worst, ulps_apart(scalar, static_cast<float>(std::exp(static_cast<double>(x[i])))));
  }
  EXPECT_LE(worst, 2);
}

// Both kernels against ATen's ops in float64 written out here, one sequence at a time, with their own
// masks: scores, the causal (and sliding-window) mask, softmax, the weighted sum. The bar is what the
// same ops give in float32: the fused kernel may round differently, not worse.
TEST(Attention, FusedAndAtenKernelsMatchFloat64) {
  struct Case {
    int64_t heads, kv_heads, hs, window;
    std::vector<int64_t> lengths;
  };
  for (const Case& c : {Case{8, 8, 8, 0, {1, 5, 37, 90}}, Case{4, 2, 64, 16, {3, 70}}, Case{6, 3, 20, 0, {129, 2}},
                        Case{2, 1, 8, 1, {9}}, Case{4, 4, 16, 3, {17, 8, 1}}}) {
    int64_t T = 0;
    for (int64_t n : c.lengths) T += n;
    at::manual_seed(7);
    const at::Tensor q = at::randn({T, c.heads, c.hs}) * 2.0, k = at::randn({T, c.kv_heads, c.hs}) * 2.0,
                     v = at::randn({T, c.kv_heads, c.hs});
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.hs));
    const auto written_out = [&](at::ScalarType type) {
      const at::Tensor kk = k.to(type).repeat_interleave(c.heads / c.kv_heads, 1),
                       vv = v.to(type).repeat_interleave(c.heads / c.kv_heads, 1), qq = q.to(type);
      at::Tensor out = at::empty(q.sizes(), q.options().dtype(type));
      for (int64_t s = 0, o = 0; s < static_cast<int64_t>(c.lengths.size()); o += c.lengths[static_cast<size_t>(s)], ++s) {
        const int64_t n = c.lengths[static_cast<size_t>(s)];
        at::Tensor masked = at::ones({n, n}, at::kBool).triu(1);
        if (c.window > 0) masked.logical_or_(at::ones({n, n}, at::kBool).tril(-c.window));
        const at::Tensor scores = at::matmul(qq.narrow(0, o, n).transpose(0, 1), kk.narrow(0, o, n).permute({1, 2, 0}))
                                      .mul_(scale)
                                      .masked_fill_(masked, -std::numeric_limits<double>::infinity());
        out.narrow(0, o, n).copy_(at::matmul(at::softmax(scores, -1), vv.narrow(0, o, n).transpose(0, 1)).transpose(0, 1));
      }
      return out;
    };
    const at::Tensor want = written_out(at::kDouble);
    const auto error = [&](const at::Tensor& got) { return (got.to(at::kDouble) - want).abs().max().item<double>(); };
    const double fused = error(causal_attention(q, k, v, c.lengths, c.window, AttentionKernel::kFused));
    const double aten = error(causal_attention(q, k, v, c.lengths, c.window, AttentionKernel::kAten));
    const double bar = error(written_out(at::kFloat));
    const std::string what = "heads " + std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + ", head dim " +
                             std::to_string(c.hs) + ", window " + std::to_string(c.window);
    EXPECT_LE(fused, 2.0 * bar + 1e-7) << what << ": float32 ops are " << bar << " from float64";
    EXPECT_LE(aten, 2.0 * bar + 1e-7) << what << ": float32 ops are " << bar << " from float64";
    std::printf("%s: fused %.2e, ATen kernel %.2e, float32 ops %.2e from float64\n", what.c_str(), fused, aten, bar);
  }
}

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
