// Tests for MappedFile and the safetensors reader, writer and checkpoint directories: round trips, the atomic
// tmp+rename protocol, every header validation error, truncation and random header corruption.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "codec/mapped_file.h"
#include "codec/safetensors.h"
#include "common/error.h"

namespace ecf8 {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

Bytes random_bytes(size_t n, std::mt19937_64& rng) {
    Bytes out(n);
    for (auto& b : out) b = static_cast<uint8_t>(rng());
    return out;
}

Bytes read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_all(const std::string& path, const Bytes& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

Bytes tensor_bytes(const SafetensorsFile& f, const TensorInfo& t) {
    const uint8_t* p = f.tensor_data(t);
    return Bytes(p, p + t.nbytes());
}

// A file image: u64 little-endian length of `header`, the header text, then `data_size` data bytes.
Bytes make_image(const std::string& header, size_t data_size, uint64_t header_len_field) {
    Bytes out;  // built with push_back only: vector::insert trips a GCC 12 -O3 -Warray-bounds false positive
    out.reserve(8 + header.size() + data_size);
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(header_len_field >> (8 * i)));
    for (char c : header) out.push_back(static_cast<uint8_t>(c));
    for (size_t i = 0; i < data_size; ++i) out.push_back(static_cast<uint8_t>(i));
    return out;
}
Bytes make_image(const std::string& header, size_t data_size) { return make_image(header, data_size, header.size()); }

// Runs fn, expecting an ecf8::Error whose message contains every string of `needles`.
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
    try {
        fn();
        ADD_FAILURE() << "no ecf8::Error thrown; expected one mentioning '" << needles.front() << "'";
    } catch (const Error& e) {
        std::string what = e.what();
        for (const auto& n : needles) EXPECT_NE(what.find(n), std::string::npos) << "'" << n << "' not in: " << what;
    }
}

class SafetensorsTest : public testing::Test {
protected:
    void SetUp() override {
        std::string templ = testing::TempDir() + "ecf8_safetensors_XXXXXX";
        ASSERT_NE(mkdtemp(templ.data()), nullptr);
        dir_ = templ;
    }
    void TearDown() override { fs::remove_all(dir_); }
    std::string file(const std::string& name) const { return (fs::path(dir_) / name).string(); }

    std::string dir_;
    std::mt19937_64 rng_{1234};
};

// ---------------------------------------------------------------------------------------------------------------
// MappedFile

TEST_F(SafetensorsTest, MappedFileReadsMovesAndReportsErrors) {
    Bytes content = random_bytes(5000, rng_);
    write_all(file("a.bin"), content);
    MappedFile m = MappedFile::open(file("a.bin"));
    ASSERT_EQ(m.size(), content.size());
    EXPECT_EQ(Bytes(m.data(), m.data() + m.size()), content);
    EXPECT_EQ(m.path(), file("a.bin"));
    MappedFile moved = std::move(m);
    EXPECT_EQ(moved.size(), content.size());
    EXPECT_EQ(Bytes(moved.data(), moved.data() + moved.size()), content);
    MappedFile assigned;
    assigned = std::move(moved);
    EXPECT_EQ(assigned.data()[17], content[17]);

    write_all(file("empty.bin"), {});
    MappedFile e = MappedFile::open(file("empty.bin"));
    EXPECT_EQ(e.size(), 0u);

    expect_error([&] { MappedFile::open(file("missing.bin")); }, {file("missing.bin"), "No such file"});
    expect_error([&] { MappedFile::open(dir_); }, {dir_, "not a regular file"});
}

// ---------------------------------------------------------------------------------------------------------------
// Writer -> reader round trips

