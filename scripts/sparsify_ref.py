"""Golden reference: one training step of EleutherAI sparsify's TopK SAE trainer, in PyTorch.

Ported from github.com/EleutherAI/sparsify at commit
9d3b136c9217565af11089081444770e0d31673d (2026-06-08, package version 1.3.0), files
sparsify/{trainer.py, sparse_coder.py, fused_encoder.py, config.py, utils.py, sign_sgd.py}.
The default optimizer wraps facebookresearch/schedule_free
schedulefree/wrap_schedulefree.py (ScheduleFreeWrapper), read at commit
70785b53e778d0e872c0bbb75ff4ee54ee10c291. The Adam schedule is transformers'
get_linear_schedule_with_warmup. Only numpy/torch are imported; nothing from universae.

Layout (same as sparsify and as universae): W_enc [n, d] (= sparsify encoder.weight),
b_enc [n] (= encoder.bias), W_dec [n, d] (row i = decoder direction of latent i), b_dec [d].
x_hat = sum_j a_j W_dec[i_j] + b_dec.

API
    Cfg(...)                                      the hyperparameters (sparsify defaults)
    init(x_first_batch, d_in, num_latents, k, seed, cfg=None) -> params
    init_from(W_enc, b_enc, W_dec, b_dec)         -> params (explicit starting tensors)
    init_state(params, cfg)                       -> opt_state (optimizer + dead-latent counters)
    step(params, opt_state, x, step_index, cfg)   -> (params, opt_state, out)
        out: fvu, auxk_loss, loss (floats), lr, num_dead, top_acts, top_indices, did_fire,
             W_dec_fwd (the renormalised W_dec the forward used), grads (after the projection)
    lr_at(cfg, num_latents, step_index), default_lr(cfg, num_latents)

REPRODUCED (item: where in sparsify @9d3b136)
 1. Encoder init: torch.manual_seed(seed) then nn.Linear(d_in, num_latents, dtype=float32)
    on CPU (kaiming_uniform(a=sqrt 5) = U(-1/sqrt d_in, 1/sqrt d_in)); encoder.bias zeroed.
    [trainer.py: Trainer.__init__ "torch.manual_seed(seed)"; sparse_coder.py:
    SparseCoder.__init__ "self.encoder.bias.data.zero_()"]. No 0.1 scaling (removed in 413ca41).
 2. W_dec tied at init: W_dec = encoder.weight.clone() (same [n, d] layout, no transpose),
    then each row divided by (||row||_2 + finfo(float32).eps).
    [sparse_coder.py: SparseCoder.__init__, set_decoder_norm_to_unit_norm]
 3. b_dec: zeros at construction, then on global_step == 0 (and not finetune) set to the
    plain MEAN of the first batch's activations (not a geometric median: that was removed
    in 1a359dc, 2024-12-18). [trainer.py: Trainer.fit.hook "raw.b_dec.data = mean..."]
    b_enc stays 0 for SAEs (the mean-image bias init is transcoder-only).
 4. Decoder renormalisation happens at the START of every step, before the forward (after
    the step-0 b_dec init), in place on the parameter: W_dec /= ||W_dec||_row + eps.
    Nothing renormalises after the optimizer step, so params returned by step() (and
    sparsify's saved checkpoints) have rows only approximately unit-norm.
    [trainer.py: Trainer.fit.hook "raw.set_decoder_norm_to_unit_norm()"]
 5. Encoder input is x - b_dec. [sparse_coder.py: SparseCoder.encode "x = x - self.b_dec"]
 6. Encode = relu(linear(x - b_dec, W_enc, b_enc)) then torch.topk(k, sorted=False), with
    sparsify's custom autograd FusedEncoder, ported verbatim: its backward (a) IGNORES the
    gradient reaching pre_acts (so AuxK never trains the encoder), (b) does not apply the
    ReLU mask to grad_values (a top-k slot whose value is 0 still passes gradient to
    W_enc/b_enc/input). [fused_encoder.py: FusedEncoder.forward/backward]
 7. Decode = embedding_bag(top_indices, W_dec, per_sample_weights=top_acts, mode="sum")
    + b_dec (the eager fallback; the Triton kernel computes the same sum).
    [utils.py: eager_decode; sparse_coder.py: SparseCoder.decode]
 8. FVU = sum((x - x_hat)^2) / total_variance, total_variance = sum((x - mean_0 x)^2) over
    the whole batch (batch mean, summed over rows and features).
    [sparse_coder.py: SparseCoder.forward]
 9. AuxK (only if auxk_alpha > 0, default 0.0!) with dead_mask = num_tokens_since_fired >
    dead_feature_threshold (strict >): if num_dead > 0, k_aux = d_in // 2;
    scale = min(num_dead / k_aux, 1); k_aux = min(k_aux, num_dead);
    auxk_acts, auxk_idx = topk(where(dead, pre_acts, -inf), k_aux);
    e = x - x_hat (= y - sae_out, NOT x_hat - x);
    e_hat = decode(auxk_acts, auxk_idx) (this INCLUDES + b_dec);
    auxk_loss = scale * sum((e_hat - e.detach())^2) / total_variance.
    Gradient of AuxK reaches W_dec (dead rows) and b_dec only (see 6a).
    [sparse_coder.py: SparseCoder.forward]
10. Loss = fvu + auxk_alpha * auxk_loss (+ multi_topk_fvu/8, which is 0 here), divided by
    acc_steps = 1, backward. No gradient clipping anywhere. [trainer.py: Trainer.fit.hook]
11. Remove the gradient component parallel to each decoder row (uses the renormalised
    W_dec): g_i -= (g_i . w_i) w_i, after backward, before the optimizer step.
    [sparse_coder.py: remove_gradient_parallel_to_decoder_directions; trainer.py: fit]
12. Optimizers (one param group over all four tensors) [trainer.py: Trainer.__init__]:
    - "signum" (the DEFAULT): ScheduleFreeWrapper(SignSGD(lr), momentum=0.95), with
      weight_decay_at_y=0, weight_lr_power=2, r=0; lr = 5e-3 / sqrt(num_latents / 2**14);
      no LR scheduler (constant lr, no warmup). The model holds y; state holds z (created
      lazily = clone(y) at the first optimizer step). Per step:
        x = lerp(y, z, 1 - 1/beta); z = z - lr * sign(g);
        lr_max = max(lr_max, lr); weight = (k+1)**r * lr_max**2; weight_sum += weight;
        c = weight / weight_sum; x = lerp(x, z, c); y = lerp(x, z, 1 - beta); k += 1.
      [sign_sgd.py: SignSGD.step; schedulefree wrap_schedulefree.py: ScheduleFreeWrapper.step]
    - "adam": torch.optim.Adam defaults (betas (0.9, 0.999), eps 1e-8, no weight decay, no
      amsgrad), lr = 2e-4 / sqrt(num_latents / 2**14), LambdaLR with transformers'
      get_linear_schedule_with_warmup(num_warmup_steps=lr_warmup_steps=1000,
      num_training_steps=len(dataset)//batch_size): the optimizer step with index t
      (0-based) uses lr * f(t), f(t) = t / max(1, W) if t < W else
      max(0, (T - t) / max(1, T - W)). So step 0 has lr = 0 (Adam moments still update).
      Adam update ported from torch 1.13 _single_tensor_adam.
13. Dead-latent counters (int64, counted in TOKENS): after the optimizer step,
    counts += num_tokens_in_step (= B rows here); counts[did_fire] = 0, where did_fire marks
    every index in the main top-k output (including top-k slots whose value is 0).
    The dead mask used by a step's AuxK is computed from counts before that step's update.
    [trainer.py: Trainer.fit "counts += num_tokens_in_step; counts[did_fire[name]] = 0"]
14. Whole step in float32.

LEFT OUT (deliberately)
 - bf16 autocast of SparseCoder.forward on CUDA and torch.set_float32_matmul_precision("high")
   (TF32); this port is strict float32 on CPU. nn.Linear init on a CUDA device draws from the
   CUDA generator, so sparsify-on-GPU init values differ from init() here.
 - bitsandbytes Adam8bit (used by sparsify when installed); we use fp32 torch Adam.
 - Muon optimizer; multi-GPU / DDP / distribute_modules / all_reduce; grad_acc_steps and
   micro_acc_steps > 1; exclude_tokens masking (x is already the masked token batch);
   transcoders (transcode=True) and their encoder-bias init; multi_topk; skip connections
   (W_skip); groupmax activation; k_decay_steps (experimental, default 0); finetune;
   CE/KL end-to-end losses; lr scaling by batch (sparsify does none beyond the num_latents
   rule above); the ScheduleFree eval()/train() round trip done around each checkpoint save
   (every save_every=1000 steps, a float rounding perturbation of the parameters).
 - Tie-breaking of torch.topk among equal (e.g. zero) pre-activations is implementation
   defined; golden inputs should give every row >= k strictly positive pre-activations.
"""
import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SPARSIFY_COMMIT = "9d3b136c9217565af11089081444770e0d31673d"
SCHEDULEFREE_COMMIT = "70785b53e778d0e872c0bbb75ff4ee54ee10c291"
PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")


