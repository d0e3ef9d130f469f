// The ECF8 decode core, shared by the CPU decoder and the CUDA kernel. Plain C++ under a host compiler,
// __host__ __device__ under nvcc. It holds the pieces whose exact behaviour defines the format:
// the symbol <-> element mapping per dtype, the flat decode-table entry, the lane bit buffer with its
// refill rule, and the order in which the 32 lanes of a chunk take words from the shared stream.
// docs/FORMAT.md is the prose version of this file.
#pragma once

#include <cstdint>

#include "common/hd.h"

namespace ecf8 {

constexpr uint32_t kLanes = 32;          // lanes per chunk: one CUDA warp
constexpr uint32_t kSymbolsPerStep = 2;  // symbols a lane decodes per step
constexpr uint32_t kStepElems = kLanes * kSymbolsPerStep;
constexpr uint32_t kRefillBelow = 32;  // a lane takes a 32-bit word when it holds fewer bits than this
constexpr int kMaxCodeLen = 12;        // 2 symbols * 12 bits <= 32 bits guaranteed after a refill

// How a value splits into the Huffman-coded symbol (8 bits) and raw bits stored verbatim.
enum class SymbolKind : uint8_t {
    Byte = 0,      // 1-byte values (F8_E4M3, F8_E5M2): the whole byte is the symbol; no raw part
    Bf16Exp = 1,   // BF16: symbol = the 8 exponent bits; raw byte = sign << 7 | 7 mantissa bits
    HighByte = 2,  // F16: symbol = the high byte (sign, exponent, 2 mantissa bits); raw byte = low byte
};

ECF8_HD uint32_t symbol_kind_value_bytes(SymbolKind kind) { return kind == SymbolKind::Byte ? 1u : 2u; }

ECF8_HD uint8_t split_symbol(SymbolKind kind, uint16_t v) {
    return kind == SymbolKind::Bf16Exp
               ? static_cast<uint8_t>((v >> 7) & 0xFF)
               : (kind == SymbolKind::HighByte ? static_cast<uint8_t>(v >> 8) : static_cast<uint8_t>(v));
}
ECF8_HD uint8_t split_raw(SymbolKind kind, uint16_t v) {
    return kind == SymbolKind::Bf16Exp ? static_cast<uint8_t>(((v >> 8) & 0x80) | (v & 0x7F))
                                       : static_cast<uint8_t>(v & 0xFF);
}
ECF8_HD uint16_t join_value(SymbolKind kind, uint8_t sym, uint8_t raw) {
    return kind == SymbolKind::Bf16Exp
               ? static_cast<uint16_t>(((raw & 0x80u) << 8) | (uint32_t{sym} << 7) | (raw & 0x7Fu))
               : static_cast<uint16_t>((uint32_t{sym} << 8) | raw);
}

// A decode-table entry: low byte = symbol, high byte = code length. The table has 2^table_log
// entries indexed by the next table_log stream bits (LSB-first), so one lookup decodes one symbol.
ECF8_HD uint32_t entry_symbol(uint32_t e) { return e & 0xFFu; }
ECF8_HD uint32_t entry_length(uint32_t e) { return e >> 8; }

// Element index, inside a chunk, of symbol k of `lane` at `step`. Consecutive lanes write consecutive
// pairs, so a warp's step covers 64 contiguous elements.
ECF8_HD uint32_t chunk_element(uint32_t step, uint32_t lane, uint32_t k) {
    return step * kStepElems + lane * kSymbolsPerStep + k;
}

// Symbols `lane` decodes at `step` in a chunk of `chunk_elems` elements: 2, 1 or 0.
ECF8_HD uint32_t lane_symbols(uint32_t step, uint32_t lane, uint32_t chunk_elems) {
    uint32_t first = chunk_element(step, lane, 0);
    if (first >= chunk_elems) return 0;
    return chunk_elems - first >= kSymbolsPerStep ? kSymbolsPerStep : chunk_elems - first;
}

ECF8_HD uint32_t chunk_steps(uint32_t chunk_elems) { return (chunk_elems + kStepElems - 1) / kStepElems; }

// One lane's bit buffer. Bits are consumed from the low end.
struct LaneBits {
    uint64_t bits;
    uint32_t count;
};

ECF8_HD bool lane_wants_word(const LaneBits& s) { return s.count < kRefillBelow; }

ECF8_HD void lane_push_word(LaneBits& s, uint32_t word) {
    s.bits |= static_cast<uint64_t>(word) << s.count;
    s.count += 32;
}

// Branch-free refill: takes words[pos] when the lane wants a word and returns the next position. The
// word is read either way, so the stream carries padding after its last word. count stays below 64 on
// any input (it is >= 32 before a step's two decodes take at most 24 bits), so the shift is defined.
ECF8_HD uint32_t lane_refill(LaneBits& s, const uint32_t* words, uint32_t pos) {
    uint32_t want = lane_wants_word(s) ? 1u : 0u;
    s.bits |= (static_cast<uint64_t>(words[pos]) << s.count) & (uint64_t{0} - want);
    s.count += want << 5;
    return pos + want;
}

// Decodes one symbol.
ECF8_HD uint32_t lane_decode(LaneBits& s, const uint16_t* table, uint32_t table_mask) {
    uint32_t e = table[s.bits & table_mask];
    uint32_t len = entry_length(e);
    s.bits >>= len;
    s.count -= len;
    return entry_symbol(e);
}

}  // namespace ecf8
