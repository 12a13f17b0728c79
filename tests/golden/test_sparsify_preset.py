"""Golden test: train.preset = "sparsify" (StepRule::kSparsify in src/core/sae_model.cpp, the schedule and
dead rule of src/train/schedule.hpp) against scripts/sparsify_ref.py, a PyTorch port of EleutherAI
sparsify's TopK trainer step with optimizer "adam" (sparsify @ 9d3b136).

Through tests/golden/train_step_harness.cpp (a /sparsify group in its input), two seeds, three steps:
  - explicit starting weights, auxk_alpha = 0 (sparsify's current default): FVU per step, lr per step
    (warm-up from 0, get_linear_schedule_with_warmup) and the four tensors after three steps;
  - the same with auxk_alpha = 1/32 and dead_feature_threshold = 0, so that every latent that did not
    fire on a step is dead on the next and AuxK (k_aux = d/2, scale min(dead/k_aux, 1), residual
    x − x̂, ê decoded with b_dec, no gradient to the encoder) is active on steps 1 and 2; the number of
    dead latents and the AuxK loss per step are compared too, and the run must differ from the one
    without AuxK by far more than the tolerance;
  - a threshold that leaves fewer than k_aux latents dead, so that the scale is below 1;
  - sparsify's own initialisation from a seed (torch.manual_seed + CPU nn.Linear, tied unit-norm
    decoder, b_dec the first batch's mean), then three steps.
Everything within 1e-5 (relative to the tensor's scale). Through the universae binary: the lr column of
train_log.jsonl over a whole short run (warm-up then linear decay to 0) equals the port's lr_at, and a
preset name that does not exist exits 2 with one error naming the key and the valid names, writing nothing.
"""
import json
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SCRIPTS, SOURCE, run_command, set_args, universae  # noqa: E402

sys.path.insert(0, SCRIPTS)
import sparsify_ref as ref  # noqa: E402

HARNESS = os.environ["UNIVERSAE_TRAIN_STEP_HARNESS"]
SYNTHETIC = os.path.join(SOURCE, "jobs", "synthetic_ci.toml")
TOL = 1e-5
S, D, N, K, B, STEPS = 2, 16, 64, 4, 64, 3
LR, WARMUP, TOTAL = 1e-2, 2, 10
PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")


def close(test, got, want, what):
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got - want).max())
    test.assertLessEqual(err, TOL * scale, f"{what}: max |diff| {err:.3g} (scale {scale:.3g})")
    return err


def batches(rng):
    return (rng.standard_normal((STEPS, B, D)) * 2.0 + 0.5).astype(np.float32)


def explicit_params(rng):
    seeds = []
    for _ in range(S):
        W = (rng.standard_normal((N, D)) / np.sqrt(D)).astype(np.float32)
        seeds.append({"W_enc": W + (0.1 * rng.standard_normal((N, D))).astype(np.float32),
                      "b_enc": (0.05 + 0.05 * rng.standard_normal(N)).astype(np.float32),
                      "W_dec": W * rng.uniform(0.5, 1.5, (N, 1)).astype(np.float32),
                      "b_dec": (0.5 + 0.1 * rng.standard_normal(D)).astype(np.float32)})
    return seeds


def run_harness(x, alpha, threshold, seeds=None, init_seeds=None, kernels="fast"):
    """The harness's /init, /param and /steps for these inputs, with the CPU kernels or (kernels =
    "generic") the ATen-only twin of the step."""
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.h5"), os.path.join(tmp, "out.h5")
        with h5py.File(inp, "w") as f:
            f["x"] = x
            if seeds is not None:
                for name in PARAMS:
                    f[name] = np.stack([p[name] for p in seeds])
            g = f.create_group("sparsify")
            g.attrs.update({"warmup_steps": WARMUP, "total_steps": TOTAL, "dead_tokens": threshold, "lr": LR,
                            "n_latents": N})
            if init_seeds is not None:
                g["init_seeds"] = np.asarray(init_seeds, dtype=np.float32)
            f.attrs.update({"architecture": "topk", "k": K, "k_aux": D // 2, "aux_alpha": alpha, "sparsity": 0.0,
                            "bandwidth": 0.05, "apply_b_dec": 1, "lr": LR, "grad_clip": 0.0, "beta1": 0.9,
                            "beta2": 0.999, "eps": 1e-8})
        r = run_command([HARNESS, inp, out] + ([kernels] if kernels == "generic" else []), timeout=120, cwd=None)
        assert r.returncode == 0, r.stderr
        with h5py.File(out, "r") as f:
            return ({k: f["init"][k][()] for k in f["init"]}, {k: f["param"][k][()] for k in f["param"]},
                    {k: f["steps"][k][()] for k in f["steps"]})


