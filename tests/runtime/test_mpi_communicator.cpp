// MpiCommunicator under mpirun (-np 2 and 4): every collective on inputs built so that the exact output is
// predictable (as nccl-tests does), subgroups from split(), MPI errors turned into ecf8::Error, and
// MpiSession::world_from_mpi. Rank 0 prints the gtest report; other ranks print only their failures. The
// exit status is non-zero when any rank fails.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "launcher/mpi_world.h"
#include "runtime/mpi_communicator.h"  // includes <mpi.h>
#include "tests/mpi/mpi_test_main.h"

using ecf8::Communicator;
using ecf8::ElemType;
using ecf8::MpiCommunicator;

namespace {

// ----------------------------------------------------------------------------
// Helpers.

// Element-wise equality that reports only the first mismatch, to keep a failure to one line.
template <typename T>
testing::AssertionResult same(const std::vector<T>& got, const std::vector<T>& want) {
    if (got.size() != want.size())
        return testing::AssertionFailure() << "size " << got.size() << ", want " << want.size();
    for (size_t i = 0; i < got.size(); ++i)
        if (!(got[i] == want[i]))
            return testing::AssertionFailure()
                   << "first mismatch at " << i << ": got " << +got[i] << ", want " << +want[i];
    return testing::AssertionSuccess();
}

// The BF16 bits of a float that BF16 represents exactly.
uint16_t bf16_exact(float f) {
    uint32_t bits = std::bit_cast<uint32_t>(f);
    EXPECT_EQ(bits & 0xffffu, 0u) << f << " is not exact in bf16";
    return static_cast<uint16_t>(bits >> 16);
}

class MpiComm : public testing::Test {
protected:
    void SetUp() override { comm = MpiCommunicator::world(); }
    std::unique_ptr<MpiCommunicator> comm;
};

// Rank r contributes (r+1)*(i%7+1) to element i; the sum is n(n+1)/2 * (i%7+1).
template <typename T>
void check_all_reduce(Communicator& c, ElemType type) {
    const size_t count = 1001;
    const int n = c.size();
    std::vector<T> buf(count), want(count);
    for (size_t i = 0; i < count; ++i) {
        buf[i] = static_cast<T>((c.rank() + 1) * static_cast<int>(i % 7 + 1));
        want[i] = static_cast<T>(n * (n + 1) / 2 * static_cast<int>(i % 7 + 1));
    }
    c.all_reduce_sum(buf.data(), count, type);
    EXPECT_TRUE(same(buf, want));
}

}  // namespace

// ----------------------------------------------------------------------------
// Tests.

TEST_F(MpiComm, RankAndSizeMatchWorld) {
    int rank = -1, size = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    EXPECT_EQ(comm->rank(), rank);
    EXPECT_EQ(comm->size(), size);
    EXPECT_EQ(ecf8::mpi_test_session().rank(), rank);
    EXPECT_EQ(ecf8::mpi_test_session().size(), size);
}

TEST_F(MpiComm, AllReduceSumEachType) {
    check_all_reduce<float>(*comm, ElemType::F32);
    check_all_reduce<double>(*comm, ElemType::F64);
    check_all_reduce<int32_t>(*comm, ElemType::I32);
    check_all_reduce<int64_t>(*comm, ElemType::I64);
    check_all_reduce<uint8_t>(*comm, ElemType::U8);
}

// The forward relies on this: a float all-reduce gives every rank the same bits, even where the sum rounds
// (random values of mixed magnitude), for the sizes of small and large activations. Otherwise ranks could
// route tokens differently.
TEST_F(MpiComm, AllReduceSumF32IsBitIdenticalOnEveryRank) {
    for (size_t count : {size_t{1}, size_t{1000}, size_t{7168 * 3}, size_t{1} << 20}) {
        std::vector<float> buf(count);
        uint64_t state = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(comm->rank() + 1);
        for (float& v : buf) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            v = static_cast<float>(static_cast<int32_t>(state >> 32)) * 1e-7f * static_cast<float>((state >> 8) % 1000);
        }
        comm->all_reduce_sum(buf.data(), count, ElemType::F32);
        std::vector<float> all(count * comm->size());
        comm->all_gather(buf.data(), all.data(), count, ElemType::F32);
        for (int r = 1; r < comm->size(); ++r) {
            const std::vector<float> other(all.begin() + r * count, all.begin() + (r + 1) * count);
            const std::vector<float> first(all.begin(), all.begin() + count);
            std::vector<uint32_t> a(count), b(count);
            for (size_t i = 0; i < count; ++i)
                a[i] = std::bit_cast<uint32_t>(first[i]), b[i] = std::bit_cast<uint32_t>(other[i]);
            EXPECT_TRUE(same(b, a)) << "rank " << r << " vs rank 0, " << count << " floats";
        }
    }
}

