#include "parallel/tensor_comm.hpp"

#include <ATen/ATen.h>

#include <vector>

#include "core/error.hpp"
#ifdef UNIVERSAE_WITH_NCCL
#include "parallel/nccl.hpp"
#endif

namespace universae::parallel {
namespace {

// The stream every LibTorch kernel of this process is queued on: the legacy default stream (nullptr),
// as universae never makes another current.
void* const kComputeStream = nullptr;

}  // namespace

TensorComm::TensorComm(const Comm& comm, at::Device device) : comm_(comm) {
#ifdef UNIVERSAE_WITH_NCCL
  if (device.is_cuda() && comm.size() > 1) {
    use_device(device.index());
    nccl_ = std::make_shared<NcclComm>(comm);
  }
#else
  (void)device;
#endif
}

void TensorComm::sum(at::Tensor& t) const {
  if (comm_.size() == 1) return;
#ifdef UNIVERSAE_WITH_NCCL
  if (nccl_) {
    if (t.scalar_type() == at::kLong) {
      at::Tensor wide = t.to(at::kDouble);
      nccl_->allreduce_sum(wide.data_ptr<double>(), wide.numel(), kComputeStream);
      t.copy_(wide);
    } else if (t.scalar_type() == at::kDouble) {
      nccl_->allreduce_sum(t.data_ptr<double>(), t.numel(), kComputeStream);
    } else {
      nccl_->allreduce_sum(t.data_ptr<float>(), t.numel(), kComputeStream);
    }
    return;
  }
#endif
  at::Tensor host = t.is_cpu() ? t.contiguous() : t.to(at::kCPU).contiguous();
  switch (host.scalar_type()) {
    case at::kFloat: comm_.allreduce_sum(host.data_ptr<float>(), host.numel()); break;
    case at::kDouble: comm_.allreduce_sum(host.data_ptr<double>(), host.numel()); break;
    case at::kLong: comm_.allreduce_sum(host.data_ptr<int64_t>(), host.numel()); break;
    default: throw InternalError("TensorComm::sum: unsupported tensor type");
  }
  if (!host.is_same(t)) t.copy_(host);
}

void TensorComm::min(at::Tensor& t) const {
  if (comm_.size() == 1) return;
#ifdef UNIVERSAE_WITH_NCCL
  if (nccl_) {
    nccl_->allreduce_min(t.data_ptr<double>(), t.numel(), kComputeStream);
    return;
  }
#endif
  at::Tensor host = t.is_cpu() ? t.contiguous() : t.to(at::kCPU).contiguous();
  comm_.allreduce_min(host.data_ptr<double>(), host.numel());
  if (!host.is_same(t)) t.copy_(host);
}

at::Tensor TensorComm::allgather(const at::Tensor& local) const {
  std::vector<int64_t> shape = local.sizes().vec();
  shape.insert(shape.begin(), comm_.size());
  if (comm_.size() == 1) return local.to(at::kFloat).reshape(shape);
#ifdef UNIVERSAE_WITH_NCCL
  if (nccl_) {
    const at::Tensor send = local.to(at::kFloat).contiguous();
    at::Tensor out = at::empty(shape, send.options());
    nccl_->allgather(send.data_ptr<float>(), out.data_ptr<float>(), send.numel(), kComputeStream);
    return out;
  }
#endif
  const at::Tensor host = local.to(at::kCPU, at::kFloat).contiguous();
  std::vector<float> all = comm_.allgatherv(std::vector<float>(host.data_ptr<float>(), host.data_ptr<float>() + host.numel()));
  return at::from_blob(all.data(), shape, at::kFloat).to(local.device(), /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace universae::parallel
