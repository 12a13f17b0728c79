// The training step of the top-k architectures, and Adam, from ATen operators only
// (SaeSpec::kernels = Kernels::kGeneric): the twin of sae_model.cpp's hand-written CPU kernels, for
// any device. The dense architectures need no twin: sae_model.cpp writes them in ATen operators.
//
// Codes are kept as fixed-width lists of candidate slots per seed, (S, N) token, latent and value,
// where a slot that is not kept (not positive, or below the k-th largest over the latent shards)
// carries value 0 and gradient weight 0. So no shape depends on the data and nothing is read back
// to the host: the lists cost the slots that are dropped (few), the decoder and its gradients cost
// B·k·d as in the CPU kernels, and the step never waits for the device. Gradients are scattered with
// index_add_, as sparsify's fused encoder does; on CUDA its float atomics make the order of the sums,
// and so their last bits, vary from run to run (the CPU adds in slot order: deterministic).
#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "core/sae_step_parts.hpp"

namespace universae::core::detail {
namespace {

// Gathered (slots × d) temporaries are built this many float32 values at a time (128 MiB): the
// decoder and gradient scatters of a 4,096-token batch at k = 64 and d = 4,096 would otherwise need 4 GiB.
constexpr int64_t kChunkElements = int64_t{1} << 25;

// The candidate slots of S SAEs on one micro-batch.
struct Slots {
  at::Tensor token, latent;  // (S, N) int64: the slot's token and latent (this rank's index)
  at::Tensor value;          // (S, N) float32: the code, 0 where the slot is not kept
  at::Tensor keep;           // (S, N) bool
  int64_t width() const { return latent.size(1); }
};

// `values`, `latents` (S, B, K) candidates per token: kept when positive (any value with `keep_zero`:
// sparsify's top-k slots) and, over several latent shards, at or above the token's k-th largest.
Slots token_slots(const at::Tensor& values, const at::Tensor& latents, bool keep_zero, const LatentPeers& peers) {
  const int64_t S = values.size(0), B = values.size(1), K = values.size(2);
  at::Tensor keep = keep_zero ? at::ones_like(values, at::kBool) : values.gt(0);
  if (peers.size() > 1) keep.logical_and_(values.ge(global_kth(values.reshape({S * B, K}), K, peers).view({S, B, 1})));
  Slots c;
  c.token = at::arange(B, latents.options()).view({1, B, 1}).expand({S, B, K}).reshape({S, B * K});
  c.latent = latents.reshape({S, B * K});
  c.keep = keep.reshape({S, B * K});
  c.value = values.reshape({S, B * K}).mul(c.keep);
  return c;
}

// The codes of a top-k architecture from relu(pre) `post` (S, B, n): topk per token, or batchtopk's
// k·B largest over the micro-batch (its smallest kept value per seed into stats.min_kept).
Slots select_slots(const SaeSpec& spec, const at::Tensor& post, const LatentPeers& peers, StepStats& stats) {
  const int64_t S = post.size(0), B = post.size(1), n = post.size(2);
  if (spec.architecture == Architecture::kTopK) {
    auto [values, indices] = at::topk(post, spec.k, 2);
    return token_slots(values, indices, spec.rule == StepRule::kSparsify, peers);
  }
  const int64_t K = spec.k * B;
  auto [values, flat] = at::topk(post.reshape({S, B * n}), K, 1);
  at::Tensor keep = values.gt(0);
  if (peers.size() > 1) keep.logical_and_(values.ge(global_kth(values, K, peers).unsqueeze(1)));
  const at::Tensor kept_min = at::where(keep, values.to(at::kDouble), std::numeric_limits<double>::infinity()).amin(1);
  at::minimum_out(stats.min_kept, stats.min_kept, kept_min);
  Slots c;
  c.token = at::div(flat, n, "floor");
  c.latent = flat.remainder(n);
  c.keep = keep;
  c.value = values.mul(keep);
  return c;
}

// out (B, d) += Σ over seed s's slots of value · W[latent], at the slot's token.
void decode_add(const Slots& c, int64_t s, const at::Tensor& W, at::Tensor out) {
  const int64_t N = c.width(), chunk = std::max<int64_t>(1, kChunkElements / W.size(1));
  for (int64_t j = 0; j < N; j += chunk) {
    const int64_t len = std::min(chunk, N - j);
    const at::Tensor rows = W.index_select(0, c.latent[s].narrow(0, j, len));
    out.index_add_(0, c.token[s].narrow(0, j, len), rows.mul_(c.value[s].narrow(0, j, len).unsqueeze(1)));
  }
}

// The backward of seed s's codes given dL/dx̂ `G` (B, d): dW_dec[i] += Σ value · G[t]; with `encoder`,
// dpre = G[t] · W_dec[i] (0 on slots not kept), dW_enc[i] += Σ dpre · x_in[t] and db_enc[i] += Σ dpre.
void backward_slots(const Slots& c, int64_t s, const at::Tensor& G, const at::Tensor& W_dec, const at::Tensor& x_in,
                    bool encoder, SaeStack& g, at::Tensor db_enc) {
  const int64_t N = c.width(), chunk = std::max<int64_t>(1, kChunkElements / W_dec.size(1));
  at::Tensor dW_dec = g.W_dec[s], dW_enc = g.W_enc[s];
  for (int64_t j = 0; j < N; j += chunk) {
    const int64_t len = std::min(chunk, N - j);
    const at::Tensor token = c.token[s].narrow(0, j, len), latent = c.latent[s].narrow(0, j, len);
    const at::Tensor g_rows = G.index_select(0, token);
    dW_dec.index_add_(0, latent, g_rows * c.value[s].narrow(0, j, len).unsqueeze(1));
    if (!encoder) continue;
    const at::Tensor dpre = (g_rows * W_dec.index_select(0, latent)).sum(1).mul_(c.keep[s].narrow(0, j, len));
    dW_enc.index_add_(0, latent, x_in.index_select(0, token).mul_(dpre.unsqueeze(1)));
    db_enc.index_add_(0, latent, dpre);
  }
}

// AuxK (Gao et al.), as sae_model.cpp's aux_k: the top k_aux pre-activations of dead latents (the
// others masked to −1, never kept) reconstruct the residual. A seed without dead latents keeps no slot
// and gets weight 0, so no branch needs to know the counts. Returns the auxiliary loss's gradient at
// the reconstruction (S, B, d) and the slots in `aux`.
at::Tensor aux_k(const SaeSpec& spec, const SaeStack& p, const at::Tensor& post, const at::Tensor& r, const at::Tensor& dead,
                 double inv_L, const LatentPeers& peers, Slots& aux, StepStats& stats) {
  const int64_t S = post.size(0), B = post.size(1), n = post.size(2), K = spec.k_aux;
  at::Tensor n_dead = dead.sum(1).to(at::kDouble);
  peers.sum(n_dead);
  auto [values, latents] = at::topk(post.masked_fill(dead.logical_not().unsqueeze(1), -1.0f), std::min(K, n), 2);
  if (K > n) {  // a shard narrower than k_aux: the CPU kernel's zero-valued padding
    values = at::cat({values, at::zeros({S, B, K - n}, values.options())}, 2);
    latents = at::cat({latents, at::zeros({S, B, K - n}, latents.options())}, 2);
  }
  aux = token_slots(values, latents, /*keep_zero=*/false, peers);
  at::Tensor aux_partial = at::zeros({S, B, spec.d}, post.options());
  for (int64_t s = 0; s < S; ++s) decode_add(aux, s, p.W_dec[s], aux_partial[s]);
  peers.sum(aux_partial);
  // ê − (x − x̂) = ê + r. sparsify decodes ê with b_dec and scales each seed's loss by min(dead / k_aux, 1).
  if (spec.rule != StepRule::kSparsify) {
    const at::Tensor aux_res = (aux_partial + r).mul_(n_dead.gt(0).to(at::kFloat).view({S, 1, 1}));
    add_sum(stats.aux_sse, aux_res.to(at::kDouble).pow(2).sum({1, 2}));
    return aux_res * (2.0 * spec.aux_alpha * inv_L);
  }
  const at::Tensor aux_res = aux_partial + p.b_dec.unsqueeze(1) + r;
  const at::Tensor weight = (n_dead / static_cast<double>(K)).clamp_max(1.0).to(at::kFloat);
  add_sum(stats.aux_sse, aux_res.to(at::kDouble).pow(2).sum({1, 2}) * weight.to(at::kDouble));
  return aux_res * (weight * static_cast<float>(2.0 * spec.aux_alpha * inv_L)).view({S, 1, 1});
}

}  // namespace

void generic_sparse_forward_backward(const SaeSpec& spec, const SaeStack& p, const at::Tensor& x, const at::Tensor& x_in,
                                     const at::Tensor& dead, double inv_L, const LatentPeers& peers, SaeStack& g,
                                     StepStats& stats) {
  const int64_t S = p.W_enc.size(0), B = x.size(0), n = spec.n_local();
  const at::Tensor post = baddbmm(spec, p.b_enc.unsqueeze(1), x_in, p.W_enc.transpose(1, 2)).relu_();  // (S, B, n)
  const Slots codes = select_slots(spec, post, peers, stats);
  at::Tensor partial = at::zeros({S, B, spec.d}, x.options());
  for (int64_t s = 0; s < S; ++s) decode_add(codes, s, p.W_dec[s], partial[s]);
  stats.fires.scatter_add_(1, codes.latent, codes.keep.to(at::kLong));  // sparsify: every top-k slot fired
  stats.active.add_(codes.value.gt(0).sum(1));
  const at::Tensor r = residual(partial, x, p.b_dec, peers, stats.sse, stats.square_buffer);
  const at::Tensor g_rec = r * (2.0 * inv_L);
  Slots aux;
  at::Tensor g_aux;
  if (dead.defined() && spec.k_aux > 0) g_aux = aux_k(spec, p, post, r, dead, inv_L, peers, aux, stats);

  const bool sparsify = spec.rule == StepRule::kSparsify;
  at::Tensor db_enc = at::zeros({S, n}, p.b_enc.options());
  for (int64_t s = 0; s < S; ++s) {
    backward_slots(codes, s, g_rec[s], p.W_dec[s], x_in[s], /*encoder=*/true, g, db_enc[s]);
    // sparsify's AuxK reaches only W_dec and b_dec
    if (g_aux.defined()) backward_slots(aux, s, g_aux[s], p.W_dec[s], x_in[s], /*encoder=*/!sparsify, g, db_enc[s]);
  }
  g.b_enc.add_(db_enc);
  if (spec.apply_b_dec_to_input) g.b_dec.sub_(at::bmm(db_enc.unsqueeze(1), p.W_enc).squeeze(1));
  if (peers.rank() == 0) g.b_dec.add_(g_rec.sum(1));
  if (peers.rank() == 0 && g_aux.defined() && sparsify) g.b_dec.add_(g_aux.sum(1));  // ê's + b_dec
}

void generic_adam_update(SaeStack& params, const SaeStack& grads, AdamState& state, double step_size, double bias2_sqrt,
                         const AdamConfig& c) {
  const auto p = params.tensors();
  const auto g = grads.tensors();
  const auto m = state.m.tensors();
  const auto v = state.v.tensors();
  for (size_t i = 0; i < p.size(); ++i) {
    m[i]->mul_(c.beta1).add_(*g[i], 1.0 - c.beta1);
    v[i]->mul_(c.beta2).addcmul_(*g[i], *g[i], 1.0 - c.beta2);
    p[i]->addcdiv_(*m[i], (v[i]->sqrt() / bias2_sqrt).add_(c.eps), -step_size);
  }
}

}  // namespace universae::core::detail
