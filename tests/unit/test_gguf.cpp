// io/gguf: the reader on the real stories260K file (GGUF version 1) against llama2.c's checkpoint of
// the same weights, every metadata type in small version 2 and 3 files written here, the dequantization
// kernels on hand-made blocks, and bad files that must be UsageErrors naming the file. (The kernels are
// compared bit for bit with gguf-py's numpy port in tests/golden/test_gguf_dequant.py.)
#include <ATen/ATen.h>
#include <c10/util/Half.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <unistd.h>

#include "core/error.hpp"
#include "io/gguf.hpp"

namespace universae::io::gguf {
namespace {

const char* kGguf = "../shared/data/stories260K_f32.gguf";  // tests run from the source directory
const char* kLlama2c = "../shared/data/stories260K.bin";

std::string read_bytes(const std::string& path) {
  std::string bytes(std::filesystem::file_size(path), '\0');
  std::ifstream(path, std::ios::binary).read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

std::filesystem::path temp_dir() {
  return std::filesystem::temp_directory_path() / ("universae_test_gguf_" + std::to_string(::getpid()));
}

// The files each test writes, removed after the suite.
class Gguf : public testing::Test {
 protected:
  static void TearDownTestSuite() { std::filesystem::remove_all(temp_dir()); }
};

std::string temp_file(const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(temp_dir());
  const std::string path = (temp_dir() / name).string();
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

// The message of the UsageError that `f` throws ("" when it throws none).
template <class F>
std::string usage_error(F&& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

// A GGUF file built field by field, for what the real file does not cover.
class Builder {
 public:
  explicit Builder(uint32_t version) : version_(version) {}

  template <class T>
  static void put(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void length(std::string& out, uint64_t n) const {
    if (version_ == 1) put<uint32_t>(out, static_cast<uint32_t>(n));
    else put<uint64_t>(out, n);
  }
  void str(std::string& out, const std::string& s) const {
    length(out, s.size());
    out += s;
  }

  // A key and its value type; the caller appends the value to kv.
  std::string& key(const std::string& name, ValueType type) {
    str(kv, name);
    put<uint32_t>(kv, static_cast<uint32_t>(type));
    ++n_kv;
    return kv;
  }
  template <class T>
  void scalar(const std::string& name, ValueType type, T v) {
    put<T>(key(name, type), v);
  }
  void string(const std::string& name, const std::string& v) { str(key(name, ValueType::kString), v); }
  // An array header; the caller appends `n` elements to kv.
  std::string& array(const std::string& name, ValueType element, uint64_t n) {
    put<uint32_t>(key(name, ValueType::kArray), static_cast<uint32_t>(element));
    length(kv, n);
    return kv;
  }

  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, const std::string& bytes, uint64_t alignment = 32) {
    str(infos, name);
    put<uint32_t>(infos, static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) version_ == 1 ? put<uint32_t>(infos, static_cast<uint32_t>(d)) : put<uint64_t>(infos, d);
    put<uint32_t>(infos, type);
    put<uint64_t>(infos, data.size());
    data += bytes;
    data.append((alignment - data.size() % alignment) % alignment, '\0');
    ++n_tensors;
  }

  // Where the offset field of the last tensor info is in build()'s bytes (version 2 or 3).
  size_t last_offset_field() const { return 24 + kv.size() + infos.size() - 8; }

  std::string build(uint64_t alignment = 32) const {
    std::string out = "GGUF";
    put<uint32_t>(out, version_);
    length(out, n_tensors);
    length(out, n_kv);
    out += kv + infos;
    out.append((alignment - out.size() % alignment) % alignment, '\0');
    return out + data;
  }

  std::string kv, infos, data;
  uint64_t n_kv = 0, n_tensors = 0;

 private:
  uint32_t version_;
};

std::string floats_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

// The llama2.c arrays, in the order of the checkpoint (data/README.md), as name -> (offset, count).
std::map<std::string, std::pair<size_t, size_t>> llama2c_arrays() {
  const size_t dim = 64, hidden = 172, layers = 5, kv_dim = 32, vocab = 512;
  const std::vector<std::pair<std::string, size_t>> arrays = {
      {"tok_embeddings", vocab * dim}, {"rms_att", layers * dim},        {"wq", layers * dim * dim},
      {"wk", layers * kv_dim * dim},   {"wv", layers * kv_dim * dim},   {"wo", layers * dim * dim},
      {"rms_ffn", layers * dim},       {"w1", layers * hidden * dim},   {"w2", layers * dim * hidden},
      {"w3", layers * hidden * dim},   {"rms_final", dim}};
  std::map<std::string, std::pair<size_t, size_t>> out;
  size_t offset = 0;
  for (const auto& [name, count] : arrays) out[name] = {offset, count}, offset += count;
  return out;
}

TEST_F(Gguf, ReadsTheVersion1StoriesFileMetadata) {
  const Reader r(kGguf);
  EXPECT_EQ(r.version(), 1u);
  EXPECT_EQ(r.alignment(), 32u);
  EXPECT_EQ(r.get_string("general.architecture"), "llama");
  EXPECT_EQ(r.get_int("llama.embedding_length"), 64);
  EXPECT_EQ(r.get_int("llama.block_count"), 5);
  EXPECT_EQ(r.get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(r.get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(r.get_int("llama.feed_forward_length"), 172);
  EXPECT_EQ(r.get_int("llama.context_length"), 512);
  EXPECT_FLOAT_EQ(static_cast<float>(r.get_float("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
  const auto tokens = r.get_strings("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(r.get_floats("tokenizer.ggml.scores").size(), 512u);
  EXPECT_EQ(r.get_ints("tokenizer.ggml.token_type").size(), 512u);
  EXPECT_EQ(r.find_int("llama.no_such_key"), std::nullopt);
  EXPECT_EQ(r.find_float("llama.attention.layer_norm_rms_epsilon").value(), r.get_float("llama.attention.layer_norm_rms_epsilon"));
  EXPECT_EQ(r.tensors().size(), 48u);

  const std::string missing = usage_error([&] { r.get_int("llama.nope"); });
  EXPECT_NE(missing.find(kGguf), std::string::npos) << missing;
  EXPECT_NE(missing.find("GGUF key 'llama.nope' is missing"), std::string::npos) << missing;
  const std::string wrong = usage_error([&] { r.get_int("general.architecture"); });
  EXPECT_NE(wrong.find("GGUF key 'general.architecture' is string, expected an integer"), std::string::npos) << wrong;
  EXPECT_NE(usage_error([&] { r.get_strings("tokenizer.ggml.scores"); }).find("array[float32]"), std::string::npos);
  EXPECT_NE(usage_error([&] { r.read("no.such.tensor"); }).find("no tensor 'no.such.tensor'"), std::string::npos);
}

TEST_F(Gguf, EveryTensorOfTheStoriesFileIsBitIdenticalToTheLlama2cCheckpoint) {
  const std::string bin = read_bytes(kLlama2c);
  ASSERT_GT(bin.size(), 28u);
  const float* weights = reinterpret_cast<const float*>(bin.data() + 28);  // after 7 int32 of header
  const auto arrays = llama2c_arrays();
  // GGUF name -> llama2.c array; per-layer arrays are stacked on the first axis.
  const std::map<std::string, std::string> per_layer = {
      {"attn_norm", "rms_att"}, {"attn_q", "wq"},     {"attn_k", "wk"},     {"attn_v", "wv"}, {"attn_output", "wo"},
      {"ffn_norm", "rms_ffn"},  {"ffn_gate", "w1"},   {"ffn_down", "w2"},   {"ffn_up", "w3"}};
  const Reader r(kGguf);
  int compared = 0;
  for (const auto& t : r.tensors()) {
    std::string array;
    size_t layer = 0;
    if (t.name == "token_embd.weight" || t.name == "output.weight") array = "tok_embeddings";
    if (t.name == "output_norm.weight") array = "rms_final";
    for (const auto& [suffix, name] : per_layer)
      for (size_t l = 0; l < 5; ++l)
        if (t.name == "blk." + std::to_string(l) + "." + suffix + ".weight") array = name, layer = l;
    ASSERT_FALSE(array.empty()) << "unexpected tensor " << t.name;
    const auto [offset, count] = arrays.at(array);
    const size_t numel = static_cast<size_t>(t.numel());
    ASSERT_EQ(count % numel, 0u) << t.name;
    const at::Tensor got = r.read(t.name);
    EXPECT_EQ(got.sizes().vec(), t.shape());
    EXPECT_EQ(std::memcmp(got.data_ptr<float>(), weights + offset + layer * numel, numel * sizeof(float)), 0) << t.name;
    ++compared;
  }
  EXPECT_EQ(compared, 48);
}

TEST_F(Gguf, F32IsAViewOfTheMappingThatOutlivesTheReader) {
  at::Tensor view, copy;
  {
    const Reader r(kGguf);
    view = r.read("token_embd.weight");
    copy = r.read("token_embd.weight", /*copy=*/true);
    EXPECT_EQ(r.read("token_embd.weight").data_ptr(), view.data_ptr());  // the same mapped bytes
    EXPECT_NE(copy.data_ptr(), view.data_ptr());
    const at::Tensor bf16 = r.read_as("token_embd.weight", at::kBFloat16);
    EXPECT_TRUE(bf16.equal(view.to(at::kBFloat16)));
    EXPECT_EQ(r.read_as("token_embd.weight", at::kFloat).data_ptr(), view.data_ptr());
    EXPECT_NE(r.read_as("token_embd.weight", at::kFloat, /*copy=*/true).data_ptr(), view.data_ptr());
  }
  EXPECT_TRUE(view.equal(copy));  // the reader is gone; the view keeps the mapping
}

TEST_F(Gguf, ReadsEveryMetadataTypeInVersions2And3) {
  for (uint32_t version : {2u, 3u}) {
    Builder b(version);
    b.scalar<uint8_t>("t.u8", ValueType::kUint8, 200);
    b.scalar<int8_t>("t.i8", ValueType::kInt8, -5);
    b.scalar<uint16_t>("t.u16", ValueType::kUint16, 60000);
    b.scalar<int16_t>("t.i16", ValueType::kInt16, -30000);
    b.scalar<uint32_t>("t.u32", ValueType::kUint32, 4000000000u);
    b.scalar<int32_t>("t.i32", ValueType::kInt32, -2000000000);
    b.scalar<float>("t.f32", ValueType::kFloat32, 0.25f);
    b.scalar<uint8_t>("t.bool", ValueType::kBool, 1);
    b.string("t.str", "héllo");
    b.scalar<uint64_t>("t.u64", ValueType::kUint64, std::numeric_limits<uint64_t>::max());
    b.scalar<int64_t>("t.i64", ValueType::kInt64, -(int64_t{1} << 62));
    b.scalar<double>("t.f64", ValueType::kFloat64, 1e300);
    std::string& ai16 = b.array("t.ai16", ValueType::kInt16, 3);
    for (int16_t v : {int16_t{-1}, int16_t{2}, int16_t{300}}) Builder::put<int16_t>(ai16, v);
    std::string& af64 = b.array("t.af64", ValueType::kFloat64, 2);
    for (double v : {0.5, -2.0}) Builder::put<double>(af64, v);
    std::string& strings = b.array("t.astr", ValueType::kString, 2);
    b.str(strings, "a");
    b.str(strings, "");
    std::string& nested = b.array("t.nested", ValueType::kArray, 2);
    for (int i = 0; i < 2; ++i) Builder::put<uint32_t>(nested, 0), b.length(nested, 1), nested += char(7);  // [[7], [7]] of uint8
    b.scalar<uint32_t>("general.alignment", ValueType::kUint32, 64);
    b.tensor("x", {4}, 0, floats_bytes({1, 2, 3, 4}), 64);
    const Reader r(temp_file("types_v" + std::to_string(version) + ".gguf", b.build(64)));
    EXPECT_EQ(r.version(), version);
    EXPECT_EQ(r.alignment(), 64u);
    EXPECT_EQ(r.get_int("t.u8"), 200);
    EXPECT_EQ(r.get_int("t.i8"), -5);
    EXPECT_EQ(r.get_int("t.u16"), 60000);
    EXPECT_EQ(r.get_int("t.i16"), -30000);
    EXPECT_EQ(r.get_int("t.u32"), 4000000000);
    EXPECT_EQ(r.get_int("t.i32"), -2000000000);
    EXPECT_EQ(r.get_float("t.f32"), 0.25);
    EXPECT_EQ(r.get_float("t.u8"), 200.0);  // integers widen to float
    EXPECT_TRUE(r.get_bool("t.bool"));
    EXPECT_EQ(r.get_string("t.str"), "héllo");
    EXPECT_NE(usage_error([&] { r.get_int("t.u64"); }).find("18446744073709551615, which does not fit int64"), std::string::npos);
    EXPECT_EQ(describe(*r.value("t.u64")), "uint64 18446744073709551615");
    EXPECT_EQ(r.get_int("t.i64"), -(int64_t{1} << 62));
    EXPECT_EQ(r.get_float("t.f64"), 1e300);
    EXPECT_EQ(r.get_ints("t.ai16"), (std::vector<int64_t>{-1, 2, 300}));
    EXPECT_EQ(r.get_floats("t.ai16"), (std::vector<double>{-1, 2, 300}));
    EXPECT_EQ(r.get_floats("t.af64"), (std::vector<double>{0.5, -2.0}));
    EXPECT_EQ(r.get_strings("t.astr"), (std::vector<std::string>{"a", ""}));
    EXPECT_EQ(describe(*r.value("t.nested")), "array[array] 2");
    EXPECT_NE(usage_error([&] { r.get_int("t.f32"); }).find("is float32, expected an integer"), std::string::npos);
    EXPECT_NE(usage_error([&] { r.get_ints("t.af64"); }).find("is array[float64], expected an array of integers"), std::string::npos);
    EXPECT_EQ(r.keys().front(), "t.u8");
    EXPECT_TRUE(r.read("x").equal(at::tensor({1.f, 2.f, 3.f, 4.f})));
    EXPECT_EQ(r.find("x")->offset % 64, 0u);
  }
}

TEST_F(Gguf, DequantizesHandMadeBlocks) {
  // Q8_0: d = 0.5 (f16 0x3800), q = -128, -1, 0, 1, ..., 28.
  std::string q8(34, '\0');
  q8[0] = 0x00, q8[1] = 0x38;
  for (int j = 0; j < 32; ++j) q8[2 + j] = static_cast<char>(j == 0 ? -128 : j - 2);
  std::vector<float> y(32);
  dequantize(TensorType::kQ8_0, q8.data(), 32, y.data());
  EXPECT_EQ(y[0], -64.f);
  EXPECT_EQ(y[1], -0.5f);
  EXPECT_EQ(y[31], 14.5f);
  // Q4_0: d = 2 (0x4000); byte j holds element j (low nibble) and element j + 16 (high nibble), less 8.
  std::string q4(18, '\0');
  q4[1] = 0x40;
  for (int j = 0; j < 16; ++j) q4[2 + j] = static_cast<char>((15 - j) << 4 | j);
  dequantize(TensorType::kQ4_0, q4.data(), 32, y.data());
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.f * static_cast<float>(j - 8)) << j;
    EXPECT_EQ(y[j + 16], 2.f * static_cast<float>(7 - j)) << j;
  }
  // Q4_K: d = 1, dmin = 0.5 (0x3800); sub-block 5's 6-bit scale 33 and min 18 are split over bytes 1,
  // 5 and 9 of the scales; every quant is 3. Elements 160..191 are 33 * 3 - 0.5 * 18.
  std::string q4k(144, '\0');
  q4k[1] = 0x3c, q4k[3] = 0x38;
  const uint8_t sc = 33, m = 18;
  q4k[4 + 9] = static_cast<char>((sc & 0xF) | (m & 0xF) << 4);
  q4k[4 + 1] = static_cast<char>((sc >> 4) << 6);
  q4k[4 + 5] = static_cast<char>((m >> 4) << 6);
  for (int j = 0; j < 128; ++j) q4k[16 + j] = 0x33;
  std::vector<float> k(256);
  dequantize(TensorType::kQ4_K, q4k.data(), 256, k.data());
  EXPECT_EQ(k[160], 33.f * 3 - 9.f);
  EXPECT_EQ(k[191], 33.f * 3 - 9.f);
  EXPECT_EQ(k[0], 0.f);  // scales and mins of sub-block 0 are 0 here
  // Q6_K: d = 1; scale of sub-block 0 is -2; q = 63 (ql low nibble 15, qh bits 3) gives -2 * 31.
  std::string q6k(210, '\0');
  q6k[209] = 0x3c;
  q6k[192] = static_cast<char>(-2);
  q6k[0] = 0x0F, q6k[128] = 0x03;
  dequantize(TensorType::kQ6_K, q6k.data(), 256, k.data());
  EXPECT_EQ(k[0], -62.f);
  EXPECT_EQ(k[1], 64.f);  // q = 0 - 32 times scale -2
  EXPECT_THROW(dequantize(TensorType::kQ4_K, q4k.data(), 100, k.data()), InternalError);
  EXPECT_THROW(dequantize(TensorType::kOther, q4k.data(), 1, k.data()), InternalError);
}

TEST_F(Gguf, F16ConvertsEveryNonNaNValueAsC10Does) {
  std::vector<uint16_t> all(65536);
  for (uint32_t h = 0; h < all.size(); ++h) all[h] = static_cast<uint16_t>(h);
  std::vector<float> y(all.size());
  dequantize(TensorType::kF16, all.data(), static_cast<int64_t>(all.size()), y.data());
  for (uint32_t h = 0; h < all.size(); ++h) {
    const float want = static_cast<float>(c10::Half(all[h], c10::Half::from_bits()));
    if (std::isnan(want)) EXPECT_TRUE(std::isnan(y[h])) << h;
    else EXPECT_EQ(std::memcmp(&y[h], &want, sizeof want), 0) << h;
  }
}

TEST_F(Gguf, ConvertsF16AndBF16AndRefusesUnsupportedTypes) {
  Builder b(3);
  const std::vector<uint16_t> half = {0x3c00, 0xc000, 0x0001, 0x7bff};  // 1, -2, 2^-24, 65504
  b.tensor("h", {2, 2}, 1, std::string(reinterpret_cast<const char*>(half.data()), 8));
  b.tensor("b", {2, 2}, 30, std::string(reinterpret_cast<const char*>(half.data()), 8));
  b.tensor("q5", {32}, 7, std::string(24, '\0'));  // Q5_1: listed, not read
  const std::string path = temp_file("types.gguf", b.build());
  const Reader r(path);
  EXPECT_TRUE(r.read("h").equal(at::tensor({1.f, -2.f, std::ldexp(1.f, -24), 65504.f}).reshape({2, 2})));
  for (bool copy : {false, true}) {
    const at::Tensor as_half = r.read_as("h", at::kHalf, copy);
    EXPECT_EQ(as_half.scalar_type(), at::kHalf);
    EXPECT_EQ(std::memcmp(as_half.data_ptr(), half.data(), 8), 0);
  }
  EXPECT_TRUE(r.read("b").equal(r.read_as("b", at::kBFloat16).to(at::kFloat)));
  EXPECT_EQ(r.read("b")[0][0].item<float>(), 0.0078125f);  // bf16 0x3c00 is 2^-7
  EXPECT_EQ(r.find("q5")->type, TensorType::kOther);
  const std::string e = usage_error([&] { r.read("q5"); });
  EXPECT_EQ(e, path + ": tensor 'q5' has type Q5_1 (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)");
}

// Each bad file must give a UsageError that names the file and says what is wrong.
void expect_bad(const std::string& name, const std::string& bytes, const std::string& what) {
  const std::string path = temp_file(name, bytes);
  const std::string e = usage_error([&] { Reader r(path); });
  EXPECT_EQ(e.rfind(path + ": ", 0), 0u) << name << ": " << e;
  EXPECT_NE(e.find(what), std::string::npos) << name << ": " << e;
}

TEST_F(Gguf, BadFilesAreUsageErrorsNamingTheFile) {
  const std::string real = read_bytes(kGguf);
  expect_bad("half.gguf", real.substr(0, real.size() / 2), "runs past the end of the data section");
  expect_bad("header_only.gguf", real.substr(0, 100), "tensor count 48 cannot fit in the 88 bytes left in the file");
  expect_bad("in_the_tokens.gguf", real.substr(0, 3000), "GGUF key 'tokenizer.ggml.tokens': truncated: ");
  std::string magic = real;
  magic[3] = 'X';
  expect_bad("magic.gguf", magic, "not a GGUF file");
  expect_bad("empty.gguf", "", "not a GGUF file (empty)");
  std::string big_endian = real;
  big_endian[4] = 0, big_endian[7] = 1;
  expect_bad("big_endian.gguf", big_endian, "big-endian");
  std::string version = real;
  version[4] = 4;
  expect_bad("version.gguf", version, "GGUF version 4 is not supported");
  EXPECT_THROW(Reader("/nonexistent/model.gguf"), UsageError);

  auto one_tensor = [](uint32_t type, uint64_t ne0, size_t bytes) {
    Builder b(3);
    b.tensor("w", {ne0}, type, std::string(bytes, '\0'));
    return b;
  };
  Builder beyond = one_tensor(0, 8, 32);
  std::string file = beyond.build();
  const uint64_t far = uint64_t{1} << 40;
  std::memcpy(&file[beyond.last_offset_field()], &far, 8);
  expect_bad("beyond.gguf", file, "tensor 'w': data [1099511627776, 1099511627808) runs past the end");
  expect_bad("unknown_type.gguf", one_tensor(99, 8, 32).build(), "tensor 'w': ggml type 99 is not one this reader knows");
  expect_bad("partial_block.gguf", one_tensor(12, 100, 144).build(), "rows of 100 elements are not whole blocks of 256");

  std::string huge = Builder(3).build();
  const uint64_t count = uint64_t{1} << 60;
  std::memcpy(&huge[8], &count, 8);
  expect_bad("huge_tensor_count.gguf", huge, "tensor count 1152921504606846976 cannot fit");
  Builder long_array(3);
  long_array.array("a", ValueType::kString, count);
  expect_bad("huge_array.gguf", long_array.build(), "GGUF key 'a': array length 1152921504606846976 cannot fit");
  Builder long_string(3);
  long_string.length(long_string.key("s", ValueType::kString), count);
  expect_bad("huge_string.gguf", long_string.build(), "GGUF key 's': truncated: string needs 1152921504606846976 bytes");
}

TEST_F(Gguf, InconsistentHeadersAreUsageErrors) {
  Builder dup_key(3);
  dup_key.scalar<uint32_t>("k", ValueType::kUint32, 1);
  dup_key.scalar<uint32_t>("k", ValueType::kUint32, 2);
  expect_bad("dup_key.gguf", dup_key.build(), "GGUF key 'k': appears twice");
  Builder dup_name(3);
  dup_name.tensor("w", {8}, 0, std::string(32, '\0'));
  dup_name.tensor("w", {8}, 0, std::string(32, '\0'));
  expect_bad("dup_name.gguf", dup_name.build(), "tensor 'w': the name appears twice");
  Builder overlap(3);
  overlap.tensor("a", {8}, 0, std::string(32, '\0'));
  overlap.tensor("b", {8}, 0, std::string(32, '\0'));
  std::string file = overlap.build();
  const uint64_t zero = 0;
  std::memcpy(&file[overlap.last_offset_field()], &zero, 8);  // b's offset := a's
  expect_bad("overlap.gguf", file, "tensors 'a' and 'b' overlap");
  Builder misaligned(3);
  misaligned.scalar<uint32_t>("general.alignment", ValueType::kUint32, 64);
  misaligned.tensor("a", {8}, 0, std::string(32, '\0'));
  misaligned.tensor("b", {8}, 0, std::string(32, '\0'));  // at 32, aligned to 32 but not 64
  expect_bad("misaligned.gguf", misaligned.build(64), "tensor 'b': offset 32 is not a multiple of the alignment 64");
  Builder bad_alignment(3);
  bad_alignment.scalar<uint32_t>("general.alignment", ValueType::kUint32, 48);
  expect_bad("alignment.gguf", bad_alignment.build(), "general.alignment 48 is not a power of two");
  Builder bad_bool(3);
  bad_bool.scalar<uint8_t>("b", ValueType::kBool, 2);
  expect_bad("bool.gguf", bad_bool.build(), "GGUF key 'b': bool value 2 is neither 0 nor 1");
  Builder bad_type(3);
  bad_type.key("t", static_cast<ValueType>(13));
  expect_bad("value_type.gguf", bad_type.build(), "GGUF key 't': unknown value type 13");
  Builder dims(3);
  dims.tensor("w", {1, 1, 1, 1, 1}, 0, std::string(4, '\0'));
  expect_bad("dims.gguf", dims.build(), "tensor 'w': 5 dimensions");
  Builder overflow(3);
  overflow.tensor("w", {uint64_t{1} << 40, uint64_t{1} << 40}, 0, "");
  expect_bad("overflow.gguf", overflow.build(), "has more than 2^63 elements");
}

}  // namespace
}  // namespace universae::io::gguf
