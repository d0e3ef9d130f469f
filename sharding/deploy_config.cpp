// DeployConfig: reading the deployment YAML (yaml-cpp) and validating it. Every error starts with the
// source (the YAML path), names the key path as written in the YAML ("parallel.nodes") and says what is
// allowed, so a user can fix the file without reading this code.
#include "sharding/deploy_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

#include "codec/encoder.h"
#include "common/error.h"

namespace ecf8 {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
// Upper bound of the GiB sizes in `memory`: about 1 PiB, far above any machine, and small enough that every
// byte count derived from it (times 2^30) fits in 64 bits.
constexpr double kMaxMemoryGb = 1e6;

const std::vector<std::string> kTopKeys = {"model", "output", "parallel", "memory", "codec", "kv_cache", "compute"};
const std::vector<std::string> kParallelKeys = {"tensor_parallel_size", "expert_parallel_size", "nodes",
                                                "gpus_per_node"};
const std::vector<std::string> kMemoryKeys = {"gpu_memory_gb", "gpu_memory_utilization", "cpu_offload_gb",
                                              "decoded_experts_gb", "expert_area"};
const std::vector<std::string> kCodecKeys = {"granularity", "threads"};
const std::vector<std::string> kComputeKeys = {"gemm"};
const std::vector<std::string> kKvCacheKeys = {"max_model_len", "max_num_seqs", "min_kv_tokens",
                                               "dtype",         "block_size",   "max_num_batched_tokens"};

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
    return out;
}

// "source:LINE: " for a node read from the file, "source: " when yaml-cpp has no position for it.
std::string where(const std::string& source, const YAML::Node& node) {
    const YAML::Mark mark = node.Mark();
    if (mark.is_null() || mark.line < 0) return source + ": ";
    return source + ":" + std::to_string(mark.line + 1) + ": ";
}

// How a value found in the file is shown in type errors.
std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Null:
            return "an empty value (null)";
        case YAML::NodeType::Scalar:
            // A quoted scalar has the non-specific tag "!": it is a string even when it reads like a number.
            return node.Tag() == "!" ? "the quoted string \"" + node.Scalar() + "\"" : "'" + node.Scalar() + "'";
        case YAML::NodeType::Sequence:
            return "a list of " + std::to_string(node.size()) + " item(s)";
        case YAML::NodeType::Map:
            return "a map of " + std::to_string(node.size()) + " key(s)";
        default:
            return "an undefined value";
    }
}

// Edit distance, for the "did you mean" hint on a misspelt key.
size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

std::string path_of(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : prefix + "." + key;
}

// Checks that `node` is a map whose keys are distinct scalars from `allowed`. `prefix` is the section
// ("" for the top level). A section written with no value (`codec:`) reads as null and means defaults.
void check_map(const YAML::Node& node, const std::string& prefix, const std::vector<std::string>& allowed,
               const std::string& source) {
    const std::string section = prefix.empty() ? "top-level" : "'" + prefix + "'";
    if (node.IsNull() && !prefix.empty()) return;
    ECF8_CHECK(node.IsMap(), where(source, node) << (prefix.empty() ? "the deployment config" : prefix)
                                                 << " must be a map of " << (prefix.empty() ? "sections" : "keys")
                                                 << " (" << join(allowed) << "), got " << describe(node));
    std::vector<std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
        const YAML::Node key = it->first;
        ECF8_CHECK(key.IsScalar(), where(source, key)
                                       << "the keys of the " << section << " map must be plain names, got "
                                       << describe(key) << "; allowed keys: " << join(allowed));
        const std::string name = key.Scalar();
        const std::string path = path_of(prefix, name);
        ECF8_CHECK(std::find(seen.begin(), seen.end(), name) == seen.end(), where(source, key)
                                                                                << "duplicate key '" << path << "'");
        seen.push_back(name);
        if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
        std::string hint;
        for (const auto& a : allowed) {
            if (edit_distance(name, a) <= 3) {
                hint = " (did you mean '" + path_of(prefix, a) + "'?)";
                break;
            }
        }
        ECF8_FAIL(where(source, key) << "unknown key '" << path << "'" << hint << "; allowed keys in the " << section
                                     << " map: " << join(allowed));
    }
}

