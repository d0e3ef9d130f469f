#!/usr/bin/env bash
# Makes the GPU benchmarks' model once: the DeepSeek-V3-shaped synth of configs/models/synth-bench-h100.yaml
# in out/bench/model (14.9 GiB) and its shards for each config named (default: bench-h100). What exists is
# kept; a step counts as done only when it finished (a marker file), so an interrupted synth or shard is
# redone. Several callers may run at once (scripts/gpu_checks.sh starts it in the background while the GPU
# tests run, then bench/run_serve.sh and bench/run_gpu_forward.sh call it again): they take turns on a lock,
# and the later ones find the work done.
# Usage (repo root): bench/prepare_bench_model.sh ECF8_BINARY [CONFIG_NAME...] [--log DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
ecf8=$1
shift
configs=()
log=out/bench/logs
while [ $# -gt 0 ]; do
    case $1 in
        --log) log=$2; shift 2 ;;
        *) configs+=("$1"); shift ;;
    esac
done
[ ${#configs[@]} -gt 0 ] || configs=(bench-h100)
mkdir -p out/bench "$log"
exec 9>out/bench/.prepare.lock
flock 9
t0=$SECONDS
threads=$(nproc)
if [ ! -f out/bench/model/.done ]; then
    "$ecf8" synth --arch deepseek-v3 --preset configs/models/synth-bench-h100.yaml --out out/bench/model \
        --threads "$threads" >"$log/synth.log" 2>&1 ||
        { echo "synth failed (see $log/synth.log)"; tail -5 "$log/synth.log"; exit 1; }
    touch out/bench/model/.done
fi
for c in "${configs[@]}"; do
    shards="out/bench/shards-$c"
    [ -f "$shards/.done" ] && continue
    "$ecf8" shard --config "configs/$c.yaml" --threads "$threads" >"$log/shard-$c.log" 2>&1 ||
        { echo "shard $c failed (see $log/shard-$c.log)"; tail -5 "$log/shard-$c.log"; exit 1; }
    touch "$shards/.done"
done
echo "bench model ready (${configs[*]}) in $((SECONDS - t0)) s"
