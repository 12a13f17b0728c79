// Forward and backward of the five architectures by hand; see sae_model.hpp. The gradient formulas
// are those autograd derives from METHODS.md §1's losses (scripts/sae_train_ref.py checks each one);
// where top-k makes codes sparse, the work is organised around the non-zero codes.
#include "core/sae_model.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <numeric>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/sae_step_parts.hpp"

namespace universae::core {

bool SaeSpec::unit_norm_decoder() const {
  return architecture == Architecture::kRelu || has_top_k(architecture);
}

namespace {

// Every tensor slot of a stack, in the order tensors() lists them.
constexpr at::Tensor SaeStack::*kSlots[] = {&SaeStack::W_enc, &SaeStack::b_enc, &SaeStack::W_dec, &SaeStack::b_dec,
                                            &SaeStack::log_threshold, &SaeStack::r_mag, &SaeStack::b_mag};
constexpr const char* kSlotNames[] = {"W_enc", "b_enc", "W_dec", "b_dec", "log_threshold", "r_mag", "b_mag"};

// fn(t) for each defined tensor of s; undefined slots stay undefined.
template <typename Fn>
SaeStack map_defined(const SaeStack& s, Fn&& fn) {
  SaeStack out;
  for (auto slot : kSlots)
    if ((s.*slot).defined()) out.*slot = fn(s.*slot);
  return out;
}

}  // namespace

std::vector<at::Tensor*> SaeStack::tensors() {
  std::vector<at::Tensor*> out;
  for (auto slot : kSlots)
    if ((this->*slot).defined()) out.push_back(&(this->*slot));
  return out;
}

std::vector<const at::Tensor*> SaeStack::tensors() const {
  std::vector<const at::Tensor*> out;
  for (auto slot : kSlots)
    if ((this->*slot).defined()) out.push_back(&(this->*slot));
  return out;
}

std::vector<std::string> SaeStack::names() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < std::size(kSlots); ++i)
    if ((this->*kSlots[i]).defined()) out.emplace_back(kSlotNames[i]);
  return out;
}

SaeStack SaeStack::zeros_like() const {
  return map_defined(*this, [](const at::Tensor& t) { return at::zeros_like(t); });
}

SaeStack SaeStack::to(at::Device device) const {
  return map_defined(*this, [device](const at::Tensor& t) { return t.to(device); });
}

namespace {

// sparsify's encoder and decoder at construction (StepRule::kSparsify): torch.manual_seed(seed), then
// nn.Linear(d, n) on the CPU draws its weight with kaiming_uniform_(a = √5) from torch's CPU generator,
// U(−bound, bound) with bound = √3 · gain / √d in torch's double arithmetic; W_dec = W_enc / (‖row‖ + ε).
// The whole (n, d) is drawn, so every latent shard takes its rows of the same matrix.
void init_sparsify(const SaeSpec& spec, const std::vector<int64_t>& seeds, SaeStack& p) {
  const double slope = std::sqrt(5.0);
  const double gain = std::sqrt(2.0 / (1.0 + slope * slope));
  const double bound = std::sqrt(3.0) * (gain / std::sqrt(static_cast<double>(spec.d)));
  const auto S = static_cast<int64_t>(seeds.size());
  p.W_enc = at::empty({S, spec.n_local(), spec.d}, at::kFloat);
  for (int64_t s = 0; s < S; ++s) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seeds[static_cast<size_t>(s)]));
    const at::Tensor full = at::empty({spec.n_latents, spec.d}, at::kFloat).uniform_(-bound, bound, gen);
    p.W_enc[s].copy_(full.narrow(0, spec.latents.begin, spec.n_local()));
  }
  const float eps = std::numeric_limits<float>::epsilon();
  p.W_dec = p.W_enc / (p.W_enc.norm(2, {2}, /*keepdim=*/true) + eps);
}

}  // namespace

namespace detail {

at::Tensor global_kth(const at::Tensor& candidates, int64_t k, const LatentPeers& peers) {
  const at::Tensor all = peers.allgather(candidates.contiguous());  // (P, rows, k)
  const int64_t rows = candidates.size(0), P = peers.size();
  const at::Tensor gathered = all.permute({1, 0, 2}).reshape({rows, P * k});
  return std::get<0>(at::topk(gathered, k, 1)).select(1, k - 1).contiguous();
}

at::Tensor bmm(const SaeSpec& spec, const at::Tensor& a, const at::Tensor& b) {
  if (spec.matmul != MatmulPrecision::kBFloat16) return at::bmm(a, b);
  return at::bmm(a.to(at::kBFloat16), b.to(at::kBFloat16)).to(at::kFloat);
}

at::Tensor baddbmm(const SaeSpec& spec, const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b) {
  if (spec.matmul != MatmulPrecision::kBFloat16) return at::baddbmm(bias, a, b);
  return bmm(spec, a, b).add_(bias);
}

void add_sum(at::Tensor& acc, const at::Tensor& per_seed) { acc.add_(per_seed.to(at::kDouble)); }

at::Tensor residual(at::Tensor partial, const at::Tensor& x, const at::Tensor& b_dec, const LatentPeers& peers,
                    at::Tensor& sse) {
  peers.sum(partial);
  at::Tensor r = partial + b_dec.unsqueeze(1) - x.unsqueeze(0);
  add_sum(sse, r.to(at::kDouble).pow(2).sum({1, 2}));
  return r;
}

}  // namespace detail

