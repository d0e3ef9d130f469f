// AVX2 lockstep decoding, eight lanes per 256-bit register. A lane's 64-bit bit buffer is kept as two
// 32-bit halves (lo, hi) in two registers, so the table lookups of eight lanes take one index vector.
// Per group of eight lanes and step:
//   refill: compare counts with 32; the 8-bit want mask picks a vpermd control that hands consecutive
//           stream words to the wanting lanes (the others get 0); lo |= w << n, hi |= w >> (32 - n);
//   decode: look up the first entry at lo & mask and the second at (lo >> len0) & mask (both codes lie
//           in lo: len0 + 12 <= 24 bits), then shift the 64-bit buffer once by len0 + len1.
// Lookups: groups 1-3 use vpgatherdd; group 0 moves its indices to general registers (vmovq/vpextrq)
// and does eight scalar loads. Zen 3 runs gathers and scalar loads on different resources, so the mix
// beats either alone (FP8, full steps, same runs: all gathers 1.35-1.38 GB/s, all scalar loads
// 1.40-1.43, group 0 scalar 1.48-1.51; two scalar groups 1.46; the old four-lane path 1.28-1.31).
// Each phase runs over all four groups before the next starts, so the out-of-order core overlaps the
// groups' lookups. Compiled with AVX2 enabled for this file only; the caller checks
// avx2_decode_available() at run time.
#include "codec/decode_avx2.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ECF8_AVX2_TARGET __attribute__((target("avx2,bmi2,popcnt")))
#define ECF8_HAVE_AVX2_PATH 1
#endif

namespace ecf8 {

#ifdef ECF8_HAVE_AVX2_PATH

bool avx2_decode_available() {
    static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
    return ok;
}

namespace {

// kHand.ctrl[mask]: for lane i of 8, the index of the stream word it takes if mask bit i is set:
// popcount(mask below i). Lanes that take no word are zeroed by the want mask afterwards.
struct HandTable {
    alignas(32) uint32_t ctrl[256][8];
    HandTable() {
        for (int m = 0; m < 256; ++m) {
            uint32_t next = 0;
            for (int lane = 0; lane < 8; ++lane) {
                ctrl[m][lane] = next;
                next += (m >> lane) & 1;
            }
        }
    }
};
const HandTable kHand;

constexpr int kGroups = kLanes / 8;

// Eight lanes: bit buffers hi:lo, counts n.
struct Group {
    __m256i lo, hi, n;
};

ECF8_AVX2_TARGET inline void refill(Group& g, const uint32_t* words, uint32_t& pos) {
    const __m256i want = _mm256_cmpgt_epi32(_mm256_set1_epi32(kRefillBelow), g.n);
    const unsigned m = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(want)));
    const __m256i w8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words + pos));
    const __m256i ctrl = _mm256_load_si256(reinterpret_cast<const __m256i*>(kHand.ctrl[m]));
    const __m256i handed = _mm256_and_si256(_mm256_permutevar8x32_epi32(w8, ctrl), want);
    // A wanting lane has n < 32 and nothing at or above bit n: word << n goes to lo, word >> (32 - n) to
    // hi (AVX2 shifts by 32 give 0). The other lanes OR in zeros.
    g.lo = _mm256_or_si256(g.lo, _mm256_sllv_epi32(handed, g.n));
    g.hi = _mm256_or_si256(g.hi, _mm256_srlv_epi32(handed, _mm256_sub_epi32(_mm256_set1_epi32(32), g.n)));
    g.n = _mm256_add_epi32(g.n, _mm256_and_si256(want, _mm256_set1_epi32(32)));
    pos += static_cast<uint32_t>(__builtin_popcount(m));
}

// Eight table entries, each in the low 16 bits of a 32-bit lane (the upper half is not cleared).
// The gather reads 32 bits at table + 2 * index, the entry and the next one; PreparedTensor pads its
// tables by one entry so the read of the last entry stays inside the allocation.
template <bool kGather>
ECF8_AVX2_TARGET inline __m256i lookup(const uint16_t* table, __m256i idx) {
    if constexpr (kGather) {
        return _mm256_i32gather_epi32(reinterpret_cast<const int*>(table), idx, 2);
    } else {
        // Two indices per 64-bit move: q[0] = lanes 0, 1; ... q[3] = lanes 6, 7.
        const __m128i a = _mm256_castsi256_si128(idx), b = _mm256_extracti128_si256(idx, 1);
        const uint64_t q[4] = {
            static_cast<uint64_t>(_mm_cvtsi128_si64(a)), static_cast<uint64_t>(_mm_extract_epi64(a, 1)),
            static_cast<uint64_t>(_mm_cvtsi128_si64(b)), static_cast<uint64_t>(_mm_extract_epi64(b, 1))};
        auto at = [&](int i) -> int { return table[static_cast<uint32_t>(q[i / 2] >> (32 * (i % 2)))]; };
        return _mm256_setr_epi32(at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7));
    }
}

// Byte 1 (the code length) of each entry, zero-extended to 32 bits.
ECF8_AVX2_TARGET inline __m256i entry_len(__m256i e) {
    const __m256i pick = _mm256_setr_epi8(1, -1, -1, -1, 5, -1, -1, -1, 9, -1, -1, -1, 13, -1, -1, -1,  //
                                          1, -1, -1, -1, 5, -1, -1, -1, 9, -1, -1, -1, 13, -1, -1, -1);
    return _mm256_shuffle_epi8(e, pick);
}

