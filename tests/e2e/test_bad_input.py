"""The bad-input catalogue (docs/troubleshooting.md): one test per case, across configs, CLI flags, SAE
files, activation stores, text and model inputs, and safetensors. Each case runs at 2 ranks through a
wrapper that reports every rank's own exit status, and must:

  - exit 2 on every rank (not 1, not MPI_Abort),
  - print one `universae: error:` line (rank 0's) naming the file or key and the problem,
  - leave no output behind (the output directory, if the run would have created it, does not exist).

Every case's line is checked to be in docs/troubleshooting.md, so the list there cannot drift from this one.
Also: --help works for the program and every subcommand.
"""
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SCRIPTS, SOURCE, universae  # noqa: E402

sys.path.insert(0, SCRIPTS)
import hf_models as hf  # noqa: E402

SYNTHETIC = os.path.join(SOURCE, "jobs", "synthetic_ci.toml")
QUICKSTART = os.path.join(SOURCE, "jobs", "quickstart_ci.toml")
HOOK = "blocks.0.hook_resid_post"
DATA = os.path.join(SOURCE, "..", "shared", "data")
# Each rank runs through this shell so that its own exit status is seen, not only the launcher's.
WRAPPER = 'rc=0; "$0" "$@" || rc=$?; echo "rank-exit ${OMPI_COMM_WORLD_RANK:-0} $rc" >&2; exit $rc'


def run(args, ranks=2, timeout=300):
    return universae(args, ranks, launcher_args=["sh", "-c", WRAPPER], timeout=timeout)


def write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)
    return path


