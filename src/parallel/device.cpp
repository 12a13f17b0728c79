#include "parallel/device.hpp"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

#ifdef UNIVERSAE_WITH_NCCL
#include "parallel/nccl.hpp"
#endif

namespace universae::parallel {

std::string DevicePlan::describe() const {
  return device.str() + (generic() ? ", generic kernels" : ", fast CPU kernels");
}

int cuda_device_count() { return at::hasCUDA() ? static_cast<int>(at::detail::getCUDAHooks().getNumGPUs()) : 0; }

DevicePlan resolve_device(const Comm& world, core::DeviceChoice device, core::KernelChoice kernels) {
  DevicePlan plan;
  std::string error;
  const int gpus = cuda_device_count();
  const Comm node = world.node_local();  // collective: every rank splits, GPU or not
#ifdef UNIVERSAE_WITH_CUDA
  const bool cuda_build = true;
#else
  const bool cuda_build = false;
#endif
  const bool cuda = device == core::DeviceChoice::kCuda || (device == core::DeviceChoice::kAuto && gpus > 0);
  if (cuda && !cuda_build) {
    error = "run.device = \"cuda\": this universae was built without CUDA (cmake --preset cuda, docs/gpu.md); set "
            "run.device = \"cpu\"";
  } else if (cuda && gpus == 0) {
    error = "run.device = \"cuda\": rank " + std::to_string(world.rank()) + " on " + Comm::host_name() +
            " sees no GPU (CUDA_VISIBLE_DEVICES?); set run.device = \"cpu\" to run on the CPU";
  } else if (cuda && node.size() > gpus) {  // NCCL needs a GPU per rank ("Duplicate GPU detected")
    error = "run.device = \"cuda\": " + std::to_string(node.size()) + " ranks on " + Comm::host_name() + " share " +
            std::to_string(gpus) + " GPU(s); start one rank per GPU (srun --ntasks-per-node, mpirun -npernode)";
  } else if (cuda) {
    plan.device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(node.rank() % gpus));
  }
  if (error.empty() && kernels == core::KernelChoice::kFast && cuda)
    error = "run.kernels = \"fast\": the fast kernels run on the CPU only; on " + plan.device.str() +
            " use \"generic\" or \"auto\"";
  const bool generic = kernels == core::KernelChoice::kGeneric || (kernels == core::KernelChoice::kAuto && cuda);
  plan.kernels = generic ? core::Kernels::kGeneric : core::Kernels::kFast;
  agree_on_error(world, error);
#ifdef UNIVERSAE_WITH_NCCL
  if (plan.device.is_cuda()) use_device(plan.device.index());  // the current device, for NCCL and stray contexts
#endif
  return plan;
}

}  // namespace universae::parallel
