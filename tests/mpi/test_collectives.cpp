// Collectives and the error contract. Inputs are functions of (rank, index), so the expected
// result is known on every rank without communication (the nccl-tests habit).
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.hpp"
#include "core/exact_sum.hpp"
#include "parallel/comm.hpp"

using namespace universae;

TEST(Collectives, AllreduceSums) {
  const auto comm = parallel::Environment::world();
  const int p = comm.size();
  EXPECT_EQ(comm.allreduce_sum(static_cast<int64_t>(comm.rank() + 1)), int64_t{p} * (p + 1) / 2);
  EXPECT_DOUBLE_EQ(comm.allreduce_sum(0.5), 0.5 * p);
  EXPECT_DOUBLE_EQ(comm.allreduce_max(static_cast<double>(comm.rank())), p - 1.0);
  std::vector<int64_t> v = {comm.rank(), 1, -comm.rank()};
  comm.allreduce_sum(v.data(), 3);
  EXPECT_EQ(v, (std::vector<int64_t>{int64_t{p} * (p - 1) / 2, p, -int64_t{p} * (p - 1) / 2}));
}

TEST(Collectives, ExactSumIsIndependentOfTheRankCount) {
  // 12 "micro-batch" values split over however many ranks: the reduced float must equal the
  // exact sum computed serially on every rank.
  const auto comm = parallel::Environment::world();
  std::vector<float> values(12);
  for (int i = 0; i < 12; ++i) values[i] = (i % 2 ? -1.0f : 1.0f) * std::ldexp(1.0f + i / 16.0f, 3 * i - 18);
  core::wide_int serial = 0, mine = 0;
  ASSERT_TRUE(core::accumulate_fixed(values.data(), 1, &serial));
  for (int i = 1; i < 12; ++i) ASSERT_TRUE(core::accumulate_fixed(&values[i], 1, &serial));
  for (int i = 0; i < 12; ++i) {
    if (i % comm.size() == comm.rank()) {
      ASSERT_TRUE(core::accumulate_fixed(&values[i], 1, &mine));
    }
  }
  comm.allreduce_sum(&mine, 1);
  const float a = core::fixed_to_float(mine), b = core::fixed_to_float(serial);
  EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0) << a << " vs " << b;
}

TEST(Collectives, MaxlocTiesKeepTheLowestIndex) {
  const auto comm = parallel::Environment::world();
  // Element 0: every rank has 1.0 at index = its rank -> 0 wins. Element 1: the last rank has the max.
  std::vector<float> value = {1.0f, static_cast<float>(comm.rank())};
  std::vector<int64_t> index = {comm.rank(), 100 + comm.rank()};
  comm.allreduce_maxloc(value.data(), index.data(), 2);
  EXPECT_EQ(index[0], 0);
  EXPECT_EQ(value[1], comm.size() - 1.0f);
  EXPECT_EQ(index[1], 100 + comm.size() - 1);
}

TEST(Collectives, AllgathervKeepsRankOrder) {
  const auto comm = parallel::Environment::world();
  std::vector<int64_t> mine(static_cast<size_t>(comm.rank() + 1), comm.rank());  // uneven pieces
  const auto all = comm.allgatherv(mine);
  std::vector<int64_t> expected;
  for (int r = 0; r < comm.size(); ++r) expected.insert(expected.end(), static_cast<size_t>(r + 1), r);
  EXPECT_EQ(all, expected);
}

TEST(Collectives, AgreeOnErrorRaisesTheLowestFailingRanksMessageEverywhere) {
  const auto comm = parallel::Environment::world();
  EXPECT_NO_THROW(parallel::agree_on_error(comm, ""));
  const std::string mine = comm.rank() == comm.size() - 1 ? "broken on the last rank" : "";
  try {
    parallel::agree_on_error(comm, mine);
    ADD_FAILURE() << "every rank must throw";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "broken on the last rank");
  }
}

TEST(Collectives, SplitMakesSubCommunicators) {
  const auto comm = parallel::Environment::world();
  const auto half = comm.split(comm.rank() % 2, comm.rank());
  const int expected = comm.size() / 2 + (comm.rank() % 2 == 0 ? comm.size() % 2 : 0);
  EXPECT_EQ(half.size(), expected);
  EXPECT_EQ(half.allreduce_sum(int64_t{1}), expected);
}
