// GPU collectives (DESIGN.md §3, §6): one GPU per rank, an NCCL communicator per MPI communicator.
//
// Built only with UNIVERSAE_NCCL (the `cuda` preset). Like the rest of parallel/, callers see no
// NCCL or CUDA types: streams and device pointers travel as void*. No LibTorch here either, so this
// layer and its tests build and run against the CUDA toolkit alone.
//
// The pattern (after NCCL's own examples and PyTorch's ProcessGroupNCCL): rank 0 makes the unique
// id and broadcasts it over MPI; each NcclComm owns a dedicated stream. A reduction waits on an event
// recorded on the caller's compute stream, runs on the NCCL stream, and records an event the compute
// stream then waits on, so compute and communication overlap without a host synchronisation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "parallel/comm.hpp"

namespace universae::parallel {

// The device this rank uses: its rank among the ranks on its node, modulo the visible devices;
// selected as the current device. Throws (naming rank and host) when no device is visible.
int select_device(const Comm& world);

// Number of visible CUDA devices (0 when there is no driver or no device).
int device_count();

// Makes `device` this thread's current CUDA device (NCCL communicators bind to it when made).
void use_device(int device);

class NcclComm {
 public:
  // Collective over `comm`: every rank must have selected its device first.
  explicit NcclComm(const Comm& comm);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }

  // In-place sum of `n` device values. Ordered after the work already queued on `compute_stream`
  // (a cudaStream_t; nullptr = the legacy default stream); work queued on it afterwards sees the
  // result. Returns without waiting for the reduction.
  void allreduce_sum(float* device_values, int64_t n, void* compute_stream) const;
  void allreduce_sum(double* device_values, int64_t n, void* compute_stream) const;
  // Element-wise max (the statistics' column maxima) and min (batchtopk's smallest kept activation).
  void allreduce_max(float* device_values, int64_t n, void* compute_stream) const;
  void allreduce_min(double* device_values, int64_t n, void* compute_stream) const;
  // Every rank's `n` values into `device_out` (size() · n), in rank order (the latent shards' top-k candidates).
  void allgather(const float* device_values, float* device_out, int64_t n, void* compute_stream) const;
  // Root's `n` device values to every rank.
  void broadcast(float* device_values, int64_t n, int root, void* compute_stream) const;

  // Blocks until every reduction issued so far has finished.
  void synchronize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, size_ = 1;
};

}  // namespace universae::parallel
