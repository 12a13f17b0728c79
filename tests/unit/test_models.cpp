// Checkpoint loaders against third-party references: the real Hugging Face checkpoint
// stas/tiny-random-llama-2 (bfloat16) against the logits transformers computed (its corpus.json),
// stories260K as the third-party GGUF against the llama2.c file, and the refusals of bad
// directories (each message names the file and the key or tensor).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "io/text_file.hpp"
#include "lm/generate.hpp"
#include "lm/model.hpp"

namespace universae::lm {
namespace {

namespace fs = std::filesystem;
const std::string kData = "../shared/data";  // tests run from the source directory
const std::string kTinyLlama = kData + "/hf/tiny-random-llama-2";

TEST(HuggingFaceLlama, LogitsAndGreedyContinuationsMatchTransformers) {
  const LanguageModel model(kTinyLlama);
  EXPECT_EQ(model.config().architecture, "llama");
  EXPECT_FALSE(model.config().tied_embeddings);
  const auto corpus = nlohmann::json::parse(io::read_text(kTinyLlama + "/corpus.json"));
  const double atol = corpus["logit_tolerance"]["absolute"], rtol = corpus["logit_tolerance"]["relative"];
  int checked = 0;
  for (const auto& c : corpus["model_cases"]) {
    const std::vector<int32_t> prompt = c["input_ids"];
    const std::vector<float> logits = model.next_logits(prompt);
    for (const auto& [id, want] : c["sampled_logits"].items()) {
      const double got = logits.at(std::stoul(id)), w = want.get<double>();
      EXPECT_LE(std::abs(got - w), atol + rtol * std::abs(w)) << "prompt of " << prompt.size() << " tokens, logit " << id;
      ++checked;
    }
    EXPECT_EQ(model.argmax_next(prompt), c["greedy_token"].get<int32_t>());
    const std::vector<int32_t> want = c["greedy_continuation"];
    EXPECT_EQ(generate_ids(model, prompt, static_cast<int64_t>(prompt.size() + want.size()) - 1), want);
  }
  EXPECT_EQ(checked, 33);
}

// Every hookpoint of every block on two sequences: the GGUF's tensors are the llama2.c file's.
TEST(Gguf, Stories260kGivesTheLlama2cActivations) {
  const LanguageModel bin(kData + "/stories260K.bin"), gguf(kData + "/stories260K_f32.gguf");
  EXPECT_EQ(gguf.config().format, "gguf");
  std::vector<Hook> hooks;
  for (const auto& name : hook_names(bin.config())) hooks.push_back(parse_hook(bin.config(), name));
  const std::vector<int32_t> tokens = {1, 400, 300, 26, 99, 402, 1, 7, 500, 501};
  const auto a = bin.forward(tokens, {6, 4}, hooks, true), b = gguf.forward(tokens, {6, 4}, hooks, true);
  for (size_t h = 0; h < hooks.size(); ++h)
    for (size_t i = 0; i < a.captures[h].size(); ++i) ASSERT_NEAR(a.captures[h][i], b.captures[h][i], 1e-5) << hooks[h].name;
  EXPECT_NEAR(a.nll_sum, b.nll_sum, 1e-4);
}

// A directory with the tiny Llama's weights and an edited config.json (or index).
class BadDirectory : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("universae_bad_hf_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy_file(kTinyLlama + "/model.safetensors", dir_ / "model.safetensors");
    config_ = nlohmann::json::parse(io::read_text(kTinyLlama + "/config.json"));
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const nlohmann::json& j) { std::ofstream(dir_ / name) << j.dump(); }
  // The message of the UsageError loading the directory gives (empty when it loads).
  std::string refusal() {
    write("config.json", config_);
    try {
      LanguageModel m(dir_.string());
    } catch (const UsageError& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;
  nlohmann::json config_;
};

TEST_F(BadDirectory, UnsupportedModelTypeNamesTheKeyAndValue) {
  config_["model_type"] = "gpt2";
  const std::string m = refusal();
  EXPECT_NE(m.find("config.json: key 'model_type' 'gpt2' is not supported"), std::string::npos) << m;
}

TEST_F(BadDirectory, UnsupportedRopeScaling) {
  config_["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  const std::string m = refusal();
  EXPECT_NE(m.find("key 'rope_scaling' type 'yarn' is not supported"), std::string::npos) << m;
}

TEST_F(BadDirectory, ShapeThatDisagreesWithConfigJson) {
  config_["intermediate_size"] = 32;
  const std::string m = refusal();
  EXPECT_NE(m.find("model.safetensors: tensor 'model.layers.0.mlp.gate_proj.weight' has shape [64, 16], but"), std::string::npos) << m;
  EXPECT_NE(m.find("config.json implies [32, 16]"), std::string::npos) << m;
}

TEST_F(BadDirectory, MissingShardAndIndexNamingAFileThatIsNotThere) {
  fs::rename(dir_ / "model.safetensors", dir_ / "model-00001-of-00002.safetensors");
  EXPECT_NE(refusal().find("no model.safetensors and no model.safetensors.index.json"), std::string::npos);
  nlohmann::json index = {{"metadata", {{"total_size", 1}}}, {"weight_map", nlohmann::json::object()}};
  const io::safetensors::Reader shard((dir_ / "model-00001-of-00002.safetensors").string());
  for (const auto& t : shard.tensors()) index["weight_map"][t.name] = "model-00001-of-00002.safetensors";
  index["weight_map"]["lm_head.weight"] = "model-00002-of-00002.safetensors";
  write("model.safetensors.index.json", index);
  const std::string m = refusal();
  EXPECT_NE(m.find("model.safetensors.index.json: key 'weight_map.lm_head.weight' names model-00002-of-00002.safetensors, which is not in"),
            std::string::npos)
      << m;
}

TEST_F(BadDirectory, ShardedDirectoryLoadsLikeTheSingleFile) {
  // Two shards written from the one file: the model gives the same logits.
  const io::safetensors::Reader whole((dir_ / "model.safetensors").string());
  std::vector<io::safetensors::Tensor> first, second;
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  for (const auto& t : whole.tensors()) {
    const bool one = t.name.find("layers.1.") == std::string::npos;
    (one ? first : second).push_back({t.name, whole.map(t.name).clone(), io::safetensors::DType::kBF16});
    index["weight_map"][t.name] = one ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  io::safetensors::write((dir_ / "model-00001-of-00002.safetensors").string(), first, {});
  io::safetensors::write((dir_ / "model-00002-of-00002.safetensors").string(), second, {});
  fs::remove(dir_ / "model.safetensors");
  write("model.safetensors.index.json", index);
  EXPECT_EQ(refusal(), "");
  const LanguageModel sharded(dir_.string()), single(kTinyLlama);
  EXPECT_EQ(sharded.next_logits({1, 42, 99}), single.next_logits({1, 42, 99}));
}

}  // namespace
}  // namespace universae::lm
