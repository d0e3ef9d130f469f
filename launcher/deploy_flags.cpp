// Command-line overrides of the deployment YAML.
#include "launcher/deploy_flags.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "common/error.h"

namespace ecf8 {

void apply_deploy_flags(const Args& args, DeployConfig* deploy) {
    if (args.has(kGemmFlag)) deploy->compute.gemm = parse_gemm_mode(args.get(kGemmFlag, ""), "--gemm");
    if (args.has(kDecodedExpertsFlag)) {
        const std::string text = args.get(kDecodedExpertsFlag, "");
        deploy->memory.decoded_experts_auto = text == "auto";
        if (deploy->memory.decoded_experts_auto) {
            deploy->memory.decoded_experts_gb = 0;
        } else {
            char* end = nullptr;
            const double gb = std::strtod(text.c_str(), &end);
            ECF8_CHECK(!text.empty() && end != nullptr && *end == '\0',
                       "--decoded-experts-gb '" << text << "' is neither a number of GiB nor auto");
            ECF8_CHECK(std::isfinite(gb) && gb >= 0 && gb <= 1e6,
                       "--decoded-experts-gb must be >= 0 and at most 1e6 (GiB per rank of routed experts kept "
                       "decoded), or auto, got "
                           << gb);
            deploy->memory.decoded_experts_gb = gb;
        }
    }
    if (args.has(kExpertAreaFlag))
        deploy->memory.expert_area = parse_expert_area(args.get(kExpertAreaFlag, ""), "--expert-area");
    deploy->validate();
}

}  // namespace ecf8
