// synth -> shard -> reassemble is bit-exact for tp 1, 2, 4, 8 with and without expert parallelism; the
// manifest matches the plan; bad input (missing tensors, truncated files, impossible layouts, corrupt
// shards, a tampered manifest) fails with a clear error and leaves nothing that looks complete; a YAML that
// contradicts the manifest and an output path that is not a regular file are refused.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "codec/container.h"
#include "codec/safetensors.h"
#include "common/error.h"
#include "common/file_util.h"
#include "sharding/shard_io.h"
#include "sharding/synth_checkpoint.h"
#include "tests/test_util.h"
#include "tests/tiny_model.h"

namespace ecf8 {
namespace {

using test::error_of;

namespace fs = std::filesystem;

std::vector<uint8_t> file_bytes(const fs::path& p) {
    const std::string s = read_file(p.string());
    return {s.begin(), s.end()};
}

class ShardRoundTrip : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        root_ = fs::temp_directory_path() / ("ecf8_shard_test_" + std::to_string(::getpid()));
        fs::remove_all(root_);
        test::write_tiny_model((root_ / "model").string(), 7);
    }
    static void TearDownTestSuite() { fs::remove_all(root_); }

    static DeployConfig deploy(int tp, int ep, const std::string& out) {
        DeployConfig d;
        d.source = "test";
        d.model = (root_ / "model").string();
        d.output = (root_ / out).string();
        d.parallel.tensor_parallel_size = tp;
        d.parallel.expert_parallel_size = ep;
        d.parallel.nodes = 1;
        d.parallel.gpus_per_node = tp;
        d.memory.gpu_memory_gb = 1;
        return d;
    }

    static fs::path root_;
};

fs::path ShardRoundTrip::root_;

TEST_F(ShardRoundTrip, BitExactForEveryLayout) {
    const SafetensorsCheckpoint source = SafetensorsCheckpoint::open((root_ / "model").string());
    for (auto [tp, ep] :
         std::vector<std::pair<int, int>>{{1, 1}, {2, 1}, {2, 2}, {4, 1}, {4, 2}, {4, 4}, {8, 1}, {8, 8}}) {
        const std::string name = "shards_tp" + std::to_string(tp) + "_ep" + std::to_string(ep);
        SCOPED_TRACE(name);
        const DeployConfig d = deploy(tp, ep, name);
        const ShardResult r = shard_checkpoint(d, test::quiet_shard_options());
        EXPECT_EQ(r.tensors, source.tensor_names().size());
        EXPECT_LT(r.stored_bytes, r.raw_bytes);

        // The manifest describes the layout and each rank file is an ECF8 container of its parts.
        const ShardManifest m = ShardManifest::load(d.output);
        ASSERT_EQ(m.world_size(), tp);
        EXPECT_EQ(m.parallel.expert_parallel_size, ep);
        for (const ManifestRank& mr : m.ranks) {
            const CompressedFile f = CompressedFile::open((fs::path(d.output) / mr.file).string());
            EXPECT_EQ(f.records().size(), mr.tensors.size());
            EXPECT_EQ(fs::file_size(fs::path(d.output) / mr.file), mr.file_bytes);
        }

        // Reassembled by unshard: every tensor byte-identical to the source.
        const fs::path back = root_ / (name + "_back");
        unshard(d.output, back.string(), 2, false);
        const SafetensorsFile out = SafetensorsFile::open((back / "model.safetensors").string());
        ASSERT_EQ(out.tensors().size(), source.tensor_names().size());
        for (const std::string& t : source.tensor_names()) {
            const TensorInfo& a = source.info(t);
            const TensorInfo& b = out.get(t);
            ASSERT_EQ(a.dtype, b.dtype) << t;
            ASSERT_EQ(a.shape, b.shape) << t;
            const std::vector<uint8_t> want(source.data(t), source.data(t) + a.nbytes());
            const std::vector<uint8_t> got(out.tensor_data(b), out.tensor_data(b) + b.nbytes());
            EXPECT_EQ(want, got) << t;
        }
        EXPECT_EQ(read_file((back / "config.json").string()), read_file((root_ / "model" / "config.json").string()));
        // And by verify_shards, which also compares replicas across ranks.
        EXPECT_EQ(verify_shards(d.output, d.model, 2, false), std::vector<std::string>{});
        fs::remove_all(back);
    }
}

