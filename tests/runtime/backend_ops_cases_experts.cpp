// The op harness's cases for the routed experts on the device: moe_dispatch (routing's picks grouped by this
// rank's experts) and routed_experts_mlp over them (backend_ops_harness.h).
#include "tests/runtime/backend_ops_harness.h"

namespace ecf8::opstest {
namespace {

// Routing's output for n_tokens tokens: topk distinct experts each (those in `excluded` never), with one of
// the local range [begin, begin + n_local) forced in for about 70% of the tokens unless none may be local,
// and positive weights. Token 0 always has a local pick (unless none may be local).
struct Picks {
    std::vector<int32_t> experts;
    std::vector<float> weights;
};

Picks draw_picks(std::mt19937& rng, int64_t n_tokens, int64_t topk, int64_t n_experts, int64_t begin, int64_t n_local,
                 bool none_local, int64_t excluded_local) {
    auto allowed = [&](int64_t e) {
        const bool local = e >= begin && e < begin + n_local;
        return !(local && (none_local || e - begin == excluded_local));
    };
    std::uniform_int_distribution<int64_t> any(0, n_experts - 1), local(begin, begin + n_local - 1);
    std::bernoulli_distribution force(0.7);
    Picks p;
    for (int64_t t = 0; t < n_tokens; ++t) {
        std::vector<int32_t> mine;
        if (!none_local && (t == 0 || force(rng))) {  // token 0 always: the case has work
            int64_t e;
            do e = local(rng);
            while (!allowed(e));
            mine.push_back(static_cast<int32_t>(e));
        }
        while (static_cast<int64_t>(mine.size()) < topk) {
            const int64_t e = any(rng);
            if (allowed(e) && std::find(mine.begin(), mine.end(), e) == mine.end())
                mine.push_back(static_cast<int32_t>(e));
        }
        std::shuffle(mine.begin(), mine.end(), rng);
        p.experts.insert(p.experts.end(), mine.begin(), mine.end());
    }
    p.weights = uniform(rng, p.experts.size(), 0.1f, 2.5f);
    return p;
}

// The dispatch written out plainly: for each local expert, its picks in (token, slot) order.
void dispatch_reference(const Picks& p, int64_t topk, int64_t begin, int64_t n_local, std::vector<int32_t>* offsets,
                        std::vector<int32_t>* rows, std::vector<float>* scales) {
    offsets->assign(1, 0);
    for (int64_t e = 0; e < n_local; ++e) {
        for (size_t i = 0; i < p.experts.size(); ++i) {
            if (p.experts[i] != begin + e) continue;
            rows->push_back(static_cast<int32_t>(i / topk));
            scales->push_back(p.weights[i]);
        }
        offsets->push_back(static_cast<int32_t>(rows->size()));
    }
}

struct DispatchBuffers {
    Buffer offsets, rows, scales;
};

DispatchBuffers run_dispatch(const Device& d, const Picks& p, int64_t n_tokens, int64_t topk, int64_t begin,
                             int64_t n_local) {
    Buffer e = d.up(p.experts), w = d.up(p.weights);
    DispatchBuffers out{d.alloc(n_local + 1), d.alloc(std::max<int64_t>(1, n_tokens * topk)),
                        d.alloc(std::max<int64_t>(1, n_tokens * topk))};
    d.ops().moe_dispatch(e.as<int32_t>(), w.as<float>(), n_tokens, topk, begin, n_local, out.offsets.as<int32_t>(),
                         out.rows.as<int32_t>(), out.scales.as<float>(), d.s());
    return out;
}

double silu(double g) { return g / (1.0 + std::exp(-g)); }

}  // namespace

OpCase make_moe_dispatch(std::mt19937& rng, int64_t n_tokens, int64_t topk, int64_t n_experts, int64_t begin,
                         int64_t n_local, bool none_local) {
    auto picks = std::make_shared<Picks>(draw_picks(rng, n_tokens, topk, n_experts, begin, n_local, none_local, -1));
    return {"moe_dispatch",
            [=](const Device& d) {
                const DispatchBuffers b = run_dispatch(d, *picks, n_tokens, topk, begin, n_local);
                Output o;
                o.i = d.down<int32_t>(b.offsets, n_local + 1);
                const int32_t total = o.i.back();
                const std::vector<int32_t> rows = d.down<int32_t>(b.rows, total);
                o.i.insert(o.i.end(), rows.begin(), rows.end());
                o.f = d.down<float>(b.scales, total);
                return o;
            },
            [=] {
                std::vector<int32_t> offsets, rows;
                std::vector<float> scales;
                dispatch_reference(*picks, topk, begin, n_local, &offsets, &rows, &scales);
                Reference r = exact(scales);
                r.i = offsets;
                r.i.insert(r.i.end(), rows.begin(), rows.end());
                return r;
            }};
}

OpCase make_routed_experts(std::mt19937& rng, ExpertsShape sh) {
    const int64_t begin = (sh.n_experts - sh.n_local) / 2, block = 128;
    // With three or more local experts, the second gets no pick: its launches must be empty.
    auto picks = std::make_shared<Picks>(
        draw_picks(rng, sh.n_tokens, sh.topk, sh.n_experts, begin, sh.n_local, false, sh.n_local >= 3 ? 1 : -1));
    auto h = std::make_shared<std::vector<float>>(uniform(rng, sh.n_tokens * sh.dim, -1, 1));
    auto base = std::make_shared<std::vector<float>>(uniform(rng, sh.n_tokens * sh.dim, -1, 1));
    std::vector<std::shared_ptr<HostWeight>> w;
    for (int64_t e = 0; e < sh.n_local; ++e) {
        w.push_back(random_weight(rng, sh.dtype, sh.inter, sh.dim, block));  // gate
        w.push_back(random_weight(rng, sh.dtype, sh.inter, sh.dim, block));  // up
        w.push_back(random_weight(rng, sh.dtype, sh.dim, sh.inter, block));  // down
    }
    const int64_t T = sh.n_tokens, D = sh.dim, I = sh.inter;
    return {sh.tensor_cores ? "routed_experts_tc" : "routed_experts_mlp",
            [=](const Device& d) {
                std::vector<Buffer> keep;
                std::vector<ExpertWeights> experts;
                for (int64_t e = 0; e < sh.n_local; ++e)
                    experts.push_back(
                        {upload(d, *w[3 * e], keep), upload(d, *w[3 * e + 1], keep), upload(d, *w[3 * e + 2], keep)});
                const DispatchBuffers b = run_dispatch(d, *picks, T, sh.topk, begin, sh.n_local);
                Buffer hb = d.up(*h), out = d.up(*base);
                const int64_t rows = sh.room_for_all_picks ? T * sh.topk : T;
                Buffer x = d.alloc(rows * D), g = d.alloc(rows * I), u = d.alloc(rows * I), y = d.alloc(rows * D);
                const ExpertScratch scratch{x.as<float>(),
                                            g.as<float>(),
                                            u.as<float>(),
                                            y.as<float>(),
                                            T,
                                            rows,
                                            sh.room_for_all_picks ? sh.topk : 0};
                d.ops().reserve_linear_scratch(I * D);
                const bool tensor_cores = sh.tensor_cores && d.backend->kind() != BackendKind::Cpu;
                if (tensor_cores) d.ops().use_fp8_gemm(true);
                d.ops().routed_experts_mlp(experts, hb.as<float>(), D, b.offsets.as<int32_t>(), b.rows.as<int32_t>(),
                                           b.scales.as<float>(), scratch, out.as<float>(), d.s());
                auto result = d.down<float>(out, T * D);
                if (tensor_cores) d.ops().use_fp8_gemm(false);
                return Output{result, {}};
            },
            [=] {
                Reference r;
                r.f.assign(base->begin(), base->end());
                for (float v : *base) r.mag.push_back(std::fabs(v));
                for (size_t i = 0; i < picks->experts.size(); ++i) {
                    const int64_t e = picks->experts[i] - begin, t = static_cast<int64_t>(i) / sh.topk;
                    if (e < 0 || e >= sh.n_local) continue;
                    const HostWeight &wg = *w[3 * e], &wu = *w[3 * e + 1], &wd = *w[3 * e + 2];
                    // a = silu(g) * u, and a bound on its float error from g's and u's sums (|silu'| <= 1.1).
                    std::vector<double> a(I), a_mag(I);
                    for (int64_t j = 0; j < I; ++j) {
                        double gs = 0, gm = 0, us = 0, um = 0;
                        for (int64_t k = 0; k < D; ++k) {
                            const double xk = (*h)[t * D + k], pg = xk * wg.at(j, k), pu = xk * wu.at(j, k);
                            gs += pg, gm += std::fabs(pg), us += pu, um += std::fabs(pu);
                        }
                        a[j] = silu(gs) * us;
                        a_mag[j] = std::fabs(a[j]) + 1.1 * std::fabs(us) * gm + std::fabs(silu(gs)) * um;
                    }
                    const double s = picks->weights[i];
                    for (int64_t c = 0; c < D; ++c) {
                        double sum = 0, mag = 0;
                        for (int64_t j = 0; j < I; ++j) {
                            const double wdj = wd.at(c, j);
                            sum += a[j] * wdj;
                            mag += a_mag[j] * std::fabs(wdj);
                        }
                        r.f[t * D + c] += s * sum;
                        r.mag[t * D + c] += std::fabs(s) * mag;
                    }
                }
                return r;
            }};
}

}  // namespace ecf8::opstest
