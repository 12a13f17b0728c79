// GoogleTest main for every C++ test binary: owns MPI (also as a singleton without mpirun),
// prints from rank 0 only, reports other ranks' failures as "[rank N] ...", and returns the
// result reduced over all ranks so a failure on any rank fails the test.
#include <gtest/gtest.h>

#include <cstdio>

#include "parallel/comm.hpp"
#include "parallel/log.hpp"

namespace {

class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] FAILURE %s:%d\n%s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(),
                   r.summary());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  universae::parallel::Environment env(argc, argv);
  testing::InitGoogleTest(&argc, argv);
  const auto world = universae::parallel::Environment::world();
  universae::log::set_rank(world.rank());
  if (world.rank() != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(world.rank()));
  }
  const int local = RUN_ALL_TESTS();
  const int64_t failed = world.allreduce_sum(static_cast<int64_t>(local != 0));
  if (world.is_root() && failed > 0) std::fprintf(stderr, "%lld rank(s) failed\n", static_cast<long long>(failed));
  return failed > 0 ? 1 : 0;
}
