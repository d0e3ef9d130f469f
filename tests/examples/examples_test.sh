#!/usr/bin/env bash
# Runs the examples/ folder as a user would: the tiny chat, many requests and the serving benchmark on it, the
# Python shard listing (safetensors from the oracle venv), and `ecf8 plan` on the real-model deployment YAML. The two-node example is its own test
# (two-node mode), since it needs network namespaces (exit 77 = skipped).
# Usage: examples_test.sh ECF8 WORKDIR REPO_ROOT VENV_PYTHON [local|two-node]
set -u
ecf8=$1
work=$2
repo=$3
python=$4
mode=${5:-local}
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
source "$repo/tests/launcher/check_lib.sh"
export ECF8="$ecf8" WORK="$work"

if [ "$mode" = two-node ]; then
    export RANKS_PER_NODE=1 MIN_VETH_BYTES=65536
    # shellcheck disable=SC2016  # expanded by the inner shell, on node 0
    bash "$repo/tests/launcher/two_node_netns.sh" "$work/netns" --script -- \
        bash -c '"$0" "$NETNS_HOSTFILE" "Hello from two nodes!"' "$repo/examples/two_nodes/run.sh" >two.log 2>&1
    status=$?
    cat two.log
    [ "$status" -eq 77 ] && exit 77
    check two-nodes-ran 0 "ok: 2 ranks on 2 nodes" -- cat two.log
    check two-nodes-chat 0 "^output: " -- cat two.log
    exit $((failures > 0))
fi

check chat-tiny 0 "^output: .*" -- bash "$repo/examples/chat_tiny.sh" "What is ECF8?"
check chat-tiny-prompt 0 "prompt: [0-9]+ tokens" -- bash "$repo/examples/chat_tiny.sh" "Again, please."
check serve-tiny 0 "concurrency 4: [0-9.]+x the output tokens/s of concurrency 1" -- bash "$repo/examples/serve_tiny.sh"
check serve-tiny-results 0 "ok" -- python3 -c "
import json
rows = [json.loads(l) for l in open('results.jsonl')]
assert [r['id'] for r in rows] == ['story', 'ids', 'sampled', 'short', 'stop', 'late', 'chat'], rows
assert all(r['finish_reason'] in ('length', 'stop') and 'text' in r and r['output_ids'] for r in rows), rows
print('ok')"
check list-shard 0 "ECF8 format 1, rank 0 of 2, [0-9]+ tensors" -- \
    "$python" "$repo/examples/list_shard.py" "$work/tiny/shards/rank-00000-of-00002.safetensors"
check list-shard-rejects-plain-file 1 "not an ECF8 file" -- \
    "$python" "$repo/examples/list_shard.py" "$work/tiny/model/model-00001-of-00003.safetensors"
check deployment-yaml-plans 0 "ECF8" -- "$ecf8" plan --config "$repo/examples/deepseek-v3-8xh100.yaml" \
    --model "$repo/configs/models/deepseek-v3"
exit $((failures > 0))