def reference(p0, x, alpha, threshold, init_b_dec):
    cfg = ref.Cfg(k=K, optimizer="adam", lr=LR, lr_warmup_steps=WARMUP, num_training_steps=TOTAL, auxk_alpha=alpha,
                  dead_feature_threshold=threshold, init_b_dec_from_batch=init_b_dec)
    p, st, outs = p0, ref.init_state(p0, cfg), []
    for t in range(STEPS):
        xt = torch.from_numpy(x[t])
        # every token has at least k positive pre-activations: torch.topk's order among zeros is not compared
        b_dec = xt.mean(0) if init_b_dec and t == 0 else p["b_dec"]
        pre = torch.relu((xt - b_dec) @ p["W_enc"].T + p["b_enc"])
        assert int((pre > 0).sum(1).min()) >= K, "inputs must give every token k positive pre-activations"
        p, st, out = ref.step(p, st, xt, t, cfg)
        outs.append(out)
    return p, outs


class SparsifyPresetAgainstTorch(unittest.TestCase):
    def compare(self, label, got_param, got_steps, want, outs, alpha):
        worst = 0.0
        for s in range(S):
            for t, out in enumerate(outs[s]):
                self.assertAlmostEqual(got_steps["lr"][t], out["lr"], delta=1e-12, msg=f"{label} lr step {t}")
                self.assertEqual(int(got_steps["num_dead"][t][s]), out["num_dead"], f"{label} seed {s} dead step {t}")
                for key, name in (("fvu", "fvu"), ("auxk", "auxk_loss")):
                    err = abs(got_steps[key][t][s] - out[name])
                    self.assertLessEqual(err, TOL * max(1.0, abs(out[name])), f"{label} seed {s} {key} step {t}")
                    worst = max(worst, err)
            for name in PARAMS:
                worst = max(worst, close(self, got_param[name][s], want[s][name].numpy(), f"{label} seed {s} {name}"))
        print(f"\n  {label}: max |diff| {worst:.3g}; fvu {[round(o['fvu'], 5) for o in outs[0]]}, "
              f"auxk {[round(o['auxk_loss'], 5) for o in outs[0]]}, dead {[o['num_dead'] for o in outs[0]]}, "
              f"lr {[o['lr'] for o in outs[0]]}", flush=True)

    def explicit(self, alpha, threshold, seed=7, kernels="fast"):
        rng = np.random.default_rng(seed)
        seeds, x = explicit_params(rng), batches(rng)
        _, got_param, got_steps = run_harness(x, alpha, threshold, seeds=seeds, kernels=kernels)
        want, outs = [], []
        for p in seeds:
            w, o = reference(ref.init_from(p["W_enc"], p["b_enc"], p["W_dec"], p["b_dec"]), x, alpha, threshold, False)
            want.append(w), outs.append(o)
        for s, p in enumerate(seeds):  # the steps moved every tensor (lr 0 on step 0, then lr/2 and lr)
            for name in PARAMS:
                self.assertGreater(float(np.abs(want[s][name].numpy() - p[name]).max()), 1e-3, f"{name} did not move")
        return got_param, got_steps, want, outs

    def test_no_auxk(self):
        got_param, got_steps, want, outs = self.explicit(0.0, 10_000_000)
        self.compare("auxk_alpha 0", got_param, got_steps, want, outs, 0.0)
        self.assertEqual(list(got_steps["lr"]), [0.0, LR / 2, LR])

    def test_auxk_dead_latents(self):
        got_param, got_steps, want, outs = self.explicit(1.0 / 32.0, 0)
        self.compare("auxk_alpha 1/32, threshold 0", got_param, got_steps, want, outs, 1.0 / 32.0)
        for s in range(S):
            self.assertEqual(outs[s][0]["num_dead"], 0)
            self.assertTrue(all(o["num_dead"] > 0 and o["auxk_loss"] > 0 for o in outs[s][1:]), "AuxK must be active")
        # AuxK changes the weights by far more than the tolerance (else this case tests nothing)
        _, _, no_aux, _ = self.explicit(0.0, 0)
        moved = max(float((want[s][n] - no_aux[s][n]).abs().max()) for s in range(S) for n in ("W_dec", "b_dec"))
        self.assertGreater(moved, 100 * TOL)

    def test_generic_kernels(self):
        # run.kernels = "generic" (core/sae_generic.cpp) against the same reference, AuxK on and scaled
        for alpha, threshold, seed in ((1.0 / 32.0, 0, 7), (1.0 / 32.0, B, 11)):
            got_param, got_steps, want, outs = self.explicit(alpha, threshold, seed=seed, kernels="generic")
            self.compare(f"generic kernels, threshold {threshold}", got_param, got_steps, want, outs, alpha)

    def test_auxk_scale_below_one(self):
        # B tokens per step: a threshold of B leaves dead only the latents silent on both steps 0 and 1
        got_param, got_steps, want, outs = self.explicit(1.0 / 32.0, B, seed=11)
        self.compare("auxk_alpha 1/32, threshold B", got_param, got_steps, want, outs, 1.0 / 32.0)
        dead = [o["num_dead"] for s in range(S) for o in outs[s]]
        self.assertTrue(any(0 < n < D // 2 for n in dead), f"some step must have 0 < dead < k_aux: {dead}")

    def test_seeded_init(self):
        rng = np.random.default_rng(3)
        x = batches(rng)
        init, got_param, got_steps = run_harness(x, 1.0 / 32.0, 0, init_seeds=[0, 5])
        want, outs = [], []
        for s, seed in enumerate((0, 5)):
            p0 = ref.init(torch.from_numpy(x[0]), D, N, K, seed=seed)
            for name in PARAMS:
                close(self, init[name][s], p0[name].numpy(), f"init seed {seed} {name}")
            self.assertTrue(np.array_equal(init["W_enc"][s], p0["W_enc"].numpy()), "W_enc is torch's draw, bit for bit")
            w, o = reference(p0, x, 1.0 / 32.0, 0, True)
            want.append(w), outs.append(o)
        self.compare("sparsify init from seeds 0, 5", got_param, got_steps, want, outs, 1.0 / 32.0)


class SparsifyPresetTrainer(unittest.TestCase):
    def test_lr_schedule_and_bad_name(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "run")
            steps, warmup, n = 6, 2, 512
            args = ["train", SYNTHETIC] + set_args([f"run.output_dir={out}", "train.preset=sparsify", "train.lr=0",
                                                    f"train.tokens={steps * 1024}", f"train.warmup_steps={warmup}",
                                                    "train.log_every=1", "train.eval_tokens=1024", "train.k_aux=0"])
            r = universae(args, None, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(out, "train_log.jsonl")) as f:
                rows = [json.loads(line) for line in f]
            cfg = ref.Cfg(optimizer="adam", lr_warmup_steps=warmup, num_training_steps=steps)
            lrs = [row["lr"] for row in rows if row["seed"] == 0]
            want = [ref.lr_at(cfg, n, t) for t in range(steps)]
            print(f"\n  trainer lr {lrs}\n  port    lr {want}", flush=True)
            self.assertEqual(len(lrs), steps)
            for got, w in zip(lrs, want):
                self.assertAlmostEqual(got, w, delta=1e-5 * w + 1e-15)  # train_log.jsonl prints 6 digits

            # the loss's denominator (the global batch's variance) is the same on any rank count: so are the weights
            out2 = os.path.join(tmp, "run2")
            r = universae([a.replace(out, out2) for a in args], 2, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            for seed in (0, 1):
                with h5py.File(os.path.join(out, "saes", f"seed{seed}.h5"), "r") as a, \
                        h5py.File(os.path.join(out2, "saes", f"seed{seed}.h5"), "r") as b:
                    names = [k for k in a if isinstance(a[k], h5py.Dataset) and a[k].dtype.kind == "f"]
                    self.assertTrue({"W_enc", "W_dec"} <= set(names), names)
                    for name in names:
                        self.assertTrue(np.array_equal(a[name][()], b[name][()]), f"seed {seed} {name}: 1 rank != 2 ranks")

            bad = os.path.join(tmp, "bad")
            r = universae(["train", SYNTHETIC] + set_args([f"run.output_dir={bad}", "train.preset=sparsifyy"]), None,
                          timeout=120)
            self.assertEqual(r.returncode, 2, r.stderr)
            errors = [line for line in r.stderr.splitlines() if line.startswith("universae: error:")]
            self.assertEqual(len(errors), 1, r.stderr)
            self.assertIn("train.preset", errors[0])
            self.assertIn("sparsify", errors[0].split("choose", 1)[-1])
            self.assertFalse(os.path.exists(bad), "nothing may be written")


if __name__ == "__main__":
    unittest.main(verbosity=2)
