// Synthetic DeepSeek-V3 checkpoints: presets, YAML overrides and the streaming writer. See synth_checkpoint.h.
//
// Every tensor is cut into slabs (128-row FP8 block rows, or about 256K elements for BF16), each drawn from
// its own stream seeded by (seed, tensor name, slab), so the bytes do not depend on the order of work or the
// thread count. Slabs of a batch of consecutive tensors are drawn in parallel; a writer thread streams the
// previous batch into its safetensors file meanwhile, so memory stays at about two batches.
#include "sharding/synth_checkpoint.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "codec/safetensors.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/float_formats.h"
#include "common/progress.h"
#include "common/thread_pool.h"
#include "sharding/model_tensors.h"

namespace ecf8 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kPresetNames = "tiny, small";
constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kConfigName = "config.json";

// Spread of the per-row scale factors exp(sigma g - sigma^2) of 2-D weights (g standard normal): rows, and
// so the 128x128 blocks, differ in scale as in real checkpoints, while E[factor^2] = 1 keeps weight_std.
constexpr double kRowSigma = 0.25;
constexpr double kNormStd = 0.05;        // RMSNorm weights: 1 + N(0, kNormStd)
constexpr double kBiasStd = 0.01;        // e_score_correction_bias: N(0, kBiasStd)
constexpr size_t kSlabElems = 1u << 18;  // BF16 matrices are drawn in slabs of about this many elements

// ---------------------------------------------------------------------------------------------------
// Presets

ModelConfig tiny_model() {
    ModelConfig m;
    m.source = "preset tiny";
    m.vocab_size = 1024;
    m.hidden_size = 128;
    m.intermediate_size = 1024;
    m.moe_intermediate_size = 1024;
    m.num_hidden_layers = 3;
    m.first_k_dense_replace = 1;
    m.n_routed_experts = 8;
    m.n_shared_experts = 1;
    m.num_experts_per_tok = 2;
    m.n_group = 4;
    m.topk_group = 2;
    m.num_attention_heads = 16;
    m.num_key_value_heads = 16;
    m.q_lora_rank = 256;
    m.kv_lora_rank = 128;
    m.qk_nope_head_dim = 64;
    m.qk_rope_head_dim = 64;
    m.v_head_dim = 64;
    m.max_position_embeddings = 4096;
    m.rope_scaling.original_max_position_embeddings = 256;
    m.rope_scaling.factor = 4.0;
    m.num_nextn_predict_layers = 0;
    return m;
}

ModelConfig small_model() {
    ModelConfig m;
    m.source = "preset small";
    m.vocab_size = 32768;
    m.hidden_size = 2048;
    m.intermediate_size = 8192;
    m.moe_intermediate_size = 1024;
    m.num_hidden_layers = 8;
    m.first_k_dense_replace = 1;
    m.n_routed_experts = 64;
    m.n_shared_experts = 1;
    m.num_experts_per_tok = 6;
    m.n_group = 8;
    m.topk_group = 3;
    m.num_attention_heads = 16;
    m.num_key_value_heads = 16;
    m.q_lora_rank = 768;
    m.kv_lora_rank = 512;
    m.qk_nope_head_dim = 128;
    m.qk_rope_head_dim = 64;
    m.v_head_dim = 128;
    m.num_nextn_predict_layers = 1;
    return m;
}

// ---------------------------------------------------------------------------------------------------
// YAML overrides

// A YAML scalar as JSON: quoted scalars are strings; plain ones are null, booleans, integers or floats when
// they read as such, else strings.
json scalar_to_json(const YAML::Node& node) {
    const std::string& s = node.Scalar();
    if (node.Tag() == "!") return s;  // quoted
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    const char* begin = s.data();
    const char* end = begin + s.size();
    const char* digits = begin + (!s.empty() && s[0] == '+' ? 1 : 0);  // from_chars takes '-' but not '+'
    int64_t i = 0;
    if (auto r = std::from_chars(digits, end, i); r.ec == std::errc() && r.ptr == end && digits != end) return i;
    double d = 0;
    if (auto r = std::from_chars(digits, end, d); r.ec == std::errc() && r.ptr == end && digits != end) return d;
    return s;
}

