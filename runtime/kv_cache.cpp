// The KV pool's blocks and the sequences' tables.
#include "runtime/kv_cache.h"

#include <utility>

#include "common/error.h"

namespace ecf8 {

void KvPoolOptions::validate() const {
    ECF8_CHECK(block_tokens >= 1, "kv pool: block_tokens must be >= 1, got " << block_tokens);
    ECF8_CHECK(blocks >= 1, "kv pool: the pool must have at least one block, got " << blocks);
    ECF8_CHECK(blocks <= INT32_MAX, "kv pool: " << blocks << " blocks exceed the int32 block ids");
}

core::KvDType parse_kv_dtype(const std::string& name) {
    if (name == "bf16") return core::KvDType::BF16;
    if (name == "f32" || name == "fp32") return core::KvDType::F32;
    ECF8_FAIL("kv_cache.dtype must be bf16 or f32, got '" << name << "'");
}

const char* kv_dtype_name(core::KvDType t) { return t == core::KvDType::BF16 ? "bf16" : "f32"; }

uint64_t kv_block_bytes(const ModelConfig& c, const KvPoolOptions& o) {
    return uint64_t(c.num_hidden_layers) * uint64_t(o.block_tokens) * uint64_t(c.kv_lora_rank + c.qk_rope_head_dim) *
           uint64_t(core::kv_elem_bytes(o.dtype));
}

KvCache::~KvCache() {
    if (pool_ != nullptr) pool_->release(*this);
}

KvCache::KvCache(KvCache&& other) noexcept
    : length(other.length), pool_(std::exchange(other.pool_, nullptr)), blocks_(std::move(other.blocks_)) {
    other.length = 0;
}

KvCache& KvCache::operator=(KvCache&& other) noexcept {
    if (this != &other) {
        if (pool_ != nullptr) pool_->release(*this);
        pool_ = std::exchange(other.pool_, nullptr);
        blocks_ = std::move(other.blocks_);
        length = std::exchange(other.length, 0);
    }
    return *this;
}

KvPool::KvPool(const ModelConfig& config, const KvPoolOptions& options, Backend& backend)
    : options_(options), row_(config.kv_lora_rank + config.qk_rope_head_dim), layers_(config.num_hidden_layers) {
    options_.validate();
    memory_ =
        backend.buffer(kv_block_bytes(config, options_) * uint64_t(options_.blocks), MemoryKind::Device, "kv_cache");
    free_.reserve(static_cast<size_t>(options_.blocks));
    for (int64_t b = options_.blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

core::KvPages KvPool::layer(int layer) const {
    ECF8_CHECK(layer >= 0 && layer < layers_, "kv pool: layer " << layer << " of " << layers_);
    const uint64_t layer_bytes = memory_.size() / uint64_t(layers_);
    return {memory_.as<uint8_t>() + uint64_t(layer) * layer_bytes, options_.dtype, options_.block_tokens,
            options_.blocks, row_};
}

bool KvPool::reserve(KvCache& seq, int64_t tokens) {
    ECF8_CHECK(seq.pool_ == this, "kv pool: the sequence belongs to another pool");
    const int64_t need = blocks_for(tokens) - static_cast<int64_t>(seq.blocks_.size());
    if (need <= 0) return true;
    if (need > free_blocks()) return false;
    for (int64_t i = 0; i < need; ++i) {
        seq.blocks_.push_back(free_.back());
        free_.pop_back();
    }
    return true;
}

void KvPool::release(KvCache& seq) {
    for (auto it = seq.blocks_.rbegin(); it != seq.blocks_.rend(); ++it) free_.push_back(*it);
    seq.blocks_.clear();
    seq.length = 0;
}

}  // namespace ecf8
