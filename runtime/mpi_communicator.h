// MpiCommunicator: the Communicator over an MPI communicator, for host buffers.
// It owns a duplicate of the communicator it is given, whose error handler is MPI_ERRORS_RETURN, so a
// failing MPI call becomes an ecf8::Error (through MPI_CHECK) instead of aborting the job.
// MPI must be initialized first (launcher/mpi_world.h: MpiSession). One thread at a time may use a given
// MpiCommunicator; distinct communicators may be used from distinct threads under MPI_THREAD_MULTIPLE.
#pragma once

// Only the C API is used; skip the deprecated C++ bindings (they warn under -Wcast-function-type).
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <memory>
#include <string>

#include "runtime/communicator.h"

namespace ecf8 {

// The text MPI gives for an error code (MPI_Error_string). MPI_CHECK in common/error.h calls it.
std::string mpi_error_string(int code);

class MpiCommunicator : public Communicator {
public:
    // Duplicates `comm` (collective over comm).
    explicit MpiCommunicator(MPI_Comm comm);
    ~MpiCommunicator() override;

    // A communicator over all ranks (duplicates MPI_COMM_WORLD; collective).
    static std::unique_ptr<MpiCommunicator> world();

    // Splits this group into subgroups by color (>= 0); ranks within a subgroup are ordered by key, then
    // by rank here. Collective over this group. For tp/ep groups: split(w.ep_group(), w.ep_rank()).
    std::unique_ptr<MpiCommunicator> split(int color, int key) const;

    MPI_Comm comm() const { return comm_; }  // for bootstrap code (e.g. broadcasting an NCCL unique id)

    int rank() const override { return rank_; }
    int size() const override { return size_; }

    void all_reduce_sum(void* buf, size_t count, ElemType type) override;
    void all_gather(const void* send, void* recv, size_t count_per_rank, ElemType type) override;
    void all_to_all(const void* send, void* recv, size_t count_per_rank, ElemType type) override;
    void all_to_allv(const void* send, const size_t* send_counts, const size_t* send_displs, void* recv,
                     const size_t* recv_counts, const size_t* recv_displs, ElemType type) override;
    void broadcast(void* buf, size_t count, ElemType type, int root) override;
    void barrier() override;

private:
    struct Adopt {};
    MpiCommunicator(MPI_Comm owned, Adopt);  // takes ownership of `owned` without duplicating it
    void init_owned();                       // sets the error handler, caches rank and size

    MPI_Comm comm_ = MPI_COMM_NULL;
    int rank_ = 0;
    int size_ = 1;
};

}  // namespace ecf8
