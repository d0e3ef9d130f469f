// Random tensors for codec tests: every distribution the issue names, reproducible from a printed seed.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace ecf8::test {

enum class Shape { Gaussian, Uniform, Single, Skewed, AllBytes };

inline const char* shape_name(Shape s) {
    static const char* names[] = {"gaussian", "uniform", "single", "skewed", "all-bytes"};
    return names[static_cast<int>(s)];
}

// Bytes for `numel` values of `value_bytes` each. Gaussian builds a float-like exponent concentration
// in the top byte(s); Skewed puts 99.99% of the values on one pattern; AllBytes cycles through 0..255.
inline std::vector<uint8_t> make_values(Shape shape, size_t numel, size_t value_bytes, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> out(numel * value_bytes);
    std::uniform_int_distribution<int> byte(0, 255);
    for (size_t i = 0; i < numel; ++i) {
        uint8_t* v = out.data() + i * value_bytes;
        switch (shape) {
            case Shape::Uniform:
                for (size_t b = 0; b < value_bytes; ++b) v[b] = static_cast<uint8_t>(byte(rng));
                break;
            case Shape::Single:
                for (size_t b = 0; b < value_bytes; ++b) v[b] = 0x3C;
                break;
            case Shape::Skewed:
                for (size_t b = 0; b < value_bytes; ++b)
                    v[b] = (rng() % 10000 == 0) ? static_cast<uint8_t>(byte(rng)) : 0x42;
                break;
            case Shape::AllBytes:
                for (size_t b = 0; b < value_bytes; ++b) v[b] = static_cast<uint8_t>(i + b * 7);
                break;
            case Shape::Gaussian: {
                // A geometric exponent around a centre gives 2.5-3 bits of exponent entropy.
                int e = 0;
                while (e < 6 && (rng() & 1)) ++e;
                uint64_t r = rng();
                if (value_bytes == 1) {
                    v[0] = static_cast<uint8_t>((r & 0x80) | ((7 - e) << 3) | ((r >> 8) & 7));
                } else {
                    uint16_t x = static_cast<uint16_t>((r & 0x8000) | ((120 - e) << 7) | ((r >> 16) & 0x7F));
                    v[0] = static_cast<uint8_t>(x);
                    v[1] = static_cast<uint8_t>(x >> 8);
                }
                break;
            }
        }
    }
    return out;
}

inline uint64_t test_seed() {
    static const uint64_t seed = [] {
        const char* env = std::getenv("ECF8_TEST_SEED");
        uint64_t s = env ? std::stoull(env) : std::random_device{}();
        std::printf("ECF8_TEST_SEED=%llu (set it to reproduce)\n", static_cast<unsigned long long>(s));
        return s;
    }();
    return seed;
}

}  // namespace ecf8::test
