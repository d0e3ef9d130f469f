// Decode-table construction from canonical code lengths.
#include "codec/decode_table.h"

#include "codec/huffman.h"

namespace ecf8 {

uint32_t reverse_bits(uint32_t code, int len) {
    uint32_t r = 0;
    for (int i = 0; i < len; ++i) r |= ((code >> i) & 1u) << (len - 1 - i);
    return r;
}

void build_encode_codes(const uint8_t lengths[256], uint32_t codes_lsb_first[256]) {
    uint32_t codes[256];
    canonical_codes(lengths, codes);
    for (int s = 0; s < 256; ++s) codes_lsb_first[s] = reverse_bits(codes[s], lengths[s]);
}

void build_decode_table(const uint8_t lengths[256], int table_log, uint16_t* table) {
    uint32_t codes[256];
    build_encode_codes(lengths, codes);
    const uint32_t size = 1u << table_log;
    for (int s = 0; s < 256; ++s) {
        const int len = lengths[s];
        if (len == 0) continue;
        const uint16_t entry = static_cast<uint16_t>(s | (len << 8));
        for (uint32_t idx = codes[s]; idx < size; idx += 1u << len) table[idx] = entry;
    }
}

}  // namespace ecf8
