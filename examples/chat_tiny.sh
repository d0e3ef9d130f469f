#!/usr/bin/env bash
# Chat with the tiny synthetic DeepSeek-V3 on two CPU ranks, every weight kept ECF8-compressed and decoded
# just in time. `ecf8 synth` gives the model a real byte-level BPE tokenizer and DeepSeek-V3's chat format,
# so text goes in and text comes out; but the weights are random, so the reply is gibberish. With a real
# checkpoint the same command line chats (see deepseek-v3-8xh100.yaml).
#
# Usage: examples/chat_tiny.sh ["message"] ["system prompt"]
#   ECF8=path/to/ecf8 (default build/launcher/ecf8), WORK=dir for the model and shards (default out/examples)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ecf8=${ECF8:-$repo/build/launcher/ecf8}
work=${WORK:-$repo/out/examples}
message=${1:-"Hello! Can you explain what lossless compression of model weights means?"}
system=${2:-"You are a helpful assistant."}
if [ ! -x "$ecf8" ]; then
    echo "chat_tiny.sh: no ecf8 at $ecf8; build it first (cmake --preset default && cmake --build --preset" \
        "default --target ecf8) or set ECF8=path/to/ecf8" >&2
    exit 1
fi
mkdir -p "$work" && cd "$work"
config=$repo/examples/tiny-chat.yaml

# Model and shards are made once and reused.
[ -f tiny/model/tokenizer.json ] || "$ecf8" synth --arch deepseek-v3 --preset tiny --out tiny/model >/dev/null
[ -f tiny/shards/manifest.json ] || "$ecf8" shard --config "$config" >/dev/null

# mpirun refuses root unless told; containers often forbid its single-copy shared-memory path.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
echo "user: $message"
mpirun --oversubscribe -np 2 "$ecf8" run --config "$config" --system "$system" --chat "$message" \
    --max-new-tokens 32 --temperature 0.8 --top-p 0.95 --seed 7