SaeStack init_stack(const SaeSpec& spec, const std::vector<int64_t>& seeds, const std::vector<double>& b_dec) {
  const auto S = static_cast<int64_t>(seeds.size());
  const int64_t n = spec.n_local(), d = spec.d;
  SaeStack p;
  if (spec.rule == StepRule::kSparsify) {
    init_sparsify(spec, seeds, p);
  } else {
    p.W_dec = at::empty({S, n, d}, at::kFloat);
    for (int64_t s = 0; s < S; ++s)
      normal_rows(p.W_dec[s].data_ptr<float>(), n, d, static_cast<uint64_t>(seeds[static_cast<size_t>(s)]),
                  kStreamSaeInit, /*unit=*/true, spec.latents.begin);
    p.W_enc = p.W_dec.clone();
  }
  p.b_enc = at::zeros({S, n}, at::kFloat);
  p.b_dec = at::empty({S, d}, at::kFloat);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t j = 0; j < d; ++j) p.b_dec[s][j] = b_dec[static_cast<size_t>(j)];
  if (spec.architecture == Architecture::kJumpRelu)
    p.log_threshold = at::full({S, n}, std::log(spec.jumprelu_init_threshold), at::kFloat);
  if (spec.architecture == Architecture::kGated) {
    p.r_mag = at::zeros({S, n}, at::kFloat);
    p.b_mag = at::zeros({S, n}, at::kFloat);
  }
  return p;
}

void LatentPeers::sum(at::Tensor& values) const {
  if (size() == 1) return;
  at::Tensor host = values.is_cpu() ? values : values.cpu();  // deliberate: MPI reduces host memory
  if (host.scalar_type() == at::kDouble)
    sum(host.data_ptr<double>(), host.numel());
  else
    sum(host.data_ptr<float>(), host.numel());
  if (!values.is_cpu()) values.copy_(host);
}

at::Tensor LatentPeers::allgather(const at::Tensor& local) const {
  if (size() == 1) return local.unsqueeze(0);
  const at::Tensor host = local.to(at::kCPU, at::kFloat).contiguous();  // deliberate: MPI gathers host memory
  std::vector<float> all = allgather(std::vector<float>(host.data_ptr<float>(), host.data_ptr<float>() + host.numel()));
  std::vector<int64_t> shape = host.sizes().vec();
  shape.insert(shape.begin(), size());
  return at::from_blob(all.data(), shape, at::kFloat).to(local.device(), /*non_blocking=*/false, /*copy=*/true);
}

StepStats::StepStats(int64_t seeds, int64_t n_local, at::Device device) {
  const auto f64 = at::TensorOptions(device).dtype(at::kDouble), i64 = at::TensorOptions(device).dtype(at::kLong);
  sse = at::empty({seeds}, f64), aux_sse = at::empty({seeds}, f64), sparsity = at::empty({seeds}, f64);
  active = at::empty({seeds}, i64), fires = at::empty({seeds, n_local}, i64), min_kept = at::empty({seeds}, f64);
  clear();
}

void StepStats::clear() {
  for (at::Tensor* t : {&sse, &aux_sse, &sparsity, &active, &fires}) t->zero_();
  min_kept.fill_(std::numeric_limits<double>::infinity());
}

