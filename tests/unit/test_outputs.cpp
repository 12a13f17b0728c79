// io/output.hpp and io/fingerprint.hpp: the one publish (files, directories, resumable partial outputs)
// and the reuse decision (identities of inputs; complete, fingerprinted outputs); scalar attribute reads;
// io/schema.hpp's patterns and the walk that describes a file; io/provenance.hpp's hashes and names, and
// the store writer's record of whether every value it stored is finite.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "core/error.hpp"
#include "io/activation_store.hpp"
#include "io/fingerprint.hpp"
#include "io/h5.hpp"
#include "io/inspect.hpp"
#include "io/output.hpp"
#include "io/provenance.hpp"
#include "io/schema.hpp"
#include "parallel/comm.hpp"

using namespace universae;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("universae_test_outputs_" + name);
  fs::remove_all(p);
  return p;
}

void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

// An HDF5 output as a stage writes it: a fingerprint, and `complete` last (when `complete`).
void write_output(const fs::path& p, const std::string& fingerprint, bool complete) {
  io::File f = io::File::create(parallel::Environment::world(), p.string());
  f.write_attr("/", "format", "universae-test");
  f.write_attr("/", "fingerprint", fingerprint);
  if (complete) f.write_attr("/", "complete", true);
}

}  // namespace

TEST(Pending, PublishesFilesAndDirectoriesOnlyOnCommit) {
  const fs::path file = scratch("file.txt");
  ASSERT_TRUE(io::publish_text(file.string(), "a,b\n"));
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "a,b");
  EXPECT_FALSE(fs::exists(file.string() + ".partial"));

  const fs::path dir = scratch("dir");
  fs::create_directories(dir / "old");
  {
    io::Pending pending(dir.string());
    fs::create_directories(pending.partial());
    write(fs::path(pending.partial()) / "new.txt", "x");
    EXPECT_TRUE(fs::exists(dir / "old"));  // the old directory stays until commit
    pending.commit();
  }
  EXPECT_TRUE(fs::exists(dir / "new.txt"));
  EXPECT_FALSE(fs::exists(dir / "old"));  // replaced as a whole
  {
    io::Pending abandoned(dir.string());
    fs::create_directories(abandoned.partial());
  }  // no commit: the partial directory goes, the published one stays
  EXPECT_FALSE(fs::exists(dir.string() + ".partial"));
  EXPECT_TRUE(fs::exists(dir / "new.txt"));
}

TEST(Pending, AResumablePartialOutputSurvivesAndIsNotRemovedByTheNextRun) {
  const fs::path out = scratch("store.h5");
  {
    io::Pending first(out.string(), io::OnAbandon::kKeep);
    write(first.partial(), "half a store");
  }  // the run dies
  ASSERT_TRUE(fs::exists(out.string() + ".partial"));
  io::Pending second(out.string(), io::OnAbandon::kKeep);  // the rerun finds it
  EXPECT_TRUE(fs::exists(second.partial()));
  second.commit();
  EXPECT_TRUE(fs::exists(out));
}

TEST(Fingerprint, IdentitiesNameContentNotPlace) {
  const fs::path a = scratch("a.txt"), b = scratch("b.txt"), c = scratch("c.txt");
  write(a, "once upon a time");
  write(b, "once upon a time");
  write(c, "once upon a tide");
  EXPECT_EQ(io::input_identity(a.string()), io::input_identity(b.string()));  // the same bytes elsewhere
  EXPECT_NE(io::input_identity(a.string()), io::input_identity(c.string()));
  EXPECT_EQ(io::input_identity(scratch("nothing").string()), "missing");
  // A universae output is named by its format and its fingerprint, so an upstream change reaches it.
  const fs::path x = scratch("x.h5"), y = scratch("y.h5");
  write_output(x, "[sae]\nk = 8\n", true);
  write_output(y, "[sae]\nk = 16\n", true);
  EXPECT_EQ(io::input_identity(x.string()), "universae-test " + io::fingerprint_hash("[sae]\nk = 8\n"));
  EXPECT_NE(io::input_identity(x.string()), io::input_identity(y.string()));
  // A directory (a sparsify/SAELens SAE) by the identities of its files.
  const fs::path d1 = scratch("d1"), d2 = scratch("d2");
  for (const auto& d : {d1, d2}) fs::create_directories(d), write(d / "cfg.json", "{\"k\": 8}");
  EXPECT_EQ(io::input_identity(d1.string()), io::input_identity(d2.string()));
  write(d2 / "cfg.json", "{\"k\": 9}");
  EXPECT_NE(io::input_identity(d1.string()), io::input_identity(d2.string()));
}

