// Tracer and the Chrome trace JSON writer/reader/merger (see trace.h).
#include "runtime/trace.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "common/error.h"
#include "common/file_util.h"
#include "common/log.h"

namespace ecf8 {

namespace {

// Ordered, so that span arguments and event fields keep the order they were given in.
using json = nlohmann::ordered_json;

constexpr const char* kStandardLanes[] = {"host", "copy", "decode", "compute", "comm"};

int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// Chrome wants microseconds; a double keeps the nanoseconds exactly for any run shorter than about 100 days.
double to_us(int64_t ns) { return static_cast<double>(ns) / 1000.0; }
int64_t to_ns(double us) { return std::llround(us * 1000.0); }

void sort_spans(std::vector<TraceSpan>& spans) {
    std::stable_sort(spans.begin(), spans.end(), [](const TraceSpan& a, const TraceSpan& b) {
        return std::tie(a.start_ns, a.rank, a.lane) < std::tie(b.start_ns, b.rank, b.lane);
    });
}

json metadata(const char* what, int pid, int tid, json args) {
    json m = {{"name", what}, {"ph", "M"}, {"pid", pid}, {"args", std::move(args)}};
    if (tid >= 0) m["tid"] = tid;
    return m;
}

// The integer a JSON field holds; throws naming the field otherwise.
int64_t get_int(const json& obj, const char* key) {
    auto it = obj.find(key);
    ECF8_CHECK(it != obj.end() && it->is_number_integer(), "trace JSON: event field '" << key
                                                                                       << "' is missing or not "
                                                                                          "an integer: "
                                                                                       << obj.dump());
    return it->get<int64_t>();
}

double get_number(const json& obj, const char* key) {
    auto it = obj.find(key);
    ECF8_CHECK(it != obj.end() && it->is_number(),
               "trace JSON: event field '" << key << "' is missing or not a number: " << obj.dump());
    return it->get<double>();
}

std::string get_string(const json& obj, const char* key) {
    auto it = obj.find(key);
    ECF8_CHECK(it != obj.end() && it->is_string(),
               "trace JSON: event field '" << key << "' is missing or not a string: " << obj.dump());
    return it->get<std::string>();
}

void add_lane(std::vector<TraceLane>& lanes, const TraceLane& lane) {
    for (const TraceLane& l : lanes) {
        if (l.rank != lane.rank || l.id != lane.id) continue;
        ECF8_CHECK(l.name == lane.name, "trace: lane " << lane.id << " of rank " << lane.rank << " is named both '"
                                                       << l.name << "' and '" << lane.name << "'");
        return;
    }
    lanes.push_back(lane);
}

}  // namespace

// ----------------------------------------------------------------------------
// TraceArgs, TraceSpan, TraceData

TraceArgs::TraceArgs(std::initializer_list<TraceArg> args) {
    for (const TraceArg& a : args) add(a.key, a.value);
}

void TraceArgs::add(const char* key, int64_t value) {
    ECF8_CHECK(key != nullptr, "trace span argument without a key");
    ECF8_CHECK(count_ < kMax, "trace span has more than " << kMax << " arguments (adding '" << key << "')");
    items_[static_cast<size_t>(count_++)] = TraceArg(key, value);
}

std::optional<int64_t> TraceSpan::arg(std::string_view key) const {
    for (const auto& [k, v] : args) {
        if (k == key) return v;
    }
    return std::nullopt;
}

std::string TraceData::lane_name(int rank, int lane) const {
    for (const TraceLane& l : lanes) {
        if (l.rank == rank && l.id == lane) return l.name;
    }
    return "";
}

std::vector<const TraceSpan*> TraceData::find(std::string_view lane, std::string_view name_prefix, int rank) const {
    std::vector<const TraceSpan*> out;
    for (const TraceSpan& s : spans) {
        if (rank >= 0 && s.rank != rank) continue;
        if (s.name.compare(0, name_prefix.size(), name_prefix) != 0) continue;
        if (lane_name(s.rank, s.lane) == lane) out.push_back(&s);
    }
    return out;
}

// ----------------------------------------------------------------------------
// JSON

std::string trace_to_json(const TraceData& data) {
    json events = json::array();
    std::map<int, bool> ranks;
    for (const TraceLane& l : data.lanes) ranks[l.rank] = true;
    for (const TraceSpan& s : data.spans) ranks[s.rank] = true;
    for (const auto& [rank, unused] : ranks) {
        events.push_back(metadata("process_name", rank, -1, {{"name", "rank " + std::to_string(rank)}}));
        events.push_back(metadata("process_sort_index", rank, -1, {{"sort_index", rank}}));
    }
    for (const TraceLane& l : data.lanes) {
        events.push_back(metadata("thread_name", l.rank, l.id, {{"name", l.name}}));
        events.push_back(metadata("thread_sort_index", l.rank, l.id, {{"sort_index", l.id}}));
    }
    for (const TraceSpan& s : data.spans) {
        json args = json::object();
        for (const auto& [k, v] : s.args) args[k] = v;
        std::string cat = data.lane_name(s.rank, s.lane);
        events.push_back({{"name", s.name},
                          {"cat", cat.empty() ? "ecf8" : cat},
                          {"ph", "X"},
                          {"ts", to_us(s.start_ns)},
                          {"dur", to_us(s.end_ns - s.start_ns)},
                          {"pid", s.rank},
                          {"tid", s.lane},
                          {"args", std::move(args)}});
    }
    json root = {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
    return root.dump();
}

TraceData trace_from_json(const std::string& text) {
    json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
    ECF8_CHECK(!root.is_discarded(), "trace JSON does not parse");
    // Chrome accepts both {"traceEvents": [...]} and a bare array of events.
    const json* events = &root;
    if (root.is_object()) {
        auto it = root.find("traceEvents");
        ECF8_CHECK(it != root.end(), "trace JSON has no 'traceEvents'");
        events = &*it;
    }
    ECF8_CHECK(events->is_array(), "trace JSON: 'traceEvents' is not an array");

    TraceData data;
    for (const json& e : *events) {
        ECF8_CHECK(e.is_object(), "trace JSON: an event is not an object: " << e.dump());
        std::string ph = get_string(e, "ph");
        if (ph == "M" && get_string(e, "name") == "thread_name") {
            auto args = e.find("args");
            ECF8_CHECK(args != e.end() && args->is_object(), "trace JSON: thread_name without args: " << e.dump());
            add_lane(data.lanes, {static_cast<int>(get_int(e, "pid")), static_cast<int>(get_int(e, "tid")),
                                  get_string(*args, "name")});
        } else if (ph == "X") {
            TraceSpan s;
            s.rank = static_cast<int>(get_int(e, "pid"));
            s.lane = static_cast<int>(get_int(e, "tid"));
            s.name = get_string(e, "name");
            s.start_ns = to_ns(get_number(e, "ts"));
            s.end_ns = s.start_ns + to_ns(get_number(e, "dur"));
            if (auto args = e.find("args"); args != e.end() && args->is_object()) {
                for (auto it = args->begin(); it != args->end(); ++it) {
                    if (it->is_number_integer()) s.args.emplace_back(it.key(), it->get<int64_t>());
                }
            }
            data.spans.push_back(std::move(s));
        }
    }
    sort_spans(data.spans);
    return data;
}

TraceData merge_traces(const std::vector<TraceData>& parts) {
    TraceData out;
    for (const TraceData& p : parts) {
        for (const TraceLane& l : p.lanes) add_lane(out.lanes, l);
        out.spans.insert(out.spans.end(), p.spans.begin(), p.spans.end());
    }
    sort_spans(out.spans);
    return out;
}

std::string merge_trace_json(const std::vector<std::string>& jsons) {
    std::vector<TraceData> parts;
    parts.reserve(jsons.size());
    for (const std::string& j : jsons) parts.push_back(trace_from_json(j));
    return trace_to_json(merge_traces(parts));
}

void merge_trace_files(const std::vector<std::string>& paths, const std::string& out_path) {
    std::vector<TraceData> parts;
    parts.reserve(paths.size());
    for (const std::string& p : paths) {
        try {
            parts.push_back(trace_from_json(read_file(p)));
        } catch (const Error& e) {
            ECF8_FAIL(p << ": " << e.what());
        }
    }
    write_file_atomic(out_path, trace_to_json(merge_traces(parts)));
}

// ----------------------------------------------------------------------------
// Tracer

Tracer::Tracer(int rank, bool enabled) : rank_(rank), enabled_(enabled), origin_ns_(steady_ns()) {
    for (const char* name : kStandardLanes) lanes_.emplace_back(name);
}

int Tracer::lane(std::string_view name) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < lanes_.size(); ++i) {
        if (lanes_[i] == name) return static_cast<int>(i);
    }
    lanes_.emplace_back(name);
    return static_cast<int>(lanes_.size() - 1);
}

