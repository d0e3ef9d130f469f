// WorldConfig: validation with messages that name the YAML field, and the rank -> group mapping.
#include "sharding/world_config.h"

#include <sstream>

#include "common/error.h"

namespace ecf8 {
namespace {

// "1, 2, 4" for n = 4: the values expert_parallel_size may take.
std::string divisors_of(int n) {
    std::ostringstream os;
    for (int d = 1; d <= n; ++d)
        if (n % d == 0) os << (d == 1 ? "" : ", ") << d;
    return os.str();
}

// The contiguous block of `block` ranks that contains `rank`.
std::vector<int> block_of(int rank, int block) {
    std::vector<int> ranks(block);
    int first = rank / block * block;
    for (int i = 0; i < block; ++i) ranks[i] = first + i;
    return ranks;
}

}  // namespace

WorldConfig WorldConfig::make(int rank, int world_size, int tp, int ep, int nodes, int gpus_per_node) {
    WorldConfig w{rank, world_size, tp, ep, nodes, gpus_per_node};
    w.validate();
    return w;
}

void WorldConfig::validate() const {
    ECF8_CHECK(world_size >= 1, "world_size=" << world_size << " must be >= 1 (the number of ranks mpirun starts)");
    ECF8_CHECK(rank >= 0 && rank < world_size, "rank=" << rank << " must be in [0, world_size=" << world_size << ")");
    ECF8_CHECK(tp_size >= 1, "tensor_parallel_size=" << tp_size << " must be >= 1");
    ECF8_CHECK(tp_size == world_size,
               "tensor_parallel_size=" << tp_size << " must equal the number of ranks (world_size=" << world_size
                                       << "): attention runs tensor-parallel over all ranks");
    ECF8_CHECK(ep_size >= 1 && world_size % ep_size == 0,
               "expert_parallel_size=" << ep_size << " must divide tensor_parallel_size=" << tp_size
                                       << " (allowed: " << divisors_of(world_size) << ")");
    ECF8_CHECK(nodes >= 1, "nodes=" << nodes << " must be >= 1");
    ECF8_CHECK(gpus_per_node >= 1, "gpus_per_node=" << gpus_per_node << " must be >= 1");
    ECF8_CHECK(static_cast<long long>(nodes) * gpus_per_node == world_size,
               "nodes=" << nodes << " x gpus_per_node=" << gpus_per_node << " = "
                        << static_cast<long long>(nodes) * gpus_per_node
                        << " must equal the number of ranks (world_size=" << world_size << ")");
}

std::string WorldConfig::describe() const {
    std::ostringstream os;
    os << "rank " << rank << "/" << world_size << " (node " << node() << ", local_rank " << local_rank() << ") tp "
       << tp_rank() << "/" << tp_size << " ep " << ep_rank() << "/" << ep_size << " (ep group " << ep_group() << ") on "
       << nodes << " nodes x " << gpus_per_node << " GPUs";
    return os.str();
}

std::vector<int> WorldConfig::tp_group_ranks() const { return block_of(rank, tp_size); }

std::vector<int> WorldConfig::ep_group_ranks() const { return block_of(rank, ep_size); }

ExpertRange WorldConfig::experts_for_rank(int n_experts) const {
    ECF8_CHECK(n_experts > 0, "the number of routed experts must be > 0, got " << n_experts);
    ECF8_CHECK(n_experts % ep_size == 0,
               "expert_parallel_size=" << ep_size << " must divide the number of routed experts (" << n_experts << ")");
    int per_rank = n_experts / ep_size;
    return ExpertRange{ep_rank() * per_rank, (ep_rank() + 1) * per_rank};
}

}  // namespace ecf8
