// `ecf8 compress`, `ecf8 decompress` and `ecf8 verify`.
#include <cstdio>

#include "codec/container.h"
#include "common/log.h"
#include "common/progress.h"
#include "launcher/args.h"
#include "launcher/commands.h"

namespace ecf8 {

int cmd_compress(const CommandArgs& argv) {
    Args args(argv, {"granularity", "threads"}, {}, "compress");
    args.expect_positional(2, "ecf8 compress IN.safetensors OUT.safetensors [--granularity tensor|group:N]");
    CompressOptions opt;
    parse_granularity(args.get("granularity", "tensor"), &opt.encode);
    opt.threads = args.get_threads(0);
    const std::string& in = args.positional()[0];
    const std::string& out = args.positional()[1];
    compress_file(in, out, opt);
    CompressedFile cf = CompressedFile::open(out);
    uint64_t raw = 0, stored = 0;
    for (const TensorRecord& r : cf.records()) {
        raw += r.raw_bytes();
        stored += cf.stored_bytes(r);
    }
    LOG_INFO("compressed " << in << " -> " << out << ": " << format_bytes(static_cast<double>(raw)) << " -> "
                           << format_bytes(static_cast<double>(stored)) << " of tensor data ("
                           << (raw ? 100.0 * static_cast<double>(stored) / static_cast<double>(raw) : 100.0) << "%)");
    return 0;
}

int cmd_decompress(const CommandArgs& argv) {
    Args args(argv, {"threads"}, {}, "decompress");
    args.expect_positional(2, "ecf8 decompress IN OUT");
    decompress_file(args.positional()[0], args.positional()[1], args.get_threads(0), true);
    LOG_INFO("wrote " << args.positional()[1]);
    return 0;
}

int cmd_verify(const CommandArgs& argv) {
    Args args(argv, {"threads"}, {}, "verify");
    args.expect_positional(2, "ecf8 verify ORIGINAL COMPRESSED");
    auto problems = verify_files(args.positional()[0], args.positional()[1], args.get_threads(0));
    for (const auto& p : problems) std::fprintf(stderr, "MISMATCH %s\n", p.c_str());
    if (!problems.empty()) {
        std::fprintf(stderr, "verify: %zu problem(s)\n", problems.size());
        return 1;
    }
    std::printf("verify: OK, every tensor is bit-identical\n");
    return 0;
}

}  // namespace ecf8
