// The compressed-file container: a valid safetensors file in which every F8/BF16/F16 tensor is an ECF8
// blob stored as a U8 tensor of the same name. `__metadata__` keeps the original entries and adds
// "ecf8.format" plus one "ecf8:<tensor>" JSON entry per tensor with its original dtype, shape, encoding and
// xxHash64 checksums. Other dtypes are stored unchanged. See docs/FORMAT.md.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "codec/decoder.h"
#include "codec/encoder.h"
#include "codec/safetensors.h"

namespace ecf8 {

constexpr const char* kContainerFormatKey = "ecf8.format";
constexpr const char* kContainerFormatValue = "1";
constexpr const char* kTensorKeyPrefix = "ecf8:";

// What the container's metadata says about one tensor.
struct TensorRecord {
    std::string name;
    DType dtype = DType::U8;     // original dtype
    std::vector<int64_t> shape;  // original shape
    bool ecf8 = false;           // stored as an ECF8 blob (else unchanged)
    uint64_t xxh64 = 0;          // of the original bytes
    uint64_t stored_xxh64 = 0;   // of the stored bytes (the blob, or the unchanged tensor)
    uint64_t numel() const;
    uint64_t raw_bytes() const { return numel() * dtype_size(dtype); }
};

std::string tensor_record_json(const TensorRecord& r);
TensorRecord parse_tensor_record(const std::string& name, const std::string& json, const std::string& file);

// A compressed file opened for reading: mmap'd, with every record parsed and checked against the
// safetensors header. Blobs are validated and their tables built on first use of prepared().
class CompressedFile {
public:
    static CompressedFile open(const std::string& path);
    static bool is_compressed(const SafetensorsFile& file);

    const SafetensorsFile& file() const { return file_; }
    const std::vector<TensorRecord>& records() const { return records_; }  // in file order
    const TensorRecord& record(const std::string& name) const;             // throws naming the file
    const TensorRecord* find(const std::string& name) const;               // nullptr when absent
    std::map<std::string, std::string> original_metadata() const;
    // Checks the stored bytes' checksum, then parses the blob. Throws naming the tensor and the file.
    PreparedTensor prepare(const TensorRecord& r) const;
    // Parses the blob without hashing it: reads its header, codebooks and chunk offsets only. For a
    // caller that copies the blob elsewhere and checks the copy with check_stored() before decoding it.
    PreparedTensor parse(const TensorRecord& r) const;
    // Throws naming the tensor and the file unless `bytes` (stored_bytes(r) of them) match r's stored checksum.
    void check_stored(const TensorRecord& r, const uint8_t* bytes) const;
    // Decodes the tensor into out (r.raw_bytes()) and checks the original checksum.
    void decode(const TensorRecord& r, void* out, ThreadPool* pool) const;
    uint64_t stored_bytes(const TensorRecord& r) const { return file_.get(r.name).nbytes(); }

private:
    explicit CompressedFile(SafetensorsFile file) : file_(std::move(file)) {}
    SafetensorsFile file_;
    std::vector<TensorRecord> records_;
    std::map<std::string, size_t> by_name_;
};

struct CompressOptions {
    EncodeOptions encode;
    int threads = 0;       // 0: every hardware thread
    bool progress = true;  // draw a progress bar on a terminal
};

// Compresses a safetensors file. The output appears atomically (tmp file + rename).
void compress_file(const std::string& in_path, const std::string& out_path, const CompressOptions& options);

// Writes a standard safetensors file whose tensors are byte-identical to the original's.
void decompress_file(const std::string& in_path, const std::string& out_path, int threads, bool progress);

// Compares every tensor of `original` with its decoded twin in `compressed`. Returns the problems found
// (an empty list means identical); each line names the tensor.
std::vector<std::string> verify_files(const std::string& original, const std::string& compressed, int threads);

uint64_t xxh64_of(const void* data, uint64_t bytes);

// Checksums as JSON text: 16 lower-case hex digits. parse_hex64 reads j[key] and throws naming `where`.
std::string hex64(uint64_t v);
uint64_t parse_hex64(const nlohmann::json& j, const char* key, const std::string& where);

}  // namespace ecf8
