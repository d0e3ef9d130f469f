// AVX2 lockstep decoding, eight lanes per 256-bit register. A lane's bit buffer is the 64-bit value b:a
// (two registers of 32-bit halves) with its unread bits at the top, from bit o up; decoding only adds to
// o, so the buffer is never shifted. Per group of eight lanes and step:
//   refill: lanes with o > 32 (fewer than 32 bits held) want a word; the 8-bit want mask picks a vpermd
//           control that hands consecutive stream words to them; a wanting lane moves b into a, takes the
//           word into b and subtracts 32 from o (two blends and a subtraction);
//   decode: the window w = b:a >> o (srlv a, sllv b, or) holds the next 32 bits; the first entry is at
//           w & mask, the second at (w >> len0) & mask (len0 + 12 <= 24 bits), then o += len0 + len1.
// Lookups: groups 0-1 move their indices to general registers (vmovq/vpextrq) and do scalar loads,
// groups 2-3 use vpgatherdd; Zen 3 runs the two on different resources. Each phase runs over all four
// groups before the next starts, so the out-of-order core overlaps the groups' lookups. FP8, 16 Mi
// weights, one thread, alternated runs: the earlier layout (64-bit buffer shifted after every step) did
// 1.37 GB/s median, this one 1.50-1.56; with 1, 3 or 4 scalar groups within noise of 2, with 0 groups
// 8% slower. Compiled with AVX2 enabled for this file only; the caller checks avx2_decode_available().
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
// popcount(mask below i). Lanes that take no word ignore what they are handed (refill blends by want).
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

// Eight lanes. A lane's bit buffer is the 64-bit value b:a with its valid bits at the top: bits [o, 64)
// are the next ones to decode, o = 64 - count. Decoding adds to o instead of shifting a and b; a refill
// (o > 32, i.e. count < 32) moves b into a, puts the new word in b and subtracts 32 from o.
struct Group {
    __m256i a, b, o;
};

ECF8_AVX2_TARGET inline void refill(Group& g, const uint32_t* words, uint32_t& pos) {
    const __m256i want = _mm256_cmpgt_epi32(g.o, _mm256_set1_epi32(32));
    const unsigned m = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(want)));
    const __m256i w8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words + pos));
    const __m256i ctrl = _mm256_load_si256(reinterpret_cast<const __m256i*>(kHand.ctrl[m]));
    const __m256i handed = _mm256_permutevar8x32_epi32(w8, ctrl);
    g.a = _mm256_blendv_epi8(g.a, g.b, want);
    g.b = _mm256_blendv_epi8(g.b, handed, want);
    g.o = _mm256_sub_epi32(g.o, _mm256_and_si256(want, _mm256_set1_epi32(32)));
    pos += static_cast<uint32_t>(__builtin_popcount(m));
}

// The next 32 bits of each lane's buffer: bits [o, o + 32) of b:a. After a refill 1 <= o <= 32 (AVX2
// shifts by 32 give 0, so o = 32 yields b).
ECF8_AVX2_TARGET inline __m256i window(const Group& g) {
    return _mm256_or_si256(_mm256_srlv_epi32(g.a, g.o),
                           _mm256_sllv_epi32(g.b, _mm256_sub_epi32(_mm256_set1_epi32(32), g.o)));
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

// Sixteen symbols of eight lanes in element order, as u16: lane i's first symbol at u16 2i, second at 2i+1.
ECF8_AVX2_TARGET inline __m256i symbols16(__m256i e0, __m256i e1) {
    return _mm256_and_si256(_mm256_blend_epi16(e0, _mm256_slli_epi32(e1, 16), 0xAA), _mm256_set1_epi16(0xFF));
}

// Sixteen 16-bit values from sixteen symbols (as u16) and sixteen raw bytes.
template <SymbolKind kKind>
ECF8_AVX2_TARGET inline __m256i join16(__m256i sym16, const uint8_t* raw) {
    __m256i r = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(raw)));
    if constexpr (kKind == SymbolKind::Bf16Exp) {
        __m256i sign = _mm256_slli_epi16(_mm256_and_si256(r, _mm256_set1_epi16(0x80)), 8);
        return _mm256_or_si256(_mm256_or_si256(sign, _mm256_slli_epi16(sym16, 7)),
                               _mm256_and_si256(r, _mm256_set1_epi16(0x7F)));
    }
    return _mm256_or_si256(_mm256_slli_epi16(sym16, 8), r);
}

// Groups below kScalarGroups look up with scalar loads, the others with vpgatherdd.
constexpr int kScalarGroups = 2;