// Drops len bits (len <= 24) from the 64-bit buffers hi:lo.
ECF8_AVX2_TARGET inline void consume(Group& g, __m256i len) {
    g.lo = _mm256_or_si256(_mm256_srlv_epi32(g.lo, len),
                           _mm256_sllv_epi32(g.hi, _mm256_sub_epi32(_mm256_set1_epi32(32), len)));
    g.hi = _mm256_srlv_epi32(g.hi, len);
    g.n = _mm256_sub_epi32(g.n, len);
}

// Sixteen symbols of eight lanes in element order, as u16: lane i's first symbol at u16 2i, second at 2i+1.
ECF8_AVX2_TARGET inline __m256i symbols16(__m256i e0, __m256i e1) {
    return _mm256_and_si256(_mm256_blend_epi16(e0, _mm256_slli_epi32(e1, 16), 0xAA), _mm256_set1_epi16(0xFF));
}

// Sixteen 16-bit values from sixteen symbols (as u16) and sixteen raw bytes.
ECF8_AVX2_TARGET inline __m256i join16(SymbolKind kind, __m256i sym16, const uint8_t* raw) {
    __m256i r = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(raw)));
    if (kind == SymbolKind::Bf16Exp) {
        __m256i sign = _mm256_slli_epi16(_mm256_and_si256(r, _mm256_set1_epi16(0x80)), 8);
        return _mm256_or_si256(_mm256_or_si256(sign, _mm256_slli_epi16(sym16, 7)),
                               _mm256_and_si256(r, _mm256_set1_epi16(0x7F)));
    }
    return _mm256_or_si256(_mm256_slli_epi16(sym16, 8), r);
}

}  // namespace

ECF8_AVX2_TARGET uint32_t decode_full_steps_avx2(ChunkLanes& lanes, const uint32_t* words, uint32_t* pos_io,
                                                 uint32_t read_limit, const uint16_t* table, uint32_t table_mask,
                                                 uint32_t step, uint32_t full_steps, uint8_t* out, SymbolKind kind,
                                                 const uint8_t* raw) {
    const __m256i even_odd = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    Group g[kGroups];
    for (int k = 0; k < kGroups; ++k) {
        // [lo0..lo3 hi0..hi3] and [lo4..lo7 hi4..hi7] -> lo, hi.
        __m256i a = _mm256_permutevar8x32_epi32(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lanes.bits + 8 * k)), even_odd);
        __m256i b = _mm256_permutevar8x32_epi32(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lanes.bits + 8 * k + 4)), even_odd);
        g[k].lo = _mm256_permute2x128_si256(a, b, 0x20);
        g[k].hi = _mm256_permute2x128_si256(a, b, 0x31);
        g[k].n = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lanes.count + 8 * k));
    }
    const __m256i mask = _mm256_set1_epi32(static_cast<int>(table_mask));
    uint32_t pos = *pos_io;
    for (; step < full_steps && pos + kLanes <= read_limit; ++step) {
        for (int k = 0; k < kGroups; ++k) refill(g[k], words, pos);
        __m256i e0[kGroups], e1[kGroups], len0[kGroups];
        // Group 0 first with scalar loads, then the gathers of groups 1-3.
        e0[0] = lookup<false>(table, _mm256_and_si256(g[0].lo, mask));
        for (int k = 1; k < kGroups; ++k) e0[k] = lookup<true>(table, _mm256_and_si256(g[k].lo, mask));
        for (int k = 0; k < kGroups; ++k) len0[k] = entry_len(e0[k]);
        e1[0] = lookup<false>(table, _mm256_and_si256(_mm256_srlv_epi32(g[0].lo, len0[0]), mask));
        for (int k = 1; k < kGroups; ++k)
            e1[k] = lookup<true>(table, _mm256_and_si256(_mm256_srlv_epi32(g[k].lo, len0[k]), mask));
        for (int k = 0; k < kGroups; ++k) consume(g[k], _mm256_add_epi32(len0[k], entry_len(e1[k])));
        const uint32_t e = chunk_element(step, 0, 0);
        if (kind == SymbolKind::Byte) {
            for (int k = 0; k < kGroups; k += 2) {
                // packus interleaves 128-bit halves: [k lo, k+1 lo, k hi, k+1 hi] -> reorder to k, k+1.
                __m256i bytes = _mm256_packus_epi16(symbols16(e0[k], e1[k]), symbols16(e0[k + 1], e1[k + 1]));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + e + 16 * k),
                                    _mm256_permute4x64_epi64(bytes, 0xD8));
            }
        } else {
            for (int k = 0; k < kGroups; ++k)
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2 * size_t{e + 16 * k}),
                                    join16(kind, symbols16(e0[k], e1[k]), raw + e + 16 * k));
        }
    }
    for (int k = 0; k < kGroups; ++k) {
        // lo, hi -> [lo0 hi0 lo1 hi1 | lo4 hi4 lo5 hi5] and [lo2 hi2 lo3 hi3 | lo6 hi6 lo7 hi7].
        __m256i a = _mm256_unpacklo_epi32(g[k].lo, g[k].hi);
        __m256i b = _mm256_unpackhi_epi32(g[k].lo, g[k].hi);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes.bits + 8 * k), _mm256_permute2x128_si256(a, b, 0x20));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes.bits + 8 * k + 4), _mm256_permute2x128_si256(a, b, 0x31));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes.count + 8 * k), g[k].n);
    }
    *pos_io = pos;
    return step;
}

#else

bool avx2_decode_available() { return false; }

uint32_t decode_full_steps_avx2(ChunkLanes&, const uint32_t*, uint32_t*, uint32_t, const uint16_t*, uint32_t,
                                uint32_t step, uint32_t, uint8_t*, SymbolKind, const uint8_t*) {
    return step;
}

#endif

}  // namespace ecf8
