#!/usr/bin/env bash
# The main job on the embedded default model (the `tiny` synthetic DeepSeek-V3 checkpoint):
#   1. the codec demo: DeepSeek-like FP8/BF16 weights compressed to ECF8, verified bit-exactly;
#   2. ecf8 synth -> plan -> shard -> verify-shards with configs/tiny-cpu.yaml (2 ranks).
# Until the distributed runtime lands (mpirun -np 2 ecf8 run), the chain stops at verified shards.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset default >/dev/null
cmake --build --preset default -j "${ECF8_JOBS:-$(nproc)}" --target ecf8
ecf8=./build/launcher/ecf8
$ecf8 demo --out out/demo "$@"
echo
$ecf8 synth --arch deepseek-v3 --preset tiny --out out/tiny/model
echo
$ecf8 plan --config configs/tiny-cpu.yaml
echo
$ecf8 shard --config configs/tiny-cpu.yaml
$ecf8 verify-shards --config configs/tiny-cpu.yaml
