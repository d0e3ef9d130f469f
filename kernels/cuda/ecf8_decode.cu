// ECF8 decode on the GPU: one warp per chunk, the 32 lanes of the format are the 32 threads of the warp.
//
// Block: kWarpsPerBlock warps, each decoding one work unit (a chunk overlapping the requested range, or a
// 64 KiB piece of a raw copy). Units are numbered across all tasks of a launch; a block takes kWarpsPerBlock
// consecutive units and each warp finds its task by binary search in the unit prefix.
//
// Shared memory (20 KiB, static): one decode table, and per warp a 2 KiB stream ring and a 1024-symbol stage.
//  - Codebooks: the block loads the table of its first unit's codebook once. A warp whose chunk uses that
//    same table (same tensor, same codebook group: nearly always, since a tensor has one codebook by default
//    and groups span many chunks) looks symbols up in shared memory; a warp whose chunk straddles into
//    another tensor or codebook group reads its own table straight from global memory (L1/L2-cached, 8 KiB at
//    most). This keeps one 8 KiB table per block, so occupancy does not depend on group_chunks.
//  - Stream: a ring of 4 blocks of 128 words in shared memory, filled with cp.async (16 bytes per lane per
//    block, no registers held while the copy is in flight); two blocks are in flight ahead of the one the
//    warp waits for, i.e. the next block is requested about 19 steps before it is needed. At each step the
//    lanes that want a word are found with __ballot_sync; a lane takes word pos + (number of wanting lanes
//    below it) from the ring, and the warp advances pos by the popcount. Words at or past stream_words are
//    zero-filled, as on the CPU, so even a corrupt stream decodes identically on both.
//  - Output: 16 steps (1024 symbols) are staged in shared memory, then written 16 bytes per lane (for 16-bit
//    dtypes joined with 8 raw bytes loaded 8 bytes wide). Elements outside [begin, end) are never written;
//    edge groups and misaligned outputs fall back to element stores.
// Occupancy: 64 registers (__launch_bounds__(128, 8)), 8 blocks = 32 warps per SM.
// After its chunk, lane 0 compares pos with chunk_offsets[c + 1] and sets the error flag on a mismatch.
#include <algorithm>

#include "codec/decoder.h"
#include "common/error.h"
#include "kernels/cuda/ecf8_decode.cuh"

