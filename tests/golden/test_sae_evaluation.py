"""Golden: `universae evaluate` (SAEs spliced into the model) against an independent float64 numpy
forward with the splice.

The reference is scripts/llama2c_ref.py (run.c's semantics, one position at a time with a KV cache)
with its `splice` hook replacing the activation at the SAE's hookpoint at every position, as SAELens'
run_with_hooks does; the SAEs encode as their own libraries define (test_convert.library_codes,
written from sparsify's and SAELens' formulas). The figures follow SAELens evals.py
(get_recons_loss, get_sparsity_and_variance_metrics) and dictionary_learning's explained variance;
they are computed here in float64 from the reference's logits, with no universae code.

Three SAEs in three formats at three kinds of hookpoint (sparsify topk at layers.1, SAELens jumprelu
at blocks.3.mlp.hook_post, a SAELens relu SAE converted to a universae file at blocks.0.hook_resid_mid),
built from the activations' principal directions so their reconstructions are partial but real.
Stories longer than --seq-len continue in windows from BOS, over several batches; 1 and 2 ranks
write the same JSON. Bad input exits 2 and writes nothing.
"""
import json
import os
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SCRIPTS, SOURCE, universae  # noqa: E402

sys.path.insert(0, SCRIPTS)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama2c_ref as ref  # noqa: E402
import safetensors_np as st  # noqa: E402
from test_convert import library_codes  # noqa: E402

DATA = os.path.join(SOURCE, "..", "shared", "data")
MODEL = os.path.join(DATA, "stories260K.bin")
TOKENIZER = os.path.join(DATA, "tok512.bin")
STORIES = os.path.join(DATA, "tinystories_sample_cs336.txt")
SEQ_LEN, N_DOCS = 96, 3
KEYS = ["ce_loss_score", "ce_loss_with_sae", "ce_loss_without_sae", "ce_loss_with_ablation", "kl_div_score",
        "kl_div_with_sae", "kl_div_with_ablation", "explained_variance", "fvu", "l2_ratio",
        "relative_reconstruction_bias", "l0"]


