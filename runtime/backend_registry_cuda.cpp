// The backend registry of CUDA builds (runtime/backend_registry.h).
#include "common/error.h"
#include "runtime/backend_registry.h"
#include "runtime/cuda_backend.h"
#ifdef ECF8_HAVE_NCCL
#include "runtime/nccl_communicator.h"
#endif

namespace ecf8 {

bool cuda_built() { return true; }

int cuda_device_count() { return CudaBackend::device_count(); }

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<CudaBackend>(device); }

std::unique_ptr<Communicator> make_nccl_communicator([[maybe_unused]] MPI_Comm mpi_comm, [[maybe_unused]] int device) {
#ifdef ECF8_HAVE_NCCL
    return std::make_unique<NcclCommunicator>(mpi_comm, device);
#else
    throw Error("more than one rank on the CUDA backend needs NCCL, which this ecf8 was built without");
#endif
}

bool device_memory_info(Backend& backend, size_t* free_bytes, size_t* total_bytes) {
    if (backend.kind() != BackendKind::Cuda) return false;
    static_cast<CudaBackend&>(backend).memory_info(free_bytes, total_bytes);
    return true;
}

}  // namespace ecf8