TEST_F(SafetensorsTest, RoundTripEveryDType) {
    std::vector<Bytes> payloads;
    std::vector<TensorView> views;
    for (int i = 0; i < kNumDTypes; ++i) {
        DType dt = static_cast<DType>(i);
        std::vector<int64_t> shape = {2, 3 + i};
        payloads.push_back(random_bytes(static_cast<size_t>(2 * (3 + i)) * dtype_size(dt), rng_));
        views.push_back({std::string("t.") + dtype_name(dt), dt, shape, nullptr, payloads.back().size()});
    }
    for (size_t i = 0; i < views.size(); ++i) views[i].data = payloads[i].data();
    write_safetensors(file("all.safetensors"), {}, views);

    SafetensorsFile f = SafetensorsFile::open(file("all.safetensors"));
    EXPECT_EQ(f.path(), file("all.safetensors"));
    EXPECT_EQ(f.file_size(), fs::file_size(file("all.safetensors")));
    EXPECT_TRUE(f.metadata().empty());
    ASSERT_EQ(f.tensors().size(), views.size());
    for (size_t i = 0; i < views.size(); ++i) {
        const TensorInfo& t = f.tensors()[i];  // sorted by offset == declaration order
        EXPECT_EQ(t.name, views[i].name);
        EXPECT_EQ(t.dtype, views[i].dtype);
        EXPECT_EQ(t.shape, views[i].shape);
        EXPECT_EQ(t.nbytes(), payloads[i].size());
        EXPECT_EQ(t.numel() * dtype_size(t.dtype), t.nbytes());
        EXPECT_EQ(tensor_bytes(f, t), payloads[i]) << t.name;
        EXPECT_EQ(&f.get(t.name), &t);
    }
    EXPECT_EQ(f.find("nope"), nullptr);
}

TEST_F(SafetensorsTest, HeaderIsSpacePaddedAndDataAligned) {
    uint8_t one = 7;
    write_safetensors(file("a.safetensors"), {{"k", "v"}}, {{"x", DType::U8, {1}, &one, 1}});
    Bytes raw = read_all(file("a.safetensors"));
    uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = (len << 8) | raw[i];
    EXPECT_EQ(len % 8, 0u);
    std::string header(raw.begin() + 8, raw.begin() + 8 + static_cast<long>(len));
    EXPECT_EQ(header.rfind("{\"__metadata__\"", 0), 0u) << header;  // metadata first
    EXPECT_NE(header.find("\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]"), std::string::npos) << header;
    EXPECT_EQ(header.find_last_not_of(' '), header.find_last_of('}'));
    EXPECT_EQ(raw.size(), 8 + len + 1);
    EXPECT_EQ(raw.back(), 7);
    EXPECT_EQ(SafetensorsFile::open(file("a.safetensors")).data_offset(), 8 + len);
}

TEST_F(SafetensorsTest, MetadataKept) {
    std::map<std::string, std::string> meta = {{"format", "pt"}, {"ecf8.version", "1"}, {"note", "ünïcode \"q\""}};
    uint16_t v[3] = {1, 2, 3};
    write_safetensors(file("m.safetensors"), meta, {{"w", DType::BF16, {3}, v, sizeof(v)}});
    SafetensorsFile f = SafetensorsFile::open(file("m.safetensors"));
    EXPECT_EQ(f.metadata(), meta);
    EXPECT_EQ(f.find("__metadata__"), nullptr);
}

