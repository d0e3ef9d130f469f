// Communicator: the backend-neutral collectives ecf8 uses between the ranks of one group.
// Two implementations: MpiCommunicator (host buffers, runtime/mpi_communicator.h) and, later, an NCCL one
// (device buffers, on its own stream). The interface therefore takes raw pointers, element counts and an
// element type, never containers.
//
// Conventions shared by every backend:
//   - Counts and displacements are in elements, not bytes.
//   - Every call is collective over the group: all ranks call it, in the same order, with matching counts.
//   - Send and receive buffers must not overlap, except where a call says otherwise.
//   - BF16 sums are reduced in float. The MPI backend converts to float, sums, and rounds back once with
//     round-to-nearest-even, so a BF16 all_reduce_sum equals the float sum of the inputs, rounded once.
//   - Integer sums wrap as the fixed-width type does (U8 sums are mod 256).
//   - Errors throw ecf8::Error.
#pragma once

#include <array>
#include <cstddef>

namespace ecf8 {

enum class ElemType { F32, F64, BF16, I32, I64, U8 };

// ----------------------------------------------------------------------------
// Element-type properties, indexed by ElemType.

struct ElemTypeInfo {
    const char* name;
    size_t bytes;
};

inline constexpr std::array<ElemTypeInfo, 6> kElemTypeInfo = {{
    {"f32", 4},
    {"f64", 8},
    {"bf16", 2},
    {"i32", 4},
    {"i64", 8},
    {"u8", 1},
}};

inline constexpr size_t elem_size(ElemType type) { return kElemTypeInfo[static_cast<size_t>(type)].bytes; }
inline constexpr const char* elem_type_name(ElemType type) { return kElemTypeInfo[static_cast<size_t>(type)].name; }

// ----------------------------------------------------------------------------
// The interface.

class Communicator {
public:
    virtual ~Communicator() = default;
    Communicator(const Communicator&) = delete;
    Communicator& operator=(const Communicator&) = delete;

    virtual int rank() const = 0;  // this rank's index in the group, in [0, size())
    virtual int size() const = 0;  // number of ranks in the group

    // In place: buf[i] = sum over ranks of buf[i], for i < count.
    virtual void all_reduce_sum(void* buf, size_t count, ElemType type) = 0;

    // recv holds size() * count_per_rank elements; block r is rank r's send buffer.
    // In place is allowed when send == recv + rank() * count_per_rank (elements), as in NCCL.
    virtual void all_gather(const void* send, void* recv, size_t count_per_rank, ElemType type) = 0;

    // send and recv hold size() * count_per_rank elements. Block d of send goes to rank d;
    // block s of recv comes from rank s.
    virtual void all_to_all(const void* send, void* recv, size_t count_per_rank, ElemType type) = 0;

    // Uneven all-to-all. Each array has size() entries, in elements: send_counts[d] elements from
    // send + send_displs[d] go to rank d, and recv_counts[s] elements from rank s land at recv + recv_displs[s].
    // send_counts[d] on this rank must equal recv_counts[this rank] on rank d.
    virtual void all_to_allv(const void* send, const size_t* send_counts, const size_t* send_displs, void* recv,
                             const size_t* recv_counts, const size_t* recv_displs, ElemType type) = 0;

    // In place: every rank's buf receives root's buf.
    virtual void broadcast(void* buf, size_t count, ElemType type, int root) = 0;

    virtual void barrier() = 0;

    // The cudaStream_t (as void*) a device communicator enqueues its collectives on; nullptr for host ones
    // (MPI), whose calls complete before they return.
    virtual void* native_stream() const { return nullptr; }

protected:
    Communicator() = default;
};

}  // namespace ecf8
