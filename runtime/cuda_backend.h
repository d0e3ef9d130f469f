// CudaBackend: the Backend contract (runtime/backend.h) on one CUDA device. A stream is a non-blocking
// cudaStream_t, an event a cudaEvent_t, Device memory cudaMalloc, PinnedHost memory cudaHostAlloc.
//
// How the contract maps:
//   - launch(stream, label, fn) runs fn at once on the calling thread; fn enqueues kernels, cuBLAS or NCCL
//     calls on stream.native_handle(). An exception from fn leaves launch() directly.
//   - launch_host(stream, label, fn) goes through cudaLaunchHostFunc: fn runs on a CUDA thread in stream
//     order. An exception there cannot poison a CUDA stream, so it is kept (the first one) and rethrown,
//     naming the label and stream, by the next synchronize*(); it stays sticky like a CUDA error.
//   - Tracing: with a tracer attached, each work item is bracketed by two timing events; spans are read
//     back (cudaEventElapsedTime against an anchor event) at each synchronize*() and placed on the host
//     clock, so the trace shows when work ran on the GPU, not when it was enqueued.
// Compiled only when the CUDA toolkit is found (ECF8_HAVE_CUDA); device_count() says whether a device is
// usable, and never throws.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace ecf8 {

class CudaBackend final : public Backend {
public:
    // Selects `device` (cudaSetDevice) for this thread and for every call the backend makes.
    explicit CudaBackend(int device);
    ~CudaBackend() override;

    static int device_count();  // 0 when there is no driver or no device
    // Free and total bytes of the device (cudaMemGetInfo).
    void memory_info(size_t* free_bytes, size_t* total_bytes) const;
    int device() const { return device_; }

    BackendKind kind() const override { return BackendKind::Cuda; }
    std::string name() const override { return name_; }

    Stream& create_stream(const char* name) override;
    std::unique_ptr<Event> create_event() override;
    void memcpy_async(void* dst, const void* src, size_t bytes, Stream& stream) override;
    void record(Event& event, Stream& stream) override;
    void wait(Stream& stream, const Event& event) override;
    bool query(const Event& event) override;
    Ops& ops() override;

protected:
    void do_synchronize(Stream& stream) override;
    void do_synchronize_event(const Event& event) override;
    void do_synchronize_all() override;
    void do_launch(Stream& stream, std::string_view label, const TraceArgs& args, std::function<void()> fn,
                   bool host) override;
    void* do_allocate(size_t bytes, MemoryKind kind) override;
    void do_free(void* ptr, size_t bytes, MemoryKind kind) noexcept override;

private:
    class CudaStream;
    class CudaEvent;
    struct HostCall;
    struct PendingSpan;

    void throw_host_error();  // rethrows the first launch_host failure, if any
    void flush_trace();       // moves completed GPU spans into the tracer
    void select() const;      // cudaSetDevice(device_)

    int device_;
    std::string name_;
    std::once_flag ops_once_;
    std::unique_ptr<Ops> ops_;  // made by ops() on first use; destroyed before the memory is released
    std::vector<std::unique_ptr<CudaStream>> streams_;
    std::mutex mutex_;
    std::string host_error_;  // first launch_host failure, with label and stream
    std::vector<PendingSpan> pending_;
    void* anchor_ = nullptr;  // cudaEvent_t recorded when tracing starts
    int64_t anchor_ns_ = -1;  // the tracer's clock at the anchor
};

}  // namespace ecf8
