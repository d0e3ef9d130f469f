#!/usr/bin/env bash
# The main job on the embedded default model (the `tiny` synthetic DeepSeek-V3 checkpoint):
#   1. the codec demo: DeepSeek-like FP8/BF16 weights compressed to ECF8, verified bit-exactly;
#   2. ecf8 synth -> plan -> shard -> verify-shards with configs/tiny-cpu.yaml (2 ranks);
#   3. mpirun -np 2 ecf8 run --chat: a chat message in DeepSeek-V3's format, tokenized by the tokenizer that
#      synth trained, answered by tensor/expert-parallel generation with every weight kept ECF8-compressed
#      and decoded just in time, the reply streamed as text; then the same run with --weights raw, and the
#      proof that the logits of both are bit-identical. The tiny model's weights are random, so the reply is
#      gibberish: the demo shows the path, not a language model.
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
echo
# mpirun refuses root unless told; containers often forbid its single-copy shared-memory path.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
message="Hello! What does lossless compression of model weights buy us?"
echo "user: $message"
echo "(the tiny model's weights are random: expect gibberish, in the model's own tokens)"
run=(mpirun --oversubscribe -np 2 "$ecf8" run --config configs/tiny-cpu.yaml --system "You are a helpful assistant."
    --chat "$message" --max-new-tokens 24)
"${run[@]}" --weights ecf8 --dump-logits out/tiny/logits-ecf8.bin --trace out/tiny/trace.json
echo
"${run[@]}" --weights raw --dump-logits out/tiny/logits-raw.bin | grep -E "^output|^weights|^sequence"
cmp out/tiny/logits-ecf8.bin out/tiny/logits-raw.bin
echo "lossless: every step's logits are bit-identical with ECF8 and with the original FP8 weights"