TEST_F(MpiComm, AllReduceSumBf16Exact) {
    const size_t count = 1001;
    const int n = comm->size();
    std::vector<uint16_t> buf(count), want(count);
    for (size_t i = 0; i < count; ++i) {
        float k = static_cast<float>(i % 7 + 1);
        float sign = (i % 2) ? -1.0f : 1.0f;
        buf[i] = bf16_exact(sign * static_cast<float>(comm->rank() + 1) * k);
        want[i] = bf16_exact(sign * static_cast<float>(n * (n + 1) / 2) * k);
    }
    comm->all_reduce_sum(buf.data(), count, ElemType::BF16);
    EXPECT_TRUE(same(buf, want));
}

TEST_F(MpiComm, AllReduceSumBf16RoundsOnceToNearestEven) {
    // Rank 0 gives 256, the others 1 each: the float sum 256 + (n-1) is exact, and BF16 spacing in
    // [256, 512) is 2. An odd sum is a tie and goes to the neighbour that is a multiple of 4.
    const int n = comm->size();
    uint16_t v = bf16_exact(comm->rank() == 0 ? 256.0f : 1.0f);
    comm->all_reduce_sum(&v, 1, ElemType::BF16);
    int sum = 256 + (n - 1);
    int want = (sum % 2 == 0) ? sum : ((sum - 1) % 4 == 0 ? sum - 1 : sum + 1);
    EXPECT_EQ(v, bf16_exact(static_cast<float>(want))) << "n=" << n;
}

TEST_F(MpiComm, AllGather) {
    const size_t per = 5;
    const int n = comm->size(), r = comm->rank();
    std::vector<int32_t> send(per), recv(per * n, -1), want(per * n);
    for (size_t i = 0; i < per; ++i) send[i] = r * 100 + static_cast<int>(i);
    for (int s = 0; s < n; ++s)
        for (size_t i = 0; i < per; ++i) want[s * per + i] = s * 100 + static_cast<int>(i);
    comm->all_gather(send.data(), recv.data(), per, ElemType::I32);
    EXPECT_TRUE(same(recv, want));

    std::vector<int32_t> in_place(per * n, -1);  // send is this rank's own block of recv
    for (size_t i = 0; i < per; ++i) in_place[r * per + i] = send[i];
    comm->all_gather(in_place.data() + r * per, in_place.data(), per, ElemType::I32);
    EXPECT_TRUE(same(in_place, want));
}

TEST_F(MpiComm, AllToAll) {
    const size_t per = 3;
    const int n = comm->size(), r = comm->rank();
    std::vector<int64_t> send(per * n), recv(per * n, -1), want(per * n);
    for (int d = 0; d < n; ++d)  // block d goes to rank d
        for (size_t i = 0; i < per; ++i) send[d * per + i] = r * 1000 + d * 10 + static_cast<int64_t>(i);
    for (int s = 0; s < n; ++s)  // block s comes from rank s
        for (size_t i = 0; i < per; ++i) want[s * per + i] = s * 1000 + r * 10 + static_cast<int64_t>(i);
    comm->all_to_all(send.data(), recv.data(), per, ElemType::I64);
    EXPECT_TRUE(same(recv, want));
}

TEST_F(MpiComm, AllToAllvUnevenWithGaps) {
    // Rank s sends (s + 2d) % 3 elements to rank d (some are 0). Receive blocks are separated by one
    // sentinel element, which must survive.
    const int n = comm->size(), r = comm->rank();
    const int32_t sentinel = -7;
    auto count = [](int s, int d) { return static_cast<size_t>((s + 2 * d) % 3); };
    std::vector<size_t> sc(n), sd(n), rc(n), rd(n);
    size_t send_total = 0, recv_total = 0;
    for (int p = 0; p < n; ++p) {
        sc[p] = count(r, p), sd[p] = send_total, send_total += sc[p];
        rc[p] = count(p, r), rd[p] = recv_total, recv_total += rc[p] + 1;
    }
    std::vector<int32_t> send(send_total), recv(recv_total, sentinel), want(recv_total, sentinel);
    for (int d = 0; d < n; ++d)
        for (size_t i = 0; i < sc[d]; ++i) send[sd[d] + i] = r * 10000 + d * 100 + static_cast<int>(i);
    for (int s = 0; s < n; ++s)
        for (size_t i = 0; i < rc[s]; ++i) want[rd[s] + i] = s * 10000 + r * 100 + static_cast<int>(i);
    comm->all_to_allv(send.data(), sc.data(), sd.data(), recv.data(), rc.data(), rd.data(), ElemType::I32);
    EXPECT_TRUE(same(recv, want));
}

TEST_F(MpiComm, BroadcastFromEachRoot) {
    const size_t count = 17;
    for (int root = 0; root < comm->size(); ++root) {
        std::vector<double> buf(count, -1.0), want(count);
        for (size_t i = 0; i < count; ++i) want[i] = root * 1000.0 + static_cast<double>(i) + 0.5;
        if (comm->rank() == root) buf = want;
        comm->broadcast(buf.data(), count, ElemType::F64, root);
        EXPECT_TRUE(same(buf, want));
    }
}

