// CudaBackend: streams, events, memory and host functions on the CUDA runtime API.
#include "runtime/cuda_backend.h"

#include <cuda_runtime.h>

#include <cstdlib>

#include "common/error.h"
#include "runtime/cuda_ops.h"
#include "runtime/ops.h"

namespace ecf8 {

class CudaBackend::CudaStream final : public Stream {
public:
    CudaStream(Backend* backend, std::string name) : Stream(backend, std::move(name)) {
        CUDA_CHECK(cudaStreamCreateWithFlags(&handle, cudaStreamNonBlocking));
    }
    ~CudaStream() override { cudaStreamDestroy(handle); }
    void* native_handle() const override { return handle; }
    cudaStream_t handle = nullptr;
};

class CudaBackend::CudaEvent final : public Event {
public:
    explicit CudaEvent(Backend* backend) : Event(backend) {
        // Ordering only: timing-free events are cheaper to record and to wait on.
        CUDA_CHECK(cudaEventCreateWithFlags(&handle, cudaEventDisableTiming));
    }
    ~CudaEvent() override { cudaEventDestroy(handle); }
    void* native_handle() const override { return handle; }
    cudaEvent_t handle = nullptr;
};

// What cudaLaunchHostFunc runs: the caller's function and where to report its failure.
struct CudaBackend::HostCall {
    CudaBackend* backend;
    std::string label, stream;
    std::function<void()> fn;
};

struct CudaBackend::PendingSpan {
    int lane;
    std::string name;
    TraceArgs args;
    cudaEvent_t start, end;
};

namespace {

cudaStream_t stream_of(Stream& s) { return static_cast<cudaStream_t>(s.native_handle()); }
cudaEvent_t event_of(const Event& e) { return static_cast<cudaEvent_t>(e.native_handle()); }

}  // namespace

int CudaBackend::device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear the error so later calls start clean
        return 0;
    }
    return n;
}

CudaBackend::CudaBackend(int device) : device_(device) {
    const int n = device_count();
    ECF8_CHECK(device >= 0 && device < n, "CUDA device " << device << " does not exist (" << n << " visible)");
    select();
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    name_ = "cuda:" + std::to_string(device) + " (" + prop.name + ")";
}

CudaBackend::~CudaBackend() {
    select();
    cudaDeviceSynchronize();
    try {
        flush_trace();
    } catch (...) {  // the tracer must not stop teardown
    }
    for (PendingSpan& p : pending_) {
        cudaEventDestroy(p.start);
        cudaEventDestroy(p.end);
    }
    if (anchor_ != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(anchor_));
    ops_.reset();  // its scratch buffers are this backend's memory
    release_all_allocations();
    streams_.clear();
}

void CudaBackend::select() const { CUDA_CHECK(cudaSetDevice(device_)); }

Ops& CudaBackend::ops() {
    std::call_once(ops_once_, [this] {
        select();
        ops_ = make_cuda_ops(*this);
    });
    return *ops_;
}

void CudaBackend::memory_info(size_t* free_bytes, size_t* total_bytes) const {
    select();
    CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
}

Stream& CudaBackend::create_stream(const char* name) {
    ECF8_CHECK(name != nullptr && *name != '\0', "create_stream needs a name");
    select();
    std::lock_guard<std::mutex> lock(mutex_);
    streams_.push_back(std::make_unique<CudaStream>(this, name));
    return *streams_.back();
}

std::unique_ptr<Event> CudaBackend::create_event() {
    select();
    return std::make_unique<CudaEvent>(this);
}

void CudaBackend::memcpy_async(void* dst, const void* src, size_t bytes, Stream& stream) {
    if (bytes == 0) return;
    do_launch(
        stream, "memcpy", TraceArgs{{"bytes", static_cast<int64_t>(bytes)}},
        [=, &stream] { CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_of(stream))); }, false);
}

void CudaBackend::record(Event& event, Stream& stream) {
    CUDA_CHECK(cudaEventRecord(event_of(event), stream_of(stream)));
}

void CudaBackend::wait(Stream& stream, const Event& event) {
    CUDA_CHECK(cudaStreamWaitEvent(stream_of(stream), event_of(event), 0));
}

bool CudaBackend::query(const Event& event) {
    const cudaError_t status = cudaEventQuery(event_of(event));
    if (status == cudaErrorNotReady) {
        cudaGetLastError();  // not-ready is not an error; do not leave it behind
        return false;
    }
    return true;  // complete, or failed (the next synchronize reports it)
}

void CudaBackend::do_synchronize(Stream& stream) {
    CUDA_CHECK(cudaStreamSynchronize(stream_of(stream)));
    flush_trace();
    throw_host_error();
}

