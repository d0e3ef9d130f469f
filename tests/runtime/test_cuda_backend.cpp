// CudaBackend against the Backend contract (gpu label; skips without a device): memory of every kind,
// copies ordered across streams by events, host functions in stream order, a failing host function
// reported by the next synchronize with its label, and GPU-timed trace spans.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "common/error.h"
#include "runtime/cuda_backend.h"
#include "runtime/trace.h"

namespace ecf8 {
namespace {

class CudaBackendTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (CudaBackend::device_count() == 0) GTEST_SKIP() << "no CUDA device";
    }
};

TEST_F(CudaBackendTest, CopiesThroughEveryKindOfMemoryOrderedByEvents) {
    CudaBackend b(0);
    Stream& copy = b.create_stream("copy");
    Stream& compute = b.create_stream("compute");
    const size_t n = 64 << 20;
    Buffer host = b.buffer(n, MemoryKind::Host, "test");
    Buffer pinned = b.buffer(n, MemoryKind::PinnedHost, "test");
    Buffer device = b.buffer(n, MemoryKind::Device, "test");
    Buffer back = b.buffer(n, MemoryKind::PinnedHost, "test");
    for (size_t i = 0; i < n; ++i) host.as<uint8_t>()[i] = static_cast<uint8_t>(i * 131 + 7);
    std::memcpy(pinned.data(), host.data(), n);
    auto copied = b.create_event();
    b.memcpy_async(device.data(), pinned.data(), n, copy);
    b.record(*copied, copy);
    b.wait(compute, *copied);  // the copy back must see the whole upload
    b.memcpy_async(back.data(), device.data(), n, compute);
    b.synchronize(compute);
    EXPECT_EQ(std::memcmp(back.data(), host.data(), n), 0);
    EXPECT_EQ(b.memory_stats(MemoryKind::Device).live_bytes, n);
    EXPECT_EQ(b.memory_stats(MemoryKind::PinnedHost).live_bytes, 2 * n);
    size_t free_bytes = 0, total = 0;
    b.memory_info(&free_bytes, &total);
    EXPECT_GT(total, free_bytes);
}

TEST_F(CudaBackendTest, HostFunctionsRunInStreamOrderAndReportFailures) {
    CudaBackend b(0);
    Stream& s = b.create_stream("decode");
    std::vector<int> order;
    for (int i = 0; i < 5; ++i) b.launch_host(s, "append", [&order, i] { order.push_back(i); });
    b.synchronize(s);
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
    auto never = b.create_event();
    EXPECT_TRUE(b.query(*never));  // never recorded: complete
    b.launch_host(s, "decode L7", [] { throw Error("corrupt blob"); });
    try {
        b.synchronize(s);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("decode L7"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("corrupt blob"), std::string::npos) << e.what();
    }
    EXPECT_THROW(b.synchronize_all(), Error);  // sticky
}

TEST_F(CudaBackendTest, TraceSpansAreTimedOnTheGpu) {
    Tracer tracer(0, true);
    {
        CudaBackend b(0);
        b.set_tracer(&tracer);
        Stream& copy = b.create_stream("copy");
        const size_t n = 32 << 20;
        Buffer pinned = b.buffer(n, MemoryKind::PinnedHost, "test");
        Buffer device = b.buffer(n, MemoryKind::Device, "test");
        for (int i = 0; i < 4; ++i) b.memcpy_async(device.data(), pinned.data(), n, copy);
        b.synchronize_all();
        b.set_tracer(nullptr);
    }
    const TraceData data = tracer.data();
    const auto spans = data.find("copy", "memcpy", 0);
    ASSERT_EQ(spans.size(), 4u);
    for (size_t i = 0; i < spans.size(); ++i) {
        EXPECT_GT(spans[i]->end_ns, spans[i]->start_ns);  // 32 MiB takes microseconds at least
        if (i > 0) {
            EXPECT_GE(spans[i]->start_ns, spans[i - 1]->end_ns - 1000);  // one stream: in order
        }
    }
}

}  // namespace
}  // namespace ecf8
