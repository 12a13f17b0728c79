// MPI_Comm of a Comm, for the one library that must be handed a communicator (parallel HDF5).
#pragma once

#include <mpi.h>

#include "parallel/comm.hpp"

namespace universae::parallel {

inline MPI_Comm native(const Comm& comm) {
  return *static_cast<const MPI_Comm*>(comm.native_handle());
}

}  // namespace universae::parallel
