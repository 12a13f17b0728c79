// Config parsing, overrides, validation and echo.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "config/config.hpp"
#include "core/error.hpp"
#include "usage_error.hpp"

using universae::UsageError;
using namespace universae::config;
using universae::test_support::usage_error;

namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / ("universae_test_" + name + ".toml");
  std::ofstream(path) << text;
  return path.string();
}

}  // namespace

TEST(Config, DefaultsResolveNameAndOutputDir) {
  const Config c = load("", {});
  EXPECT_EQ(c.run.name, "universae");
  EXPECT_EQ(c.run.output_dir, "runs/universae");
  EXPECT_EQ(c.sae.architecture, universae::core::Architecture::kTopK);
  const Config j = load(write_temp("named_job", "[sae]\nk = 4\n"), {});
  EXPECT_EQ(j.run.name, "universae_test_named_job");
  EXPECT_EQ(j.run.output_dir, "runs/universae_test_named_job");
}

TEST(Config, FileValuesAndSeedCount) {
  const Config c = load(write_temp("values", R"(
[data.synthetic]
d = 32
mean_l0 = 4      # an integer is accepted for a number
[sae]
n_latents = 128
k = 4
seeds = 3        # a count means [0, 3)
[train]
lr = 1e-3
)"),
                        {});
  EXPECT_EQ(c.data.synthetic.d, 32);
  EXPECT_DOUBLE_EQ(c.data.synthetic.mean_l0, 4.0);
  EXPECT_EQ(c.sae.n_latents, 128);
  EXPECT_EQ(c.sae.seeds, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
}

TEST(Config, OverridesApplyInOrderAndParseTomlValues) {
  const Config c = load("", {"sae.k=4", "sae.seeds=[3, 5]", "sae.k=6", "train.lr=0.01", "run.output_dir=out/x",
                             "sae.apply_b_dec_to_input=false", "run.stages=train"});
  EXPECT_EQ(c.sae.k, 6);
  EXPECT_EQ(c.sae.seeds, (std::vector<int64_t>{3, 5}));
  EXPECT_DOUBLE_EQ(c.train.lr, 0.01);
  EXPECT_EQ(c.run.output_dir, "out/x");  // a bare word is a string
  EXPECT_FALSE(c.sae.apply_b_dec_to_input);
  EXPECT_EQ(c.run.stages, (std::vector<Stage>{Stage::kTrain}));
}

TEST(Config, UnknownKeyNamesKeyAndNearestValidOne) {
  const std::string path = write_temp("unknown", "[train]\nbatchsize = 64\n");
  const std::string msg = usage_error([&] { load(path, {}); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("'train.batchsize'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'train.batch_size'"), std::string::npos) << msg;
  const std::string over = usage_error([] { load("", {"sae.n_latent=4"}); });
  EXPECT_NE(over.find("did you mean 'sae.n_latents'"), std::string::npos) << over;
}

TEST(Config, WrongTypeNamesKeyAndTypes) {
  const std::string msg = usage_error([&] { load(write_temp("type", "[sae]\nk = \"eight\"\n"), {}); });
  EXPECT_NE(msg.find("'sae.k'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("integer"), std::string::npos) << msg;
  EXPECT_NE(msg.find("string"), std::string::npos) << msg;
  EXPECT_NE(usage_error([] { load("", {"sae.k=1.5"}); }).find("'sae.k'"), std::string::npos);
  EXPECT_NE(usage_error([] { load("", {"sae.seeds=[1, \"a\"]"}); }).find("'sae.seeds'"), std::string::npos);
}

TEST(Config, MissingFileAndSyntaxErrorNameTheFile) {
  const std::string msg = usage_error([] { load("/nonexistent/job.toml", {}); });
  EXPECT_NE(msg.find("/nonexistent/job.toml"), std::string::npos) << msg;
  const std::string path = write_temp("syntax", "[sae]\nk = = 3\n");
  const std::string syntax = usage_error([&] { load(path, {}); });
  EXPECT_NE(syntax.find(path + ":2:"), std::string::npos) << syntax;
}

TEST(Config, ValidationNamesTheKey) {
  EXPECT_NE(usage_error([] { load("", {"train.micro_batch=300"}); }).find("train.micro_batch"), std::string::npos);
  EXPECT_NE(usage_error([] { load("", {"sae.k=0"}); }).find("sae.k"), std::string::npos);
  EXPECT_NE(usage_error([] { load("", {"sae.seeds=[1, 1]"}); }).find("sae.seeds"), std::string::npos);
  EXPECT_NE(usage_error([] { load("", {"data.source=/no/such/store.h5"}); }).find("/no/such/store.h5"),
            std::string::npos);
  EXPECT_NE(usage_error([] { load("", {"run.stages=[\"train\", \"plot\"]"}); }).find("plot"), std::string::npos);
  EXPECT_NE(usage_error([] { load("", {"noequals"}); }).find("section.key=value"), std::string::npos);
}

TEST(Config, EchoRoundTrips) {
  const Config c = load("", {"sae.k=5", "sae.seeds=[2, 7]", "train.lr=0.003", "run.name=echo"});
  const std::string text = to_toml(c);
  const Config again = load(write_temp("echo", text), {});
  EXPECT_EQ(to_toml(again), text);
  const std::string train_only = to_toml(c, {"train"});
  EXPECT_NE(train_only.find("lr = 0.003"), std::string::npos) << train_only;
  EXPECT_EQ(train_only.find("[sae]"), std::string::npos) << train_only;
}

TEST(Config, DescribeKeysListsEveryKeyWithDefault) {
  const std::string help = describe_keys();
  EXPECT_NE(help.find("train.batch_size = 4096"), std::string::npos);
  EXPECT_NE(help.find("sae.seeds = [0]"), std::string::npos);
}

TEST(Config, EditDistance) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("same", "same"), 0u);
}

TEST(Config, ChoicesAreEnumsCheckedWhenTheConfigLoads) {
  const Config c = load("", {"sae.architecture=jumprelu", "compare.activation_mapping=mutual", "run.stages=[\"extract\", \"train\"]",
                             "extract.store=s.h5", "data.source=s.h5", "data.hookpoint=blocks.0.hook_resid_post"});
  EXPECT_EQ(c.sae.architecture, universae::core::Architecture::kJumpRelu);
  EXPECT_EQ(c.compare.activation_mapping, Mapping::kMutual);
  EXPECT_TRUE(c.has_stage(Stage::kExtract));
  EXPECT_FALSE(c.has_stage(Stage::kCompare));
  const std::string msg = usage_error([] { load("", {"compare.correlation_input=post"}); });
  EXPECT_NE(msg.find("compare.correlation_input = \"post\" is not a correlation input; choose codes or pre"), std::string::npos)
      << msg;
  // The echo writes the names back, and they load again.
  EXPECT_NE(to_toml(c).find("activation_mapping = 'mutual'"), std::string::npos) << to_toml(c);
}

TEST(Config, DefaultsComeFromTheKeyTable) {
  const Config c;  // no file, no overrides: every key at the default the table declares
  EXPECT_EQ(c.train.batch_size, 4096);
  EXPECT_DOUBLE_EQ(c.train.auxk_alpha, 1.0 / 32.0);
  EXPECT_EQ(c.sweep.extract.ranks, 2);
  EXPECT_EQ(c.sweep.train.ranks, 1);
  EXPECT_EQ(c.run.stages, (std::vector<Stage>{Stage::kTrain, Stage::kCompare}));
  EXPECT_NE(describe_keys({"sweep"}).find("sweep.extract.ranks = 2"), std::string::npos);
  EXPECT_EQ(describe_keys({"sweep"}).find("train.batch_size"), std::string::npos);
}

// Where outputs go is not part of a fingerprint; an input file is there by its identity, not its path.
TEST(Config, FingerprintsNameInputsByIdentityAndLeaveOutOutputs) {
  const Identity identity = [](const std::string& path) { return "ID(" + std::to_string(path.size()) + ")"; };
  const Config a = load("", {"run.output_dir=out/a", "extract.store=out/a/s.h5", "compare.saes=[\"x/seed0.h5\", \"x/seed1.h5\"]"});
  const Config b = load("", {"run.output_dir=elsewhere", "extract.store=elsewhere/s.h5", "compare.saes=[\"y/seed0.h5\", \"y/seed1.h5\"]"});
  for (const Stage stage : {Stage::kExtract, Stage::kTrain, Stage::kCompare})
    EXPECT_EQ(fingerprint(a, stage, identity), fingerprint(b, stage, identity)) << universae::core::name_of(stage);
  const std::string compare = fingerprint(a, Stage::kCompare, identity);
  EXPECT_EQ(compare.find("x/seed0.h5"), std::string::npos) << compare;
  EXPECT_NE(compare.find("ID(10)"), std::string::npos) << compare;
  const Config k = load("", {"sae.k=8"});
  EXPECT_NE(fingerprint(k, Stage::kTrain, identity), fingerprint(Config(), Stage::kTrain, identity));
  EXPECT_EQ(fingerprint(k, Stage::kCompare, identity), fingerprint(Config(), Stage::kCompare, identity));  // not its keys
}

// Keys added in 0.8 with the behaviour of 0.7 as their default (train.dtype, train.exact_sum) are left
// out of the fingerprint at that default, so SAEs trained by 0.7 stay reusable; any other value enters
// it. run.device and run.kernels never do (they change where, not what).
TEST(Config, LaterKeysAtTheirDefaultLeaveFingerprintsAsBefore) {
  const Identity identity = [](const std::string& path) { return path; };
  const std::string plain = fingerprint(Config(), Stage::kTrain, identity);
  EXPECT_EQ(plain.find("dtype"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("exact_sum"), std::string::npos) << plain;
  EXPECT_EQ(fingerprint(load("", {"train.dtype=\"float32\"", "train.exact_sum=true", "run.device=\"cpu\"",
                                  "run.kernels=\"generic\""}), Stage::kTrain, identity), plain);
  const std::string bf16 = fingerprint(load("", {"train.dtype=\"bfloat16\""}), Stage::kTrain, identity);
  EXPECT_NE(bf16.find("dtype = 'bfloat16'"), std::string::npos) << bf16;
  EXPECT_NE(fingerprint(load("", {"train.exact_sum=false"}), Stage::kTrain, identity), plain);
}
