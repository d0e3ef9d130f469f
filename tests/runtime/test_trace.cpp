// Tracer: disabled tracers record nothing, scopes and arguments, Chrome trace JSON (parsed back with
// nlohmann::json: metadata lane names, "X" events), exact JSON round trips, merging ranks as strings and as
// files, concurrent recording, and rejection of malformed input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "runtime/trace.h"

using ecf8::TraceArgs;
using ecf8::TraceData;
using ecf8::Tracer;
using ecf8::TraceScope;
using ecf8::TraceSpan;
using json = nlohmann::json;

namespace {

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ecf8::Error& e) {
        return e.what();
    }
    return "";
}

// A tracer with a few spans on standard lanes, at fixed times.
void fill(Tracer& t) {
    t.record(Tracer::kCopy, "h2d L1", 1000, 5000, {{"layer", 1}, {"bytes", 123456789012LL}});
    t.record(Tracer::kDecode, "decode L1", 5500, 9000, {{"layer", 1}, {"experts", 8}});
    t.record(Tracer::kCompute, "compute L0", 2000, 9500, {{"layer", 0}});
    t.record(Tracer::kComm, "all_reduce L0", 9600, 9999);
    t.record(Tracer::kHost, "step 0", 0, 10001);
}

class TempDir {
public:
    TempDir() {
        path_ = std::filesystem::temp_directory_path() / ("ecf8_trace_test_" + std::to_string(::getpid()));
        std::filesystem::create_directories(path_);
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

}  // namespace

TEST(Tracer, DisabledRecordsNothing) {
    Tracer t(0, false);
    EXPECT_FALSE(t.enabled());
    t.record(Tracer::kDecode, "x", 0, 10);
    { TraceScope s(&t, Tracer::kCompute, "scope"); }
    { TraceScope s(nullptr, Tracer::kCompute, "no tracer"); }
    EXPECT_TRUE(t.data().spans.empty());
    EXPECT_EQ(t.data().lanes.size(), 5u);  // lanes are still named
}

TEST(Tracer, StandardLanes) {
    Tracer t(2, true);
    EXPECT_EQ(t.rank(), 2);
    EXPECT_EQ(t.lane("host"), Tracer::kHost);
    EXPECT_EQ(t.lane("copy"), Tracer::kCopy);
    EXPECT_EQ(t.lane("decode"), Tracer::kDecode);
    EXPECT_EQ(t.lane("compute"), Tracer::kCompute);
    EXPECT_EQ(t.lane("comm"), Tracer::kComm);
    EXPECT_EQ(t.lane("prefetch"), 5);
    EXPECT_EQ(t.lane("prefetch"), 5);
    EXPECT_EQ(t.data().lane_name(2, 5), "prefetch");
    EXPECT_EQ(t.data().lane_name(2, 9), "");
    EXPECT_NE(error_of([&] { t.record(17, "bad lane", 0, 1); }), "");
}

TEST(Tracer, ScopeRecordsSpanWithArgs) {
    Tracer t(0, true);
    t.reset_origin();
    EXPECT_GE(t.now_ns(), 0);
    {
        TraceScope s(&t, Tracer::kDecode, "decode L5", {{"layer", 5}});
        sleep_ms(3);
        s.add_arg("experts", 12);
    }
    TraceData d = t.data();
    ASSERT_EQ(d.spans.size(), 1u);
    const TraceSpan& s = d.spans[0];
    EXPECT_EQ(s.name, "decode L5");
    EXPECT_EQ(s.lane, Tracer::kDecode);
    EXPECT_GE(s.start_ns, 0);
    EXPECT_GE(s.duration_ns(), 3'000'000);
    EXPECT_EQ(s.arg("layer"), 5);
    EXPECT_EQ(s.arg("experts"), 12);
    EXPECT_FALSE(s.arg("bytes").has_value());
    t.clear();
    EXPECT_TRUE(t.data().spans.empty());
}

TEST(Tracer, TooManyArgsThrow) {
    TraceArgs a{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}};
    EXPECT_EQ(a.size(), 4);
    EXPECT_NE(error_of([&] { a.add("e", 5); }), "");
    EXPECT_NE(error_of([] { TraceArgs b{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"e", 5}}; }), "");
}

