#!/usr/bin/env bash
# Packs what the GPU machine needs to run the GPU tests and benchmarks without building: the device tool's
# machine has CUDA, cuBLAS and NCCL (in Python wheels) but no MPI, yaml-cpp, OpenBLAS or zstd, and nothing
# can be installed there. This takes the binaries of the default build (build/, CUDA compiled) and the
# shared libraries they load that the machine lacks, stripped, into devkit.tar.xz (git-ignored, < 64 MiB),
# plus the FP8 real-weight file of bench/real_model.sh when present, for the device tool's `carry`. On the device: tar -xJf devkit.tar.xz && bash scripts/gpu_checks.sh
# Configure build/ for a machine with another CPU, and for Hopper alone (a faster build):
#   cmake --preset default -DECF8_NATIVE=OFF -DECF8_CUDA_ARCHITECTURES=90a && cmake --build --preset default -j2
set -euo pipefail
cd "$(dirname "$0")/.."
# -march=native code built here may use instructions the device's CPU lacks (an illegal instruction there).
grep -q '^ECF8_NATIVE:BOOL=OFF' build/CMakeCache.txt 2>/dev/null || {
    echo "build/ is not configured with -DECF8_NATIVE=OFF: its host code may not run on the device's CPU." >&2
    echo "  cmake --preset default -DECF8_NATIVE=OFF -DECF8_CUDA_ARCHITECTURES=90a && cmake --build --preset default -j2" >&2
    exit 1
}
bins=(tests/kernels/test_ecf8_decode_gpu tests/kernels/test_kernels_cuda tests/kernels/test_fp8_gemm_cuda
      bench/fp8_gemm_bench bench/expert_gemm_bench tests/runtime/test_cuda_backend
      tests/runtime/test_weight_store_gpu tests/runtime/test_cuda_forward tests/runtime/test_nccl_communicator
      tests/runtime/test_backend_ops bench/gpu_decode
      bench/weight_store_bench launcher/ecf8)
rm -rf devkit && mkdir -p devkit/bin devkit/lib
for b in "${bins[@]}"; do
    [ -x "build/$b" ] || { echo "build/$b is missing: run cmake --build --preset default first" >&2; exit 1; }
    cp "build/$b" devkit/bin/
done
strip devkit/bin/*
# Every library the binaries load, except the C library's own and CUDA's (the machine has those).
for b in devkit/bin/*; do ldd "build/$(printf '%s\n' "${bins[@]}" | grep "/$(basename "$b")$")"; done |
    awk '$3 ~ /^\// {print $3}' | sort -u |
    grep -vE '/(libc|libm|libdl|libpthread|librt)\.so|libcu(da|blas)|libnccl' |
    while read -r lib; do cp -L "$lib" devkit/lib/; done
strip --strip-unneeded devkit/lib/* 2>/dev/null || true
# Real weights for the CPU decode benchmark on the GPU machine's cores (it cannot download them), when
# bench/real_model.sh has made it here: MiniLM as FP8 with 128x128 block scales, compressed (19 MB; the
# BF16 copy would take the kit past the carry limit).
mkdir -p devkit/data
f=out/real_model/model.fp8.ecf8.safetensors
if [ -f "$f" ]; then cp "$f" devkit/data/; fi
tar -cJf devkit.tar.xz devkit
rm -rf devkit
echo "devkit.tar.xz: $(du -h devkit.tar.xz | cut -f1) ($(tar -tJf devkit.tar.xz | wc -l) files)"
