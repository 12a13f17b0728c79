"""Golden test: SAEs in the published sparsify and SAELens layouts, written here with numpy
(scripts/safetensors_np.py, no universae code), are read by `universae compare` and `convert`
directly, convert to universae SAE files and back bit-exactly (every tensor's bytes, dtype, cfg.json
and safetensors metadata), encode as their own libraries define (firing frequencies vs a numpy encoder
written from sparsify's and SAELens' formulas), and malformed files exit 2 naming the file and the
tensor or key, leaving nothing behind."""
import json
import os
import shutil
import struct
import sys
import tempfile
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SCRIPTS, universae  # noqa: E402

sys.path.insert(0, SCRIPTS)
import safetensors_np as st  # noqa: E402
import universae_ref as ref  # noqa: E402

HOOK = "blocks.0.hook_resid_post"
D = 12


def run(args, ranks=1, timeout=300):
    return universae(args, ranks if ranks > 1 else None, timeout=timeout, cwd=None)  # one rank: no launcher


def write_text(path, text):
    with open(path, "w") as f:
        f.write(text)


def rows(rng, n, d=D):
    w = rng.standard_normal((n, d))
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def write_sparsify(path, rng, n=48, k=3, dtype="BF16", extra_cfg=None):
    """A sparsify SparseCoder.save_to_disk directory: sae.safetensors + cfg.json (cfg fields + d_in)."""
    os.makedirs(path, exist_ok=True)
    W_dec = rows(rng, n)
    tensors = {"encoder.weight": (W_dec * 0.9 + 0.05 * rng.standard_normal((n, D)), dtype),
               "encoder.bias": (-0.2 + 0.05 * rng.standard_normal(n), dtype),
               "W_dec": (W_dec, dtype), "b_dec": (0.05 * rng.standard_normal(D), dtype)}
    st.save(os.path.join(path, "sae.safetensors"), tensors, {"format": "pt"})
    cfg = {"activation": "topk", "expansion_factor": 4, "normalize_decoder": True, "num_latents": n, "k": k,
           "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": D, **(extra_cfg or {})}
    with open(os.path.join(path, "cfg.json"), "w") as f:
        json.dump(cfg, f)
    return {name: st.round_to(a, dt) for name, (a, dt) in tensors.items()}


def write_saelens(path, rng, architecture, n=40, dtype="F32", flat=False, extra_cfg=None):
    """A SAELens SAE.save_model directory: sae_weights.safetensors + cfg.json (v6, or a flat pre-6 config)."""
    os.makedirs(path, exist_ok=True)
    W_dec = rows(rng, n)
    tensors = {"W_enc": ((W_dec * 0.8).T.copy(), dtype), "W_dec": (W_dec, dtype),
               "b_dec": (0.05 * rng.standard_normal(D), dtype)}
    tensors["b_gate" if architecture == "gated" else "b_enc"] = (-0.2 + 0.05 * rng.standard_normal(n), dtype)
    if architecture == "jumprelu":
        tensors["threshold"] = (0.3 + 0.3 * rng.random(n), dtype)
    if architecture == "gated":
        tensors["r_mag"] = (0.2 * rng.standard_normal(n), dtype)
        tensors["b_mag"] = (0.1 * rng.standard_normal(n), dtype)
    st.save(os.path.join(path, "sae_weights.safetensors"), tensors)
    if flat:  # SAELens before 6.0: TopK was architecture standard + activation_fn_str topk
        cfg = {"architecture": "standard", "d_in": D, "d_sae": n, "dtype": "float32", "device": "cpu",
               "model_name": "stories260K", "hook_point": HOOK, "hook_point_layer": 0, "activation_fn_str": "topk",
               "activation_fn_kwargs": {"k": 4}, "apply_b_dec_to_input": True, "normalize_activations": False,
               "finetuning_scaling_factor": False, "context_size": 128}
    else:
        cfg = {"d_in": D, "d_sae": n, "dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype],
               "device": "cpu", "apply_b_dec_to_input": architecture != "jumprelu", "normalize_activations": "none",
               "reshape_activations": "none", "architecture": architecture,
               "metadata": {"model_name": "stories260K", "hook_name": HOOK, "sae_lens_version": "6.5.1",
                            "context_size": 128, "prepend_bos": True}}
        if architecture == "topk":
            cfg["k"] = 4
    cfg.update(extra_cfg or {})
    with open(os.path.join(path, "cfg.json"), "w") as f:
        json.dump(cfg, f)
    return {name: st.round_to(a, dt) for name, (a, dt) in tensors.items()}, cfg


