#!/usr/bin/env bash
# Runs on the GPU machine from the repository root, after `tar -xJf devkit.tar.xz` (scripts/devkit.sh):
# the GPU tests (the `ctest -L gpu` set), the GPU benchmarks and the CPU decode benchmark on its cores,
# each log into /tmp/gpu_checks.
# Prints one line per step and exits non-zero when any test failed. GPU_TESTS_ONLY=1: stop after the tests;
# GPU_SKIP_MEASURED=1: leave out the benchmarks already in docs/PERFORMANCE.md (gpu_decode, the CPU decode,
# weight_store_bench, fp8_gemm_bench) to save device time; GPU_BENCH_FORWARD=1: also the runtime benchmark
# (bench/run_gpu_forward.sh, minutes); GPU_BENCH_SERVE=1: the serving benchmark (bench/run_serve.sh gpu: ecf8
# bench serve at 1, 8, 32 and 128 concurrent requests; with SERVE_PROFILE=1 a per-stage breakdown of decode
# steps first, bench/run_serve.sh). Every step runs under `timeout` (GPU_STEP_TIMEOUT
# seconds, default 150), so a hang costs one step, not the device call. The device tool brings back at most
# 8 files, so with $OUT set the logs are also packed into $OUT/gpu_logs.tar.gz at the end. GPU_DEADLINE=S:
# the serving benchmark stops in time for the script to end within S seconds (without it, after
# GPU_SERVE_TIMEOUT seconds, default 420).
set -uo pipefail
cd "$(dirname "$0")/.."
out=/tmp/gpu_checks
mkdir -p "$out"
t0=$SECONDS
pack_logs() {
    [ -n "${OUT:-}" ] || return 0
    cp out/serve/profile-*.log out/serve/trace-*-1.json "$out/" 2>/dev/null || true
    tar -czf "$OUT/gpu_logs.tar.gz" -C "$out" . 2>/dev/null
    cp out/serve/gpu-*.json "$OUT/" 2>/dev/null || true
}
trap pack_logs EXIT
step_timeout=${GPU_STEP_TIMEOUT:-150}
# step CMD...: CMD under the step timeout, saying so when it ran out.
step() {
    timeout "$step_timeout" "$@"
    local rc=$?
    [ $rc -eq 124 ] && echo "TIMEOUT after ${step_timeout}s: $*" >&2
    return $rc
}
# CUDA's libraries: the toolkit's, or those of the Python wheels the machine has.
wheel_libs=$(python3 - <<'PY' 2>/dev/null
import importlib, os
dirs = []
for name in ("nvidia.nccl", "nvidia.cublas", "nvidia.cuda_runtime"):
    try:
        m = importlib.import_module(name)
        dirs += [os.path.join(p, "lib") for p in m.__path__]
    except ImportError:
        pass
print(":".join(dirs))
PY
)
export LD_LIBRARY_PATH="$PWD/devkit/lib:/usr/local/cuda/lib64:${wheel_libs}:${LD_LIBRARY_PATH:-}"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 && head -15 "$out/nvidia-smi.txt"
failed=0
# The benchmarks' 14.9 GiB synth and its shards take minutes of CPU: make them now, at low priority, while
# the GPU tests run; the benchmark scripts wait for them (bench/prepare_bench_model.sh takes turns on a lock).
if [ "${GPU_TESTS_ONLY:-0}" != 1 ] && { [ "${GPU_BENCH_SERVE:-0}" = 1 ] || [ "${GPU_BENCH_FORWARD:-0}" = 1 ]; }; then
    prep_configs=(bench-h100)
    [ "${GPU_BENCH_FORWARD:-0}" = 1 ] && prep_configs+=(bench-h100-offload)
    nice -n 19 bash bench/prepare_bench_model.sh devkit/bin/ecf8 "${prep_configs[@]}" --log "$out" \
        >"$out/prepare.log" 2>&1 &
