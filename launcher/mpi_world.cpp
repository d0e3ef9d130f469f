// MpiSession: MPI init/finalize, and WorldConfig from MPI_COMM_WORLD with errors that name the YAML field.
#include "launcher/mpi_world.h"

#include "common/error.h"
#include "common/log.h"
#include "runtime/mpi_communicator.h"  // <mpi.h>, and mpi_error_string for MPI_CHECK

namespace ecf8 {
namespace {

const char* thread_level_name(int level) {
    if (level == MPI_THREAD_SINGLE) return "MPI_THREAD_SINGLE";
    if (level == MPI_THREAD_FUNNELED) return "MPI_THREAD_FUNNELED";
    if (level == MPI_THREAD_SERIALIZED) return "MPI_THREAD_SERIALIZED";
    if (level == MPI_THREAD_MULTIPLE) return "MPI_THREAD_MULTIPLE";
    return "unknown";
}

// Ranks fill nodes in blocks (WorldConfig). Compare that with the hosts MPI actually sees, and warn when
// they differ: the GPU a rank picks comes from local_rank().
void warn_if_host_layout_differs(const WorldConfig& w, int host_rank, int host_size) {
    if (host_rank != w.local_rank() || host_size != w.gpus_per_node)
        LOG_WARN("rank " << w.rank << " is rank " << host_rank << " of " << host_size
                         << " on its host, but nodes=" << w.nodes << " and gpus_per_node=" << w.gpus_per_node
                         << " place it at local_rank " << w.local_rank() << "; start mpirun with --map-by slot and "
                         << w.gpus_per_node << " slots per host");
}

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
    int initialized = 0;
    MPI_CHECK(MPI_Initialized(&initialized));
    if (initialized) {
        MPI_CHECK(MPI_Query_thread(&thread_level_));
    } else {
        MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &thread_level_));
        owns_ = true;
        if (thread_level_ < MPI_THREAD_FUNNELED) {
            MPI_Finalize();
            ECF8_FAIL("MPI provides only " << thread_level_name(thread_level_)
                                           << "; ecf8 needs at least MPI_THREAD_FUNNELED");
        }
    }
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
    set_log_rank(rank_, size_);
    LOG_DEBUG("MPI " << (owns_ ? "initialized" : "already initialized") << ": " << size_ << " ranks, "
                     << thread_level_name(thread_level_)
                     << (thread_multiple() ? "" : " (communication from the main thread only)"));
}

MpiSession::~MpiSession() {
    if (!owns_) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

bool MpiSession::thread_multiple() const { return thread_level_ >= MPI_THREAD_MULTIPLE; }

WorldConfig MpiSession::world_from_mpi(int tp, int ep, int nodes, int gpus_per_node) const {
    MPI_Comm host = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &host));
    int host_rank = 0, host_size = 0;
    MPI_CHECK(MPI_Comm_rank(host, &host_rank));
    MPI_CHECK(MPI_Comm_size(host, &host_size));
    MPI_CHECK(MPI_Comm_free(&host));
    return world_config(tp, ep, nodes, gpus_per_node, host_rank, host_size);
}

WorldConfig MpiSession::world_config(int tp, int ep, int nodes, int gpus_per_node, int host_rank, int host_size) const {
    ECF8_CHECK(tp == size_, "mpirun started " << size_ << " ranks but tensor_parallel_size=" << tp
                                              << "; they must be equal (set tensor_parallel_size: " << size_
                                              << ", or run mpirun -np " << tp << ")");
    ECF8_CHECK(nodes < 1 || gpus_per_node < 1 || static_cast<long long>(nodes) * gpus_per_node == size_,
               "mpirun started " << size_ << " ranks but nodes=" << nodes << " x gpus_per_node=" << gpus_per_node
                                 << " = " << static_cast<long long>(nodes) * gpus_per_node
                                 << "; nodes x gpus_per_node must equal the number of ranks");
    WorldConfig w = WorldConfig::make(rank_, size_, tp, ep, nodes, gpus_per_node);
    warn_if_host_layout_differs(w, host_rank, host_size);
    LOG_DEBUG("world: " << w.describe());
    return w;
}

}  // namespace ecf8
