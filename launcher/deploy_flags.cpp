// Command-line overrides of the deployment YAML.
#include "launcher/deploy_flags.h"

#include <cmath>

#include "common/error.h"

namespace ecf8 {

void apply_deploy_flags(const Args& args, DeployConfig* deploy) {
    if (args.has(kGemmFlag)) deploy->compute.gemm = parse_gemm_mode(args.get(kGemmFlag, ""), "--gemm");
    if (args.has(kDecodedExpertsFlag)) {
        const double gb = args.get_double(kDecodedExpertsFlag, 0.0);
        ECF8_CHECK(std::isfinite(gb) && gb >= 0 && gb <= 1e6,
                   "--decoded-experts-gb must be >= 0 and at most 1e6 (GiB per rank of routed experts kept decoded), "
                   "got "
                       << gb);
        deploy->memory.decoded_experts_gb = gb;
    }
    deploy->validate();
}

}  // namespace ecf8
