// WorldConfig: the rank -> node / local_rank / tp / ep mapping for several layouts, the expert ranges, and
// every validate() failure naming its YAML field. No MPI.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "sharding/world_config.h"

using ecf8::ExpertRange;
using ecf8::WorldConfig;

namespace {

// The message of the ecf8::Error that validate() throws, or "" when it passes.
std::string validate_error(const WorldConfig& w) {
    try {
        w.validate();
    } catch (const ecf8::Error& e) {
        return e.what();
    }
    return "";
}

void expect_rejected(const WorldConfig& w, const std::vector<std::string>& words) {
    std::string msg = validate_error(w);
    ASSERT_FALSE(msg.empty()) << "accepted: " << w.describe();
    for (const std::string& word : words) EXPECT_NE(msg.find(word), std::string::npos) << word << " not in: " << msg;
}

}  // namespace

TEST(WorldConfig, DefaultIsOneRank) {
    WorldConfig w;
    EXPECT_NO_THROW(w.validate());
    EXPECT_EQ(w, WorldConfig::make(0, 1, 1, 1, 1, 1));
    EXPECT_EQ(w.node(), 0);
    EXPECT_EQ(w.local_rank(), 0);
    EXPECT_EQ(w.tp_rank(), 0);
    EXPECT_EQ(w.ep_rank(), 0);
    EXPECT_EQ(w.tp_group_ranks(), std::vector<int>{0});
    EXPECT_EQ(w.ep_group_ranks(), std::vector<int>{0});
    EXPECT_EQ(w.experts_for_rank(256), (ExpertRange{0, 256}));
}

TEST(WorldConfig, TwoRanksTp2) {
    for (int r = 0; r < 2; ++r) {
        WorldConfig w = WorldConfig::make(r, 2, 2, 1, 1, 2);
        EXPECT_EQ(w.node(), 0);
        EXPECT_EQ(w.local_rank(), r);
        EXPECT_EQ(w.tp_rank(), r);
        EXPECT_EQ(w.tp_group(), 0);
        EXPECT_EQ(w.tp_group_ranks(), (std::vector<int>{0, 1}));
        EXPECT_EQ(w.ep_rank(), 0);  // ep 1: every rank holds all experts
        EXPECT_EQ(w.ep_group(), r);
        EXPECT_EQ(w.ep_group_ranks(), std::vector<int>{r});
        EXPECT_EQ(w.experts_for_rank(8), (ExpertRange{0, 8}));
    }
}

TEST(WorldConfig, FourRanksTp4Ep2) {
    const int ep_rank[] = {0, 1, 0, 1};
    const int ep_group[] = {0, 0, 1, 1};
    const ExpertRange experts[] = {{0, 128}, {128, 256}, {0, 128}, {128, 256}};
    for (int r = 0; r < 4; ++r) {
        WorldConfig w = WorldConfig::make(r, 4, 4, 2, 1, 4);
        EXPECT_EQ(w.local_rank(), r);
        EXPECT_EQ(w.tp_rank(), r);
        EXPECT_EQ(w.tp_group_ranks(), (std::vector<int>{0, 1, 2, 3}));
        EXPECT_EQ(w.ep_rank(), ep_rank[r]);
        EXPECT_EQ(w.ep_group(), ep_group[r]);
        EXPECT_EQ(w.ep_group_ranks(), (std::vector<int>{2 * ep_group[r], 2 * ep_group[r] + 1}));
        EXPECT_EQ(w.experts_for_rank(256), experts[r]);
    }
}

TEST(WorldConfig, FourRanksTp4Ep4) {
    for (int r = 0; r < 4; ++r) {
        WorldConfig w = WorldConfig::make(r, 4, 4, 4, 2, 2);  // two nodes of two GPUs
        EXPECT_EQ(w.node(), r / 2);
        EXPECT_EQ(w.local_rank(), r % 2);
        EXPECT_EQ(w.tp_rank(), r);
        EXPECT_EQ(w.ep_rank(), r);
        EXPECT_EQ(w.ep_group(), 0);
        EXPECT_EQ(w.ep_group_ranks(), (std::vector<int>{0, 1, 2, 3}));
        EXPECT_EQ(w.experts_for_rank(256), (ExpertRange{64 * r, 64 * (r + 1)}));
    }
}