TEST(Fingerprint, OnlyACompleteOutputWithTheSameFingerprintIsReused) {
  const fs::path p = scratch("results.h5");
  EXPECT_EQ(io::reuse_problem(p.string(), "fp"), "missing");
  write_output(p, "fp", false);
  EXPECT_EQ(io::reuse_problem(p.string(), "fp"), "incomplete");
  EXPECT_TRUE(io::resumable(p.string(), "fp"));  // a partial output begun with these settings
  EXPECT_FALSE(io::resumable(p.string(), "other"));
  write_output(p, "fp", true);
  EXPECT_TRUE(io::reusable(p.string(), "fp"));
  EXPECT_EQ(io::reuse_problem(p.string(), "other"), "made with other settings");
  {
    io::File f = io::File::create(parallel::Environment::world(), p.string());
    f.write_attr("/", "complete", true);
  }
  EXPECT_EQ(io::reuse_problem(p.string(), "fp"), "written by an older universae (no fingerprint)");
}

// An attribute read as one value must hold one (a string list read as one string wrote past its
// buffer: `universae inspect` of an activation store, whose `vocab` is such a list, died with SIGSEGV).
TEST(H5, AListAttributeReadAsOneValueIsRefusedAndInspectShowsIt) {
  const fs::path p = scratch("store_like.h5");
  const auto comm = parallel::Environment::world();
  {
    io::File f = io::File::create(comm, p.string());
    f.write_attr("/", "format", "universae-activations");
    f.write_attr("/", "vocab", std::vector<std::string>{"<unk>", "<s>", "</s>"});
    f.create_group("/activations");
  }
  const io::File f = io::File::open_read(comm, p.string());
  for (auto read : {+[](const io::File& g) { (void)g.read_attr_string("/", "vocab"); },
                    +[](const io::File& g) { (void)g.read_attr_double("/", "vocab"); },
                    +[](const io::File& g) { (void)g.read_attr_int("/", "vocab"); }}) {
    try {
      read(f);
      ADD_FAILURE() << "a 3-element attribute was read as one value";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("holds 3 values, not one"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(f.read_attr_strings("/", "vocab").size(), 3u);
  const std::string text = io::describe_file(comm, p.string());
  EXPECT_NE(text.find("vocabulary 3 pieces"), std::string::npos) << text;
}

// A "*" stands for any run of characters within one segment; the first matching entry wins.
TEST(Schema, PatternsMatchSegmentBySegment) {
  EXPECT_TRUE(io::schema_pattern_matches("/pairs/*/lap/decoder_cos", "/pairs/seed0--seed1/lap/decoder_cos"));
  EXPECT_FALSE(io::schema_pattern_matches("/pairs/*/lap", "/pairs/seed0--seed1/lap/decoder_cos"));
  EXPECT_FALSE(io::schema_pattern_matches("/pairs/*", "/pairs/a/b"));
  EXPECT_TRUE(io::schema_pattern_matches("/training/tokens*", "/training/tokens102400"));
  EXPECT_TRUE(io::schema_pattern_matches("/", "/"));
  EXPECT_FALSE(io::schema_pattern_matches("/", "/W_dec"));
  const auto* tokens = io::schema_entry(io::SchemaKind::kResults, "/training/tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->units, "tokens");  // the dataset, not the step groups /training/tokens<T>
  const auto* step_cos = io::schema_entry(io::SchemaKind::kResults, "/training/tokens0/a--b/lap/decoder_cos");
  ASSERT_NE(step_cos, nullptr);
  EXPECT_EQ(step_cos->units, "cosine");
  EXPECT_EQ(io::schema_entry(io::SchemaKind::kSae, "/not_in_the_table"), nullptr);
}

// Every described object gets its description (and units when it has any); an existing description
// is kept; what the table lacks is returned.
TEST(Schema, DescribeObjectsWritesTheTableAndNamesWhatItLacks) {
  const fs::path p = scratch("described.h5");
  const auto comm = parallel::Environment::world();
  {
    io::File f = io::File::create(comm, p.string());
    f.write_vector("/frequency", io::DType::kFloat64, std::vector<double>{0.5, 0.25});
    f.write_vector("/b_enc", io::DType::kFloat32, std::vector<float>{0, 0});
    f.write_attr("/b_enc", "description", "kept");
    f.create_group("/extra/inner");
    EXPECT_EQ(io::describe_objects(f, io::SchemaKind::kSae), (std::vector<std::string>{"/extra", "/extra/inner"}));
  }
  const io::File f = io::File::open_read(comm, p.string());
  EXPECT_EQ(f.read_attr_string("/frequency", "units"), "fraction");
  EXPECT_NE(f.read_attr_string("/frequency", "description").find("held-out"), std::string::npos);
  EXPECT_EQ(f.read_attr_string("/b_enc", "description"), "kept");
  EXPECT_FALSE(f.has_attr("/b_enc", "units"));
  EXPECT_NE(f.read_attr_string("/", "description").find("SAE file"), std::string::npos);
}

// FIPS 180-2's examples (the published digests), and a file read in several buffers.
TEST(Provenance, Sha256MatchesThePublishedVectors) {
  EXPECT_EQ(io::sha256_text(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(io::sha256_text("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(io::sha256_text("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const fs::path p = scratch("million_a.txt");
  write(p, std::string(1000000, 'a'));  // FIPS 180-2 appendix B.3; 8 MiB buffers, so one read here
  EXPECT_EQ(io::sha256_file(p.string()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_THROW(io::sha256_file((p.string() + ".missing")), UsageError);
}

TEST(Provenance, ModelNames) {
  EXPECT_EQ(io::model_name_of("/data/stories260K.bin"), "stories260K");
  EXPECT_EQ(io::model_name_of("/data/x.gguf", "Llama 2 7B"), "Llama 2 7B");
  const fs::path snapshot = scratch("hub") / "models--meta-llama--Llama-2-7b-hf" / "snapshots" / "0123abcd";
  fs::create_directories(snapshot);
  EXPECT_EQ(io::model_name_of(snapshot.string()), "meta-llama/Llama-2-7b-hf");
  EXPECT_EQ(io::model_name_of(snapshot.string() + "/"), "meta-llama/Llama-2-7b-hf");
  const fs::path plain = scratch("tiny-llama");
  fs::create_directories(plain);
  EXPECT_EQ(io::model_name_of(plain.string() + "/"), plain.filename().string());
  EXPECT_EQ(io::absolute_path("/a/b/../c/./d"), "/a/c/d");
  EXPECT_EQ(io::absolute_path("synthetic"), "synthetic");
}

namespace {

// A one-hookpoint store of 4 rows × 2 in `dtype`, the values written as given, then whether the
// writer recorded every stored value finite.
bool stored_finite(core::FloatFormat dtype, const std::vector<float>& values) {
  const auto comm = parallel::Environment::world();
  const fs::path p = scratch("finite.h5");
  io::StoreLayout L;
  L.tokens = {1, 2, 3, 4};
  L.doc_offsets = {0, 4};
  L.seq_offsets = {0, 4};
  L.n_batches = 1;
  L.hookpoints = {"blocks.0.hook_resid_post"};
  L.widths = {2};
  L.dtype = dtype;
  L.inputs = {"text.txt"};
  L.vocab = {"a", "b", "c", "d", "e"};
  L.fingerprint = "test";
  {
    io::ActivationStoreWriter w(comm, p.string(), L);
    w.write_rows(0, comm.is_root() ? core::Range{0, 4} : core::Range{0, 0}, values.data());
    w.write_batch_nll(0, comm.is_root(), 0.0);
    w.checkpoint(1);
    w.finish(0.0, 0);
  }
  const io::File f = io::File::open_read(comm, p.string());
  return f.read_attr_bool("/", "activations_finite");
}

}  // namespace

TEST(ActivationStoreWriter, RecordsWhetherEveryStoredValueIsFinite) {
  using core::FloatFormat;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> ok = {1, -2, 3e4f, -6.5e4f, 0, 1e-8f, 7, 8};
  EXPECT_TRUE(stored_finite(FloatFormat::kFloat32, ok));
  EXPECT_TRUE(stored_finite(FloatFormat::kFloat16, ok));
  EXPECT_TRUE(stored_finite(FloatFormat::kBFloat16, ok));
  for (auto dtype : {FloatFormat::kFloat32, FloatFormat::kFloat16, FloatFormat::kBFloat16}) {
    EXPECT_FALSE(stored_finite(dtype, {1, 2, 3, nan, 5, 6, 7, 8}));
    EXPECT_FALSE(stored_finite(dtype, {1, 2, 3, 4, 5, 6, 7, -inf}));
  }
  // float16 holds |x| < 65520 (65504 is its largest value); bfloat16 rounds FLT_MAX up to Inf.
  EXPECT_TRUE(stored_finite(FloatFormat::kFloat16, {65519.0f, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_FALSE(stored_finite(FloatFormat::kFloat16, {65520.0f, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_TRUE(stored_finite(FloatFormat::kFloat32, {std::numeric_limits<float>::max(), 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_FALSE(stored_finite(FloatFormat::kBFloat16, {std::numeric_limits<float>::max(), 2, 3, 4, 5, 6, 7, 8}));
}
