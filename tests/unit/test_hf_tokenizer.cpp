// lm/hf_tokenizer: the four real tokenizer.json files against llama.cpp's test vectors (46 strings
// and the ids Hugging Face's tokenizers gives them with add_special_tokens=False), BOS/EOS, added
// tokens written in the text, decoding, both merge formats, Llama 2 with a Metaspace pre-tokenizer,
// and the refusals.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <unistd.h>

#include "core/error.hpp"
#include "lm/hf_tokenizer.hpp"

namespace universae::lm {
namespace {

const std::string kHf = "../shared/data/hf/";  // tests run from the source directory

std::string tokenizer_file(const std::string& name) { return kHf + "tokenizers/" + name + "/tokenizer.json"; }

// Each real tokenizer loaded once for all the tests (Llama 3's file is 9 MB).
const HfTokenizer& loaded(const std::string& name) {
  static std::map<std::string, HfTokenizer> tokenizers;
  auto it = tokenizers.find(name);
  if (it == tokenizers.end()) it = tokenizers.emplace(name, HfTokenizer(tokenizer_file(name))).first;
  return it->second;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The cases as llama.cpp's tests/test-tokenizer-0.cpp reads them: the file split at
// "\n__ggml_vocab_test__\n", nothing trimmed, no empty case after the final separator.
std::vector<std::string> read_cases() {
  const std::string raw = read_file(kHf + "tokenizer-tests/cases.inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> cases;
  for (size_t pos = 0; pos < raw.size();) {
    const size_t next = raw.find(sep, pos);
    cases.push_back(raw.substr(pos, next == std::string::npos ? std::string::npos : next - pos));
    if (next == std::string::npos) break;
    pos = next + sep.size();
  }
  return cases;
}

// One line of ids per case (each line starts with a space: the generator writes " id" per token).
std::vector<std::vector<int32_t>> read_expected(const std::string& name) {
  std::istringstream in(read_file(kHf + "tokenizer-tests/" + name + ".out"));
  std::vector<std::vector<int32_t>> expected;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ids(line);
    expected.emplace_back();
    for (int32_t id = 0; ids >> id;) expected.back().push_back(id);
  }
  return expected;
}

struct Vectors {
  const char* tokenizer;
  const char* out;
  const char* test_name;
};

class LlamaCppVectors : public ::testing::TestWithParam<Vectors> {};

TEST_P(LlamaCppVectors, EveryCaseGivesHuggingFacesIds) {
  const HfTokenizer& tok = loaded(GetParam().tokenizer);
  const auto cases = read_cases();
  const auto expected = read_expected(GetParam().out);
  ASSERT_EQ(cases.size(), 46u);
  ASSERT_EQ(expected.size(), cases.size());
  int matched = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto ids = tok.encode(cases[i]);
    EXPECT_EQ(ids, expected[i]) << "case " << i << ": '" << cases[i] << "'";
    matched += ids == expected[i];
  }
  std::cout << GetParam().tokenizer << ": " << matched << "/" << cases.size() << " cases match " << GetParam().out << "\n";
}

INSTANTIATE_TEST_SUITE_P(FourTokenizers, LlamaCppVectors,
                         ::testing::Values(Vectors{"llama2", "llama-spm", "llama2"}, Vectors{"gpt2", "gpt-2", "gpt2"},
                                           Vectors{"gpt-neox", "mpt", "gpt_neox"}, Vectors{"llama3", "llama-bpe", "llama3"}),
                         [](const ::testing::TestParamInfo<Vectors>& p) { return std::string(p.param.test_name); });

TEST(HfTokenizer, BosEosFromTheConfigFilesBesideIt) {
  const HfTokenizer &llama2 = loaded("llama2"), &gpt2 = loaded("gpt2"), &neox = loaded("gpt-neox"), &llama3 = loaded("llama3");
  EXPECT_EQ(llama2.bos(), 1);  // {"content": "<s>"} in special_tokens_map, "<s>" in tokenizer_config
  EXPECT_EQ(llama2.eos(), 2);
  EXPECT_EQ(gpt2.bos(), 50256);
  EXPECT_EQ(gpt2.eos(), 50256);
  EXPECT_EQ(neox.bos(), std::nullopt);  // no config files beside it
  EXPECT_EQ(llama3.bos(), 128000);
  EXPECT_EQ(llama3.eos(), 128001);
  EXPECT_EQ(llama2.size(), 32000);
  EXPECT_EQ(gpt2.size(), 50257);
  EXPECT_EQ(neox.size(), 50277);  // 50254 pieces + 23 whitespace runs
  EXPECT_EQ(llama3.size(), 128256);
  EXPECT_EQ(llama3.pieces()[128000], "<|begin_of_text|>");
  EXPECT_EQ(gpt2.pieces()[262], "\xC4\xA0the");  // "Ġthe": byte-level pieces as stored
}

// Reference ids from Hugging Face's tokenizers 0.23.2 (encode(text, add_special_tokens=False)).
TEST(HfTokenizer, AddedTokensInTheTextAreSplitOutFirst) {
  const HfTokenizer &llama2 = loaded("llama2"), &neox = loaded("gpt-neox"), &llama3 = loaded("llama3");
  // Each piece around <s> gets its own "▁" prefix (the normalizer runs per piece).
  EXPECT_EQ(llama2.encode("<s>Hi</s> there"), (std::vector<int32_t>{1, 6324, 2, 29871, 727}));
  EXPECT_EQ(llama3.encode("<|begin_of_text|>Hello<|end_of_text|>"), (std::vector<int32_t>{128000, 9906, 128001}));
  // GPT-NeoX's whitespace-run tokens are normalized tokens: the longest run wins.
  EXPECT_EQ(neox.encode("a" + std::string(30, ' ') + "b"), (std::vector<int32_t>{66, 50254, 50272, 67}));
}

TEST(HfTokenizer, DecodeInvertsEncode) {
  const std::string text = "Hello,  world!\n\tnaïve café — 你好 🦙 3333 it's";
  for (const char* name : {"llama2", "gpt2", "gpt-neox", "llama3"}) {
    const HfTokenizer& tok = loaded(name);
    EXPECT_EQ(tok.decode(tok.encode(text)), text) << name;
    EXPECT_EQ(tok.decode(tok.encode(" " + text)), " " + text) << name;  // llama2's Strip removes only the prefix "▁"
  }
}

TEST(HfTokenizer, InvalidUtf8BecomesReplacementCharacters) {
  const HfTokenizer& tok = loaded("gpt2");
  EXPECT_EQ(tok.encode("a\xFF" "b\xE2\x82"), tok.encode("a\xEF\xBF\xBD" "b\xEF\xBF\xBD"));
}

// A tokenizer.json written to a temporary folder; removed with the object.
class TempTokenizer {
 public:
  explicit TempTokenizer(const std::string& json)
      : dir_(std::filesystem::temp_directory_path() / ("hf_tok_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++))) {
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "tokenizer.json") << json;
  }
  ~TempTokenizer() { std::filesystem::remove_all(dir_); }
  std::string path() const { return (dir_ / "tokenizer.json").string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
};

std::string tiny_bpe(const std::string& merges, const std::string& extra = "") {
  return R"({"added_tokens": [], )" + extra +
         R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "#": 3, "#a": 4}, "merges": )" + merges + "}}";
}

