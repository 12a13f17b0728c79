"""Golden: universae's tokenizer.json support (src/lm/hf_tokenizer) against Hugging Face's own tokenizers.

For each of the four real tokenizer.json files in ../shared/data/hf/tokenizers/ (Llama 2, GPT-2,
GPT-NeoX, Llama 3), the ids `universae tokenize --tokenizer FILE --file F` prints must equal, id for
id, those of Hugging Face's `tokenizers` library (the npm package, its Rust core with Node bindings:
`encode(text, null, {addSpecialTokens: false})`) on
  - the first ~50 KB of TinyStories (whole stories: cut at a blank line),
  - the first ~50 KB of Tiny Shakespeare (whole speeches),
  - tests/data/tokenizer_hard_cases.txt: CJK, emoji, combining marks and NFC-sensitive forms,
    whitespace runs (tabs, \\r\\n, \\v, NEL, NBSP, U+3000), digit runs, contractions ('s 'LL), bytes
    outside Llama 2's vocabulary, and special tokens (<s>, <|endoftext|>, <|begin_of_text|>) in the text;
and, on a copy of GPT-2's file with added tokens that set lstrip, rstrip, single_word and normalized,
random strings of those tokens, spaces and word characters; and, on copies of Llama 2's file made into
what transformers' LlamaTokenizerFast(legacy=False, from_slow=True) writes (no normalizer, a Metaspace
pre-tokenizer and decoder) with each prepend_scheme (first, always, never) and split false and true,
the same three texts plus short ones that start with spaces, "▁" or added tokens (where "first" must not
prepend).

The package (TOKENIZERS_VERSION) is installed with npm into BUILD/hf_tokenizers_node the first time
(it needs node, npm and the npm registry once); where it cannot be, the test fails and says why, unless
UNIVERSAE_SKIP_NPM=1 is set: then it is skipped (scripts/install-deps.sh installs node and npm).
On a mismatch the message gives the first differing position with the pieces around it.
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import BINARY, SOURCE, npm_package, run_command, universae  # noqa: E402

DATA = os.path.normpath(os.path.join(SOURCE, "..", "shared", "data"))
TOKENIZERS = os.path.join(DATA, "hf", "tokenizers")
NAMES = ["llama2", "gpt2", "gpt-neox", "llama3"]
HARD_CASES = os.path.join(SOURCE, "tests", "data", "tokenizer_hard_cases.txt")
TOKENIZERS_VERSION = "0.23.2"
NODE_DIR = os.path.join(os.path.dirname(BINARY), "hf_tokenizers_node")
# Texts whose start decides what Metaspace's prepend_scheme does ("first" prepends only to the piece that
# begins the text: not after <s> written at its start); few, as each costs a start of universae.
METASPACE_STARTS = ["<s>Hello world", "  Hello  world ", "\u2581Hello"]

# Reads a tokenizer.json and text files (UTF-8) named on the command line; prints a JSON list with
# the ids of each text, as Hugging Face encodes it without special tokens added.
ENCODE_JS = """
const {Tokenizer} = require(process.env.TOKENIZERS_MODULE);
const fs = require('fs');
(async () => {
  const tokenizer = Tokenizer.fromFile(process.argv[2]);
  const out = [];
  for (const file of process.argv.slice(3)) {
    const encoding = await tokenizer.encode(fs.readFileSync(file, 'utf8'), null, {addSpecialTokens: false});
    out.push(encoding.getIds());
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def install_tokenizers():
    """None when the npm package is ready under NODE_DIR, else why it cannot be."""
    return npm_package(NODE_DIR, "tokenizers", TOKENIZERS_VERSION)


def whole_units(path, size):
    """The text of `path` up to the first blank line at or after `size` characters."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    cut = text.find("\n\n", size)
    return text if cut < 0 else text[:cut]


def pieces_by_id(tokenizer):
    with open(tokenizer, encoding="utf-8") as f:
        spec = json.load(f)
    pieces = {i: p for p, i in spec["model"]["vocab"].items()}
    pieces.update({t["id"]: t["content"] for t in spec["added_tokens"] if t["content"] not in spec["model"]["vocab"]})
    return pieces


def first_difference(expected, got, tokenizer):
    """A message naming the first position where the id lists differ, with the pieces around it."""
    n = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    pieces = pieces_by_id(tokenizer)

    def around(ids):
        return " ".join(f"{i}:{pieces.get(t, '?')!r}" for i, t in enumerate(ids[max(0, n - 6):n + 6], max(0, n - 6)))

    return (f"{len(expected)} ids from Hugging Face, {len(got)} from universae; first difference at id {n}\n"
            f"  Hugging Face: {around(expected)}\n  universae:    {around(got)}")


class AgainstHuggingFace(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = install_tokenizers()
        if why and os.environ.get("UNIVERSAE_SKIP_NPM") == "1":
            raise unittest.SkipTest(why)
        if why:
            raise AssertionError(f"{why}\n(set UNIVERSAE_SKIP_NPM=1 to skip this test instead)")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.script = os.path.join(cls.tmp.name, "encode.js")
        with open(cls.script, "w") as f:
            f.write(ENCODE_JS)
        cls.texts = {}
        for name, text in [("tinystories", whole_units(os.path.join(DATA, "tinystories_train_head_197k.txt"), 50_000)),
                           ("tinyshakespeare", whole_units(os.path.join(DATA, "tinyshakespeare.txt"), 50_000))]:
            cls.texts[name] = os.path.join(cls.tmp.name, name + ".txt")
            with open(cls.texts[name], "w", encoding="utf-8", newline="") as f:
                f.write(text)
        cls.texts["hard_cases"] = HARD_CASES

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def hugging_face(self, tokenizer, files):
        env = dict(os.environ, TOKENIZERS_MODULE=os.path.join(NODE_DIR, "node_modules", "tokenizers"))
        proc = run_command(["node", self.script, tokenizer, *files], timeout=300, cwd=None, env=env, check=True)
        return json.loads(proc.stdout)

    def universae_ids(self, tokenizer, file):
        proc = universae(["tokenize", "--tokenizer", tokenizer, "--file", file], timeout=120, check=True)
        return [int(t) for t in proc.stdout.split()]

    def compare(self, tokenizer, files):
        for file, expected in zip(files, self.hugging_face(tokenizer, files)):
            got = self.universae_ids(tokenizer, file)
            with self.subTest(tokenizer=tokenizer, text=os.path.basename(file)):
                self.assertGreater(len(expected), 0)
                if got != expected:
                    self.fail(first_difference(expected, got, tokenizer))
                print(f"{os.path.basename(os.path.dirname(tokenizer))} {os.path.basename(file)}: "
                      f"{len(got)} ids equal", file=sys.stderr)

    def test_four_tokenizers_on_stories_shakespeare_and_hard_cases(self):
        for name in NAMES:
            self.compare(os.path.join(TOKENIZERS, name, "tokenizer.json"), list(self.texts.values()))

    def test_added_token_flags(self):
        with open(os.path.join(TOKENIZERS, "gpt2", "tokenizer.json"), encoding="utf-8") as f:
            spec = json.load(f)
        plain = dict(special=False, normalized=False, single_word=False, lstrip=False, rstrip=False)
        spec["added_tokens"] += [dict(plain, id=50257, content="<mask>", lstrip=True, special=True),
                                 dict(plain, id=50258, content="[X]", rstrip=True),
                                 dict(plain, id=50259, content="cat", single_word=True),
                                 dict(plain, id=50260, content="dog", single_word=True, lstrip=True, rstrip=True),
                                 dict(plain, id=50261, content="ab", normalized=True)]
        tokenizer = os.path.join(self.tmp.name, "flags", "tokenizer.json")
        os.makedirs(os.path.dirname(tokenizer))
        with open(tokenizer, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        rng = random.Random(7)
        pool = ["<mask>", "[X]", "cat", "dog", "ab", " ", "  ", "\t", "\n", "a", "b", "x", "_", "1", "é", "我", ".",
                "'s", "\u00a0", "\u0301"]
        text = os.path.join(self.tmp.name, "flags.txt")
        with open(text, "w", encoding="utf-8", newline="") as f:
            f.write("|".join("".join(rng.choice(pool) for _ in range(rng.randint(1, 12))) for _ in range(2000)))
        self.compare(tokenizer, [text])

    def test_metaspace_variants_of_llama2(self):
        with open(os.path.join(TOKENIZERS, "llama2", "tokenizer.json"), encoding="utf-8") as f:
            spec = json.load(f)
        starts = []
        for i, text in enumerate(METASPACE_STARTS):
            starts.append(os.path.join(self.tmp.name, f"start{i}.txt"))
            with open(starts[-1], "w", encoding="utf-8", newline="") as f:
                f.write(text)
        for scheme in ["first", "always", "never"]:
            for split in [False, True]:
                metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": split}
                tokenizer = os.path.join(self.tmp.name, f"metaspace_{scheme}_split_{str(split).lower()}", "tokenizer.json")
                os.makedirs(os.path.dirname(tokenizer))
                with open(tokenizer, "w", encoding="utf-8") as f:
                    json.dump(dict(spec, normalizer=None, pre_tokenizer=metaspace, decoder=metaspace), f)
                self.compare(tokenizer, list(self.texts.values()) + starts)

    def test_pieces_option_prints_the_pieces_of_the_ids(self):
        tokenizer = os.path.join(TOKENIZERS, "gpt2", "tokenizer.json")
        pieces = pieces_by_id(tokenizer)
        ids = self.universae_ids(tokenizer, HARD_CASES)
        proc = universae(["tokenize", "--tokenizer", tokenizer, "--file", HARD_CASES, "--pieces"], timeout=120,
                         check=True)
        self.assertEqual(proc.stdout.split(), [pieces[i] for i in ids])  # GPT-2's pieces hold no whitespace


if __name__ == "__main__":
    unittest.main(verbosity=2)
