#!/usr/bin/env bash
# The runtime benchmark on one GPU (issue 7): the DeepSeek-V3-shaped synth of configs/models/synth-bench-h100.yaml
# (real layer shapes, 6 layers, 48 experts), tp 1, `ecf8 run --backend cuda` with --weights raw (FP8 in
# place) and ecf8 at equal batch, raw-copy (ECF8's schedule, copies instead of decodes) at one batch, then with part of the weights in the pinned host tier. GEMM=fp8 (default) or fp32 picks
# ecf8 run's --gemm. Prints each run's decode-step
# throughput and step latency, and checks that raw and ECF8 logits are bit-identical at every batch.
# Usage (repo root, on the GPU machine): bench/run_gpu_forward.sh [ECF8_BINARY] [OUT_DIR]
# Needs ~31 GB of disk (checkpoint + two shard sets) and a GPU with >= 24 GB.
set -uo pipefail
cd "$(dirname "$0")/.."
ecf8=${1:-build/launcher/ecf8}
out=${2:-out/bench/logs}
mkdir -p "$out" out/bench
bash bench/prepare_bench_model.sh "$ecf8" bench-h100 bench-h100-offload --log "$out" || exit 1
"$ecf8" plan --config configs/bench-h100.yaml >"$out/plan.log" 2>&1
"$ecf8" plan --config configs/bench-h100-offload.yaml >"$out/plan-offload.log" 2>&1

# One run: prints "config weights batch tokens/s ms/step load_s" from ecf8 run's report.
status=0
run() {
    local config=$1 weights=$2 batch=$3
    shift 3
    local log="$out/run-$config-$weights-$batch.log"
    if ! "$ecf8" run --backend cuda --config "configs/$config.yaml" --weights "$weights" --batch "$batch" \
        --prompt-ids 3,141,59,26,535,89,79,323 --max-new-tokens 16 --eos-id -1 --gemm "${GEMM:-fp8}" \
        --dump-logits "out/bench/logits-$config-$weights-$batch.bin" "$@" >"$log" 2>&1; then
        echo "FAIL $config $weights batch $batch"; tail -5 "$log"; status=1; return
    fi
    awk -v c="$config" -v w="$weights" -v b="$batch" '
        /^weights:/ { load = $(NF - 1) }
        /^[0-9]+ / { ms += $4; n++ }
        /decode steps/ { for (i = 1; i <= NF; i++) if ($i == "steps" && $(i+1) != "in") tps = $(i+1) }
        END { printf "%-20s %-5s %5d %12s %10.2f %8s\n", c, w, b, tps, ms / n, load }' "$log"
}
printf "%-20s %-5s %5s %12s %10s %8s\n" config weights batch "tokens/s" "ms/step" "load s"
for batch in 1 8 32; do
    for weights in raw ecf8; do run bench-h100 $weights $batch; done
    python3 scripts/compare_logits.py "out/bench/logits-bench-h100-ecf8-$batch.bin" \
        "out/bench/logits-bench-h100-raw-$batch.bin" >>"$out/compare.log" || { echo "logits differ at batch $batch"; status=1; }
done
run bench-h100 raw-copy 8  # the ECF8 schedule without the decode: what the decode itself costs
for weights in raw ecf8; do run bench-h100-offload $weights 8; done
python3 scripts/compare_logits.py out/bench/logits-bench-h100-offload-ecf8-8.bin \
    out/bench/logits-bench-h100-ecf8-8.bin >>"$out/compare.log" || { echo "host tier changes the logits"; status=1; }
run bench-h100 ecf8 8 --trace "$out/trace-ecf8-8.json" >/dev/null
cat "$out/compare.log"
grep -h "^  rank" "$out"/run-bench-h100-ecf8-8.log "$out"/run-bench-h100-offload-ecf8-8.log
exit $status
