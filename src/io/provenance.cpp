#include "io/provenance.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <utility>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "parallel/comm.hpp"
#include "parallel/log.hpp"

namespace universae::io {
namespace {

namespace fs = std::filesystem;

std::string hex(const unsigned char* bytes, unsigned int n) {
  static const char* digits = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (unsigned int i = 0; i < n; ++i) out[2 * i] = digits[bytes[i] >> 4], out[2 * i + 1] = digits[bytes[i] & 15];
  return out;
}

struct Digest {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  Digest() {
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) throw InternalError("OpenSSL: SHA-256 is unavailable");
  }
  void update(const void* data, size_t n) {
    if (EVP_DigestUpdate(ctx.get(), data, n) != 1) throw InternalError("OpenSSL: SHA-256 update failed");
  }
  std::string finish() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(ctx.get(), md, &n) != 1) throw InternalError("OpenSSL: SHA-256 final failed");
    return hex(md, n);
  }
};

// The files a directory model is computed from, by name: its configuration, weights and tokenizer.
bool counts_for_model(const std::string& name) {
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return name == "config.json" || name == "tokenizer.json" || name == "tokenizer_config.json" || ends_with(".safetensors") ||
         name == "model.safetensors.index.json";
}

// The file a tokenizer path names (a directory holds tokenizer.json), as lm::open_tokenizer reads it.
std::string tokenizer_file(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) ? (fs::path(path) / "tokenizer.json").string() : path;
}

int64_t size_of(const std::string& path) {
  std::error_code ec;
  const auto n = fs::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

}  // namespace

std::string sha256_file(const std::string& path) {
  std::unique_ptr<FILE, decltype(&std::fclose)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw UsageError(path + ": cannot be read to compute its SHA-256");
  Digest d;
  std::vector<char> buffer(size_t{8} << 20);
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), f.get())) > 0) d.update(buffer.data(), n);
  if (std::ferror(f.get())) throw UsageError(path + ": read error while computing its SHA-256");
  return d.finish();
}

std::string sha256_text(const std::string& text) {
  Digest d;
  d.update(text.data(), text.size());
  return d.finish();
}

std::string absolute_path(const std::string& path) {
  if (path.empty() || path == "synthetic") return path;
  std::error_code ec;
  const fs::path p = fs::absolute(path, ec);
  return (ec ? fs::path(path) : p).lexically_normal().string();
}

std::string model_name_of(const std::string& path, const std::string& gguf_name) {
  if (!gguf_name.empty()) return gguf_name;
  fs::path p = fs::path(absolute_path(path));
  if (!p.has_filename()) p = p.parent_path();  // "dir/"
  std::error_code ec;
  if (fs::is_directory(p, ec)) {
    // The Hugging Face cache: .../models--org--name/snapshots/<revision>
    const fs::path repo = p.parent_path().parent_path();
    const std::string dir = repo.filename().string();
    if (p.parent_path().filename() == "snapshots" && dir.rfind("models--", 0) == 0) {
      std::string name = dir.substr(8);
      for (size_t at = name.find("--"); at != std::string::npos; at = name.find("--", at + 1)) name.replace(at, 2, "/");
      return name;
    }
    return p.filename().string();
  }
  return p.stem().string();
}