// Typed readers: each leaves *out unchanged when the key is absent (the header default stays).
// yaml-cpp's as<T>() accepts quoted strings and hex for numbers, so numbers are parsed from the scalar
// text here with a strict grammar.

bool plain_scalar(const YAML::Node& v) { return v.IsScalar() && v.Tag() != "!"; }

// Finds `key` in a map checked by check_map. Errors point at the key's line: yaml-cpp gives an empty
// value (`model:`) the position of the next token.
bool find_entry(const YAML::Node& map, const std::string& key, YAML::Node* key_node, YAML::Node* value) {
    for (auto it = map.begin(); it != map.end(); ++it) {
        if (it->first.Scalar() != key) continue;
        *key_node = it->first;
        *value = it->second;
        return true;
    }
    return false;
}

void read_int64(const YAML::Node& map, const std::string& prefix, const std::string& key, const std::string& source,
                int64_t lo, int64_t hi, int64_t* out) {
    if (!map.IsMap()) return;  // null section: defaults
    YAML::Node k, v;
    if (!find_entry(map, key, &k, &v)) return;
    const std::string path = path_of(prefix, key);
    std::string text = plain_scalar(v) ? v.Scalar() : "";
    if (!text.empty() && text[0] == '+') text.erase(0, 1);
    int64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    ECF8_CHECK(!text.empty() && ec != std::errc::invalid_argument && end == text.data() + text.size(),
               where(source, k) << path << " must be an integer, got " << describe(v));
    ECF8_CHECK(ec != std::errc::result_out_of_range && value >= lo && value <= hi,
               where(source, k) << path << " must be an integer in [" << lo << ", " << hi << "], got " << describe(v));
    *out = value;
}

void read_int(const YAML::Node& map, const std::string& prefix, const std::string& key, const std::string& source,
              int* out) {
    int64_t value = *out;
    read_int64(map, prefix, key, source, std::numeric_limits<int>::min(), std::numeric_limits<int>::max(), &value);
    *out = static_cast<int>(value);
}

// `also`: what else the key takes, named in the error ("auto").
void read_double(const YAML::Node& map, const std::string& prefix, const std::string& key, const std::string& source,
                 double* out, const char* also = nullptr) {
    if (!map.IsMap()) return;
    YAML::Node k, v;
    if (!find_entry(map, key, &k, &v)) return;
    const std::string path = path_of(prefix, key);
    std::string text = plain_scalar(v) ? v.Scalar() : "";
    if (!text.empty() && text[0] == '+') text.erase(0, 1);
    double value = 0.0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    ECF8_CHECK(!text.empty() && ec == std::errc() && end == text.data() + text.size() && std::isfinite(value),
               where(source, k) << path << " must be a number" << (also ? std::string(" or ") + also : "") << ", got "
                                << describe(v));
    *out = value;
}

// memory.decoded_experts_gb: a number of GiB, or auto.
void read_decoded_experts(const YAML::Node& memory, const std::string& source, MemoryConfig* out) {
    YAML::Node k, v;
    if (memory.IsMap() && find_entry(memory, "decoded_experts_gb", &k, &v) && plain_scalar(v) && v.Scalar() == "auto") {
        out->decoded_experts_auto = true;
        out->decoded_experts_gb = 0;
        return;
    }
    read_double(memory, "memory", "decoded_experts_gb", source, &out->decoded_experts_gb, "auto");
}

void read_string(const YAML::Node& map, const std::string& prefix, const std::string& key, const std::string& source,
                 bool null_is_empty, std::string* out) {
    if (!map.IsMap()) return;
    YAML::Node k, v;
    if (!find_entry(map, key, &k, &v)) return;
    if (v.IsNull() && null_is_empty) {
        out->clear();
        return;
    }
    ECF8_CHECK(v.IsScalar(), where(source, k) << path_of(prefix, key) << " must be a string, got " << describe(v));
    *out = v.Scalar();
}

std::string divisors_of(int n) {
    std::vector<std::string> d;
    for (int i = 1; i <= n && d.size() < 16; ++i)
        if (n % i == 0) d.push_back(std::to_string(i));
    return join(d);
}

}  // namespace

