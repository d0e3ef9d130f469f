// Tracer: a per-rank timeline of what ran on which lane (copy, decode, compute, comm, host), written as
// Chrome/Perfetto trace JSON ("traceEvents": "X" complete events, pid = rank, tid = lane, lanes named by
// "M" thread_name metadata). See docs/TRACING.md for how to produce and read one.
//
// Recording is thread-safe (every stream's worker records concurrently) and costs one branch when the tracer
// is disabled. Timestamps come from the steady clock, in nanoseconds since the tracer's origin; the JSON
// carries microseconds, as Chrome expects. Gathering ranks is the runtime's job: each rank turns its tracer
// into a string (to_json), rank 0 merges the strings (merge_trace_json) and writes one file.
//
// The recorded spans can also be queried (data(), TraceData::find), so tests can assert on overlap, e.g.
// "decode of layer L+1 started before compute of layer L ended".
#pragma once

#include <array>
#include <atomic>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ecf8 {

// ----------------------------------------------------------------------------
// Span arguments: up to four integer key/value pairs, stored inline so that building them allocates nothing.
// Keys must have static storage (string literals): a CPU stream records its span after launch() returned.

struct TraceArg {
    const char* key = nullptr;
    int64_t value = 0;

    TraceArg() = default;
    template <std::integral T>
    TraceArg(const char* k, T v) : key(k), value(static_cast<int64_t>(v)) {}
};

class TraceArgs {
public:
    static constexpr int kMax = 4;

    TraceArgs() = default;
    TraceArgs(std::initializer_list<TraceArg> args);  // more than kMax throws ecf8::Error

    void add(const char* key, int64_t value);  // more than kMax throws ecf8::Error
    int size() const { return count_; }
    const TraceArg& operator[](int i) const { return items_[static_cast<size_t>(i)]; }

private:
    std::array<TraceArg, kMax> items_{};
    int count_ = 0;
};

// ----------------------------------------------------------------------------
// Recorded data: what a tracer holds, what from_json reads back, what a merge of ranks holds.

struct TraceSpan {
    int rank = 0;
    int lane = 0;  // the tid in the JSON
    std::string name;
    int64_t start_ns = 0;  // since the origin
    int64_t end_ns = 0;
    std::vector<std::pair<std::string, int64_t>> args;

    std::optional<int64_t> arg(std::string_view key) const;
    int64_t duration_ns() const { return end_ns - start_ns; }
};

struct TraceLane {
    int rank = 0;
    int id = 0;
    std::string name;
};

struct TraceData {
    std::vector<TraceLane> lanes;  // every named lane of every rank
    std::vector<TraceSpan> spans;  // sorted by start, then rank, then lane

    // The name of a lane, or "" when it has none.
    std::string lane_name(int rank, int lane) const;
    // Spans on the lane called `lane` (any rank when rank < 0) whose name starts with `name_prefix`, in
    // start order.
    std::vector<const TraceSpan*> find(std::string_view lane, std::string_view name_prefix = "", int rank = -1) const;
};

// Chrome trace JSON of `data`: {"traceEvents": [...], "displayTimeUnit": "ms"}.
std::string trace_to_json(const TraceData& data);
// Reads the JSON that trace_to_json writes (or any Chrome trace, keeping its "X" events with integer args and
// its thread_name metadata). Throws ecf8::Error on malformed input.
TraceData trace_from_json(const std::string& json);
// Concatenates several ranks' traces; a lane id named differently twice on one rank is an error.
TraceData merge_traces(const std::vector<TraceData>& parts);
// The same on JSON strings (what rank 0 does with the strings it gathered).
std::string merge_trace_json(const std::vector<std::string>& jsons);
// The same on files; writes `out_path` atomically.
void merge_trace_files(const std::vector<std::string>& paths, const std::string& out_path);

// ----------------------------------------------------------------------------
// The recorder.

class Tracer {
public:
    // Standard lanes, registered in every tracer with these ids so that every rank's trace lines up.
    static constexpr int kHost = 0;
    static constexpr int kCopy = 1;
    static constexpr int kDecode = 2;
    static constexpr int kCompute = 3;
    static constexpr int kComm = 4;

    Tracer(int rank, bool enabled);
    Tracer(const Tracer&) = delete;
    Tracer& operator=(const Tracer&) = delete;

    int rank() const { return rank_; }
    bool enabled() const { return enabled_; }

    // The id of the lane called `name`, registering a new one (ids from 5 up) the first time.
    int lane(std::string_view name);

    // Nanoseconds since the origin, from the steady clock.
    int64_t now_ns() const;
    // Moves the origin to now. The runtime calls it right after a barrier so that all ranks share a t0.
    void reset_origin();

    // Records one complete span. A no-op when disabled.
    void record(int lane, std::string_view name, int64_t start_ns, int64_t end_ns, const TraceArgs& args = {});
    // Drops every recorded span (lanes stay).
    void clear();

    // Snapshot of this rank's lanes and spans.
    TraceData data() const;
    std::string to_json() const { return trace_to_json(data()); }
    // Writes this rank's trace to `path` atomically.
    void write(const std::string& path) const;

private:
    const int rank_;
    const bool enabled_;
    std::atomic<int64_t> origin_ns_;  // steady-clock time of t0
    mutable std::mutex mutex_;
    std::vector<std::string> lanes_;  // index = lane id
    std::vector<TraceSpan> spans_;
};

// RAII span: records [construction, destruction) on `lane`. tracer may be null or disabled, and then the
// scope does nothing beyond a branch (the name is not even copied).
class TraceScope {
public:
    TraceScope(Tracer* tracer, int lane, std::string_view name, const TraceArgs& args = {});
    ~TraceScope();
    TraceScope(const TraceScope&) = delete;
    TraceScope& operator=(const TraceScope&) = delete;

    // Adds an argument known only once the work ran (an expert count after routing, say).
    void add_arg(const char* key, int64_t value);

private:
    Tracer* tracer_ = nullptr;  // null when not recording
    int lane_ = 0;
    std::string name_;
    TraceArgs args_;
    int64_t start_ns_ = 0;
};

}  // namespace ecf8
