#include "io/output.hpp"

#include <fmt/format.h>
#include <sys/statvfs.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.hpp"

namespace universae::io {
namespace fs = std::filesystem;

namespace {
std::vector<fs::path>& created_directories() {
  static std::vector<fs::path> created;
  return created;
}
}  // namespace

double free_bytes(const std::string& dir) {
  struct statvfs info {};
  if (statvfs(dir.empty() ? "." : dir.c_str(), &info) != 0) return -1;
  return static_cast<double>(info.f_bavail) * static_cast<double>(info.f_frsize);
}

void remove_created_directories() {
  auto& created = created_directories();
  std::error_code ec;
  for (auto it = created.rbegin(); it != created.rend(); ++it)
    if (fs::is_directory(*it, ec) && fs::is_empty(*it, ec)) fs::remove(*it, ec);
  created.clear();
}

void ensure_directory(const parallel::Comm& comm, const std::string& dir) {
  std::string error;
  if (comm.is_root() && !dir.empty()) {
    std::error_code ec;
    std::vector<fs::path> missing;  // the components this call creates, outermost first
    for (auto p = fs::absolute(dir, ec); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
      missing.insert(missing.begin(), p);
      if (p == p.parent_path()) break;
    }
    fs::create_directories(dir, ec);
    if (!ec) created_directories().insert(created_directories().end(), missing.begin(), missing.end());
    if (ec) {
      error = dir + ": cannot create output directory (" + ec.message() + ")";
    } else {
      // Prove it is writable now rather than after hours of work.
      const auto probe = fs::path(dir) / ".universae-write-test";
      FILE* f = std::fopen(probe.c_str(), "w");
      if (!f) error = dir + ": output directory is not writable";
      if (f) std::fclose(f), fs::remove(probe, ec);
    }
  }
  parallel::agree_on_error(comm, error);
}

void ensure_space(const parallel::Comm& comm, const std::string& dir, int64_t bytes, const std::string& what) {
  std::string error;
  if (comm.is_root()) {
    const double free = free_bytes(dir);
    if (free >= 0 && free < static_cast<double>(bytes))
      error = fmt::format("{}: not enough free space for {}: needs {:.3g} GB, the file system has {:.3g} GB free",
                          dir.empty() ? "." : dir, what, static_cast<double>(bytes) * 1e-9, free * 1e-9);
  }
  parallel::agree_on_error(comm, error);
}

Pending::Pending(std::string final_path, OnAbandon on_abandon)
    : final_(std::move(final_path)), partial_(final_ + ".partial"), on_abandon_(on_abandon) {
  std::error_code ec;
  if (on_abandon_ == OnAbandon::kRemove) fs::remove_all(partial_, ec);
}

Pending::Pending(const parallel::Comm& comm, std::string final_path, OnAbandon on_abandon)
    : comm_(comm), final_(std::move(final_path)), partial_(final_ + ".partial"), on_abandon_(on_abandon) {
  std::error_code ec;
  if (on_abandon_ == OnAbandon::kRemove && comm.is_root()) fs::remove_all(partial_, ec);
  comm.barrier();  // nobody writes the partial output before a stale one is gone
}

Pending::~Pending() {
  if (committed_ || on_abandon_ == OnAbandon::kKeep || (comm_ && !comm_->is_root())) return;
  std::error_code ignored;
  fs::remove_all(partial_, ignored);
}

std::string Pending::rename_error() {
  std::error_code ec;
  if (fs::is_directory(final_, ec) && fs::is_directory(partial_, ec)) fs::remove_all(final_, ec);
  fs::rename(partial_, final_, ec);
  return ec ? final_ + ": cannot publish (" + ec.message() + ")" : "";
}

void Pending::commit() {
  std::string error;
  if (comm_) {
    comm_->barrier();  // every rank has closed its handles on the partial output
    if (comm_->is_root()) error = rename_error();
    parallel::agree_on_error(*comm_, error);
  } else {
    error = rename_error();
    if (!error.empty()) throw UsageError(error);
  }
  committed_ = true;
}

bool Pending::try_commit() {
  try {
    commit();
    return true;
  } catch (const UsageError&) {
    return false;
  }
}

bool publish_text(const std::string& path, const std::string& text, bool executable) {
  Pending pending(path);
  {
    std::ofstream out(pending.partial());
    out << text;
    if (!out) return false;
  }
  std::error_code ec;
  if (executable)
    fs::permissions(pending.partial(), fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                    fs::perm_options::add, ec);
  return !ec && pending.try_commit();
}

}  // namespace universae::io
