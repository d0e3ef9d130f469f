// Encoder: symbol split, per-group histograms and optimal length-limited codes, then each chunk is
// coded independently: every lane's bits are packed into words, and the words are interleaved in the
// exact order the decoder's refill rule will ask for them (simulated here, decode_core.h).
#include "codec/encoder.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "codec/decode_table.h"
#include "codec/format.h"
#include "codec/huffman.h"
#include "common/error.h"
#include "common/thread_pool.h"

namespace ecf8 {

uint32_t default_lane_elems(DType dt) { return dtype_size(dt) == 1 ? 2048 : 4096; }

uint32_t effective_lane_elems(DType dt, const EncodeOptions& options) {
    return options.lane_elems ? options.lane_elems : default_lane_elems(dt);
}

void EncodeOptions::validate() const {
    ECF8_CHECK(lane_elems == 0 || (lane_elems % kSymbolsPerStep == 0 && lane_elems <= (1u << 24)),
               "lane_elems " << lane_elems << " must be even and in 2..2^24 (or 0 for the default)");
    ECF8_CHECK(max_code_len >= 1 && max_code_len <= kMaxCodeLen,
               "max_code_len " << max_code_len << " must be in 1.." << kMaxCodeLen);
}

void parse_granularity(const std::string& text, EncodeOptions* options) {
    if (text == "tensor") {
        options->group_elems = 0;
        return;
    }
    const std::string prefix = "group:";
    ECF8_CHECK(text.rfind(prefix, 0) == 0 && text.size() > prefix.size(),
               "--granularity '" << text << "' must be 'tensor' or 'group:N'");
    std::string digits = text.substr(prefix.size());
    ECF8_CHECK(digits.find_first_not_of("0123456789") == std::string::npos && digits.size() <= 18,
               "--granularity '" << text << "': N must be a positive integer");
    options->group_elems = std::stoull(digits);
    ECF8_CHECK(options->group_elems > 0, "--granularity " << text << ": N must be positive");
}

namespace {

struct SplitTensor {
    const uint8_t* symbols = nullptr;  // numel symbols
    std::vector<uint8_t> symbol_storage;
    std::vector<uint8_t> raw;  // numel raw bytes for 16-bit kinds
};

SplitTensor split_values(SymbolKind kind, const void* data, uint64_t numel) {
    SplitTensor s;
    if (kind == SymbolKind::Byte) {
        s.symbols = static_cast<const uint8_t*>(data);
        return s;
    }
    const uint16_t* v = static_cast<const uint16_t*>(data);
    s.symbol_storage.resize(numel);
    s.raw.resize(numel);
    for (uint64_t i = 0; i < numel; ++i) {
        s.symbol_storage[i] = split_symbol(kind, v[i]);
        s.raw[i] = split_raw(kind, v[i]);
    }
    s.symbols = s.symbol_storage.data();
    return s;
}

struct ChunkScratch {
    std::vector<uint32_t> words;         // per lane: its packed code words
    std::vector<uint32_t> refill_steps;  // per lane: the step of each word the decoder will take
    std::vector<uint32_t> step_lanes;    // per step: bit l set when lane l takes a word
    std::vector<uint32_t> step_start;    // per step: words taken at earlier steps
};

// Byte histogram with four interleaved counters, so runs of one symbol do not serialize on one counter.
void histogram(const uint8_t* __restrict symbols, uint64_t n, uint64_t freq[256]) {
    uint32_t counts[4][256] = {};
    uint64_t i = 0;
    std::fill(freq, freq + 256, 0);
    while (i < n) {
        // Flush before a 32-bit counter could overflow.
        const uint64_t stop = std::min(n, i + (uint64_t{1} << 30));
        for (; i + 4 <= stop; i += 4) {
            ++counts[0][symbols[i]];
            ++counts[1][symbols[i + 1]];
            ++counts[2][symbols[i + 2]];
            ++counts[3][symbols[i + 3]];
        }
        for (; i < stop; ++i) ++counts[0][symbols[i]];
        for (int s = 0; s < 256; ++s) {
            freq[s] += uint64_t{counts[0][s]} + counts[1][s] + counts[2][s] + counts[3][s];
            counts[0][s] = counts[1][s] = counts[2][s] = counts[3][s] = 0;
        }
    }
}

struct Codebook {
    uint8_t lengths[256];
    uint32_t packed[256];  // LSB-first code | length << 16
};

// Codes one chunk into `out` (cleared first). Each lane is coded on its own (state in registers): its
// bits are packed into words while the decoder's bit count is simulated to record at which steps the
// lane will take a word. The words are then placed in the decoder's refill order (by step, then lane); a
// lane that asks after its last word gets a zero word.
void encode_chunk(const uint8_t* __restrict symbols, uint32_t chunk_elems, const Codebook& book, uint32_t lane_elems,
                  ChunkScratch& scratch, std::vector<uint32_t>& out) {
    const uint32_t lane_cap = lane_elems * kMaxCodeLen / 32 + 2;
    const uint32_t refill_cap = lane_elems / kSymbolsPerStep + 1;
    scratch.words.resize(size_t{kLanes} * lane_cap);
    scratch.refill_steps.resize(size_t{kLanes} * refill_cap);
    const uint32_t steps = chunk_steps(chunk_elems), full_steps = chunk_elems / kStepElems;
    uint32_t word_count[kLanes], refill_count[kLanes];
    for (uint32_t lane = 0; lane < kLanes; ++lane) {
        uint32_t* __restrict words = scratch.words.data() + size_t{lane} * lane_cap;
        uint32_t* __restrict refills = scratch.refill_steps.data() + size_t{lane} * refill_cap;
        uint64_t acc = 0;
        uint32_t acc_bits = 0, held = 0, nw = 0, nr = 0;
        // Full steps, branch-free: the lane codes its two symbols of the step as one bit string.
        for (uint32_t t = 0; t < full_steps; ++t) {
            const uint8_t* pair = symbols + chunk_element(t, lane, 0);
            const uint32_t c0 = book.packed[pair[0]], c1 = book.packed[pair[1]];
            const uint32_t l0 = c0 >> 16, l1 = c1 >> 16;
            const uint32_t want = held < kRefillBelow;
            refills[nr] = t;
            nr += want;
            held += (want << 5) - l0 - l1;
            acc |= (uint64_t{c0 & 0xFFFF} | (uint64_t{c1 & 0xFFFF} << l0)) << acc_bits;
            acc_bits += l0 + l1;
            const uint32_t full = acc_bits >= 32;
            words[nw] = static_cast<uint32_t>(acc);
            nw += full;
            acc >>= full << 5;
            acc_bits -= full << 5;
        }
        for (uint32_t t = full_steps; t < steps; ++t) {  // the partial last step
            uint32_t n = lane_symbols(t, lane, chunk_elems);
            if (n == 0) break;
            if (held < kRefillBelow) {
                refills[nr++] = t;
                held += 32;
            }
            for (uint32_t k = 0; k < n; ++k) {
                const uint32_t c = book.packed[symbols[chunk_element(t, lane, k)]];
                acc |= uint64_t{c & 0xFFFF} << acc_bits;
                acc_bits += c >> 16;
                held -= c >> 16;
            }
            if (acc_bits >= 32) {
                words[nw++] = static_cast<uint32_t>(acc);
                acc >>= 32;
                acc_bits -= 32;
            }
        }
        if (acc_bits) words[nw++] = static_cast<uint32_t>(acc);
        word_count[lane] = nw;
        refill_count[lane] = nr;
    }
    // Word k of lane l goes to (words taken before its step) + (lanes below l taking a word at that step).
    scratch.step_lanes.assign(steps, 0);
    for (uint32_t lane = 0; lane < kLanes; ++lane) {
        const uint32_t* refills = scratch.refill_steps.data() + size_t{lane} * refill_cap;
        for (uint32_t r = 0; r < refill_count[lane]; ++r) scratch.step_lanes[refills[r]] |= 1u << lane;
    }
    scratch.step_start.resize(steps);
    uint32_t total = 0;
    for (uint32_t t = 0; t < steps; ++t) {
        scratch.step_start[t] = total;
        total += static_cast<uint32_t>(__builtin_popcount(scratch.step_lanes[t]));
    }
    out.resize(total);
    for (uint32_t lane = 0; lane < kLanes; ++lane) {
        const uint32_t* refills = scratch.refill_steps.data() + size_t{lane} * refill_cap;
        const uint32_t* words = scratch.words.data() + size_t{lane} * lane_cap;
        const uint32_t below = (1u << lane) - 1;
        for (uint32_t r = 0; r < refill_count[lane]; ++r) {
            const uint32_t t = refills[r];
            const uint32_t at =
                scratch.step_start[t] + static_cast<uint32_t>(__builtin_popcount(scratch.step_lanes[t] & below));
            out[at] = r < word_count[lane] ? words[r] : 0u;
        }
    }
}

void write_raw_blob(DType dt, const void* data, uint64_t numel, uint64_t hash, std::vector<uint8_t>& blob) {
    BlobHeader h;
    h.dtype = static_cast<uint8_t>(dt);
    h.mode = static_cast<uint8_t>(BlobMode::Raw);
    h.numel = numel;
    h.content_xxh64 = hash;
    BlobLayout l = blob_layout(h);
    blob.assign(l.total, 0);
    std::memcpy(blob.data(), &h, sizeof(h));
    if (numel) std::memcpy(blob.data() + l.stream, data, numel * dtype_size(dt));
}

}  // namespace

std::vector<uint8_t> encode_tensor(DType dt, const void* data, uint64_t numel, const EncodeOptions& options,
                                   ThreadPool* pool) {
    options.validate();
    const uint64_t raw_size = numel * dtype_size(dt);
    const uint64_t hash = XXH64(data, raw_size, 0);
    std::vector<uint8_t> blob;
    if (!dtype_is_codable(dt)) {
        write_raw_blob(dt, data, numel, hash, blob);
        return blob;
    }
    const SymbolKind kind = symbol_kind_for(dt);
    const uint32_t lane_elems = effective_lane_elems(dt, options);
    const uint64_t chunk_elems = uint64_t{kLanes} * lane_elems;
    const uint64_t chunk_count64 = (numel + chunk_elems - 1) / chunk_elems;
    ECF8_CHECK(chunk_count64 < UINT32_MAX, "tensor of " << numel << " elements has too many chunks");
    const uint32_t chunk_count = static_cast<uint32_t>(chunk_count64);
    const uint32_t group_chunks = options.group_elems
                                      ? static_cast<uint32_t>((options.group_elems + chunk_elems - 1) / chunk_elems)
                                      : std::max(chunk_count, 1u);
    const uint32_t group_count = (chunk_count + group_chunks - 1) / group_chunks;

    SplitTensor split = split_values(kind, data, numel);
    std::vector<Codebook> books(group_count);
    auto for_each = [&](size_t n, auto&& fn) {
        if (pool)
            pool->parallel_for(n, fn);
        else
            for (size_t i = 0; i < n; ++i) fn(i);
    };
    for_each(group_count, [&](size_t g) {
        uint64_t freq[256];
        uint64_t begin = g * group_chunks * chunk_elems, end = std::min(numel, begin + group_chunks * chunk_elems);
        histogram(split.symbols + begin, end - begin, freq);
        build_code_lengths(freq, options.max_code_len, books[g].lengths);
        uint32_t codes[256];
        build_encode_codes(books[g].lengths, codes);
        for (int s = 0; s < 256; ++s) books[g].packed[s] = codes[s] | (uint32_t{books[g].lengths[s]} << 16);
    });

    std::vector<std::vector<uint32_t>> chunk_words(chunk_count);
    for_each(chunk_count, [&](size_t c) {
        thread_local ChunkScratch scratch;
        uint64_t begin = c * chunk_elems;
        uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(chunk_elems, numel - begin));
        encode_chunk(split.symbols + begin, n, books[c / group_chunks], lane_elems, scratch, chunk_words[c]);
    });

