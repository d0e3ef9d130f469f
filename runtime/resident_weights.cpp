// ResidentWeights::load: decode a whole rank shard into host memory.
#include "runtime/resident_weights.h"

#include <filesystem>

#include "codec/container.h"
#include "common/error.h"

namespace ecf8 {

std::unique_ptr<ResidentWeights> ResidentWeights::load(const ShardManifest& manifest, int rank, ThreadPool* pool) {
    ECF8_CHECK(rank >= 0 && rank < manifest.world_size(),
               manifest.dir << ": rank " << rank << " is outside the shards' world of " << manifest.world_size());
    const ManifestRank& mr = manifest.ranks[rank];
    const std::string path = (std::filesystem::path(manifest.dir) / mr.file).string();
    ECF8_CHECK(std::filesystem::exists(path),
               manifest.dir << ": rank " << rank << " file " << mr.file << " is missing");
    const CompressedFile file = CompressedFile::open(path);
    auto w = std::make_unique<ResidentWeights>();
    for (const ManifestTensor& t : mr.tensors) {
        const TensorRecord& rec = file.record(t.name);
        ECF8_CHECK(rec.xxh64 == t.xxh64 && rec.shape == t.shape && rec.dtype == t.dtype,
                   path << ": tensor " << t.name << " disagrees with the manifest (dtype, shape or checksum)");
        Entry e{t, std::vector<uint8_t>(rec.raw_bytes())};
        file.decode(rec, e.bytes.data(), pool);
        w->bytes_ += e.bytes.size();
        w->tensors_.emplace(t.name, std::move(e));
    }
    return w;
}

WeightView ResidentWeights::get(const std::string& name) const {
    auto it = tensors_.find(name);
    ECF8_CHECK(it != tensors_.end(), "this rank holds no part of tensor " << name);
    const Entry& e = it->second;
    return WeightView{e.bytes.data(), e.meta.dtype, e.meta.shape, e.meta.split_dim, e.meta.begin};
}

}  // namespace ecf8
