#!/usr/bin/env bash
# Runtime benchmark: tokens/s and the decode share of step time, ECF8 (decode just in time) against raw
# (the original FP8 bytes in place) and raw-copy (the same bytes copied where ECF8 decodes), on the `small`
# synthetic DeepSeek-V3 with 2 CPU ranks. All runs use the same shards, prompt and batch; their logits
# must be bit-identical. Writes out/small/ if missing (the
# synth takes a few minutes). Usage: bench/run_small.sh [ECF8_BINARY] [BATCH] [NEW_TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
ecf8=${1:-build/launcher/ecf8}
batch=${2:-4}
new_tokens=${3:-16}
config=configs/small-cpu.yaml
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
[ -f out/small/model/config.json ] || "$ecf8" synth --arch deepseek-v3 --preset small --out out/small/model
[ -f out/small/shards/manifest.json ] || "$ecf8" shard --config "$config"
prompt=$(seq -s, 100 131)  # 32 prompt tokens
for weights in raw raw-copy ecf8; do
    echo "== --weights $weights"
    mpirun --oversubscribe -np 2 "$ecf8" run --config "$config" --prompt-ids "$prompt" --batch "$batch" \
        --max-new-tokens "$new_tokens" --weights "$weights" --dump-logits "out/small/logits-$weights.bin" |
        grep -E "^(shards|weights|rank 0|prefill)|decode steps"
done
cmp out/small/logits-raw.bin out/small/logits-ecf8.bin && cmp out/small/logits-raw-copy.bin out/small/logits-ecf8.bin &&
    echo "logits: bit-identical (ecf8, raw, raw-copy)"