def principal(acts, n):
    """n/2 principal directions of acts, each with its negation: unit decoder rows [n, d]."""
    centred = acts - acts.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    u = vt[:n // 2]
    return np.concatenate([u, -u])


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def evaluate(args, ranks=None):
    return universae(["evaluate", "--model", MODEL, "--tokenizer", TOKENIZER, "--inputs", STORIES,
                      "--max-documents", str(N_DOCS), "--seq-len", str(SEQ_LEN), "--batch-tokens", "200", *args],
                     ranks, timeout=600, cwd=None)


class SplicedEvaluation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.model = ref.Model(MODEL)
        tok = ref.Tokenizer(TOKENIZER, cls.model.vocab)
        with open(STORIES) as f:
            docs = [d.strip() for d in f.read().split("<|endoftext|>") if d.strip()][:N_DOCS]
        cls.seqs = []  # extraction's windows: BOS + ids, then BOS + the next SEQ_LEN − 1 ids, ...
        for doc in docs:
            ids = tok.encode(doc)
            cls.seqs.append(ids[:SEQ_LEN])
            for pos in range(SEQ_LEN, len(ids), SEQ_LEN - 1):
                cls.seqs.append([1] + ids[pos:pos + SEQ_LEN - 1])
        cls.clean = [cls.model.forward(s) for s in cls.seqs]
        cls.saes = cls.write_saes()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def acts(cls, hook):
        return np.concatenate([h[hook] for h, _ in cls.clean])

    @classmethod
    def write_saes(cls):
        """{path as given to universae: (hookpoint, library kind, float64 weights, cfg)}."""
        saes, rng = {}, np.random.default_rng(7)
        # sparsify TopK at layers.1 (= blocks.1.hook_resid_post)
        x = cls.acts("blocks.1.hook_resid_post")
        W = principal(x, 64)
        path = os.path.join(cls.tmp.name, "sparsify", "layers.1")
        os.makedirs(path)
        w = {"encoder.weight": W, "encoder.bias": 0.01 * rng.standard_normal(64), "W_dec": W, "b_dec": x.mean(0)}
        st.save(os.path.join(path, "sae.safetensors"), {k: (v, "F32") for k, v in w.items()}, {"format": "pt"})
        cfg = {"activation": "topk", "expansion_factor": 1, "normalize_decoder": True, "num_latents": 64, "k": 12,
               "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": 64}
        with open(os.path.join(path, "cfg.json"), "w") as f:
            json.dump(cfg, f)
        saes[path] = ("blocks.1.hook_resid_post", "sparsify", {k: st.round_to(v, "F32").astype(np.float64) for k, v in w.items()}, cfg)
        # SAELens JumpReLU at blocks.3.mlp.hook_post (172 wide), and a relu SAE at blocks.0.hook_resid_mid
        # converted to a universae file.
        for hook, arch, n in (("blocks.3.mlp.hook_post", "jumprelu", 120), ("blocks.0.hook_resid_mid", "standard", 48)):
            x = cls.acts(hook)
            W = principal(x, n)
            d = x.shape[1]
            w = {"W_enc": W.T.copy(), "W_dec": W, "b_dec": x.mean(0), "b_enc": -0.02 + 0.01 * rng.standard_normal(n)}
            if arch == "jumprelu":
                w["b_enc"] = -x.mean(0) @ W.T  # its input is not centred (apply_b_dec_to_input false)
                w["threshold"] = 0.05 + 0.05 * rng.random(n)
            path = os.path.join(cls.tmp.name, arch)
            os.makedirs(path)
            st.save(os.path.join(path, "sae_weights.safetensors"), {k: (v, "F32") for k, v in w.items()})
            cfg = {"d_in": d, "d_sae": n, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": arch != "jumprelu",
                   "normalize_activations": "none", "reshape_activations": "none", "architecture": arch,
                   "metadata": {"model_name": "stories260K", "hook_name": hook, "sae_lens_version": "6.5.1",
                                "context_size": SEQ_LEN, "prepend_bos": True}}
            with open(os.path.join(path, "cfg.json"), "w") as f:
                json.dump(cfg, f)
            weights = {k: st.round_to(v, "F32").astype(np.float64) for k, v in w.items()}
            if arch == "standard":
                h5 = os.path.join(cls.tmp.name, "relu.h5")
                universae(["convert", path, h5], timeout=120, cwd=None, check=True)
                path = h5
            saes[path] = (hook, "saelens", weights, cfg)
        return saes

    @staticmethod
    def reconstruct(x, kind, w, cfg):
        return library_codes(x[None, :], kind, w, cfg)[0] @ w["W_dec"] + w["b_dec"]

    def reference(self, hook, kind, w, cfg):
        """SAELens' figures for one SAE over every sequence, in float64."""
        nll = {"clean": 0.0, "sae": 0.0, "zero": 0.0}
        kl = {"sae": 0.0, "zero": 0.0}
        n_pred = n_tok = 0
        xs, hats, l0 = [], [], 0
        for seq, (hooks, logits) in zip(self.seqs, self.clean):
            lp_clean = log_softmax(logits)
            n = len(seq)
            target = np.array(seq[1:])
            spliced = {"sae": self.model.forward(seq, {hook: lambda v: self.reconstruct(v, kind, w, cfg)})[1],
                       "zero": self.model.forward(seq, {hook: np.zeros_like})[1]}
            nll["clean"] -= lp_clean[np.arange(n - 1), target].sum()
            for name, lg in spliced.items():
                lp = log_softmax(lg)
                nll[name] -= lp[np.arange(n - 1), target].sum()
                kl[name] += (np.exp(lp_clean) * (lp_clean - lp)).sum()
            n_pred, n_tok = n_pred + n - 1, n_tok + n
            x = hooks[hook]
            z = library_codes(x, kind, w, cfg)
            xs.append(x)
            hats.append(z @ w["W_dec"] + w["b_dec"])
            l0 += (z > 0).sum()
        x, x_hat = np.concatenate(xs), np.concatenate(hats)
        r = x - x_hat
        norm_x = np.linalg.norm(x, axis=1)
        ce = {k: v / n_pred for k, v in nll.items()}
        kls = {k: v / n_tok for k, v in kl.items()}
        return {"ce_loss_with_sae": ce["sae"], "ce_loss_without_sae": ce["clean"], "ce_loss_with_ablation": ce["zero"],
                "ce_loss_score": (ce["zero"] - ce["sae"]) / (ce["zero"] - ce["clean"]),
                "kl_div_with_sae": kls["sae"], "kl_div_with_ablation": kls["zero"],
                "kl_div_score": (kls["zero"] - kls["sae"]) / kls["zero"],
                "explained_variance": 1 - r.var(0).sum() / x.var(0).sum(),
                "fvu": (r ** 2).sum() / ((x - x.mean(0)) ** 2).sum(),
                "l2_ratio": (np.linalg.norm(x_hat, axis=1) / np.where(np.abs(norm_x) < 1e-4, 1, norm_x)).mean(),
                "relative_reconstruction_bias": (x_hat ** 2).sum(1).mean() / (x * x_hat).sum(1).mean(),
                "l0": l0 / n_tok, "n_tokens": n_tok, "n_predicted": n_pred}

    def test_figures_match_numpy_splice_at_1_and_2_ranks(self):
        outs = {}
        for ranks in (None, 2):
            out = os.path.join(self.tmp.name, f"eval{ranks}.json")
            args = [a for p in self.saes for a in ("--sae", p)] + ["--out", out]
            proc = evaluate(args, ranks)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            with open(out) as f:
                outs[ranks] = json.load(f)
            for figures in outs[ranks].values():
                self.assertGreater(figures.pop("seconds")["spliced"], 0)
        self.assertEqual(outs[None], outs[2], "1 and 2 ranks give the same figures")
        self.assertGreater(len(self.seqs), N_DOCS, "some story must continue in a window")
        got = outs[None]
        self.assertEqual(sorted(got), sorted(self.saes))
        for path, (hook, kind, w, cfg) in self.saes.items():
            want = self.reference(hook, kind, w, cfg)
            g = got[path]
            self.assertEqual(g["hookpoint"], hook)
            self.assertEqual(g["n_tokens"], want["n_tokens"])
            self.assertEqual(g["n_predicted"], want["n_predicted"])
            for key in KEYS:
                self.assertAlmostEqual(g[key], want[key], delta=1e-4, msg=f"{path}: {key}")
            # A partial reconstruction: between a perfect splice and none.
            self.assertLess(g["ce_loss_with_sae"], g["ce_loss_with_ablation"], path)
            self.assertGreater(g["ce_loss_score"], 0.0, path)
            self.assertLess(g["kl_div_with_sae"], g["kl_div_with_ablation"], path)

    def test_bad_input_exits_2_and_writes_nothing(self):
        sparsify = next(p for p in self.saes if "sparsify" in p)
        relu = next(p for p in self.saes if p.endswith(".h5"))
        cases = [(["--sae", relu, "--hookpoint", "blocks.9.hook_resid_post"], "the model has 5 blocks"),
                 (["--sae", sparsify, "--hookpoint", "blocks.0.mlp.hook_post"], "172 wide"),
                 (["--sae", os.path.join(self.tmp.name, "missing")], "missing")]
        for args, message in cases:
            for ranks in (None, 2):
                out = os.path.join(self.tmp.name, "bad.json")
                proc = evaluate(args + ["--out", out], ranks)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn(message, proc.stderr)
                self.assertFalse(os.path.exists(out))
                self.assertFalse(os.path.exists(out + ".partial"))


if __name__ == "__main__":
    unittest.main()
