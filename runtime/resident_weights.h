// ResidentWeights: a WeightSource that decodes every tensor of one rank's shard once, at load, and keeps the
// decoded bytes in host memory. The simplest source: tests use it as the reference for the just-in-time
// pipeline, which must give the same logits from the same bytes.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/model.h"
#include "sharding/shard_io.h"

namespace ecf8 {

class ThreadPool;

class ResidentWeights : public WeightSource {
public:
    // Opens rank `rank`'s file (ShardManifest::open_rank checks it against the manifest) and decodes every
    // tensor (each decode verifies its checksum). Errors name the file and the tensor.
    static std::unique_ptr<ResidentWeights> load(const ShardManifest& manifest, int rank, ThreadPool* pool);

    WeightView get(const std::string& name) const override;
    uint64_t decoded_bytes() const { return bytes_; }

private:
    struct Entry {
        ManifestTensor meta;
        std::vector<uint8_t> bytes;
    };
    std::map<std::string, Entry> tensors_;
    uint64_t bytes_ = 0;
};

}  // namespace ecf8
