#!/usr/bin/env bash
# Many requests through the continuous-batching scheduler, then the serving benchmark, on the tiny synthetic
# DeepSeek-V3 (two CPU ranks, every weight kept ECF8-compressed). The requests file has one JSON request per
# line: text prompts, token-id prompts and a chat of different lengths, greedy and sampled, one with a stop
# token.
# `ecf8 run --requests` admits them while KV blocks and max_num_seqs (4 here) allow, lets finished ones
# leave and waiting ones join mid-flight, and writes one result per line. The weights are random, so the
# text is gibberish; the machinery is the same as for a real checkpoint.
#
# Usage: examples/serve_tiny.sh
#   ECF8=path/to/ecf8 (default build/launcher/ecf8), WORK=dir for the model and shards (default out/examples)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ecf8=${ECF8:-$repo/build/launcher/ecf8}
work=${WORK:-$repo/out/examples}
if [ ! -x "$ecf8" ]; then
    echo "serve_tiny.sh: no ecf8 at $ecf8; build it first (cmake --preset default && cmake --build --preset" \
        "default --target ecf8) or set ECF8=path/to/ecf8" >&2
    exit 1
fi
mkdir -p "$work" && cd "$work"
config=$repo/examples/tiny-chat.yaml
[ -f tiny/model/tokenizer.json ] || "$ecf8" synth --arch deepseek-v3 --preset tiny --out tiny/model >/dev/null
[ -f tiny/shards/manifest.json ] || "$ecf8" shard --config "$config" >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none

cat >requests.jsonl <<'JSONL'
{"id": "story", "prompt": "Once upon a time, in a land far away,", "max_new_tokens": 24}
{"id": "ids", "prompt_ids": [3, 141, 59, 26, 535, 89, 79, 323], "max_new_tokens": 12}
{"id": "sampled", "prompt": "Write a haiku about compression.", "max_new_tokens": 16, "temperature": 0.8, "top_p": 0.95, "seed": 7}
{"id": "short", "prompt_ids": [42], "max_new_tokens": 4}
{"id": "stop", "prompt": "Count: one, two, three,", "max_new_tokens": 32, "stop_ids": [453]}
{"id": "late", "prompt": "Requests beyond max_num_seqs wait, then join as others finish.", "max_new_tokens": 8}
{"id": "chat", "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is ECF8?"}], "max_new_tokens": 12}
JSONL
mpirun --oversubscribe -np 2 "$ecf8" run --config "$config" --requests requests.jsonl --output results.jsonl |
    grep -E "^(kv cache|weights|rank 0|results)"
echo "results.jsonl:"
cat results.jsonl

# Output tokens/s, TTFT and TPOT at 1 and 4 concurrent requests of random prompts (as vLLM's serving benchmark).
mpirun --oversubscribe -np 2 "$ecf8" bench serve --config "$config" --concurrency 1,4 --num-prompts 8 \
    --input-len 16 --output-len 8
