// Backend: the parts every backend shares (memory accounting, Buffer, names). See backend.h.
#include "runtime/backend.h"

#include <algorithm>
#include <sstream>

#include "common/error.h"
#include "common/log.h"
#include "runtime/trace.h"

namespace ecf8 {

const char* backend_kind_name(BackendKind kind) {
    switch (kind) {
        case BackendKind::Cpu:
            return "cpu";
        case BackendKind::Cuda:
            return "cuda";
    }
    return "?";
}

const char* memory_kind_name(MemoryKind kind) {
    static constexpr const char* kNames[kNumMemoryKinds] = {"device", "pinned_host", "host"};
    return kNames[static_cast<int>(kind)];
}

// ----------------------------------------------------------------------------
// Buffer

Buffer::Buffer(Backend& backend, size_t bytes, MemoryKind kind, const char* tag)
    : backend_(&backend), data_(backend.allocate(bytes, kind, tag)), bytes_(bytes), kind_(kind) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
    if (this != &other) {
        reset();
        backend_ = other.backend_;
        data_ = other.data_;
        bytes_ = other.bytes_;
        kind_ = other.kind_;
        other.backend_ = nullptr;
        other.data_ = nullptr;
        other.bytes_ = 0;
    }
    return *this;
}

void Buffer::reset() noexcept {
    if (data_ != nullptr) {
        try {
            backend_->free(data_);
        } catch (const std::exception& e) {
            // Only a backend bug gets here (a Buffer's pointer is always the backend's); keep going.
            LOG_ERROR("Buffer: " << e.what());
        }
    }
    data_ = nullptr;
    bytes_ = 0;
}

// ----------------------------------------------------------------------------
// Accounting

void* Backend::allocate(size_t bytes, MemoryKind kind, const char* tag) {
    if (bytes == 0) return nullptr;
    const char* what = tag != nullptr ? tag : "untagged";
    void* p = do_allocate(bytes, kind);
    ECF8_CHECK(p != nullptr, name() << " backend: cannot allocate " << bytes << " bytes of " << memory_kind_name(kind)
                                    << " memory for '" << what << "'");
    std::lock_guard<std::mutex> lock(alloc_mutex_);
    allocations_.emplace(p, Allocation{bytes, kind, what});
    MemoryStats& s = stats_[static_cast<size_t>(kind)];
    s.live_bytes += bytes;
    s.peak_bytes = std::max(s.peak_bytes, s.live_bytes);
    ++s.live_allocations;
    ++s.total_allocations;
    return p;
}

void Backend::free(void* ptr) {
    if (ptr == nullptr) return;
    Allocation a;
    {
        // Taken out of the table first, so two concurrent frees of one pointer cannot both succeed.
        std::lock_guard<std::mutex> lock(alloc_mutex_);
        auto node = allocations_.extract(ptr);
        ECF8_CHECK(!node.empty(), name() << " backend: free of a pointer it did not allocate (" << ptr << ")");
        a = std::move(node.mapped());
    }
    do_free(ptr, a.bytes, a.kind);
    std::lock_guard<std::mutex> lock(alloc_mutex_);
    MemoryStats& s = stats_[static_cast<size_t>(a.kind)];
    s.live_bytes -= a.bytes;
    --s.live_allocations;
}

MemoryStats Backend::memory_stats(MemoryKind kind) const {
    std::lock_guard<std::mutex> lock(alloc_mutex_);
    return stats_[static_cast<size_t>(kind)];
}

std::map<std::string, size_t> Backend::live_bytes_by_tag(MemoryKind kind) const {
    std::map<std::string, size_t> out;
    std::lock_guard<std::mutex> lock(alloc_mutex_);
    for (const auto& [ptr, a] : allocations_) {
        if (a.kind == kind) out[a.tag] += a.bytes;
    }
    return out;
}

size_t Backend::release_all_allocations() noexcept {
    std::unordered_map<void*, Allocation> leaked;
    {
        std::lock_guard<std::mutex> lock(alloc_mutex_);
        leaked.swap(allocations_);
        for (MemoryStats& s : stats_) {
            s.live_bytes = 0;
            s.live_allocations = 0;
        }
    }
    if (leaked.empty()) return 0;
    std::map<std::string, size_t> by_tag;
    for (const auto& [ptr, a] : leaked) {
        by_tag[a.tag] += a.bytes;
        do_free(ptr, a.bytes, a.kind);
    }
    std::ostringstream tags;
    for (const auto& [tag, bytes] : by_tag) tags << " " << tag << "=" << bytes;
    LOG_WARN(name() << " backend destroyed with " << leaked.size() << " live allocations, freed now:" << tags.str());
    return leaked.size();
}

// Host waits: counted, and drawn on the host lane while they last.
void Backend::synchronize(Stream& stream) {
    host_waits_.fetch_add(1, std::memory_order_relaxed);
    TraceScope span(tracer(), Tracer::kHost, "host wait " + stream.name());
    do_synchronize(stream);
}

void Backend::synchronize_event(const Event& event) {
    host_waits_.fetch_add(1, std::memory_order_relaxed);
    TraceScope span(tracer(), Tracer::kHost, "host wait event");
    do_synchronize_event(event);
}

void Backend::synchronize_all() {
    host_waits_.fetch_add(1, std::memory_order_relaxed);
    TraceScope span(tracer(), Tracer::kHost, "host wait all");
    do_synchronize_all();
}

}  // namespace ecf8