@dataclass
class Cfg:
    k: int = 32                                # SparseCoderConfig.k
    optimizer: str = "signum"                  # TrainConfig.optimizer default; or "adam"
    lr: Optional[float] = None                 # None (or 0) -> default_lr()
    lr_warmup_steps: int = 1000                # adam only
    num_training_steps: Optional[int] = None   # adam only: len(dataset) // batch_size
    auxk_alpha: float = 0.0                    # TrainConfig.auxk_alpha default
    dead_feature_threshold: int = 10_000_000   # tokens
    normalize_decoder: bool = True
    init_b_dec_from_batch: bool = True         # step_index == 0: b_dec = x.mean(0)
    momentum: float = 0.95                     # ScheduleFreeWrapper(momentum=0.95)
    weight_lr_power: float = 2.0               # ScheduleFreeWrapper default
    r: float = 0.0                             # ScheduleFreeWrapper default
    betas: tuple = (0.9, 0.999)                # torch.optim.Adam defaults
    eps: float = 1e-8


def default_lr(cfg, num_latents):
    if cfg.lr:  # sparsify: `cfg.lr or ...`
        return cfg.lr
    if cfg.optimizer == "adam":
        return 2e-4 / (num_latents / (2**14)) ** 0.5
    if cfg.optimizer == "signum":
        return 5e-3 / (num_latents / (2**14)) ** 0.5
    raise ValueError(f"unsupported optimizer {cfg.optimizer!r}")


