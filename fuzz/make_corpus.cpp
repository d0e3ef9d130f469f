// Writes the fuzzers' seed corpora into DIR (created if needed):
//   DIR/blob/         inputs for fuzz_blob: mode-0 seeds (0x00 + a valid blob: FP8/BF16/F16, one or many chunks,
//                     per-tensor and group codebooks, an empty tensor, a Raw blob) and mode-1 seeds (0x01 + an
//                     encode request)
//   DIR/safetensors/  inputs for fuzz_safetensors: a small safetensors file and its compressed ECF8 container
// Usage: ecf8_make_corpus DIR
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "codec/container.h"
#include "codec/encoder.h"
#include "codec/safetensors.h"

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

// Float-like values: a geometric exponent around a centre, random sign and mantissa (as real weights look).
Bytes weights(size_t numel, size_t value_bytes, uint64_t seed) {
    std::mt19937_64 rng(seed);
    Bytes out(numel * value_bytes);
    for (size_t i = 0; i < numel; ++i) {
        int e = 0;
        while (e < 6 && (rng() & 1)) ++e;
        const uint64_t r = rng();
        if (value_bytes == 1) {
            out[i] = static_cast<uint8_t>((r & 0x80) | ((7 - e) << 3) | ((r >> 8) & 7));
        } else {
            const uint16_t x = static_cast<uint16_t>((r & 0x8000) | ((120 - e) << 7) | ((r >> 16) & 0x7F));
            out[2 * i] = static_cast<uint8_t>(x);
            out[2 * i + 1] = static_cast<uint8_t>(x >> 8);
        }
    }
    return out;
}

void write_file(const fs::path& path, const Bytes& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

struct BlobSeed {
    const char* name;
    ecf8::DType dtype;
    size_t numel;
    uint32_t lane_elems;
    uint64_t group_elems;
    bool allow_raw;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    try {
        const fs::path dir = argv[1];
        const fs::path blob_dir = dir / "blob", st_dir = dir / "safetensors";
        fs::create_directories(blob_dir);
        fs::create_directories(st_dir);

        const BlobSeed seeds[] = {
            {"fp8_one_chunk", ecf8::DType::F8_E4M3, 300, 0, 0, false},
            {"fp8_chunks", ecf8::DType::F8_E4M3, 700, 2, 0, false},
            {"fp8_groups", ecf8::DType::F8_E4M3, 700, 4, 256, false},
            {"e5m2_tiny", ecf8::DType::F8_E5M2, 5, 2, 0, false},
            {"fp8_empty", ecf8::DType::F8_E4M3, 0, 2, 0, false},
            {"bf16_chunks", ecf8::DType::BF16, 400, 4, 0, false},
            {"bf16_groups", ecf8::DType::BF16, 500, 2, 128, false},
            {"f16_chunks", ecf8::DType::F16, 300, 2, 0, false},
            {"f32_raw", ecf8::DType::F32, 40, 0, 0, true},
        };
        uint64_t seed = 1;
        for (const BlobSeed& s : seeds) {
            Bytes values = weights(s.numel, ecf8::dtype_size(s.dtype), seed++);
            ecf8::EncodeOptions opt;
            opt.lane_elems = s.lane_elems;
            opt.group_elems = s.group_elems;
            opt.allow_raw = s.allow_raw;
            Bytes blob = ecf8::encode_tensor(s.dtype, values.data(), s.numel, opt);
            Bytes input = {0x00};
            input.insert(input.end(), blob.begin(), blob.end());
            write_file(blob_dir / (std::string("blob_") + s.name), input);
        }
        // Mode-1 seeds: [0x01, dtype index, lane_elems byte, knobs, values...] (see fuzz_blob.cpp).
        const struct {
            const char* name;
            uint8_t dtype, lane, knobs;
            size_t numel;
        } requests[] = {
            {"fp8_default", 0, 0, 0x00, 200}, {"fp8_lane2_groups", 0, 1, 0x20, 400}, {"e5m2_cap8", 1, 2, 0x08, 300},
            {"bf16_lane4", 2, 2, 0x00, 256},  {"f16_groups_raw", 3, 1, 0x90, 256},
        };
        for (const auto& q : requests) {
            const size_t vb = q.dtype >= 2 ? 2 : 1;
            Bytes values = weights(q.numel, vb, seed++);
            Bytes input = {0x01, q.dtype, q.lane, q.knobs};
            input.insert(input.end(), values.begin(), values.end());
            write_file(blob_dir / (std::string("encode_") + q.name), input);
        }

        // A small checkpoint with a codable tensor of each kind and an unchanged one, and its container.
        const Bytes w8 = weights(16 * 24, 1, seed++), w16 = weights(8 * 20, 2, seed++), f16 = weights(50, 2, seed++);
        const Bytes bias(32, 0x3F);
        const std::string original = (st_dir / "original.safetensors").string();
        ecf8::write_safetensors(original, {{"format", "pt"}},
                                {{"layers.0.w", ecf8::DType::F8_E4M3, {16, 24}, w8.data(), w8.size()},
                                 {"layers.0.v", ecf8::DType::BF16, {8, 20}, w16.data(), w16.size()},
                                 {"layers.0.h", ecf8::DType::F16, {50}, f16.data(), f16.size()},
                                 {"bias", ecf8::DType::F32, {8}, bias.data(), bias.size()}});
        ecf8::CompressOptions copt;
        copt.encode.lane_elems = 2;
        copt.threads = 1;
        copt.progress = false;
        ecf8::compress_file(original, (st_dir / "compressed.safetensors").string(), copt);
        std::printf("seed corpus written to %s/{blob,safetensors}\n", dir.string().c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make_corpus: %s\n", e.what());
        return 1;
    }
    return 0;
}