namespace ecf8 {

namespace {

// Tuning knobs (compile-time; bench/gpu_decode_notes.md has the measurements).
#ifndef ECF8_DECODE_MIN_BLOCKS
#define ECF8_DECODE_MIN_BLOCKS 8  // caps registers at 64 per thread: 32 warps per SM
#endif

constexpr uint32_t kWarpsPerBlock = 4;
constexpr uint32_t kThreads = kWarpsPerBlock * kLanes;
constexpr int kMinBlocksPerSm = ECF8_DECODE_MIN_BLOCKS;
#ifndef ECF8_DECODE_STAGE_STEPS
#define ECF8_DECODE_STAGE_STEPS 16
#endif
constexpr uint32_t kStageSteps = ECF8_DECODE_STAGE_STEPS;   // steps decoded between two output flushes
constexpr uint32_t kStageElems = kStageSteps * kStepElems;  // symbols staged per warp (1024 by default)
constexpr uint32_t kTableEntries = 1u << kMaxCodeLen;
constexpr uint64_t kRawUnitBytes = uint64_t{1} << 16;  // bytes of a raw copy per warp
constexpr unsigned kFullMask = 0xffffffffu;
constexpr size_t kDeviceAlign = 256;

static_assert(kLanes == 32, "one lane per thread of a warp");
static_assert(kStageElems % (kLanes * 16) == 0, "every lane stores whole 16-byte groups");

// ----------------------------------------------------------------------------
// Host + device helpers

__host__ __device__ inline uint64_t blob_chunk_elems(const DeviceBlob& b) { return uint64_t{kLanes} * b.lane_elems; }

// Work units of a task (see decode_task_units).
__host__ __device__ inline uint64_t task_units(const DecodeTask& t) {
    if (t.begin >= t.end) return 0;
    if (t.blob.mode == BlobMode::Raw)
        return ((t.end - t.begin) * t.blob.value_bytes + kRawUnitBytes - 1) / kRawUnitBytes;
    const uint64_t ce = blob_chunk_elems(t.blob);
    return (t.end - 1) / ce - t.begin / ce + 1;
}

// ----------------------------------------------------------------------------
// Device code

// The task owning `unit`: the last t in [0, task_count) with prefix[t] <= unit (empty tasks are skipped).
__device__ __forceinline__ uint32_t find_task(const uint32_t* prefix, uint32_t task_count, uint32_t unit) {
    uint32_t lo = 0, hi = task_count;  // prefix[lo] <= unit, and the answer is below hi
    while (hi - lo > 1) {
        const uint32_t mid = lo + (hi - lo) / 2;
        if (prefix[mid] <= unit)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

// A unit of a task: which task and the unit's index inside it.
struct UnitRef {
    const DecodeTask* task;
    uint32_t index;
};

__device__ __forceinline__ uint32_t unit_chunk(const DecodeTask& t, uint32_t index) {
    return static_cast<uint32_t>(t.begin / blob_chunk_elems(t.blob)) + index;
}

// The global-memory decode table of a Huffman unit.
__device__ __forceinline__ const uint16_t* unit_table(const DecodeTask& t, uint32_t index) {
    const uint32_t codebook = unit_chunk(t, index) / t.blob.group_chunks;
    return t.blob.tables + (size_t{codebook} << t.blob.table_log);
}

// All threads of the block copy one table (2^table_log entries) into shared memory.
__device__ void load_table(uint16_t* s_table, const uint16_t* table, uint32_t table_log) {
    const uint32_t n = 1u << table_log;
    if (n >= 8) {  // tables are 16-byte aligned in device memory (place_device_blob)
        const uint4* src = reinterpret_cast<const uint4*>(table);
        uint4* dst = reinterpret_cast<uint4*>(s_table);
        for (uint32_t i = threadIdx.x; i < n / 8; i += blockDim.x) dst[i] = __ldg(src + i);
    } else {
        for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) s_table[i] = table[i];
    }
}

// ---- The stream ring: a per-warp ring of kRingBlocks blocks of kRingBlockWords words in shared memory, filled
// with cp.async (global -> shared without registers, so a pending fill never stalls the decode). A block is
// aligned on its global address (ring slot = global word address mod kRingWords), so every lane copies one
// 16-byte aligned group per block; groups that touch the ends of the stream are copied word by word, and
// words at or past stream_words are zero-filled (as on the CPU).
constexpr uint32_t kRingBlockWords = kLanes * 4;  // 128 words: one 16-byte cp.async per lane
constexpr uint32_t kRingBlocks = 4;
constexpr uint32_t kRingWords = kRingBlockWords * kRingBlocks;
constexpr uint32_t kRingAhead = 2;  // blocks in flight past the one being waited for

__device__ __forceinline__ void cp_async16(uint32_t smem, const void* src, uint32_t src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async4(uint32_t smem, const void* src, uint32_t src_bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// A warp's view of its chunk's stream. Positions are kept "ring-absolute": q = stream index + off, where
// off = (global word address of the stream) mod kRingWords, so that the ring slot of q is q mod kRingWords.
// Words [.., lim) are in the ring and visible to the whole warp; lim - q >= 32 between steps.
struct StreamRing {
    uint32_t q;    // the next unread word
    uint32_t lim;  // end of the complete blocks
    int64_t fill;  // stream index of the next block to fetch (may start before the stream)
    uint32_t off;
    uint32_t ring;          // shared address of the warp's ring
    const uint32_t* words;  // the same, for loads
};

// Lane's part of block `fill` (a ring-aligned block of 128 words starting at stream index fill).
__device__ __forceinline__ void ring_fetch(const StreamRing& r, const uint32_t* stream, uint64_t limit, uint32_t lane) {
    const int64_t i0 = r.fill + 4 * lane;
    const uint32_t dst = r.ring + ((static_cast<uint32_t>(r.fill) + r.off) % kRingWords + 4 * lane) * 4;
    if (i0 >= 0 && static_cast<uint64_t>(i0) + 4 <= limit) {
        cp_async16(dst, stream + i0, 16);
    } else if (i0 >= 0 && static_cast<uint64_t>(i0) >= limit) {
        // Zero fill; the source is not read but must be 16-byte aligned: the stream's own 16-byte granule
        // (inside the 256-byte aligned allocation).
        cp_async16(dst, reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(stream) & ~uintptr_t{15}), 0);
    } else {
#pragma unroll
        for (uint32_t j = 0; j < 4; ++j) {
            const int64_t i = i0 + j;
            const bool in = i >= 0 && static_cast<uint64_t>(i) < limit;
            cp_async4(dst + 4 * j, in ? stream + i : stream, in ? 4 : 0);
        }
    }
    cp_async_commit();
}

__device__ __forceinline__ StreamRing open_ring(const DeviceBlob& b, uint32_t pos, uint32_t* ring_words,
                                                uint32_t lane) {
    StreamRing r;
    r.off = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(b.stream) / 4) % kRingWords;
    r.ring = static_cast<uint32_t>(__cvta_generic_to_shared(ring_words));
    r.words = ring_words;
    r.q = pos + r.off;
    const uint32_t first_q = r.q / kRingBlockWords * kRingBlockWords;  // ring-absolute start of pos's block
    r.fill = static_cast<int64_t>(pos) - (r.q - first_q);
    for (uint32_t k = 0; k < kRingAhead + 2; ++k) {
        ring_fetch(r, b.stream, b.stream_words, lane);
        r.fill += kRingBlockWords;
    }
    cp_async_wait<kRingAhead>();  // the first two blocks: at least 129 words from pos
    __syncwarp();
    r.lim = first_q + 2 * kRingBlockWords;
    return r;
}

// After a step: keeps 32 words from q in the ring (warp-uniform branch, about once per 9 steps).
__device__ __forceinline__ void ring_advance(StreamRing& r, const uint32_t* stream, uint64_t limit, uint32_t lane) {
    if (r.lim - r.q >= 32) return;
    __syncwarp();  // every lane is done with the slot refilled below (it holds words before q)
    ring_fetch(r, stream, limit, lane);
    r.fill += kRingBlockWords;
    cp_async_wait<kRingAhead>();
    __syncwarp();
    r.lim += kRingBlockWords;
}

// One step of the warp: refill (lane order, decode_core.h), then 0, 1 or 2 symbols into the stage.
// kFull: every lane decodes two symbols at this step. Two decodes after a refill use at most 24 of the
// >= 32 buffered bits, so both lookups read the low 32 bits and the buffer shifts once (same result as
// lane_decode twice).
template <bool kFull>
__device__ __forceinline__ void decode_step(uint32_t step, uint32_t stage_first, uint32_t lane, uint32_t lanes_below,
                                            uint32_t chunk_elems, LaneBits& s, StreamRing& r, const uint32_t* stream,
                                            uint64_t limit, const uint16_t* table, uint32_t table_mask,
                                            uint8_t* stage) {
    const uint32_t n = kFull ? kSymbolsPerStep : lane_symbols(step, lane, chunk_elems);
    const bool want = n > 0 && lane_wants_word(s);
    const uint32_t wanting = __ballot_sync(kFullMask, want);
    // Branch-free refill: every lane reads a ring word (any slot is readable), a wanting lane keeps it.
    const uint32_t word = r.words[(r.q + __popc(wanting & lanes_below)) % kRingWords];
    s.bits |= static_cast<uint64_t>(want ? word : 0u) << s.count;
    s.count += want ? 32u : 0u;
    r.q += __popc(wanting);
    uint8_t* dst = stage + (chunk_element(step, lane, 0) - stage_first);
    if (n == kSymbolsPerStep) {
        const uint32_t lo = static_cast<uint32_t>(s.bits);
        const uint32_t e0 = table[lo & table_mask];
        const uint32_t l0 = entry_length(e0);
        const uint32_t e1 = table[(lo >> l0) & table_mask];
        const uint32_t len = l0 + entry_length(e1);
        s.bits >>= len;
        s.count -= len;
        *reinterpret_cast<uint16_t*>(dst) = static_cast<uint16_t>(entry_symbol(e0) | (entry_symbol(e1) << 8));
    } else if (n == 1) {
        dst[0] = static_cast<uint8_t>(lane_decode(s, table, table_mask));
    }
    ring_advance(r, stream, limit, lane);
}

// Where a chunk's elements go. Built at each flush from the task, so none of it stays live in registers
// across the decode loop.
struct OutWindow {
    uint8_t* out;        // the task's output: element `begin` of the tensor
    uint64_t begin;      // the task's first element
    uint64_t lo, hi;     // tensor elements of this chunk to write: [max(begin, chunk start), min(end, chunk end))
    const uint8_t* raw;  // the blob's raw bytes (16-bit kinds)
    SymbolKind kind;
    uint32_t value_bytes;
    bool aligned;  // the chunk's first element lands on a 16-byte boundary of out
};

__device__ __forceinline__ OutWindow out_window(const DecodeTask& task, uint64_t chunk_start, uint32_t chunk_elems) {
    OutWindow o;
    o.out = static_cast<uint8_t*>(task.out);
    o.begin = task.begin;
    o.lo = max(task.begin, chunk_start);
    o.hi = min(task.end, chunk_start + chunk_elems);
    o.raw = task.blob.raw;
    o.kind = task.blob.kind;
    o.value_bytes = task.blob.value_bytes;
    // Unsigned wrap-around keeps the low bits right even when the chunk starts before `begin`.
    o.aligned = ((reinterpret_cast<uint64_t>(o.out) + (chunk_start - task.begin) * o.value_bytes) & 15) == 0;
    return o;
}

__device__ __forceinline__ void store_element(const OutWindow& o, uint64_t g, uint8_t sym) {
    uint8_t* dst = o.out + (g - o.begin) * o.value_bytes;
    if (o.value_bytes == 1) {
        *dst = sym;
    } else {
        const uint16_t v = join_value(o.kind, sym, o.raw[g]);
        dst[0] = static_cast<uint8_t>(v);
        dst[1] = static_cast<uint8_t>(v >> 8);
    }
}

// Two joined values of a 16-bit kind packed in one word: bytes k and k + 1 of the symbol and raw words.
__device__ __forceinline__ uint32_t join_pair(SymbolKind kind, uint32_t syms, uint32_t raws, uint32_t k) {
    const uint16_t a = join_value(kind, static_cast<uint8_t>(syms >> (8 * k)), static_cast<uint8_t>(raws >> (8 * k)));
    const uint16_t b =
        join_value(kind, static_cast<uint8_t>(syms >> (8 * k + 8)), static_cast<uint8_t>(raws >> (8 * k + 8)));
    return uint32_t{a} | (uint32_t{b} << 16);
}

// Stores one 16-byte output group: elements [g, g + 16 / value_bytes), staged at `staged`.
__device__ __forceinline__ void store_group(const OutWindow& o, uint64_t g, const uint8_t* staged) {
    uint4* dst = reinterpret_cast<uint4*>(o.out + (g - o.begin) * o.value_bytes);
    if (o.value_bytes == 1) {
        *dst = *reinterpret_cast<const uint4*>(staged);
        return;
    }
    const uint2 syms = *reinterpret_cast<const uint2*>(staged);
    const uint2 raws = __ldg(reinterpret_cast<const uint2*>(o.raw + g));
    *dst = make_uint4(join_pair(o.kind, syms.x, raws.x, 0), join_pair(o.kind, syms.x, raws.x, 2),
                      join_pair(o.kind, syms.y, raws.y, 0), join_pair(o.kind, syms.y, raws.y, 2));
}

// Writes the in-range elements of one staged segment (chunk elements [seg_first, seg_first + kStageElems)).
__device__ __forceinline__ void flush_stage(const DecodeTask& task, uint64_t chunk_start, uint32_t chunk_elems,
                                            uint32_t seg_first, const uint8_t* stage, uint32_t lane) {
    const OutWindow o = out_window(task, chunk_start, chunk_elems);
    const uint64_t g_seg = chunk_start + seg_first;
    if (g_seg + kStageElems <= o.lo || g_seg >= o.hi) return;                               // warp-uniform
    if (o.aligned && o.value_bytes == 1 && g_seg >= o.lo && g_seg + kStageElems <= o.hi) {  // the common case
        uint4* dst = reinterpret_cast<uint4*>(o.out + (g_seg - o.begin));
        const uint4* src = reinterpret_cast<const uint4*>(stage);
#pragma unroll
        for (uint32_t q = lane; q < kStageElems / 16; q += kLanes) dst[q] = src[q];
        return;
    }
    if (!o.aligned) {
        for (uint32_t e = lane; e < kStageElems; e += kLanes) {
            const uint64_t g = g_seg + e;
            if (g >= o.lo && g < o.hi) store_element(o, g, stage[e]);
        }
        return;
    }
    // Groups of 16 output bytes; consecutive lanes take consecutive groups, so each store is one 512 B run.
    const uint32_t group_elems = 16 / o.value_bytes;
    const uint32_t groups = kStageElems / group_elems;
    for (uint32_t q = lane; q < groups; q += kLanes) {
        const uint32_t e0 = q * group_elems;
        const uint64_t g0 = g_seg + e0;
        if (g0 >= o.lo && g0 + group_elems <= o.hi) {
            store_group(o, g0, stage + e0);
            continue;
        }
        for (uint32_t e = e0; e < e0 + group_elems; ++e)
            if (g_seg + e >= o.lo && g_seg + e < o.hi) store_element(o, g_seg + e, stage[e]);
    }
}

// One warp decodes Huffman chunk `chunk` of a task with `table`, writing its in-range elements. Inlined at
// each call so that a shared-memory table is looked up with shared loads rather than generic ones.
__device__ __forceinline__ void decode_chunk_warp(const DecodeTask& task, uint32_t chunk, const uint16_t* table,
                                                  uint8_t* stage, uint32_t* ring_words, int* error_flag) {
    const DeviceBlob& b = task.blob;
    const uint32_t lane = threadIdx.x % kLanes;
    const uint64_t chunk_start = uint64_t{chunk} * blob_chunk_elems(b);
    const uint32_t chunk_elems = static_cast<uint32_t>(min(blob_chunk_elems(b), b.numel - chunk_start));
    const uint32_t table_mask = (1u << b.table_log) - 1;
    const uint32_t* stream = b.stream;
    const uint64_t limit = b.stream_words;
    const uint32_t lanes_below = (1u << lane) - 1;
    StreamRing r = open_ring(b, b.chunk_offsets[chunk], ring_words, lane);
    LaneBits s{0, 0};
    const uint32_t steps = chunk_steps(chunk_elems);
    for (uint32_t seg = 0; seg < steps; seg += kStageSteps) {
        const uint32_t seg_first = seg * kStepElems;
        if (seg_first + kStageElems <= chunk_elems) {
#pragma unroll
            for (uint32_t i = 0; i < kStageSteps; ++i)
                decode_step<true>(seg + i, seg_first, lane, lanes_below, chunk_elems, s, r, stream, limit, table,
                                  table_mask, stage);
        } else {
            for (uint32_t step = seg; step < steps; ++step)
                decode_step<false>(step, seg_first, lane, lanes_below, chunk_elems, s, r, stream, limit, table,
                                   table_mask, stage);
        }
        __syncwarp();
        flush_stage(task, chunk_start, chunk_elems, seg_first, stage, lane);
        __syncwarp();
    }
    cp_async_wait<0>();  // no fill may land in the ring after the warp leaves it
    if (lane == 0 && r.q - r.off != b.chunk_offsets[chunk + 1] && error_flag != nullptr) *error_flag = 1;
}

// One warp copies 64 KiB piece `index` of a raw (stored) tensor's range.
__device__ __forceinline__ void copy_raw_unit(const DecodeTask& task, uint32_t index) {
    const uint32_t lane = threadIdx.x % kLanes;
    const uint64_t vb = task.blob.value_bytes;
    const uint64_t bytes = (task.end - task.begin) * vb;
    const uint64_t lo = uint64_t{index} * kRawUnitBytes, n = min(bytes, lo + kRawUnitBytes) - lo;
    const uint8_t* src = reinterpret_cast<const uint8_t*>(task.blob.stream) + task.begin * vb + lo;
    uint8_t* dst = static_cast<uint8_t*>(task.out) + lo;
    uint64_t done = 0;
    if (((reinterpret_cast<uint64_t>(src) | reinterpret_cast<uint64_t>(dst)) & 15) == 0) {
        const uint4* src4 = reinterpret_cast<const uint4*>(src);
        uint4* dst4 = reinterpret_cast<uint4*>(dst);
        for (uint64_t i = lane; i < n / 16; i += kLanes) dst4[i] = __ldg(src4 + i);
        done = n / 16 * 16;
    }
    for (uint64_t i = done + lane; i < n; i += kLanes) dst[i] = src[i];
}

// A task of an expert that routing did not pick (DecodeTask::picks): block-uniform for the home task.
__device__ __forceinline__ bool skipped(const DecodeTask& t) { return t.picks != nullptr && t.picks[1] <= t.picks[0]; }

// The body shared by both kernels. home: the block's first unit, whose table goes to shared memory;
// mine: this warp's unit (active false past the last unit).
__device__ void decode_block(UnitRef home, UnitRef mine, bool active, int* error_flag) {
    alignas(16) __shared__ uint16_t s_table[kTableEntries];
    alignas(16) __shared__ uint8_t s_stage[kWarpsPerBlock][kStageElems];
    alignas(16) __shared__ uint32_t s_ring[kWarpsPerBlock][kRingWords];
    const bool home_coded = home.task->blob.mode == BlobMode::Huffman && !skipped(*home.task);
    const uint16_t* home_table = home_coded ? unit_table(*home.task, home.index) : nullptr;
    if (home_coded) load_table(s_table, home_table, home.task->blob.table_log);
    __syncthreads();
    if (!active || skipped(*mine.task)) return;  // warp-uniform; no block barrier follows
    const DecodeTask& task = *mine.task;
    if (task.blob.mode == BlobMode::Raw) {
        copy_raw_unit(task, mine.index);
        return;
    }
    const uint16_t* table = unit_table(task, mine.index);
    const uint32_t chunk = unit_chunk(task, mine.index);
    uint8_t* stage = s_stage[threadIdx.x / kLanes];
    uint32_t* ring = s_ring[threadIdx.x / kLanes];
    if (table == home_table && task.blob.table_log == home.task->blob.table_log)
        decode_chunk_warp(task, chunk, s_table, stage, ring, error_flag);
    else
        decode_chunk_warp(task, chunk, table, stage, ring, error_flag);
}

// ----------------------------------------------------------------------------
// Kernels

// Decodes `units` units of one task.
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
    ecf8_decode_kernel(const __grid_constant__ DecodeTask task, uint32_t units, int* error_flag) {
    const uint32_t first = blockIdx.x * kWarpsPerBlock;
    const uint32_t unit = first + threadIdx.x / kLanes;
    decode_block(UnitRef{&task, first}, UnitRef{&task, unit}, unit < units, error_flag);
}

// Decodes total_units units spread over task_count tasks (prefix: decode_task_prefix).
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
    ecf8_decode_batch_kernel(const DecodeTask* __restrict__ tasks, const uint32_t* __restrict__ prefix,
                             uint32_t task_count, uint32_t total_units, int* error_flag) {
    const uint32_t first = blockIdx.x * kWarpsPerBlock;
    const uint32_t unit = first + threadIdx.x / kLanes;
    const uint32_t home_task = find_task(prefix, task_count, first);
    const bool active = unit < total_units;
    const uint32_t my_task = active ? find_task(prefix, task_count, unit) : home_task;
    decode_block(UnitRef{tasks + home_task, first - prefix[home_task]},
                 UnitRef{tasks + my_task, active ? unit - prefix[my_task] : 0}, active, error_flag);
}

// ----------------------------------------------------------------------------
// Host: device placement

struct DevicePlan {
    size_t bulk_begin = 0;  // blob offset of the copied bulk (the chunk offsets onwards)
    size_t bulk_bytes = 0;
    size_t tables_offset = 0;  // device offset of the decode tables
    size_t tables_bytes = 0;
    size_t total = 0;
};

bool is_huffman(const BlobView& v) { return v.header.mode == static_cast<uint8_t>(BlobMode::Huffman); }

DevicePlan device_plan(const PreparedTensor& t) {
    const BlobView& v = t.view();
    DevicePlan p;
    p.bulk_begin = v.layout.chunk_offsets;
    p.bulk_bytes = v.layout.total - v.layout.chunk_offsets;
    p.tables_offset = align_up(p.bulk_bytes, kDeviceAlign);
    if (is_huffman(v)) p.tables_bytes = (size_t{v.header.codebook_count} << v.header.max_code_len) * sizeof(uint16_t);
    p.total = p.tables_offset + p.tables_bytes;
    return p;
}

const uint8_t* blob_start(const BlobView& v) { return reinterpret_cast<const uint8_t*>(v.stream) - v.layout.stream; }

}  // namespace

size_t device_blob_bytes(const PreparedTensor& t) { return device_plan(t).total; }

DeviceBlob place_device_blob(const PreparedTensor& t, const uint8_t* host_blob, void* device_memory,
                             size_t device_bytes, cudaStream_t copy_stream) {
    const BlobView& v = t.view();
    const BlobHeader& h = v.header;
    const DevicePlan p = device_plan(t);
    ECF8_CHECK(device_bytes >= p.total,
               "tensor '" << t.label() << "': device buffer of " << device_bytes << " bytes, needs " << p.total);
    ECF8_CHECK(reinterpret_cast<uintptr_t>(device_memory) % kDeviceAlign == 0 || p.total == 0,
               "tensor '" << t.label() << "': device buffer is not " << kDeviceAlign << "-byte aligned");
    uint8_t* base = static_cast<uint8_t*>(device_memory);
    if (p.tables_bytes) {
        // The tables are contiguous in PreparedTensor (codebook-major, 2^max_code_len entries each).
        ECF8_CHECK(t.table_mask() + 1 == (1u << h.max_code_len) &&
                       t.table(h.codebook_count - 1) == t.table(0) + (size_t{h.codebook_count - 1} << h.max_code_len),
                   "tensor '" << t.label() << "': unexpected decode table layout");
        // Pageable source: queue it before the bulk so the bulk copy stays asynchronous.
        CUDA_CHECK(cudaMemcpyAsync(base + p.tables_offset, t.table(0), p.tables_bytes, cudaMemcpyDefault, copy_stream));
    }
    if (p.bulk_bytes)
        CUDA_CHECK(cudaMemcpyAsync(base, host_blob + p.bulk_begin, p.bulk_bytes, cudaMemcpyDefault, copy_stream));

    DeviceBlob b{};
    const bool coded = is_huffman(v);
    b.stream = reinterpret_cast<const uint32_t*>(base + (v.layout.stream - p.bulk_begin));
    b.chunk_offsets = coded ? reinterpret_cast<const uint32_t*>(base) : nullptr;
    b.tables = p.tables_bytes ? reinterpret_cast<const uint16_t*>(base + p.tables_offset) : nullptr;
    b.raw = h.raw_bytes ? base + (v.layout.raw - p.bulk_begin) : nullptr;
    b.numel = h.numel;
    b.chunk_count = h.chunk_count;
    b.lane_elems = h.lane_elems;
    b.group_chunks = h.group_chunks;
    b.table_log = coded ? h.max_code_len : 0;
    b.stream_words = h.stream_words;
    b.kind = v.kind();
    b.mode = static_cast<BlobMode>(h.mode);
    b.value_bytes = static_cast<uint8_t>(v.value_bytes());
    return b;
}

// ----------------------------------------------------------------------------
// Host: DeviceTensor

DeviceTensor::~DeviceTensor() { release(); }

DeviceTensor::DeviceTensor(DeviceTensor&& other) noexcept
    : blob_(other.blob_), memory_(other.memory_), bytes_(other.bytes_) {
    other.blob_ = DeviceBlob{};
    other.memory_ = nullptr;
    other.bytes_ = 0;
}

DeviceTensor& DeviceTensor::operator=(DeviceTensor&& other) noexcept {
    if (this != &other) {
        release();
        blob_ = other.blob_;
        memory_ = other.memory_;
        bytes_ = other.bytes_;
        other.blob_ = DeviceBlob{};
        other.memory_ = nullptr;
        other.bytes_ = 0;
    }
    return *this;
}

void DeviceTensor::release() noexcept {
    if (memory_) cudaFree(memory_);  // a destructor cannot throw; a failure here has nothing left to free
    memory_ = nullptr;
    bytes_ = 0;
}

DeviceTensor DeviceTensor::upload_from_pinned(const PreparedTensor& t, const uint8_t* pinned_blob,
                                              cudaStream_t copy_stream) {
    DeviceTensor d;
    d.bytes_ = device_blob_bytes(t);
    if (d.bytes_) CUDA_CHECK(cudaMalloc(&d.memory_, d.bytes_));
    d.blob_ = place_device_blob(t, pinned_blob, d.memory_, d.bytes_, copy_stream);
    return d;
}

DeviceTensor DeviceTensor::upload(const PreparedTensor& t, cudaStream_t copy_stream) {
    return upload_from_pinned(t, blob_start(t.view()), copy_stream);
}

// ----------------------------------------------------------------------------
// Host: launchers

uint32_t decode_task_units(const DecodeTask& task) {
    const uint64_t units = task_units(task);
    ECF8_CHECK(units <= UINT32_MAX, "decode task of " << units << " units exceeds 2^32");
    return static_cast<uint32_t>(units);
}

std::vector<uint32_t> decode_task_prefix(const std::vector<DecodeTask>& tasks) {
    std::vector<uint32_t> prefix(tasks.size() + 1, 0);
    uint64_t total = 0;
    for (size_t i = 0; i < tasks.size(); ++i) {
        const DecodeTask& t = tasks[i];
        ECF8_CHECK(t.begin <= t.end && t.end <= t.blob.numel, "decode task " << i << ": range [" << t.begin << ", "
                                                                             << t.end << ") is outside its "
                                                                             << t.blob.numel << " elements");
        ECF8_CHECK(t.out != nullptr || t.begin == t.end, "decode task " << i << ": null output");
        total += task_units(t);
        ECF8_CHECK(total <= UINT32_MAX, "decode batch of " << total << " units exceeds 2^32");
        prefix[i + 1] = static_cast<uint32_t>(total);
    }
    return prefix;
}

void ecf8_decode_batch_cuda(const DecodeTask* tasks_device, const uint32_t* task_chunk_prefix_device,
                            uint32_t task_count, uint32_t total_chunks, int* error_flag_device, cudaStream_t stream) {
    if (total_chunks == 0) return;
    ECF8_CHECK(tasks_device && task_chunk_prefix_device && task_count > 0, "ecf8_decode_batch_cuda: no tasks");
    const uint32_t blocks = static_cast<uint32_t>((uint64_t{total_chunks} + kWarpsPerBlock - 1) / kWarpsPerBlock);
    ecf8_decode_batch_kernel<<<blocks, kThreads, 0, stream>>>(tasks_device, task_chunk_prefix_device, task_count,
                                                              total_chunks, error_flag_device);
    CUDA_CHECK(cudaGetLastError());
}

void ecf8_decode_cuda(const DeviceBlob& blob, uint64_t begin, uint64_t end, void* out_device, int* error_flag_device,
                      cudaStream_t stream) {
    ECF8_CHECK(begin <= end && end <= blob.numel,
               "decode range [" << begin << ", " << end << ") is outside the tensor's " << blob.numel << " elements");
    if (begin == end) return;
    ECF8_CHECK(out_device != nullptr, "ecf8_decode_cuda: null output");
    if (blob.mode == BlobMode::Raw) {
        const uint8_t* src = reinterpret_cast<const uint8_t*>(blob.stream) + begin * blob.value_bytes;
        CUDA_CHECK(cudaMemcpyAsync(out_device, src, (end - begin) * blob.value_bytes, cudaMemcpyDefault, stream));
        return;
    }
    const DecodeTask task{blob, begin, end, out_device};
    const uint32_t units = decode_task_units(task);
    const uint32_t blocks = static_cast<uint32_t>((uint64_t{units} + kWarpsPerBlock - 1) / kWarpsPerBlock);
    ecf8_decode_kernel<<<blocks, kThreads, 0, stream>>>(task, units, error_flag_device);
    CUDA_CHECK(cudaGetLastError());
}

void ecf8_decode_cuda(const DeviceTensor& t, uint64_t begin, uint64_t end, void* out_device, int* error_flag_device,
                      cudaStream_t stream) {
    ecf8_decode_cuda(t.blob(), begin, end, out_device, error_flag_device, stream);
}

void ecf8_decode_check_error(int* error_flag_device, cudaStream_t stream, const char* what) {
    int flag = 0;
    CUDA_CHECK(cudaMemcpyAsync(&flag, error_flag_device, sizeof(flag), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    if (flag != 0) {  // cleared, so the next check reports only new corruption
        CUDA_CHECK(cudaMemsetAsync(error_flag_device, 0, sizeof(flag), stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    ECF8_CHECK(flag == 0, what << ": the GPU decoder found a corrupt ECF8 stream");
}

}  // namespace ecf8
