// The paged latent KV cache of one rank: one pool of fixed-size blocks (kernels/core/paged_kv.h) in backend
// memory (tag "kv_cache"), and a block table per sequence. MLA caches one latent and one rope key per token
// and layer, shared by every head, so tensor parallelism does not split it: each rank holds the whole cache
// of every sequence. Blocks are taken and returned on the host, in the same order on every rank (the same
// schedule runs everywhere), so every rank's tables are identical.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/core/paged_kv.h"
#include "runtime/backend.h"
#include "sharding/model_config.h"

namespace ecf8 {

struct KvPoolOptions {
    core::KvDType dtype = core::KvDType::BF16;
    int64_t block_tokens = core::kKvBlockTokens;
    int64_t blocks = 0;  // per layer; every layer has the same blocks, so a block id names a slot in each

    void validate() const;  // throws naming the option
};

// "bf16" or "f32" (or "fp32"), as kv_cache.dtype says; throws otherwise.
core::KvDType parse_kv_dtype(const std::string& name);
const char* kv_dtype_name(core::KvDType t);
// Bytes of one block over every layer.
uint64_t kv_block_bytes(const ModelConfig& c, const KvPoolOptions& o);

class KvPool;

// One sequence's share of the pool: its block table and how many positions are cached. Move-only; returns
// its blocks to the pool when it goes.
class KvCache {
public:
    KvCache() = default;
    explicit KvCache(KvPool* pool) : pool_(pool) {}
    ~KvCache();
    KvCache(KvCache&& other) noexcept;
    KvCache& operator=(KvCache&& other) noexcept;
    KvCache(const KvCache&) = delete;
    KvCache& operator=(const KvCache&) = delete;

    KvPool* pool() const { return pool_; }
    const std::vector<int32_t>& blocks() const { return blocks_; }
    int64_t length = 0;  // positions cached (and, during a step, about to be)

private:
    friend class KvPool;
    KvPool* pool_ = nullptr;
    std::vector<int32_t> blocks_;
};

class KvPool {
public:
    KvPool(const ModelConfig& config, const KvPoolOptions& options, Backend& backend);
    KvPool(const KvPool&) = delete;
    KvPool& operator=(const KvPool&) = delete;

    const KvPoolOptions& options() const { return options_; }
    int64_t blocks() const { return options_.blocks; }
    int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
    int64_t blocks_for(int64_t tokens) const { return (tokens + options_.block_tokens - 1) / options_.block_tokens; }
    core::KvPages layer(int layer) const;

    // Grows the sequence's table to hold `tokens` positions. False, taking nothing, when the pool has too few
    // free blocks.
    bool reserve(KvCache& seq, int64_t tokens);
    // Returns every block of the sequence and empties it.
    void release(KvCache& seq);

private:
    KvPoolOptions options_;
    int64_t row_ = 0, layers_ = 0;
    Buffer memory_;
    std::vector<int32_t> free_;  // a stack: the lowest ids are taken first
};

}  // namespace ecf8
