// CpuBackend: FIFO order, cross-stream waits (randomized), CUDA-like event re-records, synchronize, copies,
// a copy -> decode -> compute pipeline over a ring of two slots (results and overlap in the trace), error
// propagation, destruction with pending or failed work, memory accounting and misuse checks.
// Timing only ever makes overlap likely (sleeps of tens of ms); no assertion depends on a tight threshold.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "runtime/backend.h"
#include "runtime/cpu_backend.h"
#include "runtime/trace.h"

using ecf8::Backend;
using ecf8::Buffer;
using ecf8::CpuBackend;
using ecf8::Event;
using ecf8::MemoryKind;
using ecf8::Stream;
using ecf8::TraceData;
using ecf8::Tracer;
using ecf8::TraceSpan;

namespace {

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
void sleep_us(int us) { std::this_thread::sleep_for(std::chrono::microseconds(us)); }

// A one-shot latch that work items block on until the test opens it.
class Gate {
public:
    void open() {
        std::lock_guard<std::mutex> lock(mutex_);
        open_ = true;
        cv_.notify_all();
    }
    void wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return open_; });
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};

// The message of the ecf8::Error that f throws, or "" when it does not throw.
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const ecf8::Error& e) {
        return e.what();
    }
    return "";
}

void expect_contains(const std::string& text, const std::vector<std::string>& words) {
    EXPECT_FALSE(text.empty()) << "no error";
    for (const std::string& w : words) EXPECT_NE(text.find(w), std::string::npos) << w << " not in: " << text;
}

uint32_t seed_from_device() {
    std::random_device rd;
    return rd();
}

}  // namespace

// ----------------------------------------------------------------------------
// Ordering

TEST(CpuBackend, Names) {
    CpuBackend b;
    EXPECT_EQ(b.kind(), ecf8::BackendKind::Cpu);
    EXPECT_EQ(b.name(), "cpu");
    EXPECT_STREQ(ecf8::backend_kind_name(ecf8::BackendKind::Cuda), "cuda");
    EXPECT_STREQ(ecf8::memory_kind_name(MemoryKind::PinnedHost), "pinned_host");
    Stream& s = b.create_stream("decode");
    EXPECT_EQ(s.name(), "decode");
    EXPECT_EQ(&s.backend(), &b);
    EXPECT_EQ(s.native_handle(), nullptr);
}

TEST(CpuBackend, FifoWithinStream) {
    CpuBackend b;
    Stream& s = b.create_stream("compute");
    std::vector<int> order;
    const int n = 2000;
    for (int i = 0; i < n; ++i) {
        auto fn = [&order, i] { order.push_back(i); };
        if (i % 3 == 0) {
            b.launch_host(s, "host item", fn);
        } else {
            b.launch(s, "item", fn);
        }
    }
    b.synchronize(s);
    std::vector<int> expected(n);
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(order, expected);
    EXPECT_EQ(b.pending_items(s), 0u);
}

// Work on B after wait(B, e) sees the effects of work on A before record(e, A), many times, with random
// sleeps on either side; half the waits reuse one re-recorded event, half use a fresh one.
TEST(CpuBackend, CrossStreamWaitOrdering) {
    const uint32_t seed = seed_from_device();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> sleep_dist(0, 1500);

    CpuBackend b;
    Stream& a = b.create_stream("a");
    Stream& c = b.create_stream("b");
    const int n = 300;
    std::vector<int> produced(n, 0);  // plain ints: TSan checks the happens-before edge the event gives
    std::vector<int> seen(n, -1);
    auto reused = b.create_event();
    std::vector<std::unique_ptr<Event>> fresh;
    for (int i = 0; i < n; ++i) {
        const int sleep_a = sleep_dist(rng);
        const int sleep_b = sleep_dist(rng) / 8;
        b.launch(a, "produce", [&produced, i, sleep_a] {
            sleep_us(sleep_a);
            produced[i] = i + 1;
        });
        Event* e = reused.get();
        if (i % 2 == 1) {
            fresh.push_back(b.create_event());
            e = fresh.back().get();
        }
        b.record(*e, a);
        b.wait(c, *e);
        b.launch(c, "consume", [&produced, &seen, i, sleep_b] {
            sleep_us(sleep_b);
            seen[i] = produced[i];
        });
        if (i % 7 == 0) sleep_us(sleep_dist(rng));
    }
    b.synchronize_all();
    for (int i = 0; i < n; ++i) ASSERT_EQ(seen[i], i + 1) << "item " << i;
}

