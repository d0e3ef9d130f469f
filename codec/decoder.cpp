// CPU decoder: 32 lanes per chunk run in lockstep exactly as a CUDA warp does (decode_core.h). The lane
// loop gives the CPU 32 independent dependency chains, the way zstd interleaves 4 streams.
#include "codec/decoder.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>

#include "codec/decode_avx2.h"
#include "codec/decode_table.h"
#include "common/error.h"
#include "common/thread_pool.h"

namespace ecf8 {

PreparedTensor PreparedTensor::prepare(std::span<const uint8_t> blob, const std::string& label) {
    PreparedTensor t;
    t.label_ = label;
    t.view_ = parse_blob(blob, label);
    t.base_ = blob.data();
    const BlobHeader& h = t.view_.header;
    if (h.mode != static_cast<uint8_t>(BlobMode::Huffman)) return t;
    t.table_log_ = h.max_code_len;
    // One entry of padding: the AVX2 decoder reads entries as 32-bit words (decode_avx2.cpp).
    t.tables_.assign((size_t{h.codebook_count} << t.table_log_) + 1, 0);
    for (uint32_t c = 0; c < h.codebook_count; ++c) {
        uint8_t lengths[256];
        unpack_codebook(t.view_, c, lengths);
        build_decode_table(lengths, t.table_log_, t.tables_.data() + (size_t{c} << t.table_log_));
    }
    return t;
}

void PreparedTensor::rebase(const uint8_t* blob) {
    auto move = [&](auto*& p) {
        using T = std::remove_reference_t<decltype(p)>;
        if (p != nullptr) p = reinterpret_cast<T>(blob + (reinterpret_cast<const uint8_t*>(p) - base_));
    };
    move(view_.codebooks);
    move(view_.chunk_offsets);
    move(view_.stream);
    move(view_.raw);
    base_ = blob;
}

namespace {

std::atomic<bool> g_force_scalar{false};

template <SymbolKind kKind>
inline void store(uint8_t* __restrict out, const uint8_t* __restrict raw, uint32_t e, uint32_t sym) {
    if constexpr (kKind == SymbolKind::Byte) {
        out[e] = static_cast<uint8_t>(sym);
    } else {
        uint16_t v = join_value(kKind, static_cast<uint8_t>(sym), raw[e]);
        std::memcpy(out + size_t{e} * 2, &v, 2);
    }
}

// One step in which every lane decodes two symbols and the stream has at least 32 words left.
template <SymbolKind kKind>
inline uint32_t full_step(ChunkLanes& __restrict lanes, const uint32_t* __restrict words, uint32_t pos,
                          const uint16_t* __restrict table, uint32_t mask, uint32_t step, uint8_t* __restrict out,
                          const uint8_t* __restrict raw) {
#pragma GCC unroll 8
    for (uint32_t lane = 0; lane < kLanes; ++lane) {
        LaneBits s{lanes.bits[lane], lanes.count[lane]};
        pos = lane_refill(s, words, pos);
        uint32_t e = chunk_element(step, lane, 0);
        uint32_t a = lane_decode(s, table, mask);
        uint32_t b = lane_decode(s, table, mask);
        if constexpr (kKind == SymbolKind::Byte) {
            uint16_t pair = static_cast<uint16_t>(a | (b << 8));
            std::memcpy(out + e, &pair, 2);
        } else {
            store<kKind>(out, raw, e, a);
            store<kKind>(out, raw, e + 1, b);
        }
        lanes.bits[lane] = s.bits;
        lanes.count[lane] = s.count;
    }
    return pos;
}

// Any step, with stream reads clamped at read_limit (past it a lane receives zeros); used near the
// stream's end and for a chunk's last, partial step.
template <SymbolKind kKind>
uint32_t careful_step(ChunkLanes& lanes, const uint32_t* words, uint32_t pos, uint32_t read_limit,
                      const uint16_t* table, uint32_t mask, uint32_t step, uint32_t chunk_elems, uint8_t* out,
                      const uint8_t* raw) {
    for (uint32_t lane = 0; lane < kLanes; ++lane) {
        uint32_t n = lane_symbols(step, lane, chunk_elems);
        if (n == 0) break;
        LaneBits s{lanes.bits[lane], lanes.count[lane]};
        if (lane_wants_word(s)) {
            lane_push_word(s, pos < read_limit ? words[pos] : 0u);
            ++pos;
        }
        for (uint32_t k = 0; k < n; ++k)
            store<kKind>(out, raw, chunk_element(step, lane, k), lane_decode(s, table, mask));
        lanes.bits[lane] = s.bits;
        lanes.count[lane] = s.count;
    }
    return pos;
}

template <SymbolKind kKind>
void decode_chunk_impl(const PreparedTensor& t, uint32_t chunk, uint8_t* out) {
    const BlobView& v = t.view();
    const uint64_t base = uint64_t{chunk} * v.chunk_elems();
    const uint32_t chunk_elems = static_cast<uint32_t>(std::min<uint64_t>(v.chunk_elems(), t.numel() - base));
    const uint16_t* table = t.table(chunk / v.header.group_chunks);
    const uint32_t mask = t.table_mask();
    const uint8_t* raw = v.raw + base;
    const uint32_t read_limit = static_cast<uint32_t>(v.header.stream_words);
    uint32_t pos = v.chunk_offsets[chunk];
    ChunkLanes lanes = {};
    const uint32_t full_steps = chunk_elems / kStepElems;
    uint32_t step = 0;
    if (avx2_decode_available() && !g_force_scalar.load(std::memory_order_relaxed))
        step = decode_full_steps_avx2(lanes, v.stream, &pos, read_limit, table, mask, 0, full_steps, out, kKind, raw);
    for (; step < full_steps; ++step) {
        if (pos + kLanes <= read_limit)
            pos = full_step<kKind>(lanes, v.stream, pos, table, mask, step, out, raw);
        else
            pos = careful_step<kKind>(lanes, v.stream, pos, read_limit, table, mask, step, chunk_elems, out, raw);
    }
    if (step < chunk_steps(chunk_elems))
        pos = careful_step<kKind>(lanes, v.stream, pos, read_limit, table, mask, step, chunk_elems, out, raw);
    ECF8_CHECK(pos == v.chunk_offsets[chunk + 1],
               "tensor '" << t.label() << "': corrupt ECF8 stream in chunk " << chunk << " (consumed "
                          << pos - v.chunk_offsets[chunk] << " words, expected "
                          << v.chunk_offsets[chunk + 1] - v.chunk_offsets[chunk] << ")");
}

using ChunkDecoder = void (*)(const PreparedTensor&, uint32_t, uint8_t*);
constexpr ChunkDecoder kChunkDecoders[] = {
    decode_chunk_impl<SymbolKind::Byte>,
    decode_chunk_impl<SymbolKind::Bf16Exp>,
    decode_chunk_impl<SymbolKind::HighByte>,
};

}  // namespace

void force_scalar_decode(bool scalar) { g_force_scalar.store(scalar); }

void decode_chunk(const PreparedTensor& t, uint32_t chunk, uint8_t* out_chunk) {
    kChunkDecoders[static_cast<int>(t.view().kind())](t, chunk, out_chunk);
}

void decode_range(const PreparedTensor& t, uint64_t begin, uint64_t end, void* out, ThreadPool* pool) {
    ECF8_CHECK(begin <= end && end <= t.numel(), "tensor '" << t.label() << "': decode range [" << begin << ", " << end
                                                            << ") is outside its " << t.numel() << " elements");
    const BlobView& v = t.view();
    const size_t vb = v.value_bytes();
    uint8_t* dst = static_cast<uint8_t*>(out);
    if (begin == end) return;
    if (v.header.mode == static_cast<uint8_t>(BlobMode::Raw)) {
        std::memcpy(dst, reinterpret_cast<const uint8_t*>(v.stream) + begin * vb, (end - begin) * vb);
        return;
    }
    const uint64_t ce = v.chunk_elems();
    const uint32_t first = static_cast<uint32_t>(begin / ce);
    const uint32_t last = static_cast<uint32_t>((end - 1) / ce);
    ChunkDecoder decode = kChunkDecoders[static_cast<int>(v.kind())];
    auto one = [&](size_t i) {
        uint32_t c = first + static_cast<uint32_t>(i);
        uint64_t c_begin = uint64_t{c} * ce, c_end = std::min(c_begin + ce, t.numel());
        if (c_begin >= begin && c_end <= end) {
            decode(t, c, dst + (c_begin - begin) * vb);
            return;
        }
        // An edge chunk: decode into per-thread scratch (sized once) and copy the window.
        thread_local std::vector<uint8_t> scratch;
        if (scratch.size() < ce * vb) scratch.resize(ce * vb);
        decode(t, c, scratch.data());
        uint64_t lo = std::max(begin, c_begin), hi = std::min(end, c_end);
        std::memcpy(dst + (lo - begin) * vb, scratch.data() + (lo - c_begin) * vb, (hi - lo) * vb);
    };
    size_t n = size_t{last} - first + 1;
    if (pool)
        pool->parallel_for(n, one);
    else
        for (size_t i = 0; i < n; ++i) one(i);
}

}  // namespace ecf8