json yaml_to_json(const YAML::Node& node, const std::string& where) {
    switch (node.Type()) {
        case YAML::NodeType::Null:
            return nullptr;
        case YAML::NodeType::Scalar:
            return scalar_to_json(node);
        case YAML::NodeType::Sequence: {
            json a = json::array();
            for (const YAML::Node& e : node) a.push_back(yaml_to_json(e, where));
            return a;
        }
        case YAML::NodeType::Map: {
            json o = json::object();
            for (const auto& kv : node) o[kv.first.as<std::string>()] = yaml_to_json(kv.second, where);
            return o;
        }
        default:
            ECF8_FAIL(where << ": undefined YAML value");
    }
}

std::string join_keys(const json& object) {
    std::string list;
    for (const auto& [key, value] : object.items()) list += (list.empty() ? "" : ", ") + key;
    return list;
}

// Overlays the YAML map `over` onto `base`. `schema` holds every key config.json may have here (the full
// default config), so typos fail instead of being ignored; nested maps (rope_scaling) merge key by key.
void overlay_config(json& base, const json& schema, const YAML::Node& over, const std::string& where) {
    ECF8_CHECK(over.IsMap(), where << " must be a map of config.json fields");
    for (const auto& kv : over) {
        const std::string key = kv.first.as<std::string>();
        const std::string at = where + "." + key;
        ECF8_CHECK(schema.contains(key),
                   at << ": unknown config.json field '" << key << "'; known fields: " << join_keys(schema));
        const json& sub_schema = schema.at(key);
        if (kv.second.IsMap() && sub_schema.is_object()) {
            json& target = base[key];
            if (!target.is_object()) target = json::object();  // e.g. rope_scaling null in the base
            overlay_config(target, sub_schema, kv.second, at);
        } else {
            base[key] = yaml_to_json(kv.second, at);
        }
    }
}

// The config.json fields from_json reads (the defaults have every optional object).
json config_schema() {
    json schema = ModelConfig{}.to_json();
    schema["rope_scaling"]["rope_type"] = "yarn";  // newer HF spelling of rope_scaling.type
    return schema;
}

double yaml_number(const YAML::Node& node, const std::string& where) {
    const json v = node.IsScalar() ? scalar_to_json(node) : json();
    ECF8_CHECK(v.is_number(), where << " must be a number, got '" << (node.IsScalar() ? node.Scalar() : "?") << "'");
    return v.get<double>();
}

// ---------------------------------------------------------------------------------------------------
// Seeds and draws

uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t fnv1a64(const std::string& s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
    return h;
}

// The seed of one stream of one tensor: slab `slab`, `purpose` 0 for values, 1 for row factors.
uint64_t stream_seed(uint64_t seed, const std::string& tensor, uint64_t slab, uint64_t purpose) {
    return mix64(mix64(mix64(seed) ^ fnv1a64(tensor)) ^ (slab * 2 + purpose));
}

// e^x by its Taylor series in IEEE basic operations only (no libm), so factors match on every platform.
double series_exp(double x) {
    double term = 1.0, sum = 1.0;
    for (int i = 1; i <= 30; ++i) {
        term = term * x / i;
        sum += term;
    }
    return sum;
}

// Multiplies each of `rows` rows of w (cols wide) by its factor exp(sigma g - sigma^2).
void apply_row_factors(float* w, int64_t rows, int64_t cols, uint64_t seed) {
    std::vector<float> g(static_cast<size_t>(rows));
    synth_float({WeightDist::Gaussian, 1.0, 5.0, seed}, g.data(), g.size());
    for (int64_t r = 0; r < rows; ++r) {
        const double x = std::clamp(static_cast<double>(g[static_cast<size_t>(r)]), -5.0, 5.0);
        const auto f = static_cast<float>(series_exp(kRowSigma * x - kRowSigma * kRowSigma));
        float* row = w + r * cols;
        for (int64_t c = 0; c < cols; ++c) row[c] *= f;
    }
}

// ---------------------------------------------------------------------------------------------------
// Tensors, files and work

