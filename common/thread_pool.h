// A fixed pool of worker threads with a blocking parallel_for. Work items are claimed dynamically
// with one atomic counter; the call makes no heap allocation, so it can sit on hot paths.
// Waits spin briefly before sleeping: waking a sleeping thread costs tens of microseconds (about 40 on
// a 2-core VM), as long as decoding a whole small tensor. The spin only pays off for loops of small
// calls (per-tensor compress, decompress, verify); a call after longer work still wakes sleepers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

namespace ecf8 {

class ThreadPool {
public:
    // threads <= 0 means one per hardware thread. The calling thread also works, so a pool of N runs
    // N-1 background workers.
    explicit ThreadPool(int threads = 0);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return static_cast<int>(workers_.size()) + 1; }

    // Calls fn(i) for every i in [0, n) and returns when all are done. The first exception thrown by
    // any call is rethrown here after the others finish.
    template <class F>
    void parallel_for(size_t n, const F& fn) {
        run(
            n, [](const void* ctx, size_t i) { (*static_cast<const F*>(ctx))(i); }, &fn);
    }

private:
    using Thunk = void (*)(const void*, size_t);
    void run(size_t n, Thunk thunk, const void* ctx);
    void worker_loop();
    void drain();

    std::vector<std::thread> workers_;
    std::mutex mutex_;  // guards the sleeps; the fields below are published by generation_
    std::condition_variable wake_, done_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<bool> stopping_{false};
    std::atomic<int> active_{0};  // workers still inside the current generation
    // The job being run.
    Thunk thunk_ = nullptr;
    const void* ctx_ = nullptr;
    size_t count_ = 0;
    std::atomic<size_t> next_{0};
    std::exception_ptr error_;
    std::mutex error_mutex_;
};

}  // namespace ecf8