TEST_F(SafetensorsTest, EmptyAndScalarTensors) {
    float scalar = 3.5f;
    int64_t pair[2] = {-1, 42};
    write_safetensors(file("e.safetensors"), {},
                      {{"empty", DType::F32, {0}, nullptr, 0},
                       {"scalar", DType::F32, {}, &scalar, 4},
                       {"empty2d", DType::BF16, {4, 0}, nullptr, 0},
                       {"pair", DType::I64, {2}, pair, 16}});
    SafetensorsFile f = SafetensorsFile::open(file("e.safetensors"));
    EXPECT_EQ(f.get("empty").nbytes(), 0u);
    EXPECT_EQ(f.get("empty").numel(), 0u);
    EXPECT_EQ(f.get("empty").shape, std::vector<int64_t>{0});
    EXPECT_EQ(f.get("empty2d").shape, (std::vector<int64_t>{4, 0}));
    const TensorInfo& s = f.get("scalar");
    EXPECT_TRUE(s.shape.empty());
    EXPECT_EQ(s.numel(), 1u);
    EXPECT_EQ(tensor_bytes(f, s), Bytes(reinterpret_cast<uint8_t*>(&scalar), reinterpret_cast<uint8_t*>(&scalar) + 4));
    const TensorInfo& p = f.get("pair");
    EXPECT_EQ(tensor_bytes(f, p), Bytes(reinterpret_cast<uint8_t*>(pair), reinterpret_cast<uint8_t*>(pair) + 16));

    write_safetensors(file("none.safetensors"), {}, {});
    EXPECT_TRUE(SafetensorsFile::open(file("none.safetensors")).tensors().empty());
}

TEST_F(SafetensorsTest, StreamingWriteInPieces) {
    Bytes a = random_bytes(100000, rng_), b = random_bytes(4096, rng_);
    SafetensorsWriter w(file("s.safetensors"));
    w.set_metadata({{"k", "v"}});
    w.add_tensor("a", DType::F8_E4M3, {100, 1000}, a.size());
    w.add_tensor("zero", DType::U8, {0}, 0);  // never written: empty tensors may be skipped
    w.add_tensor("b", DType::U32, {1024}, b.size());
    w.write_header();
    for (size_t off = 0; off < a.size(); off += 777)
        w.write_data("a", a.data() + off, std::min<size_t>(777, a.size() - off));
    w.write_data("b", b.data(), 0);
    w.write_data("b", b.data(), 1000);
    w.write_data("b", b.data() + 1000, b.size() - 1000);
    w.finish();
    SafetensorsFile f = SafetensorsFile::open(file("s.safetensors"));
    EXPECT_EQ(tensor_bytes(f, f.get("a")), a);
    EXPECT_EQ(tensor_bytes(f, f.get("b")), b);
    EXPECT_EQ(f.get("zero").nbytes(), 0u);
    EXPECT_EQ(f.metadata().at("k"), "v");
}

TEST_F(SafetensorsTest, TmpFileRenamedOnlyAtFinish) {
    const std::string path = file("t.safetensors");
    uint8_t data[4] = {1, 2, 3, 4};
    SafetensorsWriter w(path);
    w.add_tensor("x", DType::U8, {4}, 4);
    w.write_header();
    w.write_data("x", data, 4);
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(fs::exists(path + ".tmp"));
    w.finish();
    EXPECT_TRUE(fs::exists(path));
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    expect_error([&] { w.write_data("x", data, 1); }, {path, "after finish"});
}

