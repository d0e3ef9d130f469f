// MpiCommunicator: collectives on host buffers over a duplicated MPI communicator.
#include "runtime/mpi_communicator.h"

#include <bit>
#include <climits>
#include <cstdint>
#include <vector>

#include "common/error.h"
#include "common/log.h"

namespace ecf8 {
namespace {

// ----------------------------------------------------------------------------
// Element types and counts.

// The MPI datatype that carries each ElemType, indexed by ElemType. BF16 travels as 16-bit words;
// only all_reduce_sum needs its value, and it converts to float first.
MPI_Datatype mpi_type(ElemType type) {
    static const MPI_Datatype table[] = {MPI_FLOAT, MPI_DOUBLE, MPI_UINT16_T, MPI_INT32_T, MPI_INT64_T, MPI_UINT8_T};
    static_assert(sizeof(table) / sizeof(table[0]) == kElemTypeInfo.size());
    return table[static_cast<size_t>(type)];
}

// MPI-3 counts and displacements are ints.
int mpi_count(size_t count, const char* op, const char* what) {
    ECF8_CHECK(count <= static_cast<size_t>(INT_MAX),
               op << ": " << what << " " << count << " exceeds MPI's limit of " << INT_MAX << " elements");
    return static_cast<int>(count);
}

std::vector<int> mpi_counts(const size_t* values, int n, const char* op, const char* what) {
    std::vector<int> out(n);
    for (int i = 0; i < n; ++i) out[i] = mpi_count(values[i], op, what);
    return out;
}

void check_mpi_initialized() {
    int initialized = 0, finalized = 0;
    MPI_CHECK(MPI_Initialized(&initialized));
    MPI_CHECK(MPI_Finalized(&finalized));
    ECF8_CHECK(initialized && !finalized, "MPI is not initialized (or already finalized): create an MpiSession first");
}

// ----------------------------------------------------------------------------
// BF16 <-> float. BF16 is the high half of an IEEE float.

float bf16_to_float(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// Round to nearest, ties to even; NaN stays NaN (quieted), overflow rounds to infinity.
uint16_t float_to_bf16_rne(float f) {
    uint32_t bits = std::bit_cast<uint32_t>(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return static_cast<uint16_t>(bits >> 16);
}

}  // namespace

std::string mpi_error_string(int code) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "unknown MPI error";
    return std::string(text, static_cast<size_t>(len));
}

// ----------------------------------------------------------------------------
// Construction.

MpiCommunicator::MpiCommunicator(MPI_Comm comm) {
    check_mpi_initialized();
    ECF8_CHECK(comm != MPI_COMM_NULL, "MpiCommunicator: the communicator given is MPI_COMM_NULL");
    MPI_CHECK(MPI_Comm_dup(comm, &comm_));
    init_owned();
}

MpiCommunicator::MpiCommunicator(MPI_Comm owned, Adopt) : comm_(owned) { init_owned(); }

void MpiCommunicator::init_owned() {
    try {
        MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
        MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
        MPI_CHECK(MPI_Comm_size(comm_, &size_));
    } catch (...) {
        MPI_Comm_free(&comm_);
        throw;
    }
}

MpiCommunicator::~MpiCommunicator() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || comm_ == MPI_COMM_NULL) return;
    int rc = MPI_Comm_free(&comm_);
    if (rc != MPI_SUCCESS) LOG_WARN("MPI_Comm_free failed: " << mpi_error_string(rc));
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::world() { return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD); }

std::unique_ptr<MpiCommunicator> MpiCommunicator::split(int color, int key) const {
    ECF8_CHECK(color >= 0, "MpiCommunicator::split: color must be >= 0, got " << color);
    MPI_Comm sub = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split(comm_, color, key, &sub));
    return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(sub, Adopt{}));
}

// ----------------------------------------------------------------------------
// Collectives.

void MpiCommunicator::all_reduce_sum(void* buf, size_t count, ElemType type) {
    int n = mpi_count(count, "all_reduce_sum", "count");
    if (type != ElemType::BF16) {
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, n, mpi_type(type), MPI_SUM, comm_));
        return;
    }
    // BF16: widen to float, sum in float, round back once (round-to-nearest-even).
    auto* words = static_cast<uint16_t*>(buf);
    std::vector<float> wide(count);
    for (size_t i = 0; i < count; ++i) wide[i] = bf16_to_float(words[i]);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, wide.data(), n, MPI_FLOAT, MPI_SUM, comm_));
    for (size_t i = 0; i < count; ++i) words[i] = float_to_bf16_rne(wide[i]);
}

void MpiCommunicator::all_gather(const void* send, void* recv, size_t count_per_rank, ElemType type) {
    int n = mpi_count(count_per_rank, "all_gather", "count_per_rank");
    const void* own_block =
        static_cast<const char*>(recv) + static_cast<size_t>(rank_) * count_per_rank * elem_size(type);
    const void* src = (send == own_block) ? MPI_IN_PLACE : send;
    MPI_CHECK(MPI_Allgather(src, n, mpi_type(type), recv, n, mpi_type(type), comm_));
}

void MpiCommunicator::all_to_all(const void* send, void* recv, size_t count_per_rank, ElemType type) {
    int n = mpi_count(count_per_rank, "all_to_all", "count_per_rank");
    MPI_CHECK(MPI_Alltoall(send, n, mpi_type(type), recv, n, mpi_type(type), comm_));
}

void MpiCommunicator::all_to_allv(const void* send, const size_t* send_counts, const size_t* send_displs, void* recv,
                                  const size_t* recv_counts, const size_t* recv_displs, ElemType type) {
    std::vector<int> sc = mpi_counts(send_counts, size_, "all_to_allv", "send count");
    std::vector<int> sd = mpi_counts(send_displs, size_, "all_to_allv", "send displacement");
    std::vector<int> rc = mpi_counts(recv_counts, size_, "all_to_allv", "recv count");
    std::vector<int> rd = mpi_counts(recv_displs, size_, "all_to_allv", "recv displacement");
    MPI_CHECK(
        MPI_Alltoallv(send, sc.data(), sd.data(), mpi_type(type), recv, rc.data(), rd.data(), mpi_type(type), comm_));
}

void MpiCommunicator::broadcast(void* buf, size_t count, ElemType type, int root) {
    ECF8_CHECK(root >= 0 && root < size_, "broadcast: root " << root << " is not a rank of this group of " << size_);
    int n = mpi_count(count, "broadcast", "count");
    MPI_CHECK(MPI_Bcast(buf, n, mpi_type(type), root, comm_));
}

void MpiCommunicator::barrier() { MPI_CHECK(MPI_Barrier(comm_)); }

}  // namespace ecf8
