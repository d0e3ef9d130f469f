// The flags of `ecf8 run`, `ecf8 bench serve` and `ecf8 plan` that override keys of the deployment YAML, so
// that the plan counts what runs: --gemm (compute.gemm), --decoded-experts-gb (memory.decoded_experts_gb) and
// --expert-area (memory.expert_area).
#pragma once

#include "launcher/args.h"
#include "sharding/deploy_config.h"

namespace ecf8 {

inline constexpr const char* kGemmFlag = "gemm";
inline constexpr const char* kDecodedExpertsFlag = "decoded-experts-gb";
inline constexpr const char* kExpertAreaFlag = "expert-area";

// Applies the flags present in args to deploy and validates the result (errors name the flag).
void apply_deploy_flags(const Args& args, DeployConfig* deploy);

}  // namespace ecf8
