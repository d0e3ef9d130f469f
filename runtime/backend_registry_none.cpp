// The backend registry of builds without CUDA (runtime/backend_registry.h): only the CPU backend exists.
#include "common/error.h"
#include "runtime/backend_registry.h"

namespace ecf8 {

bool cuda_built() { return false; }
int cuda_device_count() { return 0; }

std::unique_ptr<Backend> make_cuda_backend(int) {
    throw Error("the CUDA backend was asked for, but this ecf8 was built without CUDA");
}

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm, int) {
    throw Error("more than one rank on the CUDA backend needs NCCL, which this ecf8 was built without CUDA");
}

bool device_memory_info(Backend&, size_t*, size_t*) { return false; }

}  // namespace ecf8
