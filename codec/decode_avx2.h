// The CPU decoder's AVX2 path: the same lockstep steps as decode_core.h, eight lanes per 256-bit register
// (64-bit bit buffers as 32-bit halves, read at an offset instead of shifted), with the word hand-out done
// by a vpermd.
// Used for the full steps of a chunk whose 32 next words are inside the stream; the scalar loop in
// decoder.cpp finishes the rest. Both produce identical state, so they can hand over at any step.
#pragma once

#include <cstdint>

#include "codec/decode_core.h"

namespace ecf8 {

struct ChunkLanes {
    uint64_t bits[kLanes];
    uint32_t count[kLanes];
};

// True when this build and this CPU can run the AVX2 path.
bool avx2_decode_available();

// Runs full steps from `step` while step < full_steps and pos + 32 <= read_limit; returns the first step
// not run and updates lanes and *pos. `out` is the chunk's output (1-byte values) or, with raw != null,
// 2-byte values joined from symbol and raw byte as `kind` says.
uint32_t decode_full_steps_avx2(ChunkLanes& lanes, const uint32_t* words, uint32_t* pos, uint32_t read_limit,
                                const uint16_t* table, uint32_t table_mask, uint32_t step, uint32_t full_steps,
                                uint8_t* out, SymbolKind kind, const uint8_t* raw);

}  // namespace ecf8
