// Corrupt and truncated compressed containers: every problem is an ecf8::Error or a verify report naming the
// tensor or the file, and no output file is left behind.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "codec/container.h"
#include "codec/decoder.h"
#include "codec/encoder.h"
#include "codec/format.h"
#include "codec/safetensors.h"
#include "codec_test_util.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "corruption_util.h"

namespace ecf8 {
namespace {

namespace fs = std::filesystem;
using test::Bytes;
using test::contains;
using test::expect_error;
using test::Shape;

// ---------------------------------------------------------------------------------------------------------------
// Container level

Bytes read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_all(const std::string& path, const Bytes& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

struct OrigTensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    Bytes data;
};

class ContainerCorruption : public testing::Test {
protected:
    void SetUp() override {
        std::string templ = testing::TempDir() + "ecf8_corruption_XXXXXX";
        ASSERT_NE(mkdtemp(templ.data()), nullptr);
        dir_ = templ;
        const uint64_t seed = test::test_seed();
        tensors_ = {
            {"layers.0.w", DType::F8_E4M3, {64, 100}, test::make_values(Shape::Gaussian, 6400, 1, seed)},
            {"layers.0.v", DType::BF16, {40, 50}, test::make_values(Shape::Gaussian, 2000, 2, seed + 1)},
            {"norm", DType::F32, {16}, test::make_values(Shape::Uniform, 16, 4, seed + 2)},
        };
        original_ = file("model.safetensors");
        compressed_ = file("model.ecf8.safetensors");
        write_original(original_, tensors_);
        CompressOptions opt;
        opt.encode.lane_elems = 64;  // several chunks per tensor
        opt.threads = 2;
        opt.progress = false;
        compress_file(original_, compressed_, opt);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string file(const std::string& name) const { return (fs::path(dir_) / name).string(); }

    static void write_original(const std::string& path, const std::vector<OrigTensor>& tensors) {
        std::vector<TensorView> views;
        for (const auto& t : tensors) views.push_back({t.name, t.dtype, t.shape, t.data.data(), t.data.size()});
        write_safetensors(path, {{"format", "pt"}}, views);
    }

    // Copies the compressed file to `name` with its metadata changed by `edit` (tensor bytes unchanged).
    std::string with_metadata(const std::string& name,
                              const std::function<void(std::map<std::string, std::string>&)>& edit) {
        SafetensorsFile src = SafetensorsFile::open(compressed_);
        std::map<std::string, std::string> meta = src.metadata();
        edit(meta);
        std::vector<TensorView> views;
        for (const TensorInfo& t : src.tensors())
            views.push_back({t.name, t.dtype, t.shape, src.tensor_data(t), t.nbytes()});
        const std::string path = file(name);
        write_safetensors(path, meta, views);
        return path;
    }

    // Changes one field of a tensor's ECF8 record.
    std::string with_record_field(const std::string& name, const std::string& tensor, const std::string& key,
                                  const nlohmann::json& value) {
        return with_metadata(name, [&](std::map<std::string, std::string>& meta) {
            nlohmann::json j = nlohmann::json::parse(meta.at(kTensorKeyPrefix + tensor));
            j[key] = value;
            meta[kTensorKeyPrefix + tensor] = j.dump();
        });
    }

    // Opens `path` and decodes every tensor, like a loader does.
    static void open_and_decode_all(const std::string& path) {
        CompressedFile cf = CompressedFile::open(path);
        for (const TensorRecord& r : cf.records()) {
            Bytes out(r.raw_bytes());
            cf.decode(r, out.data(), nullptr);
        }
    }

    std::string dir_, original_, compressed_;
    std::vector<OrigTensor> tensors_;
};

TEST_F(ContainerCorruption, ValidFileVerifies) {
    EXPECT_TRUE(verify_files(original_, compressed_, 2).empty());
    CompressedFile cf = CompressedFile::open(compressed_);
    ASSERT_EQ(cf.records().size(), tensors_.size());
    for (const OrigTensor& t : tensors_) {
        const TensorRecord& r = cf.record(t.name);
        EXPECT_EQ(r.ecf8, dtype_is_codable(t.dtype)) << t.name;
        Bytes out(r.raw_bytes());
        cf.decode(r, out.data(), nullptr);
        EXPECT_EQ(out, t.data) << t.name;
    }
}

// A flipped byte anywhere in a blob (header, codebooks, offsets, stream, raw part) fails the stored checksum:
// decode and verify name the tensor; the other tensors are unaffected; decompress fails without output.
TEST_F(ContainerCorruption, FlippedBlobByteIsReported) {
    const Bytes good = read_all(compressed_);
    SafetensorsFile sf = SafetensorsFile::open(compressed_);
    for (const std::string name : {"layers.0.w", "layers.0.v"}) {
        const TensorInfo& info = sf.get(name);
        for (uint64_t at : {uint64_t{0}, uint64_t{70}, info.nbytes() / 2, info.nbytes() - 20}) {
            SCOPED_TRACE(name + " blob byte " + std::to_string(at));
            Bytes bad = good;
            bad[sf.data_offset() + info.begin + at] ^= 0x10;
            const std::string path = file("flipped.safetensors");
            write_all(path, bad);
            CompressedFile cf = CompressedFile::open(path);
            Bytes out(cf.record(name).raw_bytes());
            expect_error([&] { cf.decode(cf.record(name), out.data(), nullptr); }, {path, "'" + name + "'", "corrupt"});
            for (const OrigTensor& t : tensors_) {
                if (t.name == name) continue;
                Bytes other(cf.record(t.name).raw_bytes());
                cf.decode(cf.record(t.name), other.data(), nullptr);
                EXPECT_EQ(other, t.data);
            }
            std::vector<std::string> problems = verify_files(original_, path, 2);
            ASSERT_EQ(problems.size(), 1u);
            EXPECT_TRUE(contains(problems[0], "'" + name + "'") && contains(problems[0], "corrupt")) << problems[0];
            const std::string out_path = file("decompressed.safetensors");
            expect_error([&] { decompress_file(path, out_path, 1, false); }, {"'" + name + "'"});
            EXPECT_FALSE(fs::exists(out_path));
        }
    }
}

TEST_F(ContainerCorruption, FlippedRawTensorByteIsReported) {
    Bytes bad = read_all(compressed_);
    SafetensorsFile sf = SafetensorsFile::open(compressed_);
    const TensorInfo& info = sf.get("norm");
    bad[sf.data_offset() + info.begin + 5] ^= 0x01;
    const std::string path = file("flipped.safetensors");
    write_all(path, bad);
    CompressedFile cf = CompressedFile::open(path);
    Bytes out(cf.record("norm").raw_bytes());
    expect_error([&] { cf.decode(cf.record("norm"), out.data(), nullptr); }, {path, "'norm'", "checksum"});
    std::vector<std::string> problems = verify_files(original_, path, 1);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_TRUE(contains(problems[0], "'norm'")) << problems[0];
}

// Truncation anywhere (inside the length field, the header JSON or the data) is caught on open, naming the file.
TEST_F(ContainerCorruption, TruncatedFileIsRejected) {
    const Bytes good = read_all(compressed_);
    SafetensorsFile sf = SafetensorsFile::open(compressed_);
    const uint64_t data = sf.data_offset(), size = good.size();
    std::vector<uint64_t> lengths = {
        0,         1,       7, 8, 9, 20, data / 2, data - 2, data - 1, data, data + 1, data + 100, (data + size) / 2,
        size - 16, size - 1};
    std::mt19937_64 rng(test::test_seed() ^ 0x7EA);
    for (int i = 0; i < 20; ++i) lengths.push_back(rng() % size);
    for (uint64_t len : lengths) {
        SCOPED_TRACE("truncated to " + std::to_string(len) + " of " + std::to_string(size));
        const std::string path = file("truncated.safetensors");
        write_all(path, Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len)));
        expect_error([&] { SafetensorsFile::open(path); }, {path});
        expect_error([&] { CompressedFile::open(path); }, {path});
        expect_error([&] { (void)verify_files(original_, path, 1); }, {path});
    }
}

TEST_F(ContainerCorruption, BadRecordFieldsNameTheTensor) {
    const std::string w = "layers.0.w", q = "'" + w + "'";
    // Caught when the file is opened.
    expect_error([&] { CompressedFile::open(with_record_field("a", w, "dtype", "F8_E9M9")); }, {q, "dtype"});
    expect_error([&] { CompressedFile::open(with_record_field("b", w, "dtype", 7)); }, {q, "dtype"});
    expect_error([&] { CompressedFile::open(with_record_field("c", w, "xxh64", "zzzzzzzzzzzzzzzz")); }, {q, "hex"});
    expect_error([&] { CompressedFile::open(with_record_field("d", w, "xxh64", "0123")); }, {q, "xxh64"});
    expect_error([&] { CompressedFile::open(with_record_field("e", w, "stored_xxh64", "0123456789ABCDEF")); },
                 {q, "stored_xxh64"});
    expect_error([&] { CompressedFile::open(with_record_field("f", w, "encoding", "zstd")); }, {q, "encoding"});
    expect_error([&] { CompressedFile::open(with_record_field("g", w, "shape", "64x100")); }, {q, "shape"});
    expect_error(
        [&] {
            CompressedFile::open(with_record_field("h", w, "shape", nlohmann::json::array({64, -1})));
        },
        {q, "shape"});
    expect_error([&] { CompressedFile::open(with_record_field("i", "norm", "dtype", "F16")); },
                 {"'norm'", "does not match"});
    expect_error([&] { CompressedFile::open(with_record_field("j", "norm", "encoding", "ecf8")); },
                 {"'norm'", "not a 1-D U8 blob"});
    expect_error(
        [&] {
            CompressedFile::open(with_metadata(
                "k", [&](std::map<std::string, std::string>& m) { m[kTensorKeyPrefix + w] = "{not json"; }));
        },
        {q, "JSON"});
    // A record that disagrees with its blob's header is caught at open, before any buffer is sized from it.
    expect_error([&] { CompressedFile::open(with_record_field("l", w, "dtype", "BF16")); }, {q, "disagrees"});
    expect_error(
        [&] {
            CompressedFile::open(with_record_field("m", w, "shape", nlohmann::json::array({64, 99})));
        },
        {q, "disagrees"});
    expect_error([&] { CompressedFile::open(with_record_field("p", "layers.0.v", "dtype", "F16")); },
                 {"'layers.0.v'", "disagrees"});
    // Caught when the tensor is decoded: its checksums are wrong.
    const std::vector<std::pair<std::string, std::vector<std::string>>> at_decode = {
        {with_record_field("n", w, "stored_xxh64", "0123456789abcdef"), {q, "corrupt"}},
        {with_record_field("o", w, "xxh64", "0123456789abcdef"), {q, "checksum"}},
    };
    for (const auto& item : at_decode) {
        const std::string& path = item.first;
        const std::vector<std::string>& needles = item.second;
        SCOPED_TRACE(path);
        EXPECT_NO_THROW(CompressedFile::open(path));
        expect_error([&] { open_and_decode_all(path); }, needles);
        std::vector<std::string> problems = verify_files(original_, path, 1);
        ASSERT_FALSE(problems.empty());
        EXPECT_TRUE(contains(problems[0], needles[0])) << problems[0];
    }
}

TEST_F(ContainerCorruption, MissingOrExtraRecordsAreRejected) {
    const std::string missing =
        with_metadata("missing", [](auto& m) { m.erase(std::string(kTensorKeyPrefix) + "layers.0.v"); });
    expect_error([&] { CompressedFile::open(missing); }, {missing, "'layers.0.v'", "no ECF8 record"});
    const std::string extra =
        with_metadata("extra", [](auto& m) { m[std::string(kTensorKeyPrefix) + "ghost"] = m.begin()->second; });
    expect_error([&] { CompressedFile::open(extra); }, {extra, "ECF8 records"});
    const std::string no_format = with_metadata("no_format", [](auto& m) { m.erase(kContainerFormatKey); });
    expect_error([&] { CompressedFile::open(no_format); }, {no_format, kContainerFormatKey});
    const std::string version = with_metadata("version", [](auto& m) { m[kContainerFormatKey] = "2"; });
    expect_error([&] { CompressedFile::open(version); }, {version, "version"});
    // The uncompressed original is not a container.
    expect_error([&] { CompressedFile::open(original_); }, {original_, "not an ECF8 file"});
}

// verify_files against an original that differs names the tensor that differs and how.
TEST_F(ContainerCorruption, VerifyAgainstDifferentOriginal) {
    {
        std::vector<OrigTensor> other = tensors_;
        other[1].data[1234] ^= 0x40;  // one byte of layers.0.v
        const std::string path = file("other_bytes.safetensors");
        write_original(path, other);
        std::vector<std::string> problems = verify_files(path, compressed_, 2);
        ASSERT_EQ(problems.size(), 1u);
        EXPECT_TRUE(contains(problems[0], "'layers.0.v'") && contains(problems[0], "1234")) << problems[0];
    }
    {
        std::vector<OrigTensor> other = tensors_;
        other[0].shape = {100, 64};
        const std::string path = file("other_shape.safetensors");
        write_original(path, other);
        std::vector<std::string> problems = verify_files(path, compressed_, 2);
        ASSERT_EQ(problems.size(), 1u);
        EXPECT_TRUE(contains(problems[0], "'layers.0.w'") && contains(problems[0], "shape")) << problems[0];
    }
    {
        std::vector<OrigTensor> other = tensors_;
        other.push_back({"extra.bias", DType::BF16, {8}, Bytes(16, 1)});
        const std::string path = file("other_extra.safetensors");
        write_original(path, other);
        std::vector<std::string> problems = verify_files(path, compressed_, 2);
        ASSERT_EQ(problems.size(), 2u);
        EXPECT_TRUE(contains(problems[0], "'extra.bias'") && contains(problems[0], "missing")) << problems[0];
        EXPECT_TRUE(contains(problems[1], "3 tensors")) << problems[1];
    }
}

}  // namespace
}  // namespace ecf8
