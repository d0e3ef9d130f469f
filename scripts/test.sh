#!/usr/bin/env bash
# Builds and runs the whole test suite: the CPU code under ASan+UBSan, a short fuzzing run, then the
# default build (CUDA code compiled when nvcc is present) with every test. Ends with ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${ECF8_JOBS:-$(nproc)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

echo "== [1/3] sanitizers: AddressSanitizer + UndefinedBehaviorSanitizer (CPU code)"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"
# "large" tests write checkpoints of the `small` preset's dimensions: the default build runs them.
ctest --preset asan -j "$jobs" -LE 'gpu|large'

echo "== [2/3] fuzzing: ${FUZZ_SECONDS:=20} s per target"
FUZZ_SECONDS=$FUZZ_SECONDS bash scripts/fuzz.sh

echo "== [3/3] default build and the whole suite (unit, mpi, gpu; gpu tests skip without a device)"
cmake --preset default >/dev/null
cmake --build --preset default -j "$jobs"
ctest --preset default -j "$jobs"