// As CUDA: a wait refers to the latest record at the time of the call; a later re-record does not extend it,
// and a wait issued after the re-record waits for the new one.
TEST(CpuBackend, EventReRecordSemantics) {
    CpuBackend b;
    Stream& a = b.create_stream("a");
    Stream& c = b.create_stream("b");
    auto e = b.create_event();
    Gate g1, g2;
    std::atomic<bool> b1{false}, b2{false};

    b.launch(a, "a1", [&] { g1.wait(); });
    b.record(*e, a);  // record 1
    b.wait(c, *e);    // waits for record 1 only
    b.launch(c, "b1", [&] { b1 = true; });
    b.launch(a, "a2", [&] { g2.wait(); });
    b.record(*e, a);  // record 2, still blocked behind a2

    EXPECT_FALSE(b.query(*e));
    sleep_ms(20);
    EXPECT_FALSE(b1.load());  // record 1 has not completed either
    g1.open();
    b.synchronize(c);  // returns although record 2 is still pending
    EXPECT_TRUE(b1.load());
    EXPECT_FALSE(b.query(*e));  // query looks at record 2

    b.wait(c, *e);  // now waits for record 2
    b.launch(c, "b2", [&] { b2 = true; });
    sleep_ms(50);
    EXPECT_FALSE(b2.load());
    g2.open();
    b.synchronize_event(*e);
    EXPECT_TRUE(b.query(*e));
    b.synchronize(c);
    EXPECT_TRUE(b2.load());
}

TEST(CpuBackend, NeverRecordedEventIsComplete) {
    CpuBackend b;
    Stream& s = b.create_stream("s");
    auto e = b.create_event();
    EXPECT_TRUE(b.query(*e));
    EXPECT_NO_THROW(b.synchronize_event(*e));
    bool ran = false;
    b.wait(s, *e);
    b.launch(s, "after", [&] { ran = true; });
    b.synchronize(s);
    EXPECT_TRUE(ran);
}

TEST(CpuBackend, SynchronizeWaitsForWhatWasEnqueued) {
    CpuBackend b;
    Stream& s = b.create_stream("s");
    int count = 0;
    for (int i = 0; i < 20; ++i) {
        b.launch(s, "step", [&count] {
            sleep_ms(1);
            ++count;
        });
    }
    b.synchronize(s);
    EXPECT_EQ(count, 20);

    // synchronize_event waits for the record, not for what follows it on the stream.
    Gate gate;
    auto e = b.create_event();
    for (int i = 0; i < 5; ++i) {
        b.launch(s, "before", [&count] {
            sleep_ms(3);
            ++count;
        });
    }
    b.record(*e, s);
    b.launch(s, "blocked", [&gate] { gate.wait(); });
    b.synchronize_event(*e);
    EXPECT_EQ(count, 25);
    EXPECT_TRUE(b.query(*e));
    EXPECT_EQ(b.pending_items(s), 1u);
    gate.open();
    b.synchronize_all();
    EXPECT_EQ(b.pending_items(s), 0u);
}

