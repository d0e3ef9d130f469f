// Shard writer (streaming, bounded memory, atomic publish, the manifest) and the reassembling reader; the
// manifest is read back in shard_manifest.cpp.
#include "sharding/shard_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "codec/container.h"
#include "codec/format.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/thread_pool.h"

namespace ecf8 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------------
// Part extraction: a rank's part of a row-major tensor. Parts of dim 0 (or whole tensors) are contiguous
// and returned in place; parts of dim 1 are gathered into `scratch`.

const uint8_t* part_bytes(const ShardTensor& t, const uint8_t* src, std::vector<uint8_t>* scratch) {
    const size_t esz = dtype_size(t.spec->dtype);
    if (t.split_dim < 0) return src;
    const auto& full = t.spec->shape;
    int64_t inner = 1;  // elements per index of split_dim
    for (size_t d = t.split_dim + 1; d < full.size(); ++d) inner *= full[d];
    if (t.split_dim == 0) return src + static_cast<size_t>(t.begin * inner) * esz;
    int64_t outer = 1;
    for (int d = 0; d < t.split_dim; ++d) outer *= full[d];
    const size_t row = static_cast<size_t>(full[t.split_dim] * inner) * esz;
    const size_t piece = static_cast<size_t>((t.end - t.begin) * inner) * esz;
    scratch->resize(static_cast<size_t>(outer) * piece);
    for (int64_t r = 0; r < outer; ++r)
        std::memcpy(scratch->data() + r * piece, src + r * row + static_cast<size_t>(t.begin * inner) * esz, piece);
    return scratch->data();
}

// The inverse: writes a part's bytes into its place in the whole tensor `dst`.
void place_part(const ShardTensor& t, const uint8_t* part, uint8_t* dst) {
    const size_t esz = dtype_size(t.spec->dtype);
    if (t.split_dim < 0) {
        std::memcpy(dst, part, t.raw_bytes());
        return;
    }
    const auto& full = t.spec->shape;
    int64_t inner = 1, outer = 1;
    for (size_t d = t.split_dim + 1; d < full.size(); ++d) inner *= full[d];
    for (int d = 0; d < t.split_dim; ++d) outer *= full[d];
    const size_t row = static_cast<size_t>(full[t.split_dim] * inner) * esz;
    const size_t piece = static_cast<size_t>((t.end - t.begin) * inner) * esz;
    for (int64_t r = 0; r < outer; ++r)
        std::memcpy(dst + r * row + static_cast<size_t>(t.begin * inner) * esz, part + r * piece, piece);
}

// ---------------------------------------------------------------------------------------------------
// One rank file, written in place: [u64 header length][reserved header][blobs...]. The header space is
// reserved from an upper bound on its size; at close() the real header is written, padded with spaces
// (JSON whitespace) to the reserved length. Blob sizes are multiples of 16 and the data section starts
// 16-byte aligned, so every blob stays aligned.

