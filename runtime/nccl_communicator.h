// NcclCommunicator: the Communicator interface on NCCL, for device buffers, bootstrapped through MPI (rank
// 0 of the MPI group makes the ncclUniqueId and broadcasts it). One per group: the tensor-parallel world
// and, with expert parallelism, the ep groups (split the MPI communicator first, then build one each).
//
// Unlike MpiCommunicator, every collective is enqueued on the communicator's own CUDA stream and returns at
// once: results are ready when that stream reaches them, so callers order them with their streams by
// events. barrier() is the exception: it waits on the host.
// Compiled only when CUDA and NCCL are found.
#pragma once

#include <mpi.h>

#include "runtime/communicator.h"

namespace ecf8 {

class NcclCommunicator final : public Communicator {
public:
    // Collective over mpi_comm. device: this rank's CUDA device. The communicator creates its own stream
    // and destroys it last, so its lifetime never depends on a backend's streams.
    NcclCommunicator(MPI_Comm mpi_comm, int device);
    ~NcclCommunicator() override;

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    // The cudaStream_t (as void*) the collectives run on; callers order it with their streams by events.
    void* stream() const { return stream_; }
    void* native_stream() const override { return stream_; }

    void all_reduce_sum(void* buf, size_t count, ElemType type) override;
    void all_gather(const void* send, void* recv, size_t count_per_rank, ElemType type) override;
    void all_to_all(const void* send, void* recv, size_t count_per_rank, ElemType type) override;
    void all_to_allv(const void* send, const size_t* send_counts, const size_t* send_displs, void* recv,
                     const size_t* recv_counts, const size_t* recv_displs, ElemType type) override;
    void broadcast(void* buf, size_t count, ElemType type, int root) override;
    void barrier() override;

private:
    void* comm_ = nullptr;     // ncclComm_t
    void* stream_ = nullptr;   // cudaStream_t
    void* scratch_ = nullptr;  // one device float for barrier()
    int device_ = 0;
    int rank_ = 0;
    int size_ = 1;
};

}  // namespace ecf8
