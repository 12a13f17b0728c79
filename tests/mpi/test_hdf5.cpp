// The collective HDF5 pattern: uneven row blocks written by each rank, read back everywhere.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/output.hpp"
#include "parallel/comm.hpp"

using namespace universae;

namespace {
std::string shared_temp(const parallel::Comm& comm, const std::string& name) {
  // One path for all ranks (ranks of a test share the node's /tmp).
  return (std::filesystem::temp_directory_path() / ("universae_mpi_" + name + "_np" + std::to_string(comm.size()) + ".h5")).string();
}
}  // namespace

TEST(Hdf5, CollectiveUnevenRowsRoundTrip) {
  const auto comm = parallel::Environment::world();
  const std::string path = shared_temp(comm, "rows");
  const int64_t n = 10, cols = 3;
  const core::Range mine = core::shard_range(n, comm.rank(), comm.size());
  {
    io::File f = io::File::create(comm, path);
    f.create_dataset("/group/matrix", io::DType::kFloat32, {n, cols});
    f.create_dataset("/index", io::DType::kInt64, {n});
    std::vector<float> rows;
    std::vector<int64_t> index;
    for (int64_t i = mine.begin; i < mine.end; ++i) {
      index.push_back(1000 + i);
      for (int64_t j = 0; j < cols; ++j) rows.push_back(static_cast<float>(i * 10 + j));
    }
    f.write_rows("/group/matrix", mine, rows.data());
    f.write_rows("/index", mine, index.data());
    f.write_attr("/group", "label", "héllo");
    f.write_attr("/", "n_ranks", static_cast<int64_t>(comm.size()));
    f.write_attr("/", "ratio", 0.25);
    f.write_attr("/", "complete", true);
  }
  io::File f = io::File::open_read(comm, path);
  EXPECT_EQ(f.shape("/group/matrix"), (std::vector<int64_t>{n, cols}));
  std::vector<float> all(n * cols);
  f.read_rows("/group/matrix", {0, n}, all.data());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < cols; ++j) EXPECT_EQ(all[i * cols + j], static_cast<float>(i * 10 + j));
  std::vector<double> as_double(n);  // converted on read
  f.read_rows("/index", {0, n}, as_double.data());
  EXPECT_EQ(as_double[7], 1007.0);
  EXPECT_EQ(f.read_attr_string("/group", "label"), "héllo");
  EXPECT_EQ(f.read_attr_int("/", "n_ranks"), comm.size());
  EXPECT_DOUBLE_EQ(f.read_attr_double("/", "ratio"), 0.25);
  EXPECT_TRUE(f.read_attr_bool("/", "complete"));
  EXPECT_FALSE(f.exists("/missing/deeper"));
  EXPECT_EQ(f.children("/"), (std::vector<std::string>{"group", "index"}));
}

TEST(Hdf5, MissingFileIsAUsageErrorOnEveryRank) {
  const auto comm = parallel::Environment::world();
  EXPECT_THROW(io::File::open_read(comm, "/nonexistent/file.h5"), UsageError);
  EXPECT_THROW(io::File::create(comm, "/nonexistent/dir/file.h5"), UsageError);
}

TEST(Hdf5, PublishRenamesOnlyOnCommit) {
  const auto comm = parallel::Environment::world();
  const std::string path = shared_temp(comm, "publish");
  if (comm.is_root()) std::filesystem::remove(path);
  comm.barrier();
  {
    io::Pending pending(comm, path);
    {
      io::File f = io::File::create(comm, pending.partial());
      f.write_attr("/", "complete", true);
    }
    comm.barrier();
    EXPECT_FALSE(std::filesystem::exists(path));
    pending.commit();
  }
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
}

// A write that fails on one rank only, as rank 0's write of rows the others have none of on a disk that
// filled up (e2e_faults once hung there: rank 0 unwound into the file's collective close while rank 1 was
// in the next collective write). Rank 0 gets a file size limit (RLIMIT_FSIZE: its write fails with EFBIG)
// and every rank must throw InternalError with rank 0's message, then close the file together.
TEST(Hdf5, AWriteThatFailsOnOneRankThrowsOnEveryRank) {
  const auto comm = parallel::Environment::world();
  // At 2 ranks the MPI-IO layer (OpenMPI's OMPIO here) writes rank 0's rows from rank 0; at 3 it aggregates
  // them on another rank, whose write does not fail, so the test would check nothing there.
  if (comm.size() != 2) GTEST_SKIP() << "needs 2 ranks: a failure on one rank of two";
  const std::string path = shared_temp(comm, "one_rank_fails");
  const int64_t n = 1 << 18, cols = 8;  // 8 MiB of rows, all rank 0's
  const core::Range mine = comm.rank() == 0 ? core::Range{0, n} : core::Range{n, n};
  const std::vector<float> rows(static_cast<size_t>(mine.size() * cols), 1.0f);
  std::string message;
  {
    io::File f = io::File::create(comm, path);
    f.create_dataset("/rows", io::DType::kFloat32, {n, cols});
    comm.barrier();
    rlimit saved{};
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
    void (*saved_handler)(int) = SIG_DFL;
    if (comm.rank() == 0) {
      saved_handler = std::signal(SIGXFSZ, SIG_IGN);  // the write fails with EFBIG instead of killing the rank
      rlimit small = saved;
      small.rlim_cur = 64 << 10;
      ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
    }
    try {
      f.write_rows("/rows", mine, rows.data());
    } catch (const InternalError& e) {
      message = e.what();
    }
    if (comm.rank() == 0) {
      ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &saved), 0);
      std::signal(SIGXFSZ, saved_handler);
    }
  }  // the collective close: reached by every rank, or the test hangs (ctest's timeout)
  EXPECT_NE(message.find("write /rows failed"), std::string::npos) << "rank " << comm.rank() << ": " << message;
  EXPECT_NE(message.find("(rank 0 on "), std::string::npos) << message;
  comm.barrier();
  if (comm.is_root()) std::filesystem::remove(path);
}