    BlobHeader h;
    h.dtype = static_cast<uint8_t>(dt);
    h.mode = static_cast<uint8_t>(BlobMode::Huffman);
    h.numel = numel;
    h.lane_elems = lane_elems;
    h.chunk_count = chunk_count;
    h.group_chunks = group_chunks;
    h.codebook_count = group_count;
    h.symbol_kind = static_cast<uint8_t>(kind);
    h.max_code_len = 1;
    for (const auto& b : books)
        for (int s = 0; s < 256; ++s) h.max_code_len = std::max(h.max_code_len, b.lengths[s]);
    for (const auto& w : chunk_words) h.stream_words += w.size();
    h.raw_bytes = kind == SymbolKind::Byte ? 0 : numel;
    h.content_xxh64 = hash;
    ECF8_CHECK(h.stream_words <= UINT32_MAX - kStreamPadWords,
               "tensor of " << numel << " elements codes to " << h.stream_words << " words, over 2^32");
    BlobLayout l = blob_layout(h);
    if (options.allow_raw && l.total >= raw_size + kBlobHeaderBytes) {
        write_raw_blob(dt, data, numel, hash, blob);
        return blob;
    }
    blob.assign(l.total, 0);
    std::memcpy(blob.data(), &h, sizeof(h));
    for (uint32_t g = 0; g < group_count; ++g)
        pack_codebook(books[g].lengths, blob.data() + l.codebooks + size_t{g} * kCodebookBytes);
    uint32_t* offsets = reinterpret_cast<uint32_t*>(blob.data() + l.chunk_offsets);
    uint32_t* stream = reinterpret_cast<uint32_t*>(blob.data() + l.stream);
    uint32_t pos = 0;
    for (uint32_t c = 0; c < chunk_count; ++c) {
        offsets[c] = pos;
        std::memcpy(stream + pos, chunk_words[c].data(), chunk_words[c].size() * 4);
        pos += static_cast<uint32_t>(chunk_words[c].size());
    }
    offsets[chunk_count] = pos;
    if (!split.raw.empty()) std::memcpy(blob.data() + l.raw, split.raw.data(), split.raw.size());
    return blob;
}

}  // namespace ecf8