namespace {

using detail::add_sum;
using detail::global_kth;
using detail::residual;

// The non-zero codes of one SAE on a micro-batch, token-major (compressed sparse rows).
struct Codes {
  std::vector<int64_t> row_ptr;  // [tokens + 1]
  std::vector<int64_t> latent;   // this rank's latent index
  std::vector<float> value;
  int64_t nnz() const { return static_cast<int64_t>(latent.size()); }
};

// Per token, the candidates (B, K) with a positive value (any value with `keep_zero`: sparsify's top-k
// slots) at or above the token's threshold (the k-th largest over all latent shards; none on one shard).
Codes codes_from_candidates(const at::Tensor& values, const at::Tensor& indices, const float* threshold,
                            bool keep_zero = false) {
  const int64_t B = values.size(0), K = values.size(1);
  const float* v = values.data_ptr<float>();
  const int64_t* idx = indices.data_ptr<int64_t>();
  Codes c;
  c.row_ptr.assign(static_cast<size_t>(B + 1), 0);
  for (int64_t t = 0; t < B; ++t) {
    for (int64_t j = t * K; j < (t + 1) * K; ++j)
      if ((v[j] > 0 || keep_zero) && (threshold == nullptr || v[j] >= threshold[t]))
        c.latent.push_back(idx[j]), c.value.push_back(v[j]);
    c.row_ptr[static_cast<size_t>(t + 1)] = c.nnz();
  }
  return c;
}

// x̂ partial sums: out[t] += Σ_{codes of t} value · W[latent].
void decode_add(const Codes& c, const float* W, int64_t d, float* out) {
  const int64_t B = static_cast<int64_t>(c.row_ptr.size()) - 1;
  at::parallel_for(0, B, 64, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* o = out + t * d;
      for (int64_t j = c.row_ptr[t]; j < c.row_ptr[t + 1]; ++j) {
        const float v = c.value[j];
        const float* w = W + c.latent[j] * d;
#pragma omp simd
        for (int64_t q = 0; q < d; ++q) o[q] += v * w[q];
      }
    }
  });
}

// Per code (token t, latent i): G[t] · W[i].
std::vector<float> code_dots(const Codes& c, const float* G, const float* W, int64_t d) {
  const int64_t B = static_cast<int64_t>(c.row_ptr.size()) - 1;
  std::vector<float> out(static_cast<size_t>(c.nnz()));
  at::parallel_for(0, B, 64, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* g = G + t * d;
      for (int64_t j = c.row_ptr[t]; j < c.row_ptr[t + 1]; ++j) {
        const float* w = W + c.latent[j] * d;
        float acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t q = 0; q < d; ++q) acc += g[q] * w[q];
        out[j] = acc;
      }
    }
  });
  return out;
}

// acc[i] += Σ_{codes (t, i)} weight · X[t], and bias[i] += Σ weight when `bias` is given. Codes are
// regrouped by latent (a stable counting sort, so each row sums in token order) and latents run in
// parallel: no atomics, the same result for any thread count.
void latent_accumulate(const Codes& c, const std::vector<float>& weight, const float* X, int64_t d, int64_t n,
                       float* acc, float* bias) {
  std::vector<int64_t> start(static_cast<size_t>(n + 1), 0);
  for (int64_t i : c.latent) ++start[static_cast<size_t>(i + 1)];
  std::partial_sum(start.begin(), start.end(), start.begin());
  std::vector<int64_t> fill(start.begin(), start.end() - 1), token(static_cast<size_t>(c.nnz()));
  std::vector<float> w(static_cast<size_t>(c.nnz()));
  const int64_t B = static_cast<int64_t>(c.row_ptr.size()) - 1;
  for (int64_t t = 0; t < B; ++t)
    for (int64_t j = c.row_ptr[t]; j < c.row_ptr[t + 1]; ++j) {
      const int64_t slot = fill[static_cast<size_t>(c.latent[j])]++;
      token[slot] = t, w[slot] = weight[j];
    }
  at::parallel_for(0, n, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* a = acc + i * d;
      float b = 0;
      for (int64_t j = start[i]; j < start[i + 1]; ++j) {
        const float* x = X + token[j] * d;
        const float wj = w[j];
#pragma omp simd
        for (int64_t q = 0; q < d; ++q) a[q] += wj * x[q];
        b += wj;
      }
      if (bias != nullptr) bias[i] += b;
    }
  });
}

void count_dense_fires(const at::Tensor& z, StepStats& stats) {
  const at::Tensor fired = z.gt(0).sum(1);  // (S, n) int64
  stats.fires.add_(fired);
  stats.active.add_(fired.sum(1));
}

// The gradients every architecture shares once dL/dpre is known: W_enc, b_enc, and b_dec through
// x − b_dec; `dpre` (S, B, n). Returns nothing; adds to grads.
void encoder_grads(const SaeSpec& spec, const SaeStack& p, const at::Tensor& x_in, const at::Tensor& dpre, SaeStack& g) {
  g.W_enc.add_(detail::bmm(spec, dpre.transpose(1, 2), x_in));
  const at::Tensor col = dpre.sum(1);  // (S, n)
  g.b_enc.add_(col);
  if (spec.apply_b_dec_to_input) g.b_dec.sub_(at::bmm(col.unsqueeze(1), p.W_enc).squeeze(1));
}