TEST_F(SafetensorsTest, UnfinishedWriterLeavesNoFile) {
    const std::string path = file("u.safetensors");
    uint8_t data[4] = {1, 2, 3, 4};
    {
        SafetensorsWriter w(path);
        w.add_tensor("x", DType::U8, {4}, 4);
        w.write_header();
        w.write_data("x", data, 2);
        EXPECT_TRUE(fs::exists(path + ".tmp"));
        expect_error([&] { w.finish(); }, {path, "'x'", "only 2 of 4"});
    }
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(SafetensorsTest, WriterRejectsMisuse) {
    const std::string path = file("w.safetensors");
    uint8_t data[16] = {};
    SafetensorsWriter w(path);
    expect_error([&] { w.add_tensor("bad", DType::F32, {3}, 4); }, {path, "'bad'", "needs 12"});
    expect_error([&] { w.add_tensor("neg", DType::U8, {-1}, 0); }, {"'neg'", "negative"});
    expect_error([&] { w.add_tensor("__metadata__", DType::U8, {0}, 0); }, {"reserved"});
    expect_error([&] { w.add_tensor("big", DType::F64, {1LL << 62, 4}, 0); }, {"'big'", "overflows"});
    expect_error([&] { w.write_data("a", data, 1); }, {"'a'", "before write_header"});
    w.add_tensor("a", DType::U8, {4}, 4);
    w.add_tensor("b", DType::U16, {4}, 8);
    expect_error([&] { w.add_tensor("a", DType::U8, {4}, 4); }, {"'a'", "added twice"});
    w.write_header();
    expect_error([&] { w.add_tensor("c", DType::U8, {1}, 1); }, {"'c'", "after write_header"});
    expect_error([&] { w.set_metadata({}); }, {"after write_header"});
    expect_error([&] { w.write_header(); }, {"twice"});
    expect_error([&] { w.write_data("b", data, 8); }, {"'b'", "out of order", "'a'"});
    expect_error([&] { w.write_data("a", data, 5); }, {"'a'", "more than the declared 4"});
    w.write_data("a", data, 4);
    expect_error([&] { w.write_data("a", data, 1); }, {"'a'", "more than the declared 4"});
    expect_error([&] { w.write_data("zz", data, 1); }, {"'zz'", "not declared"});
    w.write_data("b", data, 3);
    expect_error([&] { w.write_data("a", data, 1); }, {"'a'", "already written"});
    expect_error([&] { w.finish(); }, {"'b'", "only 3 of 8"});
    w.write_data("b", data, 5);
    w.finish();
    EXPECT_EQ(SafetensorsFile::open(path).tensors().size(), 2u);
}

// ---------------------------------------------------------------------------------------------------------------
// Reader validation

const std::string kLabel = "bad.safetensors";

void expect_parse_error(const Bytes& image, std::vector<std::string> needles) {
    needles.insert(needles.begin(), kLabel);
    expect_error([&] { SafetensorsFile::parse(image, kLabel); }, needles);
}

TEST(SafetensorsParse, ParsesFromMemory) {
    Bytes image = make_image(R"({"w":{"dtype":"I16","shape":[2],"data_offsets":[0,4]},"__metadata__":{"a":"b"}})", 4);
    SafetensorsFile f = SafetensorsFile::parse(image, "mem");
    EXPECT_EQ(f.path(), "mem");
    EXPECT_EQ(f.file_size(), image.size());
    EXPECT_EQ(f.tensor_data(f.get("w")), image.data() + image.size() - 4);
    EXPECT_EQ(f.metadata().at("a"), "b");
    expect_error([&] { f.get("absent"); }, {"mem", "'absent'"});
    TensorInfo foreign{"far", DType::U8, {100}, 0, 100};
    expect_error([&] { f.tensor_data(foreign); }, {"mem", "'far'"});
}

TEST(SafetensorsParse, RejectsBadFileFraming) {
    expect_parse_error({1, 2, 3}, {"shorter than"});
    expect_parse_error(make_image("{}", 0, 200ull << 20), {"100 MiB"});
    expect_parse_error(make_image("{}", 10, 50), {"larger than the file"});
    expect_parse_error(make_image("", 0), {"does not start with '{'"});
    expect_parse_error(make_image("[1,2]", 0), {"does not start with '{'"});
    expect_parse_error(make_image(" {}", 0), {"does not start with '{'"});
    expect_parse_error(make_image(R"({"w": )", 0), {"not valid JSON"});
    expect_parse_error(make_image(R"({"w":1} x)", 0), {"not valid JSON"});
}

// Builds a one-tensor header {"w_tensor": entry} with 16 data bytes.
Bytes one_tensor(const std::string& entry) { return make_image("{\"w_tensor\":" + entry + "}", 16); }

TEST(SafetensorsParse, RejectsBadEntries) {
    const std::string t = "'w_tensor'";
    expect_parse_error(one_tensor("3"), {t, "must be an object"});
    expect_parse_error(one_tensor(R"({"shape":[4],"data_offsets":[0,4]})"), {t, "missing 'dtype'"});
    expect_parse_error(one_tensor(R"({"dtype":"U8","data_offsets":[0,4]})"), {t, "missing 'shape'"});
    expect_parse_error(one_tensor(R"({"dtype":"U8","shape":[4]})"), {t, "missing 'data_offsets'"});
    expect_parse_error(one_tensor(R"({"dtype":5,"shape":[4],"data_offsets":[0,4]})"), {t, "'dtype' must be"});
    expect_parse_error(one_tensor(R"({"dtype":"F7","shape":[4],"data_offsets":[0,4]})"),
                       {t, "unknown dtype 'F7'", "F8_E4M3", "BF16", "BOOL"});
    expect_parse_error(one_tensor(R"({"dtype":"U8","shape":"4","data_offsets":[0,4]})"), {t, "'shape' must be"});
    expect_parse_error(one_tensor(R"({"dtype":"U8","shape":[4.0],"data_offsets":[0,4]})"), {t, "must be an integer"});
    expect_parse_error(one_tensor(R"({"dtype":"U8","shape":[-4],"data_offsets":[0,4]})"), {t, "negative shape"});
    expect_parse_error(one_tensor(R"({"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,4]})"),
                       {t, "too large"});
    expect_parse_error(one_tensor(R"({"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,4]})"),
                       {t, "overflows"});
    expect_parse_error(one_tensor(R"({"dtype":"U8","shape":[4],"data_offsets":{"a":0}})"), {t, "[begin, end]"});
    expect_parse_error(one_tensor(R"({"dtype":"U8","shape":[4],"data_offsets":[0]})"), {t, "[begin, end]"});
    expect_parse_error(one_tensor(R"({"dtype":"U8","shape":[4],"data_offsets":[0,4,8]})"), {t, "[begin, end]"});
    expect_parse_error(one_tensor(R"({"dtype":"U8","shape":[4],"data_offsets":[-1,4]})"), {t, "negative data offset"});
    expect_parse_error(one_tensor(R"({"dtype":"U8","shape":[4],"data_offsets":[0,"4"]})"), {t, "must be an integer"});
    expect_parse_error(one_tensor(R"({"dtype":"U8","shape":[2],"data_offsets":[4,2]})"), {t, "begin > end"});
    expect_parse_error(one_tensor(R"({"dtype":"U8","shape":[20],"data_offsets":[0,20]})"),
                       {t, "beyond the data section"});
    expect_parse_error(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})"), {t, "needs 8"});
}