double DeployConfig::gpu_budget_bytes() const { return memory.gpu_memory_gb * kGiB * memory.gpu_memory_utilization; }

double DeployConfig::host_budget_bytes() const { return memory.cpu_offload_gb * kGiB; }
double DeployConfig::decoded_experts_budget_bytes() const {
    return memory.decoded_experts_auto ? std::numeric_limits<double>::infinity() : memory.decoded_experts_gb * kGiB;
}

std::string DeployConfig::decoded_experts_text() const {
    if (memory.decoded_experts_auto) return "auto";
    std::ostringstream os;
    os << memory.decoded_experts_gb << " GiB";
    return os.str();
}

void DeployConfig::validate() const {
    const std::string& s = source;
    const ParallelConfig& p = parallel;
    ECF8_CHECK(!model.empty(), s << ": model is required: the Hugging Face checkpoint directory (it must hold "
                                    "config.json; planning needs no weights)");

    ECF8_CHECK(p.tensor_parallel_size >= 1, s << ": parallel.tensor_parallel_size must be >= 1 (it is the world "
                                                 "size, the number of ranks), got "
                                              << p.tensor_parallel_size);
    ECF8_CHECK(p.expert_parallel_size >= 1 && p.tensor_parallel_size % p.expert_parallel_size == 0,
               s << ": parallel.expert_parallel_size must divide parallel.tensor_parallel_size ("
                 << p.tensor_parallel_size << "), got " << p.expert_parallel_size
                 << "; allowed: " << divisors_of(p.tensor_parallel_size));
    ECF8_CHECK(p.nodes >= 1 && p.tensor_parallel_size % p.nodes == 0,
               s << ": parallel.nodes must divide parallel.tensor_parallel_size (" << p.tensor_parallel_size
                 << "), got " << p.nodes << "; allowed: " << divisors_of(p.tensor_parallel_size));
    ECF8_CHECK(p.gpus_per_node >= 0, s << ": parallel.gpus_per_node must be >= 0 (0 = tensor_parallel_size / "
                                          "nodes), got "
                                       << p.gpus_per_node);
    ECF8_CHECK(p.gpus_per_node == 0 || static_cast<int64_t>(p.gpus_per_node) * p.nodes == p.tensor_parallel_size,
               s << ": parallel.gpus_per_node (" << p.gpus_per_node << ") x parallel.nodes (" << p.nodes
                 << ") must equal parallel.tensor_parallel_size (" << p.tensor_parallel_size
                 << "), the world size; allowed gpus_per_node: " << p.tensor_parallel_size / p.nodes
                 << " or 0 (derived)");

    const MemoryConfig& m = memory;
    ECF8_CHECK(std::isfinite(m.gpu_memory_gb) && m.gpu_memory_gb > 0 && m.gpu_memory_gb <= kMaxMemoryGb,
               s << ": memory.gpu_memory_gb must be > 0 and at most 1e6 (GiB of one GPU), got " << m.gpu_memory_gb);
    ECF8_CHECK(m.gpu_memory_utilization > 0 && m.gpu_memory_utilization <= 1,
               s << ": memory.gpu_memory_utilization must be in (0, 1] (the fraction of gpu_memory_gb ecf8 may use), "
                    "got "
                 << m.gpu_memory_utilization);
    ECF8_CHECK(std::isfinite(m.cpu_offload_gb) && m.cpu_offload_gb >= 0 && m.cpu_offload_gb <= kMaxMemoryGb,
               s << ": memory.cpu_offload_gb must be >= 0 and at most 1e6 (GiB of pinned host memory per rank; 0 = no "
                    "offload), got "
                 << m.cpu_offload_gb);
    ECF8_CHECK(std::isfinite(m.decoded_experts_gb) && m.decoded_experts_gb >= 0 && m.decoded_experts_gb <= kMaxMemoryGb,
               s << ": memory.decoded_experts_gb must be >= 0 and at most 1e6 (GiB per rank of routed experts kept "
                    "decoded; 0 = none), got "
                 << m.decoded_experts_gb);

    // parse_granularity's own message speaks of the --granularity flag; name the YAML key instead.
    EncodeOptions options;
    bool granularity_ok = true;
    try {
        parse_granularity(codec.granularity, &options);
    } catch (const Error&) {
        granularity_ok = false;
    }
    ECF8_CHECK(granularity_ok, s << ": codec.granularity '" << codec.granularity
                                 << "' is invalid; allowed: 'tensor' (one codebook per tensor) or 'group:N' (one "
                                    "codebook per N elements, N a positive integer)");
    ECF8_CHECK(codec.threads >= 0, s << ": codec.threads must be >= 0 (0 = every core), got " << codec.threads);

    const KvCacheConfig& kv = kv_cache;
    ECF8_CHECK(kv.max_model_len >= 1,
               s << ": kv_cache.max_model_len must be >= 1 (tokens per sequence), got " << kv.max_model_len);
    ECF8_CHECK(kv.max_num_seqs >= 1,
               s << ": kv_cache.max_num_seqs must be >= 1 (sequences per batch), got " << kv.max_num_seqs);
    ECF8_CHECK(kv.min_kv_tokens >= 0,
               s << ": kv_cache.min_kv_tokens must be >= 0 (0 = max_model_len), got " << kv.min_kv_tokens);
    ECF8_CHECK(kv.dtype == "bf16" || kv.dtype == "f32",
               s << ": kv_cache.dtype must be 'bf16' or 'f32' (or 'fp32'), got '" << kv.dtype << "'");
    ECF8_CHECK(kv.block_size >= 1 && kv.block_size <= 4096,
               s << ": kv_cache.block_size must be in [1, 4096] (tokens per KV block), got " << kv.block_size);
    ECF8_CHECK(kv.max_num_batched_tokens >= kv.max_num_seqs,
               s << ": kv_cache.max_num_batched_tokens (" << kv.max_num_batched_tokens
                 << ", tokens per step) must be >= kv_cache.max_num_seqs (" << kv.max_num_seqs
                 << "): every running sequence decodes one token per step");
}

