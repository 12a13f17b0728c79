// Where outputs go and how they appear (DESIGN.md §5): output directories (created before the work,
// removed again when input is refused), the free-space check, and the one atomic publish every stage
// uses for files, directories and resumable partial files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "parallel/comm.hpp"

namespace universae::io {

// Collective: rank 0 creates `dir` (and parents); a failure is a UsageError on every rank, raised
// before any long computation starts. The directories it creates are remembered so that a run
// refused later leaves nothing behind (remove_created_directories).
void ensure_directory(const parallel::Comm& comm, const std::string& dir);
// Removes the directories ensure_directory created in this process that are still empty, deepest
// first; never removes a file or a directory that has one. main() calls it when input is refused.
void remove_created_directories();
// Collective: refuses (UsageError on every rank) when the file system holding `dir` has less than
// `bytes` free for `what`, naming the directory, the need and the room, before the work starts.
void ensure_space(const parallel::Comm& comm, const std::string& dir, int64_t bytes, const std::string& what);
// Bytes free to this user on the file system holding `dir` ("" = the working directory); -1 if unknown.
double free_bytes(const std::string& dir);

// What an unfinished output leaves behind when its Pending goes away without commit().
enum class OnAbandon {
  kRemove,  // nothing: the partial file or directory is deleted
  kKeep,    // a resumable partial output stays for the next run (an interrupted extraction's store)
};

// The one atomic publish. An output (a file or a directory) is written under partial() =
// "<final>.partial" and moved to its final name by commit(), so a crash never leaves anything that
// looks finished under a final name. With a communicator the commit is collective (every rank has
// closed its handles; rank 0 renames; a failure is a UsageError on every rank); without one this
// process alone publishes. commit() replaces whatever is at the final name (a directory too).
// A non-resumable Pending starts by removing a stale partial output of an earlier crashed run.
class Pending {
 public:
  explicit Pending(std::string final_path, OnAbandon on_abandon = OnAbandon::kRemove);
  Pending(const parallel::Comm& comm, std::string final_path, OnAbandon on_abandon = OnAbandon::kRemove);
  ~Pending();
  Pending(const Pending&) = delete;
  Pending& operator=(const Pending&) = delete;

  const std::string& partial() const { return partial_; }
  const std::string& final_path() const { return final_; }
  // Moves partial() to final_path(). Throws UsageError naming the path when it cannot.
  void commit();
  // As commit(), but reports failure as false (the partial output is removed) instead of throwing.
  [[nodiscard]] bool try_commit();

 private:
  std::string rename_error();  // "" or what went wrong, on the publishing process
  std::optional<parallel::Comm> comm_;
  std::string final_, partial_;
  OnAbandon on_abandon_;
  bool committed_ = false;
};

// A small text output (CSV tables, job scripts, manifests) through Pending: false when it could not
// be written (then `path` keeps whatever it held before). `executable` adds the execute bits.
[[nodiscard]] bool publish_text(const std::string& path, const std::string& text, bool executable = false);

}  // namespace universae::io
