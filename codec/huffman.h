// Length-limited optimal prefix codes (package-merge) and canonical code assignment.
// A codebook is fully described by its 256 code lengths; codes are canonical (sorted by length, then symbol).
#pragma once

#include <cstdint>

namespace ecf8 {

constexpr int kAlphabetSize = 256;

// Optimal code lengths for `freq` under the cap `max_len` (1..15), by package-merge.
// Symbols with zero frequency get length 0. Every result is a complete code (Kraft sum exactly 1):
// with a single used symbol, a second (unused) symbol receives the other 1-bit code.
// With no used symbol every length is 0.
void build_code_lengths(const uint64_t freq[kAlphabetSize], int max_len, uint8_t lengths[kAlphabetSize]);

// Canonical MSB-first codes for `lengths`; codes[s] holds the `lengths[s]` low bits.
void canonical_codes(const uint8_t lengths[kAlphabetSize], uint32_t codes[kAlphabetSize]);

// True when the lengths form a complete prefix code with every length <= max_len (or all are 0).
bool is_complete_code(const uint8_t lengths[kAlphabetSize], int max_len);

// Bits needed to code `freq` with `lengths` (sum of freq * length).
uint64_t coded_bits(const uint64_t freq[kAlphabetSize], const uint8_t lengths[kAlphabetSize]);

// Shannon entropy of the histogram, in bits per symbol.
double histogram_entropy(const uint64_t freq[kAlphabetSize]);

}  // namespace ecf8
