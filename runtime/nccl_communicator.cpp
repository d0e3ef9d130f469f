// NcclCommunicator: MPI bootstrap and the collectives as NCCL calls on one stream.
#include "runtime/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/mpi_communicator.h"

namespace ecf8 {
namespace {

ncclDataType_t nccl_type(ElemType type) {
    switch (type) {
        case ElemType::F32:
            return ncclFloat32;
        case ElemType::F64:
            return ncclFloat64;
        case ElemType::BF16:
            return ncclBfloat16;
        case ElemType::I32:
            return ncclInt32;
        case ElemType::I64:
            return ncclInt64;
        case ElemType::U8:
            return ncclUint8;
    }
    throw Error("NcclCommunicator: unknown element type");
}

}  // namespace

NcclCommunicator::NcclCommunicator(MPI_Comm mpi_comm, int device) : device_(device) {
    MPI_CHECK(MPI_Comm_rank(mpi_comm, &rank_));
    MPI_CHECK(MPI_Comm_size(mpi_comm, &size_));
    ncclUniqueId id{};
    if (rank_ == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, mpi_comm));
    CUDA_CHECK(cudaSetDevice(device_));
    cudaStream_t stream = nullptr;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    stream_ = stream;
    ncclComm_t comm = nullptr;
    const ncclResult_t init = ncclCommInitRank(&comm, size_, id, rank_);
    if (init != ncclSuccess) cudaStreamDestroy(stream);  // the destructor does not run for a failed constructor
    NCCL_CHECK(init);
    comm_ = comm;
    if (cudaMalloc(&scratch_, sizeof(float)) != cudaSuccess) {
        ncclCommDestroy(comm);
        cudaStreamDestroy(stream);
        throw Error("NcclCommunicator: cudaMalloc of 4 bytes failed on device " + std::to_string(device_));
    }
}

NcclCommunicator::~NcclCommunicator() {
    // Own stream, destroyed last: pending collectives finish before the communicator and stream go.
    cudaSetDevice(device_);
    cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
    ncclCommDestroy(static_cast<ncclComm_t>(comm_));
    cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
    cudaFree(scratch_);
}

void NcclCommunicator::all_reduce_sum(void* buf, size_t count, ElemType type) {
    NCCL_CHECK(ncclAllReduce(buf, buf, count, nccl_type(type), ncclSum, static_cast<ncclComm_t>(comm_),
                             static_cast<cudaStream_t>(stream_)));
}

void NcclCommunicator::all_gather(const void* send, void* recv, size_t count_per_rank, ElemType type) {
    NCCL_CHECK(ncclAllGather(send, recv, count_per_rank, nccl_type(type), static_cast<ncclComm_t>(comm_),
                             static_cast<cudaStream_t>(stream_)));
}

void NcclCommunicator::all_to_all(const void* send, void* recv, size_t count_per_rank, ElemType type) {
    std::vector<size_t> counts(size_, count_per_rank), displs(size_);
    for (int r = 0; r < size_; ++r) displs[r] = r * count_per_rank;
    all_to_allv(send, counts.data(), displs.data(), recv, counts.data(), displs.data(), type);
}

void NcclCommunicator::all_to_allv(const void* send, const size_t* send_counts, const size_t* send_displs, void* recv,
                                   const size_t* recv_counts, const size_t* recv_displs, ElemType type) {
    // NCCL has no all-to-all: one grouped send and receive per peer.
    const size_t bytes = elem_size(type);
    const auto* s = static_cast<const char*>(send);
    auto* r = static_cast<char*>(recv);
    auto comm = static_cast<ncclComm_t>(comm_);
    auto stream = static_cast<cudaStream_t>(stream_);
    NCCL_CHECK(ncclGroupStart());
    for (int peer = 0; peer < size_; ++peer) {
        if (send_counts[peer] > 0)
            NCCL_CHECK(ncclSend(s + send_displs[peer] * bytes, send_counts[peer], nccl_type(type), peer, comm, stream));
        if (recv_counts[peer] > 0)
            NCCL_CHECK(ncclRecv(r + recv_displs[peer] * bytes, recv_counts[peer], nccl_type(type), peer, comm, stream));
    }
    NCCL_CHECK(ncclGroupEnd());
}

void NcclCommunicator::broadcast(void* buf, size_t count, ElemType type, int root) {
    ECF8_CHECK(root >= 0 && root < size_, "broadcast root " << root << " is outside the group of " << size_);
    NCCL_CHECK(ncclBroadcast(buf, buf, count, nccl_type(type), root, static_cast<ncclComm_t>(comm_),
                             static_cast<cudaStream_t>(stream_)));
}

void NcclCommunicator::barrier() {
    all_reduce_sum(scratch_, 1, ElemType::F32);
    CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
}

}  // namespace ecf8
