// The backends this build has, for code that must not know whether it was built with CUDA (the launcher,
// benchmarks): the CUDA backend and the NCCL communicator are made here or refused with a clear error.
// backend_registry_cuda.cpp implements it in CUDA builds, backend_registry_none.cpp otherwise.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <memory>

#include "runtime/backend.h"
#include "runtime/communicator.h"

namespace ecf8 {

// True when this ecf8 was built with CUDA.
bool cuda_built();
// CUDA devices visible to this process; 0 without a driver, a device, or CUDA in the build. Never throws.
int cuda_device_count();
// The CUDA backend on `device`; throws naming the reason where the build or the machine has none.
std::unique_ptr<Backend> make_cuda_backend(int device);
// The NCCL communicator of mpi_comm on `device` (collective over mpi_comm); throws where NCCL is missing.
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm mpi_comm, int device);
// Free and total bytes of a CUDA backend's device; false for other backends.
bool device_memory_info(Backend& backend, size_t* free_bytes, size_t* total_bytes);

}  // namespace ecf8