def library_codes(x, kind, w, cfg):
    """z as each library encodes (float64): sparsify SparseCoder.encode and SAELens' encode()s."""
    x = x.astype(np.float64)
    w = {k: v.astype(np.float64) for k, v in w.items()}
    if kind == "sparsify":
        pre = (x - w["b_dec"]) @ w["encoder.weight"].T + w["encoder.bias"]
        k = cfg["k"]
    else:
        xin = x - w["b_dec"] * cfg.get("apply_b_dec_to_input", True)
        arch = cfg["architecture"]
        if arch == "gated":
            gate = xin @ w["W_enc"] + w["b_gate"]
            return (gate > 0) * np.maximum(xin @ (w["W_enc"] * np.exp(w["r_mag"])) + w["b_mag"], 0)
        pre = xin @ w["W_enc"] + w["b_enc"]
        if arch == "jumprelu":
            return np.maximum(pre, 0) * (pre > w["threshold"])
        if arch == "standard" and cfg.get("activation_fn_str") != "topk":
            return np.maximum(pre, 0)
        k = cfg.get("k") or cfg["activation_fn_kwargs"]["k"]
    top = np.argsort(-pre, axis=1, kind="stable")[:, :k]  # torch.topk of pre, then relu
    z = np.zeros_like(pre)
    r = np.arange(len(pre))[:, None]
    z[r, top] = np.maximum(pre[r, top], 0)
    return z


def assert_same_files(test, a_dir, b_dir, weights):
    a, a_types, a_meta, a_raw = st.load(os.path.join(a_dir, weights))
    b, b_types, b_meta, b_raw = st.load(os.path.join(b_dir, weights))
    test.assertEqual(sorted(a_raw), sorted(b_raw))
    for name in a_raw:
        test.assertEqual(a_types[name], b_types[name], name)
        test.assertEqual(a_raw[name], b_raw[name], f"{b_dir}/{weights}: tensor {name} differs")
    test.assertEqual(a_meta, b_meta)
    with open(os.path.join(a_dir, "cfg.json")) as fa, open(os.path.join(b_dir, "cfg.json")) as fb:
        test.assertEqual(fa.read(), fb.read())