TEST(WorldConfig, SixteenRanksOnTwoNodesOfEight) {
    std::vector<int> expert_owner(256, -1);  // with ep 16, each expert on exactly one rank
    for (int r = 0; r < 16; ++r) {
        WorldConfig w = WorldConfig::make(r, 16, 16, 16, 2, 8);
        EXPECT_EQ(w.node(), r / 8);
        EXPECT_EQ(w.local_rank(), r % 8);
        EXPECT_EQ(w.tp_rank(), r);
        EXPECT_EQ(w.tp_group_ranks().size(), 16u);
        EXPECT_EQ(w.ep_rank(), r);
        ExpertRange e = w.experts_for_rank(256);
        EXPECT_EQ(e.size(), 16);
        for (int x = e.begin; x < e.end; ++x) {
            EXPECT_EQ(expert_owner[x], -1);
            expert_owner[x] = r;
        }
    }
    for (int x = 0; x < 256; ++x) EXPECT_EQ(expert_owner[x], x / 16) << "expert " << x;

    WorldConfig w = WorldConfig::make(13, 16, 16, 8, 2, 8);  // ep 8: one ep group per node here
    EXPECT_EQ(w.ep_rank(), 5);
    EXPECT_EQ(w.ep_group(), 1);
    EXPECT_EQ(w.ep_group_ranks(), (std::vector<int>{8, 9, 10, 11, 12, 13, 14, 15}));
    EXPECT_EQ(w.experts_for_rank(256), (ExpertRange{160, 192}));
    EXPECT_TRUE(w.experts_for_rank(256).contains(160));
    EXPECT_FALSE(w.experts_for_rank(256).contains(192));
}

TEST(WorldConfig, DescribeIsOneLine) {
    std::string d = WorldConfig::make(13, 16, 16, 8, 2, 8).describe();
    EXPECT_EQ(d.find('\n'), std::string::npos);
    EXPECT_NE(d.find("rank 13/16"), std::string::npos) << d;
    EXPECT_NE(d.find("node 1"), std::string::npos) << d;
    EXPECT_NE(d.find("local_rank 5"), std::string::npos) << d;
    EXPECT_NE(d.find("ep 5/8"), std::string::npos) << d;
}

TEST(WorldConfig, ExpertsMustDivideEvenly) {
    WorldConfig w = WorldConfig::make(1, 4, 4, 4, 1, 4);
    try {
        w.experts_for_rank(10);
        FAIL() << "10 experts over ep 4 accepted";
    } catch (const ecf8::Error& e) {
        EXPECT_NE(std::string(e.what()).find("expert_parallel_size=4"), std::string::npos) << e.what();
    }
    EXPECT_THROW(w.experts_for_rank(0), ecf8::Error);
}

TEST(WorldConfig, RejectsEachBadField) {
    // {rank, world_size, tp, ep, nodes, gpus_per_node}
    expect_rejected({0, 0, 1, 1, 1, 1}, {"world_size=0"});
    expect_rejected({4, 4, 4, 1, 1, 4}, {"rank=4", "world_size=4"});
    expect_rejected({-1, 4, 4, 1, 1, 4}, {"rank=-1"});
    expect_rejected({0, 4, 0, 1, 1, 4}, {"tensor_parallel_size=0", ">= 1"});
    expect_rejected({0, 4, 2, 1, 1, 4}, {"tensor_parallel_size=2", "world_size=4"});
    expect_rejected({0, 4, 4, 3, 1, 4}, {"expert_parallel_size=3", "allowed: 1, 2, 4"});
    expect_rejected({0, 4, 4, 0, 1, 4}, {"expert_parallel_size=0"});
    expect_rejected({0, 4, 4, 8, 1, 4}, {"expert_parallel_size=8"});
    expect_rejected({0, 4, 4, 1, 0, 4}, {"nodes=0", ">= 1"});
    expect_rejected({0, 4, 4, 1, 1, 0}, {"gpus_per_node=0", ">= 1"});
    expect_rejected({0, 4, 4, 1, 2, 4}, {"nodes=2", "gpus_per_node=4", "world_size=4"});
    EXPECT_THROW(WorldConfig::make(0, 4, 4, 1, 3, 1), ecf8::Error);
}