def linear_warmup_lambda(t, num_warmup_steps, num_training_steps):
    """transformers._get_linear_schedule_with_warmup_lr_lambda."""
    if t < num_warmup_steps:
        return float(t) / float(max(1, num_warmup_steps))
    return max(0.0, float(num_training_steps - t) / float(max(1, num_training_steps - num_warmup_steps)))


def lr_at(cfg, num_latents, step_index):
    base = default_lr(cfg, num_latents)
    if cfg.optimizer == "signum":
        return base  # no scheduler for signum
    if cfg.num_training_steps is None:
        raise ValueError("adam needs cfg.num_training_steps (= len(dataset) // batch_size)")
    return base * linear_warmup_lambda(step_index, cfg.lr_warmup_steps, cfg.num_training_steps)


# ---------------------------------------------------------------------------------------
# Model pieces (sparsify/fused_encoder.py, utils.py, sparse_coder.py)
# ---------------------------------------------------------------------------------------
class FusedEncoder(torch.autograd.Function):
    """Verbatim port of sparsify.fused_encoder.FusedEncoder (activation="topk")."""

    @staticmethod
    def forward(ctx, input, weight, bias, k):
        preacts = F.relu(F.linear(input, weight, bias))
        values, indices = torch.topk(preacts, k, dim=-1, sorted=False)
        ctx.save_for_backward(input, weight, bias, indices)
        ctx.k = k
        return values, indices, preacts

    @staticmethod
    def backward(ctx, grad_values, grad_indices, grad_preacts):
        # grad_preacts is deliberately dropped, as in sparsify.
        input, weight, bias, indices = ctx.saved_tensors
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = F.embedding_bag(indices, weight, mode="sum",
                                         per_sample_weights=grad_values.type_as(weight))
        if ctx.needs_input_grad[1]:
            grad_weight = torch.zeros_like(weight)
            contributions = grad_values.unsqueeze(2) * input.unsqueeze(1)
            _, _, D = contributions.shape
            contributions = contributions.reshape(-1, D)
            grad_weight.index_add_(0, indices.flatten(), contributions.type_as(weight))
        if bias is not None and ctx.needs_input_grad[2]:
            grad_bias = torch.zeros_like(bias)
            grad_bias.index_add_(0, indices.flatten(), grad_values.flatten().type_as(bias))
        return grad_input, grad_weight, grad_bias, None