class RankFileWriter {
public:
    RankFileWriter(std::string path, const RankShard& shard, size_t extra_metadata)
        : path_(std::move(path)), tmp_(path_ + ".tmp") {
        check_output_path(path_);
        size_t bound = 4096 + extra_metadata;
        for (const ShardTensor& t : shard.tensors) bound += 2 * t.name().size() + 640;
        reserved_ = align_up(8 + bound, kBlobAlign) - 8;
        fd_ = ::open(tmp_.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
        ECF8_CHECK(fd_ >= 0, "cannot create '" << tmp_ << "': " << std::strerror(errno));
        pos_ = 8 + reserved_;
    }
    ~RankFileWriter() {
        if (fd_ >= 0) ::close(fd_);
        if (!published_) ::unlink(tmp_.c_str());
    }
    RankFileWriter(const RankFileWriter&) = delete;
    RankFileWriter& operator=(const RankFileWriter&) = delete;

    void append(const std::string& name, const std::vector<uint8_t>& blob, const TensorRecord& record) {
        ECF8_CHECK(blob.size() % kBlobAlign == 0, path_ << ": blob of " << name << " is not 16-byte sized");
        write_at(blob.data(), blob.size(), pos_);
        entries_.push_back({name, pos_ - 8 - reserved_, blob.size()});
        records_[kTensorKeyPrefix + name] = tensor_record_json(record);
        pos_ += blob.size();
    }

    // Writes the header and syncs; the file stays under its tmp name until publish().
    void close(const std::map<std::string, std::string>& metadata) {
        nlohmann::ordered_json header = nlohmann::ordered_json::object();
        std::map<std::string, std::string> meta = metadata;
        meta.insert(records_.begin(), records_.end());
        meta[kContainerFormatKey] = kContainerFormatValue;
        header["__metadata__"] = meta;
        for (const Entry& e : entries_) {
            header[e.name] = {{"dtype", "U8"}, {"shape", {e.size}}, {"data_offsets", {e.offset, e.offset + e.size}}};
        }
        std::string text = header.dump();
        ECF8_CHECK(text.size() <= reserved_, path_ << ": header of " << text.size() << " bytes exceeds the "
                                                   << reserved_ << " reserved (internal bound too small)");
        text.resize(reserved_, ' ');
        uint8_t len[8];
        for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t{reserved_} >> (8 * i));
        write_at(len, 8, 0);
        write_at(text.data(), text.size(), 8);
        ECF8_CHECK(::fsync(fd_) == 0, "cannot sync '" << tmp_ << "': " << std::strerror(errno));
        ECF8_CHECK(::close(fd_) == 0, "cannot close '" << tmp_ << "': " << std::strerror(errno));
        fd_ = -1;
    }

    void publish() {
        ECF8_CHECK(std::rename(tmp_.c_str(), path_.c_str()) == 0,
                   "cannot rename '" << tmp_ << "' to '" << path_ << "': " << std::strerror(errno));
        published_ = true;
    }

    uint64_t file_bytes() const { return pos_; }

private:
    struct Entry {
        std::string name;
        uint64_t offset, size;
    };
    void write_at(const void* data, size_t n, uint64_t offset) {
        const auto* p = static_cast<const uint8_t*>(data);
        while (n > 0) {
            const ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
            ECF8_CHECK(w > 0 || (w < 0 && errno == EINTR), "cannot write '" << tmp_ << "': " << std::strerror(errno));
            if (w < 0) continue;
            p += w;
            n -= static_cast<size_t>(w);
            offset += static_cast<uint64_t>(w);
        }
    }

    std::string path_, tmp_;
    int fd_ = -1;
    size_t reserved_ = 0;
    uint64_t pos_ = 0;
    bool published_ = false;
    std::vector<Entry> entries_;
    std::map<std::string, std::string> records_;
};

// ---------------------------------------------------------------------------------------------------
// Manifest JSON

json tensor_json(const ShardTensor& t, Tier tier, uint64_t stored, uint64_t xxh) {
    return {{"name", t.name()},
            {"dtype", dtype_name(t.spec->dtype)},
            {"shape", t.shape},
            {"source_shape", t.spec->shape},
            {"role", tensor_role_name(t.spec->role)},
            {"layer", t.spec->layer},
            {"expert", t.spec->expert},
            {"split_dim", t.split_dim},
            {"begin", t.begin},
            {"end", t.end},
            {"part", t.part},
            {"parts", t.parts},
            {"tier", tier_name(tier)},
            {"raw_bytes", t.raw_bytes()},
            {"stored_bytes", stored},
            {"xxh64", hex64(xxh)}};
}

// Is `name` a tensor of an MTP layer (model.layers.N.* with N >= num_hidden_layers)?
bool is_mtp_tensor(const std::string& name, const ModelConfig& m) {
    const std::string prefix = "model.layers.";
    if (name.rfind(prefix, 0) != 0) return false;
    const size_t dot = name.find('.', prefix.size());
    if (dot == std::string::npos) return false;
    try {
        return std::stoll(name.substr(prefix.size(), dot - prefix.size())) >= m.num_hidden_layers;
    } catch (const std::exception&) {
        return false;
    }
}

