// The shard manifest (manifest.json) read back: parsed, checked against the plan of its own layout, and
// what a run asks of it (a rank's file, memory plan and world). The writer is shard_io.cpp.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "codec/container.h"
#include "common/error.h"
#include "common/file_util.h"
#include "sharding/shard_io.h"

namespace ecf8 {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------------
// Manifest reader

WorldConfig ShardManifest::world(int rank) const {
    WorldConfig w = plan.world;
    w.rank = rank;
    w.validate();
    return w;
}

CompressedFile ShardManifest::open_rank(int rank) const {
    ECF8_CHECK(rank >= 0 && rank < world_size(),
               dir << ": rank " << rank << " is outside the shards' world of " << world_size());
    const ManifestRank& r = ranks[rank];
    const std::string path = (fs::path(dir) / r.file).string();
    ECF8_CHECK(fs::exists(path), dir << ": rank " << r.rank << " file " << r.file << " is missing");
    CompressedFile file = CompressedFile::open(path);
    for (const ManifestTensor& t : r.tensors) {
        const TensorRecord& rec = file.record(t.name);
        ECF8_CHECK(rec.xxh64 == t.xxh64 && rec.shape == t.shape && rec.dtype == t.dtype,
                   path << ": tensor " << t.name << " disagrees with the manifest (dtype, shape or checksum)");
    }
    ECF8_CHECK(file.records().size() == r.tensors.size(),
               path << ": holds " << file.records().size() << " tensors, the manifest lists " << r.tensors.size());
    return file;
}

RankMemory ShardManifest::rank_plan(const DeployConfig& deploy, int rank, WeightFormat format,
                                    std::vector<bool>* decoded) const {
    ECF8_CHECK(rank >= 0 && rank < world_size(), "rank " << rank << " of " << world_size() << " in " << dir);
    std::vector<uint64_t> bytes;
    std::vector<Tier> placed;
    for (const ManifestTensor& t : ranks[rank].tensors) {
        bytes.push_back(format == WeightFormat::Ecf8 ? t.stored_bytes : t.raw_bytes);
        placed.push_back(t.tier);
    }
    return plan_rank(plan, rank, bytes, format, deploy, nullptr, decoded, &placed);
}

std::string ShardManifest::tier_difference(const DeployConfig& deploy, int rank) const {
    ECF8_CHECK(rank >= 0 && rank < world_size(), "rank " << rank << " of " << world_size() << " in " << dir);
    const std::vector<ManifestTensor>& ts = ranks[rank].tensors;
    std::vector<uint64_t> bytes;
    for (const ManifestTensor& t : ts) bytes.push_back(t.stored_bytes);
    std::vector<Tier> planned;
    plan_rank(plan, rank, bytes, WeightFormat::Ecf8, deploy, &planned);
    size_t differ = 0, first = 0;
    for (size_t i = 0; i < ts.size(); ++i) {
        if (planned[i] == ts[i].tier) continue;
        if (differ++ == 0) first = i;
    }
    if (differ == 0) return "";
    std::ostringstream os;
    os << "tensor " << ts[first].name << " is on the " << tier_name(ts[first].tier) << " tier in the shards and on the "
       << tier_name(planned[first]) << " tier in the plan";
    if (differ > 1) os << ", and " << differ - 1 << " more tensors differ";
    return os.str();
}

void ShardManifest::check_matches(const DeployConfig& deploy) const {
    struct Field {
        const char* name;
        int yaml, shards;
    };
    const ParallelConfig& y = deploy.parallel;
    const Field fields[] = {
        {"tensor_parallel_size", y.tensor_parallel_size, parallel.tensor_parallel_size},
        {"expert_parallel_size", y.expert_parallel_size, parallel.expert_parallel_size},
        {"nodes", y.nodes, parallel.nodes},
        {"gpus_per_node", y.node_size(), parallel.node_size()},
    };
    for (const Field& f : fields) {
        ECF8_CHECK(f.yaml == f.shards, deploy.source << ": parallel." << f.name << " is " << f.yaml
                                                     << " but the shards in " << dir << " were made with " << f.shards
                                                     << " (" << (fs::path(dir) / kManifestName).string()
                                                     << "); use the YAML they were made with, or re-shard with "
                                                        "ecf8 shard --config "
                                                     << deploy.source);
    }
}

namespace {

ManifestTensor parse_tensor(const json& jt, const std::string& path, int rank) {
    ManifestTensor t;
    t.name = jt.at("name").get<std::string>();
    const std::string where = path + ": rank " + std::to_string(rank) + " tensor " + t.name;
    t.dtype = dtype_from_name(jt.at("dtype").get<std::string>());
    t.shape = jt.at("shape").get<std::vector<int64_t>>();
    t.source_shape = jt.at("source_shape").get<std::vector<int64_t>>();
    t.layer = jt.at("layer").get<int>();
    t.expert = jt.at("expert").get<int>();
    t.split_dim = jt.at("split_dim").get<int>();
    t.begin = jt.at("begin").get<int64_t>();
    t.end = jt.at("end").get<int64_t>();
    t.part = jt.at("part").get<int>();
    t.parts = jt.at("parts").get<int>();
    t.tier = parse_tier(jt.at("tier").get<std::string>());
    t.raw_bytes = jt.at("raw_bytes").get<uint64_t>();
    t.stored_bytes = jt.at("stored_bytes").get<uint64_t>();
    t.xxh64 = parse_hex64(jt, "xxh64", where);
    return t;
}

// The manifest's own fields (m.dir set): its format, layout and every rank's tensors.
void parse_manifest(const json& j, const std::string& path, ShardManifest& m) {
    try {
        ECF8_CHECK(j.value("format", "") == "ecf8-shards", path << ": 'format' is not \"ecf8-shards\"");
        ECF8_CHECK(j.value("version", 0) == kManifestVersion,
                   path << ": manifest version " << j.value("version", 0) << ", this build reads " << kManifestVersion);
        const json& p = j.at("parallel");
        m.parallel.tensor_parallel_size = p.at("tensor_parallel_size").get<int>();
        m.parallel.expert_parallel_size = p.at("expert_parallel_size").get<int>();
        m.parallel.nodes = p.at("nodes").get<int>();
        m.parallel.gpus_per_node = p.at("gpus_per_node").get<int>();
        m.granularity = j.at("codec").at("granularity").get<std::string>();
        m.source_model = j.at("source_model").get<std::string>();
        for (const json& jr : j.at("ranks")) {
            ManifestRank r;
            r.rank = jr.at("rank").get<int>();
            r.file = jr.at("file").get<std::string>();
            r.file_bytes = jr.at("file_bytes").get<uint64_t>();
            r.raw_bytes = jr.at("raw_bytes").get<uint64_t>();
            r.stored_bytes = jr.at("stored_bytes").get<uint64_t>();
            r.device_bytes = jr.at("device_bytes").get<uint64_t>();
            r.host_bytes = jr.at("host_bytes").get<uint64_t>();
            for (const json& jt : jr.at("tensors")) r.tensors.push_back(parse_tensor(jt, path, r.rank));
            m.ranks.push_back(std::move(r));
        }
    } catch (const json::exception& e) {
        ECF8_FAIL(path << ": malformed manifest: " << e.what());
    }
    try {
        world_of(m.parallel);
    } catch (const Error& e) {
        ECF8_FAIL(path << ": " << e.what());
    }
}

// The manifest must be exactly what the plan of its own layout says.
void check_against_plan(const ShardManifest& m, const std::string& path) {
    const ShardPlan& plan = m.plan;
    ECF8_CHECK(m.ranks.size() == plan.ranks.size(),
               path << ": " << m.ranks.size() << " ranks listed for a world of " << plan.ranks.size());
    for (size_t r = 0; r < plan.ranks.size(); ++r) {
        const ManifestRank& mr = m.ranks[r];
        const RankShard& pr = plan.ranks[r];
        ECF8_CHECK(mr.rank == static_cast<int>(r), path << ": entry " << r << " is rank " << mr.rank);
        ECF8_CHECK(mr.file == shard_file_name(static_cast<int>(r), static_cast<int>(plan.ranks.size())),
                   path << ": rank " << r << " file '" << mr.file << "' is not the expected name");
        ECF8_CHECK(mr.tensors.size() == pr.tensors.size(), path << ": rank " << r << " lists " << mr.tensors.size()
                                                                << " tensors, the plan has " << pr.tensors.size());
        for (size_t i = 0; i < pr.tensors.size(); ++i) {
            const ManifestTensor& mt = mr.tensors[i];
            const ShardTensor& pt = pr.tensors[i];
            ECF8_CHECK(mt.name == pt.name() && mt.dtype == pt.spec->dtype && mt.shape == pt.shape &&
                           mt.source_shape == pt.spec->shape && mt.split_dim == pt.split_dim && mt.begin == pt.begin &&
                           mt.end == pt.end && mt.raw_bytes == pt.raw_bytes(),
                       path << ": rank " << r << " tensor " << mt.name << " does not match the plan (expected "
                            << pt.name() << " part " << pt.part << "/" << pt.parts << ")");
        }
    }
}

}  // namespace

ShardManifest ShardManifest::load(const std::string& dir) {
    const std::string path = (fs::path(dir) / kManifestName).string();
    ECF8_CHECK(fs::exists(path),
               dir << ": no " << kManifestName << " (not a shard directory, or `ecf8 shard` did not complete)");
    json j;
    try {
        j = json::parse(read_file(path));
    } catch (const json::exception& e) {
        ECF8_FAIL(path << ": not valid JSON: " << e.what());
    }
    ShardManifest m;
    m.dir = dir;
    parse_manifest(j, path, m);
    m.model = ModelConfig::load((fs::path(dir) / "config.json").string());
    m.plan = plan_shards(m.model, m.parallel);
    check_against_plan(m, path);
    return m;
}

}  // namespace ecf8
