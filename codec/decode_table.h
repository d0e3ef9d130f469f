// Flat decode tables: 2^table_log uint16 entries, one lookup per symbol (see decode_core.h).
#pragma once

#include <cstdint>

namespace ecf8 {

// Reverses the low `len` bits of `code`: canonical codes are MSB-first, the stream is read LSB-first.
uint32_t reverse_bits(uint32_t code, int len);

// Fills `table` (2^table_log entries) for a complete code whose lengths are all <= table_log.
void build_decode_table(const uint8_t lengths[256], int table_log, uint16_t* table);

// LSB-first codes ready to OR into a bit accumulator.
void build_encode_codes(const uint8_t lengths[256], uint32_t codes_lsb_first[256]);

}  // namespace ecf8
