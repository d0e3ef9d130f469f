#!/usr/bin/env bash
# Serving benchmark (issue 19): `ecf8 bench serve` on one loaded model at several concurrency levels, ECF8
# (also with routed experts kept decoded, on the CPU) and raw FP8 on the same shards. Default: the `small` synthetic DeepSeek-V3 on 2 CPU ranks at 1, 4, 16 and 64
# concurrent requests (prompts ~32 tokens, outputs ~16). With a GPU: bench/run_serve.sh ECF8 gpu, the
# DeepSeek-V3-shaped bench synth (configs/bench-h100.yaml, tp 1) at 1, 8, 32 and 128 (SERVE_PROFILE=1: with a
# per-stage breakdown of decode steps at batch 1 and 32 first, scripts/trace_summary.py).
# Usage (repo root): bench/run_serve.sh [ECF8_BINARY] [cpu|gpu] [extra bench serve flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
ecf8=${1:-build/launcher/ecf8}
where=${2:-cpu}
shift $(($# > 2 ? 2 : $#))
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
mkdir -p out/serve
if [ "$where" = gpu ]; then
    bash bench/prepare_bench_model.sh "$ecf8" bench-h100 --log out/serve
    # SERVE_PROFILE=1: first, where a decode step's time goes (GPU-timed trace spans per stage, rank 0) at
    # batch 1 and 32, ECF8, raw, and ECF8 with a half expert area (four expert groups every step, where the
    # bench synth's ample KV lets auto keep one group for small steps): 8 new tokens of an 8-token prompt each.
    if [ "${SERVE_PROFILE:-0}" = 1 ]; then
        for variant in ecf8 raw ecf8-half; do
            area=auto
            [ "$variant" = ecf8-half ] && area=half
            for batch in 1 32; do
                echo "== profile $variant --batch $batch"
                timeout 120 "$ecf8" run --config configs/bench-h100.yaml --backend cuda --gemm fp8 \
                    --weights "${variant%-half}" --expert-area "$area" --batch "$batch" \
                    --prompt-ids 3,141,59,26,535,89,79,323 --max-new-tokens 8 --eos-id -1 \
                    --trace "out/serve/trace-$variant-$batch.json" >"out/serve/profile-$variant-$batch.log" 2>&1 &&
                    python3 scripts/trace_summary.py "out/serve/trace-$variant-$batch.json" --top 12 ||
                    tail -3 "out/serve/profile-$variant-$batch.log"
            done
        done
    fi
    for weights in ecf8 raw; do
        echo "== --weights $weights"
        "$ecf8" bench serve --config configs/bench-h100.yaml --backend cuda --gemm fp8 --weights "$weights" \
            --concurrency 1,8,32,128 --input-len 128 --output-len 64 --json "out/serve/gpu-$weights.json" "$@"
    done
    exit 0
fi
config=configs/small-cpu.yaml
[ -f out/small/model/config.json ] || "$ecf8" synth --arch deepseek-v3 --preset small --out out/small/model
[ -f out/small/shards/manifest.json ] || "$ecf8" shard --config "$config"
# ECF8, ECF8 with routed experts kept decoded in the KV room that max_num_seqs sequences cannot use
# (memory.decoded_experts_gb: auto; on small every expert, 1.3 GiB of them per rank), and raw FP8.
for variant in ecf8 ecf8-decoded raw; do
    echo "== $variant"
    flags=(--weights "${variant%-decoded}")
    [ "$variant" = ecf8-decoded ] && flags+=(--decoded-experts-gb auto)
    mpirun --oversubscribe -np 2 "$ecf8" bench serve --config "$config" "${flags[@]}" \
        --concurrency 1,4,16,64 --json "out/serve/cpu-$variant.json" "$@"
done