TEST(HfTokenizer, MergesAsStringsOrPairsAndHashIsNoComment) {
  const TempTokenizer strings(tiny_bpe(R"(["a b", "# a"])")), pairs(tiny_bpe(R"([["a", "b"], ["#", "a"]])"));
  EXPECT_EQ(HfTokenizer(strings.path()).encode("ab#a"), (std::vector<int32_t>{2, 4}));
  EXPECT_EQ(HfTokenizer(pairs.path()).encode("ab#a"), (std::vector<int32_t>{2, 4}));
  EXPECT_EQ(HfTokenizer(pairs.path()).bos(), std::nullopt);
}

// Llama 2's file as transformers' LlamaTokenizerFast(legacy=False) writes it: no normalizer, and
// `metaspace` as pre-tokenizer and decoder.
std::string metaspace_llama2(const std::string& metaspace) {
  nlohmann::json spec = nlohmann::json::parse(read_file(tokenizer_file("llama2")));
  spec["normalizer"] = nullptr;
  spec["pre_tokenizer"] = spec["decoder"] = nlohmann::json::parse(metaspace);
  return spec.dump();
}

// Reference ids and texts from Hugging Face's tokenizers 0.23.2.
TEST(HfTokenizer, MetaspacePrependsPerSchemeAndFirstOnlyWhereTheTextBegins) {
  const TempTokenizer first(metaspace_llama2(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false})"));
  const TempTokenizer always(metaspace_llama2(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": false})"));
  const TempTokenizer never(metaspace_llama2(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": false})"));
  const HfTokenizer f(first.path()), a(always.path()), n(never.path());
  // After <s> written at the start "first" prepends nothing: "H" "ey", where "always" gives "▁Hey".
  EXPECT_EQ(f.encode("<s>Hey  you</s> there"), (std::vector<int32_t>{1, 29950, 1032, 29871, 366, 2, 727}));
  EXPECT_EQ(a.encode("<s>Hey  you</s> there"), (std::vector<int32_t>{1, 18637, 29871, 366, 2, 727}));
  EXPECT_EQ(f.encode("Hey▁▁you "), (std::vector<int32_t>{18637, 29871, 366, 29871}));
  EXPECT_EQ(n.encode("Hey▁▁you "), (std::vector<int32_t>{29950, 1032, 29871, 366, 29871}));
  // The decoder drops the replacements of the first piece unless the scheme is "never".
  EXPECT_EQ(f.decode(f.encode(" Hey you")), "Hey you");
  EXPECT_EQ(n.decode(n.encode(" Hey you")), " Hey you");
  EXPECT_EQ(a.decode(a.encode("<s>Hey  you</s> there")), "<s> Hey  you</s> there");
}

TEST(HfTokenizer, MetaspaceSplitCutsBeforeEachReplacement) {
  const TempTokenizer whole(metaspace_llama2(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false})"));
  const TempTokenizer split(metaspace_llama2(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true})"));
  // A file older than prepend_scheme: "always", and split by default.
  const TempTokenizer old(metaspace_llama2(R"({"type": "Metaspace", "replacement": "▁", "add_prefix_space": true})"));
  EXPECT_EQ(HfTokenizer(whole.path()).encode("x    y"), (std::vector<int32_t>{921, 1678, 343}));  // "▁▁▁" is a piece
  EXPECT_EQ(HfTokenizer(split.path()).encode("x    y"), (std::vector<int32_t>{921, 29871, 29871, 29871, 343}));
  EXPECT_EQ(HfTokenizer(old.path()).encode("x    y"), (std::vector<int32_t>{921, 29871, 29871, 29871, 343}));
}

std::string refusal(const std::string& json) {
  const TempTokenizer t(json);
  try {
    HfTokenizer tok(t.path());
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(HfTokenizer, UnsupportedPartsAreUsageErrorsNamingFileKeyAndValue) {
  EXPECT_NE(refusal(R"({"model": {"type": "WordPiece", "vocab": {}}})").find("tokenizer.json: model.type 'WordPiece' is not supported (BPE only)"),
            std::string::npos);
  EXPECT_NE(refusal(tiny_bpe("[]", R"("normalizer": {"type": "Sequence", "normalizers": [{"type": "Lowercase"}]},)"))
                .find("normalizer.normalizers[0].type 'Lowercase' is not supported"),
            std::string::npos);
  EXPECT_NE(refusal(tiny_bpe("[]", R"("pre_tokenizer": {"type": "Whitespace"},)")).find("pre_tokenizer.type 'Whitespace'"), std::string::npos);
  EXPECT_NE(refusal(tiny_bpe("[]", R"("decoder": {"type": "WordPiece"},)")).find("decoder.type 'WordPiece'"), std::string::npos);
  // Hugging Face refuses add_prefix_space false unless prepend_scheme is "never" (its default is "always").
  EXPECT_NE(refusal(tiny_bpe("[]", R"("pre_tokenizer": {"type": "Metaspace", "replacement": "_", "add_prefix_space": false},)"))
                .find("pre_tokenizer.add_prefix_space false is not supported"),
            std::string::npos);
  EXPECT_EQ(refusal(tiny_bpe("[]", R"("pre_tokenizer": {"type": "Metaspace", "replacement": "_", "add_prefix_space": false, "prepend_scheme": "never"},)")),
            "(accepted)");
  EXPECT_NE(refusal(tiny_bpe("[]", R"("pre_tokenizer": {"type": "Metaspace", "replacement": "__"},)")).find("pre_tokenizer.replacement '__'"),
            std::string::npos);
  EXPECT_NE(refusal(tiny_bpe("[]", R"("decoder": {"type": "Metaspace", "replacement": "_", "prepend_scheme": "once"},)"))
                .find("decoder.prepend_scheme 'once'"),
            std::string::npos);
  EXPECT_NE(refusal(tiny_bpe(R"(["a c"])")).find("model.merges[0] 'a c'"), std::string::npos);
  EXPECT_NE(refusal("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_THROW(HfTokenizer("/nonexistent/tokenizer.json"), UsageError);
}

}  // namespace
}  // namespace universae::lm
