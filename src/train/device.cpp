#include "train/device.hpp"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include "core/error.hpp"

namespace universae::train {

std::string DevicePlan::describe() const {
  return device.str() + (kernels == core::Kernels::kFast ? ", fast CPU kernels" : ", generic kernels");
}

int cuda_device_count() { return at::hasCUDA() ? static_cast<int>(at::detail::getCUDAHooks().getNumGPUs()) : 0; }

DevicePlan resolve_device(const parallel::Comm& world, config::Device device, config::Kernels kernels) {
  DevicePlan plan;
  std::string error;
  const int gpus = cuda_device_count();
  const int local_rank = world.node_local().rank();  // collective: every rank splits, GPU or not
  const bool cuda = device == config::Device::kCuda || (device == config::Device::kAuto && gpus > 0);
  if (cuda && gpus == 0) {
    error = at::hasCUDA() ? "run.device = \"cuda\": rank " + std::to_string(world.rank()) + " on " + parallel::Comm::host_name() +
                                " sees no GPU (CUDA_VISIBLE_DEVICES?); set run.device = \"cpu\" to train on the CPU"
                          : "run.device = \"cuda\": this universae was built without CUDA (cmake --preset cuda, "
                            "docs/gpu.md); set run.device = \"cpu\"";
  } else if (cuda) {
    plan.device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank % gpus));
  }
  if (error.empty() && kernels == config::Kernels::kFast && cuda)
    error = "run.kernels = \"fast\": the fast kernels run on the CPU only; on " + plan.device.str() +
            " use \"generic\" or \"auto\"";
  plan.kernels = kernels == config::Kernels::kGeneric || (kernels == config::Kernels::kAuto && cuda) ? core::Kernels::kGeneric
                                                                                                      : core::Kernels::kFast;
  parallel::agree_on_error(world, error);
  return plan;
}

}  // namespace universae::train