TEST_F(ShardRoundTrip, OutputIsDeterministicAndReshardingReplacesStaleFiles) {
    const DeployConfig d4 = deploy(4, 4, "det");
    shard_checkpoint(d4, test::quiet_shard_options());
    const auto first = file_bytes(fs::path(d4.output) / "rank-00002-of-00004.safetensors");
    ShardOptions one_thread = test::quiet_shard_options();
    one_thread.threads = 1;
    shard_checkpoint(d4, one_thread);
    EXPECT_EQ(file_bytes(fs::path(d4.output) / "rank-00002-of-00004.safetensors"), first);

    // Re-sharding the same directory for 2 ranks removes the 4-rank files.
    const DeployConfig d2 = deploy(2, 2, "det");
    shard_checkpoint(d2, test::quiet_shard_options());
    EXPECT_FALSE(fs::exists(fs::path(d2.output) / "rank-00002-of-00004.safetensors"));
    EXPECT_TRUE(fs::exists(fs::path(d2.output) / "rank-00001-of-00002.safetensors"));
    EXPECT_EQ(ShardManifest::load(d2.output).world_size(), 2);
    for (const auto& e : fs::directory_iterator(d2.output)) EXPECT_NE(e.path().extension(), ".tmp") << e.path();
}

TEST_F(ShardRoundTrip, ImpossibleLayoutFailsBeforeWriting) {
    DeployConfig d = deploy(3, 1, "tp3");
    const std::string e = error_of([&] { shard_checkpoint(d, test::quiet_shard_options()); });
    EXPECT_NE(e.find("tensor_parallel_size=3"), std::string::npos) << e;
    EXPECT_FALSE(fs::exists(d.output));
}

TEST_F(ShardRoundTrip, CheckpointMissingTensorsIsNamed) {
    // A config.json that asks for one more layer than the checkpoint holds.
    const fs::path model2 = root_ / "model_more_layers";
    fs::create_directories(model2);
    for (const auto& e : fs::directory_iterator(root_ / "model")) fs::copy(e.path(), model2 / e.path().filename());
    nlohmann::json cfg = nlohmann::json::parse(read_file((model2 / "config.json").string()));
    cfg["num_hidden_layers"] = cfg["num_hidden_layers"].get<int>() + 1;
    write_file_atomic((model2 / "config.json").string(), cfg.dump());
    DeployConfig d = deploy(2, 2, "missing");
    d.model = model2.string();
    const std::string e = error_of([&] { shard_checkpoint(d, test::quiet_shard_options()); });
    EXPECT_NE(e.find("checkpoint lacks"), std::string::npos) << e;
    EXPECT_NE(e.find("model.layers.3."), std::string::npos) << e;
    EXPECT_FALSE(fs::exists(fs::path(d.output) / kManifestName));
}

TEST_F(ShardRoundTrip, TruncatedCheckpointFileIsNamedAndOldShardsSurvive) {
    const DeployConfig good = deploy(2, 2, "survive");
    shard_checkpoint(good, test::quiet_shard_options());
    const auto before = file_bytes(fs::path(good.output) / "rank-00000-of-00002.safetensors");

    const fs::path model2 = root_ / "model_truncated";
    fs::create_directories(model2);
    fs::path victim;
    for (const auto& e : fs::directory_iterator(root_ / "model")) {
        fs::copy(e.path(), model2 / e.path().filename());
        if (e.path().extension() == ".safetensors") victim = model2 / e.path().filename();
    }
    fs::resize_file(victim, fs::file_size(victim) - 1000);
    DeployConfig d = good;
    d.model = model2.string();
    const std::string e = error_of([&] { shard_checkpoint(d, test::quiet_shard_options()); });
    EXPECT_NE(e.find(victim.filename().string()), std::string::npos) << e;
    // The earlier, complete shards are untouched and still verify.
    EXPECT_EQ(file_bytes(fs::path(good.output) / "rank-00000-of-00002.safetensors"), before);
    EXPECT_EQ(verify_shards(good.output, good.model, 2, false), std::vector<std::string>{});
    for (const auto& entry : fs::directory_iterator(good.output))
        EXPECT_NE(entry.path().extension(), ".tmp") << entry.path();
}

