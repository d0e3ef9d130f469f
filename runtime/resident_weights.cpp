// ResidentWeights::load: decode a whole rank shard into host memory.
#include "runtime/resident_weights.h"

#include "codec/container.h"
#include "common/error.h"

namespace ecf8 {

std::unique_ptr<ResidentWeights> ResidentWeights::load(const ShardManifest& manifest, int rank, ThreadPool* pool) {
    const CompressedFile file = manifest.open_rank(rank);
    auto w = std::make_unique<ResidentWeights>();
    for (const ManifestTensor& t : manifest.ranks[rank].tensors) {
        const TensorRecord& rec = file.record(t.name);
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
