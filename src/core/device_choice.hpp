// Where tensors live and which implementation computes on them: the choices of run.device and
// run.kernels, and the two implementations core/ provides. No ATen, no MPI (config/ uses it).
#pragma once

#include "core/choice.hpp"

namespace universae::core {

// run.device: kAuto is cuda when the build has CUDA and a GPU is visible, else cpu.
enum class DeviceChoice { kAuto, kCpu, kCuda };
// run.kernels: kAuto is fast on the CPU, generic elsewhere.
enum class KernelChoice { kAuto, kFast, kGeneric };

// Which implementation of a hot loop runs. kFast: the CPU's hand-written kernels (CPU tensors only).
// kGeneric: ATen operators only, so the same code runs on any device, with no device-to-host copy
// and no data-dependent shape inside a training step (tests run it on LibTorch's `meta` device).
// The two are tested to compute the same results (the training step within 1e-5 relative; the
// similarity pass's lists bit for bit).
enum class Kernels { kFast, kGeneric };

template <>
inline const Choices& choices<DeviceChoice>() {
  static const Choices c{"a device", {"auto", "cpu", "cuda"}};
  return c;
}
template <>
inline const Choices& choices<KernelChoice>() {
  static const Choices c{"a kernel choice", {"auto", "fast", "generic"}};
  return c;
}

}  // namespace universae::core
