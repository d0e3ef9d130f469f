// MpiSession: MPI's lifetime (MPI_Init_thread .. MPI_Finalize) and the factory that turns MPI_COMM_WORLD
// into a WorldConfig. This is the only place ecf8 starts MPI; everything downstream takes a WorldConfig
// and a Communicator.
#pragma once

#include "sharding/world_config.h"

namespace ecf8 {

class MpiSession {
public:
    // Initializes MPI, asking for MPI_THREAD_MULTIPLE and accepting MPI_THREAD_FUNNELED; throws when MPI
    // offers less. Sets MPI_COMM_WORLD's error handler to MPI_ERRORS_RETURN and the log's rank prefix.
    // When MPI is already initialized, it adopts that state and leaves finalizing to its owner.
    explicit MpiSession(int* argc = nullptr, char*** argv = nullptr);
    ~MpiSession();  // MPI_Finalize, unless MPI was initialized by someone else or is already finalized
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;

    int rank() const { return rank_; }  // in MPI_COMM_WORLD
    int size() const { return size_; }
    int thread_level() const { return thread_level_; }  // the MPI_THREAD_* level MPI provides
    bool thread_multiple() const;

    // Builds and validates this rank's WorldConfig from MPI_COMM_WORLD and the YAML's parallel settings.
    // Errors name the YAML field and how many ranks mpirun started. Collective over MPI_COMM_WORLD (it
    // compares nodes/gpus_per_node with the hosts MPI sees and warns when the rank layout differs).
    WorldConfig world_from_mpi(int tp, int ep, int nodes, int gpus_per_node) const;
    // The same without a collective, for code that may fail on one rank only: host_rank and host_size are
    // this rank's place among the ranks of its host (MPI_Comm_split_type, taken earlier by the caller).
    WorldConfig world_config(int tp, int ep, int nodes, int gpus_per_node, int host_rank, int host_size) const;

private:
    bool owns_ = false;
    int rank_ = 0;
    int size_ = 1;
    int thread_level_ = 0;
};

}  // namespace ecf8
