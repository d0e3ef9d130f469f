// CpuBackend: streams as FIFO worker threads, events as records completed by queue markers (see cpu_backend.h).
#include "runtime/cpu_backend.h"

#include <pthread.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "runtime/cpu_ops.h"
#include "runtime/ops.h"

namespace ecf8 {

namespace cpu_detail {

// The first failed work item behind a poisoned stream or a failed record.
struct Failure {
    std::string label;
    std::string stream;
    std::string message;
};
using FailurePtr = std::shared_ptr<const Failure>;

// One record() of an event. wait() and synchronize_event() hold on to the record that was the latest when
// they were called, which gives CUDA's re-record semantics without comparing generations.
struct Record {
    uint64_t generation = 0;  // 1 for the event's first record, 2 for the next...
    bool done = false;
    FailurePtr failure;  // set when the recording stream was poisoned at the marker
};
using RecordPtr = std::shared_ptr<Record>;

}  // namespace cpu_detail

using cpu_detail::Failure;
using cpu_detail::FailurePtr;
using cpu_detail::Record;
using cpu_detail::RecordPtr;

namespace {

// The backend whose worker runs on this thread, to reject backend calls from inside work items.
thread_local const CpuBackend* tl_worker_of = nullptr;

size_t alignment_of(MemoryKind kind) {
    switch (kind) {
        case MemoryKind::Device:
            return 256;  // what cudaMalloc guarantees, so code tested here makes no stronger assumption
        case MemoryKind::PinnedHost:
            return 4096;  // page-aligned, as cudaHostAlloc's
        case MemoryKind::Host:
            return 64;
    }
    return 64;
}

[[noreturn]] void throw_failure(const Failure& f, const std::string& waiter) {
    if (waiter == f.stream) {
        ECF8_FAIL("work item '" << f.label << "' on stream '" << f.stream << "' failed: " << f.message);
    }
    ECF8_FAIL(waiter << " depends on work item '" << f.label << "' on stream '" << f.stream
                     << "', which failed: " << f.message);
}

}  // namespace

// ----------------------------------------------------------------------------
// Queue items, streams and events

enum class ItemKind { Work, Copy, Record, Wait };

struct CpuBackend::Item {
    ItemKind kind = ItemKind::Work;
    std::string label;  // copied: the caller's string may be gone when the item runs
    TraceArgs args;
    std::function<void()> fn;  // Work
    void* dst = nullptr;       // Copy
    const void* src = nullptr;
    size_t bytes = 0;
    RecordPtr record;    // Record: completes it; Wait: holds the queue until it is done
    FailurePtr failure;  // set by execute() when fn throws
};

class CpuBackend::CpuStream final : public Stream {
public:
    CpuStream(Backend* backend, std::string name) : Stream(backend, std::move(name)) {}
    void* native_handle() const override { return nullptr; }

    // Guarded by the backend's mutex.
    std::deque<Item> queue;
    std::condition_variable cv;  // the worker sleeps here
    uint64_t enqueued = 0;
    uint64_t finished = 0;
    FailurePtr failure;     // the poison
    bool reported = false;  // a synchronize has thrown the poison
    std::thread thread;
};

class CpuBackend::CpuEvent final : public Event {
public:
    explicit CpuEvent(Backend* backend) : Event(backend) {}
    void* native_handle() const override { return nullptr; }

    // Guarded by the backend's mutex.
    uint64_t generation = 0;
    RecordPtr latest;  // null until the first record
};

// ----------------------------------------------------------------------------
// Lifetime

CpuBackend::CpuBackend() = default;

Ops& CpuBackend::ops() {
    std::call_once(ops_once_, [this] { ops_ = make_cpu_ops(*this); });
    return *ops_;
}

CpuBackend::~CpuBackend() {
    ops_.reset();  // its scratch is this backend's memory: freed while the streams still run
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
        notify_all_locked();
    }
    for (auto& s : streams_) {
        if (s->thread.joinable()) s->thread.join();
    }
    for (auto& s : streams_) {
        if (!s->queue.empty()) LOG_DEBUG("cpu backend: discarded " << s->queue.size() << " items of " << s->name());
        if (s->failure && !s->reported) {
            LOG_WARN("cpu backend destroyed with an unreported failure: work item '"
                     << s->failure->label << "' on stream '" << s->failure->stream << "': " << s->failure->message);
        }
    }
    streams_.clear();  // destroys the discarded items' captures with no lock held
    release_all_allocations();
}

Stream& CpuBackend::create_stream(const char* name) {
    check_not_worker("create_stream");
    ECF8_CHECK(name != nullptr && *name != '\0', "create_stream needs a name");
    auto owned = std::make_unique<CpuStream>(this, name);
    CpuStream& s = *owned;
    std::lock_guard<std::mutex> lock(mutex_);
    streams_.push_back(std::move(owned));
    s.thread = std::thread([this, &s] { worker_loop(s); });
    return s;
}

