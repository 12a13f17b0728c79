// GPU collectives (label gpu): NCCL reductions against values known on every rank (functions of rank
// and index, the nccl-tests habit), and the stream ordering the trainer relies on. Every test skips
// cleanly on a machine without a CUDA device; built only with UNIVERSAE_NCCL.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <vector>

#include "parallel/comm.hpp"
#include "parallel/nccl.hpp"

using namespace universae;

namespace {

#define SKIP_WITHOUT_GPU()                                                             \
  do {                                                                                 \
    const auto world_ = parallel::Environment::world();                                \
    const int has_ = parallel::device_count() > 0 ? 1 : 0;                             \
    if (world_.allreduce_max(static_cast<double>(has_)) == 0) GTEST_SKIP() << "no CUDA device"; \
    ASSERT_EQ(has_, 1) << "some ranks see a device, this one does not";                \
  } while (0)

template <typename T>
struct DeviceBuffer {
  explicit DeviceBuffer(const std::vector<T>& host) : n(host.size()) {
    EXPECT_EQ(cudaMalloc(&ptr, n * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  std::vector<T> host() const {
    std::vector<T> out(n);
    EXPECT_EQ(cudaMemcpy(out.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  }
  T* ptr = nullptr;
  size_t n;
};

}  // namespace

TEST(Nccl, DeviceIsTheLocalRank) {
  SKIP_WITHOUT_GPU();
  const auto world = parallel::Environment::world();
  const int device = parallel::select_device(world);
  int current = -1;
  ASSERT_EQ(cudaGetDevice(&current), cudaSuccess);
  EXPECT_EQ(current, device);
  EXPECT_EQ(device, world.node_local().rank() % parallel::device_count());
}

TEST(Nccl, AllreduceSumMaxBroadcast) {
  SKIP_WITHOUT_GPU();
  const auto world = parallel::Environment::world();
  parallel::select_device(world);
  const parallel::NcclComm nccl(world);
  const int p = world.size(), r = world.rank();
  const int64_t n = 1 << 20;  // large enough for NCCL's ring/tree chunking
  std::vector<float> f(n);
  std::vector<double> d(n);
  for (int64_t i = 0; i < n; ++i) f[i] = static_cast<float>((r + 1) * (i % 97)), d[i] = 0.25 * (r + 1) + i;
  DeviceBuffer<float> fs(f), fm(f), fb(f);
  DeviceBuffer<double> ds(d);
  nccl.allreduce_sum(fs.ptr, n, nullptr);
  nccl.allreduce_sum(ds.ptr, n, nullptr);
  nccl.allreduce_max(fm.ptr, n, nullptr);
  nccl.broadcast(fb.ptr, n, p - 1, nullptr);
  nccl.synchronize();
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const auto sum = fs.host(), max = fm.host(), bcast = fb.host();
  const auto dsum = ds.host();
  const double ranks = p * (p + 1) / 2.0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(sum[i], static_cast<float>(ranks * (i % 97))) << i;  // small integers: exact in float
    ASSERT_EQ(max[i], static_cast<float>(p * (i % 97))) << i;
    ASSERT_EQ(bcast[i], static_cast<float>(p * (i % 97))) << i;
    ASSERT_NEAR(dsum[i], 0.25 * ranks + static_cast<double>(p) * i, 1e-9 * (1 + i)) << i;
  }
}

TEST(Nccl, ReductionIsOrderedWithTheComputeStream) {
  // Work queued on a compute stream before the reduction must be in it, and work queued after must
  // see its result, with no host synchronisation between (the events of NcclComm).
  SKIP_WITHOUT_GPU();
  const auto world = parallel::Environment::world();
  parallel::select_device(world);
  const parallel::NcclComm nccl(world);
  cudaStream_t compute = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking), cudaSuccess);
  const int64_t n = 1 << 22;
  DeviceBuffer<float> buf(std::vector<float>(n, -1.0f));
  std::vector<float> ones(n, 1.0f), out(n, 0.0f);
  float* pinned_in = nullptr;
  float* pinned_out = nullptr;
  ASSERT_EQ(cudaMallocHost(&pinned_in, n * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMallocHost(&pinned_out, n * sizeof(float)), cudaSuccess);
  std::copy(ones.begin(), ones.end(), pinned_in);
  ASSERT_EQ(cudaMemcpyAsync(buf.ptr, pinned_in, n * sizeof(float), cudaMemcpyHostToDevice, compute), cudaSuccess);
  nccl.allreduce_sum(buf.ptr, n, compute);
  ASSERT_EQ(cudaMemcpyAsync(pinned_out, buf.ptr, n * sizeof(float), cudaMemcpyDeviceToHost, compute), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(compute), cudaSuccess);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(pinned_out[i], static_cast<float>(world.size())) << i;
  cudaFreeHost(pinned_in);
  cudaFreeHost(pinned_out);
  cudaStreamDestroy(compute);
}

TEST(Nccl, MatchesTheMpiSumOfRandomGradients) {
  // What the trainer's gradient all-reduce does: NCCL's float sum of per-rank gradients equals the
  // MPI (host) sum within float rounding of the different reduction order.
  SKIP_WITHOUT_GPU();
  const auto world = parallel::Environment::world();
  parallel::select_device(world);
  const parallel::NcclComm nccl(world);
  const int64_t n = 100003;
  std::vector<float> g(n);
  uint64_t state = 0x9E3779B97F4A7C15ull * (world.rank() + 1);
  for (auto& v : g) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<float>(static_cast<int64_t>(state >> 33) % 2001 - 1000) * 1e-3f;
  }
  std::vector<float> host = g;
  world.allreduce_sum(host.data(), n);
  DeviceBuffer<float> dev(g);
  nccl.allreduce_sum(dev.ptr, n, nullptr);
  nccl.synchronize();
  const auto got = dev.host();
  for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(got[i], host[i], 1e-5f * (1 + std::fabs(host[i]))) << i;
}