int64_t Tracer::now_ns() const { return steady_ns() - origin_ns_.load(std::memory_order_relaxed); }

void Tracer::reset_origin() { origin_ns_.store(steady_ns(), std::memory_order_relaxed); }

void Tracer::record(int lane, std::string_view name, int64_t start_ns, int64_t end_ns, const TraceArgs& args) {
    if (!enabled_) return;
    TraceSpan s;
    s.rank = rank_;
    s.lane = lane;
    s.name = name;
    s.start_ns = start_ns;
    s.end_ns = std::max(start_ns, end_ns);
    s.args.reserve(static_cast<size_t>(args.size()));
    for (int i = 0; i < args.size(); ++i) s.args.emplace_back(args[i].key, args[i].value);
    std::lock_guard<std::mutex> lock(mutex_);
    ECF8_CHECK(lane >= 0 && static_cast<size_t>(lane) < lanes_.size(),
               "trace span '" << s.name << "' on unregistered lane " << lane);
    spans_.push_back(std::move(s));
}

void Tracer::clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    spans_.clear();
}

TraceData Tracer::data() const {
    TraceData d;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (size_t i = 0; i < lanes_.size(); ++i) d.lanes.push_back({rank_, static_cast<int>(i), lanes_[i]});
        d.spans = spans_;
    }
    sort_spans(d.spans);
    return d;
}

void Tracer::write(const std::string& path) const { write_file_atomic(path, to_json()); }

// ----------------------------------------------------------------------------
// TraceScope

TraceScope::TraceScope(Tracer* tracer, int lane, std::string_view name, const TraceArgs& args) {
    if (tracer == nullptr || !tracer->enabled()) return;
    tracer_ = tracer;
    lane_ = lane;
    name_ = name;
    args_ = args;
    start_ns_ = tracer->now_ns();
}

TraceScope::~TraceScope() {
    if (tracer_ == nullptr) return;
    try {
        tracer_->record(lane_, name_, start_ns_, tracer_->now_ns(), args_);
    } catch (const std::exception& e) {
        // A destructor must not throw: the span is dropped, with a word in the log.
        LOG_WARN("trace span '" << name_ << "' dropped: " << e.what());
    }
}

void TraceScope::add_arg(const char* key, int64_t value) {
    if (tracer_ != nullptr) args_.add(key, value);
}

}  // namespace ecf8