// One unit of encoding work: a part of a source tensor, for one rank or (a replicated tensor) all ranks.
struct WorkItem {
    size_t tensor = 0;                            // index into plan.tensors
    std::vector<std::pair<int, size_t>> holders;  // (rank, index in ranks[rank].tensors) that get it
    uint64_t bytes = 0;                           // raw bytes of the part
    std::vector<uint8_t> blob;                    // result
    uint64_t xxh64 = 0;                           // of the part's original bytes
    uint64_t stored_xxh64 = 0;                    // of the blob
};

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Writer

namespace {

// Before anything is written: the checkpoint holds every planned tensor as the model describes it. Returns
// how many checkpoint tensors the plan does not use (warning for those that are not MTP layers).
size_t check_checkpoint(const DeployConfig& deploy, const ModelConfig& model, const ShardPlan& plan,
                        const SafetensorsCheckpoint& ckpt) {
    std::vector<std::string> missing;
    for (const TensorSpec& t : plan.tensors) {
        if (!ckpt.has(t.name)) {
            missing.push_back(t.name);
            continue;
        }
        const TensorInfo& info = ckpt.info(t.name);
        ECF8_CHECK(info.dtype == t.dtype && info.shape == t.shape,
                   ckpt.file_of(t.name).path()
                       << ": tensor " << t.name << " is " << dtype_name(info.dtype) << " " << json(info.shape).dump()
                       << " but " << model.source << " implies " << dtype_name(t.dtype) << " " << json(t.shape).dump());
    }
    if (!missing.empty()) {
        std::ostringstream os;
        for (size_t i = 0; i < missing.size() && i < 5; ++i) os << (i ? ", " : "") << missing[i];
        if (missing.size() > 5) os << ", ...";
        ECF8_FAIL(deploy.model << ": checkpoint lacks " << missing.size() << " tensor(s) that " << model.source
                               << " requires: " << os.str());
    }
    std::set<std::string> planned;
    for (const TensorSpec& t : plan.tensors) planned.insert(t.name);
    size_t skipped = 0;
    for (const std::string& n : ckpt.tensor_names()) {
        if (planned.count(n)) continue;
        ++skipped;
        if (!is_mtp_tensor(n, model))
            LOG_WARN(deploy.model << ": tensor " << n << " is not part of the model description; not sharded");
    }
    return skipped;
}

// Work items in checkpoint order: replicated tensors once for all ranks, split ones once per part.
// items_left[t]: how many items of tensor t are still to be written.
std::vector<WorkItem> make_work_items(const ShardPlan& plan, std::vector<size_t>* items_left) {
    std::vector<WorkItem> items;
    items_left->assign(plan.tensors.size(), 0);
    for (size_t ti = 0; ti < plan.tensors.size(); ++ti) {
        const auto& holders = plan.holders(plan.tensors[ti].name);
        const ShardTensor& first = plan.ranks[holders[0].first].tensors[holders[0].second];
        if (first.split_dim < 0) {
            items.push_back({ti, holders, first.raw_bytes(), {}, 0, 0});
            (*items_left)[ti] = 1;
        } else {
            for (const auto& h : holders)
                items.push_back({ti, {h}, plan.ranks[h.first].tensors[h.second].raw_bytes(), {}, 0, 0});
            (*items_left)[ti] = holders.size();
        }
    }
    return items;
}

// What the writing phase produces per rank and tensor part: its stored size and content hash.
struct RankParts {
    std::vector<std::vector<uint64_t>> stored, xxh;  // [rank][tensor]
};

// Encodes the items in waves (in parallel, then written in order, so the files are deterministic and at most
// one wave of parts and blobs is in memory) into the rank files.
void encode_and_write(const ShardPlan& plan, const SafetensorsCheckpoint& ckpt, const ShardOptions& options,
                      std::vector<std::unique_ptr<RankFileWriter>>& writers, RankParts* parts, ShardResult* result) {
    std::vector<size_t> items_left;
    std::vector<WorkItem> items = make_work_items(plan, &items_left);
    ThreadPool pool(options.threads);
    uint64_t total_source = 0;
    for (const TensorSpec& t : plan.tensors) total_source += ckpt.info(t.name).nbytes();
    ProgressBar bar("shard", total_source, "B", options.progress);
    const uint64_t wave_bytes = 512ull << 20;
    const size_t wave_items = static_cast<size_t>(16 * pool.size());  // slack for uneven item sizes
    for (size_t begin = 0; begin < items.size();) {
        size_t end = begin;
        uint64_t bytes = 0;
        while (end < items.size() &&
               (end == begin || (end - begin < wave_items && bytes + items[end].bytes <= wave_bytes)))
            bytes += items[end++].bytes;
        pool.parallel_for(end - begin, [&](size_t k) {
            WorkItem& it = items[begin + k];
            const auto [r, i] = it.holders.front();
            const ShardTensor& part = plan.ranks[r].tensors[i];
            std::vector<uint8_t> scratch;
            const uint8_t* src = part_bytes(part, ckpt.data(part.name()), &scratch);
            it.blob = encode_tensor(part.spec->dtype, src, static_cast<uint64_t>(part.numel()), options.encode);
            BlobHeader h;
            std::memcpy(&h, it.blob.data(), sizeof(h));
            it.xxh64 = h.content_xxh64;
            it.stored_xxh64 = xxh64_of(it.blob.data(), it.blob.size());
        });
        for (size_t k = begin; k < end; ++k) {
            WorkItem& it = items[k];
            const TensorSpec& spec = plan.tensors[it.tensor];
            TensorRecord rec;
            rec.name = spec.name;
            rec.ecf8 = true;
            rec.xxh64 = it.xxh64;
            rec.stored_xxh64 = it.stored_xxh64;
            for (const auto& [r, i] : it.holders) {
                const ShardTensor& part = plan.ranks[r].tensors[i];
                rec.dtype = spec.dtype;
                rec.shape = part.shape;
                writers[r]->append(spec.name, it.blob, rec);
                parts->stored[r][i] = it.blob.size();
                parts->xxh[r][i] = it.xxh64;
                result->raw_bytes += part.raw_bytes();
                result->stored_bytes += it.blob.size();
            }
            std::vector<uint8_t>().swap(it.blob);
            if (--items_left[it.tensor] == 0) {
                ckpt.release(spec.name);
                bar.advance(ckpt.info(spec.name).nbytes());
                result->source_bytes += ckpt.info(spec.name).nbytes();
                ++result->tensors;
            }
        }
        begin = end;
    }
    bar.finish();
}

// Closes the rank files and describes them, with tiers from the real compressed sizes, in the manifest.
json close_and_describe(const DeployConfig& deploy, const ShardPlan& plan, const RankParts& parts,
                        std::vector<std::unique_ptr<RankFileWriter>>& writers, const ShardResult& result) {
    const int world = plan.world.world_size;
    json ranks = json::array();
    for (int r = 0; r < world; ++r) {
        std::vector<Tier> tiers;
        const RankMemory mem = plan_rank(plan, r, parts.stored[r], WeightFormat::Ecf8, deploy, &tiers);
        if (!mem.fits) LOG_WARN("rank " << r << " does not fit the memory plan: " << mem.why_not);
        writers[r]->close(
            {{"format", "pt"}, {"ecf8.rank", std::to_string(r)}, {"ecf8.world_size", std::to_string(world)}});
        json tensors = json::array();
        uint64_t raw = 0, st = 0;
        for (size_t i = 0; i < plan.ranks[r].tensors.size(); ++i) {
            const ShardTensor& t = plan.ranks[r].tensors[i];
            tensors.push_back(tensor_json(t, tiers[i], parts.stored[r][i], parts.xxh[r][i]));
            raw += t.raw_bytes();
            st += parts.stored[r][i];
        }
        ranks.push_back({{"rank", r},
                         {"file", shard_file_name(r, world)},
                         {"file_bytes", writers[r]->file_bytes()},
                         {"raw_bytes", raw},
                         {"stored_bytes", st},
                         {"device_bytes", mem.device_weight_bytes},
                         {"host_bytes", mem.host_weight_bytes},
                         {"tensors", std::move(tensors)}});
    }
    return {{"format", "ecf8-shards"},
            {"version", kManifestVersion},
            {"source_model", deploy.model},
            {"parallel",
             {{"tensor_parallel_size", deploy.parallel.tensor_parallel_size},
              {"expert_parallel_size", deploy.parallel.expert_parallel_size},
              {"nodes", plan.world.nodes},
              {"gpus_per_node", plan.world.gpus_per_node}}},
            {"codec", {{"granularity", deploy.codec.granularity}}},
            {"totals",
             {{"tensors", result.tensors},
              {"raw_bytes", result.raw_bytes},
              {"stored_bytes", result.stored_bytes},
              {"ratio", result.raw_bytes ? double(result.stored_bytes) / double(result.raw_bytes) : 1.0}}},
            {"ranks", std::move(ranks)}};
}

// Publish: drop the old manifest first (the directory stops looking complete), rename the rank files, remove
// stale rank files of another world size, then config.json and, last, the manifest.
void publish_shards(const DeployConfig& deploy, int world, std::vector<std::unique_ptr<RankFileWriter>>& writers,
                    const json& manifest) {
    const fs::path out(deploy.output);
    fs::remove(out / kManifestName);
    fsync_dir(out.string());
    for (auto& w : writers) w->publish();
    std::set<std::string> current;
    for (int r = 0; r < world; ++r) current.insert(shard_file_name(r, world));
    for (const auto& e : fs::directory_iterator(out)) {
        const std::string n = e.path().filename().string();
        if (n.rfind("rank-", 0) == 0 && e.path().extension() == ".safetensors" && !current.count(n))
            fs::remove(e.path());
    }
    write_file_atomic((out / "config.json").string(), read_file(deploy.config_json_path()));
    write_file_atomic((out / kManifestName).string(), manifest.dump(1) + "\n");
}

}  // namespace