DeployConfig DeployConfig::parse(const std::string& yaml_text, const std::string& source) {
    YAML::Node root;
    try {
        root = YAML::Load(yaml_text);
    } catch (const YAML::Exception& e) {
        // e.what() repeats the position in yaml-cpp's own words; msg is the bare reason.
        if (e.mark.is_null()) ECF8_FAIL(source << ": YAML syntax error: " << e.msg);
        ECF8_FAIL(source << ":" << e.mark.line + 1 << ":" << e.mark.column + 1 << ": YAML syntax error: " << e.msg);
    }

    DeployConfig c;
    c.source = source;
    const YAML::Node& croot = root;  // const lookups never insert keys
    ECF8_CHECK(!root.IsNull() && root.IsDefined(),
               source << ": the deployment config is empty; it needs at least 'model:' (allowed top-level keys: "
                      << join(kTopKeys) << ")");
    try {
        check_map(croot, "", kTopKeys, source);
        ECF8_CHECK(croot["model"].IsDefined(), source << ": missing required key 'model' (the Hugging Face checkpoint "
                                                         "directory that holds config.json)");
        read_string(croot, "", "model", source, false, &c.model);
        read_string(croot, "", "output", source, true, &c.output);

        const YAML::Node parallel = croot["parallel"];
        if (parallel.IsDefined()) {
            check_map(parallel, "parallel", kParallelKeys, source);
            read_int(parallel, "parallel", "tensor_parallel_size", source, &c.parallel.tensor_parallel_size);
            read_int(parallel, "parallel", "expert_parallel_size", source, &c.parallel.expert_parallel_size);
            read_int(parallel, "parallel", "nodes", source, &c.parallel.nodes);
            read_int(parallel, "parallel", "gpus_per_node", source, &c.parallel.gpus_per_node);
        }
        const YAML::Node memory = croot["memory"];
        if (memory.IsDefined()) {
            check_map(memory, "memory", kMemoryKeys, source);
            read_double(memory, "memory", "gpu_memory_gb", source, &c.memory.gpu_memory_gb);
            read_double(memory, "memory", "gpu_memory_utilization", source, &c.memory.gpu_memory_utilization);
            read_double(memory, "memory", "cpu_offload_gb", source, &c.memory.cpu_offload_gb);
            read_decoded_experts(memory, source, &c.memory);
            std::string area = expert_area_name(c.memory.expert_area);
            read_string(memory, "memory", "expert_area", source, false, &area);
            c.memory.expert_area = parse_expert_area(area, source + ": memory.expert_area");
        }
        const YAML::Node codec = croot["codec"];
        if (codec.IsDefined()) {
            check_map(codec, "codec", kCodecKeys, source);
            read_string(codec, "codec", "granularity", source, false, &c.codec.granularity);
            read_int(codec, "codec", "threads", source, &c.codec.threads);
        }
        const YAML::Node kv = croot["kv_cache"];
        if (kv.IsDefined()) {
            check_map(kv, "kv_cache", kKvCacheKeys, source);
            const int64_t max = std::numeric_limits<int64_t>::max();
            const int64_t min = std::numeric_limits<int64_t>::min();
            read_int64(kv, "kv_cache", "max_model_len", source, min, max, &c.kv_cache.max_model_len);
            read_int64(kv, "kv_cache", "max_num_seqs", source, min, max, &c.kv_cache.max_num_seqs);
            read_int64(kv, "kv_cache", "min_kv_tokens", source, min, max, &c.kv_cache.min_kv_tokens);
            read_string(kv, "kv_cache", "dtype", source, false, &c.kv_cache.dtype);
            if (c.kv_cache.dtype == "fp32") c.kv_cache.dtype = "f32";
            read_int64(kv, "kv_cache", "block_size", source, min, max, &c.kv_cache.block_size);
            read_int64(kv, "kv_cache", "max_num_batched_tokens", source, min, max, &c.kv_cache.max_num_batched_tokens);
        }
        const YAML::Node compute = croot["compute"];
        if (compute.IsDefined()) {
            check_map(compute, "compute", kComputeKeys, source);
            std::string gemm = gemm_mode_name(c.compute.gemm);
            read_string(compute, "compute", "gemm", source, false, &gemm);
            c.compute.gemm = parse_gemm_mode(gemm, source + ": compute.gemm");
        }
    } catch (const YAML::Exception& e) {
        // Not expected after the checks above; keep the promise that only ecf8::Error escapes.
        ECF8_FAIL(source << ": cannot read the deployment config: " << e.what());
    }
    c.validate();
    return c;
}

