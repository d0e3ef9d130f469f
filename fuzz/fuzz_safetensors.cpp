// libFuzzer target for the safetensors reader and the ECF8 container records: SafetensorsFile::parse on an
// in-memory image, then, when the file carries ECF8 container metadata, parse_tensor_record on every "ecf8:"
// entry and the checks CompressedFile::open makes, and finally prepare + decode of small ECF8 blobs. Every
// problem must surface as an ecf8::Error; any other exception, crash or out-of-bounds access is a bug.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "codec/container.h"
#include "codec/decoder.h"
#include "codec/safetensors.h"
#include "common/error.h"
#include "fuzz/aligned_copy.h"

namespace {

constexpr uint64_t kMaxDecodeBytes = uint64_t{1} << 20;

volatile uint8_t g_sink;

void check_records(const ecf8::SafetensorsFile& file) {
    const std::string prefix = ecf8::kTensorKeyPrefix;
    for (const auto& [key, value] : file.metadata()) {
        if (key.rfind(prefix, 0) != 0) continue;
        const std::string name = key.substr(prefix.size());
        ecf8::TensorRecord r;
        try {
            r = ecf8::parse_tensor_record(name, value, "fuzz");
        } catch (const ecf8::Error&) {
            continue;
        }
        (void)r.raw_bytes();
        const ecf8::TensorInfo* info = file.find(name);
        if (!info) continue;
        try {
            if (!r.ecf8) continue;
            // What CompressedFile::open and CompressedFile::prepare check, minus the stored checksum (which a
            // fuzzer cannot forge), then a decode of small tensors.
            if (info->dtype != ecf8::DType::U8 || info->shape.size() != 1) continue;
            const uint8_t* bytes = file.tensor_data(*info);
            ecf8::PreparedTensor t = ecf8::PreparedTensor::prepare({bytes, info->nbytes()}, name);
            if (t.dtype() != r.dtype || t.numel() != r.numel()) continue;
            if (t.decoded_bytes() > kMaxDecodeBytes) continue;
            if (t.view().header.mode == static_cast<uint8_t>(ecf8::BlobMode::Huffman) &&
                t.view().chunk_elems() * t.view().value_bytes() > kMaxDecodeBytes)
                continue;
            std::vector<uint8_t> out(static_cast<size_t>(t.decoded_bytes()));
            ecf8::decode_all(t, out.data(), nullptr);
        } catch (const ecf8::Error&) {
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    AlignedCopy image(data, size);
    try {
        ecf8::SafetensorsFile file = ecf8::SafetensorsFile::parse({image.data(), image.size()}, "fuzz");
        for (const ecf8::TensorInfo& info : file.tensors()) {
            const ecf8::TensorInfo& again = file.get(info.name);
            const uint8_t* p = file.tensor_data(again);
            if (again.nbytes() > 0) g_sink = static_cast<uint8_t>(p[0] ^ p[again.nbytes() - 1]);
            (void)info.numel();
        }
        // A container has the "ecf8.format" key; records are checked whenever any "ecf8:" entry is present.
        check_records(file);
    } catch (const ecf8::Error&) {
    }
    return 0;
}