TEST_F(ShardRoundTrip, CorruptShardAndTamperedManifestAreCaught) {
    const DeployConfig d = deploy(2, 1, "corrupt");
    shard_checkpoint(d, test::quiet_shard_options());
    // Flip one byte in the middle of rank 1's data.
    const fs::path rank1 = fs::path(d.output) / "rank-00001-of-00002.safetensors";
    {
        std::fstream f(rank1, std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(static_cast<std::streamoff>(fs::file_size(rank1) / 2));
        char c = 0;
        f.read(&c, 1);
        c = static_cast<char>(c ^ 0x5a);
        f.seekp(static_cast<std::streamoff>(fs::file_size(rank1) / 2));
        f.write(&c, 1);
    }
    const std::vector<std::string> problems = verify_shards(d.output, d.model, 2, false);
    ASSERT_FALSE(problems.empty());
    EXPECT_NE(problems[0].find("checksum"), std::string::npos) << problems[0];

    // A manifest that claims another world size no longer matches its rank list.
    nlohmann::json m = nlohmann::json::parse(read_file((fs::path(d.output) / kManifestName).string()));
    m["parallel"]["tensor_parallel_size"] = 4;
    m["parallel"]["gpus_per_node"] = 4;
    write_file_atomic((fs::path(d.output) / kManifestName).string(), m.dump());
    const std::string e = error_of([&] { ShardManifest::load(d.output); });
    EXPECT_NE(e.find("manifest.json"), std::string::npos) << e;
    EXPECT_NE(e.find("2 ranks listed for a world of 4"), std::string::npos) << e;

    // A missing rank file is named.
    shard_checkpoint(d, test::quiet_shard_options());
    fs::remove(rank1);
    const std::string e2 = error_of([&] { verify_shards(d.output, d.model, 2, false); });
    EXPECT_NE(e2.find("rank-00001-of-00002.safetensors"), std::string::npos) << e2;
}

// `ecf8 run` and `ecf8 verify-shards` take the layout from the manifest; a YAML whose parallel section says
// otherwise is an error naming the field and both values.
TEST_F(ShardRoundTrip, DeployThatContradictsTheManifestIsNamed) {
    const DeployConfig d = deploy(2, 2, "layout");
    shard_checkpoint(d, test::quiet_shard_options());
    const ShardManifest m = ShardManifest::load(d.output);
    EXPECT_EQ(error_of([&] { m.check_matches(d); }), "");
    DeployConfig derived = d;  // gpus_per_node 0 means tensor_parallel_size / nodes: the same layout
    derived.parallel.gpus_per_node = 0;
    EXPECT_EQ(error_of([&] { m.check_matches(derived); }), "");

    DeployConfig two_nodes = d;
    two_nodes.parallel.nodes = 2;
    two_nodes.parallel.gpus_per_node = 1;
    struct Case {
        DeployConfig deploy;
        std::string expect;  // the field with the YAML's value, then the manifest's
    };
    const std::vector<Case> cases = {
        {deploy(4, 2, "layout"),
         "test: parallel.tensor_parallel_size is 4 but the shards in " + d.output + " were made with 2"},
        {deploy(2, 1, "layout"),
         "test: parallel.expert_parallel_size is 1 but the shards in " + d.output + " were made with 2"},
        {two_nodes, "test: parallel.nodes is 2 but the shards in " + d.output + " were made with 1"},
    };
    for (const Case& c : cases) {
        const std::string e = error_of([&] { m.check_matches(c.deploy); });
        EXPECT_NE(e.find(c.expect), std::string::npos) << e;
        EXPECT_NE(e.find(kManifestName), std::string::npos) << e;
    }
}

// Writers publish with tmp + rename, which would replace a directory entry that is not a regular file
// (a FIFO, a device node such as /dev/null). Such a path is refused before any work, naming it.
TEST_F(ShardRoundTrip, OutputPathThatIsNotARegularFileIsRefused) {
    const DeployConfig d = deploy(2, 2, "unshard_src");
    shard_checkpoint(d, test::quiet_shard_options());
    const fs::path out = root_ / "unshard_out";
    const fs::path model = out / "model.safetensors", config = out / "config.json";
    fs::create_directories(model);
    std::string e = error_of([&] { unshard(d.output, out.string(), 2, false); });
    EXPECT_NE(e.find("'" + model.string() + "' exists and is a directory, not a regular file"), std::string::npos) << e;

    fs::remove(model);
    ASSERT_EQ(::mkfifo(config.c_str(), 0644), 0);
    e = error_of([&] { unshard(d.output, out.string(), 2, false); });
    EXPECT_NE(e.find("'" + config.string() + "' exists and is a FIFO"), std::string::npos) << e;
    EXPECT_FALSE(fs::exists(model));  // refused before the reassembly started
    e = error_of([&] { write_file_atomic(config.string(), "{}"); });
    EXPECT_NE(e.find("is a FIFO, not a regular file"), std::string::npos) << e;
    fs::path source;
    for (const auto& entry : fs::directory_iterator(root_ / "model"))
        if (entry.path().extension() == ".safetensors") source = entry.path();
    CompressOptions quiet;
    quiet.progress = false;
    e = error_of([&] { compress_file(source.string(), config.string(), quiet); });
    EXPECT_NE(e.find("is a FIFO, not a regular file"), std::string::npos) << e;
    e = error_of([&] {
        decompress_file((fs::path(d.output) / "rank-00000-of-00002.safetensors").string(), config.string(), 2, false);
    });
    EXPECT_NE(e.find("is a FIFO, not a regular file"), std::string::npos) << e;
    EXPECT_TRUE(fs::is_fifo(config));

    // A missing path, or a regular file to replace, is fine.
    fs::remove(config);
    unshard(d.output, out.string(), 2, false);
    unshard(d.output, out.string(), 2, false);
    EXPECT_TRUE(fs::is_regular_file(model));
    EXPECT_TRUE(fs::is_regular_file(config));
}

}  // namespace
}  // namespace ecf8