enum class Fill {
    Fp8Linear,  // F8_E4M3 weight; its F32 weight_scale_inv is the next item and is filled with it
    Scale,      // filled by the preceding Fp8Linear
    Matrix,     // BF16 2-D: Student-t(weight_std) with row factors
    Norm,       // BF16 1-D: 1 + N(0, kNormStd)
    Bias,       // F32 1-D: N(0, kBiasStd)
};

struct Item {
    const TensorSpec* spec = nullptr;
    Fill fill = Fill::Matrix;
    uint64_t nbytes = 0;
    size_t file = 0;
    std::unique_ptr<uint8_t[]> data;  // allocated while its batch is drawn, freed once written
};

// One parallel task: rows [row0, row1) of an item (all of a 1-D item).
struct Slab {
    size_t item;
    uint64_t index;  // slab number within the tensor; part of the stream seed
    int64_t row0, row1;
};

Fill fill_of(const TensorSpec& t) {
    if (t.role == TensorRole::BlockScale) return Fill::Scale;
    if (t.dtype == DType::F8_E4M3 && t.shape.size() == 2) return Fill::Fp8Linear;
    if (t.dtype == DType::BF16 && t.shape.size() == 2) return Fill::Matrix;
    if (t.dtype == DType::BF16 && t.shape.size() == 1) return Fill::Norm;
    if (t.dtype == DType::F32 && t.shape.size() == 1) return Fill::Bias;
    ECF8_FAIL("synthetic checkpoint: no generator for tensor '" << t.name << "' (" << dtype_name(t.dtype) << ", "
                                                                << t.shape.size() << "-D)");
}

std::vector<Item> make_items(const std::vector<TensorSpec>& specs) {
    std::vector<Item> items(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
        Item& it = items[i];
        it.spec = &specs[i];
        it.fill = fill_of(specs[i]);
        it.nbytes = specs[i].nbytes();
        if (it.fill == Fill::Fp8Linear) {
            ECF8_CHECK(
                i + 1 < specs.size() && specs[i + 1].scale_of == specs[i].name,
                "synthetic checkpoint: FP8 weight '" << specs[i].name << "' is not followed by its weight_scale_inv");
        }
        if (it.fill == Fill::Scale) {
            ECF8_CHECK(i > 0 && items[i - 1].fill == Fill::Fp8Linear && specs[i].scale_of == specs[i - 1].name,
                       "synthetic checkpoint: scale '" << specs[i].name << "' does not follow its weight");
        }
    }
    return items;
}

// Assigns files in order: a new file starts when the next weight (with its scale) would pass max_bytes.
// Returns the number of files.
size_t assign_files(std::vector<Item>& items, uint64_t max_bytes) {
    size_t file = 0;
    uint64_t used = 0;
    for (size_t i = 0; i < items.size();) {
        const size_t n = items[i].fill == Fill::Fp8Linear ? 2 : 1;  // a weight and its scale stay together
        uint64_t bytes = 0;
        for (size_t k = i; k < i + n; ++k) bytes += items[k].nbytes;
        if (used > 0 && used + bytes > max_bytes) {
            ++file;
            used = 0;
        }
        for (size_t k = i; k < i + n; ++k) items[k].file = file;
        used += bytes;
        i += n;
    }
    return items.empty() ? 0 : file + 1;
}

std::vector<Slab> slabs_of(const std::vector<Item>& items, size_t item) {
    const TensorSpec& t = *items[item].spec;
    std::vector<Slab> out;
    if (items[item].fill == Fill::Scale) return out;
    if (t.shape.size() == 1) {
        out.push_back({item, 0, 0, t.shape[0]});
        return out;
    }
    const int64_t rows = t.shape[0], cols = std::max<int64_t>(1, t.shape[1]);
    // FP8: one 128-row block row per slab, as the scale blocks need. BF16: about kSlabElems per slab.
    const int64_t step = items[item].fill == Fill::Fp8Linear
                             ? kFp8BlockSize
                             : std::max<int64_t>(1, static_cast<int64_t>(kSlabElems) / cols);
    for (int64_t r = 0, k = 0; r < rows; r += step, ++k) {
        out.push_back({item, static_cast<uint64_t>(k), r, std::min(rows, r + step)});
    }
    return out;
}