// The codes of a top-k architecture from relu(pre) `post` (S, B, n): topk per token, or batchtopk's
// k·B largest over the micro-batch (with the smallest kept value per seed in stats.min_kept).
std::vector<Codes> select_codes(const SaeSpec& spec, const at::Tensor& post, const LatentPeers& peers, StepStats& stats) {
  const int64_t S = post.size(0), B = post.size(1), n = post.size(2);
  std::vector<Codes> codes(static_cast<size_t>(S));
  if (spec.architecture == Architecture::kTopK) {
    auto [values, indices] = at::topk(post, spec.k, 2);
    at::Tensor kth;
    if (peers.size() > 1) kth = global_kth(values.reshape({S * B, spec.k}), spec.k, peers).view({S, B});
    for (int64_t s = 0; s < S; ++s)
      codes[s] = codes_from_candidates(values[s].contiguous(), indices[s].contiguous(),
                                       kth.defined() ? kth[s].data_ptr<float>() : nullptr, spec.rule == StepRule::kSparsify);
    return codes;
  }
  const int64_t K = spec.k * B;  // batchtopk
  auto [values, flat] = at::topk(post.reshape({S, B * n}), K, 1);
  at::Tensor kth;
  if (peers.size() > 1) kth = global_kth(values, K, peers);
  double* min_kept = stats.min_kept.data_ptr<double>();
  for (int64_t s = 0; s < S; ++s) {
    const float* v = values[s].data_ptr<float>();
    const int64_t* f = flat[s].data_ptr<int64_t>();
    const float bound = kth.defined() ? kth.data_ptr<float>()[s] : 0.0f;
    std::vector<std::pair<int64_t, float>> kept;
    for (int64_t j = 0; j < K; ++j)
      if (v[j] > 0 && v[j] >= bound) kept.emplace_back(f[j], v[j]);
    std::sort(kept.begin(), kept.end());
    Codes& c = codes[s];
    c.row_ptr.assign(static_cast<size_t>(B + 1), 0);
    for (const auto& [fi, val] : kept) {
      c.latent.push_back(fi % n), c.value.push_back(val);
      ++c.row_ptr[static_cast<size_t>(fi / n + 1)];
      min_kept[s] = std::min(min_kept[s], static_cast<double>(val));
    }
    std::partial_sum(c.row_ptr.begin(), c.row_ptr.end(), c.row_ptr.begin());
  }
  return codes;
}

// AuxK (Gao et al.): the top k_aux pre-activations of dead latents reconstruct the residual x − x̂.
// Fills `aux` (per seed) and returns the auxiliary loss's gradient at the reconstruction (S, B, d),
// undefined when no seed has a dead latent.
at::Tensor aux_k(const SaeSpec& spec, const SaeStack& p, const at::Tensor& post, const at::Tensor& r, const at::Tensor& dead,
                 double inv_L, const LatentPeers& peers, std::vector<Codes>& aux, StepStats& stats) {
  const int64_t S = post.size(0), B = post.size(1), d = spec.d;
  at::Tensor dead_count = dead.sum(1).to(at::kDouble).contiguous();
  peers.sum(dead_count);
  const std::vector<double> n_dead(dead_count.data_ptr<double>(), dead_count.data_ptr<double>() + S);
  if (std::none_of(n_dead.begin(), n_dead.end(), [](double v) { return v > 0; })) return {};
  const int64_t K = spec.k_aux;
  at::Tensor values = at::zeros({S, B, K}, at::kFloat);
  at::Tensor indices = at::zeros({S, B, K}, at::kLong);
  for (int64_t s = 0; s < S; ++s) {
    const at::Tensor dead_idx = dead[s].nonzero().view({-1});
    if (dead_idx.numel() == 0) continue;
    const int64_t kk = std::min(K, dead_idx.numel());
    auto [v, i] = at::topk(post[s].index_select(1, dead_idx), kk, 1);
    values[s].narrow(1, 0, kk).copy_(v);
    indices[s].narrow(1, 0, kk).copy_(dead_idx.index_select(0, i.reshape({-1})).view({B, kk}));
  }
  at::Tensor kth;
  if (peers.size() > 1) kth = global_kth(values.reshape({S * B, K}), K, peers).view({S, B});
  at::Tensor aux_partial = at::zeros({S, B, d}, at::kFloat);
  for (int64_t s = 0; s < S; ++s) {
    if (n_dead[s] == 0) continue;
    aux[s] = codes_from_candidates(values[s].contiguous(), indices[s].contiguous(), kth.defined() ? kth[s].data_ptr<float>() : nullptr);
    decode_add(aux[s], p.W_dec[s].data_ptr<float>(), d, aux_partial[s].data_ptr<float>());
  }
  peers.sum(aux_partial);
  // ê − (x − x̂) = ê + r; seeds without dead latents have no auxiliary loss. sparsify decodes ê with
  // b_dec and scales each seed's loss by min(dead / k_aux, 1) (recorded scaled in aux_sse).
  const bool sparsify = spec.rule == StepRule::kSparsify;
  at::Tensor aux_res = sparsify ? aux_partial + p.b_dec.unsqueeze(1) + r : aux_partial + r;
  std::vector<float> weight(static_cast<size_t>(S));
  for (int64_t s = 0; s < S; ++s)
    weight[s] = n_dead[s] == 0 ? 0.0f : sparsify ? static_cast<float>(std::min(n_dead[s] / static_cast<double>(K), 1.0)) : 1.0f;
  if (!sparsify) {
    aux_res.mul_(at::tensor(weight).view({S, 1, 1}));
    add_sum(stats.aux_sse, aux_res.to(at::kDouble).pow(2).sum({1, 2}));
    return aux_res * (2.0 * spec.aux_alpha * inv_L);
  }
  const at::Tensor scale = at::tensor(std::vector<double>(weight.begin(), weight.end()), at::kDouble);
  add_sum(stats.aux_sse, aux_res.to(at::kDouble).pow(2).sum({1, 2}) * scale);
  return aux_res * (scale.to(at::kFloat) * static_cast<float>(2.0 * spec.aux_alpha * inv_L)).view({S, 1, 1});
}