TEST(CpuBackend, MemcpyAsyncIsStreamOrdered) {
    CpuBackend b;
    Stream& copy = b.create_stream("copy");
    Stream& compute = b.create_stream("compute");
    const size_t n = 4096;
    const int rounds = 40;
    Buffer staging = b.buffer(n, MemoryKind::PinnedHost, "staging");
    Buffer device = b.buffer(n * rounds, MemoryKind::Device, "slots");
    std::vector<std::unique_ptr<Event>> copied;
    std::vector<int> ok(rounds, 0);
    for (int r = 0; r < rounds; ++r) {
        uint8_t* stage = staging.as<uint8_t>();
        uint8_t* dst = device.as<uint8_t>() + r * n;
        // The fill and the copy share a stream, so reusing the staging buffer each round is safe.
        b.launch(copy, "fill", [stage, r, n] {
            sleep_us(200);
            std::memset(stage, r + 1, n);
        });
        b.memcpy_async(dst, stage, n, copy);
        copied.push_back(b.create_event());
        b.record(*copied.back(), copy);
        b.wait(compute, *copied.back());
        b.launch(compute, "check", [dst, r, n, &ok] {
            bool all = true;
            for (size_t i = 0; i < n; ++i) all = all && dst[i] == static_cast<uint8_t>(r + 1);
            ok[r] = all ? 1 : 0;
        });
    }
    b.memcpy_async(nullptr, nullptr, 0, copy);  // an empty copy is a no-op
    b.synchronize_all();
    for (int r = 0; r < rounds; ++r) EXPECT_EQ(ok[r], 1) << "round " << r;
    EXPECT_NE(error_of([&] { b.memcpy_async(nullptr, staging.data(), 1, copy); }), "");
}

// ----------------------------------------------------------------------------
// The runtime's pipeline in miniature: copy item i into a pinned staging slot, decode it into a "device"
// slot, compute on the slot; two slots, slot reuse guarded by events, nothing synchronized on the host.

TEST(CpuBackend, PipelineRingOfTwoSlotsOverlaps) {
    CpuBackend b;
    Tracer tracer(0, true);
    b.set_tracer(&tracer);
    Stream& copy = b.create_stream("copy");
    Stream& decode = b.create_stream("decode");
    Stream& compute = b.create_stream("compute");

    const int items = 6;
    const int slots = 2;
    const size_t elems = 1024;
    const int work_ms = 50;
    Buffer source = b.buffer(items * elems * sizeof(int32_t), MemoryKind::Host, "weights_host");
    for (size_t j = 0; j < items * elems; ++j) source.as<int32_t>()[j] = static_cast<int32_t>(j % 1000);
    std::vector<Buffer> staging, decoded;
    std::vector<std::unique_ptr<Event>> copied, staging_free, ready, slot_free;
    for (int s = 0; s < slots; ++s) {
        staging.push_back(b.buffer(elems * sizeof(int32_t), MemoryKind::PinnedHost, "staging"));
        decoded.push_back(b.buffer(elems * sizeof(int32_t), MemoryKind::Device, "decode_slots"));
        copied.push_back(b.create_event());
        staging_free.push_back(b.create_event());
        ready.push_back(b.create_event());
        slot_free.push_back(b.create_event());
    }
    std::vector<int64_t> out(items, 0);

    for (int i = 0; i < items; ++i) {
        const int s = i % slots;
        int32_t* stage = staging[s].as<int32_t>();
        int32_t* slot = decoded[s].as<int32_t>();
        b.wait(copy, *staging_free[s]);
        b.memcpy_async(stage, source.as<int32_t>() + i * elems, elems * sizeof(int32_t), copy);
        b.record(*copied[s], copy);

        b.wait(decode, *copied[s]);
        b.wait(decode, *slot_free[s]);
        b.launch(decode, "decode " + std::to_string(i), {{"layer", i}, {"bytes", elems * sizeof(int32_t)}},
                 [stage, slot, elems, work_ms] {
                     sleep_ms(work_ms);
                     for (size_t j = 0; j < elems; ++j) slot[j] = stage[j] * 3 + 1;
                 });
        b.record(*staging_free[s], decode);
        b.record(*ready[s], decode);

        b.wait(compute, *ready[s]);
        b.launch(compute, "compute " + std::to_string(i), {{"layer", i}}, [slot, elems, work_ms, &out, i] {
            sleep_ms(work_ms);
            out[i] = std::accumulate(slot, slot + elems, int64_t{0});
        });
        b.record(*slot_free[s], compute);
    }
    b.synchronize_all();

    for (int i = 0; i < items; ++i) {
        int64_t expected = 0;
        for (size_t j = 0; j < elems; ++j) expected += static_cast<int64_t>((i * elems + j) % 1000) * 3 + 1;
        EXPECT_EQ(out[i], expected) << "item " << i;
    }

    TraceData trace = tracer.data();
    auto decodes = trace.find("decode", "decode ");
    auto computes = trace.find("compute", "compute ");
    ASSERT_EQ(decodes.size(), static_cast<size_t>(items));
    ASSERT_EQ(computes.size(), static_cast<size_t>(items));
    EXPECT_EQ(trace.find("copy", "memcpy").size(), static_cast<size_t>(items));
    for (int i = 0; i < items; ++i) {
        EXPECT_EQ(decodes[i]->name, "decode " + std::to_string(i));
        EXPECT_EQ(decodes[i]->arg("layer"), i);
        EXPECT_EQ(computes[i]->arg("layer"), i);
    }
    for (int i = 0; i + 1 < items; ++i) {
        // Overlap: decode of i+1 runs while compute of i does.
        EXPECT_LT(decodes[i + 1]->start_ns, computes[i]->end_ns) << "no overlap at item " << i;
        // Guaranteed by the events, whatever the timing: compute i after decode i, slot reuse after compute.
        EXPECT_GE(computes[i]->start_ns, decodes[i]->end_ns);
        if (i + 2 < items) {
            EXPECT_GE(decodes[i + 2]->start_ns, computes[i]->end_ns);
        }
    }
    b.set_tracer(nullptr);
}