void draw_slab(std::vector<Item>& items, const Slab& s, const SynthCheckpointOptions& o) {
    Item& it = items[s.item];
    const TensorSpec& t = *it.spec;
    const int64_t rows = s.row1 - s.row0;
    const int64_t cols = t.shape.size() == 2 ? t.shape[1] : 1;
    const size_t n = static_cast<size_t>(rows * cols);
    std::vector<float> w(n);
    const uint64_t seed = stream_seed(o.seed, t.name, s.index, 0);
    switch (it.fill) {
        case Fill::Fp8Linear:
        case Fill::Matrix:
            synth_float({WeightDist::StudentT, o.weight_std, o.student_dof, seed}, w.data(), n);
            apply_row_factors(w.data(), rows, cols, stream_seed(o.seed, t.name, s.index, 1));
            break;
        case Fill::Norm:
            synth_float({WeightDist::Gaussian, kNormStd, 5.0, seed}, w.data(), n);
            for (float& v : w) v += 1.0f;
            break;
        case Fill::Bias:
            synth_float({WeightDist::Gaussian, kBiasStd, 5.0, seed}, w.data(), n);
            break;
        case Fill::Scale:
            return;
    }
    const size_t first = static_cast<size_t>(s.row0 * cols);
    if (it.fill == Fill::Fp8Linear) {
        float* scale = reinterpret_cast<float*>(items[s.item + 1].data.get());
        quantize_fp8_block(w.data(), rows, cols, it.data.get() + first,
                           scale + (s.row0 / kFp8BlockSize) * fp8_scale_blocks(cols));
    } else if (t.dtype == DType::BF16) {
        auto* out = reinterpret_cast<uint16_t*>(it.data.get()) + first;
        for (size_t i = 0; i < n; ++i) out[i] = float_to_bf16(w[i]);
    } else {
        std::memcpy(reinterpret_cast<float*>(it.data.get()) + first, w.data(), n * sizeof(float));
    }
}

std::string shard_name(size_t file, size_t files) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors", file + 1, files);
    return buf;
}

void remove_if_present(const fs::path& p) {
    std::error_code ec;
    fs::remove(p, ec);
    ECF8_CHECK(!ec, "cannot remove '" << p.string() << "': " << ec.message());
}

// Streams items to their files in order; runs on the writer thread, one batch at a time.
class FileStreamer {
public:
    FileStreamer(const std::string& dir, const std::vector<Item>& items, size_t files, ProgressBar* progress)
        : dir_(dir), items_(items), files_(files), progress_(progress) {}

    void write(std::vector<Item>& items, size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) {
            Item& it = items[i];
            if (!writer_ || it.file != file_) open(it.file, i);
            writer_->write_data(it.spec->name, it.data.get(), it.nbytes);
            it.data.reset();
            if (progress_) progress_->advance(it.nbytes);
        }
    }

    void finish() {
        if (writer_) writer_->finish();
        writer_.reset();
    }

private:
    void open(size_t file, size_t first_item) {
        finish();
        file_ = file;
        writer_ = std::make_unique<SafetensorsWriter>((fs::path(dir_) / shard_name(file, files_)).string());
        writer_->set_metadata({{"format", "pt"}});
        for (size_t i = first_item; i < items_.size() && items_[i].file == file; ++i) {
            const TensorSpec& t = *items_[i].spec;
            writer_->add_tensor(t.name, t.dtype, t.shape, items_[i].nbytes);
        }
        writer_->write_header();
    }

    std::string dir_;
    const std::vector<Item>& items_;
    size_t files_;
    ProgressBar* progress_;
    std::unique_ptr<SafetensorsWriter> writer_;
    size_t file_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Options

void SynthCheckpointOptions::validate() const {
    model.validate();
    ECF8_CHECK(std::isfinite(weight_std) && weight_std > 0,
               "synthetic checkpoint: weight_std must be positive, got " << weight_std);
    ECF8_CHECK(std::isfinite(student_dof) && student_dof > 2,
               "synthetic checkpoint: student_dof must be > 2 (finite std), got " << student_dof);
    ECF8_CHECK(max_file_bytes > 0, "synthetic checkpoint: max_file_bytes must be > 0");
    ECF8_CHECK(threads >= 0, "synthetic checkpoint: threads must be >= 0 (0: every core), got " << threads);
    if (model.quantized) {
        const auto& b = model.quantization.weight_block_size;
        ECF8_CHECK(b == std::vector<int64_t>({kFp8BlockSize, kFp8BlockSize}),
                   model.source << ": synthetic checkpoints quantize in DeepSeek-V3's 128x128 blocks; "
                                << "quantization_config.weight_block_size must be [128, 128]");
    }
}