Provenance identify_model(const parallel::Comm& comm, const std::string& model, const std::string& format,
                          const std::string& gguf_name, const std::string& tokenizer) {
  Provenance p;
  p.model = absolute_path(model);
  p.model_name = model_name_of(model, gguf_name);
  p.model_format = format;
  // Rank 0 lists the model's files; every rank hashes its share of that one list (node-local copies
  // of a directory need not list alike).
  int64_t directory = 0;
  std::string listing, error;
  if (comm.is_root()) {
    std::error_code ec;
    directory = fs::is_directory(model, ec) ? 1 : 0;
    if (directory) {
      try {
        std::vector<std::string> found;
        for (const auto& entry : fs::directory_iterator(model))
          if (entry.is_regular_file(ec) && counts_for_model(entry.path().filename().string()))
            found.push_back(absolute_path(entry.path().string()));
        std::sort(found.begin(), found.end());
        for (const auto& f : found) listing += f + "\n";
      } catch (const fs::filesystem_error& e) {
        error = model + ": cannot list the model's files (" + e.what() + ")";
      }
    }
  }
  parallel::agree_on_error(comm, error);
  comm.broadcast(&directory, 1, 0);
  comm.broadcast(listing, 0);
  std::vector<std::string> files;  // absolute paths; the tokenizer's last
  for (size_t at = 0, end; (end = listing.find('\n', at)) != std::string::npos; at = end + 1) files.push_back(listing.substr(at, end - at));
  if (!directory) files = {p.model};
  const size_t n_model = files.size();
  if (!tokenizer.empty()) {
    p.tokenizer = absolute_path(tokenizer_file(tokenizer));
    files.push_back(p.tokenizer);
  }
  int64_t bytes = 0;
  for (size_t i = 0; i < files.size(); ++i) bytes += size_of(files[i]);
  if (bytes > (int64_t{1} << 30))
    log::info("hashing {} ({:.1f} GB in {} files) for the provenance the outputs record", model, static_cast<double>(bytes) * 1e-9,
              files.size());
  // Each file by one rank; every rank ends with every digest.
  std::vector<std::string> digests(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    if (static_cast<int>(i % static_cast<size_t>(comm.size())) != comm.rank()) continue;
    try {
      digests[i] = sha256_file(files[i]);
    } catch (const UsageError& e) {
      error = e.what();
    }
  }
  parallel::agree_on_error(comm, error);
  for (size_t i = 0; i < files.size(); ++i) comm.broadcast(digests[i], static_cast<int>(i % static_cast<size_t>(comm.size())));

  if (!directory) {
    p.model_bytes = size_of(files[0]);
    p.model_sha256 = digests[0];
  } else {
    std::string manifest;
    for (size_t i = 0; i < n_model; ++i) {
      const int64_t n = size_of(files[i]);
      p.model_bytes += n;
      p.model_files.push_back(fmt::format("{}  {}  {}", digests[i], n, fs::path(files[i]).filename().string()));
      manifest += p.model_files.back() + "\n";
    }
    p.model_sha256 = sha256_text(manifest);
  }
  if (!tokenizer.empty()) p.tokenizer_sha256 = digests.back();
  return p;
}

void hash_source(const parallel::Comm& comm, Provenance& p) {
  if (p.source.empty() || !p.source_sha256.empty()) return;
  std::string error;
  if (comm.is_root()) {
    try {
      p.source_sha256 = sha256_file(p.source);
    } catch (const UsageError& e) {
      error = e.what();
    }
  }
  parallel::agree_on_error(comm, error);
  comm.broadcast(p.source_sha256, 0);
}

// The text fields, by attribute name: what write_provenance writes and read_provenance reads.
constexpr std::pair<const char*, std::string Provenance::*> kTextFields[] = {
    {"model", &Provenance::model},
    {"model_name", &Provenance::model_name},
    {"model_format", &Provenance::model_format},
    {"model_sha256", &Provenance::model_sha256},
    {"tokenizer", &Provenance::tokenizer},
    {"tokenizer_sha256", &Provenance::tokenizer_sha256},
    {"store", &Provenance::store},
    {"store_fingerprint", &Provenance::store_fingerprint},
    {"source", &Provenance::source},
    {"source_sha256", &Provenance::source_sha256},
};

void write_provenance(File& f, const std::string& object, const Provenance& p) {
  for (const auto& [name, field] : kTextFields)
    if (!(p.*field).empty()) f.write_attr(object, name, p.*field);
  if (p.model_bytes > 0) f.write_attr(object, "model_bytes", p.model_bytes);
  if (!p.model_files.empty()) f.write_attr(object, "model_files", p.model_files);
}

Provenance read_provenance(const File& f, const std::string& object) {
  Provenance p;
  for (const auto& [name, field] : kTextFields)
    if (f.has_attr(object, name)) p.*field = f.read_attr_string(object, name);
  if (f.has_attr(object, "model_bytes")) p.model_bytes = f.read_attr_int(object, "model_bytes");
  if (f.has_attr(object, "model_files")) p.model_files = f.read_attr_strings(object, "model_files");
  return p;
}

}  // namespace universae::io