def safetensors_bytes(header, data=b""):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def make_store(path, d=16, T=512, edit=None):
    """A minimal valid activation store (DESIGN.md §4), then `edit(file)`."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset(f"activations/{HOOK}", data=rng.standard_normal((T, d)).astype(np.float32))
        f.create_dataset("tokens", data=np.arange(T) % 7)
        f.create_dataset("seq_offsets", data=np.array([0, T // 2, T]))
        f.attrs["complete"] = True
        if edit:
            edit(f)
    return path


class Catalogue(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        # One real SAE file (d = 64) to break and to pair with.
        good = run(["train", SYNTHETIC, "--set", f"run.output_dir={cls.dir}/good", "--set", "sae.seeds=[0]",
                    "--set", "train.tokens=4096"])
        if good.returncode != 0:
            raise AssertionError(good.stderr)
        cls.sae = os.path.join(cls.dir, "good", "saes", "seed0.h5")
        with open(os.path.join(SOURCE, "docs", "troubleshooting.md")) as fh:
            cls.readme = fh.read()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.case_dir = tempfile.mkdtemp(dir=self.dir)
        self.out = os.path.join(self.case_dir, "out")

    def path(self, name):
        return os.path.join(self.case_dir, name)

    def job(self, text):
        return write(self.path("job.toml"), text)

    def copy_sae(self, edit):
        path = self.path("sae.h5")
        shutil.copy(self.sae, path)
        with h5py.File(path, "r+") as f:
            edit(f)
        return path

    def compare(self, *saes, extra=()):
        args = ["compare"]
        for s in saes:
            args += ["--sae", s]
        return args + ["--out", os.path.join(self.out, "results.h5")] + list(extra)

    def train_on(self, store, *sets):
        args = ["train", SYNTHETIC, "--set", f"run.output_dir={self.out}", "--set", f"data.source={store}",
                "--set", f"data.hookpoint={HOOK}", "--set", "train.tokens=4096", "--set", "train.eval_tokens=0"]
        for s in sets:
            args += ["--set", s]
        return args

    def extract(self, *sets):
        args = ["extract", QUICKSTART, "--set", f"run.output_dir={self.out}", "--set", "extract.max_documents=20"]
        for s in sets:
            args += ["--set", s]
        return args

    def refused(self, args, *needles, readme):
        """The contract of every case; `readme` is the case's line in docs/troubleshooting.md's list."""
        proc = run(args)
        exits = sorted(re.findall(r"^rank-exit (\d+) (\d+)$", proc.stderr, re.M))
        self.assertEqual(exits, [("0", "2"), ("1", "2")], f"every rank exits 2:\n{proc.stderr}")
        self.assertNotIn("MPI_ABORT", proc.stderr)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("universae: error:")]
        self.assertEqual(len(errors), 1, f"the error is printed once (rank 0):\n{proc.stderr}")
        print(f"\n  {readme} {errors[0]}", flush=True)
        for needle in needles:
            self.assertIn(needle, errors[0])
        self.assertFalse(os.path.exists(self.out), f"no output may be left behind: {self.out}")
        self.assertFalse([f for f in os.listdir(self.case_dir) if f.endswith(".partial")], "no partial files")
        self.assertTrue(readme in self.readme, f"docs/troubleshooting.md lists {readme!r}")

    # ---- configs -------------------------------------------------------------------------------
    def test_config_unknown_key(self):
        path = self.job(f'[run]\noutput_dir = "{self.out}"\n[train]\nbatchsize = 64\n')
        self.refused(["run", path], path, "'train.batchsize'", "did you mean 'train.batch_size'",
                     readme="| config | unknown key |")

    def test_config_wrong_type(self):
        path = self.job(f'[run]\noutput_dir = "{self.out}"\n[sae]\nn_latents = "many"\n')
        self.refused(["run", path], path, "'sae.n_latents'", "integer", readme="| config | value of the wrong type |")

    def test_config_run_name_with_shell_characters(self):
        path = self.job(f'[run]\noutput_dir = "{self.out}"\nname = "a$(x)b"\n')
        self.refused(["run", path], "'run.name'", "'a$(x)b' may hold only letters, digits",
                     readme="| config | run.name with characters Slurm or a shell reads |")

    def test_config_toml_syntax(self):
        path = self.job(f'[run]\noutput_dir = "{self.out}"\n[sae\nk = 3\n')
        self.refused(["run", path], path + ":3", "TOML syntax error", readme="| config | TOML syntax error |")

    def test_config_missing_file(self):
        missing = self.path("nope.toml")
        self.refused(["run", missing], missing, "not found", readme="| config | job file missing |")

    def test_config_value_out_of_range(self):
        self.refused(["run", SYNTHETIC, "--set", f"run.output_dir={self.out}", "--set", "compare.shared_threshold=1.5"],
                     "'compare.shared_threshold'", readme="| config | value out of range |")

    def test_config_k_above_n_latents(self):
        self.refused(["run", SYNTHETIC, "--set", f"run.output_dir={self.out}", "--set", "sae.k=600"], "'sae.k'",
                     "n_latents", readme="| config | inconsistent values |")

    def test_config_unknown_architecture(self):
        self.refused(["run", SYNTHETIC, "--set", f"run.output_dir={self.out}", "--set", "sae.architecture=relux"],
                     'sae.architecture = "relux"', "choose", readme="| config | unknown choice |")

    def test_config_unknown_stage(self):
        self.refused(["run", SYNTHETIC, "--set", f"run.output_dir={self.out}", "--set", 'run.stages=["trian"]'],
                     "run.stages", "trian", readme="| config | unknown stage |")

    def test_config_micro_batch_does_not_divide(self):
        self.refused(["run", SYNTHETIC, "--set", f"run.output_dir={self.out}", "--set", "train.micro_batch=300"],
                     "train.micro_batch", readme="| config | micro-batch does not divide the batch |")

    def test_config_cuda_without_a_cuda_build(self):
        # CI's build is the CPU one; a CUDA build on a machine without a GPU gives "sees no GPU" instead
        self.refused(["run", SYNTHETIC, "--set", f"run.output_dir={self.out}", "--set", "run.device=cuda"],
                     'run.device = "cuda"', "built without CUDA", 'run.device = "cpu"',
                     readme="| config | run.device = \"cuda\" without CUDA or a GPU |")

    def test_config_output_directory_cannot_be_created(self):
        blocker = write(self.path("a_file"), "")
        self.out = os.path.join(blocker, "out")  # a directory below a regular file cannot exist
        self.refused(["run", SYNTHETIC, "--set", f"run.output_dir={self.out}"], self.out, "cannot create",
                     readme="| config | output directory cannot be created |")

    # ---- CLI flags -----------------------------------------------------------------------------
    def test_cli_unknown_option(self):
        proc = run(["run", SYNTHETIC, "--frobnicate"])
        self.assertEqual(sorted(re.findall(r"^rank-exit (\d+) (\d+)$", proc.stderr, re.M)), [("0", "2"), ("1", "2")])
        self.assertEqual(proc.stderr.count("frobnicate"), 1, proc.stderr)
        self.assertTrue("| CLI | unknown option |" in self.readme, "docs/troubleshooting.md lists the case")

    def test_cli_override_without_equals(self):
        self.refused(["run", SYNTHETIC, "--set", f"run.output_dir={self.out}", "--set", "sae.k"], "sae.k",
                     "key=value", readme="| CLI | `--set` without `=` |")

    def test_cli_unknown_key_in_override(self):
        self.refused(["run", SYNTHETIC, "--set", f"run.output_dir={self.out}", "--set", "sae.kk=3"], "'sae.kk'",
                     "did you mean 'sae.k'", readme="| CLI | unknown key in `--set` |")

    def test_cli_compare_one_sae(self):
        self.refused(self.compare(self.sae), "at least two SAE files", readme="| CLI | `compare` with one SAE |")

    def test_cli_convert_unknown_format(self):
        self.out = self.path("converted")
        self.refused(["convert", self.sae, self.out, "--to", "pickle"], "pickle", readme="| CLI | unknown format |")

    def test_cli_inspect_missing(self):
        missing = self.path("missing.h5")
        self.refused(["inspect", missing], missing, "not found", readme="| CLI | `inspect` of a missing file |")

    # ---- SAE files -----------------------------------------------------------------------------
    def test_sae_missing(self):
        missing = self.path("missing.h5")
        self.refused(self.compare(missing, self.sae), missing, "not found", readme="| SAE file | missing |")

    def test_sae_not_hdf5(self):
        text = write(self.path("notes.h5"), "not hdf5\n")
        self.refused(self.compare(text, self.sae), text, "not an HDF5 file", readme="| SAE file | not HDF5 |")

    def test_sae_is_a_store(self):
        store = make_store(self.path("store.h5"))
        self.refused(self.compare(store, self.sae), store, "not a universae SAE file", readme="| SAE file | another HDF5 file |")

    def test_sae_incomplete(self):
        sae = self.copy_sae(lambda f: f.attrs.modify("complete", False))
        self.refused(self.compare(sae, self.sae), sae, "incomplete", readme="| SAE file | incomplete |")

    def test_sae_wrong_shape(self):
        def edit(f):
            del f["W_dec"]
            f.create_dataset("W_dec", data=np.zeros((512, 63), np.float32))
        sae = self.copy_sae(edit)
        self.refused(self.compare(sae, self.sae), sae, "W_dec", readme="| SAE file | tensor of the wrong shape |")

    def test_sae_missing_tensor(self):
        sae = self.copy_sae(lambda f: f.__delitem__("b_enc"))
        self.refused(self.compare(sae, self.sae), sae, "b_enc", readme="| SAE file | tensor missing |")

    def test_sae_different_width(self):
        other = self.path("d32.h5")
        proc = run(["train", SYNTHETIC, "--set", f"run.output_dir={self.path('d32')}", "--set", "sae.seeds=[0]",
                    "--set", "train.tokens=2048", "--set", "data.synthetic.d=32"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        shutil.move(os.path.join(self.path("d32"), "saes", "seed0.h5"), other)
        self.refused(self.compare(self.sae, other), other, "d_in 32", readme="| SAE file | SAEs of different widths |")

    # ---- activation stores ---------------------------------------------------------------------
    def test_store_missing(self):
        missing = self.path("store.h5")
        self.refused(self.train_on(missing), "data.source", missing, readme="| store | missing |")

    def test_store_incomplete(self):
        store = make_store(self.path("store.h5"), edit=lambda f: f.attrs.modify("complete", False))
        self.refused(self.train_on(store), store, "incomplete activation store", readme="| store | incomplete |")

    def test_store_without_the_hookpoint(self):
        store = make_store(self.path("store.h5"))
        self.refused(self.train_on(store, "data.hookpoint=blocks.3.hook_resid_post"), store,
                     "blocks.3.hook_resid_post", HOOK, readme="| store | hookpoint not in the store |")

    def test_store_one_dimensional(self):
        def edit(f):
            del f[f"activations/{HOOK}"]
            f.create_dataset(f"activations/{HOOK}", data=np.zeros(512, np.float32))
        store = make_store(self.path("store.h5"), edit=edit)
        self.refused(self.train_on(store), store, "[tokens, d]", readme="| store | activations not [tokens, d] |")

    def test_store_unknown_dtype(self):
        store = make_store(self.path("store.h5"), edit=lambda f: f[f"activations/{HOOK}"].attrs.create("dtype", "fp8"))
        self.refused(self.train_on(store), store, "fp8", readme="| store | unknown dtype |")

    def test_store_decreasing_offsets(self):
        def edit(f):
            f["seq_offsets"][1] = 600
        store = make_store(self.path("store.h5"), edit=edit)
        self.refused(self.train_on(store), store, "/seq_offsets", readme="| store | bad sequence offsets |")

    def test_store_nan(self):
        def edit(f):
            f[f"activations/{HOOK}"][300, 5] = np.nan
        store = make_store(self.path("store.h5"), edit=edit)
        self.refused(self.train_on(store), store, "row 300 (sequence 1, position 44), column 5 is NaN",
                     readme="| store | NaN or Inf |")

    def test_store_width_differs_from_the_sae(self):
        store = make_store(self.path("store.h5"), d=16)
        self.refused(self.compare(self.sae, self.sae, extra=["--activations", store, "--set", f"data.hookpoint={HOOK}"]),
                     store, "16", readme="| store | width differs from the SAEs |")

    def test_stores_of_different_token_sequences(self):
        """One store per SAE (models compared token by token) must hold the same tokens."""
        first = make_store(self.path("a.h5"), d=64)
        def edit(f):
            f["tokens"][100] = 6 if f["tokens"][100] != 6 else 5
        second = make_store(self.path("b.h5"), d=64, edit=edit)
        self.refused(self.compare(self.sae, self.sae, extra=["--activations", first, "--activations", second,
                                                             "--set", f"data.hookpoint={HOOK}"]),
                     first, second, "first difference at token 100", readme="| store | stores of different token sequences |")

    def test_store_per_sae_without_its_hookpoint(self):
        first = make_store(self.path("a.h5"), d=64)
        second = make_store(self.path("b.h5"), d=64, edit=lambda f: f.move(f"activations/{HOOK}", "activations/blocks.1.hook_resid_post"))
        self.refused(self.compare(self.sae, self.sae, extra=["--activations", first, "--activations", second,
                                                             "--set", f"data.hookpoint={HOOK}"]),
                     second, HOOK, "blocks.1.hook_resid_post", readme="| store | an SAE's own store lacks its hookpoint |")

    def test_activations_neither_one_nor_one_per_sae(self):
        store = make_store(self.path("a.h5"), d=64)
        self.refused(self.compare(self.sae, self.sae, self.sae, extra=["--activations", store, "--activations", store]),
                     "one per SAE (3), got 2", readme="| CLI | `--activations` neither once nor once per `--sae` |")

    def test_config_compare_across_not_on_the_grid(self):
        path = self.job('[run]\nstages = ["train"]\ncompare_across = ["extract.model"]\n[grid]\n"sae.k" = [4, 8]\n')
        self.refused(["run", path], "run.compare_across", "'extract.model' is not a [grid] key",
                     readme="| config | compare_across on a key not on the grid |")

    # ---- text and model inputs -----------------------------------------------------------------
    def test_text_input_missing(self):
        missing = self.path("corpus.txt")
        self.refused(self.extract(f'extract.inputs=["{missing}"]'), missing, readme="| text | input missing |")

    def test_text_bad_jsonl(self):
        corpus = write(self.path("corpus.jsonl"), '{"text": "Once upon a time"}\n{"text": oops}\n')
        self.refused(self.extract(f'extract.inputs=["{corpus}"]'), corpus + ":2", "not valid JSON", readme="| text | bad JSONL line |")

    def test_text_jsonl_without_text(self):
        corpus = write(self.path("corpus.jsonl"), '{"body": "Once upon a time"}\n')
        self.refused(self.extract(f'extract.inputs=["{corpus}"]'), corpus, "text",
                     readme="| text | JSONL line without `text` |")

    def test_model_missing(self):
        missing = self.path("model.bin")
        self.refused(self.extract(f"extract.model={missing}"), missing, readme="| model | checkpoint missing |")

    def test_model_not_a_checkpoint(self):
        junk = write(self.path("model.bin"), b"\x01\x00\x00\x00" * 7)
        self.refused(self.extract(f"extract.model={junk}"), junk, readme="| model | not a llama2.c checkpoint |")

    def test_model_truncated(self):
        model = os.path.join(SOURCE, "..", "shared", "data", "stories260K.bin")
        with open(model, "rb") as fh:
            head = fh.read(4096)
        cut = write(self.path("model.bin"), head)
        self.refused(self.extract(f"extract.model={cut}"), cut, readme="| model | truncated checkpoint |")

    def test_tokenizer_garbage(self):
        tok = write(self.path("tok.bin"), b"\xff\xff\xff\x7f" + b"garbage")
        self.refused(self.extract(f"extract.tokenizer={tok}"), tok, readme="| model | tokenizer file unreadable |")

    def test_model_unknown_hookpoint(self):
        self.refused(self.extract('extract.hookpoints=["blocks.2.hook_resid_sideways"]'),
                     "blocks.2.hook_resid_sideways", readme="| model | unknown hookpoint |")

    # ---- Hugging Face directories, GGUF, tokenizer.json (docs/models.md) ------------------------
    def hf_dir(self, edit_config=None):
        """A copy of the real tiny Hugging Face Llama (vocab 3000, 2 blocks) with config.json edited."""
        path = self.path("hf-model")
        shutil.copytree(os.path.join(DATA, "hf", "tiny-random-llama-2"), path)
        with open(os.path.join(path, "config.json")) as fh:
            config = json.load(fh)
        if edit_config:
            edit_config(config)
        write(os.path.join(path, "config.json"), json.dumps(config))
        return path

    def extract_hf(self, model, *sets):
        return self.extract(f"extract.model={model}", 'extract.hookpoints=["blocks.0.hook_resid_post"]', *sets)

    def test_hf_unsupported_model_type(self):
        model = self.hf_dir(lambda c: c.update(model_type="gpt2"))
        self.refused(self.extract_hf(model), os.path.join(model, "config.json"), "'model_type' 'gpt2' is not supported",
                     readme="| model | unsupported model_type |")

    def test_hf_unsupported_rope_scaling(self):
        model = self.hf_dir(lambda c: c.update(rope_scaling={"rope_type": "yarn", "factor": 4.0}))
        self.refused(self.extract_hf(model), "config.json", "'rope_scaling' type 'yarn' is not supported",
                     readme="| model | unsupported rope_scaling |")

    def test_hf_shape_disagrees_with_config(self):
        model = self.hf_dir(lambda c: c.update(intermediate_size=32))
        self.refused(self.extract_hf(model), "model.safetensors", "'model.layers.0.mlp.gate_proj.weight'", "[64, 16]",
                     "config.json implies [32, 16]", readme="| model | tensor shape disagrees with config.json |")

    def test_hf_no_safetensors(self):
        model = self.hf_dir()
        os.remove(os.path.join(model, "model.safetensors"))
        self.refused(self.extract_hf(model), model, "no model.safetensors", readme="| model | no safetensors in the directory |")

    def test_hf_index_names_a_missing_shard(self):
        model = self.hf_dir()
        os.rename(os.path.join(model, "model.safetensors"), os.path.join(model, "model-00001-of-00002.safetensors"))
        with open(os.path.join(model, "model-00001-of-00002.safetensors"), "rb") as fh:
            names = [k for k in json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0])) if k != "__metadata__"]
        weight_map = {n: "model-00001-of-00002.safetensors" for n in names}
        weight_map["lm_head.weight"] = "model-00002-of-00002.safetensors"
        write(os.path.join(model, "model.safetensors.index.json"), json.dumps({"weight_map": weight_map}))
        self.refused(self.extract_hf(model), "model.safetensors.index.json", "'weight_map.lm_head.weight'",
                     "model-00002-of-00002.safetensors, which is not in", readme="| model | index names a missing shard |")

    def test_gguf_unsupported_tensor_type(self):
        version, metadata, tensors = hf.read_gguf(os.path.join(DATA, "stories260K_f32.gguf"), typed=True)
        name, dims, _, raw = tensors[1]
        q5_0 = (dims[0] * dims[1] // 32) * 22  # Q5_0 (ggml type 6): 22-byte blocks of 32
        tensors[1] = (name, dims, 6, bytes(q5_0))
        gguf = self.path("model.gguf")
        hf.write_gguf(gguf, metadata, tensors, version=3)
        self.refused(self.extract(f"extract.model={gguf}"), gguf, f"'{name}'", "Q5_0",
                     readme="| model | GGUF tensor type unsupported |")

    def test_tokenizer_json_unsupported_model(self):
        tok = write(self.path("tokenizer.json"), json.dumps({"model": {"type": "WordPiece", "vocab": {"a": 0}}}))
        self.refused(self.extract(f"extract.tokenizer={tok}"), tok, "'WordPiece'", readme="| model | tokenizer.json of an unsupported model |")

    def test_tokenizer_larger_than_the_embedding(self):
        tok = os.path.join(DATA, "hf", "tokenizers", "llama2", "tokenizer.json")
        self.refused(self.extract_hf(self.hf_dir(), f"extract.tokenizer={tok}"), tok, "32000 tokens", "3000",
                     readme="| model | vocabulary larger than the embedding |")

    # ---- safetensors (sparsify / SAELens directories) ------------------------------------------
    def sparsify_dir(self, weights_bytes):
        path = self.path("layers.0")
        os.mkdir(path)
        write(os.path.join(path, "cfg.json"), json.dumps({"activation": "topk", "k": 4, "num_latents": 8, "d_in": 4}))
        write(os.path.join(path, "sae.safetensors"), weights_bytes)
        return path

    def test_safetensors_truncated(self):
        path = self.sparsify_dir(struct.pack("<Q", 1 << 20) + b"{}")
        self.refused(self.compare(path, self.sae), os.path.join(path, "sae.safetensors"), "header",
                     readme="| safetensors | truncated file |")

    def test_safetensors_header_not_json(self):
        path = self.sparsify_dir(struct.pack("<Q", 8) + b"{not js}")
        self.refused(self.compare(path, self.sae), "sae.safetensors", "not valid JSON",
                     readme="| safetensors | header is not JSON |")

    def test_safetensors_offsets_beyond_data(self):
        header = {"W_dec": {"dtype": "F32", "shape": [8, 4], "data_offsets": [0, 128]}}
        path = self.sparsify_dir(safetensors_bytes(header, b"\0" * 64))
        self.refused(self.compare(path, self.sae), "sae.safetensors", "W_dec", readme="| safetensors | offsets beyond the data |")

    def test_safetensors_unknown_dtype(self):
        header = {"encoder.weight": {"dtype": "F8_E4M3", "shape": [8, 4], "data_offsets": [0, 32]},
                  "encoder.bias": {"dtype": "F32", "shape": [8], "data_offsets": [32, 64]},
                  "W_dec": {"dtype": "F32", "shape": [8, 4], "data_offsets": [64, 192]},
                  "b_dec": {"dtype": "F32", "shape": [4], "data_offsets": [192, 208]}}
        path = self.sparsify_dir(safetensors_bytes(header, b"\0" * 208))
        self.refused(self.compare(path, self.sae), "sae.safetensors", "F8_E4M3", readme="| safetensors | unknown dtype |")


class Help(unittest.TestCase):
    def test_every_command_describes_its_options(self):
        top = universae(["--help"], 1, timeout=None)
        self.assertEqual(top.returncode, 0)
        for command in ("run", "train", "compare", "inspect", "extract", "convert", "report", "sweep"):
            self.assertIn(command, top.stdout)
        self.assertIn("keys", top.stdout)
        # Each command's help: its own options, the config sections it reads (not every key), and exit
        # code 75 only where a command can stop on a signal after saving its progress.
        expected = {"run": ["--set", "--fresh", "[train]", "universae keys", "75"],
                    "train": ["--set", "--fresh", "[sae]", "75"],
                    "compare": ["--sae", "--out", "--set", "[compare]", "75"], "inspect": ["file"]}
        for command, needles in expected.items():
            proc = universae([command, "--help"], 2, timeout=None)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            for needle in needles:
                self.assertIn(needle, proc.stdout, f"{command} --help")
            self.assertEqual(proc.stdout.count("Usage:"), 1, "help is printed once, by rank 0")
            self.assertLess(len(proc.stdout.splitlines()), 40, f"{command} --help lists its own options, not every key")
            if command == "inspect":
                self.assertNotIn("75", proc.stdout, f"{command} --help: it never checkpoints")
        keys = universae(["keys", "train"], None, timeout=None)
        self.assertEqual(keys.returncode, 0, keys.stderr)
        self.assertIn("train.batch_size", keys.stdout)
        self.assertNotIn("sae.seeds", keys.stdout)
        self.assertEqual(universae(["keys", "trian"], None, timeout=None).returncode, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
