// Tests of sharding/deploy_config: parsing a full deployment YAML, defaults, every kind of error (each
// message must name the source and the key path), and that every configs/*.yaml in the repo loads.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "sharding/deploy_config.h"
#include "tests/test_util.h"

#ifndef ECF8_SOURCE_DIR
#error "ECF8_SOURCE_DIR must be defined (target_compile_definitions in tests/sharding/CMakeLists.txt)"
#endif

namespace ecf8 {
namespace {

namespace fs = std::filesystem;
using test::error_of;

const char* kSource = "test.yaml";

// The message of the ecf8::Error thrown while parsing `yaml`, or "" when none is thrown.
std::string parse_error(const std::string& yaml) {
    try {
        DeployConfig::parse(yaml, kSource);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// Expects parsing to fail with a message that starts with the source and contains every one of `parts`.
void expect_error(const std::string& yaml, const std::vector<std::string>& parts) {
    const std::string msg = parse_error(yaml);
    ASSERT_FALSE(msg.empty()) << "no error for:\n" << yaml;
    EXPECT_EQ(msg.rfind(kSource, 0), 0u) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
}

const std::string kFull = R"(# a full config
model: out/tiny/model
output: out/tiny/shards
parallel:
  tensor_parallel_size: 8
  expert_parallel_size: 4
  nodes: 2
  gpus_per_node: 4
memory:
  gpu_memory_gb: 79.6
  gpu_memory_utilization: 0.92
  cpu_offload_gb: 12.5
  decoded_experts_gb: 3.5
  expert_area: half
codec:
  granularity: group:1048576
  threads: 3
kv_cache:
  max_model_len: 32768
  max_num_seqs: 32
  min_kv_tokens: 65536
  dtype: f32
compute:
  gemm: fp8
)";

TEST(DeployConfig, FullConfigParses) {
    const DeployConfig c = DeployConfig::parse(kFull, kSource);
    EXPECT_EQ(c.source, kSource);
    EXPECT_EQ(c.model, "out/tiny/model");
    EXPECT_EQ(c.output, "out/tiny/shards");
    EXPECT_EQ(c.parallel.tensor_parallel_size, 8);
    EXPECT_EQ(c.parallel.expert_parallel_size, 4);
    EXPECT_EQ(c.parallel.nodes, 2);
    EXPECT_EQ(c.parallel.gpus_per_node, 4);
    EXPECT_EQ(c.world_size(), 8);
    EXPECT_EQ(c.gpus_per_node(), 4);
    EXPECT_DOUBLE_EQ(c.memory.gpu_memory_gb, 79.6);
    EXPECT_DOUBLE_EQ(c.memory.gpu_memory_utilization, 0.92);
    EXPECT_DOUBLE_EQ(c.memory.cpu_offload_gb, 12.5);
    EXPECT_DOUBLE_EQ(c.memory.decoded_experts_gb, 3.5);
    EXPECT_EQ(c.memory.expert_area, ExpertArea::Half);
    EXPECT_DOUBLE_EQ(c.decoded_experts_budget_bytes(), 3.5 * 1073741824.0);
    EXPECT_EQ(c.codec.granularity, "group:1048576");
    EXPECT_EQ(c.codec.threads, 3);
    EXPECT_EQ(c.kv_cache.max_model_len, 32768);
    EXPECT_EQ(c.kv_cache.max_num_seqs, 32);
    EXPECT_EQ(c.kv_cache.min_kv_tokens, 65536);
    EXPECT_EQ(c.kv_cache.min_tokens(), 65536);
    EXPECT_EQ(c.kv_cache.dtype, "f32");
    EXPECT_EQ(c.kv_cache.kv_elem_bytes(), 4);
    EXPECT_EQ(c.compute.gemm, GemmMode::Fp8);
    EXPECT_EQ(c.config_json_path(), "out/tiny/model/config.json");
    EXPECT_DOUBLE_EQ(c.gpu_budget_bytes(), 79.6 * 1073741824.0 * 0.92);
    EXPECT_DOUBLE_EQ(c.host_budget_bytes(), 12.5 * 1073741824.0);
}

TEST(DeployConfig, DefaultsWhenSectionsOmitted) {
    const DeployConfig d;
    const DeployConfig c = DeployConfig::parse("model: m\n", kSource);
    EXPECT_EQ(c.model, "m");
    EXPECT_EQ(c.output, "");
    EXPECT_EQ(c.parallel.tensor_parallel_size, d.parallel.tensor_parallel_size);
    EXPECT_EQ(c.parallel.expert_parallel_size, d.parallel.expert_parallel_size);
    EXPECT_EQ(c.parallel.nodes, d.parallel.nodes);
    EXPECT_EQ(c.parallel.gpus_per_node, 0);
    EXPECT_EQ(c.gpus_per_node(), 1);
    EXPECT_DOUBLE_EQ(c.memory.gpu_memory_gb, d.memory.gpu_memory_gb);
    EXPECT_DOUBLE_EQ(c.memory.gpu_memory_utilization, d.memory.gpu_memory_utilization);
    EXPECT_DOUBLE_EQ(c.memory.cpu_offload_gb, 0.0);
    EXPECT_DOUBLE_EQ(c.memory.decoded_experts_gb, 0.0);
    EXPECT_EQ(c.memory.expert_area, ExpertArea::Auto);
    EXPECT_EQ(c.codec.granularity, "tensor");
    EXPECT_EQ(c.codec.threads, 0);
    EXPECT_EQ(c.kv_cache.max_model_len, d.kv_cache.max_model_len);
    EXPECT_EQ(c.kv_cache.max_num_seqs, d.kv_cache.max_num_seqs);
    EXPECT_EQ(c.kv_cache.min_tokens(), d.kv_cache.max_model_len);  // min_kv_tokens 0 = max_model_len
    EXPECT_EQ(c.kv_cache.dtype, "bf16");
    EXPECT_EQ(c.kv_cache.kv_elem_bytes(), 2);
    EXPECT_EQ(c.compute.gemm, GemmMode::Fp32);
}

TEST(DeployConfig, PartialSectionsKeepOtherDefaults) {
    const DeployConfig c = DeployConfig::parse(
        "model: m\nparallel:\n  tensor_parallel_size: 4\nmemory: {gpu_memory_gb: 40}\ncodec:\nkv_cache: {}\n", kSource);
    EXPECT_EQ(c.parallel.tensor_parallel_size, 4);
    EXPECT_EQ(c.parallel.expert_parallel_size, 1);  // ep 1: every expert split over all 4 ranks
    EXPECT_EQ(c.gpus_per_node(), 4);
    EXPECT_DOUBLE_EQ(c.memory.gpu_memory_gb, 40.0);
    EXPECT_DOUBLE_EQ(c.memory.gpu_memory_utilization, 0.90);
    EXPECT_EQ(c.codec.granularity, "tensor");
    EXPECT_EQ(c.kv_cache.max_num_seqs, 16);
}

TEST(DeployConfig, UnknownKeys) {
    expect_error("model: m\nmodle: x\n",
                 {"unknown key 'modle'", "model, output, parallel, memory, codec, kv_cache", ":2:"});
    expect_error("model: m\nparallel:\n  tensor_paralel_size: 2\n",
                 {"parallel.tensor_paralel_size", "did you mean 'parallel.tensor_parallel_size'",
                  "tensor_parallel_size, expert_parallel_size, nodes, gpus_per_node"});
    expect_error("model: m\nmemory:\n  gpu_mem: 2\n",
                 {"memory.gpu_mem", "gpu_memory_gb, gpu_memory_utilization, cpu_offload_gb"});
    expect_error("model: m\ncodec: {level: 3}\n", {"codec.level", "granularity, threads"});
    expect_error("model: m\nkv_cache: {page_size: 16}\n",
                 {"kv_cache.page_size",
                  "max_model_len, max_num_seqs, min_kv_tokens, dtype, block_size, "
                  "max_num_batched_tokens"});
    expect_error("model: m\nparallel:\n  nodes: 1\n  nodes: 1\n", {"duplicate key 'parallel.nodes'"});
}

TEST(DeployConfig, WrongTypes) {
    expect_error("model: m\nparallel:\n  tensor_parallel_size: eight\n",
                 {"parallel.tensor_parallel_size", "must be an integer", "'eight'"});
    expect_error("model: m\nparallel:\n  tensor_parallel_size: 2.5\n",
                 {"parallel.tensor_parallel_size", "must be an integer", "'2.5'"});
    expect_error("model: m\nparallel:\n  nodes: \"1\"\n", {"parallel.nodes", "must be an integer", "quoted string"});
    expect_error("model: m\nparallel:\n  nodes: 99999999999\n", {"parallel.nodes", "must be an integer in"});
    expect_error("model: m\nparallel: [1, 2]\n", {"parallel must be a map", "a list of 2"});
    expect_error("model: m\nmemory: 80\n", {"memory must be a map", "'80'"});
    expect_error("model: m\nmemory:\n  gpu_memory_gb: lots\n", {"memory.gpu_memory_gb", "must be a number", "'lots'"});
    expect_error("model: m\nmemory:\n  gpu_memory_gb: .inf\n", {"memory.gpu_memory_gb", "must be a number"});
    expect_error("model: [a, b]\n", {"model must be a string", "a list"});
    expect_error("model: m\nkv_cache:\n  max_model_len: {a: 1}\n", {"kv_cache.max_model_len", "a map"});
    expect_error("model: m\ncodec:\n  granularity: [tensor]\n", {"codec.granularity must be a string"});
}

TEST(DeployConfig, LayoutErrors) {
    expect_error("model: m\nparallel: {tensor_parallel_size: 8, expert_parallel_size: 3}\n",
                 {"parallel.expert_parallel_size must divide parallel.tensor_parallel_size (8)", "1, 2, 4, 8"});
    expect_error("model: m\nparallel: {tensor_parallel_size: 0}\n", {"parallel.tensor_parallel_size must be >= 1"});
    expect_error("model: m\nparallel: {tensor_parallel_size: 8, nodes: 3}\n",
                 {"parallel.nodes must divide parallel.tensor_parallel_size"});
    expect_error(
        "model: m\nparallel: {tensor_parallel_size: 16, expert_parallel_size: 16, nodes: 2, gpus_per_node: 4}\n",
        {"parallel.gpus_per_node (4) x parallel.nodes (2)", "parallel.tensor_parallel_size (16)", "8 or 0"});
    expect_error("model: m\nparallel: {gpus_per_node: -1}\n", {"parallel.gpus_per_node must be >= 0"});
}

TEST(DeployConfig, ValueErrors) {
    expect_error("model: m\nmemory: {gpu_memory_utilization: 0}\n", {"memory.gpu_memory_utilization", "(0, 1]"});
    expect_error("model: m\nmemory: {gpu_memory_utilization: 1.5}\n", {"memory.gpu_memory_utilization", "(0, 1]"});
    EXPECT_EQ(parse_error("model: m\nmemory: {gpu_memory_utilization: 1}\n"), "");
    expect_error("model: m\nmemory: {gpu_memory_gb: 0}\n", {"memory.gpu_memory_gb must be > 0"});
    expect_error("model: m\nmemory: {cpu_offload_gb: -1}\n", {"memory.cpu_offload_gb must be >= 0"});
    expect_error("model: m\nmemory: {decoded_experts_gb: -0.5}\n", {"memory.decoded_experts_gb must be >= 0", "-0.5"});
    expect_error("model: m\nmemory: {decoded_experts_gb: 2e6}\n", {"memory.decoded_experts_gb", "at most 1e6"});
    expect_error("model: m\nmemory: {decoded_experts_gb: lots}\n",
                 {"memory.decoded_experts_gb must be a number or auto", "lots"});
    const DeployConfig automatic = DeployConfig::parse("model: m\nmemory: {decoded_experts_gb: auto}\n", "t.yaml");
    EXPECT_TRUE(automatic.memory.decoded_experts_auto);
    EXPECT_TRUE(automatic.keeps_decoded_experts());
    EXPECT_EQ(automatic.decoded_experts_text(), "auto");
    expect_error("model: m\ncodec: {granularity: chunk}\n", {"codec.granularity 'chunk'", "'tensor'", "'group:N'"});
    expect_error("model: m\ncodec: {granularity: \"group:0\"}\n", {"codec.granularity 'group:0'"});
    expect_error("model: m\ncodec: {threads: -2}\n", {"codec.threads must be >= 0"});
    expect_error("model: m\nkv_cache: {dtype: fp8}\n", {"kv_cache.dtype", "'bf16' or 'f32'", "'fp8'"});
    expect_error("model: m\ncompute: {gemm: bf16}\n", {"compute.gemm", "'fp32'", "'fp8'", "'bf16'"});
    expect_error("model: m\nmemory: {expert_area: quarter}\n",
                 {"memory.expert_area", "'full'", "'half'", "'auto'", "'quarter'"});
    expect_error("model: m\nmemory: {expert_area: [half]}\n", {"memory.expert_area", "must be a string"});
    expect_error("model: m\ncompute: {gemm_mode: fp8}\n", {"gemm_mode", "compute"});
    expect_error("model: m\nkv_cache: {max_model_len: 0}\n", {"kv_cache.max_model_len must be >= 1"});
    expect_error("model: m\nkv_cache: {max_num_seqs: 0}\n", {"kv_cache.max_num_seqs must be >= 1"});
    expect_error("model: m\nkv_cache: {min_kv_tokens: -1}\n", {"kv_cache.min_kv_tokens must be >= 0"});
}

// Memory sizes are capped at 1e6 GiB so that every byte count derived from them fits in 64 bits.
TEST(DeployConfig, AbsurdMemorySizes) {
    expect_error("model: m\nmemory: {gpu_memory_gb: 1e300}\n", {"memory.gpu_memory_gb must be > 0 and at most 1e6"});
    expect_error("model: m\nmemory: {gpu_memory_gb: 1000001}\n", {"memory.gpu_memory_gb", "at most 1e6"});
    expect_error("model: m\nmemory: {cpu_offload_gb: 1e300}\n", {"memory.cpu_offload_gb must be >= 0 and at most 1e6"});
    EXPECT_EQ(parse_error("model: m\nmemory: {gpu_memory_gb: 1000000, cpu_offload_gb: 1000000}\n"), "");
    DeployConfig c;  // values set in code skip the YAML reader's finiteness check
    c.source = kSource;
    c.model = "m";
    c.memory.cpu_offload_gb = std::numeric_limits<double>::infinity();
    EXPECT_NE(error_of([&] { c.validate(); }).find("memory.cpu_offload_gb"), std::string::npos);
    c.memory.cpu_offload_gb = 0;
    c.memory.gpu_memory_gb = std::numeric_limits<double>::quiet_NaN();
    EXPECT_NE(error_of([&] { c.validate(); }).find("memory.gpu_memory_gb"), std::string::npos);
}

TEST(DeployConfig, DocumentErrors) {
    expect_error("model: m\nparallel:\n  tensor_parallel_size: [1\n", {"YAML syntax error", "test.yaml:"});
    expect_error("", {"empty", "model"});
    expect_error("# only a comment\n", {"empty"});
    expect_error("just a string\n", {"must be a map", "'just a string'"});
    expect_error("- model: m\n", {"must be a map", "a list"});
    expect_error("output: o\nparallel: {tensor_parallel_size: 2}\n", {"missing required key 'model'"});
    expect_error("model:\n", {"model must be a string", "null"});
    expect_error("model: \"\"\n", {"model is required"});
}

TEST(DeployConfig, ValidateDefaultsNeedsModel) {
    DeployConfig c;
    try {
        c.validate();
        FAIL() << "validate() accepted an empty model";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind("<defaults>: model", 0), 0u) << e.what();
    }
    c.model = "m";
    EXPECT_NO_THROW(c.validate());
}

TEST(DeployConfig, LoadErrorsNameThePath) {
    const std::string missing = (fs::temp_directory_path() / "ecf8-no-such-deploy.yaml").string();
    try {
        DeployConfig::load(missing);
        FAIL() << "load() accepted a missing file";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(missing + ": cannot open"), std::string::npos) << e.what();
    }
    const fs::path tmp = fs::temp_directory_path() / ("ecf8-deploy-test-" + std::to_string(::getpid()) + ".yaml");
    {
        std::ofstream out(tmp);
        out << "model: m\nparallel:\n  tensor_parallel_size: 3\n  expert_parallel_size: 2\n";
    }
    try {
        DeployConfig::load(tmp.string());
        FAIL() << "load() accepted ep 2 with tp 3";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind(tmp.string() + ": parallel.expert_parallel_size", 0), 0u) << e.what();
    }
    fs::remove(tmp);
}

// Every shipped config loads and validates; configs that point into configs/models/ point at a real
// config.json (paths are relative to the working directory, here the repo root).
TEST(DeployConfig, RepoConfigsLoad) {
    const fs::path root = ECF8_SOURCE_DIR;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(root / "configs"))
        if (entry.is_regular_file() && entry.path().extension() == ".yaml") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    ASSERT_GE(files.size(), 5u);
    for (const auto& f : files) {
        SCOPED_TRACE(f.string());
        DeployConfig c;
        ASSERT_NO_THROW(c = DeployConfig::load(f.string()));
        EXPECT_EQ(c.source, f.string());
        EXPECT_FALSE(c.output.empty());
        EXPECT_EQ(c.world_size(), c.parallel.nodes * c.gpus_per_node());
        if (c.model.rfind("configs/", 0) == 0) {
            EXPECT_TRUE(fs::exists(root / c.config_json_path())) << c.model;
        }
    }
}

}  // namespace
}  // namespace ecf8
