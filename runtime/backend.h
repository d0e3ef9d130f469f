// Backend: memory, streams, events and synchronization behind one interface, so that the runtime's pipeline
// (copy layer L+1 -> decode L+1 -> compute L -> collectives) is the same code on CUDA and on the CPU.
// Implementations: CpuBackend (runtime/cpu_backend.h: each stream is a worker thread running a FIFO queue)
// and CudaBackend (runtime/cuda_backend.h: cudaStream_t / cudaEvent_t). Each also owns the model's op table
// (ops(), runtime/ops.h).
//
// The contract, shared by every backend:
//   - Work on one stream runs in the order it was enqueued. Work on different streams is unordered unless an
//     event orders it: record(e, A); wait(B, e) makes everything enqueued on B after the wait run after
//     everything enqueued on A before the record.
//   - Events behave as CUDA's: each record() replaces the event's state; wait(), query() and
//     synchronize_event() refer to the most recent record *at the time of the call*. An event never recorded
//     is complete.
//   - launch(stream, label, fn) enqueues a work item. fn "does the work on this stream": on the CPU it runs
//     later, on the stream's worker, in order; on CUDA it runs now, on the calling thread, and must only
//     enqueue work onto the stream's native_handle() (a cudaStream_t): kernels, cuBLAS, NCCL; never a
//     host synchronization. So fn must capture by value whatever the host may change after launch returns
//     (loop indices, sizes), and must not use results of earlier stream work on the host.
//   - launch_host(stream, label, fn) enqueues host code that runs in stream order on both backends (on CUDA
//     through cudaLaunchHostFunc): fn may read results of earlier work on the stream, but must not call the
//     backend.
//   - Errors. An exception thrown by a work item poisons its stream: later work on it is skipped, events
//     recorded on it carry the error, and a stream that waits on such an event is poisoned in turn. The
//     next synchronize() or synchronize_event() on anything that depends on the failure throws ecf8::Error
//     naming the item's label, its stream and the original message; the poison is sticky, as CUDA's
//     errors are. On CUDA, fn runs on the caller, so its exceptions leave launch() directly; portable code
//     treats launch() and the synchronize calls as throwing.
//   - Never call synchronize*(), free() or create_*() from inside a work item.
//   - Streams belong to the backend and live as long as it does. Events and buffers belong to the caller and
//     must be destroyed before the backend.
//   - free() waits until no stream has pending work (as cudaFree does), so a buffer freed while work that
//     uses it is still queued is not freed under that work.
//   - Memory is accounted per MemoryKind (live bytes, peak, allocation counts, live bytes per tag), so
//     tests and the memory planner can compare plans with what was allocated.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "runtime/trace.h"

namespace ecf8 {

enum class BackendKind { Cpu, Cuda };
// Device: accelerator memory (plain host memory on the CPU backend). PinnedHost: page-locked host memory
// that the copy engine reads (4 KiB aligned). Host: ordinary pageable host memory.
enum class MemoryKind { Device, PinnedHost, Host };
inline constexpr int kNumMemoryKinds = 3;

const char* backend_kind_name(BackendKind kind);
const char* memory_kind_name(MemoryKind kind);

class Backend;
class Ops;

// ----------------------------------------------------------------------------
// Opaque handles. Each backend derives its own; the base carries what every backend knows.

class Stream {
public:
    virtual ~Stream() = default;
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    Backend& backend() const { return *backend_; }
    // The name given to create_stream; the tracer draws the stream's work on the lane of the same name.
    const std::string& name() const { return name_; }
    // cudaStream_t on CUDA, nullptr on the CPU.
    virtual void* native_handle() const = 0;

protected:
    Stream(Backend* backend, std::string name) : backend_(backend), name_(std::move(name)) {}

private:
    Backend* backend_;
    std::string name_;
};

class Event {
public:
    virtual ~Event() = default;
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;

    Backend& backend() const { return *backend_; }
    // cudaEvent_t on CUDA, nullptr on the CPU.
    virtual void* native_handle() const = 0;

protected:
    explicit Event(Backend* backend) : backend_(backend) {}

private:
    Backend* backend_;
};

// ----------------------------------------------------------------------------
// Memory accounting and an owning buffer.

struct MemoryStats {
    size_t live_bytes = 0;         // allocated and not yet freed
    size_t peak_bytes = 0;         // high-water mark of live_bytes
    size_t live_allocations = 0;   // allocations not yet freed
    size_t total_allocations = 0;  // allocations ever made
};

// A move-only owner of one allocation; frees it on destruction.
class Buffer {
public:
    Buffer() = default;
    Buffer(Backend& backend, size_t bytes, MemoryKind kind, const char* tag);
    ~Buffer() { reset(); }
    Buffer(Buffer&& other) noexcept { *this = std::move(other); }
    Buffer& operator=(Buffer&& other) noexcept;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    void* data() const { return data_; }
    template <class T>
    T* as() const {
        return static_cast<T*>(data_);
    }
    size_t size() const { return bytes_; }
    MemoryKind kind() const { return kind_; }
    bool empty() const { return data_ == nullptr; }
    // Frees the allocation now (waiting for pending stream work, as Backend::free does).
    void reset() noexcept;

private:
    Backend* backend_ = nullptr;
    void* data_ = nullptr;
    size_t bytes_ = 0;
    MemoryKind kind_ = MemoryKind::Host;
};

// ----------------------------------------------------------------------------
// The interface.

class Backend {
public:
    virtual ~Backend() = default;
    Backend(const Backend&) = delete;
    Backend& operator=(const Backend&) = delete;