void sparse_forward_backward(const SaeSpec& spec, const SaeStack& p, const at::Tensor& x, const at::Tensor& x_in,
                             const at::Tensor& dead, double inv_L, const LatentPeers& peers, SaeStack& g,
                             StepStats& stats) {
  const int64_t S = p.W_enc.size(0), B = x.size(0), d = spec.d, n = spec.n_local();
  at::Tensor post;  // relu(pre) (S, B, n)
  if (spec.matmul == MatmulPrecision::kBFloat16) {
    post = detail::baddbmm(spec, p.b_enc.unsqueeze(1), x_in, p.W_enc.transpose(1, 2)).relu_();
  } else {  // into the buffer kept in `stats`: the same kernel as at::baddbmm, no fresh GB-sized pages per step
    if (!stats.encoder_buffer.defined()) stats.encoder_buffer = at::empty({0}, x_in.options());
    post = at::baddbmm_out(stats.encoder_buffer, p.b_enc.unsqueeze(1), x_in, p.W_enc.transpose(1, 2)).relu_();
  }
  const std::vector<Codes> codes = select_codes(spec, post, peers, stats);
  at::Tensor partial = at::zeros({S, B, d}, at::kFloat);
  int64_t* fires = stats.fires.data_ptr<int64_t>();
  int64_t* active = stats.active.data_ptr<int64_t>();
  for (int64_t s = 0; s < S; ++s) {
    decode_add(codes[s], p.W_dec[s].data_ptr<float>(), d, partial[s].data_ptr<float>());
    for (int64_t i : codes[s].latent) ++fires[s * n + i];  // sparsify: every top-k slot fired
    active[s] += std::count_if(codes[s].value.begin(), codes[s].value.end(), [](float v) { return v > 0; });
  }
  const at::Tensor r = residual(partial, x, p.b_dec, peers, stats.sse);
  const at::Tensor g_rec = r * (2.0 * inv_L);
  std::vector<Codes> aux(static_cast<size_t>(S));
  at::Tensor g_aux;
  if (dead.defined() && spec.k_aux > 0) g_aux = aux_k(spec, p, post, r, dead, inv_L, peers, aux, stats);

  // Backward through the sparse codes: decoder rows and encoder rows of the active latents only.
  at::Tensor db_enc = at::zeros({S, n}, at::kFloat);
  for (int64_t s = 0; s < S; ++s) {
    float* dW_dec = g.W_dec[s].data_ptr<float>();
    float* dW_enc = g.W_enc[s].data_ptr<float>();
    const float* W_dec = p.W_dec[s].data_ptr<float>();
    const float* xs = x_in[s].data_ptr<float>();
    // values > 0, so relu passes; sparsify's fused encoder passes a zero-valued slot's gradient too
    // (no ReLU mask) and drops AuxK's gradient at the encoder (`encoder` false).
    auto apply = [&](const Codes& c, const float* G, bool encoder) {
      if (c.nnz() == 0) return;
      latent_accumulate(c, c.value, G, d, n, dW_dec, nullptr);
      if (!encoder) return;
      const std::vector<float> dpre = code_dots(c, G, W_dec, d);
      latent_accumulate(c, dpre, xs, d, n, dW_enc, db_enc[s].data_ptr<float>());
    };
    apply(codes[s], g_rec[s].data_ptr<float>(), true);
    if (g_aux.defined()) apply(aux[s], g_aux[s].data_ptr<float>(), spec.rule != StepRule::kSparsify);
  }
  g.b_enc.add_(db_enc);
  if (spec.apply_b_dec_to_input) g.b_dec.sub_(at::bmm(db_enc.unsqueeze(1), p.W_enc).squeeze(1));
  if (peers.rank() == 0) g.b_dec.add_(g_rec.sum(1));
  if (peers.rank() == 0 && g_aux.defined() && spec.rule == StepRule::kSparsify) g.b_dec.add_(g_aux.sum(1));  // ê's + b_dec
}

