// lm/: the tokenizer (round trips, byte fallback), document splitting, hookpoint names.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "lm/documents.hpp"
#include "lm/extract_stage.hpp"
#include "lm/llama.hpp"
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
  LlamaConfig c;
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

}  // namespace
}  // namespace universae::lm
