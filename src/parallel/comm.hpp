// The MPI layer: the only code that calls MPI (DESIGN.md §2). Callers see plain C++ types.
//
// Environment owns MPI for the life of the process (Boost.MPI environment, MPI_THREAD_SERIALIZED:
// LibTorch's OpenMP threads never call MPI; extraction's writer thread does, while the main thread
// does not). Comm is a cheap, copyable handle to a communicator;
// sub-communicators made with split() are freed when their last copy goes away.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/exact_sum.hpp"

namespace universae::parallel {

class Comm {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }

  // Ranks with the same color form a new communicator, ordered by key.
  Comm split(int color, int key) const;
  // The ranks of this communicator on this node (MPI_COMM_TYPE_SHARED), in rank order: its rank is
  // the local rank that picks a GPU.
  Comm node_local() const;
  void barrier() const;

  double allreduce_sum(double value) const;
  int64_t allreduce_sum(int64_t value) const;
  double allreduce_max(double value) const;
  void allreduce_sum(double* values, int64_t n) const;
  void allreduce_sum(int64_t* values, int64_t n) const;
  void allreduce_max(float* values, int64_t n) const;
  void allreduce_sum(float* values, int64_t n) const;
  void allreduce_min(double* values, int64_t n) const;
  void allreduce_min(int64_t* values, int64_t n) const;
  // Exact sum of 128-bit fixed-point integers: associative, so the result is bit-identical for
  // any number of ranks (see core/exact_sum.hpp).
  void allreduce_sum(core::wide_int* values, int64_t n) const;
  // Element-wise max with its index; on equal values the lowest index wins (MPI_MAXLOC).
  void allreduce_maxloc(float* values, int64_t* index, int64_t n) const;

  // Every rank contributes `local` (its contiguous piece, in rank order); all receive the whole.
  std::vector<float> allgatherv(const std::vector<float>& local) const;
  std::vector<int64_t> allgatherv(const std::vector<int64_t>& local) const;
  std::vector<double> allgatherv(const std::vector<double>& local) const;
  std::vector<int32_t> allgatherv(const std::vector<int32_t>& local) const;

  void broadcast(std::string& value, int root) const;
  void broadcast(int64_t* values, int64_t n, int root) const;

  // Host name, for error messages.
  static std::string host_name();

  // Opaque MPI_Comm for the HDF5 layer (parallel/native.hpp turns it back into MPI_Comm).
  const void* native_handle() const;

 private:
  friend class Environment;
  struct Handle;
  explicit Comm(std::shared_ptr<Handle> handle);
  std::shared_ptr<Handle> handle_;
  int rank_ = 0;
  int size_ = 1;
};

class Environment {
 public:
  Environment(int& argc, char**& argv);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  static Comm world();
  // Ends every rank of the job: for a failure that only this rank has seen.
  [[noreturn]] static void abort(int exit_code);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether a second thread may make MPI calls (and so HDF5's MPI-IO) while the main thread makes none:
// MPI_THREAD_SERIALIZED or more was provided. The environment asks for it; an MPI that provides less
// gets every such call on the main thread (extraction then writes in the foreground).
bool threads_may_call_mpi();

// Errors seen by some ranks only (a file one rank could not read) become errors every rank
// reaches: each rank passes its own message ("" when fine); if any is non-empty, every rank
// throws UsageError with the message of the lowest failing rank. A collective: call on all ranks.
void agree_on_error(const Comm& comm, const std::string& local_error);
// The same for a failure that is not the user's input (a write that failed): every rank throws
// InternalError with the lowest failing rank's message, so that every rank unwinds, and closes its
// files collectively, together instead of one rank waiting in a collective the others never reach.
void agree_on_failure(const Comm& comm, const std::string& local_error);

}  // namespace universae::parallel
