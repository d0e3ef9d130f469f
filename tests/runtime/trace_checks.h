// Trace assertions shared by the pipeline tests on the CPU (test_pipeline) and the GPU (test_cuda_forward).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "runtime/trace.h"

namespace ecf8::test {

// The spans of `lane` on `rank` whose names start with `prefix`, by start time.
inline std::vector<TraceSpan> spans_by_start(const TraceData& trace, const char* lane, const std::string& prefix,
                                             int rank) {
    std::vector<TraceSpan> out;
    for (const TraceSpan* s : trace.find(lane, prefix, rank)) out.push_back(*s);
    std::sort(out.begin(), out.end(), [](const TraceSpan& a, const TraceSpan& b) { return a.start_ns < b.start_ns; });
    return out;
}

// Layer `layer`'s compute spans on `rank`, step by step: each step's begin with the layer's attention (steps
// may differ in how many expert groups they run).
inline std::vector<std::vector<TraceSpan>> layer_compute_steps(const TraceData& trace, int layer, int rank) {
    const std::string prefix = "compute L" + std::to_string(layer) + " ";
    std::vector<std::vector<TraceSpan>> steps;
    for (const TraceSpan& s : spans_by_start(trace, "compute", prefix, rank)) {
        if (s.name == prefix + "attention") steps.emplace_back();
        if (steps.empty()) {
            ADD_FAILURE() << s.name << " before the layer's attention";
            return steps;
        }
        steps.back().push_back(s);
    }
    return steps;
}

// For each of `steps` forward steps and every layer L in [1, layers - 1): the decode of layer L+1's own
// weights ("decode L<L+1>", not its experts) starts before the last compute span of layer L ends.
inline void expect_next_layer_decode_overlaps_compute(const TraceData& trace, int rank, int layers, int steps) {
    for (int layer = 1; layer + 1 < layers; ++layer) {
        const std::string next = "decode L" + std::to_string(layer + 1);
        std::vector<TraceSpan> decodes;
        for (const TraceSpan& s : spans_by_start(trace, "decode", next, rank))
            if (s.name == next) decodes.push_back(s);
        const std::vector<std::vector<TraceSpan>> computes = layer_compute_steps(trace, layer, rank);
        ASSERT_EQ(decodes.size(), size_t(steps)) << next;
        ASSERT_EQ(computes.size(), size_t(steps)) << "compute L" << layer;
        for (int step = 0; step < steps; ++step) {
            int64_t compute_end = 0;
            for (const TraceSpan& s : computes[step]) compute_end = std::max(compute_end, s.end_ns);
            EXPECT_LT(decodes[step].start_ns, compute_end)
                << "step " << step << ": " << next << " did not start before compute L" << layer << " ended";
        }
    }
}

}  // namespace ecf8::test
