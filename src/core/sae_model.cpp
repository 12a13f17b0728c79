// Forward and backward of the five architectures by hand; see sae_model.hpp. The gradient formulas
// are those autograd derives from METHODS.md §1's losses (scripts/sae_train_ref.py checks each one);
// where top-k makes codes sparse, the work is organised around the non-zero codes.
#include "core/sae_model.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iterator>
#include <numeric>
#include <tuple>

#include "core/error.hpp"
#include "core/exact_sum.hpp"
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

at::Tensor& kept(at::Tensor& buffer, at::IntArrayRef shape, const at::TensorOptions& options) {
  if (!buffer.defined() || buffer.device() != options.device() || buffer.scalar_type() != options.dtype())
    buffer = at::empty({0}, options);
  buffer.resize_(shape);
  return buffer;
}

at::Tensor residual(at::Tensor partial, const at::Tensor& x, const at::Tensor& b_dec, const LatentPeers& peers,
                    at::Tensor& sse, at::Tensor& square) {
  peers.sum(partial);
  partial.add_(b_dec.unsqueeze(1)).sub_(x.unsqueeze(0));  // the kernels of partial + b_dec − x, so the same bits
  at::Tensor& sq = kept(square, partial.sizes(), partial.options().dtype(at::kDouble)).copy_(partial);
  add_sum(sse, sq.mul_(sq).sum({1, 2}));  // x·x: the kernel of pow(x, 2)
  return partial;
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

// Asks for a row of `d` floats to be brought into the caches (a hint: no effect on any result).
inline void prefetch_row(const float* row, int64_t d) {
  for (int64_t q = 0; q < d; q += 16) __builtin_prefetch(row + q);
}

// x̂ partial sums: out[t] += Σ_{codes of t} value · W[latent].
// Two codes per pass over out[t], added one after the other as the plain loop would (the same bits),
// and the rows of the next two requested ahead: W's rows are gathered from a matrix far larger than the
// caches (32 MiB at 16,384 × 512).
void decode_add(const Codes& c, const float* W, int64_t d, float* out) {
  const int64_t B = static_cast<int64_t>(c.row_ptr.size()) - 1;
  at::parallel_for(0, B, 64, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* o = out + t * d;
      const int64_t end = c.row_ptr[t + 1];
      int64_t j = c.row_ptr[t];
      for (; j + 1 < end; j += 2) {
        if (j + 3 < c.nnz()) prefetch_row(W + c.latent[j + 2] * d, d), prefetch_row(W + c.latent[j + 3] * d, d);
        const float v1 = c.value[j], v2 = c.value[j + 1];
        const float* w1 = W + c.latent[j] * d;
        const float* w2 = W + c.latent[j + 1] * d;
#pragma omp simd
        for (int64_t q = 0; q < d; ++q) o[q] = (o[q] + v1 * w1[q]) + v2 * w2[q];
      }
      if (j < end) {
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
        if (j + 2 < c.nnz()) prefetch_row(W + c.latent[j + 2] * d, d);
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

}  // namespace

namespace detail {

// Codes regrouped by latent (a stable counting sort, so each latent's codes stay in token order), with
// a weight per code and the (B, d) matrix `rows` it weights: latent i's row is Σ_j w[j] · rows[token[j]]
// over j in [start[i], start[i + 1]). One part of a W_dec or W_enc gradient.
struct LatentRows {
  std::vector<int64_t> start, token;
  std::vector<float> w;
  at::Tensor rows;  // (B, d) float32, contiguous; held so that a deferred row can still be made
};

}  // namespace detail

// What a deferred gradient row is made of (SaeStack::deferred): per seed, the parts of each W_dec and
// W_enc row in the order the dense step adds them (the codes, then AuxK's).
struct DeferredRowGrads {
  std::vector<std::vector<detail::LatentRows>> dec, enc;  // [seed][part]
  bool fixed_point = false;
};

namespace {

using detail::LatentRows;

LatentRows by_latent(const Codes& c, const std::vector<float>& weight, int64_t n, at::Tensor rows) {
  LatentRows g;
  g.start.assign(static_cast<size_t>(n + 1), 0);
  for (int64_t i : c.latent) ++g.start[static_cast<size_t>(i + 1)];
  std::partial_sum(g.start.begin(), g.start.end(), g.start.begin());
  std::vector<int64_t> fill(g.start.begin(), g.start.end() - 1);
  g.token.resize(static_cast<size_t>(c.nnz()));
  g.w.resize(static_cast<size_t>(c.nnz()));
  const int64_t B = static_cast<int64_t>(c.row_ptr.size()) - 1;
  for (int64_t t = 0; t < B; ++t)
    for (int64_t j = c.row_ptr[t]; j < c.row_ptr[t + 1]; ++j) {
      const int64_t slot = fill[static_cast<size_t>(c.latent[j])]++;
      g.token[slot] = t, g.w[slot] = weight[j];
    }
  g.rows = std::move(rows);
  return g;
}

// a += latent i's row of `g`: two codes per pass over `a`, added one after the other (the same bits as
// one at a time), the next two tokens' rows requested ahead as in decode_add.
void add_row(const LatentRows& g, int64_t i, int64_t d, float* a) {
  const float* X = g.rows.data_ptr<float>();
  const int64_t end = g.start[i + 1], total = static_cast<int64_t>(g.token.size());
  int64_t j = g.start[i];
  for (; j + 1 < end; j += 2) {
    if (j + 3 < total) prefetch_row(X + g.token[j + 2] * d, d), prefetch_row(X + g.token[j + 3] * d, d);
    const float* x1 = X + g.token[j] * d;
    const float* x2 = X + g.token[j + 1] * d;
    const float w1 = g.w[j], w2 = g.w[j + 1];
#pragma omp simd
    for (int64_t q = 0; q < d; ++q) a[q] = (a[q] + w1 * x1[q]) + w2 * x2[q];
  }
  if (j < end) {
    const float* x = X + g.token[j] * d;
    const float wj = g.w[j];
#pragma omp simd
    for (int64_t q = 0; q < d; ++q) a[q] += wj * x[q];
  }
}

// bias[i] += Σ of latent i's weights, in token order.
void add_bias(const LatentRows& g, float* bias) {
  const int64_t n = static_cast<int64_t>(g.start.size()) - 1;
  for (int64_t i = 0; i < n; ++i) {
    float b = 0;
    for (int64_t j = g.start[i]; j < g.start[i + 1]; ++j) b += g.w[j];
    bias[i] += b;
  }
}

// acc[i] += latent i's row for every latent, in parallel over latents: no atomics, the same result
// for any thread count.
void accumulate_rows(const LatentRows& g, int64_t d, float* acc) {
  const int64_t n = static_cast<int64_t>(g.start.size()) - 1;
  at::parallel_for(0, n, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) add_row(g, i, d, acc + i * d);
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

// Whether a topk step selects with scan_topk from the pre-activations themselves, with no ReLU pass over
// the (S, B, n) encoder output (0.02–0.03 s of memory traffic at 4,096 × 16,384): only positive values
// become codes (codes_from_candidates), and the positive values of a row rank the same with or
// without the ReLU, also for AuxK's dead latents and across latent shards (a k-th value ≤ 0 admits every
// positive candidate either way). sparsify's rule keeps zero-valued slots, whose latents depend on how
// torch.topk orders the ReLU's ties: it keeps at::topk on relu(pre).
bool scans_topk(const SaeSpec& spec) {
  return spec.architecture == Architecture::kTopK && spec.rule == StepRule::kUniversae && spec.k <= spec.n_local();
}

// Per row of `pre` (S, B, n), its k largest values and their indices, in descending order as at::topk
// returns them, ties to the lower index: one scan of the row against the k-th best so far, inserting
// into a sorted list of k only a value that beats it (about k·ln(n/k) insertions in a row in random
// order). at::topk copies each row and partially sorts it: at 4,096 × 16,384, k 32, 2 threads the
// step's forward and backward went from 0.541–0.560 s to 0.515–0.540 s with this and no ReLU pass
// (bench/RESULTS.md).
// A NaN stops the step (InternalError: training diverged). Before, at::topk ranked it first and
// codes_from_candidates dropped it (NaN > 0 is false), so the step went on with that latent silent;
// the generic kernels still do.
std::tuple<at::Tensor, at::Tensor> scan_topk(const at::Tensor& pre, int64_t k) {
  const int64_t S = pre.size(0), B = pre.size(1), n = pre.size(2);
  at::Tensor values = at::empty({S, B, k}, at::kFloat);
  at::Tensor indices = at::empty({S, B, k}, at::kLong);
  const float* in = pre.data_ptr<float>();
  float* out_v = values.data_ptr<float>();
  int64_t* out_i = indices.data_ptr<int64_t>();
  std::atomic<bool> found_nan{false};
  at::parallel_for(0, S * B, 64, [&](int64_t r0, int64_t r1) {
    bool nan = false;
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = in + r * n;
      float* v = out_v + r * k;
      int64_t* ix = out_i + r * k;
      std::fill(v, v + k, -std::numeric_limits<float>::infinity());
      std::fill(ix, ix + k, int64_t{-1});
      float bound = v[k - 1];
      auto offer = [&](int64_t c) {
        const float x = row[c];
        if (x <= bound) return;  // the common case; a NaN compares false and is caught below
        if (std::isnan(x)) {
          nan = true;
          return;
        }
        int64_t pos = k - 1;
        while (pos > 0 && x > v[pos - 1]) {  // strictly greater: an equal value keeps its lower index first
          v[pos] = v[pos - 1], ix[pos] = ix[pos - 1];
          --pos;
        }
        v[pos] = x, ix[pos] = c;
        bound = v[k - 1];
      };
      int64_t c = 0;
#if defined(__SSE__)
      // 16 values at a time against the bound: a block with none above it (and no NaN: "not ≤" holds for
      // NaN) is skipped whole; any other is offered value by value, in order, as the plain loop would.
      // The scan went from 0.037-0.055 s to 0.026-0.046 s at 4,096 × 16,384, 2 threads (2026-12-02).
      for (; c + 16 <= n; c += 16) {
        const __m128 b = _mm_set1_ps(bound);
        const __m128 above = _mm_or_ps(_mm_or_ps(_mm_cmpnle_ps(_mm_loadu_ps(row + c), b), _mm_cmpnle_ps(_mm_loadu_ps(row + c + 4), b)),
                                       _mm_or_ps(_mm_cmpnle_ps(_mm_loadu_ps(row + c + 8), b), _mm_cmpnle_ps(_mm_loadu_ps(row + c + 12), b)));
        if (_mm_movemask_ps(above) == 0) continue;
        for (int64_t q = c; q < c + 16; ++q) offer(q);
      }
#endif
      for (; c < n; ++c) offer(c);
      if (nan) found_nan = true;
    }
  });
  if (found_nan) throw InternalError("a pre-activation is not a number: training diverged (lower train.lr)");
  return {values, indices};
}

// The codes of a top-k architecture from `post` (S, B, n), relu(pre) or, when scans_topk, pre itself:
// topk per token, or batchtopk's k·B largest over the micro-batch (with the smallest kept value per seed in stats.min_kept).
std::vector<Codes> select_codes(const SaeSpec& spec, const at::Tensor& post, const LatentPeers& peers, StepStats& stats) {
  const int64_t S = post.size(0), B = post.size(1), n = post.size(2);
  std::vector<Codes> codes(static_cast<size_t>(S));
  if (spec.architecture == Architecture::kTopK) {
    auto [values, indices] = scans_topk(spec) ? scan_topk(post, spec.k) : at::topk(post, spec.k, 2);
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
  at::Tensor post;  // relu(pre) (S, B, n); pre itself when scans_topk
  if (spec.matmul == MatmulPrecision::kBFloat16) {
    post = detail::baddbmm(spec, p.b_enc.unsqueeze(1), x_in, p.W_enc.transpose(1, 2)).relu_();
  } else {  // into the buffer kept in `stats`: the same kernel as at::baddbmm, no fresh GB-sized pages per step
    if (!stats.encoder_buffer.defined()) stats.encoder_buffer = at::empty({0}, x_in.options());
    post = at::baddbmm_out(stats.encoder_buffer, p.b_enc.unsqueeze(1), x_in, p.W_enc.transpose(1, 2));
    if (!scans_topk(spec)) post.relu_();
  }
  const std::vector<Codes> codes = select_codes(spec, post, peers, stats);
  at::Tensor partial = detail::kept(stats.residual_buffer, {S, B, d}, x.options().dtype(at::kFloat)).zero_();
  int64_t* fires = stats.fires.data_ptr<int64_t>();
  int64_t* active = stats.active.data_ptr<int64_t>();
  for (int64_t s = 0; s < S; ++s) {
    decode_add(codes[s], p.W_dec[s].data_ptr<float>(), d, partial[s].data_ptr<float>());
    for (int64_t i : codes[s].latent) ++fires[s * n + i];  // sparsify: every top-k slot fired
    active[s] += std::count_if(codes[s].value.begin(), codes[s].value.end(), [](float v) { return v > 0; });
  }
  const at::Tensor r = residual(partial, x, p.b_dec, peers, stats.sse, stats.square_buffer);
  const at::Tensor g_rec = detail::kept(stats.gradient_buffer, {S, B, d}, x.options().dtype(at::kFloat)).copy_(r).mul_(2.0 * inv_L);
  std::vector<Codes> aux(static_cast<size_t>(S));
  at::Tensor g_aux;
  if (dead.defined() && spec.k_aux > 0) g_aux = aux_k(spec, p, post, r, dead, inv_L, peers, aux, stats);

  // Backward through the sparse codes: decoder rows and encoder rows of the active latents only,
  // added to the dense gradients or, deferred, kept for optimizer_step to make row by row.
  at::Tensor db_enc = at::zeros({S, n}, at::kFloat);
  DeferredRowGrads* deferred = g.deferred.get();
  if (deferred != nullptr) deferred->dec.resize(static_cast<size_t>(S)), deferred->enc.resize(static_cast<size_t>(S));
  for (int64_t s = 0; s < S; ++s) {
    const float* W_dec = p.W_dec[s].data_ptr<float>();
    // values > 0, so relu passes; sparsify's fused encoder passes a zero-valued slot's gradient too
    // (no ReLU mask) and drops AuxK's gradient at the encoder (`encoder` false).
    auto apply = [&](const Codes& c, const at::Tensor& G, bool encoder) {
      if (c.nnz() == 0) return;
      LatentRows dec = by_latent(c, c.value, n, G[s]);
      LatentRows enc;
      if (encoder) {
        enc = by_latent(c, code_dots(c, G[s].data_ptr<float>(), W_dec, d), n, x_in[s]);
        add_bias(enc, db_enc[s].data_ptr<float>());
      }
      if (deferred != nullptr) {
        deferred->dec[s].push_back(std::move(dec));
        if (encoder) deferred->enc[s].push_back(std::move(enc));
        return;
      }
      accumulate_rows(dec, d, g.W_dec[s].data_ptr<float>());
      if (encoder) accumulate_rows(enc, d, g.W_enc[s].data_ptr<float>());
    };
    apply(codes[s], g_rec, true);
    if (g_aux.defined()) apply(aux[s], g_aux, spec.rule != StepRule::kSparsify);
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
      g_rec = residual(detail::bmm(spec, z, p.W_dec), x, p.b_dec, peers, stats.sse, stats.square_buffer) * (2.0 * inv_L);
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
      g_rec = residual(detail::bmm(spec, z, p.W_dec), x, p.b_dec, peers, stats.sse, stats.square_buffer) * (2.0 * inv_L);
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
      g_rec = residual(detail::bmm(spec, z, p.W_dec), x, p.b_dec, peers, stats.sse, stats.square_buffer) * (2.0 * inv_L);
      add_sum(stats.sparsity, (rg * dec_norm.unsqueeze(1)).sum({1, 2}));
      // Auxiliary loss: relu(π_gate) through a frozen copy of the decoder (W_dec and b_dec detached).
      const at::Tensor g_aux = residual(detail::bmm(spec, rg, p.W_dec), x, p.b_dec, peers, stats.aux_sse, stats.square_buffer) * (2.0 * inv_L);
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
  // x − b_dec (or x) for every seed, in the step's kept buffer: at 4 seeds × 4,096 × 512 it is 32 MiB, which
  // glibc would map and fault in afresh each step (a7c4d61: 0.6 → 0.05 s of system time a step with the
  // step's other kept buffers). sub_out runs the kernel of x − b_dec, so the bits are those of a fresh tensor.
  at::Tensor& x_in = detail::kept(stats.input_buffer, {S, B, spec.d}, x.options().dtype(at::kFloat));
  if (spec.apply_b_dec_to_input)
    at::sub_out(x_in, x.unsqueeze(0), params.b_dec.unsqueeze(1));
  else
    x_in.copy_(x.unsqueeze(0));
  const double inv_L = 1.0 / loss_denominator;
  if (grads.deferred && !can_defer_grads(spec, x.device()))
    throw InternalError("forward_backward: deferred gradient rows need the fast top-k kernels on the CPU");
  if (has_top_k(spec.architecture) && spec.kernels == Kernels::kGeneric)
    detail::generic_sparse_forward_backward(spec, params, x, x_in, dead, inv_L, peers, grads, stats);
  else if (has_top_k(spec.architecture))
    sparse_forward_backward(spec, params, x, x_in, dead, inv_L, peers, grads, stats);
  else
    dense_forward_backward(spec, params, x, x_in, inv_L, peers, grads, stats);
}

AdamState init_adam(const SaeStack& params) { return {params.zeros_like(), params.zeros_like(), 0}; }

bool can_defer_grads(const SaeSpec& spec, at::Device device) {
  return device.is_cpu() && spec.kernels == Kernels::kFast && has_top_k(spec.architecture);
}

bool worth_deferring_grads(const SaeSpec& spec, int64_t seeds, at::Device device) {
  return can_defer_grads(spec, device) && 2 * seeds * spec.n_local() * spec.d * 4 >= kDeferGradientBytes;
}

SaeStack deferred_grads(const SaeStack& params, bool fixed_point) {
  SaeStack small = params;  // the same tensors, W_enc and W_dec left out (never allocated here: 2 GiB at the size above)
  small.W_enc = at::Tensor(), small.W_dec = at::Tensor();
  SaeStack g = small.zeros_like();
  g.deferred = std::make_shared<DeferredRowGrads>();
  g.deferred->fixed_point = fixed_point;
  return g;
}

void zero_grads(SaeStack& grads) {
  for (at::Tensor* t : grads.tensors()) t->zero_();
  if (grads.deferred) grads.deferred->dec.clear(), grads.deferred->enc.clear();
}

namespace {

// The optimiser's row kernels on the host, shared by the dense and the deferred step so that both give
// the same bits. Each sum runs over 16 interleaved partial sums added in a fixed order at the end: it
// vectorises without reassociation, so its bits do not depend on the row's alignment, the thread or
// the vector width. (torch's reductions, used before, gave no such promise between a whole tensor and
// a row made in a buffer.)
float row_dot(const float* a, const float* b, int64_t d) {
  float lane[16] = {};
  int64_t q = 0;
  for (; q + 16 <= d; q += 16)
    for (int l = 0; l < 16; ++l) lane[l] += a[q + l] * b[q + l];
  for (int l = 0; q < d; ++q, ++l) lane[l] += a[q] * b[q];
  for (int width = 8; width > 0; width /= 2)
    for (int l = 0; l < width; ++l) lane[l] += lane[l + width];
  return lane[0];
}

// Σ a[q]² in float64 (the clipping norm), 8 interleaved partial sums.
double row_sq(const float* a, int64_t d) {
  double lane[8] = {};
  int64_t q = 0;
  for (; q + 8 <= d; q += 8)
    for (int l = 0; l < 8; ++l) lane[l] += static_cast<double>(a[q + l]) * a[q + l];
  for (int l = 0; q < d; ++q, ++l) lane[l] += static_cast<double>(a[q]) * a[q];
  for (int width = 4; width > 0; width /= 2)
    for (int l = 0; l < width; ++l) lane[l] += lane[l + width];
  return lane[0];
}

// g −= (g·w) w (the unit-norm decoder's gradient projection).
void project_row(float* g, const float* w, int64_t d) {
  const float c = row_dot(g, w, d);
#pragma omp simd
  for (int64_t q = 0; q < d; ++q) g[q] -= c * w[q];
}

// w /= max(‖w‖, 1e-12).
void normalize_row(float* w, int64_t d) {
  const float norm = std::max(std::sqrt(row_dot(w, w, d)), 1e-12f);
#pragma omp simd
  for (int64_t q = 0; q < d; ++q) w[q] /= norm;
}

void scale(float* g, int64_t len, float c) {
#pragma omp simd
  for (int64_t q = 0; q < len; ++q) g[q] *= c;
}

// torch.optim.Adam's single-tensor update for one step, in its float operation order:
// m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²; p −= (lr / bias1) · m / (sqrt(v) / sqrt(bias2) + ε).
struct AdamFactors {
  float b1, a1, b2, a2, bc2, eps, step_size;
};

AdamFactors next_adam_step(AdamState& state, double lr, const AdamConfig& c) {
  ++state.step;
  const double bias1 = 1.0 - std::pow(c.beta1, static_cast<double>(state.step));
  const double bias2_sqrt = std::sqrt(1.0 - std::pow(c.beta2, static_cast<double>(state.step)));
  return {static_cast<float>(c.beta1),    static_cast<float>(1.0 - c.beta1), static_cast<float>(c.beta2),
          static_cast<float>(1.0 - c.beta2), static_cast<float>(bias2_sqrt),   static_cast<float>(c.eps),
          static_cast<float>(lr / bias1)};
}

void adam_range(float* pp, const float* gp, float* mp, float* vp, int64_t len, const AdamFactors& f) {
#pragma omp simd
  for (int64_t j = 0; j < len; ++j) {
    mp[j] = mp[j] * f.b1 + f.a1 * gp[j];
    vp[j] = vp[j] * f.b2 + f.a2 * (gp[j] * gp[j]);
    pp[j] = pp[j] + -f.step_size * (mp[j] / (std::sqrt(vp[j]) / f.bc2 + f.eps));
  }
}

// A tensor of S seeds as (S, rows, cols): cols its last dimension (a (S, n) vector is one row).
int64_t row_width(const at::Tensor& t) { return t.dim() == 2 ? t.size(1) : t.size(-1); }

// Per seed Σ of squared entries, row by row in row order (float64): the order the deferred step uses.
void add_sq_norms(const at::Tensor& t, double* out) {
  const int64_t S = t.size(0), cols = row_width(t), rows = t.numel() / (S * cols);
  std::vector<double> sq(static_cast<size_t>(S * rows));
  const float* g = t.data_ptr<float>();
  at::parallel_for(0, S * rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) sq[r] = row_sq(g + r * cols, cols);
  });
  for (int64_t s = 0; s < S; ++s)
    out[s] += std::accumulate(sq.begin() + s * rows, sq.begin() + (s + 1) * rows, 0.0);
}

// The clipping factors min(max_norm / (‖g_s‖ + 1e-6), 1) per seed, in float64 and then float32 as torch
// multiplies a float tensor by a Python float (torch's clip_grad_norm_); 1 when not clipping.
std::vector<float> clip_factors(const at::Tensor& sq_norms, double max_norm) {
  const int64_t S = sq_norms.size(0);
  std::vector<float> c(static_cast<size_t>(S), 1.0f);
  if (max_norm <= 0) return c;
  const at::Tensor coef = (max_norm / (sq_norms.sqrt() + 1e-6)).clamp_max(1.0).to(at::kFloat).contiguous();
  std::copy(coef.data_ptr<float>(), coef.data_ptr<float>() + S, c.begin());
  return c;
}

}  // namespace

void remove_parallel_decoder_grad(const SaeSpec& spec, const SaeStack& params, SaeStack& grads) {
  if (!spec.unit_norm_decoder()) return;
  if (!grads.W_dec.is_cpu()) {
    grads.W_dec.sub_((grads.W_dec * params.W_dec).sum(-1, /*keepdim=*/true) * params.W_dec);
    return;
  }
  // On the host row by row, in place: the whole-tensor form allocated two W_dec-sized temporaries
  // every step (2 GiB per rank at n_local 65,536 × d 4,096, the peak of the step, fresh pages each time).
  const int64_t d = spec.d, rows = grads.W_dec.numel() / d;
  float* g = grads.W_dec.data_ptr<float>();
  const float* w = params.W_dec.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) project_row(g + r * d, w + r * d, d);
  });
}

at::Tensor grad_sq_norms(const SaeStack& grads, bool with_replicated) {
  const int64_t S = grads.b_dec.size(0);
  at::Tensor out = at::zeros({S}, grads.b_dec.options().dtype(at::kDouble));
  for (const at::Tensor* t : grads.tensors()) {
    if (t == &grads.b_dec && !with_replicated) continue;
    if (t->is_cpu())
      add_sq_norms(*t, out.data_ptr<double>());
    else
      add_sum(out, t->reshape({S, -1}).norm(2, {1}).to(at::kDouble).pow(2));
  }
  return out;
}

void clip_gradients(SaeStack& grads, const at::Tensor& sq_norms, double max_norm) {
  if (max_norm <= 0) return;
  if (sq_norms.is_cpu()) {  // on the host the factors can be read: a seed below the clip norm costs no pass
    const std::vector<float> c = clip_factors(sq_norms, max_norm);
    for (int64_t s = 0; s < static_cast<int64_t>(c.size()); ++s)
      if (c[s] < 1.0f)
        for (at::Tensor* t : grads.tensors()) {
          at::Tensor row = (*t)[s];
          scale(row.data_ptr<float>(), row.numel(), c[s]);
        }
    return;
  }
  // Off the CPU no branch on the values, so nothing leaves the device.
  const at::Tensor coef = (max_norm / (sq_norms.sqrt() + 1e-6)).clamp_max(1.0).to(at::kFloat);
  for (at::Tensor* t : grads.tensors()) {
    std::vector<int64_t> shape(static_cast<size_t>(t->dim()), 1);
    shape[0] = t->size(0);
    t->mul_(coef.view(shape));
  }
}

void adam_step(SaeStack& params, const SaeStack& grads, AdamState& state, double lr, const AdamConfig& c,
               Kernels kernels) {
  if (kernels == Kernels::kGeneric) {
    ++state.step;
    const double bias1 = 1.0 - std::pow(c.beta1, static_cast<double>(state.step));
    const double bias2_sqrt = std::sqrt(1.0 - std::pow(c.beta2, static_cast<double>(state.step)));
    detail::generic_adam_update(params, grads, state, lr / bias1, bias2_sqrt, c);
    return;
  }
  const AdamFactors f = next_adam_step(state, lr, c);  // one pass over memory
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
      adam_range(pp + j0, gp + j0, mp + j0, vp + j0, j1 - j0, f);
    });
  }
}

