#!/usr/bin/env bash
# Runs on the GPU machine from the repository root, after `tar -xJf devkit.tar.xz` (scripts/devkit.sh):
# the GPU tests (the `ctest -L gpu` set), the GPU benchmarks and the CPU decode benchmark on its cores,
# each log into $OUT (or /tmp/gpu_checks).
# Prints one line per step and exits non-zero when any test failed. GPU_TESTS_ONLY=1: stop after the tests;
# GPU_BENCH_FORWARD=1: also the runtime benchmark (bench/run_gpu_forward.sh, minutes); GPU_BENCH_SERVE=1: the
# serving benchmark (bench/run_serve.sh gpu: ecf8 bench serve at 1, 8, 32 and 128 concurrent requests).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu_checks}
mkdir -p "$out"
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
for t in test_ecf8_decode_gpu test_kernels_cuda test_fp8_gemm_cuda test_cuda_backend test_weight_store_gpu \
    test_cuda_forward test_nccl_communicator test_backend_ops; do
    [ -x "devkit/bin/$t" ] || continue
    if devkit/bin/$t --gtest_color=no >"$out/$t.log" 2>&1; then
        echo "ok   $t: $(grep -E '^\[  PASSED  \]|SKIPPED \]' "$out/$t.log" | head -1)"
    else
        echo "FAIL $t (log: $t.log)"
        tail -20 "$out/$t.log"
        failed=1
    fi
done
[ "${GPU_TESTS_ONLY:-0}" = 1 ] && exit $failed  # the tests alone: a short device call
devkit/bin/gpu_decode >"$out/gpu_decode.log" 2>&1 && echo "ok   gpu_decode" || echo "FAIL gpu_decode"
tail -25 "$out/gpu_decode.log"
# The CPU decoder on this machine's server cores (issue 3's single-thread target), next to zstd in the
# same run: real MiniLM weights as FP8, one thread and every core.
for f in devkit/data/*.ecf8.safetensors; do
    [ -f "$f" ] || continue
    devkit/bin/ecf8 bench decode "$f" --threads "$(nproc)" --repeat 11 2>&1 | tee -a "$out/cpu_decode.log"
done
# The whole model on the GPU: tiny synth, tp 1. ecf8 vs raw bit-identical; CUDA vs the CPU backend.
run_tiny() { devkit/bin/ecf8 run --config configs/tiny-gpu1.yaml --prompt-ids 3,141,59,26,535 --batch 2 \
    --max-new-tokens 8 "$@"; }
if devkit/bin/ecf8 synth --arch deepseek-v3 --preset tiny --out out/tiny/model >"$out/tiny.log" 2>&1 &&
    devkit/bin/ecf8 shard --config configs/tiny-gpu1.yaml >>"$out/tiny.log" 2>&1 &&
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
# JIT decode through the WeightStore on the small synthetic model, one rank (tp 1).
if devkit/bin/ecf8 synth --arch deepseek-v3 --preset small --out out/small/model --threads 16 >"$out/synth.log" 2>&1 &&
    devkit/bin/ecf8 shard --config configs/small-gpu1.yaml --threads 16 >"$out/shard.log" 2>&1; then
    devkit/bin/weight_store_bench out/small/shards-tp1 --backend cuda --repeat 10 2>&1 | tee "$out/weight_store_bench.log"
    # The small model end to end: CUDA (FP32 GEMMs) against the CPU backend, ecf8 against raw.
    run_small() { devkit/bin/ecf8 run --config configs/small-gpu1.yaml --prompt-ids 3,141,59,26,535 --batch 2 \
        --max-new-tokens 4 --eos-id -1 "$@"; }
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
    devkit/bin/fp8_gemm_bench >"$out/fp8_gemm_bench.log" 2>&1 || echo "FAIL fp8_gemm_bench"
    tail -25 "$out/fp8_gemm_bench.log"
fi
# The runtime benchmark (DeepSeek-V3 shapes, raw vs ECF8, host tier): minutes, so only when asked.
if [ "${GPU_BENCH_FORWARD:-0}" = 1 ]; then
    bash bench/run_gpu_forward.sh devkit/bin/ecf8 "$out/forward" || failed=1
fi
if [ "${GPU_BENCH_SERVE:-0}" = 1 ]; then
    bash bench/run_serve.sh devkit/bin/ecf8 gpu >"$out/serve.log" 2>&1 || failed=1
    grep -E "^==|^ +[0-9]+ |concurrency [0-9]+:" "$out/serve.log"
fi
exit $failed