class Convert(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(7)
        cls.tmp = tempfile.TemporaryDirectory()
        t = cls.tmp.name
        cls.run_dir = os.path.join(t, "sparsify_run")
        cls.sparsify = {}
        for seed, dtype in ((0, "BF16"), (1, "F32")):
            cls.sparsify[seed] = write_sparsify(os.path.join(cls.run_dir, f"seed{seed}", "layers.0"), rng, dtype=dtype)
        cls.saelens = {}
        for name, arch, dtype, flat in (("topk", "topk", "F16", False), ("jumprelu", "jumprelu", "F32", False),
                                        ("gated", "gated", "F32", False), ("standard", "standard", "F32", False),
                                        ("flat", "standard", "F32", True)):
            path = os.path.join(t, "saelens", name)
            cls.saelens[name] = (path, *write_saelens(path, rng, arch, dtype=dtype, flat=flat))
        # An activation store on which the SAEs' latents fire (compare --activations).
        T = 900
        cls.x = (rng.standard_normal((T, D)) * 1.5).astype(np.float32)
        cls.store = os.path.join(t, "store.h5")
        with h5py.File(cls.store, "w") as f:
            f["tokens"] = rng.integers(3, 30, size=T).astype(np.int32)
            f["doc_offsets"] = np.array([0, 300, 600, T], dtype=np.int64)
            f["seq_offsets"] = np.array([0, 300, 600, T], dtype=np.int64)
            f[f"activations/{HOOK}"] = cls.x
            f.attrs["model"] = "golden"
            f.attrs["tokenizer"] = "golden"
            f.attrs["vocab"] = [f"t{i}" for i in range(30)]
            f.attrs["complete"] = True

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def out(self, name):
        path = os.path.join(self.tmp.name, "out", self._testMethodName, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def convert(self, *args, ranks=1):
        proc = run(["convert", *args], ranks=ranks)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return proc

    def test_sparsify_round_trip_bit_exact(self):
        src = os.path.join(self.run_dir, "seed0", "layers.0")
        h5 = self.out("layers.0.h5")
        self.convert(src, h5, "--from", "sparsify", ranks=2)
        w = self.sparsify[0]
        with h5py.File(h5, "r") as f:
            self.assertEqual(f.attrs["architecture"], "topk")
            self.assertEqual((f.attrs["k"], f.attrs["d_in"], f.attrs["n_latents"]), (3, D, 48))
            self.assertEqual(f.attrs["hookpoint"], "layers.0")
            self.assertEqual(f.attrs["source_format"], "sparsify")
            self.assertEqual(f.attrs["source_dtype"], "BF16")
            np.testing.assert_array_equal(f["W_enc"][:], w["encoder.weight"])
            np.testing.assert_array_equal(f["b_enc"][:], w["encoder.bias"])
            np.testing.assert_array_equal(f["W_dec"][:], w["W_dec"])
            np.testing.assert_array_equal(f["b_dec"][:], w["b_dec"])
        back = self.out("back")
        self.convert(h5, back, "--to", "sparsify", ranks=2)
        assert_same_files(self, src, back, "sae.safetensors")

    def test_run_directory_with_seeds_round_trip(self):
        h5_dir = self.out("universae")
        proc = self.convert(self.run_dir, h5_dir)
        self.assertIn("seed1/layers.0", proc.stderr + proc.stdout)
        for seed in (0, 1):
            self.assertTrue(os.path.isfile(os.path.join(h5_dir, f"seed{seed}", "layers.0.h5")))
        back = self.out("sparsify")
        self.convert(h5_dir, back, "--to", "sparsify")
        for seed in (0, 1):
            assert_same_files(self, os.path.join(self.run_dir, f"seed{seed}", "layers.0"),
                              os.path.join(back, f"seed{seed}", "layers.0"), "sae.safetensors")

    def test_saelens_round_trip_bit_exact(self):
        for name, (src, w, cfg) in self.saelens.items():
            with self.subTest(name):
                h5 = self.out(f"{name}.h5")
                self.convert(src, h5)
                with h5py.File(h5, "r") as f:
                    expected_arch = {"standard": "relu", "flat": "topk"}.get(name, name)
                    self.assertEqual(f.attrs["architecture"], expected_arch)
                    self.assertEqual(f.attrs["hookpoint"], HOOK)
                    self.assertEqual(f.attrs["model"], "stories260K")
                    self.assertEqual(bool(f.attrs["apply_b_dec_to_input"]), name != "jumprelu")
                    if expected_arch == "topk":
                        self.assertEqual(f.attrs["k"], 4)
                    np.testing.assert_array_equal(f["W_enc"][:], w["W_enc"].T)  # SAELens W_enc is [d_in, d_sae]
                    np.testing.assert_array_equal(f["W_dec"][:], w["W_dec"])
                    np.testing.assert_array_equal(f["b_enc"][:], w["b_gate" if name == "gated" else "b_enc"])
                    for key in ("threshold", "r_mag", "b_mag"):
                        self.assertEqual(key in f, key in w)
                        if key in w:
                            np.testing.assert_array_equal(f[key][:], w[key])
                back = self.out(f"{name}_back")
                self.convert(h5, back, "--to", "saelens")
                assert_same_files(self, src, back, "sae_weights.safetensors")
        # Another dtype than the source's: SAELens' cfg.json must then name the new one.
        wide = self.out("topk_f32")
        self.convert(self.out("topk.h5"), wide, "--to", "saelens", "--dtype", "F32")
        w, types, _, _ = st.load(os.path.join(wide, "sae_weights.safetensors"))
        self.assertEqual(set(types.values()), {"F32"})
        np.testing.assert_array_equal(w["W_dec"], self.saelens["topk"][1]["W_dec"])  # F16 values, exactly
        with open(os.path.join(wide, "cfg.json")) as f:
            cfg = json.load(f)
        self.assertEqual((cfg["dtype"], cfg["architecture"], cfg["k"]), ("float32", "topk", 4))

    def test_compare_reads_foreign_directories_directly(self):
        """compare on the sparsify/SAELens directories == compare on their converted files, and the
        firing frequencies match each library's own encoder on the store's activations."""
        srcs = [os.path.join(self.run_dir, "seed0", "layers.0"), os.path.join(self.run_dir, "seed1", "layers.0")]
        srcs += [self.saelens[n][0] for n in ("topk", "jumprelu", "gated", "flat")]
        converted = []
        for i, s in enumerate(srcs):
            converted.append(self.out(f"sae{i}.h5"))
            self.convert(s, converted[-1])
        common = ["--activations", self.store, "--set", "compare.permutations=20", "--set", "compare.chunk_tokens=128"]
        direct, via = self.out("direct.h5"), self.out("via.h5")
        args = ["compare", *common, "--out", direct]
        for s in srcs:
            args += ["--sae", s]
        proc = run(args, ranks=2)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        args = ["compare", *common, "--out", via]
        for s in converted:
            args += ["--sae", s]
        proc = run(args, ranks=2)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with h5py.File(direct, "r") as a, h5py.File(via, "r") as b:
            names_a, names_b = sorted(a["saes"]), sorted(b["saes"])
            self.assertEqual(len(names_a), len(srcs))
            pairs_a, pairs_b = sorted(a["pairs"]), sorted(b["pairs"])
            self.assertEqual(len(pairs_a), len(pairs_b))
            for pa, pb in zip(sorted(pairs_a, key=lambda p: a["pairs"][p]["decoder"].attrs["mcs_ab"]),
                              sorted(pairs_b, key=lambda p: b["pairs"][p]["decoder"].attrs["mcs_ab"])):
                for ds in ("max_cos_ab", "argmax_ab", "max_cos_ba", "argmax_ba"):
                    np.testing.assert_array_equal(a["pairs"][pa]["decoder"][ds][:], b["pairs"][pb]["decoder"][ds][:])
                    np.testing.assert_array_equal(a["pairs"][pa]["encoder"][ds][:], b["pairs"][pb]["encoder"][ds][:])
            # Firing frequency of each directly-read SAE vs the library formula.
            by_path = {a["saes"][n].attrs["path"]: n for n in names_a}
            kinds = ["sparsify", "sparsify", "saelens", "saelens", "saelens", "saelens"]
            weights = [self.sparsify[0], self.sparsify[1]] + [self.saelens[n][1] for n in ("topk", "jumprelu", "gated", "flat")]
            cfgs = [{"k": 3}, {"k": 3}] + [self.saelens[n][2] for n in ("topk", "jumprelu", "gated", "flat")]
            for s, kind, w, cfg in zip(srcs, kinds, weights, cfgs):
                z = library_codes(self.x, kind, w, cfg)
                expected = (z > 0).mean(0)
                self.assertGreater(expected.max(), 0.0, s)
                np.testing.assert_allclose(a["saes"][by_path[s]]["frequency"][:], expected, atol=1.5 / len(self.x),
                                           err_msg=s)
            # Decoder max cosine vs numpy on the file's rows.
            W0, W1 = self.sparsify[0]["W_dec"].astype(np.float64), self.sparsify[1]["W_dec"].astype(np.float64)
            cos = ref.unit_rows(W0) @ ref.unit_rows(W1).T
            pair = [p for p in pairs_a if p == f"{by_path[srcs[0]]}--{by_path[srcs[1]]}"]
            self.assertEqual(len(pair), 1, pairs_a)
            np.testing.assert_allclose(a["pairs"][pair[0]]["decoder"]["max_cos_ab"][:], cos.max(1), atol=1e-5)

    def test_universae_file_to_both_libraries(self):
        rng = np.random.default_rng(3)
        W_dec = rows(rng, 32)
        W_enc, b_enc, b_dec = W_dec * 0.7, -0.1 * np.ones(32), 0.1 * rng.standard_normal(D)
        src = self.out("mine.h5")
        ref.write_sae(src, W_enc, b_enc, W_dec, b_dec, architecture="topk", k=5)
        sp = self.out("mine_sparsify")
        self.convert(src, sp, "--to", "sparsify")
        w, types, meta, _ = st.load(os.path.join(sp, "sae.safetensors"))
        self.assertEqual(set(types.values()), {"F32"})
        self.assertEqual(meta, {"format": "pt"})
        np.testing.assert_array_equal(w["encoder.weight"], W_enc.astype(np.float32))
        np.testing.assert_array_equal(w["W_dec"], W_dec.astype(np.float32))
        with open(os.path.join(sp, "cfg.json")) as f:
            cfg = json.load(f)
        self.assertEqual((cfg["d_in"], cfg["num_latents"], cfg["k"], cfg["activation"]), (D, 32, 5, "topk"))
        sl = self.out("mine_saelens")
        self.convert(src, sl, "--to", "saelens", "--dtype", "BF16")
        w, types, _, _ = st.load(os.path.join(sl, "sae_weights.safetensors"))
        self.assertEqual(set(types.values()), {"BF16"})
        np.testing.assert_array_equal(w["W_enc"], st.round_to(W_enc.T, "BF16"))
        with open(os.path.join(sl, "cfg.json")) as f:
            cfg = json.load(f)
        self.assertEqual((cfg["architecture"], cfg["k"], cfg["d_sae"], cfg["metadata"]["hook_name"]), ("topk", 5, 32, "golden"))
        # A jumprelu SAE has no sparsify form: refused, nothing written.
        jr = self.out("jr.h5")
        ref.write_sae(jr, W_enc, b_enc, W_dec, b_dec, architecture="jumprelu")
        with h5py.File(jr, "a") as f:
            f["threshold"] = np.full(32, 0.2, dtype=np.float32)
        proc = run(["convert", jr, self.out("jr_sparsify"), "--to", "sparsify"], ranks=2)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("TopK SAEs only", proc.stderr)
        self.assertFalse(os.path.exists(self.out("jr_sparsify")))

    def test_train_init_from_foreign(self):
        """train.init_from takes sparsify/SAELens directories: one step at lr 1e-12 leaves each seed where
        its SAE started (the random initialisation would not), BF16 rows with their norms folded."""
        seed0 = os.path.join(self.run_dir, "seed0", "layers.0")  # BF16: rows a little off unit norm
        seed1 = os.path.join(self.run_dir, "seed1", "layers.0")  # F32
        job = self.out("job.toml")
        write_text(job, f"""[run]\noutput_dir = "{self.out('run')}"\n[data]\nsource = "{self.store}"\nhookpoint = "{HOOK}"
[sae]\narchitecture = "topk"\nn_latents = 48\nk = 3\nseeds = [0, 1]
[train]\ntokens = 256\nbatch_size = 256\nmicro_batch = 128\nlr = 1e-12\nwarmup_steps = 0\neval_tokens = 256
init_from = ["{seed1}", "{seed0}"]\n""")
        proc = run(["train", job], ranks=2)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for seed, w in ((0, self.sparsify[1]), (1, self.sparsify[0])):
            norms = np.linalg.norm(w["W_dec"].astype(np.float64), axis=1, keepdims=True)
            with h5py.File(os.path.join(self.out("run"), "saes", f"seed{seed}.h5"), "r") as f:
                np.testing.assert_allclose(f["W_dec"][:], w["W_dec"] / norms, atol=2e-6)
                np.testing.assert_allclose(f["W_enc"][:], w["encoder.weight"] * norms, atol=2e-6)
                np.testing.assert_allclose(f["b_enc"][:], w["encoder.bias"] * norms[:, 0], atol=2e-6)
                np.testing.assert_allclose(f["b_dec"][:], w["b_dec"], atol=2e-6)
        proc = run(["train", job, "--fresh", "--set", f"train.init_from=[\"{self.saelens['jumprelu'][0]}\"]"])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("a jumprelu SAE, but sae.architecture = topk", proc.stderr)

    def bad(self, name, mutate, expect, library="sparsify", ranks=2, command="convert"):
        """Copies a good SAE, breaks it, and checks exit 2, the message and that nothing was written."""
        path = self.out(name)
        shutil.rmtree(path, ignore_errors=True)
        src = os.path.join(self.run_dir, "seed1", "layers.0") if library == "sparsify" else self.saelens["topk"][0]
        shutil.copytree(src, path)
        mutate(path)
        out = self.out(name + "_out.h5")
        args = ["convert", path, out] if command == "convert" else [
            "compare", "--sae", path, "--sae", self.saelens["topk"][0], "--out", out]
        proc = run(args, ranks=ranks)
        self.assertEqual(proc.returncode, 2, f"{name}: {proc.stderr}")
        self.assertIn(expect, proc.stderr, name)
        self.assertEqual(proc.stderr.count(expect), 1, f"{name}: printed once, not by every rank\n{proc.stderr}")
        self.assertFalse(os.path.exists(out), name)
        self.assertFalse(os.path.exists(out + ".partial"), name)

    def test_bad_files_exit_2_naming_tensor_or_key(self):
        def edit_cfg(**changes):
            def f(path):
                with open(os.path.join(path, "cfg.json")) as fh:
                    cfg = json.load(fh)
                for k, v in changes.items():
                    if v is None:
                        cfg.pop(k, None)
                    else:
                        cfg[k] = v
                with open(os.path.join(path, "cfg.json"), "w") as fh:
                    json.dump(cfg, fh)
            return f

        def rewrite(weights, change):
            def f(path):
                p = os.path.join(path, weights)
                w, types, meta, _ = st.load(p)
                tensors = {n: (w[n], types[n]) for n in w}
                change(tensors)
                st.save(p, tensors, meta)
            return f

        def raw_edit(weights, change):
            def f(path):
                p = os.path.join(path, weights)
                with open(p, "rb") as fh:
                    data = fh.read()
                with open(p, "wb") as fh:
                    fh.write(change(data))
            return f

        def header_edit(weights, change):
            def g(data):
                (n,) = struct.unpack("<Q", data[:8])
                header = json.loads(data[8:8 + n])
                change(header)
                text = json.dumps(header).encode()
                text += b" " * ((8 - len(text) % 8) % 8)
                return struct.pack("<Q", len(text)) + text + data[8 + n:]
            return raw_edit(weights, g)

        SW, LW = "sae.safetensors", "sae_weights.safetensors"

        def overlap(h):
            h["W_dec"]["data_offsets"] = [h["b_dec"]["data_offsets"][0], h["b_dec"]["data_offsets"][0] + (
                h["W_dec"]["data_offsets"][1] - h["W_dec"]["data_offsets"][0])]

        def shift_past_end(h):
            h["W_dec"]["data_offsets"] = [x + 10**6 for x in h["W_dec"]["data_offsets"]]

        cases = [
            ("truncated", raw_edit(SW, lambda d: d[:-100]), "past the end of the data"),
            ("header_too_long", raw_edit(SW, lambda d: struct.pack("<Q", 10**12) + d[8:]), "exceeds the file size"),
            ("header_not_json", raw_edit(SW, lambda d: d[:8] + b"{" * (len(d) - 8)), "header is not valid JSON"),
            ("tiny_file", raw_edit(SW, lambda d: d[:5]), "shorter than the 8-byte header length"),
            ("shape_mismatch", rewrite(SW, lambda t: t.update({"encoder.weight": (np.zeros((48, D + 1)), "F32")})),
             "tensor 'encoder.weight' has shape [48, 13], expected [48, 12]"),
            ("wrong_dtype", rewrite(SW, lambda t: t.update({"W_dec": (np.zeros((48, D)), "I64")})),
             "tensor 'W_dec' has dtype I64"),
            ("missing_tensor", rewrite(SW, lambda t: t.pop("b_dec")), "no tensor 'b_dec'"),
            ("extra_tensor", rewrite(SW, lambda t: t.update({"W_skip": (np.zeros((D, D)), "F32")})), "unexpected tensor 'W_skip'"),
            ("overlap", header_edit(SW, overlap), "overlap in the data section"),
            ("offsets_past_end", header_edit(SW, shift_past_end), "'W_dec': data_offsets end"),
            ("span_mismatch", header_edit(SW, lambda h: h["b_dec"].update(shape=[D + 1])), "tensor 'b_dec': data_offsets span"),
            ("bad_dtype_name", header_edit(SW, lambda h: h["b_dec"].update(dtype="F17")), "unknown dtype 'F17'"),
            ("cfg_not_json", lambda p: write_text(os.path.join(p, "cfg.json"), "{k: 3"), "cfg.json: not valid JSON"),
            ("cfg_no_k", edit_cfg(k=None), "cfg.json: no key 'k'"),
            ("cfg_k_string", edit_cfg(k="three"), "key 'k' must be an integer"),
            ("cfg_groupmax", edit_cfg(activation="groupmax"), "activation 'groupmax' is not supported"),
            ("cfg_skip", edit_cfg(skip_connection=True), "skip_connection = true"),
            ("cfg_num_latents", edit_cfg(num_latents=64), "expected [64, 12]"),
        ]
        saelens_cases = [
            ("sl_normalize", edit_cfg(normalize_activations="expected_average_only_in"), "scaling factor is not in the file"),
            ("sl_architecture", edit_cfg(architecture="matryoshka"), "architecture 'matryoshka' is not supported"),
            ("sl_transposed", rewrite(LW, lambda t: t.update({"W_enc": (t["W_enc"][0].T.copy(), "F32")})),
             "tensor 'W_enc' has shape [40, 12], expected [12, 40]"),
            ("sl_no_k", edit_cfg(k=None), "needs the key 'k'"),
        ]
        for i, (name, mutate, expect) in enumerate(cases):
            with self.subTest(name):
                self.bad(name, mutate, expect, ranks=2 if i % 3 == 0 else 1)  # every rank reads: some at 2 ranks
        for name, mutate, expect in saelens_cases:
            with self.subTest(name):
                self.bad(name, mutate, expect, library="saelens")
        with self.subTest("compare"):
            self.bad("compare_bad_dir", edit_cfg(k=None), "cfg.json: no key 'k'", command="compare")
        with self.subTest("not an SAE"):
            d = self.out("empty_dir")
            os.makedirs(d, exist_ok=True)
            proc = run(["convert", d, self.out("x.h5")])
            self.assertEqual(proc.returncode, 2)
            self.assertIn("no SAEs found below it", proc.stderr)
        with self.subTest("existing output"):
            out = self.out("exists.h5")
            write_text(out, "keep me")
            proc = run(["convert", self.saelens["topk"][0], out])
            self.assertEqual(proc.returncode, 2)
            self.assertIn("already exists (use --force", proc.stderr)
            with open(out) as f:
                self.assertEqual(f.read(), "keep me")
            self.convert(self.saelens["topk"][0], out, "--force")
            with h5py.File(out, "r") as f:
                self.assertEqual(f.attrs["source_format"], "saelens")


if __name__ == "__main__":
    unittest.main(verbosity=2)
