// The weights of a language model in one layout whatever file they came from, and the loaders that
// fill it: llama2.c files (lm/llama2c_checkpoint.cpp), Hugging Face directories
// (lm/hf_checkpoint.cpp) and GGUF files (lm/gguf_checkpoint.cpp). Every matrix is (out, in) as
// torch.nn.Linear holds it; an absent bias is an undefined tensor.
//
// Matrices (and the embedding) stay as stored: read-only views of the memory-mapped file in F32,
// F16 or BF16, or a GGUF tensor's quantized blocks, so the ranks on a node share one copy in the page
// cache; the forward converts each to the compute type when it multiplies by it (dense_weight).
// Norm weights and biases, small, are converted to the compute type once, by load_checkpoint for
// every loader; the loaders themselves know nothing of the compute type.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "lm/model.hpp"

namespace universae::lm {

struct Linear {
  at::Tensor weight, bias;  // (out, in) as stored (or GGUF blocks as uint8 bytes, see quantized), (out) or undefined
  int quantized = -1;       // an io::gguf::TensorType when `weight` holds its quantized blocks
  std::vector<int64_t> shape;  // (out, in) of a quantized weight
  static Linear of(at::Tensor weight, at::Tensor bias = at::Tensor()) {
    Linear l;
    l.weight = std::move(weight), l.bias = std::move(bias);
    return l;
  }
};

// The weight in `dtype`: the stored tensor itself when it is already, else converted (dequantized).
at::Tensor dense_weight(const Linear& l, at::ScalarType dtype);

struct Norm {
  at::Tensor weight, bias;  // (d), (d) or undefined (RMSNorm)
};

struct Block {
  Norm attn_norm, mlp_norm;
  // Llama family: q, k, v separately. GPT-NeoX: qkv fused, rows per head [q(hs), k(hs), v(hs)].
  Linear q, k, v, qkv, o;
  Linear gate, up, down;  // gate undefined without a gated MLP
};

struct Weights {
  at::Tensor embedding;  // (vocab, d)
  std::vector<Block> blocks;
  Norm final_norm;
  Linear classifier;  // (vocab, d); the embedding itself when tied
};

struct Checkpoint {
  ModelConfig config;
  Weights weights;
};

// Every defined norm weight and bias (what is held in the compute type).
std::vector<at::Tensor*> norms_and_biases(Weights& w);

// Dispatches on what `path` is: a directory (Hugging Face), a file starting "GGUF", else llama2.c;
// then converts the norms and biases to the compute type. On a device other than the CPU every
// tensor goes there, the matrices converted to the compute type (quantized GGUF blocks dequantized)
// once at load: a device holds the dense model; the CPU keeps the shared mapping and converts per product.
Checkpoint load_checkpoint(const std::string& path, ComputeDtype compute, at::Device device = at::kCPU);

Checkpoint load_llama2c(const std::string& path);
Checkpoint load_huggingface(const std::string& dir);
Checkpoint load_gguf(const std::string& path);

// Checks that a loaded tensor has the shape the configuration implies: a UsageError naming the file,
// the tensor and the configuration it disagrees with otherwise.
void expect_shape(const at::Tensor& t, const std::vector<int64_t>& shape, const std::string& file, const std::string& tensor,
                  const std::string& implied_by);

}  // namespace universae::lm