void normalize_decoder(const SaeSpec& spec, SaeStack& params) {
  if (!spec.unit_norm_decoder()) return;
  if (!params.W_dec.is_cpu()) {
    params.W_dec.div_(params.W_dec.norm(2, {2}, /*keepdim=*/true).clamp_min(1e-12));
    return;
  }
  const int64_t d = spec.d, rows = params.W_dec.numel() / d;
  float* w = params.W_dec.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) normalize_row(w + r * d, d);
  });
}

void normalize_decoder_at_step_start(const SaeSpec& spec, SaeStack& params) {
  if (spec.rule != StepRule::kSparsify) return;
  params.W_dec.div_(params.W_dec.norm(2, {2}, /*keepdim=*/true) + std::numeric_limits<float>::epsilon());
}

namespace {

// Where the fused optimiser step takes each W_enc (which = 0) or W_dec (1) gradient row from: a dense
// gradient in place (projected the first time it is touched), or a deferred one (deferred_grads) made
// into a per-thread buffer, rounded and projected each time, as the dense step has it when the
// optimiser starts (projected against the decoder row before that row's update).
class GradientRows {
 public:
  GradientRows(const SaeSpec& spec, const SaeStack& params, SaeStack& grads)
      : deferred_(grads.deferred.get()),
        n_(spec.n_local()),
        d_(spec.d),
        project_(spec.unit_norm_decoder()),
        W_dec_(params.W_dec.data_ptr<float>()),
        dense_{deferred_ == nullptr ? grads.W_enc.data_ptr<float>() : nullptr,
               deferred_ == nullptr ? grads.W_dec.data_ptr<float>() : nullptr} {}

