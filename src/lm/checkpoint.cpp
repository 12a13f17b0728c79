// Which loader reads a checkpoint, and the shape check every loader shares.
#include "lm/checkpoint.hpp"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "io/gguf.hpp"
#include "io/text_file.hpp"

namespace universae::lm {

void expect_shape(const at::Tensor& t, const std::vector<int64_t>& shape, const std::string& file, const std::string& tensor,
                  const std::string& implied_by) {
  if (t.sizes().vec() == shape) return;
  throw UsageError(file + ": tensor '" + tensor + "' has shape " + io::shape_text(t.sizes().vec()) + ", but " +
                   implied_by + " implies " + io::shape_text(shape));
}

std::vector<at::Tensor*> norms_and_biases(Weights& w) {
  std::vector<at::Tensor*> out = {&w.final_norm.weight, &w.final_norm.bias, &w.classifier.bias};
  for (Block& b : w.blocks) {
    for (Norm* n : {&b.attn_norm, &b.mlp_norm}) out.push_back(&n->weight), out.push_back(&n->bias);
    for (Linear* l : {&b.q, &b.k, &b.v, &b.qkv, &b.o, &b.gate, &b.up, &b.down}) out.push_back(&l->bias);
  }
  std::vector<at::Tensor*> defined;
  for (at::Tensor* t : out)
    if (t->defined()) defined.push_back(t);
  return defined;
}

at::Tensor dense_weight(const Linear& l, at::ScalarType dtype) {
  if (l.quantized >= 0) {
    const at::Tensor out = io::gguf::dequantize_blocks(l.weight, static_cast<io::gguf::TensorType>(l.quantized), l.shape);
    return dtype == at::kFloat ? out : out.to(dtype);
  }
  return l.weight.scalar_type() == dtype ? l.weight : l.weight.to(dtype);
}

namespace {

Checkpoint load_any(const std::string& path) {
  if (std::filesystem::is_directory(path)) return load_huggingface(path);
  char magic[4] = {};
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(path + ": cannot open the model (a Hugging Face model directory, a .gguf file or a llama2.c checkpoint)");
  in.read(magic, 4);
  if (in && std::string(magic, 4) == "GGUF") return load_gguf(path);
  return load_llama2c(path);
}

}  // namespace

Checkpoint load_checkpoint(const std::string& path, ComputeDtype compute, at::Device device) {
  Checkpoint ck = load_any(path);
  const at::ScalarType type = compute == ComputeDtype::kBFloat16 ? at::kBFloat16 : at::kFloat;
  for (at::Tensor* t : norms_and_biases(ck.weights)) *t = t->to(device, type);  // on the CPU the matrices convert as used
  if (device.is_cpu()) return ck;
  Weights& w = ck.weights;
  auto move = [&](Linear& l) {
    if (!l.weight.defined()) return;
    l.weight = dense_weight(l, type).to(device);
    l.quantized = -1;
  };
  const bool tied = w.classifier.weight.is_same(w.embedding);
  w.embedding = w.embedding.to(device);
  if (tied) w.classifier.weight = w.embedding.to(type);  // one copy of a tied matrix when it is already the compute type
  else move(w.classifier);
  for (Block& b : w.blocks)
    for (Linear* l : {&b.q, &b.k, &b.v, &b.qkv, &b.o, &b.gate, &b.up, &b.down}) move(*l);
  return ck;
}

}  // namespace universae::lm
