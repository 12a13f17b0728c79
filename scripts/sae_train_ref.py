"""PyTorch-autograd reference for one SAE training step (METHODS.md §1), the oracle of
tests/golden/test_train_step.py. Written from the papers, independently of src/core/sae_model.cpp:
the losses are stated directly and torch.autograd derives every gradient.

    loss_terms(arch, p, x, dead, hp) -> (loss, sse, aux_sse, sparsity)   one SAE, one batch
    train(arch, p, batches, dead, hp) -> (first-step terms, first-step grads, final params)

p: dict of float32 tensors (W_enc, b_enc, W_dec, b_dec, log_threshold, r_mag, b_mag as the
architecture needs). hp: dict with k, k_aux, aux_alpha, sparsity, bandwidth, apply_b_dec, lr,
grad_clip, beta1, beta2, eps.
"""
import torch

UNIT_NORM = {"relu", "topk", "batchtopk"}


def rectangle(u):
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class JumpReLU(torch.autograd.Function):
    """Rajamanoharan et al. 2024b: z = x·H(x − θ); ∂/∂x = H(x − θ), ∂/∂θ = −(θ/ε) K((x − θ)/ε)."""

    @staticmethod
    def forward(ctx, x, theta, bandwidth):
        ctx.save_for_backward(x, theta)
        ctx.bandwidth = bandwidth
        return x * (x > theta).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        gx = (x > theta).to(x.dtype) * grad
        gt = (-(theta / eps) * rectangle((x - theta) / eps) * grad).sum(0)
        return gx, gt, None


class Step(torch.autograd.Function):
    """H(x − θ) with ∂/∂x = 0 and ∂/∂θ = −(1/ε) K((x − θ)/ε)."""

    @staticmethod
    def forward(ctx, x, theta, bandwidth):
        ctx.save_for_backward(x, theta)
        ctx.bandwidth = bandwidth
        return (x > theta).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        gt = (-(1.0 / eps) * rectangle((x - theta) / eps) * grad).sum(0)
        return torch.zeros_like(x), gt, None


def scatter_codes(shape, values, indices):
    return torch.zeros(shape, dtype=values.dtype).scatter(1, indices, values)


def loss_terms(arch, p, x, dead, hp):
    L = x.shape[0]
    lam = hp["sparsity"]
    x_in = x - p["b_dec"] if hp["apply_b_dec"] else x
    zero = torch.zeros((), dtype=torch.float64)
    if arch == "gated":
        h = x_in @ p["W_enc"].T
        pi_gate = h + p["b_enc"]
        pi_mag = h * torch.exp(p["r_mag"]) + p["b_mag"]
        z = (pi_gate > 0).to(x.dtype) * torch.relu(pi_mag)
        x_hat = z @ p["W_dec"] + p["b_dec"]
        sse = ((x - x_hat) ** 2).sum()
        rg = torch.relu(pi_gate)
        sparsity = (rg * p["W_dec"].norm(dim=1)).sum()
        x_aux = rg @ p["W_dec"].detach() + p["b_dec"].detach()
        aux = ((x - x_aux) ** 2).sum()
        return sse / L + lam * sparsity / L + aux / L, sse, aux, sparsity
    pre = x_in @ p["W_enc"].T + p["b_enc"]
    if arch == "relu":
        z = torch.relu(pre)
        x_hat = z @ p["W_dec"] + p["b_dec"]
        sse = ((x - x_hat) ** 2).sum()
        sparsity = (z * p["W_dec"].norm(dim=1)).sum()
        return sse / L + lam * sparsity / L, sse, zero, sparsity
    if arch == "jumprelu":
        post = torch.relu(pre)
        theta = torch.exp(p["log_threshold"])
        z = JumpReLU.apply(post, theta, hp["bandwidth"])
        x_hat = z @ p["W_dec"] + p["b_dec"]
        sse = ((x - x_hat) ** 2).sum()
        l0 = Step.apply(post, theta, hp["bandwidth"]).sum()
        return sse / L + lam * l0 / L, sse, zero, l0
    post = torch.relu(pre)
    if arch == "topk":
        values, indices = post.topk(hp["k"], dim=1)
        z = scatter_codes(post.shape, values, indices)
    elif arch == "batchtopk":
        values, indices = post.flatten().topk(hp["k"] * L)
        z = torch.zeros(post.numel(), dtype=post.dtype).scatter(0, indices, values).view(post.shape)
    else:
        raise ValueError(arch)
    x_hat = z @ p["W_dec"] + p["b_dec"]
    sse = ((x - x_hat) ** 2).sum()
    loss = sse / L
    aux = zero
    n_dead = int(dead.sum())
    if dead is not None and n_dead > 0 and hp["k_aux"] > 0:
        # AuxK (Gao et al. 2024): the top k_aux dead pre-activations reconstruct the residual.
        values, indices = (post * dead.to(post.dtype)).topk(min(hp["k_aux"], n_dead), dim=1)
        e_hat = scatter_codes(post.shape, values, indices) @ p["W_dec"]
        aux = (((x - x_hat).detach() - e_hat) ** 2).sum()
        loss = loss + hp["aux_alpha"] * aux / L
    return loss, sse, aux, zero


def train(arch, params, batches, dead, hp):
    """Steps of one SAE: loss.backward, decoder-parallel gradient removed (unit-norm architectures),
    clip_grad_norm_, torch.optim.Adam, decoder rows renormalised."""
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    names = list(p)
    opt = torch.optim.Adam([p[k] for k in names], lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"])
    first_terms = first_grads = None
    for step, x in enumerate(batches):
        opt.zero_grad()
        loss, sse, aux, sparsity = loss_terms(arch, p, x, dead, hp)
        loss.backward()
        if step == 0:
            first_terms = [float(sse), float(aux), float(sparsity)]
            first_grads = {k: p[k].grad.detach().clone() for k in names}
        with torch.no_grad():
            if arch in UNIT_NORM:
                g = p["W_dec"].grad
                g -= (g * p["W_dec"]).sum(1, keepdim=True) * p["W_dec"]
            if hp["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_([p[k] for k in names], hp["grad_clip"])
        opt.step()
        with torch.no_grad():
            if arch in UNIT_NORM:
                p["W_dec"] /= p["W_dec"].norm(dim=1, keepdim=True).clamp_min(1e-12)
    return first_terms, first_grads, {k: v.detach() for k, v in p.items()}
