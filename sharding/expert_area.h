// The expert area: where a layer's routed experts that decode just in time (ECF8; in raw mode, host-tier ones
// copied when picked) are placed for the layer's MLP. The memory plan sizes it and the weight store lays it out
// with these functions, so they agree byte for byte. The pipeline runs a layer's local experts in
// kExpertAreaGroups groups of ceil(n / kExpertAreaGroups) (runtime/pipeline.h); memory.expert_area says how the
// groups share the area:
//   full  every group has its own place, so the area holds a layer's experts, and a small step may decode and
//         run them all as one group (one decode launch per layer);
//   half  groups 0 and 2 share one place, groups 1 and 3 another: group g + 2 decodes once group g's experts
//         have run (double buffering), so the area holds the larger group of each pair, about half. Every step
//         then runs four groups.
//   auto  half where memory bounds the batch, else full (below).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <utility>

namespace ecf8 {

// Auto (memory.expert_area's default) is resolved per rank by the memory plan: half where a full area leaves
// the KV pool smaller than what max_num_seqs sequences of max_model_len can use (memory bounds the batch) and
// half is smaller, full otherwise (RankMemory::expert_area). The layout functions take Full or Half.
enum class ExpertArea { Full, Half, Auto };
ExpertArea parse_expert_area(const std::string& text, const std::string& where);  // "full" | "half" | "auto"
const char* expert_area_name(ExpertArea a);

inline constexpr int kExpertAreaGroups = 4;

// Local experts [first, last) of group g of n local experts in `groups` groups of ceil(n / groups) (the
// last ones may be empty): the pipeline's groups (one or kExpertAreaGroups) and the area's.
inline std::pair<int, int> expert_group(int n, int groups, int g) {
    const int per = (n + groups - 1) / groups;
    return {std::min(n, g * per), std::min(n, (g + 1) * per)};
}

// The area group of local expert `local` of n: the g whose expert_group(n, kExpertAreaGroups, g) holds it.
inline int expert_area_group(int local, int n) {
    const int per = (n + kExpertAreaGroups - 1) / kExpertAreaGroups;
    return per > 0 ? local / per : 0;
}

// Bytes of each group's experts in the area -> where each group starts and the area's size.
struct ExpertAreaLayout {
    std::array<uint64_t, kExpertAreaGroups> group_offset{};
    uint64_t bytes = 0;
};

inline ExpertAreaLayout expert_area_layout(const std::array<uint64_t, kExpertAreaGroups>& group_bytes, ExpertArea a) {
    ExpertAreaLayout l;
    if (a == ExpertArea::Full) {
        for (int g = 0; g < kExpertAreaGroups; ++g) {
            l.group_offset[g] = l.bytes;
            l.bytes += group_bytes[g];
        }
        return l;
    }
    const uint64_t even = std::max(group_bytes[0], group_bytes[2]), odd = std::max(group_bytes[1], group_bytes[3]);
    l.group_offset = {0, even, 0, even};
    l.bytes = even + odd;
    return l;
}

}  // namespace ecf8