def decode(top_acts, top_indices, W_dec, b_dec):
    """sparsify SparseCoder.decode with utils.eager_decode: sum_j a_j W_dec[i_j] + b_dec."""
    y = F.embedding_bag(top_indices, W_dec, per_sample_weights=top_acts, mode="sum")
    return y + b_dec


def set_decoder_norm_to_unit_norm(W_dec):
    eps = torch.finfo(W_dec.dtype).eps
    norm = torch.norm(W_dec, dim=1, keepdim=True)
    return W_dec / (norm + eps)


def remove_gradient_parallel_to_decoder_directions(g, W_dec):
    parallel = torch.einsum("sd,sd->s", g, W_dec)
    return g - torch.einsum("s,sd->sd", parallel, W_dec)


def forward(p, x, k, dead_mask):
    """SparseCoder.forward for an SAE (y = x). Returns (fvu, auxk_loss, top_acts, top_idx)."""
    top_acts, top_indices, pre_acts = FusedEncoder.apply(x - p["b_dec"], p["W_enc"], p["b_enc"], k)
    y = x
    sae_out = decode(top_acts, top_indices, p["W_dec"], p["b_dec"])
    e = y - sae_out
    total_variance = (y - y.mean(0)).pow(2).sum()
    if dead_mask is not None and (num_dead := int(dead_mask.sum())) > 0:
        k_aux = y.shape[-1] // 2
        scale = min(num_dead / k_aux, 1.0)
        k_aux = min(k_aux, num_dead)
        auxk_latents = torch.where(dead_mask[None], pre_acts, -torch.inf)
        auxk_acts, auxk_indices = auxk_latents.topk(k_aux, sorted=False)
        e_hat = decode(auxk_acts, auxk_indices, p["W_dec"], p["b_dec"])
        auxk_loss = (e_hat - e.detach()).pow(2).sum()
        auxk_loss = scale * auxk_loss / total_variance
    else:
        auxk_loss = sae_out.new_tensor(0.0)
    l2_loss = e.pow(2).sum()
    fvu = l2_loss / total_variance
    return fvu, auxk_loss, top_acts, top_indices


# ---------------------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------------------
def init(x_first_batch, d_in, num_latents, k=32, seed=0, cfg=None):
    """Parameters as sparsify has them right before the first forward: seeded CPU nn.Linear
    encoder, b_enc = 0, W_dec = row-normalised copy of W_enc, b_dec = mean of the first
    batch (Trainer.fit.hook at global_step 0). k is accepted for API symmetry (unused).
    The global torch RNG is restored afterwards."""
    cfg = cfg or Cfg(k=k)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = nn.Linear(d_in, num_latents, device="cpu", dtype=torch.float32)
    W_enc = enc.weight.data.clone()
    b_enc = torch.zeros(num_latents, dtype=torch.float32)
    W_dec = W_enc.clone()
    if cfg.normalize_decoder:
        W_dec = set_decoder_norm_to_unit_norm(W_dec)
    b_dec = torch.zeros(d_in, dtype=torch.float32)
    if cfg.init_b_dec_from_batch and x_first_batch is not None:
        b_dec = torch.as_tensor(x_first_batch, dtype=torch.float32).mean(0)
    return {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}


def init_from(W_enc, b_enc, W_dec, b_dec):
    """Explicit starting tensors (float32 copies). Note step(step_index=0) still overwrites
    b_dec with the batch mean unless cfg.init_b_dec_from_batch is False, and always
    renormalises W_dec rows before the forward (cfg.normalize_decoder)."""
    t = lambda a: torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a).detach().to(torch.float32).clone().contiguous()
    return {"W_enc": t(W_enc), "b_enc": t(b_enc), "W_dec": t(W_dec), "b_dec": t(b_dec)}


def init_state(params, cfg):
    n = params["W_enc"].shape[0]
    st = {"num_tokens_since_fired": torch.zeros(n, dtype=torch.long)}
    if cfg.optimizer == "adam":
        st["adam"] = {name: {"step": 0,
                             "exp_avg": torch.zeros_like(params[name]),
                             "exp_avg_sq": torch.zeros_like(params[name])} for name in PARAMS}
    elif cfg.optimizer == "signum":
        st["sf"] = {"z": {}, "k": 0, "weight_sum": 0.0, "lr_max": 0.0}
    else:
        raise ValueError(f"unsupported optimizer {cfg.optimizer!r}")
    return st


