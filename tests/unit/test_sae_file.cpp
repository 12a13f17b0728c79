// SAE file format v1: round trip, validation, atomic publish.
#include <ATen/Context.h>
#include <ATen/Functions.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/output.hpp"
#include "io/sae_file.hpp"
#include "parallel/comm.hpp"

using namespace universae;

namespace {

io::SaeWeights make_sae(int64_t n, int64_t d) {
  io::SaeWeights w;
  w.header.architecture = core::Architecture::kTopK;
  w.header.d_in = d;
  w.header.n_latents = n;
  w.header.k = 3;
  w.header.seed = 11;
  w.header.hookpoint = "blocks.2.hook_resid_post";
  w.header.provenance.model = "unit-test";
  w.header.apply_b_dec_to_input = false;
  w.header.config = "[sae]\nk = 3\n";
  at::manual_seed(n * 1000 + d);  // the same weights whichever tests ran before
  w.W_enc = at::randn({n, d}).to(at::kFloat);
  w.b_enc = at::randn({n}).to(at::kFloat);
  w.W_dec = at::randn({n, d}).to(at::kFloat);
  w.b_dec = at::randn({d}).to(at::kFloat);
  w.frequency = at::rand({n}, at::kDouble);
  w.metrics = {{"ground_truth_mmcs", 0.75}};
  return w;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("universae_unit_" + name + ".h5")).string();
}

}  // namespace

TEST(SaeFile, RoundTripIsExact) {
  const auto comm = parallel::Environment::world();
  const std::string path = temp_path("roundtrip");
  const io::SaeWeights w = make_sae(10, 6);
  io::write_sae(comm, path, w);
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
  const io::SaeWeights r = io::read_sae(comm, path);
  EXPECT_TRUE(at::equal(r.W_enc, w.W_enc));
  EXPECT_TRUE(at::equal(r.b_enc, w.b_enc));
  EXPECT_TRUE(at::equal(r.W_dec, w.W_dec));
  EXPECT_TRUE(at::equal(r.b_dec, w.b_dec));
  EXPECT_TRUE(at::equal(r.frequency, w.frequency));
  EXPECT_EQ(r.header.architecture, core::Architecture::kTopK);
  EXPECT_EQ(r.header.k, 3);
  EXPECT_EQ(r.header.seed, 11);
  EXPECT_EQ(r.header.hookpoint, "blocks.2.hook_resid_post");
  EXPECT_FALSE(r.header.apply_b_dec_to_input);
  EXPECT_EQ(r.header.config, "[sae]\nk = 3\n");
  io::File f = io::File::open_read(comm, path);
  EXPECT_TRUE(f.read_attr_bool("/", "complete"));
  EXPECT_EQ(f.read_attr_string("/", "format"), "universae-sae");
  EXPECT_DOUBLE_EQ(f.read_attr_double("/", "ground_truth_mmcs"), 0.75);
  const at::Tensor rows = io::read_sae_rows(comm, path, "W_dec", {3, 7});
  EXPECT_TRUE(at::equal(rows, w.W_dec.narrow(0, 3, 4)));
}

TEST(SaeFile, RejectsMissingIncompleteAndMisshapenFiles) {
  const auto comm = parallel::Environment::world();
  auto message = [&](const std::string& path) -> std::string {
    try {
      io::read_sae_header(comm, path);
    } catch (const UsageError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message("/nonexistent/sae.h5").find("/nonexistent/sae.h5: file not found"), std::string::npos);

  const std::string bad = temp_path("bad");
  io::write_sae(comm, bad, make_sae(4, 3));
  {
    io::File f = io::File::create(comm, bad);  // rewrite: a header with a wrong W_dec shape, not complete
    f.write_attr("/", "format", "universae-sae");
    f.write_attr("/", "format_version", int64_t{1});
    f.write_attr("/", "complete", false);
  }
  EXPECT_NE(message(bad).find("incomplete"), std::string::npos) << message(bad);
  {
    io::File f = io::File::create(comm, bad);
    f.write_attr("/", "format", "universae-sae");
    f.write_attr("/", "format_version", int64_t{1});
    f.write_attr("/", "architecture", "topk");
    f.write_attr("/", "d_in", int64_t{3});
    f.write_attr("/", "n_latents", int64_t{4});
    f.create_dataset("/W_enc", io::DType::kFloat32, {4, 3});
    f.create_dataset("/b_enc", io::DType::kFloat32, {4});
    f.create_dataset("/W_dec", io::DType::kFloat32, {4, 5});
    f.write_attr("/", "complete", true);
  }
  const std::string shape = message(bad);
  EXPECT_NE(shape.find("/W_dec has shape [4, 5], expected [4, 3]"), std::string::npos) << shape;
  {
    io::File f = io::File::create(comm, bad);
    f.write_attr("/", "format", "something-else");
  }
  EXPECT_NE(message(bad).find("format is 'something-else'"), std::string::npos);
}

TEST(SaeFile, UncommittedPendingFileLeavesNothing) {
  const auto comm = parallel::Environment::world();
  const std::string path = temp_path("pending");
  std::filesystem::remove(path);
  {
    io::Pending pending(comm, path);
    io::File f = io::File::create(comm, pending.partial());
    f.write_attr("/", "format", "universae-sae");
  }  // no commit: as if an exception had unwound the writer
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
}