std::unique_ptr<Event> CpuBackend::create_event() {
    check_not_worker("create_event");
    return std::make_unique<CpuEvent>(this);
}

// ----------------------------------------------------------------------------
// Checks

CpuBackend::CpuStream& CpuBackend::own(Stream& stream) const {
    ECF8_CHECK(&stream.backend() == this, "stream '" << stream.name() << "' belongs to another backend");
    return static_cast<CpuStream&>(stream);
}

CpuBackend::CpuEvent& CpuBackend::own(Event& event) const {
    ECF8_CHECK(&event.backend() == this, "event belongs to another backend");
    return static_cast<CpuEvent&>(event);
}

const CpuBackend::CpuEvent& CpuBackend::own(const Event& event) const {
    ECF8_CHECK(&event.backend() == this, "event belongs to another backend");
    return static_cast<const CpuEvent&>(event);
}

// On CUDA a work item's fn runs when it is launched, here when it is dequeued: a backend call made from
// inside one would happen at a different point of the order on each, so it is refused on both.
void CpuBackend::check_not_worker(const char* call) const {
    ECF8_CHECK(tl_worker_of != this, "Backend::" << call << " called from inside a work item");
}

// ----------------------------------------------------------------------------
// Enqueueing

void CpuBackend::enqueue_locked(CpuStream& s, Item item) {
    s.queue.push_back(std::move(item));
    ++s.enqueued;
    s.cv.notify_one();
}

void CpuBackend::do_launch(Stream& stream, std::string_view label, const TraceArgs& args, std::function<void()> fn,
                           bool /*host: both kinds run on the worker here*/) {
    check_not_worker("launch");
    CpuStream& s = own(stream);
    ECF8_CHECK(fn, "launch of '" << label << "' on stream '" << s.name() << "' without a function");
    Item item;
    item.kind = ItemKind::Work;
    item.label = label;
    item.args = args;
    item.fn = std::move(fn);
    std::lock_guard<std::mutex> lock(mutex_);
    enqueue_locked(s, std::move(item));
}

void CpuBackend::memcpy_async(void* dst, const void* src, size_t bytes, Stream& stream) {
    check_not_worker("memcpy_async");
    CpuStream& s = own(stream);
    if (bytes == 0) return;
    ECF8_CHECK(dst != nullptr && src != nullptr,
               "memcpy_async of " << bytes << " bytes on stream '" << s.name() << "' with a null pointer");
    Item item;
    item.kind = ItemKind::Copy;
    item.label = "memcpy";
    item.args.add("bytes", static_cast<int64_t>(bytes));
    item.dst = dst;
    item.src = src;
    item.bytes = bytes;
    std::lock_guard<std::mutex> lock(mutex_);
    enqueue_locked(s, std::move(item));
}

void CpuBackend::record(Event& event, Stream& stream) {
    check_not_worker("record");
    CpuStream& s = own(stream);
    CpuEvent& e = own(event);
    std::lock_guard<std::mutex> lock(mutex_);
    auto r = std::make_shared<Record>();
    r->generation = ++e.generation;
    e.latest = r;
    Item item;
    item.kind = ItemKind::Record;
    item.record = std::move(r);
    enqueue_locked(s, std::move(item));
}

void CpuBackend::wait(Stream& stream, const Event& event) {
    check_not_worker("wait");
    CpuStream& s = own(stream);
    const CpuEvent& e = own(event);
    std::lock_guard<std::mutex> lock(mutex_);
    // A never-recorded event is complete, and a completed clean record orders nothing more.
    if (!e.latest || (e.latest->done && !e.latest->failure)) return;
    Item item;
    item.kind = ItemKind::Wait;
    item.record = e.latest;
    enqueue_locked(s, std::move(item));
}

// ----------------------------------------------------------------------------
// Host waits

bool CpuBackend::query(const Event& event) {
    check_not_worker("query");
    const CpuEvent& e = own(event);
    std::lock_guard<std::mutex> lock(mutex_);
    return !e.latest || e.latest->done;
}

void CpuBackend::do_synchronize(Stream& stream) {
    check_not_worker("synchronize");
    CpuStream& s = own(stream);
    std::unique_lock<std::mutex> lock(mutex_);
    const uint64_t target = s.enqueued;
    host_cv_.wait(lock, [&] { return s.finished >= target; });
    if (!s.failure) return;
    s.reported = true;
    FailurePtr f = s.failure;
    lock.unlock();
    throw_failure(*f, s.name());
}