void dense_forward_backward(const SaeSpec& spec, const SaeStack& p, const at::Tensor& x, const at::Tensor& x_in,
                            double inv_L, const LatentPeers& peers, SaeStack& g, StepStats& stats) {
  const double lam = spec.sparsity * inv_L;
  const at::Tensor W_dec_t = p.W_dec.transpose(1, 2);
  const at::Tensor dec_norm = p.W_dec.norm(2, {2});  // (S, n)
  const at::Tensor unit_dec = p.W_dec / dec_norm.unsqueeze(2);
  at::Tensor g_rec;
  switch (spec.architecture) {
    case Architecture::kRelu: {
      const at::Tensor z = detail::baddbmm(spec, p.b_enc.unsqueeze(1), x_in, p.W_enc.transpose(1, 2)).relu_();
      count_dense_fires(z, stats);
      g_rec = residual(detail::bmm(spec, z, p.W_dec), x, p.b_dec, peers, stats.sse) * (2.0 * inv_L);
      add_sum(stats.sparsity, (z * dec_norm.unsqueeze(1)).sum({1, 2}));
      const at::Tensor dpre = (detail::bmm(spec, g_rec, W_dec_t) + lam * dec_norm.unsqueeze(1)) * z.gt(0);
      g.W_dec.add_(detail::bmm(spec, z.transpose(1, 2), g_rec) + lam * z.sum(1).unsqueeze(2) * unit_dec);
      encoder_grads(spec, p, x_in, dpre, g);
      break;
    }
    case Architecture::kJumpRelu: {
      // Rajamanoharan et al. 2024b: z = relu(pre)·H(relu(pre) − θ); pseudo-derivatives in θ only.
      const at::Tensor post = detail::baddbmm(spec, p.b_enc.unsqueeze(1), x_in, p.W_enc.transpose(1, 2)).relu_();
      const at::Tensor theta = p.log_threshold.exp();  // (S, n)
      const at::Tensor mask = post.gt(theta.unsqueeze(1)).to(at::kFloat);
      const at::Tensor z = post * mask;
      count_dense_fires(z, stats);
      g_rec = residual(detail::bmm(spec, z, p.W_dec), x, p.b_dec, peers, stats.sse) * (2.0 * inv_L);
      add_sum(stats.sparsity, mask.sum({1, 2}));
      const at::Tensor dz = detail::bmm(spec, g_rec, W_dec_t);
      const at::Tensor u = (post - theta.unsqueeze(1)) / spec.bandwidth;
      const at::Tensor kernel = (u.gt(-0.5) & u.lt(0.5)).to(at::kFloat);
      const at::Tensor d_theta = (dz * kernel).sum(1) * (-theta / spec.bandwidth) - (lam / spec.bandwidth) * kernel.sum(1);
      g.log_threshold.add_(d_theta * theta);
      g.W_dec.add_(detail::bmm(spec, z.transpose(1, 2), g_rec));
      encoder_grads(spec, p, x_in, dz * mask, g);
      break;
    }
    case Architecture::kGated: {
      // Rajamanoharan et al. 2024a: gate and magnitude paths share W_gate (W_mag = exp(r_mag) ⊙ W_gate).
      const at::Tensor h = detail::bmm(spec, x_in, p.W_enc.transpose(1, 2));
      const at::Tensor pi_gate = h + p.b_enc.unsqueeze(1);
      const at::Tensor e = p.r_mag.exp().unsqueeze(1);
      const at::Tensor pi_mag = h * e + p.b_mag.unsqueeze(1);
      const at::Tensor gate = pi_gate.gt(0).to(at::kFloat);
      const at::Tensor z = gate * pi_mag.relu();
      const at::Tensor rg = pi_gate.relu();
      count_dense_fires(z, stats);
      g_rec = residual(detail::bmm(spec, z, p.W_dec), x, p.b_dec, peers, stats.sse) * (2.0 * inv_L);
      add_sum(stats.sparsity, (rg * dec_norm.unsqueeze(1)).sum({1, 2}));
      // Auxiliary loss: relu(π_gate) through a frozen copy of the decoder (W_dec and b_dec detached).
      const at::Tensor g_aux = residual(detail::bmm(spec, rg, p.W_dec), x, p.b_dec, peers, stats.aux_sse) * (2.0 * inv_L);
      const at::Tensor d_mag = detail::bmm(spec, g_rec, W_dec_t) * gate * pi_mag.gt(0);
      const at::Tensor d_gate = (lam * dec_norm.unsqueeze(1) + detail::bmm(spec, g_aux, W_dec_t)) * gate;
      g.b_mag.add_(d_mag.sum(1));
      g.r_mag.add_((d_mag * h).sum(1) * e.squeeze(1));
      g.W_dec.add_(detail::bmm(spec, z.transpose(1, 2), g_rec) + lam * rg.sum(1).unsqueeze(2) * unit_dec);
      // dL/dh = d_gate + e ⊙ d_mag; b_enc (b_gate) sees d_gate only.
      const at::Tensor dh = d_gate + d_mag * e;
      g.W_enc.add_(detail::bmm(spec, dh.transpose(1, 2), x_in));
      g.b_enc.add_(d_gate.sum(1));
      if (spec.apply_b_dec_to_input) g.b_dec.sub_(at::bmm(dh.sum(1).unsqueeze(1), p.W_enc).squeeze(1));
      break;
    }
    default: throw InternalError("dense_forward_backward: not a dense architecture");
  }
  if (peers.rank() == 0) g.b_dec.add_(g_rec.sum(1));
}

}  // namespace