// ----------------------------------------------------------------------------
// Errors

TEST(CpuBackend, ErrorPoisonsStreamAndDependents) {
    CpuBackend b;
    Stream& d = b.create_stream("decode");
    Stream& c = b.create_stream("compute");
    Stream& other = b.create_stream("other");
    std::atomic<bool> later_ran{false}, dependent_ran{false}, other_ran{false};

    b.launch(d, "decode L7", [] { ECF8_FAIL("bad blob"); });
    b.launch(d, "decode L8", [&] { later_ran = true; });
    auto e = b.create_event();
    b.record(*e, d);
    b.wait(c, *e);
    b.launch(c, "compute L7", [&] { dependent_ran = true; });
    b.launch(other, "independent", [&] { other_ran = true; });

    expect_contains(error_of([&] { b.synchronize(d); }), {"decode L7", "'decode'", "bad blob"});
    expect_contains(error_of([&] { b.synchronize(c); }), {"compute", "decode L7", "bad blob"});
    expect_contains(error_of([&] { b.synchronize_event(*e); }), {"decode L7", "bad blob"});
    expect_contains(error_of([&] { b.synchronize(d); }), {"decode L7"});  // sticky
    expect_contains(error_of([&] { b.synchronize_all(); }), {"decode L7"});
    EXPECT_TRUE(b.query(*e));  // a failed record is complete; only the synchronize calls throw
    EXPECT_NO_THROW(b.synchronize(other));
    EXPECT_TRUE(other_ran.load());
    EXPECT_FALSE(later_ran.load());
    EXPECT_FALSE(dependent_ran.load());

    // Waiting on the failed record later still poisons the waiter.
    Stream& late = b.create_stream("late");
    b.wait(late, *e);
    b.launch(late, "late work", [] {});
    expect_contains(error_of([&] { b.synchronize(late); }), {"late", "decode L7"});

    // A new record on a healthy stream replaces the failed one.
    b.record(*e, other);
    EXPECT_NO_THROW(b.synchronize_event(*e));
}

TEST(CpuBackend, NonStandardExceptionIsReported) {
    CpuBackend b;
    Stream& s = b.create_stream("comm");
    b.launch(s, "all_reduce L3", [] { throw 42; });
    expect_contains(error_of([&] { b.synchronize(s); }), {"all_reduce L3", "unknown exception"});
}

TEST(CpuBackend, BackendCallsFromInsideWorkItemsAreRefused) {
    CpuBackend b;
    Stream& s = b.create_stream("s");
    auto e = b.create_event();
    b.launch(s, "sync inside", [&] { b.synchronize(s); });
    expect_contains(error_of([&] { b.synchronize(s); }), {"sync inside", "inside a work item"});
    Stream& t = b.create_stream("t");
    b.launch(t, "record inside", [&] { b.record(*e, s); });
    expect_contains(error_of([&] { b.synchronize(t); }), {"record inside", "inside a work item"});
}

