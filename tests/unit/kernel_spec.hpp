// The SaeSpec the kernel tests step (tests/unit/test_kernels.cpp on the CPU and the meta device,
// tests/gpu/test_device_step.cpp on cuda): one latent shard of n, every architecture's knobs set so
// that each path of the step runs (k and k_aux for the top-k family, an L1 coefficient otherwise).
#pragma once

#include <cstdint>

#include "core/sae_model.hpp"

namespace universae::core {

inline SaeSpec kernel_spec(Architecture a, StepRule rule, Kernels kernels, int64_t d, int64_t n, int64_t k, int64_t k_aux,
                           bool b_dec_in = true) {
  SaeSpec s;
  s.architecture = a;
  s.d = d, s.n_latents = n, s.latents = {0, n};
  s.k = k, s.k_aux = k_aux, s.aux_alpha = 1.0 / 32.0;
  s.sparsity = has_top_k(a) ? 0.0 : 0.3;
  s.bandwidth = 0.05, s.jumprelu_init_threshold = 0.05;
  s.apply_b_dec_to_input = b_dec_in;
  s.rule = rule;
  s.kernels = kernels;
  return s;
}

}  // namespace universae::core