# ---------------------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------------------
def _adam_update(p, g, s, lr, cfg):
    """torch 1.13 optim.adam._single_tensor_adam (no weight decay, no amsgrad)."""
    beta1, beta2 = cfg.betas
    s["step"] += 1
    s["exp_avg"].mul_(beta1).add_(g, alpha=1 - beta1)
    s["exp_avg_sq"].mul_(beta2).addcmul_(g, g.conj(), value=1 - beta2)
    step = s["step"]
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    denom = (s["exp_avg_sq"].sqrt() / math.sqrt(bias_correction2)).add_(cfg.eps)
    p.addcdiv_(s["exp_avg"], denom, value=-step_size)


def _schedulefree_signsgd(p, grads, sf, lr, cfg):
    """ScheduleFreeWrapper(SignSGD(lr), momentum).step(), p holds y (updated in place)."""
    beta = cfg.momentum
    xs = {}
    for name in PARAMS:
        if name not in sf["z"]:
            sf["z"][name] = p[name].clone()
        z = sf["z"][name]
        xs[name] = p[name].lerp(z, 1 - 1 / beta)          # y -> x
        z.add_(grads[name].sign(), alpha=-lr)               # SignSGD step applied to z
    lr_d = lr * 1.0                                          # group.get('d', 1.0)
    sf["lr_max"] = max(lr_d, sf["lr_max"])
    weight = ((sf["k"] + 1) ** cfg.r) * (sf["lr_max"] ** cfg.weight_lr_power)
    sf["weight_sum"] = sf["weight_sum"] + weight
    ckp1 = weight / sf["weight_sum"]
    for name in PARAMS:
        z = sf["z"][name]
        xn = xs[name].lerp(z, ckp1)                          # update x
        p[name] = xn.lerp(z, 1 - beta)                       # x -> y
    sf["k"] = sf["k"] + 1


# ---------------------------------------------------------------------------------------
# One training step
# ---------------------------------------------------------------------------------------
def step(params, opt_state, x, step_index, cfg):
    """One sparsify training step (grad_acc_steps = 1) on the token batch x [B, d_in].
    Pure: inputs are not modified."""
    p = {name: params[name].detach().to(torch.float32).clone() for name in PARAMS}
    st = copy.deepcopy(opt_state)
    x = torch.as_tensor(x).to(torch.float32)
    n = p["W_enc"].shape[0]

    # Trainer.fit.hook: b_dec init on the first step, then renormalise W_dec.
    if cfg.init_b_dec_from_batch and step_index == 0:
        p["b_dec"] = x.mean(0)
    if cfg.normalize_decoder:
        p["W_dec"] = set_decoder_norm_to_unit_norm(p["W_dec"])
    W_dec_fwd = p["W_dec"].clone()

    counts = st["num_tokens_since_fired"]
    dead_mask = counts > cfg.dead_feature_threshold if cfg.auxk_alpha > 0 else None
    num_dead = int(dead_mask.sum()) if dead_mask is not None else 0

    leaves = {name: p[name].clone().requires_grad_(True) for name in PARAMS}
    fvu, auxk_loss, top_acts, top_indices = forward(leaves, x, cfg.k, dead_mask)
    did_fire = torch.zeros(n, dtype=torch.bool)
    did_fire[top_indices.flatten()] = True
    loss = fvu + cfg.auxk_alpha * auxk_loss + fvu.new_tensor(0.0) / 8  # multi_topk_fvu = 0
    loss.div(1).backward()
    grads = {name: leaves[name].grad.detach().clone() for name in PARAMS}

    if cfg.normalize_decoder:
        grads["W_dec"] = remove_gradient_parallel_to_decoder_directions(grads["W_dec"], p["W_dec"])

    lr = lr_at(cfg, n, step_index)
    if cfg.optimizer == "adam":
        for name in PARAMS:
            _adam_update(p[name], grads[name], st["adam"][name], lr, cfg)
    elif cfg.optimizer == "signum":
        _schedulefree_signsgd(p, grads, st["sf"], lr, cfg)
    else:
        raise ValueError(f"unsupported optimizer {cfg.optimizer!r}")

    with torch.no_grad():
        counts += x.shape[0]
        counts[did_fire] = 0

    out = {"fvu": float(fvu.detach()), "auxk_loss": float(auxk_loss.detach()),
           "loss": float(loss.detach()), "lr": lr, "num_dead": num_dead,
           "top_acts": top_acts.detach(), "top_indices": top_indices.detach(),
           "did_fire": did_fire, "W_dec_fwd": W_dec_fwd, "grads": grads}
    return p, st, out