    virtual BackendKind kind() const = 0;
    virtual std::string name() const = 0;

    // Memory. allocate(0, ...) returns nullptr; free(nullptr) does nothing. `tag` (may be null) names what
    // the memory is for ("weights", "decode_slots", "kv_cache") in the per-tag accounting and in errors.
    // Failure throws ecf8::Error naming the size, kind and tag.
    void* allocate(size_t bytes, MemoryKind kind, const char* tag);
    void free(void* ptr);  // throws for a pointer this backend did not allocate
    Buffer buffer(size_t bytes, MemoryKind kind, const char* tag) { return Buffer(*this, bytes, kind, tag); }
    MemoryStats memory_stats(MemoryKind kind) const;
    std::map<std::string, size_t> live_bytes_by_tag(MemoryKind kind) const;

    // Streams live as long as the backend. Give each a distinct name; "copy", "decode", "compute" and "comm"
    // land on the tracer's standard lanes.
    virtual Stream& create_stream(const char* name) = 0;
    virtual std::unique_ptr<Event> create_event() = 0;

    // Work.
    void launch(Stream& stream, std::string_view label, std::function<void()> fn) {
        do_launch(stream, label, TraceArgs(), std::move(fn), /*host=*/false);
    }
    void launch(Stream& stream, std::string_view label, const TraceArgs& args, std::function<void()> fn) {
        do_launch(stream, label, args, std::move(fn), /*host=*/false);
    }
    void launch_host(Stream& stream, std::string_view label, std::function<void()> fn) {
        do_launch(stream, label, TraceArgs(), std::move(fn), /*host=*/true);
    }
    void launch_host(Stream& stream, std::string_view label, const TraceArgs& args, std::function<void()> fn) {
        do_launch(stream, label, args, std::move(fn), /*host=*/true);
    }
    // Copies `bytes` from src to dst in stream order, between any kinds of memory of this backend.
    virtual void memcpy_async(void* dst, const void* src, size_t bytes, Stream& stream) = 0;

    // Ordering.
    virtual void record(Event& event, Stream& stream) = 0;      // event completes when the stream gets here
    virtual void wait(Stream& stream, const Event& event) = 0;  // later work on stream waits for the event
    virtual bool query(const Event& event) = 0;                 // has the latest record completed? never throws
    // Host waits. These throw ecf8::Error when the awaited work, or work it depends on, failed. Each one is
    // counted (host_waits) and, with a tracer, drawn on the host lane as "host wait <what>": a step of the
    // pipeline waits once, for its logits.
    void synchronize(Stream& stream);            // everything enqueued on stream so far
    void synchronize_event(const Event& event);  // the latest record of event
    void synchronize_all();                      // every stream
    uint64_t host_waits() const { return host_waits_.load(std::memory_order_relaxed); }

    // The model's ops on this backend (runtime/ops.h), made on first use and owned by the backend.
    virtual Ops& ops() = 0;

    // Tracing: with a tracer attached, the backend records every work item and copy as a span on the lane
    // named after its stream. The tracer must outlive the backend or be detached (nullptr) first.
    void set_tracer(Tracer* tracer) { tracer_.store(tracer, std::memory_order_release); }
    Tracer* tracer() const { return tracer_.load(std::memory_order_acquire); }

protected:
    Backend() = default;

    virtual void do_synchronize(Stream& stream) = 0;
    virtual void do_synchronize_event(const Event& event) = 0;
    virtual void do_synchronize_all() = 0;
    // host == true: fn is host code to run in stream order (launch_host); false: fn enqueues the work.
    virtual void do_launch(Stream& stream, std::string_view label, const TraceArgs& args, std::function<void()> fn,
                           bool host) = 0;
    virtual void* do_allocate(size_t bytes, MemoryKind kind) = 0;  // nullptr on failure
    virtual void do_free(void* ptr, size_t bytes, MemoryKind kind) noexcept = 0;
    // For derived destructors: frees what the caller leaked (warning once with the tags), so the backend's
    // memory goes with it. Returns the number of allocations freed.
    size_t release_all_allocations() noexcept;

private:
    struct Allocation {
        size_t bytes;
        MemoryKind kind;
        std::string tag;
    };
    std::atomic<Tracer*> tracer_{nullptr};
    std::atomic<uint64_t> host_waits_{0};
    mutable std::mutex alloc_mutex_;
    std::unordered_map<void*, Allocation> allocations_;
    std::array<MemoryStats, kNumMemoryKinds> stats_{};
};

}  // namespace ecf8