TEST(SafetensorsParse, RejectsBadLayoutAndMetadata) {
    const std::string e = R"("dtype":"U8","shape":[4],"data_offsets")";
    expect_parse_error(make_image("{\"a_t\":{" + e + ":[0,4]},\"b_t\":{" + e + ":[2,6]}}", 8),
                       {"'a_t'", "'b_t'", "overlap"});
    expect_parse_error(make_image("{\"a_t\":{" + e + ":[0,4]},\"b_t\":{" + e + ":[0,4]}}", 8),
                       {"'a_t'", "'b_t'", "overlap"});
    // An empty tensor placed inside another one occupies no bytes and is accepted.
    SafetensorsFile::parse(make_image("{\"a_t\":{" + e +
                                          ":[0,4]},\"z\":{\"dtype\":\"U8\",\"shape\":[0],"
                                          "\"data_offsets\":[2,2]}}",
                                      8),
                           kLabel);
    expect_parse_error(make_image(R"({"__metadata__":3})", 0), {"'__metadata__' must be an object"});
    expect_parse_error(make_image(R"({"__metadata__":{"key_x":1}})", 0), {"'key_x'", "must be a string"});
    expect_parse_error(make_image("{\"dup_t\":{" + e + ":[0,4]},\"dup_t\":{" + e + ":[4,8]}}", 8),
                       {"duplicate tensor name 'dup_t'"});
    expect_parse_error(make_image(R"({"w":{"dtype":"U8","dtype":"U8","shape":[0],"data_offsets":[0,0]}})", 0),
                       {"duplicate key 'dtype'"});
}

