// WorldConfig: where one rank sits in the world: its node, its GPU on that node, its tensor-parallel
// and expert-parallel groups, and the routed experts it holds. A plain value type with no MPI in it;
// launcher/mpi_world.h builds one from MPI_COMM_WORLD, and tests build them by hand.
//
// Layout (one definition, used everywhere):
//   - Nodes: ranks fill nodes in blocks, node = rank / gpus_per_node, local_rank = rank % gpus_per_node.
//     This is what Open MPI gives with `--map-by slot` and a hostfile of gpus_per_node slots per host.
//   - Tensor parallelism: attention and dense layers are split over tp_size ranks. Groups are contiguous
//     blocks of ranks (group g = ranks [g*tp, (g+1)*tp)). Today world_size must equal tp_size, so the one
//     tp group is the whole world and tp_rank == rank.
//   - Expert parallelism (vLLM/SGLang style, inside the tensor-parallel world): the routed experts are
//     split into ep_size contiguous ranges; ep_size divides world_size. The ep group of a rank is the
//     contiguous block of ep_size ranks that contains it, ep_rank = rank % ep_size, and every ep group
//     holds every expert range once.
//   - Expert tensor parallelism: with ep_size < world_size, the world_size / ep_size ranks that share an
//     ep_rank (one per ep group) split each expert of their range like a dense MLP, gate/up by rows and
//     down by columns: moe_tp_size = world_size / ep_size, moe_tp_rank = rank / ep_size. ep = world
//     gives whole experts per rank, ep = 1 splits every expert over all ranks. Either way each (expert,
//     slice) lives on exactly one rank, so one all-reduce sums the MoE output.
//   - Experts: experts_for_rank(n) is the contiguous range [ep_rank*n/ep, (ep_rank+1)*n/ep).
//
// Field names in error messages are the YAML keys: tensor_parallel_size, expert_parallel_size, nodes,
// gpus_per_node.
#pragma once

#include <string>
#include <vector>

namespace ecf8 {

// A half-open range [begin, end) of routed-expert ids.
struct ExpertRange {
    int begin = 0;
    int end = 0;

    int size() const { return end - begin; }
    bool contains(int expert) const { return expert >= begin && expert < end; }
    bool operator==(const ExpertRange&) const = default;
};

struct WorldConfig {
    int rank = 0;           // this process, in [0, world_size)
    int world_size = 1;     // number of ranks (mpirun -np)
    int tp_size = 1;        // tensor_parallel_size: must equal world_size
    int ep_size = 1;        // expert_parallel_size: divides world_size
    int nodes = 1;          // number of hosts
    int gpus_per_node = 1;  // ranks (GPUs) per host; nodes * gpus_per_node == world_size

    // Builds a config and validates it (throws ecf8::Error naming the offending field).
    static WorldConfig make(int rank, int world_size, int tp, int ep, int nodes, int gpus_per_node);

    // Throws ecf8::Error naming the first offending field and what values are allowed.
    void validate() const;

    // One line, e.g. "rank 5/16 (node 0, local_rank 5) tp 5/16 ep 1/4 (ep group 1) on 2 nodes x 8 GPUs".
    std::string describe() const;

    // The getters below assume a valid config (see validate()).
    int node() const { return rank / gpus_per_node; }
    int local_rank() const { return rank % gpus_per_node; }

    int tp_group() const { return rank / tp_size; }  // index of this rank's tp group
    int tp_rank() const { return rank % tp_size; }
    std::vector<int> tp_group_ranks() const;  // the world ranks of this rank's tp group, ascending

    int ep_group() const { return rank / ep_size; }  // index of this rank's ep group (a split color)
    int ep_rank() const { return rank % ep_size; }
    std::vector<int> ep_group_ranks() const;  // the world ranks of this rank's ep group, ascending

    int moe_tp_size() const { return world_size / ep_size; }  // ranks that split one expert
    int moe_tp_rank() const { return rank / ep_size; }        // this rank's slice of each of its experts

    // The routed experts this rank holds, out of n_experts. Throws ecf8::Error naming
    // expert_parallel_size when n_experts is not a positive multiple of ep_size.
    ExpertRange experts_for_rank(int n_experts) const;

    bool operator==(const WorldConfig&) const = default;
};

}  // namespace ecf8
