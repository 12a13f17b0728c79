// The five SAE architectures of METHODS.md §1 as a *stack* of S SAEs (one per seed) with a leading
// seed axis, so one activation batch drives every seed through batched matmuls. Forward and backward
// are written out by hand (no autograd): top-k codes stay sparse end to end (the decoder, its
// gradient and the encoder gradient cost B·k·d, not B·n·d), the latent axis can be split over ranks
// (LatentPeers), and the optimiser state is a plain set of tensors that checkpoints exactly.
// scripts/sae_train_ref.py is the PyTorch-autograd reference every gradient here is tested against.
//
// No MPI here (DESIGN.md §2): what a forward pass needs from the other latent shards comes through
// the LatentPeers interface, which train/ implements with a sub-communicator.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/architecture.hpp"
#include "core/device_choice.hpp"
#include "core/sharding.hpp"

namespace universae::core {

// Whose training step a stack follows. kSparsify (train.preset = "sparsify", topk only) is EleutherAI
// sparsify's TopK trainer (scripts/sparsify_ref.py is its reference): seeded kaiming-uniform encoder and
// tied decoder (init_stack), every top-k slot kept as a code even at value 0 (its fused encoder has no
// ReLU mask in the backward, and marks every slot as fired), AuxK with k_aux = d/2 scaled by
// min(dead / k_aux, 1), decoded with b_dec and reaching only W_dec and b_dec, the loss divided by the
// batch's total variance (forward_backward's `loss_denominator`), no renormalisation after the update
// (normalize_decoder_at_step_start before each forward instead).
enum class StepRule { kUniversae, kSparsify };


// The precision of the step's large matrix products (train.dtype): the (B × n × d) encoder and, for the
// dense architectures, decoder GEMMs and their gradients. Weights, Adam state, the sparse decoder and
// every sum stay float32/64 (the master copy). kBFloat16 rounds both operands to bfloat16 and widens
// the bfloat16 product to float32 (autocast's rule); kTF32 lets cuBLAS use TF32 tensor
// cores (a CUDA setting: the CPU computes float32).
enum class MatmulPrecision { kFloat32, kBFloat16, kTF32 };

// Every field is set by its maker (train/ from the config: train.*, sae.*): none has a default here.
struct SaeSpec {
  Architecture architecture{};
  int64_t d{};
  int64_t n_latents{};  // the whole SAE
  Range latents;        // this rank's latent slice (the whole SAE without latent sharding)
  int64_t k{};          // topk: per token; batchtopk: mean per token (k·B kept per micro-batch)
  int64_t k_aux{};      // AuxK: dead latents used to model the residual
  double aux_alpha{};
  double sparsity{};    // λ: relu and gated L1 (decoder-norm weighted), jumprelu L0
  double bandwidth{};   // jumprelu straight-through rectangle kernel
  double jumprelu_init_threshold{};
  bool apply_b_dec_to_input{};
  StepRule rule{};      // kUniversae unless train.preset = "sparsify"
  Kernels kernels{};    // core/device_choice.hpp; kGeneric: sae_generic.cpp (the twin of the CPU kernels here)
  MatmulPrecision matmul{};  // train.dtype
  int64_t n_local() const { return latents.size(); }
  // relu, topk and batchtopk keep unit-norm decoder rows; jumprelu and gated carry the norm in the loss.
  bool unit_norm_decoder() const;
};

struct DeferredRowGrads;  // sae_model.cpp

// Parameters (or gradients, or Adam moments) of S SAEs. Latent-indexed tensors hold this rank's slice.
struct SaeStack {
  at::Tensor W_enc;          // (S, n, d); gated: the gate path W_gate
  at::Tensor b_enc;          // (S, n);    gated: b_gate
  at::Tensor W_dec;          // (S, n, d), row i = direction of latent i
  at::Tensor b_dec;          // (S, d), replicated across latent shards
  at::Tensor log_threshold;  // (S, n) jumprelu
  at::Tensor r_mag, b_mag;   // (S, n) gated
  // Gradients from deferred_grads() only: W_enc and W_dec are then undefined, and each of their rows is
  // made inside optimizer_step from what forward_backward keeps here (the sparse codes grouped by latent
  // and the (B, d) matrices they weight), so that the step holds no dense gradient.
  std::shared_ptr<DeferredRowGrads> deferred;
  // The defined tensors and their names, in one fixed order (checkpoints and gradient reduction).
  std::vector<at::Tensor*> tensors();
  std::vector<const at::Tensor*> tensors() const;
  std::vector<std::string> names() const;
  SaeStack zeros_like() const;
  SaeStack to(at::Device device) const;  // the same tensors when they are there already
};

// Decoder rows: unit vectors from each seed (core/rng.hpp, rows of this rank's slice only); encoder
// rows = decoder rows; b_enc = 0; b_dec = `b_dec` (d, float64) for every seed; jumprelu log θ =
// log(init threshold); gated r_mag = b_mag = 0. kSparsify: W_enc as torch.manual_seed(seed);
// nn.Linear(d, n) draws it on the CPU (kaiming-uniform, torch's CPU generator), W_dec = W_enc with rows
// divided by ‖row‖ + ε(float32).
SaeStack init_stack(const SaeSpec& spec, const std::vector<int64_t>& seeds, const std::vector<double>& b_dec);

// What a latent-sharded forward pass needs from the other shards of the same SAEs. The default is
// one shard (nothing to exchange).
class LatentPeers {
 public:
  virtual ~LatentPeers() = default;
  virtual int size() const { return 1; }
  virtual int rank() const { return 0; }
  virtual void sum(float* /*values*/, int64_t /*n*/) const {}
  virtual void sum(double* /*values*/, int64_t /*n*/) const {}
  // Each shard contributes `local` (same length on every shard); all receive them in shard order.
  virtual std::vector<float> allgather(const std::vector<float>& local) const { return local; }
  // Tensor forms (float32 or float64, contiguous): nothing on one shard. The defaults go through the
  // pointer forms above, for a tensor off the CPU through a host copy (deliberate: MPI takes host
  // memory); a communicator that reduces device memory (NCCL) overrides them.
  virtual void sum(at::Tensor& values) const;
  // (P, local's shape): every shard's `local` (float32), in shard order.
  virtual at::Tensor allgather(const at::Tensor& local) const;
};

// Per-seed sums over the tokens of the micro-batches this rank ran (unnormalised), as tensors on the
// parameters' device, so that a step leaves them there (train/ reads them at logging steps only).
struct StepStats {
  StepStats() = default;
  StepStats(int64_t seeds, int64_t n_local, at::Device device);
  void clear();
  at::Tensor sse, aux_sse, sparsity;  // (S) float64: Σ‖x − x̂‖², Σ aux residual², Σ sparsity penalty (before λ)
  at::Tensor active;                  // (S) int64: non-zero codes on this rank's latents
  at::Tensor fires;                   // (S, n_local) int64: tokens each latent fired on
  at::Tensor min_kept;                // (S) float64: batchtopk's smallest kept activation (+inf if none)
  // Not statistics: the fast top-k step's (S, B, n) encoder output and its (S, B, d) x − b_dec, residual
  // and residual gradient, and every step's float64 squared residual (detail::residual), kept from step
  // to step (clear() leaves them) so that their
  // pages are not mapped and faulted in afresh each step: 1 GiB per rank at B 4,096 × n_local 65,536;
  // the (S, B, d) ones reach glibc's largest mmap threshold (32 MiB) at 4 seeds × 4,096 × 512.
  at::Tensor encoder_buffer, input_buffer, residual_buffer, gradient_buffer, square_buffer;
};

// One micro-batch: x (B, d) float32, dead (S, n_local) bool or undefined (no AuxK). Adds the gradient
// of this micro-batch's share of the loss, Σ_tokens(loss terms) / loss_tokens, to `grads`. On latent
// shards every rank gets the same reconstruction and the same loss; each adds the gradients of its
// own latent slice, and b_dec's gradient is split so that summing it over the shards gives the whole.
void forward_backward(const SaeSpec& spec, const SaeStack& params, const at::Tensor& x, const at::Tensor& dead,
                      int64_t loss_tokens, const LatentPeers& peers, SaeStack& grads, StepStats& stats);
// The same with the loss divided by `loss_denominator` instead (kSparsify: the global batch's total
// variance Σ‖x − x̄‖², so that the loss is sparsify's FVU).
void forward_backward(const SaeSpec& spec, const SaeStack& params, const at::Tensor& x, const at::Tensor& dead,
                      double loss_denominator, const LatentPeers& peers, SaeStack& grads, StepStats& stats);

// Gradients for `params` whose W_enc and W_dec rows are deferred to optimizer_step (SaeStack::deferred),
// the others zero. The fused step this enables needs the fast top-k kernels on the CPU
// (can_defer_grads) and one micro-batch per step with no data-parallel sum: the trainer defers when
// its rank runs the whole batch and worth_deferring_grads says so, bench_train_step likewise unless
// UNIVERSAE_BENCH_GRADS says otherwise. `fixed_point`: each row is rounded through the
// exact sum's fixed point (core/exact_sum.hpp), as train.exact_sum rounds a dense gradient on one rank;
// the step is then the dense one's bit for bit. Saves the 2 GiB per rank of dense W_enc and W_dec
// gradients at n_local 65,536 × d 4,096 (bench/RESULTS.md, issue 22 item 2).
SaeStack deferred_grads(const SaeStack& params, bool fixed_point);
bool can_defer_grads(const SaeSpec& spec, at::Device device);
// Whether deferring pays: it can (can_defer_grads) and the dense W_enc and W_dec gradients of `seeds`
// SAEs would take at least kDeferGradientBytes. The deferred step makes each row twice when it clips
// (for the norms, then for the update); where the gradients are small that costs more than the dense gradient's
// passes over memory (bench/RESULTS.md: 0.19–0.26 s against 0.07–0.09 s of optimiser per step at 16,384
// × 512), where they are large it is what keeps the step within memory.
constexpr int64_t kDeferGradientBytes = int64_t{256} << 20;
bool worth_deferring_grads(const SaeSpec& spec, int64_t seeds, at::Device device);
// Zeroes every gradient tensor and forgets deferred rows.
void zero_grads(SaeStack& grads);

// The optimiser (METHODS.md §1), applied after gradients are reduced over data-parallel ranks.
struct AdamConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};
struct AdamState {
  SaeStack m, v;
  int64_t step = 0;
};
AdamState init_adam(const SaeStack& params);