ShardResult shard_checkpoint(const DeployConfig& deploy, const ShardOptions& options) {
    const auto start = std::chrono::steady_clock::now();
    deploy.validate();
    options.encode.validate();
    ECF8_CHECK(!deploy.output.empty(), deploy.source << ": 'output' is empty; say where the shards go");
    const ModelConfig model = ModelConfig::load(deploy.config_json_path());
    const ShardPlan plan = plan_shards(model, deploy.parallel);
    const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(deploy.model);
    ShardResult result;
    result.skipped = check_checkpoint(deploy, model, plan, ckpt);

    const int world = plan.world.world_size;
    fs::create_directories(deploy.output);
    for (const char* name : {"config.json", kManifestName})
        check_output_path((fs::path(deploy.output) / name).string());  // published last, checked first
    std::vector<std::unique_ptr<RankFileWriter>> writers;
    RankParts parts;
    for (int r = 0; r < world; ++r) {
        writers.push_back(std::make_unique<RankFileWriter>(
            (fs::path(deploy.output) / shard_file_name(r, world)).string(), plan.ranks[r], 256));
        parts.stored.emplace_back(plan.ranks[r].tensors.size(), 0);
        parts.xxh.emplace_back(plan.ranks[r].tensors.size(), 0);
    }
    encode_and_write(plan, ckpt, options, writers, &parts, &result);
    const json manifest = close_and_describe(deploy, plan, parts, writers, result);
    publish_shards(deploy, world, writers, manifest);
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

// ---------------------------------------------------------------------------------------------------
// Reader: reassembly

namespace {

struct OpenShards {
    ShardManifest manifest;
    std::vector<CompressedFile> files;

    static OpenShards open(const std::string& dir) {
        OpenShards s;
        s.manifest = ShardManifest::load(dir);
        for (int r = 0; r < s.manifest.world_size(); ++r) s.files.push_back(s.manifest.open_rank(r));
        return s;
    }

    // Reassembles a source tensor into out (its raw bytes). With check_replicas, every rank's copy of a
    // whole tensor is decoded and compared; problems are appended.
    void reassemble(const TensorSpec& spec, uint8_t* out, bool check_replicas, ThreadPool* pool,
                    std::vector<std::string>* problems) const {
        std::vector<uint8_t> part;
        bool first = true;
        for (const auto& [r, i] : manifest.plan.holders(spec.name)) {
            const ShardTensor& t = manifest.plan.ranks[r].tensors[i];
            const TensorRecord& rec = files[r].record(spec.name);
            if (t.split_dim < 0 && !first) {
                if (!check_replicas) continue;
                part.resize(t.raw_bytes());
                files[r].decode(rec, part.data(), pool);
                files[r].file().release(files[r].file().get(spec.name));
                if (std::memcmp(part.data(), out, part.size()) != 0)
                    problems->push_back(spec.name + ": rank " + std::to_string(r) + "'s replica differs from rank " +
                                        std::to_string(manifest.plan.holders(spec.name).front().first) + "'s");
                continue;
            }
            part.resize(t.raw_bytes());
            files[r].decode(rec, part.data(), pool);
            files[r].file().release(files[r].file().get(spec.name));  // keep the reader's RSS bounded
            place_part(t, part.data(), out);
            first = false;
        }
    }
};

}  // namespace

std::vector<std::string> verify_shards(const std::string& shard_dir, const std::string& model_dir, int threads,
                                       bool progress) {
    const OpenShards shards = OpenShards::open(shard_dir);
    const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(model_dir);
    ThreadPool pool(threads);
    uint64_t total = 0;
    for (const TensorSpec& t : shards.manifest.plan.tensors) total += t.nbytes();
    ProgressBar bar("verify", total, "B", progress);
    std::vector<std::string> problems;
    std::vector<uint8_t> whole;
    for (const TensorSpec& t : shards.manifest.plan.tensors) {
        const uint64_t bytes = t.nbytes();
        if (!ckpt.has(t.name)) {
            problems.push_back(t.name + ": not in the checkpoint " + model_dir);
            continue;
        }
        const TensorInfo& info = ckpt.info(t.name);
        if (info.nbytes() != bytes || info.dtype != t.dtype) {
            problems.push_back(t.name + ": the checkpoint holds " + dtype_name(info.dtype) + " of " +
                               std::to_string(info.nbytes()) + " bytes, the shards " + std::to_string(bytes));
            continue;
        }
        whole.assign(bytes, 0);
        try {
            shards.reassemble(t, whole.data(), /*check_replicas=*/true, &pool, &problems);
        } catch (const Error& e) {
            problems.push_back(t.name + ": " + e.what());
            continue;
        }
        if (std::memcmp(whole.data(), ckpt.data(t.name), bytes) != 0)
            problems.push_back(t.name + ": reassembled bytes differ from the checkpoint");
        ckpt.release(t.name);
        bar.advance(bytes);
    }
    bar.finish();
    return problems;
}

void unshard(const std::string& shard_dir, const std::string& out_dir, int threads, bool progress) {
    const OpenShards shards = OpenShards::open(shard_dir);
    const std::string config_out = (fs::path(out_dir) / "config.json").string();
    check_output_path(config_out);  // now, not after the reassembly
    fs::create_directories(out_dir);
    ThreadPool pool(threads);
    SafetensorsWriter writer((fs::path(out_dir) / "model.safetensors").string());
    writer.set_metadata({{"format", "pt"}});
    uint64_t total = 0;
    for (const TensorSpec& t : shards.manifest.plan.tensors) {
        const uint64_t bytes = t.nbytes();
        writer.add_tensor(t.name, t.dtype, t.shape, bytes);
        total += bytes;
    }
    writer.write_header();
    ProgressBar bar("unshard", total, "B", progress);
    std::vector<uint8_t> whole;
    for (const TensorSpec& t : shards.manifest.plan.tensors) {
        whole.assign(t.nbytes(), 0);
        shards.reassemble(t, whole.data(), /*check_replicas=*/false, &pool, nullptr);
        writer.write_data(t.name, whole.data(), whole.size());
        bar.advance(whole.size());
    }
    writer.finish();
    bar.finish();
    write_file_atomic(config_out, read_file((fs::path(shard_dir) / "config.json").string()));
}

}  // namespace ecf8