void CpuBackend::do_synchronize_event(const Event& event) {
    check_not_worker("synchronize_event");
    const CpuEvent& e = own(event);
    std::unique_lock<std::mutex> lock(mutex_);
    RecordPtr r = e.latest;
    if (!r) return;
    host_cv_.wait(lock, [&] { return r->done; });
    if (!r->failure) return;
    lock.unlock();
    throw_failure(*r->failure, "event record " + std::to_string(r->generation));
}

void CpuBackend::do_synchronize_all() {
    check_not_worker("synchronize_all");
    std::vector<Stream*> streams;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& s : streams_) streams.push_back(s.get());
    }
    // Wait for every stream before throwing, so that nothing is still running when the caller unwinds.
    std::exception_ptr first;
    for (Stream* s : streams) {
        try {
            do_synchronize(*s);
        } catch (...) {
            if (!first) first = std::current_exception();
        }
    }
    if (first) std::rethrow_exception(first);
}

size_t CpuBackend::pending_items(Stream& stream) {
    CpuStream& s = own(stream);
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<size_t>(s.enqueued - s.finished);
}

bool CpuBackend::all_idle_locked() const {
    for (const auto& s : streams_) {
        if (s->finished != s->enqueued) return false;
    }
    return true;
}

void CpuBackend::notify_all_locked() {
    for (auto& s : streams_) s->cv.notify_all();
    host_cv_.notify_all();
}

// ----------------------------------------------------------------------------
// Workers

void CpuBackend::worker_loop(CpuStream& s) {
    tl_worker_of = this;
    // Linux limits thread names to 15 characters; the name helps in gdb and perf.
    std::string thread_name = ("ecf8-" + s.name()).substr(0, 15);
    pthread_setname_np(pthread_self(), thread_name.c_str());

    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        s.cv.wait(lock, [&] {
            if (stopping_) return true;
            if (s.queue.empty()) return false;
            const Item& front = s.queue.front();
            return front.kind != ItemKind::Wait || front.record->done;
        });
        if (stopping_) return;  // what is still queued is discarded
        Item item = std::move(s.queue.front());
        s.queue.pop_front();
        run_item(s, item, lock);
        ++s.finished;
        host_cv_.notify_all();
    }
}

// Called and returns with the lock held; user code runs without it.
void CpuBackend::run_item(CpuStream& s, Item& item, std::unique_lock<std::mutex>& lock) {
    switch (item.kind) {
        case ItemKind::Wait:
            if (item.record->failure && !s.failure) s.failure = item.record->failure;
            return;
        case ItemKind::Record:
            item.record->failure = s.failure;
            item.record->done = true;
            notify_all_locked();
            return;
        case ItemKind::Work:
        case ItemKind::Copy: {
            const bool poisoned = s.failure != nullptr;
            lock.unlock();
            if (!poisoned) execute(s, item);  // a poisoned stream skips its work: its inputs are not valid
            item.fn = nullptr;                // the captures die before the item counts as finished
            lock.lock();
            if (item.failure && !s.failure) s.failure = item.failure;
            return;
        }
    }
}

void CpuBackend::execute(CpuStream& s, Item& item) {
    Tracer* tracer = this->tracer();
    const bool tracing = tracer != nullptr && tracer->enabled();
    const int64_t start = tracing ? tracer->now_ns() : 0;
    std::string message;
    bool failed = true;
    try {
        if (item.kind == ItemKind::Copy) {
            std::memcpy(item.dst, item.src, item.bytes);
        } else {
            item.fn();
        }
        failed = false;
    } catch (const std::exception& e) {
        message = e.what();
    } catch (...) {
        message = "unknown exception";
    }
    if (failed) item.failure = std::make_shared<Failure>(Failure{item.label, s.name(), message});
    if (tracing) {
        try {
            tracer->record(tracer->lane(s.name()), item.label, start, tracer->now_ns(), item.args);
        } catch (const std::exception& e) {
            LOG_WARN("cpu backend: trace span '" << item.label << "' dropped: " << e.what());
        }
    }
}

// ----------------------------------------------------------------------------
// Memory

void* CpuBackend::do_allocate(size_t bytes, MemoryKind kind) {
    const size_t align = alignment_of(kind);
    if (bytes > SIZE_MAX - align) return nullptr;
    // aligned_alloc wants a size that is a multiple of the alignment.
    return std::aligned_alloc(align, (bytes + align - 1) / align * align);
}

void CpuBackend::do_free(void* ptr, size_t /*bytes*/, MemoryKind /*kind*/) noexcept {
    // As cudaFree does, wait until no stream has work pending, so memory is not freed under queued work. A
    // worker freeing a buffer its item captured cannot wait for itself, and the destructor has stopped them.
    if (tl_worker_of != this) {
        std::unique_lock<std::mutex> lock(mutex_);
        host_cv_.wait(lock, [&] { return stopping_ || all_idle_locked(); });
    }
    std::free(ptr);
}

}  // namespace ecf8