# ---------------------------------------------------------------------------------------
# Self-check
# ---------------------------------------------------------------------------------------
class _ReplicaSAE(nn.Module):
    """Module-style transcription of sparsify.SparseCoder + Trainer.fit step order, driven by
    real torch.optim.Adam + LambdaLR or a transcription of ScheduleFreeWrapper(SignSGD),
    used only to cross-check the functional step() above."""

    def __init__(self, p):
        super().__init__()
        self.encoder = nn.Linear(p["W_enc"].shape[1], p["W_enc"].shape[0])
        self.encoder.weight.data = p["W_enc"].clone()
        self.encoder.bias.data = p["b_enc"].clone()
        self.W_dec = nn.Parameter(p["W_dec"].clone())
        self.b_dec = nn.Parameter(p["b_dec"].clone())


class _SignSGD(torch.optim.Optimizer):
    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for q in group["params"]:
                if q.grad is not None:
                    q.add_(q.grad.sign(), alpha=-group["lr"])


class _SFWrapper:
    """Transcription of schedulefree.ScheduleFreeWrapper (train mode, defaults but momentum)."""

    def __init__(self, base, momentum):
        self.base, self.momentum, self.weight_lr_power, self.r = base, momentum, 2, 0

    @torch.no_grad()
    def step(self):
        for group in self.base.param_groups:
            for q in group["params"]:
                state = self.base.state[q]
                if "z" not in state:
                    state["z"] = torch.clone(q, memory_format=torch.preserve_format)
                z = state["z"]
                q.lerp_(end=z, weight=1 - 1 / self.momentum)
                tmp = z.clone(); z.copy_(q); q.copy_(tmp)      # swap
        self.base.step()
        for group in self.base.param_groups:
            k = group.get("k", 0)
            lr = group["lr"] * group.get("d", 1.0)
            lr_max = group["lr_max"] = max(lr, group.get("lr_max", 0))
            weight = ((k + 1) ** self.r) * (lr_max ** self.weight_lr_power)
            weight_sum = group["weight_sum"] = group.get("weight_sum", 0.0) + weight
            ckp1 = weight / weight_sum
            for q in group["params"]:
                z = self.base.state[q]["z"]
                tmp = z.clone(); z.copy_(q); q.copy_(tmp)      # swap back
                q.lerp_(end=z, weight=ckp1)
                q.lerp_(end=self.base.state[q]["z"], weight=1 - self.momentum)
            group["k"] = k + 1

    def zero_grad(self):
        self.base.zero_grad(set_to_none=True)


def _replica_run(p0, batches, cfg):
    sae = _ReplicaSAE(p0)
    n = p0["W_enc"].shape[0]
    lr = default_lr(cfg, n)
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam([dict(params=sae.parameters(), lr=lr)])
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: linear_warmup_lambda(t, cfg.lr_warmup_steps, cfg.num_training_steps))
    else:
        opt, sched = _SFWrapper(_SignSGD(sae.parameters(), lr), momentum=cfg.momentum), None
    counts = torch.zeros(n, dtype=torch.long)
    losses = []
    for t, x in enumerate(batches):
        with torch.no_grad():
            if t == 0 and cfg.init_b_dec_from_batch:
                sae.b_dec.data = x.mean(0)
            eps = torch.finfo(sae.W_dec.dtype).eps
            sae.W_dec.data /= torch.norm(sae.W_dec.data, dim=1, keepdim=True) + eps
        dead = counts > cfg.dead_feature_threshold if cfg.auxk_alpha > 0 else None
        q = {"W_enc": sae.encoder.weight, "b_enc": sae.encoder.bias, "W_dec": sae.W_dec, "b_dec": sae.b_dec}
        fvu, aux, _, idx = forward(q, x, cfg.k, dead)
        did_fire = torch.zeros(n, dtype=torch.bool)
        did_fire[idx.flatten()] = True
        (fvu + cfg.auxk_alpha * aux).backward()
        with torch.no_grad():
            par = torch.einsum("sd,sd->s", sae.W_dec.grad, sae.W_dec.data)
            sae.W_dec.grad -= torch.einsum("s,sd->sd", par, sae.W_dec.data)
        opt.step(); opt.zero_grad()
        if sched is not None:
            sched.step()
        counts += x.shape[0]
        counts[did_fire] = 0
        losses.append((float(fvu), float(aux)))
    final = {"W_enc": sae.encoder.weight.data, "b_enc": sae.encoder.bias.data,
             "W_dec": sae.W_dec.data, "b_dec": sae.b_dec.data}
    return final, counts, losses