TEST_F(MpiComm, SplitByParityReducesWithinGroup) {
    const int n = comm->size(), r = comm->rank();
    std::unique_ptr<MpiCommunicator> sub = comm->split(r % 2, r);
    EXPECT_EQ(sub->rank(), r / 2);
    EXPECT_EQ(sub->size(), (n - r % 2 + 1) / 2);

    int32_t v = r;
    sub->all_reduce_sum(&v, 1, ElemType::I32);
    int32_t want = 0;
    for (int q = r % 2; q < n; q += 2) want += q;
    EXPECT_EQ(v, want);

    std::vector<int32_t> members(sub->size(), -1), want_members;
    for (int q = r % 2; q < n; q += 2) want_members.push_back(q);
    int32_t me = r;
    sub->all_gather(&me, members.data(), 1, ElemType::I32);
    EXPECT_TRUE(same(members, want_members));
}

TEST_F(MpiComm, SplitIntoEpGroupsFromWorldConfig) {
    const int n = comm->size();
    if (n % 2 != 0) GTEST_SKIP() << "needs an even number of ranks";
    ecf8::WorldConfig w = ecf8::mpi_test_session().world_from_mpi(n, 2, 1, n);
    std::unique_ptr<MpiCommunicator> ep = comm->split(w.ep_group(), w.ep_rank());
    EXPECT_EQ(ep->rank(), w.ep_rank());
    EXPECT_EQ(ep->size(), w.ep_size);
    std::vector<int32_t> members(ep->size(), -1);
    int32_t me = w.rank;
    ep->all_gather(&me, members.data(), 1, ElemType::I32);
    std::vector<int> want = w.ep_group_ranks();
    EXPECT_TRUE(same(members, std::vector<int32_t>(want.begin(), want.end())));
}

TEST_F(MpiComm, Barrier) {
    for (int i = 0; i < 3; ++i) EXPECT_NO_THROW(comm->barrier());
}

TEST_F(MpiComm, BadArgumentsThrow) {
    int32_t x = 0;
    EXPECT_THROW(comm->broadcast(&x, 1, ElemType::I32, comm->size()), ecf8::Error);
    EXPECT_THROW(comm->broadcast(&x, 1, ElemType::I32, -1), ecf8::Error);
    EXPECT_THROW(comm->all_reduce_sum(nullptr, size_t{1} << 32, ElemType::U8), ecf8::Error);
    EXPECT_THROW(comm->split(-1, 0), ecf8::Error);
}

TEST_F(MpiComm, MpiErrorsBecomeEcf8Errors) {
    // The communicator returns errors instead of aborting: an invalid root fails locally on every rank.
    int32_t x = 0;
    try {
        MPI_CHECK(MPI_Bcast(&x, 1, MPI_INT32_T, comm->size() + 5, comm->comm()));
        FAIL() << "MPI_Bcast with an invalid root succeeded";
    } catch (const ecf8::Error& e) {
        EXPECT_NE(std::string(e.what()).find("MPI call"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("MPI_ERR_ROOT"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(ecf8::mpi_error_string(MPI_ERR_COMM).empty());
}

TEST(MpiWorld, BuildsValidConfig) {
    const int n = ecf8::mpi_test_session().size();
    ecf8::WorldConfig w = ecf8::mpi_test_session().world_from_mpi(n, 1, 1, n);
    EXPECT_EQ(w.rank, ecf8::mpi_test_session().rank());
    EXPECT_EQ(w.world_size, n);
    EXPECT_EQ(w.local_rank(), w.rank);
    EXPECT_EQ(w.tp_rank(), w.rank);
}

TEST(MpiWorld, MismatchNamesTheYamlField) {
    const int n = ecf8::mpi_test_session().size();
    const std::string started = "mpirun started " + std::to_string(n) + " ranks";
    try {
        ecf8::mpi_test_session().world_from_mpi(n + 1, 1, 1, n + 1);
        FAIL() << "tensor_parallel_size=" << n + 1 << " accepted";
    } catch (const ecf8::Error& e) {
        EXPECT_NE(std::string(e.what()).find(started), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("tensor_parallel_size=" + std::to_string(n + 1)), std::string::npos)
            << e.what();
    }
    try {
        ecf8::mpi_test_session().world_from_mpi(n, 1, 2, n);
        FAIL() << "nodes=2 x gpus_per_node=" << n << " accepted";
    } catch (const ecf8::Error& e) {
        EXPECT_NE(std::string(e.what()).find(started), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("nodes=2"), std::string::npos) << e.what();
    }
    EXPECT_THROW(ecf8::mpi_test_session().world_from_mpi(n, n + 1, 1, n), ecf8::Error);  // expert_parallel_size
}
