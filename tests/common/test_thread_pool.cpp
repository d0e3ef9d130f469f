// parallel_for visits every index exactly once and propagates exceptions.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/thread_pool.h"

TEST(ThreadPool, VisitsEveryIndexOnce) {
    ecf8::ThreadPool pool(4);
    for (size_t n : {0u, 1u, 3u, 1000u}) {
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_for(n, [&](size_t i) { hits[i]++; });
        for (size_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
    }
}

TEST(ThreadPool, RethrowsWorkerException) {
    ecf8::ThreadPool pool(3);
    EXPECT_THROW(pool.parallel_for(100,
                                   [](size_t i) {
                                       if (i == 57) throw std::runtime_error("boom");
                                   }),
                 std::runtime_error);
    std::atomic<int> sum{0};
    pool.parallel_for(10, [&](size_t i) { sum += static_cast<int>(i); });
    EXPECT_EQ(sum.load(), 45);
}

// Workers spin a while after each job and then sleep: calls that follow at once, calls after a pause
// long enough for the workers to fall asleep, and a pool destroyed while its workers spin must all
// visit every index exactly once.
TEST(ThreadPool, BackToBackAndSleepingCalls) {
    for (int trial = 0; trial < 3; ++trial) {
        ecf8::ThreadPool pool(3);
        std::vector<std::atomic<int>> hits(64);
        for (int call = 0; call < 300; ++call) {
            if (call % 100 == 99) std::this_thread::sleep_for(std::chrono::milliseconds(2));
            pool.parallel_for(hits.size(), [&](size_t i) { hits[i]++; });
        }
        for (size_t i = 0; i < hits.size(); ++i) EXPECT_EQ(hits[i].load(), 300) << "index " << i;
    }
}
