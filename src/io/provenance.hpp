// What an output was made from, recorded in it so that a file moved elsewhere (or read years later)
// still says which model, tokenizer and activation store it came from (docs/file-formats.md,
// "Provenance"). Inputs are named by absolute path and identified by content: SHA-256 and size.
//
// The same fields are written to an activation store's root (model, tokenizer), an SAE file's root
// (copied from its store, plus the store) and each /saes/<name> group of a results file (copied from
// the SAE, plus the SAE's own absolute path). No ATen, no MPI in the header.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace universae::parallel {
class Comm;
}

namespace universae::io {

class File;

struct Provenance {
  // The language model: an absolute path ("synthetic" for the synthetic source; for a foreign SAE,
  // the model_name its cfg.json gives), a short name, the checkpoint format, its size and SHA-256. A
  // directory model (Hugging Face) is identified by the files it is computed from: model_files lists
  // "<sha256>  <bytes>  <name>" for each, and model_sha256 is the SHA-256 of those lines.
  std::string model, model_name, model_format;
  int64_t model_bytes = 0;
  std::string model_sha256;
  std::vector<std::string> model_files;
  // The tokenizer file (absolute path; a directory's tokenizer.json) and its SHA-256.
  std::string tokenizer, tokenizer_sha256;
  // The activation store an SAE was trained on (absolute path) and the hash of its fingerprint (the
  // extraction settings and input identities; io/fingerprint.hpp): a store's content is not re-read.
  std::string store, store_fingerprint;
  // A foreign SAE (sparsify/SAELens directory): its weights file (absolute path) and SHA-256.
  std::string source, source_sha256;

  bool empty() const { return model.empty() && store.empty() && source.empty(); }
};

// The SHA-256 of a file's content as 64 lowercase hex digits. UsageError naming the file when it
// cannot be read.
std::string sha256_file(const std::string& path);
// The SHA-256 of a string (for tests and the manifest of a directory model).
std::string sha256_text(const std::string& text);

// The absolute, lexically normal form of a path (no file system access beyond the working directory).
std::string absolute_path(const std::string& path);

// A short name for a model: GGUF general.name when given, the "org/name" of a Hugging Face cache
// snapshot (models--org--name/snapshots/<rev>), else the file's stem or the directory's name.
std::string model_name_of(const std::string& path, const std::string& gguf_name = "");

// The model's provenance (model, model_name, model_format, model_bytes, model_sha256, model_files)
// and the tokenizer's, hashed on all ranks together (each file by one rank) and the same on every
// rank. A directory model counts config.json, the *.safetensors files and their index, and the
// tokenizer files in it: what the forward and the tokenizer are computed from (a pytorch_model.bin
// beside them is not read by universae, so not hashed).
Provenance identify_model(const parallel::Comm& comm, const std::string& model, const std::string& format,
                          const std::string& gguf_name, const std::string& tokenizer);

// Fills in source_sha256 when `source` is set and it is not (root hashes, every rank gets it).
void hash_source(const parallel::Comm& comm, Provenance& p);

// Writes the non-empty fields as attributes of `object` (model, model_name, ..., source_sha256).
void write_provenance(File& f, const std::string& object, const Provenance& p);
// Reads what write_provenance wrote; fields a file does not have stay empty (files of universae 0.6
// and older record only `model`, which in an SAE file named the store).
Provenance read_provenance(const File& f, const std::string& object);

}  // namespace universae::io
