// ThreadPool: workers sleep on a condition variable and wake for each parallel_for generation.
#include "common/thread_pool.h"

#include <exception>

namespace ecf8 {

ThreadPool::ThreadPool(int threads) {
    if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
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
        std::lock_guard<std::mutex> lock(mutex_);
        thunk_ = thunk;
        ctx_ = ctx;
        count_ = n;
        next_.store(0);
        error_ = nullptr;
        active_ = static_cast<int>(workers_.size());
        ++generation_;
    }
    wake_.notify_all();
    drain();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return active_ == 0; });
    if (error_) std::rethrow_exception(error_);
}

void ThreadPool::worker_loop() {
    uint64_t seen = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
            if (stopping_) return;
            seen = generation_;
        }
        drain();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (--active_ == 0) done_.notify_all();
        }
    }
}

}  // namespace ecf8