// A small valid file image whose last tensor ends at the end of the file.
Bytes small_valid_image(const std::string& dir_file) {
    uint8_t a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[3] = {7, 8, 9};
    write_safetensors(
        dir_file, {{"m", "1"}},
        {{"a", DType::U8, {2, 3}, a, 6}, {"e", DType::F32, {0}, nullptr, 0}, {"b", DType::F16, {3}, b, 6}});
    return read_all(dir_file);
}

TEST_F(SafetensorsTest, EveryTruncationThrows) {
    Bytes image = small_valid_image(file("v.safetensors"));
    ASSERT_NO_THROW(SafetensorsFile::parse(image, kLabel));
    for (size_t len = 0; len < image.size(); ++len) {
        Bytes cut(image.begin(), image.begin() + static_cast<long>(len));  // a copy, so ASan sees the exact end
        EXPECT_THROW(SafetensorsFile::parse(cut, kLabel), Error) << "length " << len;
    }
    // The same through a real file.
    Bytes cut(image.begin(), image.end() - 1);
    write_all(file("cut.safetensors"), cut);
    expect_error([&] { SafetensorsFile::open(file("cut.safetensors")); }, {file("cut.safetensors"), "'b'"});
}

TEST_F(SafetensorsTest, RandomHeaderByteFlipsNeverCrash) {
    const uint64_t seed = 20240607;
    std::printf("RandomHeaderByteFlipsNeverCrash seed=%llu\n", static_cast<unsigned long long>(seed));
    std::mt19937_64 rng(seed);
    Bytes image = small_valid_image(file("v.safetensors"));
    const size_t header_end = image.size() - 12;  // 12 data bytes follow the header
    std::vector<size_t> digits;                   // positions of JSON digits, to mutate numbers in place
    for (size_t i = 8; i < header_end; ++i)
        if (image[i] >= '0' && image[i] <= '9') digits.push_back(i);
    int ok = 0, rejected = 0;
    for (int iter = 0; iter < 4000; ++iter) {
        Bytes mutated = image;
        int flips = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < flips; ++k) {
            if (iter % 2) {  // odd iterations: keep the JSON valid, change shapes and offsets
                mutated[digits[rng() % digits.size()]] = static_cast<uint8_t>('0' + rng() % 10);
                continue;
            }
            size_t pos = rng() % header_end;
            mutated[pos] = (rng() % 2) ? static_cast<uint8_t>(rng()) : mutated[pos] ^ (1u << (rng() % 8));
        }
        try {
            SafetensorsFile f = SafetensorsFile::parse(mutated, kLabel);
            for (const TensorInfo& t : f.tensors()) {
                const uint8_t* p = f.tensor_data(t);
                ASSERT_GE(p, mutated.data());
                ASSERT_LE(p + t.nbytes(), mutated.data() + mutated.size());
                volatile uint8_t sink = 0;
                for (uint64_t i = 0; i < t.nbytes(); ++i) sink = sink + p[i];
            }
            ++ok;
        } catch (const Error&) {
            ++rejected;
        }
    }
    std::printf("accepted %d, rejected %d\n", ok, rejected);
    EXPECT_GT(rejected, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoint directories

class CheckpointTest : public SafetensorsTest {
protected:
    // Writes shard 1 with a, b and shard 2 with c; returns nothing, fills payloads_.
    void write_shards() {
        for (int i = 0; i < 3; ++i) payloads_.push_back(random_bytes(8 * (i + 1), rng_));
        write_safetensors(
            file(kShard1), {},
            {{"a", DType::F32, {2}, payloads_[0].data(), 8}, {"b", DType::BF16, {8}, payloads_[1].data(), 16}});
        write_safetensors(file(kShard2), {}, {{"c", DType::F8_E4M3, {4, 6}, payloads_[2].data(), 24}});
    }
    void write_index(const std::string& extra) {
        std::ofstream(file("model.safetensors.index.json"))
            << R"({"metadata":{"total_size":48},"weight_map":{"a":")" << kShard1 << R"(","b":")" << kShard1
            << R"(","c":")" << kShard2 << "\"" << extra << "}}";
    }
    void expect_three_tensors(const SafetensorsCheckpoint& ck) {
        EXPECT_EQ(ck.num_files(), 2u);
        EXPECT_EQ(ck.dir(), dir_);
        EXPECT_EQ(ck.tensor_names(), (std::vector<std::string>{"a", "b", "c"}));
        const char* names[3] = {"a", "b", "c"};
        for (int i = 0; i < 3; ++i) {
            const TensorInfo& t = ck.info(names[i]);
            EXPECT_EQ(Bytes(ck.data(names[i]), ck.data(names[i]) + t.nbytes()), payloads_[i]);
        }
        EXPECT_EQ(ck.info("c").dtype, DType::F8_E4M3);
        EXPECT_EQ(ck.file_of("c").path(), file(kShard2));
        EXPECT_EQ(ck.file_of("a").path(), file(kShard1));
        expect_error([&] { ck.info("nope"); }, {dir_, "'nope'"});
    }

    const std::string kShard1 = "model-00001-of-00002.safetensors";
    const std::string kShard2 = "model-00002-of-00002.safetensors";
    std::vector<Bytes> payloads_;
};