TEST(Tracer, JsonIsAChromeTrace) {
    Tracer t(3, true);
    fill(t);
    json root = json::parse(t.to_json());
    ASSERT_TRUE(root.contains("traceEvents"));
    const json& events = root["traceEvents"];
    ASSERT_TRUE(events.is_array());

    std::map<int, std::string> lane_names;
    std::vector<json> spans;
    for (const json& e : events) {
        EXPECT_EQ(e["pid"], 3);
        if (e["ph"] == "M" && e["name"] == "thread_name") lane_names[e["tid"].get<int>()] = e["args"]["name"];
        if (e["ph"] == "X") spans.push_back(e);
    }
    std::map<int, std::string> expected = {{0, "host"}, {1, "copy"}, {2, "decode"}, {3, "compute"}, {4, "comm"}};
    EXPECT_EQ(lane_names, expected);
    ASSERT_EQ(spans.size(), 5u);
    for (const json& e : spans) {
        EXPECT_TRUE(e["ts"].is_number());
        EXPECT_TRUE(e["dur"].is_number());
        EXPECT_TRUE(e["name"].is_string());
        EXPECT_TRUE(e["args"].is_object());
        EXPECT_TRUE(e.contains("tid"));
    }
    // Spans come out in start order; times are microseconds.
    EXPECT_EQ(spans[0]["name"], "step 0");
    EXPECT_EQ(spans[1]["name"], "h2d L1");
    EXPECT_DOUBLE_EQ(spans[1]["ts"].get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(spans[1]["dur"].get<double>(), 4.0);
    EXPECT_EQ(spans[1]["tid"], Tracer::kCopy);
    EXPECT_EQ(spans[1]["cat"], "copy");
    EXPECT_EQ(spans[1]["args"]["bytes"], 123456789012LL);
}

TEST(Tracer, JsonRoundTripIsExact) {
    Tracer t(1, true);
    fill(t);
    t.record(t.lane("prefetch"), "odd \"name\" \\ with escapes", 123456789, 123456790);
    TraceData a = t.data();
    TraceData b = ecf8::trace_from_json(t.to_json());
    ASSERT_EQ(a.spans.size(), b.spans.size());
    for (size_t i = 0; i < a.spans.size(); ++i) {
        EXPECT_EQ(a.spans[i].rank, b.spans[i].rank);
        EXPECT_EQ(a.spans[i].lane, b.spans[i].lane);
        EXPECT_EQ(a.spans[i].name, b.spans[i].name);
        EXPECT_EQ(a.spans[i].start_ns, b.spans[i].start_ns);
        EXPECT_EQ(a.spans[i].end_ns, b.spans[i].end_ns);
        EXPECT_EQ(a.spans[i].args, b.spans[i].args);
    }
    ASSERT_EQ(a.lanes.size(), b.lanes.size());
    EXPECT_EQ(b.lane_name(1, 5), "prefetch");
}

TEST(Tracer, MergeRanksAsStrings) {
    Tracer r0(0, true), r1(1, true);
    fill(r0);
    fill(r1);
    r1.record(r1.lane("extra"), "only on rank 1", 50, 60);
    std::string merged = ecf8::merge_trace_json({r0.to_json(), r1.to_json()});

    json root = json::parse(merged);
    std::set<int> pids;
    std::set<std::string> process_names;
    for (const json& e : root["traceEvents"]) {
        pids.insert(e["pid"].get<int>());
        if (e["ph"] == "M" && e["name"] == "process_name") process_names.insert(e["args"]["name"]);
    }
    EXPECT_EQ(pids, (std::set<int>{0, 1}));
    EXPECT_EQ(process_names, (std::set<std::string>{"rank 0", "rank 1"}));

    TraceData d = ecf8::trace_from_json(merged);
    EXPECT_EQ(d.spans.size(), 11u);
    EXPECT_EQ(d.lanes.size(), 11u);
    EXPECT_EQ(d.find("decode").size(), 2u);
    ASSERT_EQ(d.find("decode", "decode", 1).size(), 1u);
    EXPECT_EQ(d.find("decode", "decode", 1)[0]->rank, 1);
    EXPECT_EQ(d.find("extra").size(), 1u);
    EXPECT_EQ(d.find("compute", "nothing").size(), 0u);
}

TEST(Tracer, WriteAndMergeFiles) {
    TempDir dir;
    Tracer r0(0, true), r1(1, true);
    fill(r0);
    fill(r1);
    r0.write(dir.file("rank0.json"));
    r1.write(dir.file("rank1.json"));
    ecf8::merge_trace_files({dir.file("rank0.json"), dir.file("rank1.json")}, dir.file("all.json"));
    TraceData d = ecf8::trace_from_json(ecf8::read_file(dir.file("all.json")));
    EXPECT_EQ(d.spans.size(), 10u);
    EXPECT_EQ(d.lane_name(1, Tracer::kComm), "comm");

    ecf8::write_file_atomic(dir.file("bad.json"), "{\"traceEvents\": 3}");
    std::string err = error_of([&] { ecf8::merge_trace_files({dir.file("bad.json")}, dir.file("out.json")); });
    EXPECT_NE(err.find("bad.json"), std::string::npos) << err;
}

TEST(Tracer, ConflictingLaneNamesAreRejected) {
    Tracer a(0, true), b(0, true);
    a.lane("prefetch");
    b.lane("other");  // id 5 on the same rank, with a different name
    EXPECT_NE(error_of([&] { ecf8::merge_trace_json({a.to_json(), b.to_json()}); }), "");
}

TEST(Tracer, MalformedJsonIsRejected) {
    for (const char* bad : {"not json", "{}", "{\"traceEvents\": {}}", "[1]", "[{\"ph\": \"X\", \"name\": \"x\"}]",
                            "[{\"ph\": \"X\", \"name\": \"x\", \"ts\": 1, \"dur\": 1, \"pid\": \"zero\", \"tid\": 0}]",
                            "[{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": 0, \"tid\": 0}]"}) {
        EXPECT_NE(error_of([&] { ecf8::trace_from_json(bad); }), "") << bad;
    }
    // A bare array of events is a valid Chrome trace, and unknown events are skipped.
    TraceData d = ecf8::trace_from_json(
        "[{\"ph\": \"X\", \"name\": \"x\", \"ts\": 1.5, \"dur\": 2, \"pid\": 0, \"tid\": 7, \"args\": {\"s\": "
        "\"str\"}},"
        " {\"ph\": \"i\", \"name\": \"instant\"}]");
    ASSERT_EQ(d.spans.size(), 1u);
    EXPECT_EQ(d.spans[0].start_ns, 1500);
    EXPECT_EQ(d.spans[0].end_ns, 3500);
    EXPECT_TRUE(d.spans[0].args.empty());
}

TEST(Tracer, ConcurrentRecording) {
    Tracer t(0, true);
    const int threads = 4;
    const int per_thread = 2000;
    std::vector<std::thread> workers;
    for (int w = 0; w < threads; ++w) {
        workers.emplace_back([&t, w] {
            const int lane = t.lane(w % 2 == 0 ? "decode" : "worker " + std::to_string(w));
            for (int i = 0; i < per_thread; ++i) {
                TraceScope s(&t, lane, "item", {{"thread", w}, {"i", i}});
            }
        });
    }
    for (auto& w : workers) w.join();
    TraceData d = t.data();
    ASSERT_EQ(d.spans.size(), static_cast<size_t>(threads * per_thread));
    std::map<int64_t, int> per_thread_count;
    for (size_t i = 0; i < d.spans.size(); ++i) {
        if (i > 0) {
            EXPECT_LE(d.spans[i - 1].start_ns, d.spans[i].start_ns);
        }
        EXPECT_LE(d.spans[i].start_ns, d.spans[i].end_ns);
        ++per_thread_count[*d.spans[i].arg("thread")];
    }
    for (int w = 0; w < threads; ++w) EXPECT_EQ(per_thread_count[w], per_thread);
    EXPECT_EQ(d.lanes.size(), 7u);  // five standard lanes and "worker 1", "worker 3"
    EXPECT_TRUE(json::accept(t.to_json()));
}