TEST(CpuBackend, ForeignHandlesAreRejected) {
    CpuBackend b1, b2;
    Stream& s2 = b2.create_stream("s2");
    auto e2 = b2.create_event();
    expect_contains(error_of([&] { b1.launch(s2, "x", [] {}); }), {"another backend"});
    expect_contains(error_of([&] { b1.query(*e2); }), {"another backend"});
    expect_contains(error_of([&] { b1.launch(b1.create_stream("s1"), "empty", std::function<void()>()); }),
                    {"without a function"});
}

// ----------------------------------------------------------------------------
// Destruction

TEST(CpuBackend, DestructionDiscardsPendingWorkWithoutHanging) {
    std::atomic<int> ran{0};
    const auto start = std::chrono::steady_clock::now();
    {
        CpuBackend b;
        Stream& a = b.create_stream("a");
        Stream& w = b.create_stream("w");
        Stream& f = b.create_stream("f");
        b.launch(a, "first", [&] {
            sleep_ms(20);
            ++ran;
        });
        for (int i = 0; i < 500; ++i) {
            b.launch(a, "slow", [&] {
                sleep_ms(10);
                ++ran;
            });
        }
        // A wait that only 5 s of draining could satisfy, and a failed stream nobody synchronized.
        auto e = b.create_event();
        b.record(*e, a);
        b.wait(w, *e);
        b.launch(w, "waiting", [&] { ++ran; });
        b.launch(f, "boom", [] { ECF8_FAIL("failure nobody looked at"); });
        b.launch(f, "after boom", [&] { ++ran; });
        sleep_ms(5);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 3.0);  // draining would take 5 s
    EXPECT_LT(ran.load(), 500);
}

TEST(CpuBackend, DestructionAfterSynchronizedFailure) {
    CpuBackend b;
    Stream& s = b.create_stream("s");
    b.launch(s, "fails", [] { throw std::runtime_error("x"); });
    EXPECT_NE(error_of([&] { b.synchronize(s); }), "");
}

// ----------------------------------------------------------------------------
// Memory

TEST(CpuBackend, MemoryAccountingAndAlignment) {
    CpuBackend b;
    void* d = b.allocate(1000, MemoryKind::Device, "weights");
    void* p = b.allocate(10, MemoryKind::PinnedHost, "staging");
    void* h = b.allocate(3, MemoryKind::Host, nullptr);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(d) % 256, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 4096, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(h) % 64, 0u);
    std::memset(d, 1, 1000);
    std::memset(p, 2, 10);
    std::memset(h, 3, 3);

    auto dev = b.memory_stats(MemoryKind::Device);
    EXPECT_EQ(dev.live_bytes, 1000u);
    EXPECT_EQ(dev.peak_bytes, 1000u);
    EXPECT_EQ(dev.live_allocations, 1u);
    EXPECT_EQ(dev.total_allocations, 1u);
    EXPECT_EQ(b.memory_stats(MemoryKind::PinnedHost).live_bytes, 10u);
    EXPECT_EQ(b.live_bytes_by_tag(MemoryKind::Host).at("untagged"), 3u);
    {
        Buffer x = b.buffer(5000, MemoryKind::Device, "decode_slots");
        Buffer y = std::move(x);
        EXPECT_TRUE(x.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified
        EXPECT_EQ(y.size(), 5000u);
        EXPECT_EQ(y.kind(), MemoryKind::Device);
        EXPECT_EQ(b.memory_stats(MemoryKind::Device).live_bytes, 6000u);
        auto tags = b.live_bytes_by_tag(MemoryKind::Device);
        EXPECT_EQ(tags.at("weights"), 1000u);
        EXPECT_EQ(tags.at("decode_slots"), 5000u);
    }
    dev = b.memory_stats(MemoryKind::Device);
    EXPECT_EQ(dev.live_bytes, 1000u);
    EXPECT_EQ(dev.peak_bytes, 6000u);
    EXPECT_EQ(dev.live_allocations, 1u);
    EXPECT_EQ(dev.total_allocations, 2u);

    b.free(d);
    EXPECT_EQ(b.memory_stats(MemoryKind::Device).live_bytes, 0u);
    expect_contains(error_of([&] { b.free(d); }), {"did not allocate"});  // double free
    int not_ours = 0;
    expect_contains(error_of([&] { b.free(&not_ours); }), {"did not allocate"});
    EXPECT_EQ(b.allocate(0, MemoryKind::Device, "empty"), nullptr);
    EXPECT_NO_THROW(b.free(nullptr));
    expect_contains(error_of([&] { b.allocate(SIZE_MAX - 8, MemoryKind::Host, "huge"); }), {"huge", "host"});
    b.free(p);
    b.free(h);
    EXPECT_EQ(b.memory_stats(MemoryKind::Host).live_allocations, 0u);
}