GemmMode parse_gemm_mode(const std::string& name, const std::string& what) {
    if (name == "fp32") return GemmMode::Fp32;
    if (name == "fp8") return GemmMode::Fp8;
    ECF8_FAIL(what << " must be 'fp32' (dequantize, then an FP32 GEMM) or 'fp8' (cuBLASLt's block-scaled FP8 GEMM, "
                      "Hopper), got '"
                   << name << "'");
}

const char* gemm_mode_name(GemmMode m) { return m == GemmMode::Fp8 ? "fp8" : "fp32"; }

ExpertArea parse_expert_area(const std::string& text, const std::string& where) {
    if (text == "full") return ExpertArea::Full;
    if (text == "half") return ExpertArea::Half;
    if (text == "auto") return ExpertArea::Auto;
    ECF8_FAIL(where << " must be 'full' (every routed expert of a layer its own place in the decode scratch), "
                       "'half' (two places that four expert groups take in turn: less scratch, more KV) or 'auto' "
                       "(half where the KV pool limits the batch), got '"
                    << text << "'");
}

const char* expert_area_name(ExpertArea a) {
    return a == ExpertArea::Half ? "half" : a == ExpertArea::Auto ? "auto" : "full";
}

DeployConfig DeployConfig::load(const std::string& yaml_path) {
    ECF8_CHECK(!std::filesystem::is_directory(yaml_path),
               yaml_path << ": is a directory; --config expects a deployment YAML file (see configs/)");
    std::ifstream in(yaml_path, std::ios::binary);
    ECF8_CHECK(in.is_open(), yaml_path << ": cannot open the deployment config (does the file exist? paths are "
                                          "relative to the working directory)");
    std::ostringstream text;
    text << in.rdbuf();
    ECF8_CHECK(!in.bad(), yaml_path << ": error reading the deployment config");
    return parse(text.str(), yaml_path);
}

}  // namespace ecf8