void CudaBackend::do_synchronize_event(const Event& event) {
    CUDA_CHECK(cudaEventSynchronize(event_of(event)));
    flush_trace();
    throw_host_error();
}

void CudaBackend::do_synchronize_all() {
    select();
    CUDA_CHECK(cudaDeviceSynchronize());
    flush_trace();
    throw_host_error();
}

void CudaBackend::throw_host_error() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!host_error_.empty()) throw Error(host_error_);
}

void CudaBackend::do_launch(Stream& stream, std::string_view label, const TraceArgs& args, std::function<void()> fn,
                            bool host) {
    Tracer* tracer = this->tracer();
    const bool traced = tracer != nullptr && tracer->enabled();
    cudaEvent_t start = nullptr, end = nullptr;
    if (traced) {
        if (anchor_ == nullptr) {  // once: pin a GPU timestamp to the tracer's clock
            cudaEvent_t anchor = nullptr;
            CUDA_CHECK(cudaEventCreate(&anchor));
            CUDA_CHECK(cudaEventRecord(anchor, stream_of(stream)));
            CUDA_CHECK(cudaEventSynchronize(anchor));
            anchor_ns_ = tracer->now_ns();
            anchor_ = anchor;
        }
        CUDA_CHECK(cudaEventCreate(&start));
        CUDA_CHECK(cudaEventCreate(&end));
        CUDA_CHECK(cudaEventRecord(start, stream_of(stream)));
    }
    if (host) {
        auto* call = new HostCall{this, std::string(label), stream.name(), std::move(fn)};
        auto trampoline = [](void* p) {
            std::unique_ptr<HostCall> c(static_cast<HostCall*>(p));
            try {
                c->fn();
            } catch (const std::exception& e) {
                std::lock_guard<std::mutex> lock(c->backend->mutex_);
                if (c->backend->host_error_.empty())
                    c->backend->host_error_ =
                        "work item '" + c->label + "' on stream '" + c->stream + "' failed: " + e.what();
            }
        };
        const cudaError_t status = cudaLaunchHostFunc(stream_of(stream), trampoline, call);
        if (status != cudaSuccess) delete call;
        CUDA_CHECK(status);
    } else {
        fn();
    }
    if (traced) {
        CUDA_CHECK(cudaEventRecord(end, stream_of(stream)));
        std::lock_guard<std::mutex> lock(mutex_);
        pending_.push_back({tracer->lane(stream.name()), std::string(label), args, start, end});
    }
}

void CudaBackend::flush_trace() {
    Tracer* tracer = this->tracer();
    std::lock_guard<std::mutex> lock(mutex_);
    size_t kept = 0;
    for (PendingSpan& p : pending_) {
        if (cudaEventQuery(p.end) != cudaSuccess) {
            cudaGetLastError();
            if (&pending_[kept] != &p) pending_[kept] = std::move(p);  // never move a span onto itself
            ++kept;
            continue;
        }
        float start_ms = 0, end_ms = 0;
        const auto anchor = static_cast<cudaEvent_t>(anchor_);
        if (tracer != nullptr && cudaEventElapsedTime(&start_ms, anchor, p.start) == cudaSuccess &&
            cudaEventElapsedTime(&end_ms, anchor, p.end) == cudaSuccess) {
            tracer->record(p.lane, p.name, anchor_ns_ + static_cast<int64_t>(start_ms * 1e6),
                           anchor_ns_ + static_cast<int64_t>(end_ms * 1e6), p.args);
        }
        cudaEventDestroy(p.start);
        cudaEventDestroy(p.end);
    }
    pending_.resize(kept);
}

void* CudaBackend::do_allocate(size_t bytes, MemoryKind kind) {
    select();
    void* p = nullptr;
    switch (kind) {
        case MemoryKind::Device:
            if (cudaMalloc(&p, bytes) != cudaSuccess) p = nullptr;
            break;
        case MemoryKind::PinnedHost:
            if (cudaHostAlloc(&p, bytes, cudaHostAllocPortable) != cudaSuccess) p = nullptr;
            break;
        case MemoryKind::Host:
            p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
            break;
    }
    if (p == nullptr) cudaGetLastError();  // out of memory is reported by Backend::allocate
    return p;
}

void CudaBackend::do_free(void* ptr, size_t, MemoryKind kind) noexcept {
    cudaDeviceSynchronize();  // as the contract asks: never free under pending work
    switch (kind) {
        case MemoryKind::Device:
            cudaFree(ptr);
            break;
        case MemoryKind::PinnedHost:
            cudaFreeHost(ptr);
            break;
        case MemoryKind::Host:
            std::free(ptr);
            break;
    }
}

}  // namespace ecf8
