#include "io/fingerprint.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/rng.hpp"
#include "io/h5.hpp"

namespace universae::io {
namespace fs = std::filesystem;

namespace {

constexpr uintmax_t kHashedFileBytes = uintmax_t{64} << 20;  // larger inputs are named by size and mtime

std::string hex(uint64_t h) { return fmt::format("{:016x}", h); }

std::string file_identity(const fs::path& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return "unreadable";
  if (const auto fp = root_string(path.string(), "fingerprint")) {
    const std::string format = root_string(path.string(), "format").value_or("hdf5");
    return format + " " + fingerprint_hash(*fp);
  }
  if (size > kHashedFileBytes) {
    const auto mtime = fs::last_write_time(path, ec).time_since_epoch();
    return fmt::format("file of {} bytes modified {}", size, std::chrono::duration_cast<std::chrono::nanoseconds>(mtime).count());
  }
  std::ifstream in(path, std::ios::binary);
  uint64_t h = core::fnv1a64("");
  std::vector<char> block(1 << 20);
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    h = core::fnv1a64(std::string_view(block.data(), static_cast<size_t>(in.gcount())), h);
  }
  return fmt::format("file of {} bytes, content {}", size, hex(h));
}

}  // namespace

std::string fingerprint_hash(const std::string& fingerprint) { return hex(core::fnv1a64(fingerprint)); }

std::string input_identity(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return file_identity(path);
  if (!fs::is_directory(path, ec)) return "missing";
  std::vector<std::string> lines;
  for (const auto& entry : fs::directory_iterator(path, ec))
    if (entry.is_regular_file(ec)) lines.push_back(entry.path().filename().string() + ": " + file_identity(entry.path()));
  std::sort(lines.begin(), lines.end());
  std::string all;
  for (const auto& line : lines) all += line + "\n";
  return fmt::format("directory of {} files, {}", lines.size(), hex(core::fnv1a64(all)));
}

std::string reuse_problem(const std::string& path, const std::string& fingerprint) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return "missing";
  if (!is_complete(path)) return "incomplete";
  const auto stored = root_string(path, "fingerprint");
  if (!stored) return "written by an older universae (no fingerprint)";
  return *stored == fingerprint ? "" : "made with other settings";
}

bool resumable(const std::string& path, const std::string& fingerprint) {
  const auto stored = root_string(path, "fingerprint");
  return stored && *stored == fingerprint;
}

}  // namespace universae::io