fi
for t in test_ecf8_decode_gpu test_kernels_cuda test_fp8_gemm_cuda test_cuda_backend test_weight_store_gpu \
    test_cuda_forward test_nccl_communicator test_backend_ops; do
    [ -x "devkit/bin/$t" ] || continue
    filter=()
    [ $t = test_backend_ops ] && filter=(--gtest_filter='*BackendOpsGpu*')  # its CPU half is a unit test
    if step devkit/bin/$t --gtest_color=no "${filter[@]}" >"$out/$t.log" 2>&1; then
        echo "ok   $t: $(grep -E '^\[  PASSED  \]|SKIPPED \]' "$out/$t.log" | head -1) [$((SECONDS - t0)) s]"
    else
        echo "FAIL $t (log: $t.log) [$((SECONDS - t0)) s]"
        grep -E '^\[  FAILED  \]' "$out/$t.log" | head -20
        grep -E 'Failure|error|Error' "$out/$t.log" | head -12
        failed=1
    fi
done
[ "${GPU_TESTS_ONLY:-0}" = 1 ] && exit $failed  # the tests alone: a short device call
# The routed experts' kernels at the bench synth's shapes, FP32 SIMT against BF16 tensor cores (seconds).
if [ -x devkit/bin/expert_gemm_bench ]; then
    step devkit/bin/expert_gemm_bench >"$out/expert_gemm_bench.log" 2>&1 || echo "FAIL expert_gemm_bench"
    cat "$out/expert_gemm_bench.log"
