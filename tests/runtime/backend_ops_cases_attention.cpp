// Cases of the paged KV cache's ops: kv_cache_write (rows into a shuffled pool, BF16 or F32, bytes compared
// exactly) and paged_mla_attention over a ragged batch (decode tokens and prefill chunks of several
// sequences, block tables out of order), against the absorbed path in float64 over the same cache values.
#include "tests/runtime/backend_ops_harness.h"

namespace ecf8::opstest {
namespace {

// A ragged batch over a pool: each sequence has `context` cached positions and `fresh` new tokens.
struct PagedInputs {
    cpu::MlaDims d;
    core::KvDType dtype;
    int64_t block_tokens = 0, n_blocks = 0, max_blocks = 0;
    std::vector<PagedSeq> seqs;
    float scale = 0.0f;
    std::vector<float> rows;         // [pool slots, row]: every written row (unwritten: 0)
    std::vector<int64_t> slots;      // the written slots, in row order of `written`
    std::vector<float> written;      // [slots, row]
    std::vector<int32_t> tables;     // [seqs, max_blocks]
    std::vector<int64_t> positions;  // of the new tokens
    std::vector<int32_t> token_seq;
    std::vector<float> q, wkv_b;
    int64_t row() const { return d.kv_lora_rank + d.qk_rope_head_dim; }
};

// The value the cache holds for v.
double stored(float v, core::KvDType t) {
    return t == core::KvDType::BF16 ? static_cast<double>(bf16_to_float(float_to_bf16(v))) : static_cast<double>(v);
}

// Tables are table_blocks wide when that is more than the sequences need, padded with block 0 as the
// runtime pads them (its tables are max_model_len wide).
std::shared_ptr<PagedInputs> draw_paged(std::mt19937& rng, const cpu::MlaDims& d, core::KvDType dtype,
                                        int64_t block_tokens, const std::vector<PagedSeq>& seqs,
                                        int64_t table_blocks = 0) {
    auto in = std::make_shared<PagedInputs>();
    in->d = d;
    in->dtype = dtype;
    in->block_tokens = block_tokens;
    in->seqs = seqs;
    in->scale = static_cast<float>(1.3 / std::sqrt(static_cast<double>(d.qk_head_dim())));
    for (const PagedSeq& s : seqs)
        in->max_blocks = std::max(in->max_blocks, (s.context + s.fresh + block_tokens - 1) / block_tokens);
    in->n_blocks = in->max_blocks * static_cast<int64_t>(seqs.size()) + 3;  // spare blocks are never read
    const int64_t used_blocks = in->max_blocks;
    in->max_blocks = std::max(in->max_blocks, table_blocks);
    std::vector<int32_t> ids(static_cast<size_t>(in->n_blocks));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    const int64_t row = in->row();
    in->rows.assign(static_cast<size_t>(in->n_blocks * block_tokens * row), 0.0f);
    size_t next = 0;
    for (size_t s = 0; s < seqs.size(); ++s) {
        for (int64_t b = 0; b < in->max_blocks; ++b) in->tables.push_back(b < used_blocks ? ids[next++] : 0);
        for (int64_t p = 0; p < seqs[s].context + seqs[s].fresh; ++p) {
            const int64_t slot = in->tables[s * in->max_blocks + p / block_tokens] * block_tokens + p % block_tokens;
            const std::vector<float> v = uniform(rng, static_cast<size_t>(row), -1, 1);
            in->slots.push_back(slot);
            in->written.insert(in->written.end(), v.begin(), v.end());
            std::copy(v.begin(), v.end(), in->rows.begin() + slot * row);
            if (p >= seqs[s].context) {
                in->positions.push_back(p);
                in->token_seq.push_back(static_cast<int32_t>(s));
            }
        }
    }
    in->q = uniform(rng, in->positions.size() * d.n_heads * d.qk_head_dim(), -1, 1);
    in->wkv_b = uniform(rng, d.n_heads * (d.qk_nope_head_dim + d.v_head_dim) * d.kv_lora_rank, -0.3f, 0.3f);
    return in;
}

// The pool on the device, written by kv_cache_write.
Buffer write_pool(const Device& dev, const PagedInputs& in, core::KvPages* pages) {
    const int64_t elem = core::kv_elem_bytes(in.dtype);
    Buffer pool = dev.backend->buffer(in.n_blocks * in.block_tokens * in.row() * elem, MemoryKind::Device, "test");
    dev.ops().fill_zero(pool.data(), pool.size(), dev.s());
    *pages = {pool.data(), in.dtype, in.block_tokens, in.n_blocks, in.row()};
    Buffer rows = dev.up(in.written), slots = dev.up(in.slots);
    dev.ops().kv_cache_write(rows.as<float>(), static_cast<int64_t>(in.slots.size()), slots.as<int64_t>(), *pages,
                             dev.s());
    dev.backend->synchronize(dev.s());  // rows and slots go out of scope
    return pool;
}

std::vector<double> paged_reference(const PagedInputs& in) {
    const auto& d = in.d;
    const int64_t H = d.n_heads, C = d.kv_lora_rank, N = d.qk_nope_head_dim, R = d.qk_rope_head_dim;
    const int64_t V = d.v_head_dim, QK = d.qk_head_dim(), row = in.row();
    std::vector<double> out(in.positions.size() * H * V);
    std::vector<double> lat(C), olat(C);
    for (size_t t = 0; t < in.positions.size(); ++t) {
        const int32_t* table = in.tables.data() + in.token_seq[t] * in.max_blocks;
        auto cached = [&](int64_t p, int64_t i) {
            const int64_t slot = table[p / in.block_tokens] * in.block_tokens + p % in.block_tokens;
            return stored(in.rows[slot * row + i], in.dtype);
        };
        for (int64_t h = 0; h < H; ++h) {
            const float* q = in.q.data() + (t * H + h) * QK;
            const float* wk = in.wkv_b.data() + h * (N + V) * C;
            const float* wv = wk + N * C;
            std::fill(lat.begin(), lat.end(), 0.0);
            for (int64_t i = 0; i < N; ++i)
                for (int64_t c = 0; c < C; ++c) lat[c] += static_cast<double>(q[i]) * wk[i * C + c];
            const int64_t keys = in.positions[t] + 1;
            std::vector<double> p(keys);
            for (int64_t s = 0; s < keys; ++s) {
                double a = 0.0;
                for (int64_t c = 0; c < C; ++c) a += lat[c] * cached(s, c);
                for (int64_t i = 0; i < R; ++i) a += static_cast<double>(q[N + i]) * cached(s, C + i);
                p[s] = a * in.scale;
            }
            const double m = *std::max_element(p.begin(), p.end());
            double sum = 0.0;
            for (double& e : p) sum += (e = std::exp(e - m));
            std::fill(olat.begin(), olat.end(), 0.0);
            for (int64_t s = 0; s < keys; ++s)
                for (int64_t c = 0; c < C; ++c) olat[c] += p[s] / sum * cached(s, c);
            for (int64_t v = 0; v < V; ++v) {
                double a = 0.0;
                for (int64_t c = 0; c < C; ++c) a += wv[v * C + c] * olat[c];
                out[(t * H + h) * V + v] = a;
            }
        }
    }
    return out;
}

}  // namespace

OpCase make_kv_cache_write(std::mt19937& rng, const cpu::MlaDims& d, core::KvDType dtype, int64_t block_tokens,
                           const std::vector<PagedSeq>& seqs) {
    auto in = draw_paged(rng, d, dtype, block_tokens, seqs);
    return {"kv_cache_write",
            [=](const Device& dev) {
                core::KvPages pages;
                Buffer pool = write_pool(dev, *in, &pages);
                const size_t n = in->rows.size();
                Output o;
                if (in->dtype == core::KvDType::F32) {
                    o.f = dev.down<float>(pool, n);
                } else {
                    for (uint16_t v : dev.down<uint16_t>(pool, n)) o.f.push_back(bf16_to_float(v));
                }
                return o;
            },
            [=] {
                Reference r;
                for (float v : in->rows) r.f.push_back(stored(v, in->dtype));
                r.mag.assign(r.f.size(), 0.0);  // exact: the rounding is defined
                return r;
            }};
}

OpCase make_paged_mla(std::mt19937& rng, const cpu::MlaDims& d, core::KvDType dtype, int64_t block_tokens,
                      const std::vector<PagedSeq>& seqs, int64_t table_blocks) {
    auto in = draw_paged(rng, d, dtype, block_tokens, seqs, table_blocks);
    return {"paged_mla_attention",
            [=](const Device& dev) {
                core::KvPages pages;
                Buffer pool = write_pool(dev, *in, &pages);
                const int64_t T = static_cast<int64_t>(in->positions.size());
                Buffer q = dev.up(in->q), w = dev.up(in->wkv_b), pos = dev.up(in->positions);
                Buffer seq = dev.up(in->token_seq), tables = dev.up(in->tables);
                Buffer scratch = dev.alloc(core::paged_attention_scratch_floats(
                    d.n_heads, d.kv_lora_rank, d.qk_rope_head_dim, in->block_tokens, T));
                const int64_t n_out = T * d.n_heads * d.v_head_dim;
                Buffer out = dev.alloc(n_out);
                const core::RaggedBatch batch{T,
                                              pos.as<int64_t>(),
                                              seq.as<int32_t>(),
                                              tables.as<int32_t>(),
                                              static_cast<int64_t>(in->seqs.size()),
                                              in->max_blocks,
                                              *std::max_element(in->positions.begin(), in->positions.end()) + 1};
                dev.ops().paged_mla_attention(q.as<float>(), pages, w.as<float>(), d, batch, in->scale,
                                              scratch.as<float>(), out.as<float>(), dev.s());
                return Output{dev.down<float>(out, n_out), {}};
            },
            [=] {
                Reference r;
                r.f = paged_reference(*in);
                double top = 0.0;
                for (double v : r.f) top = std::max(top, std::fabs(v));
                r.mag.assign(r.f.size(), top);
                return r;
            }};
}

}  // namespace ecf8::opstest