void forward_backward(const SaeSpec& spec, const SaeStack& params, const at::Tensor& x, const at::Tensor& dead,
                      int64_t loss_tokens, const LatentPeers& peers, SaeStack& grads, StepStats& stats) {
  forward_backward(spec, params, x, dead, static_cast<double>(loss_tokens), peers, grads, stats);
}

void forward_backward(const SaeSpec& spec, const SaeStack& params, const at::Tensor& x, const at::Tensor& dead,
                      double loss_denominator, const LatentPeers& peers, SaeStack& grads, StepStats& stats) {
  const int64_t S = params.W_enc.size(0), B = x.size(0);
  const at::Tensor x_in = spec.apply_b_dec_to_input ? (x.unsqueeze(0) - params.b_dec.unsqueeze(1)).contiguous()
                                                    : x.unsqueeze(0).expand({S, B, spec.d}).contiguous();
  const double inv_L = 1.0 / loss_denominator;
  if (has_top_k(spec.architecture) && spec.kernels == Kernels::kGeneric)
    detail::generic_sparse_forward_backward(spec, params, x, x_in, dead, inv_L, peers, grads, stats);
  else if (has_top_k(spec.architecture))
    sparse_forward_backward(spec, params, x, x_in, dead, inv_L, peers, grads, stats);
  else
    dense_forward_backward(spec, params, x, x_in, inv_L, peers, grads, stats);
}

AdamState init_adam(const SaeStack& params) { return {params.zeros_like(), params.zeros_like(), 0}; }

void remove_parallel_decoder_grad(const SaeSpec& spec, const SaeStack& params, SaeStack& grads) {
  if (!spec.unit_norm_decoder()) return;
  const auto project = [](at::Tensor g, const at::Tensor& w) { g.sub_((g * w).sum(-1, /*keepdim=*/true) * w); };
  if (!grads.W_dec.is_cpu()) {
    project(grads.W_dec, params.W_dec);
    return;
  }
  // g −= (g·w) w row by row. On the CPU in blocks of rows of about 1 MiB, one block per thread at a
  // time: the whole-tensor form allocates two W_dec-sized temporaries every step (2 GiB per rank at
  // n_local 65,536 × d 4,096, the peak of the step, and fresh pages each time). Each row's sum is the
  // same reduction either way, so the bits are the whole-tensor form's (Kernels.ProjectionInBlocksEqualsTheWholeTensorForm).
  const at::Tensor g = grads.W_dec.view({-1, spec.d}), w = params.W_dec.view({-1, spec.d});
  const int64_t rows = g.size(0), block = std::max<int64_t>(1, (int64_t{1} << 20) / (spec.d * 4));
  at::parallel_for(0, (rows + block - 1) / block, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r = b * block, len = std::min(block, rows - r);
      project(g.narrow(0, r, len), w.narrow(0, r, len));
    }
  });
}

at::Tensor grad_sq_norms(const SaeStack& grads, bool with_replicated) {
  const int64_t S = grads.W_enc.size(0);
  at::Tensor out = at::zeros({S}, grads.W_enc.options().dtype(at::kDouble));
  for (const at::Tensor* t : grads.tensors()) {
    if (t == &grads.b_dec && !with_replicated) continue;
    add_sum(out, t->reshape({S, -1}).norm(2, {1}).to(at::kDouble).pow(2));
  }
  return out;
}