// Removes the component of each decoder row's gradient parallel to the row (unit-norm architectures).
void remove_parallel_decoder_grad(const SaeSpec& spec, const SaeStack& params, SaeStack& grads);
// Σ of squared gradient entries per seed over this rank's tensors, (S) float64 on their device; b_dec
// only when `with_replicated` (so that a sum over latent shards counts it once).
at::Tensor grad_sq_norms(const SaeStack& grads, bool with_replicated);
// Scales seed s's gradients by max_norm / (‖g_s‖ + 1e-6) when that is below 1 (torch's clip_grad_norm_).
void clip_gradients(SaeStack& grads, const at::Tensor& sq_norms, double max_norm);
// torch.optim.Adam's update, per element, with the same operation order: one pass over memory (kFast)
// or torch's own sequence of in-place operators (kGeneric).
void adam_step(SaeStack& params, const SaeStack& grads, AdamState& state, double lr, const AdamConfig& config,
               Kernels kernels = Kernels::kFast);
void normalize_decoder(const SaeSpec& spec, SaeStack& params);
// kSparsify, before each step's forward: W_dec rows /= ‖row‖ + ε(float32) (sparsify's
// set_decoder_norm_to_unit_norm, in Trainer.fit before the forward); nothing for kUniversae.
void normalize_decoder_at_step_start(const SaeSpec& spec, SaeStack& params);

// The whole update after the gradients are reduced over data-parallel ranks: decoder projection,
// per-seed clipping (norms summed over the latent shards, b_dec counted once), Adam, renormalisation
// (kSparsify: neither clipping nor renormalisation). The fast top-k kernels on the host do it in two
// passes over the rows, one for the clipping norms (none without clipping) and one for the update;
// deferred gradient rows are made in each pass (2·k·B·d FLOPs each time, against the encoder's n·B·d).
// The projection, norms and renormalisation are the row kernels of sae_model.cpp in every form, so
// deferred, fused and separate steps agree bit for bit. A deferred row that is not finite (or ≥ 2^40)
// throws from here, possibly after other rows were updated: the run stops (InternalError) and resumes
// from its last checkpoint.
void optimizer_step(const SaeSpec& spec, SaeStack& params, SaeStack& grads, AdamState& state, double lr,
                    const AdamConfig& config, double grad_clip, const LatentPeers& peers);

}  // namespace universae::core