SynthCheckpointOptions synth_preset(const std::string& name) {
    SynthCheckpointOptions o;
    if (name == "tiny") {
        o.model = tiny_model();
        o.max_file_bytes = 4ull << 20;
    } else if (name == "small") {
        o.model = small_model();
        o.max_file_bytes = 1ull << 30;
    } else {
        ECF8_FAIL("unknown synthetic checkpoint preset '" << name << "'; presets: " << kPresetNames
                                                          << " (or a .yaml file of overrides)");
    }
    o.validate();
    return o;
}

SynthCheckpointOptions synth_options_from_yaml(const std::string& yaml_path) {
    YAML::Node loaded;
    try {
        loaded = YAML::LoadFile(yaml_path);
    } catch (const YAML::BadFile&) {
        ECF8_FAIL("cannot open synthetic checkpoint file '" << yaml_path << "'");
    } catch (const YAML::Exception& e) {
        ECF8_FAIL(yaml_path << ": invalid YAML: " << e.what());
    }
    const YAML::Node& root = loaded;  // const: lookups of absent keys must not insert them
    ECF8_CHECK(root.IsNull() || root.IsMap(), yaml_path << ": must be a YAML map of synth options");
    static const std::set<std::string> kKeys = {"base",       "config",      "seed",       "max_file_mb",
                                                "weight_std", "student_dof", "include_mtp"};
    std::string allowed;
    for (const std::string& k : kKeys) allowed += (allowed.empty() ? "" : ", ") + k;
    if (root.IsMap()) {
        for (const auto& kv : root) {
            const std::string key = kv.first.as<std::string>();
            ECF8_CHECK(kKeys.count(key), yaml_path << ": unknown key '" << key << "'; allowed keys: " << allowed);
        }
    }
    const auto at = [&](const char* key) { return yaml_path + ": " + key; };

    std::string base = "tiny";
    if (root["base"]) {
        ECF8_CHECK(root["base"].IsScalar(), at("base") << " must be a preset name (" << kPresetNames << ")");
        base = root["base"].Scalar();
    }
    SynthCheckpointOptions o;
    try {
        o = synth_preset(base);
    } catch (const Error& e) {
        ECF8_FAIL(at("base") << ": " << e.what());
    }
    if (const YAML::Node cfg = root["config"]; cfg && !cfg.IsNull()) {
        json j = o.model.to_json();
        overlay_config(j, config_schema(), cfg, yaml_path + ": config");
        o.model = ModelConfig::from_json(j, yaml_path + " (config over preset " + base + ")");
    }
    if (const YAML::Node n = root["seed"]) {
        const json v = n.IsScalar() ? scalar_to_json(n) : json();
        ECF8_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0,
                   at("seed") << " must be a non-negative integer, got '" << (n.IsScalar() ? n.Scalar() : "?") << "'");
        o.seed = static_cast<uint64_t>(v.get<int64_t>());
    }
    if (const YAML::Node n = root["max_file_mb"]) {
        const double mb = yaml_number(n, at("max_file_mb"));
        ECF8_CHECK(mb > 0 && mb < 1e9, at("max_file_mb") << " must be > 0, got " << mb);
        o.max_file_bytes = std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(mb * 1048576.0)));
    }
    if (const YAML::Node n = root["weight_std"]) o.weight_std = yaml_number(n, at("weight_std"));
    if (const YAML::Node n = root["student_dof"]) o.student_dof = yaml_number(n, at("student_dof"));
    if (const YAML::Node n = root["include_mtp"]) {
        const json v = n.IsScalar() ? scalar_to_json(n) : json();
        ECF8_CHECK(v.is_boolean(), at("include_mtp") << " must be true or false");
        o.include_mtp = v.get<bool>();
    }
    try {
        o.validate();
    } catch (const Error& e) {
        ECF8_FAIL(yaml_path << ": " << e.what());
    }
    return o;
}

