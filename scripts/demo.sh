#!/usr/bin/env bash
# The main job on the embedded default model. Until the runtime lands this is the codec demo: generated
# DeepSeek-like FP8/BF16 weights are compressed to ECF8, verified bit-exactly and summarised.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset default >/dev/null
cmake --build --preset default -j "${ECF8_JOBS:-$(nproc)}" --target ecf8
./build/launcher/ecf8 demo --out out/demo "$@"