TEST_F(CheckpointTest, WithIndex) {
    write_shards();
    write_index("");
    write_safetensors(file("unlisted.safetensors"), {}, {});  // not in the index: ignored
    SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir_);
    expect_three_tensors(ck);
    SafetensorsCheckpoint moved = std::move(ck);
    EXPECT_EQ(Bytes(moved.data("a"), moved.data("a") + 8), payloads_[0]);
}

TEST_F(CheckpointTest, WithoutIndex) {
    write_shards();
    expect_three_tensors(SafetensorsCheckpoint::open(dir_));
}

TEST_F(CheckpointTest, IndexNamesMissingTensor) {
    write_shards();
    write_index(R"(,"d_missing":")" + kShard2 + "\"");
    expect_error([&] { SafetensorsCheckpoint::open(dir_); }, {"'d_missing'", kShard2});
}

TEST_F(CheckpointTest, IndexNamesMissingFileOrBadName) {
    write_shards();
    write_index(R"(,"d":"absent.safetensors")");
    expect_error([&] { SafetensorsCheckpoint::open(dir_); }, {"absent.safetensors"});
    write_index(R"(,"d":"../escape.safetensors")");
    expect_error([&] { SafetensorsCheckpoint::open(dir_); }, {"'d'", "invalid file name"});
    std::ofstream(file("model.safetensors.index.json")) << R"({"weight_map": 3})";
    expect_error([&] { SafetensorsCheckpoint::open(dir_); }, {"weight_map"});
}

TEST_F(CheckpointTest, DuplicateTensorWithoutIndex) {
    write_shards();
    uint8_t x[24] = {};
    write_safetensors(file("extra.safetensors"), {}, {{"c", DType::U8, {24}, x, 24}});
    expect_error([&] { SafetensorsCheckpoint::open(dir_); }, {"'c'", "extra.safetensors", kShard2});
}

TEST_F(CheckpointTest, EmptyOrMissingDirectory) {
    expect_error([&] { SafetensorsCheckpoint::open(dir_); }, {dir_, "no model.safetensors.index.json"});
    expect_error([&] { SafetensorsCheckpoint::open(file("nodir")); }, {"nodir", "not a directory"});
}

}  // namespace
}  // namespace ecf8