fi
# How long one decode launch of expert-sized matrices lasts at several chunk sizes (lane_elems; seconds).
step devkit/bin/gpu_decode --latency >"$out/decode_latency.log" 2>&1 || echo "FAIL gpu_decode --latency"
cat "$out/decode_latency.log"
measured=${GPU_SKIP_MEASURED:-0}
if [ "$measured" != 1 ]; then
    step devkit/bin/gpu_decode >"$out/gpu_decode.log" 2>&1 && echo "ok   gpu_decode" || echo "FAIL gpu_decode"
    tail -25 "$out/gpu_decode.log"
    # The CPU decoder on this machine's server cores (issue 3's single-thread target), next to zstd in the
    # same run: real MiniLM weights as FP8, one thread and every core.
    for f in devkit/data/*.ecf8.safetensors; do
        [ -f "$f" ] || continue
        step devkit/bin/ecf8 bench decode "$f" --threads "$(nproc)" --repeat 11 2>&1 | tee -a "$out/cpu_decode.log"
    done
fi
# The whole model on the GPU: tiny synth, tp 1. ecf8 vs raw bit-identical; CUDA vs the CPU backend.
run_tiny() { step devkit/bin/ecf8 run --config configs/tiny-gpu1.yaml --prompt-ids 3,141,59,26,535 --batch 2 \
    --max-new-tokens 8 "$@"; }
tiny_ready=0
if step devkit/bin/ecf8 synth --arch deepseek-v3 --preset tiny --out out/tiny/model >"$out/tiny.log" 2>&1 &&
    step devkit/bin/ecf8 shard --config configs/tiny-gpu1.yaml >>"$out/tiny.log" 2>&1; then
    tiny_ready=1
fi
if [ $tiny_ready = 1 ] &&
    run_tiny --backend cuda --weights ecf8 --dump-logits out/tiny/ecf8.bin --trace "$out/tiny_trace.json" \
        >"$out/tiny_cuda_ecf8.log" 2>&1 &&
    run_tiny --backend cuda --weights raw --dump-logits out/tiny/raw.bin >"$out/tiny_cuda_raw.log" 2>&1 &&
    run_tiny --backend cpu --weights ecf8 --dump-logits out/tiny/cpu.bin >"$out/tiny_cpu.log" 2>&1; then
    tail -12 "$out/tiny_cuda_ecf8.log"
    python3 scripts/compare_logits.py out/tiny/ecf8.bin out/tiny/raw.bin || failed=1
    python3 scripts/compare_logits.py out/tiny/ecf8.bin out/tiny/cpu.bin --rtol 1e-4 || failed=1
else
    echo "FAIL tiny ecf8 run (see tiny*.log)"; tail -5 "$out"/tiny*.log; failed=1
fi
echo "tiny done [$((SECONDS - t0)) s]"
# Continuous batching on CUDA (issue 19): 16 requests of mixed lengths through the scheduler on tiny, ecf8
# against raw (same schedule: logits bit-identical), against the CPU backend, and 3 of them run alone.
if [ $tiny_ready = 1 ]; then
    bash scripts/gpu_requests_check.sh devkit/bin/ecf8 "$out" || failed=1
    echo "requests done [$((SECONDS - t0)) s]"
fi
if [ "$measured" != 1 ]; then
    # JIT decode through the WeightStore on the small synthetic model, one rank (tp 1).
    if step devkit/bin/ecf8 synth --arch deepseek-v3 --preset small --out out/small/model --threads 16 \
        >"$out/synth.log" 2>&1 &&
        step devkit/bin/ecf8 shard --config configs/small-gpu1.yaml --threads 16 >"$out/shard.log" 2>&1; then
        step devkit/bin/weight_store_bench out/small/shards-tp1 --backend cuda --repeat 10 2>&1 |
            tee "$out/weight_store_bench.log"
        # The small model end to end: CUDA (FP32 GEMMs) against the CPU backend, ecf8 against raw.
        run_small() { step devkit/bin/ecf8 run --config configs/small-gpu1.yaml --prompt-ids 3,141,59,26,535 \
            --batch 2 --max-new-tokens 4 --eos-id -1 "$@"; }
        if run_small --backend cuda --dump-logits out/small/cuda.bin >"$out/small_cuda.log" 2>&1 &&
            run_small --backend cuda --weights raw --dump-logits out/small/raw.bin >"$out/small_raw.log" 2>&1 &&
            run_small --backend cpu --dump-logits out/small/cpu.bin >"$out/small_cpu.log" 2>&1; then
            python3 scripts/compare_logits.py out/small/cuda.bin out/small/raw.bin || failed=1
            python3 scripts/compare_logits.py out/small/cuda.bin out/small/cpu.bin --rtol 1e-4 || failed=1
        else
            echo "FAIL small ecf8 run (see small_*.log)"; tail -5 "$out"/small_*.log; failed=1
        fi
    else
        echo "FAIL synth/shard of small (see synth.log, shard.log)"
    fi
    # FP8 block-scaled GEMM (cuBLASLt) against the dequantize + SGEMM fallback, when the kit has it.
    if [ -x devkit/bin/fp8_gemm_bench ]; then
        step devkit/bin/fp8_gemm_bench >"$out/fp8_gemm_bench.log" 2>&1 || echo "FAIL fp8_gemm_bench"
        tail -25 "$out/fp8_gemm_bench.log"
    fi
fi
# The runtime benchmark (DeepSeek-V3 shapes, raw vs ECF8, host tier): minutes, so only when asked.
if [ "${GPU_BENCH_FORWARD:-0}" = 1 ]; then
    bash bench/run_gpu_forward.sh devkit/bin/ecf8 "$out/forward" || failed=1
fi
if [ "${GPU_BENCH_SERVE:-0}" = 1 ]; then
    # GPU_DEADLINE=S: end the benchmark in time for the whole script to finish within S seconds.
    serve_timeout=${GPU_SERVE_TIMEOUT:-420}
    [ -n "${GPU_DEADLINE:-}" ] && serve_timeout=$((GPU_DEADLINE - SECONDS - 10))
    [ "$serve_timeout" -ge 30 ] || { echo "FAIL serve: ${serve_timeout}s left before GPU_DEADLINE"; exit 1; }
    timeout "$serve_timeout" bash bench/run_serve.sh devkit/bin/ecf8 gpu >"$out/serve.log" 2>&1 ||
        { echo "FAIL serve (rc $?)"; tail -8 "$out/serve.log"; failed=1; }
    grep -E "^==|^ +[0-9]+ |concurrency [0-9]+:|ready|kept|^(compute|decode|host|copy|comm) |ms per step" "$out/serve.log"
    echo "serve done [$((SECONDS - t0)) s]"
fi
exit $failed
