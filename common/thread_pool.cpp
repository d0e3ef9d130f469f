// ThreadPool: a parallel_for generation is published by bumping generation_; workers spin for it a
// short while after each job, then sleep on a condition variable.
#include "common/thread_pool.h"

#include <chrono>
#include <exception>

namespace ecf8 {

namespace {

// How long a waiter spins before it sleeps. Long enough to cover the gap between the calls of a
// per-tensor loop, short enough that an idle pool costs nothing measurable.
constexpr auto kSpin = std::chrono::microseconds(100);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Spins until done() or kSpin has passed; returns done()'s last value. Yields between polls so that an
// oversubscribed machine (more ranks than cores, as in the MPI tests) still runs the thread it waits for.
template <class Pred>
bool spin_until(const Pred& done) {
    const auto deadline = std::chrono::steady_clock::now() + kSpin;
    for (int i = 0;; ++i) {
        if (done()) return true;
        if ((i & 63) == 63) {
            if (std::chrono::steady_clock::now() >= deadline) return done();
            std::this_thread::yield();
        }
        cpu_relax();
    }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
    if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_.store(true);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::drain() {
    for (size_t i = next_.fetch_add(1); i < count_; i = next_.fetch_add(1)) {
        try {
            thunk_(ctx_, i);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex_);
            if (!error_) error_ = std::current_exception();
        }
    }
}

void ThreadPool::run(size_t n, Thunk thunk, const void* ctx) {
    if (n == 0) return;
    if (workers_.empty() || n == 1) {
        for (size_t i = 0; i < n; ++i) thunk(ctx, i);
        return;
    }
    {
        // Every worker finished the previous generation (run waited for it), so none reads these now.
        std::lock_guard<std::mutex> lock(mutex_);
        thunk_ = thunk;
        ctx_ = ctx;
        count_ = n;
        next_.store(0);
        error_ = nullptr;
        active_.store(static_cast<int>(workers_.size()));
        generation_.fetch_add(1, std::memory_order_release);  // publishes the fields above
    }
    wake_.notify_all();
    drain();
    auto all_done = [this] { return active_.load(std::memory_order_acquire) == 0; };
    if (!spin_until(all_done)) {
        std::unique_lock<std::mutex> lock(mutex_);
        done_.wait(lock, all_done);
    }
    if (error_) std::rethrow_exception(error_);
}

void ThreadPool::worker_loop() {
    uint64_t seen = 0;
    for (;;) {
        auto woken = [&] {
            return stopping_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen;
        };
        if (!spin_until(woken)) {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, woken);
        }
        if (stopping_.load()) return;
        seen = generation_.load(std::memory_order_acquire);
        drain();
        if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            // The mutex orders this notify after run()'s check of active_, so the wake-up is not lost.
            std::lock_guard<std::mutex> lock(mutex_);
            done_.notify_all();
        }
    }
}

}  // namespace ecf8
