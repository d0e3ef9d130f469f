// AVX2 lockstep decoding. Per group of four lanes and step: compare counts with 32, turn the 4-bit want
// mask into a byte shuffle that hands consecutive stream words to the wanting lanes (others get 0),
// shift them into the bit buffers, then two rounds of table lookups. Compiled with AVX2 enabled for this
// file only; the caller checks avx2_decode_available() at run time.
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

// kExpand[mask]: for lane i of 4 with mask bit i set, the 4 bytes of word number popcount(mask below i);
// 0x80 (zero) for lanes that take no word.
struct ExpandTable {
    alignas(16) uint8_t ctrl[16][16];
    ExpandTable() {
        for (int m = 0; m < 16; ++m) {
            int next = 0;
            for (int lane = 0; lane < 4; ++lane) {
                bool take = (m >> lane) & 1;
                for (int b = 0; b < 4; ++b) ctrl[m][lane * 4 + b] = take ? static_cast<uint8_t>(next * 4 + b) : 0x80;
                next += take;
            }
        }
    }
};
const ExpandTable kExpand;

ECF8_AVX2_TARGET inline __m128i decode_round(__m256i& bits, __m256i& count, const uint16_t* table, __m256i mask) {
    __m256i idx = _mm256_and_si256(bits, mask);
    // Four scalar loads: on Zen 3 they decode 1.6x faster than vpgatherqd (measured 1.29 vs 0.80 GB/s).
    alignas(32) uint64_t i[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(i), idx);
    __m128i e = _mm_setr_epi32(table[i[0]], table[i[1]], table[i[2]], table[i[3]]);
    __m256i len = _mm256_cvtepu32_epi64(_mm_and_si128(_mm_srli_epi32(e, 8), _mm_set1_epi32(0xFF)));
    bits = _mm256_srlv_epi64(bits, len);
    count = _mm256_sub_epi64(count, len);
    return _mm_and_si128(e, _mm_set1_epi32(0xFF));
}

// Eight 16-bit values from eight symbols (as u16) and eight raw bytes.
ECF8_AVX2_TARGET inline __m128i join8(SymbolKind kind, __m128i sym16, const uint8_t* raw) {
    __m128i r = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(raw)));
    if (kind == SymbolKind::Bf16Exp) {
        __m128i sign = _mm_slli_epi16(_mm_and_si128(r, _mm_set1_epi16(0x80)), 8);
        return _mm_or_si128(_mm_or_si128(sign, _mm_slli_epi16(sym16, 7)), _mm_and_si128(r, _mm_set1_epi16(0x7F)));
    }
    return _mm_or_si128(_mm_slli_epi16(sym16, 8), r);
}

}  // namespace

ECF8_AVX2_TARGET uint32_t decode_full_steps_avx2(ChunkLanes& lanes, const uint32_t* words, uint32_t* pos_io,
                                                 uint32_t read_limit, const uint16_t* table, uint32_t table_mask,
                                                 uint32_t step, uint32_t full_steps, uint8_t* out, SymbolKind kind,
                                                 const uint8_t* raw) {
    constexpr int kGroups = kLanes / 4;
    __m256i bits[kGroups], count[kGroups];
    for (int g = 0; g < kGroups; ++g) {
        bits[g] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lanes.bits + 4 * g));
        count[g] = _mm256_cvtepu32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lanes.count + 4 * g)));
    }
    const __m256i refill_below = _mm256_set1_epi64x(kRefillBelow);
    const __m256i word_bits = _mm256_set1_epi64x(32);
    const __m256i mask = _mm256_set1_epi64x(table_mask);
    uint32_t pos = *pos_io;
    // Each phase runs over all eight groups before the next starts, so the out-of-order core sees eight
    // independent operations side by side instead of one long dependency chain per group.
    for (; step < full_steps && pos + kLanes <= read_limit; ++step) {
        for (int g = 0; g < kGroups; ++g) {
            __m256i want = _mm256_cmpgt_epi64(refill_below, count[g]);
            unsigned m = static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(want)));
            __m128i w4 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(words + pos));
            __m128i handed = _mm_shuffle_epi8(w4, _mm_load_si128(reinterpret_cast<const __m128i*>(kExpand.ctrl[m])));
            bits[g] = _mm256_or_si256(bits[g], _mm256_sllv_epi64(_mm256_cvtepu32_epi64(handed), count[g]));
            count[g] = _mm256_add_epi64(count[g], _mm256_and_si256(want, word_bits));
            pos += static_cast<uint32_t>(__builtin_popcount(m));
        }
        __m128i s0[kGroups], s1[kGroups];
        for (int g = 0; g < kGroups; ++g) s0[g] = decode_round(bits[g], count[g], table, mask);
        for (int g = 0; g < kGroups; ++g) s1[g] = decode_round(bits[g], count[g], table, mask);
        const uint32_t e = chunk_element(step, 0, 0);
        for (int g = 0; g < kGroups; ++g) {
            // Element order of the group: lane0 k0, lane0 k1, lane1 k0, ... as 4 x u32 = (s1 << 16 | s0).
            __m128i pairs = _mm_or_si128(s0[g], _mm_slli_epi32(s1[g], 16));
            if (kind == SymbolKind::Byte) {
                _mm_storel_epi64(reinterpret_cast<__m128i*>(out + e + 8 * g), _mm_packus_epi16(pairs, pairs));
            } else {
                _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * size_t{e + 8 * g}),
                                 join8(kind, pairs, raw + e + 8 * g));
            }
        }
    }
    for (int g = 0; g < kGroups; ++g) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes.bits + 4 * g), bits[g]);
        __m256i c = count[g];
        // Counts fit in 32 bits: pick the low halves of the four 64-bit lanes.
        __m256i packed = _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes.count + 4 * g), _mm256_castsi256_si128(packed));
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
