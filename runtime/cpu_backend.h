// CpuBackend: the Backend of machines without a GPU, and the twin that tests the pipeline's ordering logic.
// Each stream is one worker thread running a FIFO queue of items: work (launch), copies (memcpy_async),
// event records and event waits. record() enqueues a marker that completes that record; wait() enqueues a
// marker that holds the queue until the record it names has completed. Nothing busy-waits: workers and host
// waiters sleep on condition variables. "Device" memory is ordinary host memory (256-byte aligned, as
// cudaMalloc's), pinned host memory is 4 KiB aligned (not locked), host memory 64-byte aligned.
//
// Destroying the backend discards the work that has not started (as a device reset would), lets each
// worker finish the item it is running, and joins the workers; it never waits on an event, so it returns
// even when work failed or waits that can no longer be satisfied are queued.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/backend.h"

namespace ecf8 {

class CpuBackend final : public Backend {
public:
    CpuBackend();
    ~CpuBackend() override;

    BackendKind kind() const override { return BackendKind::Cpu; }
    std::string name() const override { return "cpu"; }

    Stream& create_stream(const char* name) override;
    std::unique_ptr<Event> create_event() override;
    void memcpy_async(void* dst, const void* src, size_t bytes, Stream& stream) override;
    void record(Event& event, Stream& stream) override;
    void wait(Stream& stream, const Event& event) override;
    bool query(const Event& event) override;
    Ops& ops() override;

    // Items enqueued on the stream that have not finished (for tests and debugging).
    size_t pending_items(Stream& stream);

    class CpuStream;
    class CpuEvent;

protected:
    void do_synchronize(Stream& stream) override;
    void do_synchronize_event(const Event& event) override;
    void do_synchronize_all() override;
    void do_launch(Stream& stream, std::string_view label, const TraceArgs& args, std::function<void()> fn,
                   bool host) override;
    void* do_allocate(size_t bytes, MemoryKind kind) override;
    void do_free(void* ptr, size_t bytes, MemoryKind kind) noexcept override;

private:
    struct Item;
    CpuStream& own(Stream& stream) const;
    CpuEvent& own(Event& event) const;
    const CpuEvent& own(const Event& event) const;
    void check_not_worker(const char* call) const;
    void enqueue_locked(CpuStream& stream, Item item);
    void worker_loop(CpuStream& stream);
    void run_item(CpuStream& stream, Item& item, std::unique_lock<std::mutex>& lock);
    void execute(CpuStream& stream, Item& item);
    bool all_idle_locked() const;
    void notify_all_locked();

    std::once_flag ops_once_;
    std::unique_ptr<Ops> ops_;         // made by ops() on first use
    std::mutex mutex_;                 // guards every stream's queue and state, every event's records, stopping_
    std::condition_variable host_cv_;  // host threads waiting in synchronize*() or free()
    std::vector<std::unique_ptr<CpuStream>> streams_;
    bool stopping_ = false;
};

}  // namespace ecf8
