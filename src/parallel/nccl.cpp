#include "parallel/nccl.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <stdexcept>
#include <vector>

namespace universae::parallel {
namespace {

// The check macros of DESIGN.md §5: file, line, rank and host in every message.
[[noreturn]] void fail(const char* what, const std::string& detail, const char* file, int line) {
  throw std::runtime_error(std::string(what) + " failed at " + file + ":" + std::to_string(line) + " on " +
                           Comm::host_name() + ": " + detail);
}

#define UNIVERSAE_CUDA_CHECK(call)                                                          \
  do {                                                                                      \
    const cudaError_t universae_err_ = (call);                                              \
    if (universae_err_ != cudaSuccess) fail(#call, cudaGetErrorString(universae_err_), __FILE__, __LINE__); \
  } while (0)

#define UNIVERSAE_NCCL_CHECK(call)                                                          \
  do {                                                                                      \
    const ncclResult_t universae_res_ = (call);                                             \
    if (universae_res_ != ncclSuccess) fail(#call, ncclGetErrorString(universae_res_), __FILE__, __LINE__); \
  } while (0)

cudaStream_t stream_of(void* s) { return static_cast<cudaStream_t>(s); }

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

void use_device(int device) { UNIVERSAE_CUDA_CHECK(cudaSetDevice(device)); }

int select_device(const Comm& world) {
  const int n = device_count();
  if (n == 0) throw std::runtime_error("rank " + std::to_string(world.rank()) + " on " + Comm::host_name() +
                                       ": no CUDA device visible (CUDA_VISIBLE_DEVICES, or run the CPU build)");
  const int local = world.node_local().rank();
  const int device = local % n;
  UNIVERSAE_CUDA_CHECK(cudaSetDevice(device));
  return device;
}

struct NcclComm::Impl {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t ready = nullptr, done = nullptr;  // compute → NCCL, NCCL → compute

  // Orders `run` (issued on the NCCL stream) after the compute stream's queued work, and the compute
  // stream's later work after it.
  template <typename Run>
  void ordered(void* compute, Run run) {
    UNIVERSAE_CUDA_CHECK(cudaEventRecord(ready, stream_of(compute)));
    UNIVERSAE_CUDA_CHECK(cudaStreamWaitEvent(stream, ready, 0));
    run();
    UNIVERSAE_CUDA_CHECK(cudaEventRecord(done, stream));
    UNIVERSAE_CUDA_CHECK(cudaStreamWaitEvent(stream_of(compute), done, 0));
  }
};

NcclComm::NcclComm(const Comm& comm) : impl_(std::make_unique<Impl>()), rank_(comm.rank()), size_(comm.size()) {
  // The 128-byte unique id travels as 16 int64 (Comm has no byte broadcast).
  static_assert(sizeof(ncclUniqueId) % sizeof(int64_t) == 0, "ncclUniqueId is a whole number of int64");
  std::vector<int64_t> id_words(sizeof(ncclUniqueId) / sizeof(int64_t), 0);
  ncclUniqueId id;
  if (comm.is_root()) {
    UNIVERSAE_NCCL_CHECK(ncclGetUniqueId(&id));
    std::memcpy(id_words.data(), &id, sizeof(id));
  }
  comm.broadcast(id_words.data(), static_cast<int64_t>(id_words.size()), 0);
  std::memcpy(&id, id_words.data(), sizeof(id));
  UNIVERSAE_NCCL_CHECK(ncclCommInitRank(&impl_->comm, size_, id, rank_));
  UNIVERSAE_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  UNIVERSAE_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->ready, cudaEventDisableTiming));
  UNIVERSAE_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->done, cudaEventDisableTiming));
}

NcclComm::~NcclComm() {
  if (!impl_) return;
  // No throwing from a destructor: finish what is queued, then free, ignoring errors.
  if (impl_->stream) (void)cudaStreamSynchronize(impl_->stream);
  if (impl_->comm) (void)ncclCommDestroy(impl_->comm);
  if (impl_->ready) (void)cudaEventDestroy(impl_->ready);
  if (impl_->done) (void)cudaEventDestroy(impl_->done);
  if (impl_->stream) (void)cudaStreamDestroy(impl_->stream);
}

void NcclComm::allreduce_sum(float* v, int64_t n, void* compute) const {
  impl_->ordered(compute, [&] {
    UNIVERSAE_NCCL_CHECK(ncclAllReduce(v, v, static_cast<size_t>(n), ncclFloat32, ncclSum, impl_->comm, impl_->stream));
  });
}

void NcclComm::allreduce_sum(double* v, int64_t n, void* compute) const {
  impl_->ordered(compute, [&] {
    UNIVERSAE_NCCL_CHECK(ncclAllReduce(v, v, static_cast<size_t>(n), ncclFloat64, ncclSum, impl_->comm, impl_->stream));
  });
}

void NcclComm::allreduce_max(float* v, int64_t n, void* compute) const {
  impl_->ordered(compute, [&] {
    UNIVERSAE_NCCL_CHECK(ncclAllReduce(v, v, static_cast<size_t>(n), ncclFloat32, ncclMax, impl_->comm, impl_->stream));
  });
}

void NcclComm::allreduce_min(double* v, int64_t n, void* compute) const {
  impl_->ordered(compute, [&] {
    UNIVERSAE_NCCL_CHECK(ncclAllReduce(v, v, static_cast<size_t>(n), ncclFloat64, ncclMin, impl_->comm, impl_->stream));
  });
}

void NcclComm::allgather(const float* v, float* out, int64_t n, void* compute) const {
  impl_->ordered(compute, [&] {
    UNIVERSAE_NCCL_CHECK(ncclAllGather(v, out, static_cast<size_t>(n), ncclFloat32, impl_->comm, impl_->stream));
  });
}

void NcclComm::broadcast(float* v, int64_t n, int root, void* compute) const {
  impl_->ordered(compute, [&] {
    UNIVERSAE_NCCL_CHECK(ncclBroadcast(v, v, static_cast<size_t>(n), ncclFloat32, root, impl_->comm, impl_->stream));
  });
}

void NcclComm::synchronize() const { UNIVERSAE_CUDA_CHECK(cudaStreamSynchronize(impl_->stream)); }

}  // namespace universae::parallel
