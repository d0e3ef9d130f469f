// Pipeline::forward: the model's stages on the compute stream, weights fetched on copy/decode, collectives
// on comm, ordered by events only.
#include "runtime/pipeline.h"

#include <algorithm>
#include <array>
#include <utility>

#include "common/error.h"

namespace ecf8 {
namespace {

std::string layer_label(const char* what, int layer, const char* detail = nullptr) {
    std::string s = std::string(what) + " L" + std::to_string(layer);
    if (detail != nullptr) s += std::string(" ") + detail;
    return s;
}

}  // namespace

int step_expert_groups(int64_t n_tokens, int64_t topk, int local_experts) {
    return n_tokens * topk <= local_experts ? 1 : kExpertGroups;
}

Pipeline::Pipeline(Model& model, WeightStore& store, Backend& backend)
    : model_(model),
      store_(store),
      backend_(backend),
      copy_(backend.create_stream("copy")),
      decode_(backend.create_stream("decode")),
      compute_(backend.create_stream("compute")),
      comm_(backend.create_stream("comm")),
      to_comm_(backend.create_event()),
      from_comm_(backend.create_event()),
      decode_checked_(backend.create_event()) {
    ECF8_CHECK(store.num_layers() == model.config().num_hidden_layers,
               "the weight store holds " << store.num_layers() << " layers, the model has "
                                         << model.config().num_hidden_layers);
    // The decoder reads routing's picks by the store's local expert index, the MLP by the model's.
    ECF8_CHECK(store.first_expert() == model.first_expert() && store.local_experts() == model.local_experts(),
               "the weight store holds routed experts [" << store.first_expert() << ", "
                                                         << store.first_expert() + store.local_experts()
                                                         << "), the model runs [" << model.first_expert() << ", "
                                                         << model.first_expert() + model.local_experts() << ")");
    model_.bind_streams(compute_, comm_);
    group_decodes_.resize(model.config().num_hidden_layers);
    for (int layer = 0; layer < model.config().num_hidden_layers; ++layer) {
        if (!model.config().is_moe_layer(layer)) continue;
        for (int g = 0; g < kExpertGroups; ++g) {
            const auto [first, last] = expert_group(model.local_experts(), kExpertGroups, g);
            group_decodes_[layer][g] = store.experts_decode(layer, first, last);
        }
    }
    slots_.resize(kDecodeSlots);
    for (SlotEvents& e : slots_) {
        e.copied = backend.create_event();
        e.decoded = backend.create_event();
        e.routed = backend.create_event();
        for (auto& group : e.experts_decoded) group = backend.create_event();
        for (auto& group : e.experts_ran) group = backend.create_event();
        e.free = backend.create_event();
    }
}

Pipeline::~Pipeline() {
    try {
        backend_.synchronize_all();
    } catch (...) {  // the error was reported by the forward that failed
    }
}

void Pipeline::fetch_layer(int layer) {
    SlotEvents& ev = slots_[layer % kDecodeSlots];
    WeightStore* store = &store_;
    // The slot (and its staging area) is free once the compute stream is past its previous layer.
    backend_.wait(copy_, *ev.free);
    if (store_.layer_has_host_tensors(layer))
        backend_.launch(copy_, layer_label("copy", layer), [this, store, layer] { store->copy_layer(layer, copy_); });
    backend_.record(*ev.copied, copy_);
    backend_.wait(decode_, *ev.copied);
    backend_.launch(decode_, layer_label("decode", layer),
                    [this, store, layer] { store->decode_layer(layer, decode_); });
    backend_.record(*ev.decoded, decode_);
}

void Pipeline::on_comm(const std::string& label, std::function<void()> fn) {
    backend_.record(*to_comm_, compute_);
    backend_.wait(comm_, *to_comm_);
    backend_.launch(comm_, label, std::move(fn));  // CUDA: fn enqueues the collective on the comm stream
    backend_.record(*from_comm_, comm_);
    backend_.wait(compute_, *from_comm_);
}

void Pipeline::feed_forward(int layer, int groups, const std::shared_ptr<ForwardState>& state) {
    Model* m = &model_;
    WeightStore* w = &store_;
    SlotEvents& ev = slots_[layer % kDecodeSlots];
    const bool moe = model_.config().is_moe_layer(layer);
    const int reusing = store_.expert_area() == ExpertArea::Half ? 2 : 0;  // groups that wait for another's place
    // Whether each of the step's groups has experts to decode: with one group, whether any has.
    std::array<bool, kExpertGroups> group_decodes = group_decodes_[layer];
    const bool any_decodes = std::find(group_decodes.begin(), group_decodes.end(), true) != group_decodes.end();
    if (groups == 1) group_decodes[0] = any_decodes;
    const int32_t* picks = model_.pick_offsets();
    // Once routing has run, the decode stream decodes the layer's experts group by group; each job reads
    // its expert's pick count where it runs and skips an expert that no token picked.
    auto decode_group = [&, layer](int g) {
        const auto [first, last] = expert_group(model_.local_experts(), groups, g);
        backend_.launch(decode_, layer_label("decode", layer, "experts"), [this, w, layer, first, last, picks] {
            w->decode_experts(layer, first, last, picks, decode_);
        });
        backend_.record(*ev.experts_decoded[g], decode_);
    };
    if (moe && any_decodes) {
        backend_.record(*ev.routed, compute_);
        backend_.wait(decode_, *ev.routed);
        for (int g = 0; g < groups - reusing; ++g)
            if (group_decodes[g]) decode_group(g);
    }
    backend_.launch(compute_, layer_label("compute", layer, moe ? "shared-experts" : "ffn"),
                    [m, w, state, layer] { m->ffn(layer, *state, *w); });
    if (moe) {
        for (int g = 0; g < groups; ++g) {
            const auto [first, last] = expert_group(model_.local_experts(), groups, g);
            if (group_decodes[g]) backend_.wait(compute_, *ev.experts_decoded[g]);
            backend_.launch(compute_, layer_label("compute", layer, "experts"),
                            [m, w, state, layer, first, last] { m->routed_experts(layer, *state, *w, first, last); });
            const int next = g + reusing;  // the group that takes this one's place (half area)
            if (reusing == 0 || next >= groups || !group_decodes[next]) continue;
            if (group_decodes[g]) {  // this group's experts were in the place: wait until they have run
                backend_.record(*ev.experts_ran[g], compute_);
                backend_.wait(decode_, *ev.experts_ran[g]);
            }
            decode_group(next);
        }
    }
}

std::vector<float> Pipeline::forward(const std::vector<std::vector<int32_t>>& tokens,
                                     const std::vector<KvCache*>& caches, bool all_positions) {
    return step(tokens, caches, StepOutput::Logits, all_positions).logits;
}

StepResult Pipeline::step(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                          StepOutput output, bool all_positions) {
    auto state = std::make_shared<ForwardState>(model_.prepare(tokens, caches, all_positions));
    state->output = output;
    Model* m = &model_;
    WeightStore* w = &store_;
    const bool multi_rank = model_.world().world_size > 1;
    const int n_layers = model_.config().num_hidden_layers;
    // A half expert area needs four groups: group g + 2 decodes into group g's place once group g has run.
    const int groups =
        store_.expert_area() == ExpertArea::Half
            ? kExpertGroups
            : step_expert_groups(state->n_tokens, model_.config().num_experts_per_tok, model_.local_experts());

    fetch_layer(0);
    backend_.launch(compute_, "compute embed", [m, w, state] { m->embed(*state, *w); });
    if (multi_rank) on_comm("all-reduce embed", [m, state] { m->reduce_embedding(*state); });
    for (int layer = 0; layer < n_layers; ++layer) {
        if (layer + 1 < n_layers) fetch_layer(layer + 1);
        SlotEvents& ev = slots_[layer % kDecodeSlots];
        const bool moe = model_.config().is_moe_layer(layer);
        backend_.wait(compute_, *ev.decoded);
        backend_.launch(compute_, layer_label("compute", layer, "attention"),
                        [m, w, state, layer] { m->attention(layer, *state, *w); });
        if (multi_rank)
            on_comm(layer_label("all-reduce", layer, "attention"), [m, state] { m->reduce_block(*state); });
        else
            backend_.launch(compute_, "residual", [m, state] { m->reduce_block(*state); });
        backend_.launch(compute_, layer_label("compute", layer, moe ? "route" : "ffn-norm"),
                        [m, w, state, layer] { m->ffn_norm(layer, *state, *w); });
        feed_forward(layer, groups, state);
        backend_.record(*ev.free, compute_);  // the slot's last reader
        if (multi_rank)
            on_comm(layer_label("all-reduce", layer, "ffn"), [m, state] { m->reduce_block(*state); });
        else
            backend_.launch(compute_, "residual", [m, state] { m->reduce_block(*state); });
    }
    // The decoder's error flag comes back behind the step's decodes; the compute stream waits for it, so the
    // one synchronization below also covers it (CUDA; the CPU decoder throws at once).
    backend_.launch(decode_, "decode check", [this, w] { w->queue_decode_check(decode_); });
    backend_.record(*decode_checked_, decode_);
    backend_.wait(compute_, *decode_checked_);
    backend_.launch(compute_, "compute head", [m, w, state] { m->head(*state, *w); });
    if (multi_rank)
        on_comm("all-gather logits", [m, state] { m->gather_logits(*state); });
    else
        backend_.launch(compute_, "logits", [m, state] { m->gather_logits(*state); });
    backend_.synchronize(compute_);  // the step's one host wait
    store_.throw_if_decode_failed();
    model_.finish_logits(*state);
    return {std::move(state->logits), std::move(state->ids)};
}

}  // namespace ecf8
