// libFuzzer target for the configuration parsers: the deployment YAML (DeployConfig::parse, yaml-cpp
// underneath) and the model's config.json (ModelConfig::from_json), followed, when both accept the input,
// by the shard plan they imply. The first byte picks the parser. Every problem must surface as an
// ecf8::Error; any other exception, crash, hang or out-of-bounds access is a bug.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "sharding/deploy_config.h"
#include "sharding/model_config.h"
#include "sharding/model_tensors.h"

namespace {

// Keep the plan small: a fuzzed config may ask for billions of experts or layers.
bool small_enough(const ecf8::ModelConfig& m) {
    return m.num_hidden_layers <= 8 && m.n_routed_experts <= 64 && m.hidden_size <= 4096 && m.vocab_size <= 1 << 16 &&
           m.intermediate_size <= 1 << 16 && m.moe_intermediate_size <= 1 << 16 && m.num_attention_heads <= 256 &&
           m.num_nextn_predict_layers <= 2;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
    try {
        if (data[0] % 2 == 0) {
            const ecf8::DeployConfig d = ecf8::DeployConfig::parse(text, "fuzz.yaml");
            (void)d.gpu_budget_bytes();
        } else {
            const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
            if (j.is_discarded()) return 0;
            const ecf8::ModelConfig m = ecf8::ModelConfig::from_json(j, "fuzz.json");
            if (small_enough(m)) (void)ecf8::count_parameters(m, true);
        }
    } catch (const ecf8::Error&) {
        // Rejected with a message: the expected outcome for bad input.
    }
    return 0;
}