// free() waits for queued work, so a buffer dropped right after launching work on it is not freed under it.
TEST(CpuBackend, FreeWaitsForPendingWork) {
    CpuBackend b;
    Stream& s = b.create_stream("s");
    Buffer buf = b.buffer(1 << 16, MemoryKind::Device, "scratch");
    std::atomic<bool> done{false};
    uint8_t* data = buf.as<uint8_t>();
    b.launch(s, "writer", [data, &done] {
        sleep_ms(30);
        std::memset(data, 7, 1 << 16);
        done = true;
    });
    buf.reset();
    EXPECT_TRUE(done.load());
    EXPECT_EQ(b.memory_stats(MemoryKind::Device).live_bytes, 0u);
}

// ----------------------------------------------------------------------------
// Tracing

TEST(CpuBackend, TracerRecordsWorkOnTheStreamsLane) {
    CpuBackend b;
    Tracer tracer(3, true);
    Stream& decode = b.create_stream("decode");
    Stream& copy = b.create_stream("copy");
    Stream& aux = b.create_stream("aux");
    b.launch(decode, "untraced", [] {});
    b.synchronize(decode);
    b.set_tracer(&tracer);
    EXPECT_EQ(b.tracer(), &tracer);
    Buffer src = b.buffer(256, MemoryKind::PinnedHost, "src");
    Buffer dst = b.buffer(256, MemoryKind::Device, "dst");
    std::memset(src.data(), 0, 256);
    b.launch(decode, "decode L4", {{"layer", 4}, {"experts", 8}}, [] { sleep_ms(2); });
    b.memcpy_async(dst.data(), src.data(), 256, copy);
    b.launch_host(aux, "aux item", [] {});
    b.synchronize_all();
    b.set_tracer(nullptr);
    b.launch(decode, "after detach", [] {});
    b.synchronize(decode);

    TraceData t = tracer.data();
    ASSERT_EQ(t.spans.size(), 4u);  // three work items and the host's wait for them
    auto waits = t.find("host", "host wait");
    ASSERT_EQ(waits.size(), 1u);
    EXPECT_EQ(waits[0]->name, "host wait all");
    EXPECT_EQ(b.host_waits(), 3u);  // the two synchronize() and the synchronize_all()
    auto dec = t.find("decode");
    ASSERT_EQ(dec.size(), 1u);
    EXPECT_EQ(dec[0]->name, "decode L4");
    EXPECT_EQ(dec[0]->rank, 3);
    EXPECT_EQ(dec[0]->lane, Tracer::kDecode);
    EXPECT_EQ(dec[0]->arg("layer"), 4);
    EXPECT_EQ(dec[0]->arg("experts"), 8);
    EXPECT_GE(dec[0]->duration_ns(), 2'000'000);
    auto cp = t.find("copy", "memcpy");
    ASSERT_EQ(cp.size(), 1u);
    EXPECT_EQ(cp[0]->arg("bytes"), 256);
    auto ax = t.find("aux");
    ASSERT_EQ(ax.size(), 1u);
    EXPECT_GE(ax[0]->lane, 5);  // a new lane after the five standard ones
}