  // Seed s's row of latent i; nullptr when rounding a deferred row met a value that is not finite or too large.
  float* row(int which, int64_t s, int64_t i, float* buf, bool first) const {
    const int64_t at_row = (s * n_ + i) * d_;
    if (deferred_ == nullptr) {
      float* g = dense_[which] + at_row;
      if (first && which == 1 && project_) project_row(g, W_dec_ + at_row, d_);
      return g;
    }
    std::fill(buf, buf + d_, 0.0f);
    const auto& of = which == 0 ? deferred_->enc : deferred_->dec;
    bool any = false;
    if (static_cast<size_t>(s) < of.size())
      for (const LatentRows& part : of[static_cast<size_t>(s)])
        if (part.start[i + 1] > part.start[i]) add_row(part, i, d_, buf), any = true;
    // A latent without codes has a +0 row, which rounding and projection leave +0 (c = +0, +0 − ±0 = +0):
    // skipped, as are a third of the latents at 131,072 latents and B·k = 131,072 codes.
    if (!any) return buf;
    if (deferred_->fixed_point && !round_trip_fixed(buf, d_)) return nullptr;
    if (which == 1 && project_) project_row(buf, W_dec_ + at_row, d_);
    return buf;
  }

 private:
  const DeferredRowGrads* deferred_;
  int64_t n_, d_;
  bool project_;
  const float* W_dec_;
  float* dense_[2];
};

InternalError diverged() {
  return InternalError("a gradient is not finite or exceeds 2^40: training diverged (lower train.lr)");
}

// Pass 1 of the fused step: the clipping factor per seed from the squared norms in grad_sq_norms' order
// (W_enc, b_enc, W_dec, b_dec on rank 0 only), each row by row, summed over the latent shards.
std::vector<float> clip_factors_of_rows(const GradientRows& rows, const SaeStack& grads, int64_t S, int64_t n, int64_t d,
                                        double grad_clip, const LatentPeers& peers) {
  std::vector<double> sq(static_cast<size_t>(2 * S * n));  // [which][s][i]
  std::atomic<bool> bad{false};
  at::parallel_for(0, S * n, 16, [&](int64_t r0, int64_t r1) {
    std::vector<float> buf(static_cast<size_t>(d));
    for (int64_t r = r0; r < r1; ++r)
      for (int which = 0; which < 2; ++which) {
        const float* g = rows.row(which, r / n, r % n, buf.data(), /*first=*/true);
        if (g == nullptr) bad = true;
        sq[static_cast<size_t>(which * S * n + r)] = g == nullptr ? 0.0 : row_sq(g, d);
      }
  });
  if (bad) throw diverged();
  at::Tensor norms = at::zeros({S}, at::kDouble);
  double* out = norms.data_ptr<double>();
  const auto sum_rows = [&](int which) {
    for (int64_t s = 0; s < S; ++s)
      out[s] += std::accumulate(sq.begin() + which * S * n + s * n, sq.begin() + which * S * n + (s + 1) * n, 0.0);
  };
  sum_rows(0);
  add_sq_norms(grads.b_enc, out);
  sum_rows(1);
  if (peers.rank() == 0) add_sq_norms(grads.b_dec, out);
  peers.sum(norms);
  return clip_factors(norms, grad_clip);
}

// The whole optimiser step of a fast top-k stack on the host in two passes over the rows: pass 1 the
// clipping norms, pass 2 clipping, Adam and renormalisation, each row while it is in cache. The sequence
// and the row kernels are those of the separate passes (remove_parallel_decoder_grad, grad_sq_norms,
// clip_gradients, adam_step, normalize_decoder), so the bits are theirs. Fusing saves the separate norm,
// clip and renormalisation passes over W-sized memory (bench/RESULTS.md, bench_train_step); deferred rows
// (GradientRows) also save writing, rounding and reading the dense gradient, and 2 GiB per rank at
// n_local 65,536 × d 4,096.
void fused_optimizer_step(const SaeSpec& spec, SaeStack& params, SaeStack& grads, AdamState& state, double lr,
                          const AdamConfig& config, double grad_clip, const LatentPeers& peers) {
  const int64_t S = params.W_enc.size(0), n = spec.n_local(), d = spec.d;
  const bool clip = spec.rule != StepRule::kSparsify && grad_clip > 0;
  const bool renormalize = spec.rule != StepRule::kSparsify && spec.unit_norm_decoder();
  const GradientRows rows(spec, params, grads);
  const std::vector<float> c =
      clip ? clip_factors_of_rows(rows, grads, S, n, d, grad_clip, peers) : std::vector<float>(static_cast<size_t>(S), 1.0f);

  const AdamFactors f = next_adam_step(state, lr, config);
  float* const P[2] = {params.W_enc.data_ptr<float>(), params.W_dec.data_ptr<float>()};
  float* const M[2] = {state.m.W_enc.data_ptr<float>(), state.m.W_dec.data_ptr<float>()};
  float* const V[2] = {state.v.W_enc.data_ptr<float>(), state.v.W_dec.data_ptr<float>()};
  std::atomic<bool> bad{false};
  at::parallel_for(0, S * n, 16, [&](int64_t r0, int64_t r1) {
    std::vector<float> buf(static_cast<size_t>(d));
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t s = r / n, i = r % n, offset = r * d;
      for (int which = 0; which < 2; ++which) {
        float* g = rows.row(which, s, i, buf.data(), /*first=*/!clip);
        if (g == nullptr) {
          bad = true;
          continue;
        }
        if (c[s] < 1.0f) scale(g, d, c[s]);
        adam_range(P[which] + offset, g, M[which] + offset, V[which] + offset, d, f);
      }
      if (renormalize) normalize_row(P[1] + offset, d);
    }
  });
  if (bad) throw diverged();
  // The small tensors (b_enc, b_dec) as the dense step treats them.
  for (at::Tensor* t : {&grads.b_enc, &grads.b_dec})
    for (int64_t s = 0; s < S; ++s)
      if (c[s] < 1.0f) scale((*t)[s].data_ptr<float>(), t->size(1), c[s]);
  for (auto [p, g, m, v] : {std::tuple{&params.b_enc, &grads.b_enc, &state.m.b_enc, &state.v.b_enc},
                            std::tuple{&params.b_dec, &grads.b_dec, &state.m.b_dec, &state.v.b_dec}})
    adam_range(p->data_ptr<float>(), g->data_ptr<float>(), m->data_ptr<float>(), v->data_ptr<float>(), p->numel(), f);
  if (grads.deferred) grads.deferred->dec.clear(), grads.deferred->enc.clear();
}

}  // namespace

void optimizer_step(const SaeSpec& spec, SaeStack& params, SaeStack& grads, AdamState& state, double lr,
                    const AdamConfig& config, double grad_clip, const LatentPeers& peers) {
  if (grads.deferred || (grads.W_enc.defined() && can_defer_grads(spec, grads.W_enc.device())))
    return fused_optimizer_step(spec, params, grads, state, lr, config, grad_clip, peers);
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
