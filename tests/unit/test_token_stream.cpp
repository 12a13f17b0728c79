// The training token stream over an activation store: every epoch visits each training row exactly
// once, epochs are shuffled differently, the held-out rows are never trained on, and the stream is a
// pure function of the position (reading it in any pieces gives the same tokens).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <vector>

#include "config/config.hpp"
#include "data/token_stream.hpp"
#include "io/h5.hpp"
#include "parallel/comm.hpp"

using namespace universae;

namespace {

// A store whose row r is (r, -r): rows identify themselves.
std::string write_store(int64_t T) {
  const auto path = (std::filesystem::temp_directory_path() / "universae_token_stream.h5").string();
  const parallel::Comm world = parallel::Environment::world();
  io::File f = io::File::create(world, path);
  f.create_group("/activations");
  f.create_dataset("/activations/blocks.0.hook_resid_post", io::DType::kFloat32, {T, 2});
  std::vector<float> rows;
  for (int64_t r = 0; r < T; ++r) rows.push_back(static_cast<float>(r)), rows.push_back(static_cast<float>(-r));
  f.write_rows("/activations/blocks.0.hook_resid_post", {0, T}, rows.data());
  f.write_attr("/", "model", "unit-test");
  f.write_attr("/", "complete", true);
  return path;
}

std::vector<int64_t> read_ids(data::TokenStream& s, int64_t first, int64_t count, int64_t piece) {
  std::vector<int64_t> ids;
  std::vector<float> buf(static_cast<size_t>(piece * 2));
  for (int64_t p = first; p < first + count; p += piece) {
    const int64_t len = std::min(piece, first + count - p);
    s.train_tokens(p, len, buf.data());
    for (int64_t i = 0; i < len; ++i) {
      EXPECT_EQ(buf[2 * i + 1], -buf[2 * i]);
      ids.push_back(static_cast<int64_t>(buf[2 * i]));
    }
  }
  return ids;
}

}  // namespace

TEST(TokenStream, StoreEpochsArePermutationsOfTheTrainingRows) {
  const int64_t T = 1000;
  config::Config cfg;
  cfg.data.source = write_store(T);
  cfg.data.hookpoint = "blocks.0.hook_resid_post";
  cfg.data.shuffle_chunk = 32;
  cfg.data.shuffle_buffer = 128;
  cfg.train.eval_tokens = 100;
  const parallel::Comm world = parallel::Environment::world();
  auto stream = data::open_token_stream(world, cfg);
  const int64_t per_epoch = (T - 100) / 32 * 32;  // whole chunks of the 900 training rows
  const auto epoch0 = read_ids(*stream, 0, per_epoch, 77);
  const auto epoch1 = read_ids(*stream, per_epoch, per_epoch, 100);
  for (const auto* e : {&epoch0, &epoch1}) {
    const std::set<int64_t> seen(e->begin(), e->end());
    EXPECT_EQ(static_cast<int64_t>(seen.size()), per_epoch);  // no repeats
    EXPECT_LT(*seen.rbegin(), T - 100);                      // never a held-out row
  }
  EXPECT_NE(epoch0, epoch1);
  int64_t in_place = 0;
  for (int64_t i = 0; i < per_epoch; ++i) in_place += epoch0[i] == i;
  EXPECT_LT(in_place, per_epoch / 10);  // shuffled
  // The same positions read in other pieces, and by a second stream: the same tokens.
  auto again = data::open_token_stream(world, cfg);
  EXPECT_EQ(read_ids(*again, 0, per_epoch, 1000), epoch0);
  EXPECT_EQ(read_ids(*again, per_epoch + 5, 50, 7),
            std::vector<int64_t>(epoch1.begin() + 5, epoch1.begin() + 55));
  // Evaluation reads the last rows in order.
  std::vector<float> eval(2 * 10);
  stream->eval_tokens(0, 10, eval.data());
  EXPECT_EQ(eval[0], static_cast<float>(T - 100));
  EXPECT_EQ(stream->eval_available(), 100);
  std::filesystem::remove(cfg.data.source);
}