void clip_gradients(SaeStack& grads, const at::Tensor& sq_norms, double max_norm) {
  if (max_norm <= 0) return;
  // coef = min(max_norm / (‖g_s‖ + 1e-6), 1) per seed, in float64 and then float32 as torch multiplies a
  // float tensor by a Python float; a factor of exactly 1 leaves a seed's gradients unchanged. Off the
  // CPU no branch on the values, so nothing leaves the device.
  const at::Tensor coef = (max_norm / (sq_norms.sqrt() + 1e-6)).clamp_max(1.0).to(at::kFloat);
  if (coef.is_cpu()) {  // on the host the factors can be read: a seed below the clip norm costs no pass
    for (int64_t s = 0; s < coef.size(0); ++s) {
      const float c = coef.data_ptr<float>()[s];
      if (c < 1.0f)
        for (at::Tensor* t : grads.tensors()) (*t)[s].mul_(c);
    }
    return;
  }
  for (at::Tensor* t : grads.tensors()) {
    std::vector<int64_t> shape(static_cast<size_t>(t->dim()), 1);
    shape[0] = t->size(0);
    t->mul_(coef.view(shape));
  }
}

void adam_step(SaeStack& params, const SaeStack& grads, AdamState& state, double lr, const AdamConfig& c,
               Kernels kernels) {
  ++state.step;
  const double bias1 = 1.0 - std::pow(c.beta1, static_cast<double>(state.step));
  const double bias2_sqrt = std::sqrt(1.0 - std::pow(c.beta2, static_cast<double>(state.step)));
  if (kernels == Kernels::kGeneric) {
    detail::generic_adam_update(params, grads, state, lr / bias1, bias2_sqrt, c);
    return;
  }
  // torch.optim.Adam's single-tensor update in one pass over memory, in its float operation order:
  // m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²; p −= (lr / bias1) · m / (sqrt(v) / sqrt(bias2) + ε).
  const auto b1 = static_cast<float>(c.beta1), a1 = static_cast<float>(1.0 - c.beta1);
  const auto b2 = static_cast<float>(c.beta2), a2 = static_cast<float>(1.0 - c.beta2);
  const auto bc2 = static_cast<float>(bias2_sqrt), eps = static_cast<float>(c.eps);
  const auto step_size = static_cast<float>(lr / bias1);
  const auto p = params.tensors();
  const auto g = grads.tensors();
  const auto m = state.m.tensors();
  const auto v = state.v.tensors();
  for (size_t i = 0; i < p.size(); ++i) {
    float* pp = p[i]->data_ptr<float>();
    const float* gp = g[i]->data_ptr<float>();
    float* mp = m[i]->data_ptr<float>();
    float* vp = v[i]->data_ptr<float>();
    at::parallel_for(0, p[i]->numel(), 4096, [&](int64_t j0, int64_t j1) {
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        mp[j] = mp[j] * b1 + a1 * gp[j];
        vp[j] = vp[j] * b2 + a2 * (gp[j] * gp[j]);
        pp[j] = pp[j] + -step_size * (mp[j] / (std::sqrt(vp[j]) / bc2 + eps));
      }
    });
  }
}

void normalize_decoder(const SaeSpec& spec, SaeStack& params) {
  if (!spec.unit_norm_decoder()) return;
  params.W_dec.div_(params.W_dec.norm(2, {2}, /*keepdim=*/true).clamp_min(1e-12));
}

void normalize_decoder_at_step_start(const SaeSpec& spec, SaeStack& params) {
  if (spec.rule != StepRule::kSparsify) return;
  params.W_dec.div_(params.W_dec.norm(2, {2}, /*keepdim=*/true) + std::numeric_limits<float>::epsilon());
}

void optimizer_step(const SaeSpec& spec, SaeStack& params, SaeStack& grads, AdamState& state, double lr,
                    const AdamConfig& config, double grad_clip, const LatentPeers& peers) {
  remove_parallel_decoder_grad(spec, params, grads);
  if (spec.rule == StepRule::kSparsify) {  // sparsify clips nothing and renormalises at the next step's start
    adam_step(params, grads, state, lr, config, spec.kernels);
    return;
  }
  at::Tensor sq = grad_sq_norms(grads, peers.rank() == 0);
  peers.sum(sq);
  clip_gradients(grads, sq, grad_clip);
  adam_step(params, grads, state, lr, config, spec.kernels);
  normalize_decoder(spec, params);
}

}  // namespace universae::core