ECF8_AVX2_TARGET inline void lookup_all(const uint16_t* table, __m256i mask, const __m256i* idx, __m256i* entry) {
    for (int k = 0; k < kScalarGroups; ++k) entry[k] = lookup<false>(table, _mm256_and_si256(idx[k], mask));
    for (int k = kScalarGroups; k < kGroups; ++k) entry[k] = lookup<true>(table, _mm256_and_si256(idx[k], mask));
}

template <SymbolKind kKind>
ECF8_AVX2_TARGET uint32_t run_steps(Group* g, const uint32_t* words, uint32_t& pos, uint32_t read_limit,
                                    const uint16_t* table, uint32_t table_mask, uint32_t step, uint32_t full_steps,
                                    uint8_t* out, const uint8_t* raw) {
    const __m256i mask = _mm256_set1_epi32(static_cast<int>(table_mask));
    for (; step < full_steps && pos + kLanes <= read_limit; ++step) {
        __m256i win[kGroups], e0[kGroups], e1[kGroups];
        for (int k = 0; k < kGroups; ++k) {
            refill(g[k], words, pos);
            win[k] = window(g[k]);
        }
        lookup_all(table, mask, win, e0);
        for (int k = 0; k < kGroups; ++k) win[k] = _mm256_srlv_epi32(win[k], entry_len(e0[k]));
        lookup_all(table, mask, win, e1);
        for (int k = 0; k < kGroups; ++k)
            g[k].o = _mm256_add_epi32(g[k].o, _mm256_add_epi32(entry_len(e0[k]), entry_len(e1[k])));
        const uint32_t e = chunk_element(step, 0, 0);
        if constexpr (kKind == SymbolKind::Byte) {
            for (int k = 0; k < kGroups; k += 2) {
                // packus interleaves 128-bit halves: [k lo, k+1 lo, k hi, k+1 hi] -> reorder to k, k+1.
                __m256i bytes = _mm256_packus_epi16(symbols16(e0[k], e1[k]), symbols16(e0[k + 1], e1[k + 1]));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + e + 16 * k),
                                    _mm256_permute4x64_epi64(bytes, 0xD8));
            }
        } else {
            for (int k = 0; k < kGroups; ++k)
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2 * size_t{e + 16 * k}),
                                    join16<kKind>(symbols16(e0[k], e1[k]), raw + e + 16 * k));
        }
    }
    return step;
}

}  // namespace

ECF8_AVX2_TARGET uint32_t decode_full_steps_avx2(ChunkLanes& lanes, const uint32_t* words, uint32_t* pos_io,
                                                 uint32_t read_limit, const uint16_t* table, uint32_t table_mask,
                                                 uint32_t step, uint32_t full_steps, uint8_t* out, SymbolKind kind,
                                                 const uint8_t* raw) {
    // (bits, count) -> b:a = bits << (64 - count), o = 64 - count; count < 64 always (decode_core.h).
    alignas(32) uint32_t a[kLanes], b[kLanes], o[kLanes];
    for (uint32_t j = 0; j < kLanes; ++j) {
        const uint32_t n = lanes.count[j];
        const uint64_t top = n == 0 ? 0 : lanes.bits[j] << (64 - n);
        a[j] = static_cast<uint32_t>(top);
        b[j] = static_cast<uint32_t>(top >> 32);
        o[j] = 64 - n;
    }
    Group g[kGroups];
    for (int k = 0; k < kGroups; ++k) {
        g[k].a = _mm256_load_si256(reinterpret_cast<const __m256i*>(a + 8 * k));
        g[k].b = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 8 * k));
        g[k].o = _mm256_load_si256(reinterpret_cast<const __m256i*>(o + 8 * k));
    }
    uint32_t pos = *pos_io;
    switch (kind) {
        case SymbolKind::Byte:
            step =
                run_steps<SymbolKind::Byte>(g, words, pos, read_limit, table, table_mask, step, full_steps, out, raw);
            break;
        case SymbolKind::Bf16Exp:
            step = run_steps<SymbolKind::Bf16Exp>(g, words, pos, read_limit, table, table_mask, step, full_steps, out,
                                                  raw);
            break;
        case SymbolKind::HighByte:
            step = run_steps<SymbolKind::HighByte>(g, words, pos, read_limit, table, table_mask, step, full_steps, out,
                                                   raw);
            break;
    }
    for (int k = 0; k < kGroups; ++k) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(a + 8 * k), g[k].a);
        _mm256_store_si256(reinterpret_cast<__m256i*>(b + 8 * k), g[k].b);
        _mm256_store_si256(reinterpret_cast<__m256i*>(o + 8 * k), g[k].o);
    }
    for (uint32_t j = 0; j < kLanes; ++j) {
        const uint64_t top = uint64_t{b[j]} << 32 | a[j];
        lanes.bits[j] = o[j] >= 64 ? 0 : top >> o[j];
        lanes.count[j] = 64 - o[j];
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