// ---------------------------------------------------------------------------------------------------
// Writer

// "model-DDDDD-of-DDDDD.safetensors", the names this writer (and Hugging Face) gives checkpoint shards.
// (Hand-written: GCC 12's std::regex trips -Wmaybe-uninitialized under the sanitizer build.)
static bool is_shard_file_name(const std::string& n) {
    static const std::string kPattern = "model-#####-of-#####.safetensors";
    if (n.size() != kPattern.size()) return false;
    for (size_t i = 0; i < n.size(); ++i) {
        if (kPattern[i] == '#' ? !std::isdigit(static_cast<unsigned char>(n[i])) : n[i] != kPattern[i]) return false;
    }
    return true;
}

SynthCheckpointResult write_synth_checkpoint(const std::string& dir, const SynthCheckpointOptions& options) {
    options.validate();
    const std::vector<TensorSpec> specs = deepseek_v3_tensors(options.model, options.include_mtp);
    std::vector<Item> items = make_items(specs);
    const size_t files = assign_files(items, options.max_file_bytes);

    std::error_code ec;
    fs::create_directories(dir, ec);
    ECF8_CHECK(!ec && fs::is_directory(dir), "cannot create output directory '" << dir << "': " << ec.message());
    // Without index and config an interrupted rewrite of an old checkpoint never looks complete.
    remove_if_present(fs::path(dir) / kIndexName);
    remove_if_present(fs::path(dir) / kConfigName);

    SynthCheckpointResult result;
    result.tensors = items.size();
    result.files = files;
    for (const Item& it : items) result.bytes += it.nbytes;

    ThreadPool pool(options.threads);
    std::unique_ptr<ProgressBar> progress;
    if (options.progress) progress = std::make_unique<ProgressBar>("synth " + dir, result.bytes);
    FileStreamer streamer(dir, items, files, progress.get());
    // Batches of whole tensors of about this many bytes are drawn while the previous one is written.
    const uint64_t budget = static_cast<uint64_t>(pool.size()) * (64ull << 20);
    {
        std::future<void> pending;  // the write of the previous batch; destroyed (awaited) before the items
        for (size_t begin = 0; begin < items.size();) {
            size_t end = begin;
            uint64_t bytes = 0;
            std::vector<Slab> slabs;
            while (end < items.size() && (end == begin || bytes < budget)) {
                const size_t n = items[end].fill == Fill::Fp8Linear ? 2 : 1;  // the scale goes with its weight
                for (size_t k = end; k < end + n; ++k) {
                    items[k].data.reset(new uint8_t[items[k].nbytes]);
                    bytes += items[k].nbytes;
                    for (const Slab& s : slabs_of(items, k)) slabs.push_back(s);
                }
                end += n;
            }
            pool.parallel_for(slabs.size(), [&](size_t i) { draw_slab(items, slabs[i], options); });
            if (pending.valid()) pending.get();
            pending =
                std::async(std::launch::async, [&streamer, &items, begin, end] { streamer.write(items, begin, end); });
            begin = end;
        }
        if (pending.valid()) pending.get();
    }
    streamer.finish();
    if (progress) progress->finish();

    json index;
    index["metadata"] = {{"total_size", result.bytes}};
    json& map = index["weight_map"] = json::object();
    std::set<std::string> written;
    for (const Item& it : items) {
        const std::string file = shard_name(it.file, files);
        map[it.spec->name] = file;
        written.insert(file);
    }
    write_file_atomic((fs::path(dir) / kIndexName).string(), index.dump(2) + "\n");
    write_file_atomic((fs::path(dir) / kConfigName).string(), options.model.to_json().dump(2) + "\n");

    // Shards of an earlier checkpoint that the new index does not name.
    std::vector<fs::path> stale;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (is_shard_file_name(name) && !written.count(name)) stale.push_back(it->path());
    }
    ECF8_CHECK(!ec, "cannot list '" << dir << "': " << ec.message());
    for (const fs::path& p : stale) remove_if_present(p);
    return result;
}

}  // namespace ecf8