def _maxdiff(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in PARAMS)


def _self_check():
    torch.set_printoptions(precision=6)
    d_in, n, k, B = 16, 256, 4, 32
    gen = torch.Generator().manual_seed(1234)
    batches = [torch.randn(B, d_in, generator=gen) * 2.0 + 0.5 for _ in range(3)]

    # Random start: sparsify's own init from a seed, plus an explicit random start.
    p_seed = init(batches[0], d_in, n, k, seed=0)
    W = torch.randn(n, d_in, generator=gen) / math.sqrt(d_in)
    p_rand = init_from(W, torch.zeros(n), W.clone(), torch.zeros(d_in))

    # (1) seeded init == sparsify's recipe: manual_seed + nn.Linear, bias 0, tied unit W_dec.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lin = nn.Linear(d_in, n)
    assert torch.equal(p_seed["W_enc"], lin.weight.data) and not p_seed["b_enc"].any()
    wn = p_seed["W_dec"].norm(dim=1)
    assert float((wn - 1).abs().max()) < 1e-6
    assert torch.allclose(p_seed["W_dec"] * p_seed["W_enc"].norm(dim=1, keepdim=True), p_seed["W_enc"], atol=1e-6)
    assert torch.equal(p_seed["b_dec"], batches[0].mean(0))

    # (2) the fused encoder's gradient equals plain autograd (relu -> topk -> gather) when all
    #     top-k activations are positive.
    xin = batches[0] - p_seed["b_dec"]
    We, be = p_seed["W_enc"].clone().requires_grad_(), (p_seed["b_enc"] + 0.05).requires_grad_()
    a, i, _ = FusedEncoder.apply(xin, We, be, k)
    assert bool((a > 0).all())
    (a * torch.arange(a.numel()).reshape(a.shape).float().sin()).sum().backward()
    g1 = (We.grad.clone(), be.grad.clone()); We.grad = None; be.grad = None
    pre = F.relu(F.linear(xin, We, be))
    a2 = pre.gather(1, i)
    (a2 * torch.arange(a.numel()).reshape(a.shape).float().sin()).sum().backward()
    assert torch.allclose(g1[0], We.grad, atol=1e-6) and torch.allclose(g1[1], be.grad, atol=1e-6)

    results = {}
    for opt in ("signum", "adam"):
        for label, p0 in (("seed-init", p_seed), ("random-start", p_rand)):
            cfg = Cfg(k=k, optimizer=opt, lr_warmup_steps=2, num_training_steps=10)
            p, st = p0, init_state(p0, cfg)
            losses = []
            for t, x in enumerate(batches):
                p, st, out = step(p, st, x, t, cfg)
                # decoder rows unit-norm in the forward; gradient orthogonal to them
                assert float((out["W_dec_fwd"].norm(dim=1) - 1).abs().max()) < 1e-6
                par = (out["grads"]["W_dec"] * out["W_dec_fwd"]).sum(1)
                assert float(par.abs().max()) < 1e-6, float(par.abs().max())
                assert out["auxk_loss"] == 0.0  # auxk_alpha = 0 (sparsify default)
                assert out["top_indices"].shape == (B, k)
                assert st["num_tokens_since_fired"][out["did_fire"]].eq(0).all()
                assert st["num_tokens_since_fired"].max() <= B * (t + 1)
                losses.append((out["fvu"], out["auxk_loss"], out["lr"]))
            if opt == "adam":
                assert losses[0][2] == 0.0  # LambdaLR: lr(step 0) = 0 during warmup
            # cross-check against the module-style replica with real torch Adam/LambdaLR
            fin, counts, rl = _replica_run(p0, batches, cfg)
            md = _maxdiff(p, fin)
            assert md <= 1e-6, (opt, label, md)
            assert torch.equal(counts, st["num_tokens_since_fired"])
            assert all(abs(a_[0] - b_[0]) <= 1e-6 for a_, b_ in zip(losses, rl))
            results[(opt, label)] = (losses, md)
            print(f"[{opt:6s} {label:12s}] " + "  ".join(
                f"step{t}: fvu={f:.6f} auxk={a_:.3g} lr={lr:.3e}" for t, (f, a_, lr) in enumerate(losses))
                + f"   |replica-port|max={md:.2e}")

    # (3) AuxK: with no dead latents it is exactly 0; with dead latents it is > 0, scaled by
    #     min(num_dead / (d_in//2), 1), and it never reaches the encoder.
    cfg_nd = Cfg(k=k, optimizer="adam", auxk_alpha=1 / 32, num_training_steps=10, lr_warmup_steps=2)
    p, st = p_seed, init_state(p_seed, cfg_nd)
    for t, x in enumerate(batches):
        p, st, out = step(p, st, x, t, cfg_nd)
        assert out["num_dead"] == 0 and out["auxk_loss"] == 0.0
    cfg_d = Cfg(k=k, optimizer="adam", auxk_alpha=1 / 32, dead_feature_threshold=0,
                num_training_steps=10, lr_warmup_steps=2)
    p, st = p_seed, init_state(p_seed, cfg_d)
    aux_losses = []
    for t, x in enumerate(batches):
        pa, sa, out = step(p, st, x, t, cfg_d)
        # same step without AuxK: encoder gradients must be identical (FusedEncoder drops it)
        cfg_0 = dataclasses.replace(cfg_d, auxk_alpha=0.0)
        _, _, out0 = step(p, st, x, t, cfg_0)
        for name in ("W_enc", "b_enc"):
            assert torch.equal(out["grads"][name], out0["grads"][name]), name
        if t == 0:
            assert out["num_dead"] == 0 and out["auxk_loss"] == 0.0
        else:
            assert out["num_dead"] > 0 and out["auxk_loss"] > 0.0
            assert not torch.equal(out["grads"]["W_dec"], out0["grads"]["W_dec"])
            assert not torch.equal(out["grads"]["b_dec"], out0["grads"]["b_dec"])
            # recompute AuxK by hand from the definition
            q = {nm: (p["b_dec"] if nm == "b_dec" else p[nm]) for nm in PARAMS}
            W_dec = out["W_dec_fwd"]
            pre = F.relu((x - q["b_dec"]) @ q["W_enc"].T + q["b_enc"])
            dead = st["num_tokens_since_fired"] > 0
            nd = int(dead.sum()); ka = d_in // 2
            va, ia = torch.where(dead[None], pre, -torch.inf).topk(min(ka, nd))
            x_hat = (torch.zeros(B, n).scatter(1, out["top_indices"], out["top_acts"])) @ W_dec + q["b_dec"]
            e_hat = torch.zeros(B, n).scatter(1, ia, va) @ W_dec + q["b_dec"]
            tv = (x - x.mean(0)).pow(2).sum()
            ref = min(nd / ka, 1.0) * ((e_hat - (x - x_hat)) ** 2).sum() / tv
            assert abs(float(ref) - out["auxk_loss"]) <= 1e-5 * max(1.0, float(ref)), (float(ref), out["auxk_loss"])
        aux_losses.append((out["num_dead"], out["fvu"], out["auxk_loss"]))
        p, st = pa, sa
    fin, counts, _ = _replica_run(p_seed, batches, cfg_d)
    md = _maxdiff(p, fin)
    assert md <= 1e-6 and torch.equal(counts, st["num_tokens_since_fired"])
    print("[adam   auxk threshold=0] " + "  ".join(
        f"step{t}: dead={d} fvu={f:.6f} auxk={a_:.6f}" for t, (d, f, a_) in enumerate(aux_losses))
        + f"   |replica-port|max={md:.2e}")

    # (4) schedules
    c = Cfg(optimizer="adam", num_training_steps=5000)
    assert lr_at(c, 2**14, 0) == 0.0 and abs(lr_at(c, 2**14, 1000) - 2e-4) < 1e-18
    assert abs(lr_at(c, 2**16, 500) - 0.5 * 1e-4) < 1e-18 and lr_at(c, 2**14, 5000) == 0.0
    assert lr_at(Cfg(), 2**16, 0) == lr_at(Cfg(), 2**16, 123) == 5e-3 / 2
    print("self-check OK (sparsify @ %s)" % SPARSIFY_COMMIT[:7])


if __name__ == "__main__":
    _self_check()
